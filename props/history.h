// props/history.h: concurrent test cases and the histories they produce.
//
// A ConcurrentCase is a world (a trace: control-plane statements and maybe a sequential
// data-path prefix) and 2-3 per-thread sequences of data-path statements (calls, batches,
// balloons, populates, drains). run_history() executes the world, then the threads on a fresh
// system under test in real threads released by one start barrier, with random short spins and
// yields between operations, and records for every operation its invocation and response times
// (one global atomic counter is the clock) and its observable result. props/linearizability.h
// decides whether a History is linearizable against ref (spec/pv-iommu.md section 7).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "spec/hypervisor.h"
#include "trace/trace.h"

namespace props {

// The system under test: built for a host, then driven through spec::Hypervisor.
using SutFactory = std::function<std::unique_ptr<spec::Hypervisor>(const spec::Host&)>;

// A data-path statement: trace::CallStmt (a call or a batch), BalloonStmt, PopulateStmt or
// DrainStmt. Other statement kinds are control plane and belong in the world.
using DataOp = trace::Stmt;
[[nodiscard]] bool is_data_path(const trace::Stmt& s);

struct ConcurrentCase {
    trace::Trace world;                        // run sequentially first
    std::vector<std::vector<DataOp>> threads;  // then these, one thread each
    [[nodiscard]] std::size_t op_count() const;
};

// What one data-path statement returned.
using Outcome = std::variant<std::vector<spec::OpResult>,  // a call or batch: one per op
                             spec::BalloonOutcome, spec::PopulateOutcome,
                             std::vector<spec::IoReq>>;  // a drain: what it consumed

// Runs one data-path statement on h (a call or batch goes through the hypercall, R10).
[[nodiscard]] Outcome execute(spec::Hypervisor& h, const DataOp& op);
[[nodiscard]] std::string outcome_text(const Outcome& o);

struct Event {
    unsigned thread = 0;
    std::size_t index = 0;  // position in its thread's sequence
    DataOp op;
    std::uint64_t invoked = 0;    // clock value taken just before the call
    std::uint64_t responded = 0;  // clock value taken just after it returned
    Outcome outcome;
};

struct History {
    spec::State initial;        // ref's state after the world (the checker starts here)
    std::vector<Event> events;  // every thread's operations, each with its interval
    std::optional<spec::State> final_state;  // the SUT's snapshot after all threads joined
    std::string world_error;  // non-empty: the world could not be run, or ref and the
                              // SUT disagree after it (a sequential bug)
};

struct RunOptions {
    std::uint64_t seed = 1;     // varies the spins and yields between operations
    unsigned max_spin = 64;     // spin iterations drawn in [0, max_spin) before each op
    unsigned yield_one_in = 4;  // and a yield with probability 1/yield_one_in
};

// Runs c once on a fresh SUT made by make_sut (world, then the threads).
[[nodiscard]] History run_history(const ConcurrentCase& c, const SutFactory& make_sut,
                                  const RunOptions& opt);

// The case as replayable text: the world as a trace (trace::print), then each thread's
// statements after a `# thread T` comment line. Run sequentially (`pviommu run`), it is the
// linearization "thread 0, then thread 1, ...".
[[nodiscard]] std::string case_text(const ConcurrentCase& c);
// The history as a timeline sorted by invocation: `[inv,resp] tT#i statement -> outcome`.
[[nodiscard]] std::string history_text(const History& h);

// The factory for impl::make.
[[nodiscard]] SutFactory impl_factory();

}  // namespace props
