// cli/props_cmd.h: `pviommu props`: the property suites (props/) with a summary table, and the
// planted-bug run (`--mutants`: one line per mutant, then `mutants caught K/N`).
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
// Exit status: 0 every property held (or, with --mutants, every mutant was caught), 1 not,
// 2 a mutant was asked of a build without them.
int run_props(const PropsArgs& args, std::ostream& out);

}  // namespace cli
