// trace/diff.h: runs one trace on two models in lockstep and finds the first statement after
// which they disagree. Two models agree on a statement iff its outcome text (every status and
// out field, a balloon's frame and invalidates, drained requests: StepRecord::outcome), its
// fatality, and the canonical dump of both states afterwards are equal. Model-agnostic: the
// models come in as factories and are named by spec::Hypervisor::name().
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "trace/runner.h"

namespace trace {

// The first statement after which A and B disagree.
struct Divergence {
    int line = 0;
    std::string statement;  // statement_text (a batch spans several lines)
    std::string outcome_a, outcome_b;
    bool fatal_a = false, fatal_b = false;  // the statement stopped that side's run
    // The dumps after the statement, line by line in dump order: "-LINE" only in A, "+LINE"
    // only in B (a longest-common-subsequence diff). Empty when only the outcomes differ.
    std::vector<std::string> dump_diff;
};

struct DiffResult {
    std::string file;
    std::string name_a, name_b;  // the models' name()
    std::size_t statements = 0;  // statements run on both, the diverging one included
    std::optional<Divergence> divergence;
    // Failed expectations and checks of each side (`FILE:LINE: ...`), up to the divergence or
    // the end. Not divergences by themselves: a scenario may fail the same way on both.
    std::vector<std::string> failures_a, failures_b;
    // Both sides stopped at the same statement (a world that cannot be built, a broken
    // invariant), agreeing: the statements after it were not run.
    bool stopped = false;
    [[nodiscard]] bool diverged() const { return divergence.has_value(); }
};

// Creates a model from t.host with each factory and steps both over t, comparing after every
// statement; stops at the first divergence. Requires: both factories non-null, t valid (as
// parse() returns it).
[[nodiscard]] DiffResult diff(const Trace& t, const ModelFactory& a, const ModelFactory& b);

// "-LINE"/"+LINE" for the lines of dump `a` not in `b` and of `b` not in `a`, in order, by a
// longest common subsequence of lines (common prefix and suffix trimmed first).
[[nodiscard]] std::vector<std::string> line_diff(const std::string& a, const std::string& b);

}  // namespace trace
