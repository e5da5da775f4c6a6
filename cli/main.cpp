// pviommu: runs traces on the reference model, diffs ref against impl, and (as later layers
// land) properties, proofs and benchmarks. Exit status: 0 all good, 1 an expectation or check
// failed (run) or the models diverged (diff), 2 malformed input (nothing executed).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "bench/bench.h"
#include "cli/bench_cmd.h"
#include "cli/diff_cmd.h"
#include "cli/props_cmd.h"
#include "cli/prove_cmd.h"
#include "impl/hypervisor.h"
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

// Parses every file first: if any is malformed, nothing runs (TRACE-FORMAT).
std::vector<FileResult> run_files(const std::vector<std::string>& files, const std::string& model,
                                  const trace::RunOptions& opt, std::ostream& out, bool quiet) {
    std::vector<FileResult> results;
    std::vector<trace::Trace> traces;
    bool malformed = false;
    for (const auto& f : files) {
        auto parsed = trace::parse_file(f);
        if (auto* err = std::get_if<trace::ParseError>(&parsed)) {
            results.push_back({f, kExitMalformed, {}, err->text()});
            std::cerr << err->text() << "\n";
            malformed = true;
        } else {
            traces.push_back(std::move(std::get<trace::Trace>(parsed)));
        }
    }
    if (malformed) return results;
    const auto factory = model_factory(model);
    for (const auto& t : traces) {
        auto hv = factory(t.host);
        FileResult r{t.file, 0, trace::run(t, *hv, opt, out), {}};
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

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{
        "pviommu: an executable, checked model of the Xen PV IOMMU interface (M2B and "
        "frame reference counting)"};
    app.require_subcommand(0, 1);

    // run
    auto* run = app.add_subcommand(
        "run", "Run trace files; exit 0 all expectations hold, 1 one failed, 2 malformed input");
    std::vector<std::string> files;
    std::string model = "ref";
    bool verbose = false, dump = false, run_json = false;
    run->add_option("FILE", files, "Trace files (TRACE-FORMAT)")->required();
    run->add_option("--model", model,
                    "Model to run on: ref (the reference model) or impl (lock-free)")
        ->check(CLI::IsMember({"ref", "impl"}));
    run->add_flag("-v,--verbose", verbose, "Print one line per statement with its outcome");
    run->add_flag("--dump", dump, "Print the canonical state dump after each trace");
    run->add_flag("--json", run_json, "Print the per-file summary as JSON");

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
    auto* diff_files_opt = diff->add_option("FILE", diff_files, "Trace files (TRACE-FORMAT)");
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
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : kExitMalformed;
    }

    if (*help || app.get_subcommands().empty()) {
        if (!help_on.empty()) {
            try {
                std::cout << app.get_subcommand(help_on)->help();
            } catch (const CLI::OptionNotFound&) {
                std::cerr << "pviommu: no subcommand '" << help_on << "'\n";
                return kExitMalformed;
            }
        } else {
            std::cout << app.help();
        }
        return 0;
    }

    if (*props) return cli::run_props(props_args, std::cout);
    if (*bench_cmd) return cli::run_bench_command(bench_opt, std::cout);
    if (*prove) return cli::run_prove(prove_args, std::cout);

    if (*run) {
        trace::RunOptions opt{verbose, dump};
        auto results = run_files(files, model, opt, std::cout, run_json);
        if (run_json) std::cout << to_json(results).dump(2) << "\n";
        return worst(results);
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
            std::cout << cli::to_json(results, *models).dump(2) << "\n";
        else
            for (const auto& r : results)
                if (r.result) cli::print_diff(*r.result, *models, std::cout);
        return rc;
    }

    if (*verify) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto ex = example_files(examples);
        std::ostringstream detail;
        auto results = run_files(ex, "ref", trace::RunOptions{}, detail, true);
        std::size_t ok = 0;
        for (const auto& r : results) ok += r.exit_code == 0;
        bool pass = !ex.empty() && ok == results.size() && results.size() == ex.size();

        // The diff phases need impl.
        const auto models = diff_models("impl");
        std::vector<cli::FileDiff> diffs;
        std::size_t same = 0;
        cli::Campaign campaign{kVerifySeed, kVerifyTraces, kVerifySteps, std::nullopt};
        std::optional<cli::CampaignResult> random;
        if (models) {
            diffs = cli::diff_files(ex, *models);
            for (const auto& d : diffs) same += d.exit_code == 0;
            pass = pass && same == ex.size() && diffs.size() == ex.size();
            random = cli::run_campaign(campaign, *models);
            pass = pass && random->exit_code() == 0;
        }
        // The sequential property suite at a default budget (issue 4).
        props::SequentialOptions popt;
        popt.seed = 20151117;
        popt.tests = 100;
        std::ostringstream props_log;
        const auto props_result = props::run_sequential(popt, props_log);
        pass = pass && props_result.passed;
        // The Z3 proof obligations (issue 5).
        std::string prove_line = "prove: skipped (--no-prove)";
        if (!verify_no_prove) pass = cli::prove_summary(prove_line) && pass;
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (verify_json) {
            json j{{"examples", to_json(results)}, {"passed", pass}, {"seconds", secs}};
            j["proofs"] = prove_line;
            j["props_sequential"] = {{"tests", props_result.tests},
                                     {"passed", props_result.passed},
                                     {"commands", props_result.commands},
                                     {"seconds", props_result.seconds}};
            const json skipped = "skipped: model impl is not built";
            j["diff_examples"] = models ? cli::to_json(diffs, *models) : skipped;
            j["diff_random"] = models ? cli::to_json(campaign, *random, *models) : skipped;
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
            std::cout << "  proofs               " << prove_line << "\n";
            std::cout << (pass ? "verify: PASS" : "verify: FAIL") << " in " << secs << " s\n";
        }
        return pass ? 0 : 1;
    }
    return 0;
}
