#include "cli/bench_cmd.h"

#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "cli/diff_cmd.h"
#include "proofs/prove.h"
#include "props/parallel.h"
#include "props/sequential.h"

namespace cli {

namespace {

// Budgets: a few seconds in --smoke, about half a minute in --quick (no proofs), a few minutes in
// full.
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
    // Which phase runs, on stderr when it is a terminal (the tables themselves go to out, a line
    // at a time).
    const bool tty = Progress("", 0).shown();
    const auto phase = [tty](const char* what) {
        if (tty) std::fprintf(stderr, "bench: %s...\n", what);
    };
    phase("workloads W1-W4 on impl and its peers (minutes)");
    int rc = bench::run_bench(opt, out);
    phase("verification tools: property suites, then proofs");
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

    // Proof time per obligation at full width, as `pviommu prove`, one at a time (so each
    // figure is uncontended). Skipped in --smoke (a minute of solver time is not a smoke test)
    // and in --quick (issue 16: a quick run stays within about 3 minutes on 2 vCPUs).
    if (opt.smoke || opt.quick) {
        out << "  proofs: skipped in --" << (opt.smoke ? "smoke" : "quick")
            << " (the full run and `pviommu prove` time them)\n";
        return rc;
    }
    proofs::Options prove_opt;
    prove_opt.timeout_ms = 10000u;  // pviommu prove's default
    std::vector<double> secs;
    double total = 0;
    std::size_t proved = 0;
    std::string slowest;
    double slowest_s = -1;
    const auto names = proofs::obligation_names();
    Progress progress("bench: proof obligations", names.size());
    for (const auto& name : names) {
        const proofs::Result r = proofs::check_obligation(name, prove_opt);
        secs.push_back(r.seconds);
        total += r.seconds;
        proved += r.pass;
        if (r.seconds > slowest_s) {
            slowest_s = r.seconds;
            slowest = name;
        }
        out << "    prove " << std::left << std::setw(46) << name << std::right << std::fixed
            << std::setprecision(3) << std::setw(9) << r.seconds << " s"
            << (r.pass ? "" : "  NOT PROVED") << '\n';
        progress.update(secs.size());
    }
    std::sort(secs.begin(), secs.end());
    const double median = secs.empty() ? 0 : secs[secs.size() / 2];
    out << "  proofs (full width): " << proved << "/" << secs.size() << " proved in "
        << std::setprecision(1) << total << " s; median " << std::setprecision(3) << median
        << " s, slowest " << slowest << " " << slowest_s << " s\n";
    if (proved != secs.size()) rc = 1;
    return rc;
}

}  // namespace cli
