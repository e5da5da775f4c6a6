// trace/runner.h: runs a parsed trace on any spec::Hypervisor, statement by statement, checking
// expectations, every state invariant after every statement (D15) and INV-INVALIDATE at every
// balloon. `pviommu run` and `pviommu diff` are built on Runner::step.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trace/trace.h"

namespace trace {

using ModelFactory = std::function<std::unique_ptr<spec::Hypervisor>(const spec::Host&)>;

// What one statement did. `outcome` is the observable result as text (statuses and out fields
// of every op, a balloon's frame and invalidates, drained requests): two models agree on a
// statement iff their outcomes (and their dumps afterwards) are equal.
struct StepRecord {
    int line = 0;
    std::string statement;
    std::string outcome;
    std::vector<std::string> failures;  // failed expectations or checks: `FILE:LINE: ...`
    bool fatal = false;                 // an invariant broke or the world could not be built
    bool is_call = false;
    std::size_t expectations = 0;  // expectations and checks evaluated
};

class Runner {
public:
    Runner(const Trace& t, spec::Hypervisor& h) : t_(t), h_(h) {}
    [[nodiscard]] bool done() const { return next_ >= t_.statements.size(); }
    StepRecord step();
    // INV-DEVICE-SAFE's ghost set H as the statements so far left it (D23).
    [[nodiscard]] const spec::Handed& handed() const { return handed_; }

private:
    void fail(StepRecord& r, const std::string& msg) const;
    void run_expect(const ExpectStmt& e, StepRecord& r) const;

    const Trace& t_;
    spec::Hypervisor& h_;
    std::size_t next_ = 0;
    std::vector<spec::OpResult> last_;        // results of the last call or batch
    spec::Handed handed_;                     // INV-DEVICE-SAFE's ghost set H (D23)
    std::optional<spec::State> before_call_;  // before the last call, if record_handed needs it
};

// An op's observable result as text: its status and, on success, its out fields
// (`0 bfn=0x1000`, `0 flags=0x1 order=9`, `-EEXIST`). Shared by every comparison of two models.
[[nodiscard]] std::string op_outcome(const spec::OpResult& r);

struct RunOptions {
    bool verbose = false;  // one line per statement
    bool dump = false;     // the canonical dump at the end
};

struct Summary {
    std::size_t statements = 0, calls = 0, passed = 0, failed = 0;
    bool fatal = false;
    [[nodiscard]] int exit_code() const { return failed != 0 || fatal ? 1 : 0; }
};

// Runs the whole trace on h, printing failures (and with -v every statement) to out.
Summary run(const Trace& t, spec::Hypervisor& h, const RunOptions& opt, std::ostream& out);

}  // namespace trace
