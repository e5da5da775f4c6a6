// props/history.h: concurrent test cases and the histories they produce.
//
// A ConcurrentCase is a world (a trace: control-plane statements and maybe a sequential
// data-path prefix) and 2-3 per-thread sequences of data-path statements (calls, batches,
// balloons, populates, drains). run_history() executes the world, then the threads on a fresh
// system under test, on persistent worker threads (props/workers.h) released together by one
// start barrier, with random short spins and yields between operations and, in some runs,
// impl's stall points armed (spec/faults.h) so that threads park inside the windows the
// protocol's arguments rely on; it records for every operation its invocation and response
// times (one global atomic counter is the clock) and its observable result.
// props/linearizability.h decides whether a History is linearizable against ref
// (spec/pv-iommu.md section 7); overlap() says how much its operations overlapped.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "spec/faults.h"
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
    // Stall points that fired during the threads (zero when the run armed none).
    std::array<std::uint64_t, spec::kFaultPoints> stall_hits{};
};

// How much a history's operations overlapped in time. Two operations of different threads
// OVERLAP when each was invoked before the other responded (their [invoked, responded] clock
// intervals intersect): neither real-time order binds them, so the checker must try both
// orders; operations of one thread never overlap. A history without one overlapping pair is
// sequential in disguise and tests nothing about concurrency.
struct Overlap {
    std::uint64_t ops = 0;         // operations (statements) of the threads
    std::uint64_t pairs = 0;       // overlapping pairs of operations of different threads
    std::uint64_t overlapped = 0;  // operations that overlap at least one of another thread
    unsigned threads = 0;          // threads that ran at least one operation
};
// h.events sorted by invocation, as run_history leaves them.
[[nodiscard]] Overlap overlap(const History& h);

struct RunOptions {
    std::uint64_t seed = 1;     // varies the spins, yields and stalls
    unsigned max_spin = 64;     // spin iterations drawn in [0, max_spin) before each op
    unsigned yield_one_in = 4;  // and a yield with probability 1/yield_one_in (not lockstep)
    // Arm impl's stall points for this run (spec/faults.h; a SUT whose factory set a plan keeps
    // its own): each stall point is armed with probability 3/4, at a rate of one visit in 1, 2,
    // 4 or 8, sleeps up to 2, 10 or 40 us, all drawn from seed. Stalls change timing only.
    bool stalls = false;
    // Lockstep: the threads run in rounds, a spinning barrier between rounds; each thread runs
    // at most one operation a round and sits some rounds out (drawn from seed), so that the
    // operations of one round start together whatever the load on the machine's CPUs, and the
    // rounds pair different operations of different threads. Without it the threads run
    // freely after the start barrier (every interleaving possible, fewer of them overlapping).
    bool lockstep = false;
};

class Workers;

// Runs c once on a fresh SUT made by make_sut (world, then the threads). The threads run on
// `workers` (at least c.threads.size() of them), or on a pool made for this one call if null.
[[nodiscard]] History run_history(const ConcurrentCase& c, const SutFactory& make_sut,
                                  const RunOptions& opt, Workers* workers = nullptr);

// The case as replayable text: the world as a trace (trace::print), then each thread's
// statements after a `# thread T` comment line. Run sequentially (`pviommu run`), it is the
// linearization "thread 0, then thread 1, ...".
[[nodiscard]] std::string case_text(const ConcurrentCase& c);
// The history as a timeline sorted by invocation: `[inv,resp] tT#i statement -> outcome`.
[[nodiscard]] std::string history_text(const History& h);

// The factory for impl::make.
[[nodiscard]] SutFactory impl_factory();

}  // namespace props
