#include "cli/props_cmd.h"

#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "cli/diff_cmd.h"
#include "cli/explain.h"
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
    if (failure_out != nullptr && !r.passed) {
        *failure_out << log.str();
        // The shrunk failure as `run --explain` renders a trace, then the divergence.
        (void)explain_failure(a.failure_trace, *failure_out);
    }
    std::ostringstream d;
    d << r.commands << " commands, " << std::fixed << std::setprecision(0)
      << (r.seconds > 0 ? static_cast<double>(r.commands) / r.seconds : 0) << " commands/s";
    return Row{"sequential: impl refines ref", r.tests, r.discarded, r.passed, r.seconds, d.str()};
}

// The parallel property: every history linearizable AND at least kMinOverlapShare of them
// overlapping (props/parallel.h); the detail gives the overlap share and mean.
Row parallel_row(const PropsArgs& a, std::uint64_t cases, bool shrink, std::ostream* failure_out) {
    props::ParallelOptions o;
    o.seed = a.seed;
    o.cases = cases;
    o.shrink = shrink;
    std::ostringstream log;
    const auto r = props::run_parallel(o, log);
    if (failure_out != nullptr && r.failed != 0) *failure_out << log.str();
    if (failure_out != nullptr && r.failed == 0 && !r.overlap.ok())
        *failure_out << "parallel: too few histories overlap: " << r.overlap.text() << "\n";
    std::ostringstream d;
    d << r.histories << " histories, " << std::fixed << std::setprecision(1)
      << (r.seconds > 0 ? static_cast<double>(r.cases) / r.seconds : 0) << " cases/s; "
      << r.overlap.text();
    return Row{"parallel: histories linearizable",
               static_cast<int>(r.cases),
               0,
               r.passed(),
               r.seconds,
               d.str()};
}

// One concurrency mutant's verdict, as `concurrency-mutant NAME caught by DETAIL` / `MISSED`.
struct ConcurrencyVerdict {
    std::string name;  // impl:NAME (impl/mutants.h) or relacy:NAME (relacy_tests --mutants)
    bool caught = false;
    bool excluded = false;  // not run, and not counted (detail says why)
    std::string detail;
};

// An impl mutant (selected) hunted by the overlapping-history checker: random concurrent
// cases from the fixed seed, stopping at the first history that is not linearizable; at most
// --cases cases (default three times the budget's: ci 180, full 6000) of 8 runs each.
ConcurrencyVerdict history_hunt(const PropsArgs& a, std::string_view name) {
    props::ParallelOptions o;
    o.seed = a.seed;
    o.cases = a.parallel_cases != 0 ? static_cast<std::uint64_t>(a.parallel_cases)
                                    : 3 * props::parallel_budget().cases;
    o.repetitions = 8;
    o.shrink = false;
    o.stop_at_first_failure = true;
    std::ostringstream log;
    const props::ParallelSummary r = props::run_parallel(o, log);
    std::ostringstream d;
    d << "overlapping histories (";
    if (r.failed != 0)
        d << "case " << r.cases << " of at most " << o.cases << ", case seed "
          << r.first_failed_case;
    else
        d << o.cases << " cases, " << r.histories << " histories";
    d << ", " << std::fixed << std::setprecision(1) << 100 * r.overlap.share() << "% overlapping, "
      << r.seconds << " s)";
    return {"impl:" + std::string(name), r.failed != 0, false, d.str()};
}

// The directory of this executable (the build tree's root: pviommu is left there).
std::filesystem::path exe_dir() {
    std::error_code ec;
    const std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path(".") : p.parent_path();
}

