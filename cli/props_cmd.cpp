#include "cli/props_cmd.h"

#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "impl/mutants.h"
#include "props/parallel.h"
#include "props/sequential.h"

namespace cli {

namespace {

struct Row {
    std::string property;
    int tests = 0, discarded = 0;
    bool passed = false;
    double seconds = 0;
    std::string detail;
};

Row sequential_row(const PropsArgs& a, int tests, std::ostream* failure_out) {
    props::SequentialOptions o;
    o.seed = a.seed;
    o.tests = tests;
    o.failure_trace = a.failure_trace;
    std::ostringstream log;
    const auto r = props::run_sequential(o, log);
    if (failure_out != nullptr && !r.passed) *failure_out << log.str();
    std::ostringstream d;
    d << r.commands << " commands, " << std::fixed << std::setprecision(0)
      << (r.seconds > 0 ? static_cast<double>(r.commands) / r.seconds : 0) << " commands/s";
    return Row{"sequential: impl refines ref", r.tests, r.discarded, r.passed, r.seconds, d.str()};
}

Row parallel_row(const PropsArgs& a, std::uint64_t cases, bool shrink, std::ostream* failure_out) {
    props::ParallelOptions o;
    o.seed = a.seed;
    o.cases = cases;
    o.shrink = shrink;
    std::ostringstream log;
    const auto r = props::run_parallel(o, log);
    if (failure_out != nullptr && r.failed != 0) *failure_out << log.str();
    std::ostringstream d;
    d << r.histories << " histories, " << r.overlaps << " overlapping pairs, " << std::fixed
      << std::setprecision(1) << (r.seconds > 0 ? static_cast<double>(r.cases) / r.seconds : 0)
      << " cases/s";
    return Row{"parallel: histories linearizable",
               static_cast<int>(r.cases),
               0,
               r.failed == 0,
               r.seconds,
               d.str()};
}

void print_table(const std::vector<Row>& rows, std::ostream& out) {
    out << std::left << std::setw(34) << "property" << std::right << std::setw(8) << "tests"
        << std::setw(11) << "discarded" << std::setw(8) << "result" << std::setw(10) << "seconds"
        << "  detail\n";
    for (const Row& r : rows)
        out << std::left << std::setw(34) << r.property << std::right << std::setw(8) << r.tests
            << std::setw(11) << r.discarded << std::setw(8) << (r.passed ? "pass" : "FAIL")
            << std::setw(10) << std::fixed << std::setprecision(2) << r.seconds << "  " << r.detail
            << "\n";
}

}  // namespace

CLI::App* add_props_command(CLI::App& app, PropsArgs& a) {
    auto* c = app.add_subcommand(
        "props",
        "Property tests: impl against ref as a RapidCheck state machine; --mutants runs "
        "them against every planted bug (a -DPVIOMMU_MUTANTS=ON build)");
    c->add_option("--seed", a.seed, "RapidCheck seed (default 20151117)");
    c->add_option("--tests", a.tests, "Sequential command sequences (default 300)");
    c->add_flag("--parallel", a.parallel,
                "Also run the concurrent suite: random cases on impl in threads, histories checked "
                "for linearizability against ref");
    c->add_option("--cases", a.parallel_cases,
                  "Concurrent cases (default: PVIOMMU_BUDGET's, ci 60, full 2000)");
    c->add_option("--mutant", a.mutant, "Run against planted bug K (see impl/mutants.h)");
    c->add_flag("--mutants", a.mutants,
                "Run against every planted bug; last line: mutants caught K/N");
    c->add_option("--failure-trace", a.failure_trace,
                  "Where a shrunk failure is written as a trace");
    c->add_flag("--json", a.json, "Print the results as JSON");
    return c;
}

int run_props(const PropsArgs& a, std::ostream& out) {
    if ((a.mutants || a.mutant != 0) && !impl::mutants_compiled()) {
        out << "pviommu props: this build carries no mutants (configure with "
               "-DPVIOMMU_MUTANTS=ON)\n";
        return 2;
    }
    if (a.mutants) {
        int caught = 0, total = 0;
        nlohmann::json js = nlohmann::json::array();
        int by_devices = 0;
        for (const auto& m : impl::mutants()) {
            if (m.needs_devices) {
                // R11: only simulated devices can see it (props has none); impl_tests' device
                // race must catch it instead: ctest mutants:<name> (impl/CMakeLists.txt).
                ++by_devices;
                out << std::setw(2) << m.id << " " << std::left << std::setw(22) << m.name
                    << std::right << " left to impl_tests (needs devices: ctest mutants:" << m.name
                    << ")\n";
                continue;
            }
            ++total;
            impl::select_mutant(m.id);
            // Sequentially observable bugs: the state machine, at a larger budget than the
            // default run. Concurrency-only bugs: the parallel suite (no shrinking: a verdict
            // is all this needs).
            const Row r =
                m.needs_concurrency
                    ? parallel_row(a, a.parallel_cases != 0 ? a.parallel_cases : 60, false, nullptr)
                    : sequential_row(a, std::max(a.tests, 1000), nullptr);
            const bool hit = !r.passed;
            caught += hit;
            out << std::setw(2) << m.id << " " << std::left << std::setw(22) << m.name << std::right
                << (hit ? " caught" : " NOT CAUGHT") << " by "
                << (m.needs_concurrency ? "parallel" : "sequential") << " (" << r.tests
                << (m.needs_concurrency ? " cases" : " passing sequences first") << ", "
                << std::fixed << std::setprecision(1) << r.seconds << " s)\n";
            js.push_back({{"id", m.id}, {"name", m.name}, {"caught", hit}});
        }
        impl::select_mutant(0);
        out << "mutants caught " << caught << "/" << total;
        if (by_devices != 0) out << " (" << by_devices << " more need devices: impl_tests)";
        out << "\n";
        if (a.json) out << js.dump(2) << "\n";
        return caught == total ? 0 : 1;
    }
    if (a.mutant != 0 && !impl::select_mutant(a.mutant)) {
        out << "pviommu props: no mutant " << a.mutant << "\n";
        return 2;
    }
    std::vector<Row> rows;
    rows.push_back(sequential_row(a, a.tests, &out));
    if (a.parallel) rows.push_back(parallel_row(a, a.parallel_cases, true, &out));
    impl::select_mutant(0);
    if (a.json) {
        nlohmann::json js = nlohmann::json::array();
        for (const Row& r : rows)
            js.push_back({{"property", r.property},
                          {"tests", r.tests},
                          {"discarded", r.discarded},
                          {"passed", r.passed},
                          {"seconds", r.seconds},
                          {"detail", r.detail}});
        out << js.dump(2) << "\n";
    } else {
        print_table(rows, out);
    }
    for (const Row& r : rows)
        if (!r.passed) return 1;
    return 0;
}

}  // namespace cli
