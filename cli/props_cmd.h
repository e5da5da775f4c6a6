// cli/props_cmd.h: `pviommu props`: the property suites (props/) with a summary table (the
// parallel row fails when fewer than 80% of its histories overlap, props/parallel.h), and the
// planted-bug run (`--mutants`, a -DPVIOMMU_MUTANTS=ON build): one line per impl mutant, then
// `mutants caught K/N`; then the concurrency mutants (issue 15), one line each,
//   concurrency-mutant impl:NAME caught by overlapping histories (...)   needs_concurrency
//   concurrency-mutant impl:NAME caught by impl_tests' device race (...) needs_devices
//   concurrency-mutant relacy:NAME caught by Relacy: SUITE (...)         relacy_tests --mutants
// (or MISSED; a device mutant without impl_tests beside, "not counted" with the reason), and
// last `concurrency mutants caught K/N`. impl_tests and relacy_tests are looked up in this
// executable's build tree (impl/impl_tests, impl/relacy/relacy_tests beside /proc/self/exe).
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iosfwd>
#include <string>

namespace cli {

struct PropsArgs {
    std::uint64_t seed = 20151117;
    int tests = 300;         // sequential sequences (RapidCheck max_success)
    int parallel_cases = 0;  // concurrent cases; 0: the suite's default
    bool parallel = false;   // also run the concurrent suite
    int mutant = 0;          // run against planted bug K (a PVIOMMU_MUTANTS=ON build)
    bool mutants = false;    // run against every planted bug
    bool json = false;
    std::string failure_trace = "props-failure.trace";
};

CLI::App* add_props_command(CLI::App& app, PropsArgs& args);
// Exit status: 0 every property held (or, with --mutants, every mutant of both lists was
// caught), 1 not,
// 2 a mutant was asked of a build without them.
int run_props(const PropsArgs& args, std::ostream& out);

}  // namespace cli
