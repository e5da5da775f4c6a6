// trace/runner.h: runs a parsed trace on any spec::Hypervisor, statement by statement, checking
// expectations, every state invariant after every statement (D15; Check says when) and
// INV-INVALIDATE at every balloon. `pviommu run` and `pviommu diff` are built on Runner::step.
#pragma once

#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "trace/trace.h"

namespace trace {

using ModelFactory = std::function<std::unique_ptr<spec::Hypervisor>(const spec::Host&)>;

// What the runner may know of a model beyond spec::Hypervisor (ref offers both; impl neither).
struct ModelHooks {
    // The model's state, edited in place by the model: read through it instead of a snapshot()
    // copy, so that a statement costs what it touches, not the size of the world. Must stay
    // valid and current for the runner's lifetime.
    const spec::State* live = nullptr;
    // For --explain: why each op of the call just made got its status, one text per op that
    // reached a subop (an unknown subop id never does: R1), in op order; clears the record.
    std::function<std::vector<std::string>()> take_rulings;
};

// When the runner checks the state invariants on its own (D15). `check invariants` statements
// and INV-INVALIDATE at every balloon run whatever this says.
enum class Check : std::uint8_t {
    every,  // after every statement (the default: a violation names its statement)
    end,    // once, after the last statement
    none,   // never
};

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
    std::size_t expectations = 0;      // expectations and checks evaluated
    std::vector<std::string> rulings;  // a call with ModelHooks::take_rulings: one per op
};

class Runner {
public:
    Runner(const Trace& t, spec::Hypervisor& h, ModelHooks hooks = {}, Check check = Check::every)
        : t_(t), h_(h), hooks_(std::move(hooks)), check_(check) {}
    [[nodiscard]] bool done() const { return next_ >= t_.statements.size(); }
    StepRecord step();
    // The model's state now: the live state if the hooks give one, else a fresh snapshot (valid
    // until the next call of now() or step()).
    [[nodiscard]] const spec::State& now();
    // INV-DEVICE-SAFE's ghost set H as the statements so far left it (D23).
    [[nodiscard]] const spec::Handed& handed() const { return handed_; }

private:
    void fail(StepRecord& r, const std::string& msg) const;
    void run_expect(const ExpectStmt& e, StepRecord& r) const;

    const Trace& t_;
    spec::Hypervisor& h_;
    ModelHooks hooks_;
    Check check_;
    std::optional<spec::State> snap_;  // now()'s snapshot when there is no live state
    std::size_t next_ = 0;
    std::vector<spec::OpResult> last_;        // results of the last call or batch
    spec::Handed handed_;                     // INV-DEVICE-SAFE's ghost set H (D23)
    std::optional<spec::State> before_call_;  // before the last call, if record_handed needs it
};

// An op's observable result as text: its status and, on success, its out fields
// (`0 bfn=0x1000`, `0 flags=0x1 order=9`, `-EEXIST`). Shared by every comparison of two models.
[[nodiscard]] std::string op_outcome(const spec::OpResult& r);

// Which lines of the canonical dump to show: every term given must match (an empty filter shows
// everything). `host` always shows.
struct DumpFilter {
    std::optional<DomId> domain;              // lines that name domain D in any role
    std::optional<std::pair<Mfn, Mfn>> mfns;  // lines that name a frame in [first, last]
    [[nodiscard]] bool empty() const { return !domain && !mfns; }
    [[nodiscard]] bool keeps(std::string_view dump_line) const;
};
// `dom=D`, `mfn=M`, `mfn=LO-HI`, comma-separated (`dom=1,mfn=0x10-0x1f`); an error message or
// nullopt.
[[nodiscard]] std::optional<std::string> parse_dump_filter(std::string_view text, DumpFilter& out);
// The lines of dump text that f keeps.
[[nodiscard]] std::string filter_dump(const std::string& dump_text, const DumpFilter& f);

// --explain: the change between two canonical dumps as `+ LINE` (new), `- LINE` (gone) and
// `~ KEY field old->new ...` (the same fact with other values: a frame's count, an entry's
// kind), in dump order.
[[nodiscard]] std::vector<std::string> explain_change(const std::string& before,
                                                      const std::string& after);

struct RunOptions {
    bool verbose = false;  // one line per statement
    bool dump = false;     // the canonical dump at the end
    bool explain = false;  // after each statement, its state change and each op's ruling
    Check check = Check::every;
    DumpFilter filter;  // for --dump and --explain
    ModelHooks hooks;
};

struct Summary {
    std::size_t statements = 0, calls = 0, passed = 0, failed = 0;
    bool fatal = false;
    std::vector<std::string> failures;  // every failure line printed, `FILE:LINE: ...`
    [[nodiscard]] int exit_code() const { return failed != 0 || fatal ? 1 : 0; }
};

// Runs the whole trace on h, printing failures (and with -v every statement, with --explain
// every change) to out.
Summary run(const Trace& t, spec::Hypervisor& h, const RunOptions& opt, std::ostream& out);

}  // namespace trace
