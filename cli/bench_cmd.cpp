#include "cli/bench_cmd.h"

#include <iomanip>
#include <ostream>
#include <sstream>

#include "props/parallel.h"
#include "props/sequential.h"

namespace cli {

namespace {

// Budgets: a few seconds in --smoke, about half a minute in --quick, a few minutes in full.
struct ToolBudget {
    int sequential_tests;
    std::uint64_t parallel_cases;
};
ToolBudget tool_budget(const bench::BenchOptions& o) {
    if (o.smoke) return {10, 2};
    if (o.quick) return {200, 20};
    return {1000, 200};
}

void row(std::ostream& out, const std::string& what, std::uint64_t n, const char* unit,
         double seconds, bool ok) {
    out << "  " << std::left << std::setw(40) << what << std::right << std::setw(10) << n << ' '
        << std::left << std::setw(10) << unit << std::right << std::fixed << std::setprecision(2)
        << std::setw(8) << seconds << " s" << std::setw(12) << std::setprecision(0)
        << (seconds > 0 ? static_cast<double>(n) / seconds : 0.0) << ' ' << unit << "/s"
        << (ok ? "" : "  FAILED") << '\n';
}

}  // namespace

int run_bench_command(const bench::BenchOptions& opt, std::ostream& out) {
    int rc = bench::run_bench(opt, out);
    const ToolBudget b = tool_budget(opt);
    out << "\nVerification tools (same run, seed " << opt.seed << "):\n";

    props::SequentialOptions so;
    so.seed = opt.seed;
    so.tests = b.sequential_tests;
    std::ostringstream seq_log;  // shown only on failure
    const auto s = props::run_sequential(so, seq_log);
    row(out, "props sequential: impl refines ref", s.commands, "commands", s.seconds, s.passed);
    if (!s.passed) {
        out << seq_log.str();
        rc = 1;
    }

    props::ParallelOptions po;
    po.seed = opt.seed;
    po.cases = b.parallel_cases;
    std::ostringstream par_log;
    const auto p = props::run_parallel(po, par_log);
    row(out, "props parallel: histories linearizable", p.histories, "histories", p.seconds,
        p.failed == 0);
    row(out, "props parallel: operations in histories", p.ops, "ops", p.seconds, p.failed == 0);
    if (p.failed != 0) {
        out << par_log.str();
        rc = 1;
    }
    return rc;
}

}  // namespace cli
