// pviommu: runs traces on the reference model, and (as later layers land) diffs, properties,
// proofs and benchmarks. Exit status: 0 all good, 1 an expectation or check failed, 2 malformed
// input (nothing executed).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ref/hypervisor.h"
#include "trace/runner.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kExitMalformed = 2;

trace::ModelFactory model_factory(const std::string& name) {
    if (name == "ref") return [](const spec::Host& h) { return ref::make(h); };
    return nullptr;
}

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
    CLI::App app{"pviommu: an executable, checked model of the Xen PV IOMMU interface (M2B and "
                 "frame reference counting)"};
    app.require_subcommand(0, 1);

    // run
    auto* run = app.add_subcommand("run", "Run trace files; exit 0 all expectations hold, 1 one failed, 2 malformed input");
    std::vector<std::string> files;
    std::string model = "ref";
    bool verbose = false, dump = false, run_json = false;
    run->add_option("FILE", files, "Trace files (TRACE-FORMAT)")->required();
    run->add_option("--model", model, "Model to run on")->check(CLI::IsMember({"ref"}));
    run->add_flag("-v,--verbose", verbose, "Print one line per statement with its outcome");
    run->add_flag("--dump", dump, "Print the canonical state dump after each trace");
    run->add_flag("--json", run_json, "Print the per-file summary as JSON");

    // verify
    auto* verify = app.add_subcommand("verify", "Everything the project checks, in one command: every example on ref");
    std::string examples = PVIOMMU_EXAMPLES_DIR;
    bool verify_json = false;
    verify->add_option("--examples", examples, "Folder of example traces")->check(CLI::ExistingDirectory);
    verify->add_flag("--json", verify_json, "Print the results as JSON");

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

    if (*run) {
        trace::RunOptions opt{verbose, dump};
        auto results = run_files(files, model, opt, std::cout, run_json);
        if (run_json) std::cout << to_json(results).dump(2) << "\n";
        return worst(results);
    }

    if (*verify) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto ex = example_files(examples);
        std::ostringstream detail;
        auto results = run_files(ex, "ref", trace::RunOptions{}, detail, true);
        const double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::size_t ok = 0;
        for (const auto& r : results) ok += r.exit_code == 0;
        const bool pass = !ex.empty() && ok == results.size() && results.size() == ex.size();
        if (verify_json) {
            json j{{"examples", to_json(results)}, {"passed", pass}, {"seconds", secs}};
            std::cout << j.dump(2) << "\n";
        } else {
            std::cout << "pviommu verify\n";
            std::cout << "  examples on ref   " << ok << "/" << ex.size() << " traces pass";
            std::size_t exps = 0;
            for (const auto& r : results) exps += r.summary.passed;
            std::cout << " (" << exps << " expectations)\n";
            if (!pass) std::cout << detail.str();
            for (const auto& r : results)
                if (r.exit_code != 0) std::cout << "    FAILED " << r.file << "\n";
            std::cout << (pass ? "verify: PASS" : "verify: FAIL") << " in " << secs << " s\n";
        }
        return pass ? 0 : 1;
    }
    return 0;
}
