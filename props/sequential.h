// props/sequential.h: the sequential RapidCheck state machine: impl against ref, one Command per
// subop and per event (balloon, populate, drain, destroy, batch). After every command: status
// and out fields equal, canonical dumps equal, every invariant holds, INV-INVALIDATE at every
// balloon. A shrunk failure is written as a trace file that `pviommu run` and `pviommu diff`
// replay, and printed with RapidCheck's reproduce string and the seed.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <string>

namespace props {

struct SequentialOptions {
    std::uint64_t seed = 0;                             // 0: RapidCheck's default (random, printed)
    int tests = 200;                                    // RapidCheck max_success
    int max_size = 60;                                  // longest command sequence, roughly
    std::string failure_trace = "props-failure.trace";  // where a shrunk failure is written
};

struct SequentialResult {
    bool passed = false;
    int tests = 0;
    int discarded = 0;  // not exposed by this RapidCheck snapshot: always 0
    double seconds = 0;
    std::uint64_t commands = 0;  // commands run on impl (including shrinking)
    // The generated mix: "map_foreign_page 0", "map_foreign_page -EEXIST", "balloon tuples=2",
    // "balloon synchronous", ... -> count.
    std::map<std::string, std::uint64_t> mix;
    std::string reproduce;  // RC_PARAMS value that replays a failure
};

// Runs the state machine; progress and any failure go to out.
SequentialResult run_sequential(const SequentialOptions& opt, std::ostream& out);

}  // namespace props
