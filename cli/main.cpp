// pviommu: runs traces on the reference model, diffs ref against impl, and (as later layers
// land) properties, proofs and benchmarks. Exit status: 0 all good, 1 an expectation or check
// failed (run) or the models diverged (diff), 2 malformed input (nothing executed).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "bench/bench.h"
#include "cli/bench_cmd.h"
#include "cli/diff_cmd.h"
#include "cli/explain.h"
#include "cli/props_cmd.h"
#include "cli/prove_cmd.h"
#include "cli/report.h"
#include "impl/hypervisor.h"
#include "proofs/prove.h"
#include "props/parallel.h"
#include "props/sequential.h"
#include "ref/hypervisor.h"
#include "trace/runner.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kExitMalformed = 2;

trace::ModelFactory model_factory(const std::string& name) {
    if (name == "ref") return [](const spec::Host& h) { return ref::make(h); };
    if (name == "impl") return [](const spec::Host& h) { return impl::make(h); };
    return nullptr;
}

// The models `diff` compares: ref against `against` (impl, or a second ref for testing the
// diff itself). nullopt: that model is not built.
std::optional<cli::Models> diff_models(const std::string& against) {
    cli::Models m{model_factory("ref"), model_factory(against), "ref", against};
    if (!m.a || !m.b) return std::nullopt;
    if (m.name_a == m.name_b) m.name_b += "#2";
    return m;
}

// The verify campaign: fixed, so that verify is reproducible; `diff --random` explores.
constexpr std::uint64_t kVerifySeed = 1;
constexpr std::size_t kVerifyTraces = 200;
constexpr std::size_t kVerifySteps = 100;

struct FileResult {
    std::string file;
    int exit_code = 0;
    trace::Summary summary;
    std::string error;  // parse error text, if malformed
};

// Every file is reported, in the order given: a malformed or unreadable one gets its
// `FILE:LINE: message` on stderr (exit 2 overall) and the others still run (trace format
// section 6).
std::vector<FileResult> run_files(const std::vector<std::string>& files, const std::string& model,
                                  trace::RunOptions opt, std::ostream& out, bool quiet) {
    std::vector<FileResult> results;
    for (const auto& f : files) {
        auto parsed = trace::parse_file(f);
        if (auto* err = std::get_if<trace::ParseError>(&parsed)) {
            results.push_back({err->file, kExitMalformed, {}, err->text()});
            std::cerr << err->text() << "\n";
            continue;
        }
        const trace::Trace& t = std::get<trace::Trace>(parsed);
        // --check=every on ref: ref records the frames and IOMMU entries each statement
        // changes and the check after each statement covers those (spec::FrameLog); one full
        // check at the end.
        const bool incremental = opt.check == trace::Check::every && model == "ref";
        cli::RunModel m = cli::make_run_model(model, t.host, opt.explain, incremental);
        opt.hooks = m.hooks;
        FileResult r{t.file, 0, trace::run(t, *m.hv, opt, out), {}};
        r.exit_code = r.summary.exit_code();
        if (!quiet)
            out << t.file << ": " << r.summary.statements << " statements, " << r.summary.calls
                << " calls, " << r.summary.passed << " expectations passed, " << r.summary.failed
                << " failed" << (r.summary.fatal ? " (stopped)" : "") << "\n";
        results.push_back(std::move(r));
    }
    return results;
}

int worst(const std::vector<FileResult>& rs) {
    int w = 0;
    for (const auto& r : rs) w = std::max(w, r.exit_code);
    return w;
}

json to_json(const std::vector<FileResult>& rs) {
    json arr = json::array();
    for (const auto& r : rs) {
        json j{{"file", r.file}, {"exit", r.exit_code}};
        if (!r.error.empty()) {
            j["error"] = r.error;
        } else {
            j["statements"] = r.summary.statements;
            j["calls"] = r.summary.calls;
            j["passed"] = r.summary.passed;
            j["failed"] = r.summary.failed;
            j["stopped"] = r.summary.fatal;
            j["failures"] = r.summary.failures;
        }
        arr.push_back(j);
    }
    return arr;
}

std::vector<std::string> example_files(const std::string& dir) {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".trace") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

