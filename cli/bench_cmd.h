// cli/bench_cmd.h: `pviommu bench`: impl against its peers (bench/bench.h), then, in the same
// command, the throughput of the verification tools themselves, so that a
// regression in the property suites or the proofs shows up next to the data-path figures.
#pragma once

#include <iosfwd>

#include "bench/bench.h"

namespace cli {

// Runs bench::run_bench, then the tools section: the sequential state machine (commands/s),
// the parallel linearizability property (histories/s, ops/s) and each proof obligation's time
// at small width (not in --smoke or --quick). Returns run_bench's status, or 1 if a tool run
// failed.
[[nodiscard]] int run_bench_command(const bench::BenchOptions& opt, std::ostream& out);

}  // namespace cli