// Runs a command, its stdout and stderr as lines; the exit status (-1: could not run it).
int run_lines(const std::string& cmd, std::vector<std::string>& lines) {
    FILE* f = popen((cmd + " 2>&1").c_str(), "r");
    if (f == nullptr) return -1;
    std::string line;
    char buf[512];
    while (std::fgets(buf, sizeof buf, f) != nullptr) {
        line += buf;
        if (!line.empty() && line.back() == '\n') {
            line.pop_back();
            lines.push_back(std::move(line));
            line.clear();
        }
    }
    if (!line.empty()) lines.push_back(std::move(line));
    const int st = pclose(f);
    return st == -1 ? -1 : (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

std::string quoted(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

// A needs_devices mutant: impl_tests' device race for it (impl/tests/iotlb_test.cpp), run from
// the impl_tests beside this executable; excluded with the reason when there is none.
ConcurrencyVerdict device_check(std::string_view name, std::ostream& out) {
    ConcurrencyVerdict v{"impl:" + std::string(name), false, false, {}};
    const std::filesystem::path bin = exe_dir() / "impl" / "impl_tests";
    if (!std::filesystem::exists(bin)) {
        v.excluded = true;
        v.detail = "needs devices and " + bin.string() +
                   " is not built (ctest mutants:" + std::string(name) + " runs it)";
        return v;
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<std::string> lines;
    const int st = run_lines(
        quoted(bin) + " '--test-case=iotlb race: planted bug " + std::string(name) + "*'", lines);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    v.caught = st == 0;
    std::ostringstream d;
    d << "impl_tests' device race (iotlb_test.cpp, exit " << st << ", " << std::fixed
      << std::setprecision(1) << secs << " s)";
    v.detail = d.str();
    if (!v.caught)
        for (const std::string& l : lines) out << "  impl_tests: " << l << "\n";
    return v;
}

// relacy_tests --mutants (impl/relacy/main.cpp), run from beside this executable's build tree
// (impl/relacy/relacy_tests): its `concurrency-mutant NAME caught by ...` / `MISSED` lines,
// renamed relacy:NAME. Absent (a build without relacy-dev or with a sanitizer): nothing, said
// so. Present but without a mutant line: one missed verdict (the sweep did not run).
std::vector<ConcurrencyVerdict> relacy_sweep(std::ostream& out) {
    std::vector<ConcurrencyVerdict> vs;
    const std::filesystem::path bin = exe_dir() / "impl" / "relacy" / "relacy_tests";
    if (!std::filesystem::exists(bin)) {
        out << "relacy: " << bin.string()
            << " is not built (needs relacy-dev, no sanitizer): Relacy's mutants not run\n";
        return vs;
    }
    std::vector<std::string> lines;
    const int st = run_lines(quoted(bin) + " --mutants", lines);
    const std::string tag = "concurrency-mutant ";
    for (const std::string& l : lines) {
        if (l.rfind(tag, 0) != 0) continue;
        const std::string rest = l.substr(tag.size());
        const std::size_t sp = rest.find(' ');
        ConcurrencyVerdict v;
        v.name = "relacy:" + rest.substr(0, sp);
        const std::string tail = sp == std::string::npos ? "" : rest.substr(sp + 1);
        const std::string by = "caught by ";
        v.caught = tail.rfind(by, 0) == 0;
        v.detail =
            "Relacy: " + (v.caught ? tail.substr(by.size()) : tail.substr(tail.find(' ') + 1));
        vs.push_back(std::move(v));
    }
    if (vs.empty()) {
        ConcurrencyVerdict v{
            "relacy:sweep", false, false,
            "relacy_tests --mutants printed no mutant line (exit " + std::to_string(st) + ")"};
        for (const std::string& l : lines) out << "  relacy_tests: " << l << "\n";
        vs.push_back(std::move(v));
    }
    return vs;
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
                  "Concurrent cases (default: PVIOMMU_BUDGET's, ci 60, full 2000; with "
                  "--mutants, the most each concurrency mutant is hunted with: 180, 6000)");
    c->add_option("--mutant", a.mutant, "Run against planted bug K (see impl/mutants.h)");
    c->add_flag("--mutants", a.mutants,
                "Run against every planted bug: impl's (sequential ones by the state machine, "
                "concurrency ones by the overlapping-history checker, the device one by "
                "impl_tests' race), then relacy_tests --mutants if built; last lines: mutants "
                "caught K/N, concurrency mutants caught K/N");
    c->add_option("--failure-trace", a.failure_trace,
                  "Where a shrunk failure is written as a trace");
    c->add_flag("--json", a.json, "Print the results as JSON");
    return c;
}

int run_props(const PropsArgs& a, std::ostream& stdout_) {
    // --json: stdout is exactly one JSON document; what the text run prints goes into it as
    // "log" lines instead.
    std::ostringstream log;
    std::ostream& out = a.json ? log : stdout_;
    const auto log_lines = [&log]() {
        nlohmann::json lines = nlohmann::json::array();
        std::istringstream is(log.str());
        for (std::string l; std::getline(is, l);) lines.push_back(l);
        return lines;
    };
    if ((a.mutants || a.mutant != 0) && !impl::mutants_compiled()) {
        const char* msg =
            "pviommu props: this build carries no mutants (configure with -DPVIOMMU_MUTANTS=ON)";
        if (a.json)
            stdout_ << nlohmann::json{{"version", kVersion},
                                      {"command", "props"},
                                      {"exit", 2},
                                      {"error", msg}}
                           .dump(2)
                    << "\n";
        else
            out << msg << "\n";
        return 2;
    }
    if (a.mutants) {
        int caught = 0, total = 0;
        nlohmann::json js = nlohmann::json::array();
        int by_devices = 0;
        std::vector<ConcurrencyVerdict> conc;
        // Text mode prints a line per mutant; --json only at the end: progress on stderr then.
        std::optional<Progress> progress;
        if (a.json) progress.emplace("props --mutants", impl::mutants().size());
        std::size_t done = 0;
        for (const auto& m : impl::mutants()) {
            if (progress) progress->update(done++);
            if (m.needs_devices) {
                // R11: only simulated devices can see it (props has none); impl_tests' device
                // race must catch it instead: ctest mutants:<name> (impl/CMakeLists.txt).
                ++by_devices;
                out << std::setw(2) << m.id << " " << std::left << std::setw(22) << m.name
                    << std::right << " left to impl_tests (needs devices: ctest mutants:" << m.name
                    << ")\n";
                conc.push_back(device_check(m.name, out));
                continue;
            }
            ++total;
            impl::select_mutant(m.id);
            // Sequentially observable bugs: the state machine, at a larger budget than the
            // default run. Concurrency-only bugs: the overlapping-history checker.
            bool hit = false;
            std::string by;
            if (m.needs_concurrency) {
                const ConcurrencyVerdict v = history_hunt(a, m.name);
                hit = v.caught;
                by = v.detail;
                conc.push_back(v);
            } else {
                const Row r = sequential_row(a, std::max(a.tests, 1000), nullptr);
                hit = !r.passed;
                std::ostringstream d;
                d << "sequential (" << r.tests << " passing sequences first, " << std::fixed
                  << std::setprecision(1) << r.seconds << " s)";
                by = d.str();
            }
            caught += hit;
            out << std::setw(2) << m.id << " " << std::left << std::setw(22) << m.name << std::right
                << (hit ? " caught by " : " NOT CAUGHT by ") << by << "\n";
            out.flush();
            js.push_back({{"id", m.id}, {"name", m.name}, {"caught", hit}});
        }
        impl::select_mutant(0);
        out << "mutants caught " << caught << "/" << total;
        if (by_devices != 0) out << " (" << by_devices << " more need devices: impl_tests)";
        out << "\n";
        // The concurrency mutants: impl's (above, and the device race), then Relacy's.
        for (ConcurrencyVerdict& v : relacy_sweep(out)) conc.push_back(std::move(v));
        int conc_caught = 0, conc_total = 0;
        for (const ConcurrencyVerdict& v : conc) {
            out << "concurrency-mutant " << v.name;
            if (v.excluded) {
                out << " not counted: " << v.detail << "\n";
                continue;
            }
            ++conc_total;
            conc_caught += v.caught ? 1 : 0;
            out << (v.caught ? " caught by " : " MISSED ") << v.detail << "\n";
        }
        out << "concurrency mutants caught " << conc_caught << "/" << conc_total << "\n";
        const int rc = caught == total && conc_caught == conc_total ? 0 : 1;
        if (a.json) {
            nlohmann::json cj = nlohmann::json::array();
            for (const ConcurrencyVerdict& v : conc)
                cj.push_back({{"name", v.name},
                              {"caught", v.caught},
                              {"counted", !v.excluded},
                              {"detail", v.detail}});
            stdout_ << nlohmann::json{{"version", kVersion},
                                      {"command", "props --mutants"},
                                      {"exit", rc},
                                      {"mutants", js},
                                      {"caught", caught},
                                      {"total", total},
                                      {"concurrency_mutants", cj},
                                      {"concurrency_caught", conc_caught},
                                      {"concurrency_total", conc_total},
                                      {"log", log_lines()}}
                           .dump(2)
                    << "\n";
        }
        return rc;
    }
    if (a.mutant != 0 && !impl::select_mutant(a.mutant)) {
        if (a.json)
            stdout_ << nlohmann::json{{"version", kVersion},
                                      {"command", "props"},
                                      {"exit", 2},
                                      {"error", "no mutant " + std::to_string(a.mutant)}}
                           .dump(2)
                    << "\n";
        else
            out << "pviommu props: no mutant " << a.mutant << "\n";
        return 2;
    }
    std::vector<Row> rows;
    rows.push_back(sequential_row(a, a.tests, &out));
    if (a.parallel) rows.push_back(parallel_row(a, a.parallel_cases, true, &out));
    impl::select_mutant(0);
    int rc = 0;
    for (const Row& r : rows)
        if (!r.passed) rc = 1;
    if (a.json) {
        nlohmann::json js = nlohmann::json::array();
        for (const Row& r : rows)
            js.push_back({{"property", r.property},
                          {"tests", r.tests},
                          {"discarded", r.discarded},
                          {"passed", r.passed},
                          {"seconds", r.seconds},
                          {"detail", r.detail}});
        stdout_ << nlohmann::json{{"version", kVersion}, {"command", "props"}, {"seed", a.seed},
                                  {"exit", rc},          {"properties", js},   {"log", log_lines()}}
                       .dump(2)
                << "\n";
    } else {
        print_table(rows, out);
    }
    return rc;
}

}  // namespace cli
