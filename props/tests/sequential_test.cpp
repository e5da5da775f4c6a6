// The sequential state machine at the CI budget (PVIOMMU_BUDGET=full: the 10,000).
#include "props/sequential.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <cstring>
#include <sstream>

TEST_CASE("sequential: impl refines ref, command by command (RapidCheck state machine)") {
    const char* budget = std::getenv("PVIOMMU_BUDGET");
    props::SequentialOptions opt;
    opt.seed = 20151117;
    opt.tests = budget != nullptr && std::strcmp(budget, "full") == 0 ? 10000 : 300;
    opt.failure_trace = "props-failure.trace";
    std::ostringstream out;
    auto r = props::run_sequential(opt, out);
    CHECK_MESSAGE(r.passed, out.str());
    CHECK(r.tests == opt.tests);
    std::ostringstream mix;
    for (const auto& [k, n] : r.mix) mix << "  " << k << ": " << n << "\n";
    MESSAGE(r.tests << " sequences, " << r.commands << " commands in " << r.seconds << " s ("
                    << static_cast<double>(r.commands) / r.seconds << " commands/s)\n"
                    << mix.str());
    // The generated mix must reach what matters (counted per command, not per sequence).
    CHECK(r.mix["map_foreign_page 0"] > 50);
    CHECK(r.mix["map_foreign_page -EEXIST"] > 5);
    CHECK(r.mix["lookup_foreign_page 0"] > 20);
    CHECK(r.mix["unmap_foreign_page 0"] > 20);
    CHECK(r.mix["balloon with tuples"] > 20);
    CHECK(r.mix["balloon ring full -> synchronous"] > 2);
    CHECK(r.mix["destroy while mapped"] > 2);
}