// `pviommu help`: the commands, one line each.
std::string command_list(CLI::App& app) {
    std::ostringstream os;
    os << app.get_description() << "\n\nUsage: pviommu COMMAND [OPTIONS] [ARGS]\n\nCommands:\n";
    for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; }))
        os << "  " << std::left << std::setw(8) << c->get_name() << c->get_description() << "\n";
    os << "\nOptions:\n  --version  print the version and exit\n\n"
          "`pviommu help COMMAND` or `pviommu COMMAND --help` shows a command's options.\n"
          "Exit status: 0 pass, 1 a check failed, 2 malformed input or usage.\n";
    return os.str();
}

}  // namespace

int main(int argc, char** argv) {
    // Line-buffered stdout, also into a pipe or a file: a long run shows each line as it comes.
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    // `--dump=FILTER` is `--dump` with a filter; plain `--dump` takes no value, so that
    // `--dump FILE` never swallows a file name.
    std::vector<std::string> args(argv, argv + argc);
    for (std::size_t i = 1; i < args.size(); ++i)
        if (args[i].rfind("--dump=", 0) == 0) {
            const std::string value = args[i].substr(7);
            args[i] = "--dump";
            args.insert(args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                        "--dump-filter=" + value);
            ++i;
        }
    std::vector<char*> argv2;
    for (auto& a : args) argv2.push_back(a.data());

    CLI::App app{
        "pviommu: an executable, checked model of the Xen PV IOMMU interface (M2B and "
        "frame reference counting)"};
    app.require_subcommand(0, 1);
    app.set_version_flag("--version",
                         std::string("pviommu ") + cli::kVersion + " (trace format version 2)");

    // run
    auto* run = app.add_subcommand(
        "run", "Run trace files; exit 0 all expectations hold, 1 one failed, 2 malformed input");
    std::vector<std::string> files;
    std::string model = "ref";
    bool verbose = false, dump = false, run_json = false, explain = false;
    std::string dump_filter, check = "every";
    run->add_option("FILE", files, "Trace files (spec/trace-format.md); - reads standard input")
        ->required();
    run->add_option("--model", model,
                    "Model to run on: ref (the reference model) or impl (lock-free)")
        ->check(CLI::IsMember({"ref", "impl"}));
    run->add_flag("-v,--verbose", verbose, "Print one line per statement with its outcome");
    run->add_flag("--dump", dump,
                  "Print the canonical state dump after each trace; --dump=FILTER only the lines "
                  "that name domain D (dom=D) and/or a frame in a range (mfn=M, mfn=LO-HI), "
                  "comma-separated; FILTER also narrows --explain");
    run->add_option("--dump-filter", dump_filter)->group("");
    run->add_flag("--explain", explain,
                  "After every statement: its outcome, for each op the check row that decided its "
                  "status (ref), and the state change (+ new, - gone, ~ changed dump lines)");
    run->add_option("--check", check,
                    "When to check every state invariant: every (after each statement, the "
                    "default), end (once, after the last), none")
        ->check(CLI::IsMember({"every", "end", "none"}));
    run->add_flag("--json", run_json,
                  "Print the results as one JSON object (failures included) instead of text");

    // verify
    auto* verify = app.add_subcommand(
        "verify",
        "Everything the project checks, in one command: every example on ref; with impl "
        "built, every example and a random campaign diffed ref against impl");
    std::string examples = PVIOMMU_EXAMPLES_DIR;
    bool verify_json = false;
    verify->add_option("--examples", examples, "Folder of example traces")
        ->check(CLI::ExistingDirectory);
    verify->add_flag("--json", verify_json, "Print the results as JSON");
    bool verify_no_prove = false;
    verify->add_flag("--no-prove", verify_no_prove,
                     "Skip the Z3 obligations (ctest runs them as the proofs:* tests)");
    std::string verify_html, bench_results = PVIOMMU_BENCH_RESULTS_DIR, prove_only;
    bool prove_small = false;
    std::uint64_t verify_cases = 0;
    verify->add_option("--html", verify_html,
                       "Also write everything found as one self-contained HTML page: the proof "
                       "matrix, the property mix and coverage, the concurrency results with a "
                       "history timeline, the benchmark plot (runs the parallel property too)");
    verify->add_option("--parallel-cases", verify_cases,
                       "Run the parallel linearizability property on N random cases (default "
                       "with --html: 10)");
    verify->add_option("--bench-results", bench_results,
                       "Folder whose newest *.svg the HTML report shows (default "
                       "bench/results)");
    verify->add_option("--prove-only", prove_only,
                       "Only the obligations whose name contains this text");
    verify->add_flag("--prove-small", prove_small,
                     "Inductive obligations at small width (faster, a weaker claim)");

    // diff
    auto* diff = app.add_subcommand(
        "diff",
        "Run traces on ref and impl in lockstep and report the first statement after which "
        "their outcomes or dumps differ; exit 0 same, 1 a divergence, 2 malformed input");
    std::vector<std::string> diff_files;
    std::size_t random_traces = 0, steps = 100;
    std::uint64_t seed = 0;
    std::string out_dir = ".", against = "impl";
    bool diff_json = false;
    auto* diff_files_opt = diff->add_option(
        "FILE", diff_files, "Trace files (spec/trace-format.md); - reads standard input");
    auto* random_opt =
        diff->add_option("--random", random_traces,
                         "Diff N random traces (seeds S, S+1, ...); shrink the first "
                         "divergence and write it to DIR/diverge-<seed>.trace");
    auto* seed_opt =
        diff->add_option("--seed", seed, "First seed (default: drawn at random, printed)");
    auto* steps_opt = diff->add_option("--steps", steps,
                                       "Statements per random trace after its world (default 100)");
    auto* out_opt =
        diff->add_option("--out", out_dir, "Folder for diverge-<seed>.trace (default: .)");
    diff->add_flag("--json", diff_json, "Print the results as JSON");
    // Hidden: ref against a second ref instance, to test the diff machinery itself.
    diff->add_option("--against", against, "Second model")
        ->check(CLI::IsMember({"impl", "ref"}))
        ->group("");
    diff_files_opt->excludes(random_opt);
    seed_opt->needs(random_opt);
    steps_opt->needs(random_opt);
    out_opt->needs(random_opt);

    // bench
    bench::BenchOptions bench_opt;
    auto* bench_cmd = app.add_subcommand(
        "bench",
        "Benchmark impl against its peers (ref+mutex, Xen-style, oneTBB, liburcu, "
        "libcuckoo) on workloads W1-W4, then the property suites' throughput; see "
        "bench/RESULTS.md");
    bench_cmd->add_flag("--quick", bench_opt.quick, "Sizes 1e3-1e5, fewer repetitions");
    bench_cmd->add_flag("--smoke", bench_opt.smoke, "A few seconds: checks it runs, not timings");
    bench_cmd->add_option("--csv", bench_opt.csv, "Write one row per cell to FILE");
    bench_cmd->add_option("--svg", bench_opt.svg, "Write the ns/op-vs-size plot to FILE");
    bench_cmd->add_option(
        "--json", bench_opt.json,
        "Write every cell (ns/op, RMWs or locks per op, scaling) as JSON to FILE");
    bench_cmd->add_option("--budget-ms", bench_opt.budget_ms,
                          "Time budget of one repetition in ms (W1, W2, W4)");
    bench_cmd->add_option("--seed", bench_opt.seed, "Seed of all randomness (default 1)");
    bench_cmd->add_option("--max-size", bench_opt.max_size,
                          "Largest table size (10000000 adds 1e7)");
    bench_cmd->add_option("--reps", bench_opt.reps, "Repetitions per cell");
    bench_cmd->add_option("--workloads", bench_opt.workloads,
                          "Only workloads whose name starts with one of these (W1,W3)");
    bench_cmd->add_option("--contenders", bench_opt.contenders,
                          "Only impl and these peers (xen-style,tbb); targets are then skipped");

    // props
    cli::PropsArgs props_args;
    auto* props = cli::add_props_command(app, props_args);

    // prove
    cli::ProveArgs prove_args;
    auto* prove = cli::add_prove_command(app, prove_args);

    auto* help = app.add_subcommand("help", "Show help for pviommu or one subcommand");
    std::string help_on;
    help->add_option("SUBCOMMAND", help_on, "Subcommand");

    try {
        app.parse(static_cast<int>(argv2.size()), argv2.data());
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : kExitMalformed;
    }

    if (*help || app.get_subcommands().empty()) {
        if (!help_on.empty()) {
            try {
                std::cout << app.get_subcommand(help_on)->help();
            } catch (const CLI::OptionNotFound&) {
                std::cerr << "pviommu: no command '" << help_on << "' (pviommu help lists them)\n";
                return kExitMalformed;
            }
        } else {
            std::cout << command_list(app);
        }
        return 0;
    }

    if (*props) return cli::run_props(props_args, std::cout);
    if (*bench_cmd) return cli::run_bench_command(bench_opt, std::cout);
    if (*prove) return cli::run_prove(prove_args, std::cout);

    if (*run) {
        trace::RunOptions opt;
        opt.verbose = verbose;
        opt.dump = dump;
        opt.explain = explain;
        opt.check = check == "end"    ? trace::Check::end
                    : check == "none" ? trace::Check::none
                                      : trace::Check::every;
        if (auto err = trace::parse_dump_filter(dump_filter, opt.filter)) {
            std::cerr << "pviommu run: --dump=" << dump_filter << ": " << *err << "\n";
            return kExitMalformed;
        }
        if (explain && model != "ref")
            std::cerr << "pviommu run: --explain names check rows only on --model=ref\n";
        // --json: everything else the run would print stays out of stdout (the failures are in
        // the JSON), so stdout is exactly one JSON document on every path.
        std::ostringstream sink;
        auto results = run_files(files, model, opt, run_json ? sink : std::cout, run_json);
        const int rc = worst(results);
        if (run_json)
            std::cout
                << json{{"version", cli::kVersion}, {"command", "run"}, {"model", model},
                        {"check", check},           {"exit", rc},       {"files", to_json(results)}}
                       .dump(2)
                << "\n";
        return rc;
    }

    if (*diff) {
        const auto models = diff_models(against);
        if (!models) {
            std::cerr << "pviommu diff: model " << against << " is not built\n";
            return kExitMalformed;
        }
        if (random_opt->count() != 0) {
            cli::Campaign c;
            c.traces = random_traces;
            c.steps = steps;
            c.out_dir = out_dir;
            if (seed_opt->count() != 0) {
                c.seed = seed;
            } else {
                std::random_device rd;
                c.seed = (std::uint64_t{rd()} << 32) | rd();
            }
            cli::Progress progress("diff --random: traces", c.traces);
            c.progress = [&progress](std::size_t done) { progress.update(done); };
            const auto r = cli::run_campaign(c, *models);
            if (diff_json)
                std::cout << cli::to_json(c, r, *models).dump(2) << "\n";
            else
                cli::print_campaign(c, r, *models, std::cout);
            return r.exit_code();
        }
        if (diff_files.empty()) {
            std::cerr << "pviommu diff: give trace files or --random=N\n";
            return kExitMalformed;
        }
        const auto results = cli::diff_files(diff_files, *models);
        int rc = 0;
        for (const auto& r : results) {
            rc = std::max(rc, r.exit_code);
            if (!r.error.empty()) std::cerr << r.error << "\n";
        }
        if (diff_json)
            std::cout << json{{"version", cli::kVersion},
                              {"command", "diff"},
                              {"exit", rc},
                              {"files", cli::to_json(results, *models)}}
                             .dump(2)
                      << "\n";
        else
            for (const auto& r : results)
                if (r.result) cli::print_diff(*r.result, *models, std::cout);
        return rc;
    }

    if (*verify) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto ex = example_files(examples);
        // Which phase runs, on stderr when it is a terminal.
        const bool tty = cli::Progress("", 0).shown();
        const auto phase = [tty](const char* what) {
            if (tty) std::fprintf(stderr, "verify: %s...\n", what);
        };
        phase("examples on ref, then diffed ref against impl");
        std::ostringstream detail;
        auto results = run_files(ex, "ref", trace::RunOptions{}, detail, true);
        std::size_t ok = 0;
        for (const auto& r : results) ok += r.exit_code == 0;
        bool pass = !ex.empty() && ok == results.size() && results.size() == ex.size();

        // The diff phases need impl.
        const auto models = diff_models("impl");
        std::vector<cli::FileDiff> diffs;
        std::size_t same = 0;
        cli::Campaign campaign{kVerifySeed, kVerifyTraces, kVerifySteps, std::nullopt, {}};
        std::optional<cli::CampaignResult> random;
        if (models) {
            diffs = cli::diff_files(ex, *models);
            for (const auto& d : diffs) same += d.exit_code == 0;
            pass = pass && same == ex.size() && diffs.size() == ex.size();
            cli::Progress progress("verify: diff random traces", campaign.traces);
            campaign.progress = [&progress](std::size_t done) { progress.update(done); };
            random = cli::run_campaign(campaign, *models);
            campaign.progress = nullptr;
            pass = pass && random->exit_code() == 0;
        }
        // The sequential property suite at a default budget.
        props::SequentialOptions popt;
        popt.seed = 20151117;
        popt.tests = 100;
        std::ostringstream props_log;
        phase("props sequential");
        const auto props_result = props::run_sequential(popt, props_log);
        pass = pass && props_result.passed;
        // The parallel linearizability property: with --html (its timeline) or when asked.
        const bool html = !verify_html.empty();
        if (html && verify_cases == 0) verify_cases = 10;
        std::optional<props::ParallelSummary> parallel;
        std::ostringstream parallel_log;
        if (verify_cases != 0 && models) {
            phase("props parallel (linearizability)");
            props::ParallelOptions par;
            par.seed = popt.seed;
            par.cases = verify_cases;
            parallel = props::run_parallel(par, parallel_log);
            pass = pass && parallel->passed();
        }
        // The Z3 proof obligations: the same run as `pviommu prove`, or a subset when asked
        // (--prove-only, --prove-small); the report needs every result, not only the line.
        std::string prove_line = "prove: skipped (--no-prove)";
        std::optional<std::vector<proofs::Result>> proof_results;
        if (!verify_no_prove) {
            phase("proof obligations (Z3)");
            if (!html && prove_only.empty() && !prove_small) {
                pass = cli::prove_summary(prove_line) && pass;
            } else {
                const auto tp = std::chrono::steady_clock::now();
                std::vector<std::string> names;
                for (const auto& n : proofs::obligation_names())
                    if (n.find(prove_only) != std::string::npos) names.push_back(n);
                proofs::Options po;
                po.small = prove_small;
                proof_results = proofs::check_obligations(names, po, proofs::default_jobs());
                std::size_t proved = 0;
                std::string failed;
                for (const auto& r : *proof_results) {
                    proved += r.pass ? 1 : 0;
                    if (!r.pass) failed += " " + r.name;
                }
                std::ostringstream line;
                line << "obligations proved " << proved << "/" << proof_results->size() << " ("
                     << (prove_small ? "small" : "full") << " width"
                     << (prove_only.empty() ? "" : ", only *" + prove_only + "*") << ") in "
                     << std::fixed << std::setprecision(1)
                     << std::chrono::duration<double>(std::chrono::steady_clock::now() - tp).count()
                     << " s" << (failed.empty() ? "" : " (FAILED:" + failed + ")");
                prove_line = line.str();
                pass = pass && !proof_results->empty() && proved == proof_results->size();
            }
        }
        if (html) {
            phase("HTML report");
            cli::ReportData rd;
            rd.version = cli::kVersion;
            rd.proofs = std::move(proof_results);
            rd.prove_line = prove_line;
            rd.prove_widths = proofs::widths_text(prove_small);
            rd.sequential = props_result;
            rd.sequential_tests = popt.tests;
            rd.parallel = parallel;
            if (parallel && parallel->first_failure_history) {
                rd.history = parallel->first_failure_history;
                rd.history_linearizable = false;
                rd.history_title =
                    "case seed " + std::to_string(parallel->first_failed_case) + " as shrunk";
                rd.history_checker = parallel->first_failure_report;
            } else if (models) {
                cli::sample_history(rd, popt.seed);
            }
            if (models) {
                phase("HTML report: a planted bug's history");
                cli::mutant_history(rd, popt.seed, 5.0);
            }
            std::size_t exps = 0;
            for (const auto& r : results) exps += r.summary.passed;
            rd.phases.push_back({"examples on ref", ok == ex.size() && !ex.empty(),
                                 std::to_string(ok) + "/" + std::to_string(ex.size()) +
                                     " traces pass (" + std::to_string(exps) + " expectations)"});
            if (models) {
                rd.phases.push_back({"diff examples", same == ex.size(),
                                     std::to_string(same) + "/" + std::to_string(ex.size()) +
                                         " traces the same on ref and impl"});
                rd.phases.push_back({"diff random", random->exit_code() == 0,
                                     std::to_string(random->traces_run) + "/" +
                                         std::to_string(campaign.traces) + " random traces x " +
                                         std::to_string(campaign.steps) + " steps from seed " +
                                         std::to_string(campaign.seed) + ", " +
                                         std::to_string(random->statements) + " statements"});
            }
            rd.phases.push_back({"props sequential", props_result.passed,
                                 std::to_string(props_result.tests) + "/" +
                                     std::to_string(popt.tests) + " sequences, " +
                                     std::to_string(props_result.commands) + " commands"});
            if (parallel)
                rd.phases.push_back({"props parallel", parallel->passed(),
                                     std::to_string(parallel->histories) + " histories, " +
                                         std::to_string(parallel->failed) + " not linearizable; " +
                                         parallel->overlap.text()});
            rd.phases.push_back(
                {"proofs",
                 verify_no_prove || (rd.proofs && prove_line.find("FAILED") == std::string::npos),
                 prove_line});
            const std::string svg = cli::newest_svg(bench_results);
            if (!svg.empty()) {
                std::ifstream in(svg, std::ios::binary);
                rd.bench_svg.assign(std::istreambuf_iterator<char>(in), {});
                rd.bench_svg_path = bench_results == PVIOMMU_BENCH_RESULTS_DIR
                                        ? "bench/results/" + fs::path(svg).filename().string()
                                        : svg;
            }
            rd.pass = pass;
            rd.seconds =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::ofstream page(verify_html, std::ios::binary);
            page << cli::html_report(rd);
            if (!page) {
                std::cerr << "pviommu verify: cannot write " << verify_html << ": "
                          << std::strerror(errno) << "\n";
                return kExitMalformed;
            }
        }
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (verify_json) {
            json j{{"version", cli::kVersion},
                   {"examples", to_json(results)},
                   {"passed", pass},
                   {"seconds", secs}};
            j["proofs"] = prove_line;
            j["props_sequential"] = {{"tests", props_result.tests},
                                     {"passed", props_result.passed},
                                     {"commands", props_result.commands},
                                     {"seconds", props_result.seconds}};
            const json skipped = "skipped: model impl is not built";
            j["diff_examples"] = models ? cli::to_json(diffs, *models) : skipped;
            j["diff_random"] = models ? cli::to_json(campaign, *random, *models) : skipped;
            if (parallel)
                j["props_parallel"] = {{"cases", parallel->cases},
                                       {"histories", parallel->histories},
                                       {"not_linearizable", parallel->failed},
                                       {"passed", parallel->passed()},
                                       {"overlap", parallel->overlap.text()},
                                       {"seconds", parallel->seconds}};
            if (html) j["html"] = verify_html;
            std::cout << j.dump(2) << "\n";
        } else {
            std::cout << "pviommu verify\n";
            std::cout << "  examples on ref      " << ok << "/" << ex.size() << " traces pass";
            std::size_t exps = 0;
            for (const auto& r : results) exps += r.summary.passed;
            std::cout << " (" << exps << " expectations)\n";
            if (ok != results.size() || results.size() != ex.size()) std::cout << detail.str();
            for (const auto& r : results)
                if (r.exit_code != 0) std::cout << "    FAILED " << r.file << "\n";
            if (!models) {
                std::cout << "  diff examples        skipped (model impl is not built)\n";
                std::cout << "  diff random          skipped (model impl is not built)\n";
            } else {
                std::cout << "  diff examples        " << same << "/" << ex.size()
                          << " traces the same on ref and impl\n";
                for (const auto& d : diffs)
                    if (d.exit_code != 0 && d.result)
                        cli::print_diff(*d.result, *models, std::cout);
                std::cout << "  diff random          " << random->traces_run << "/"
                          << campaign.traces << " traces x " << campaign.steps
                          << " steps from seed " << campaign.seed
                          << (random->exit_code() == 0 ? ": no divergence" : ": FAILED") << " ("
                          << random->statements << " statements, " << random->seconds << " s)\n";
                if (random->exit_code() != 0)
                    cli::print_campaign(campaign, *random, *models, std::cout);
            }
            std::cout << "  props sequential     " << props_result.tests << "/" << popt.tests
                      << " RapidCheck sequences of impl against ref"
                      << (props_result.passed ? " pass" : ": FAILED") << " ("
                      << props_result.commands << " commands, " << props_result.seconds << " s)\n";
            if (!props_result.passed) std::cout << props_log.str();
            if (parallel) {
                std::cout << "  props parallel       " << parallel->cases << " cases, "
                          << parallel->histories << " histories, " << parallel->failed
                          << " not linearizable, " << parallel->overlap.text()
                          << (parallel->passed() ? "" : ": FAILED") << "\n";
                if (!parallel->passed()) std::cout << parallel_log.str();
            }
            std::cout << "  proofs               " << prove_line << "\n";
            if (html) std::cout << "  report               " << verify_html << "\n";
            std::cout << (pass ? "verify: PASS" : "verify: FAIL") << " in " << secs << " s\n";
        }
        return pass ? 0 : 1;
    }
    return 0;
}
