#include "cli/prove_cmd.h"

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "proofs/explore.h"
#include "proofs/prove.h"

namespace cli {

namespace {

using nlohmann::json;

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fixed(double v, int prec) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(prec) << v;
    return os.str();
}

int run_obligations(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.timeout_ms = args.timeout_ms;
    opt.stats = args.stats;
    opt.small = args.small;
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t proved = 0, total = 0;
    json rows = json::array();
    if (!args.json)
        out << std::left << std::setw(48) << "obligation" << std::setw(9) << "result" << std::right
            << std::setw(9) << "seconds" << (args.stats ? "  statistics" : "") << "\n";
    const auto& open = proofs::open_obligations();
    std::vector<std::string> names;
    for (const auto& name : proofs::obligation_names()) {
        if (!args.only.empty() && name.find(args.only) == std::string::npos) continue;
        if (args.skip_open && std::find(open.begin(), open.end(), name) != open.end()) continue;
        names.push_back(name);
    }
    const unsigned jobs = args.jobs > 0 ? args.jobs : proofs::default_jobs();
    (void)proofs::check_obligations(names, opt, jobs, [&](const proofs::Result& r) {
        ++total;
        proved += r.pass;
        if (args.json) {
            json row{{"obligation", r.name},
                     {"result", r.result},
                     {"pass", r.pass},
                     {"seconds", r.seconds},
                     {"queries", r.queries}};
            if (args.stats) row["statistics"] = r.stats;
            if (!r.detail.empty()) row["detail"] = r.detail;
            rows.push_back(row);
        } else {
            out << std::left << std::setw(48) << r.name << std::setw(9) << r.result << std::right
                << std::setw(9) << fixed(r.seconds, 3);
            if (args.stats) out << "  " << r.stats;
            out << "\n";
            if (!r.pass) out << "  " << r.detail << "\n";
            out.flush();
        }
    });
    const double secs = since(t0);
    if (args.json) {
        out << json{{"obligations", rows},
                    {"proved", proved},
                    {"total", total},
                    {"seconds", secs},
                    {"jobs", jobs}}
                   .dump(2)
            << "\n";
    } else {
        out << "obligations proved " << proved << "/" << total << " in " << fixed(secs, 1) << " s ("
            << jobs << (jobs == 1 ? " job" : " jobs") << ")\n";
    }
    return total > 0 && proved == total ? 0 : 1;
}

int run_mutants(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.timeout_ms = args.timeout_ms;
    std::size_t caught = 0, total = 0;
    json rows = json::array();
    // The encoding's planted bugs, then the explicit BMC's ("bmc:NAME").
    std::vector<std::string> names = proofs::mutant_names();
    for (const auto& n : proofs::explore_mutant_names()) names.push_back("bmc:" + n);
    for (const auto& name : names) {
        if (!args.only.empty() && name.find(args.only) == std::string::npos) continue;
        const proofs::MutantResult r = name.rfind("bmc:", 0) == 0
                                           ? proofs::check_explore_mutant(name.substr(4))
                                           : proofs::check_mutant(name, opt);
        ++total;
        caught += r.caught;
        if (args.json) {
            rows.push_back({{"mutant", r.mutant},
                            {"transition", r.transition},
                            {"expected", r.expected},
                            {"caught", r.caught},
                            {"seconds", r.seconds},
                            {"detail", r.detail}});
        } else {
            out << "mutant " << std::left << std::setw(28) << r.mutant << " "
                << (r.caught ? "caught  " : "SURVIVED") << " " << r.expected << " (" << r.transition
                << ", " << fixed(r.seconds, 3) << " s)\n";
            std::istringstream d(r.detail);
            for (std::string l; std::getline(d, l);) out << "    " << l << "\n";
        }
    }
    if (args.json)
        out << json{{"mutants", rows}, {"caught", caught}, {"total", total}}.dump(2) << "\n";
    else
        out << "mutants caught " << caught << "/" << total << "\n";
    return total > 0 && caught == total ? 0 : 1;
}

int run_conformance(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.timeout_ms = std::max(args.timeout_ms, 20000u);
    const proofs::ConformanceResult r = proofs::conformance(args.seed, args.conformance, opt);
    if (args.json) {
        out << json{{"samples", r.samples},
                    {"divergences", r.divergences},
                    {"seed", r.seed},
                    {"per_op", r.per_op},
                    {"per_status", r.per_status},
                    {"orphans", r.orphans},
                    {"seconds", r.seconds},
                    {"detail", r.detail}}
                   .dump(2)
            << "\n";
    } else {
        out << r.detail;
        for (const auto& [op, n] : r.per_op) out << "  " << op << ": " << n << "\n";
        out << "  statuses (-errno: samples):";
        for (const auto& [st, n] : r.per_status) out << " " << st << ": " << n;
        out << "\n";
        out << "  orphans left by destroy (R9 v2 step 2): " << r.orphans << "\n";
        out << "conformance " << r.samples << " samples (seed " << r.seed << "), " << r.divergences
            << " divergences in " << fixed(r.seconds, 1) << " s\n";
    }
    return r.divergences == 0 && r.samples > 0 ? 0 : 1;
}

const char* verdict(bool violation, bool unknown) {
    return violation ? "VIOLATION (trace above; replay with pviommu run)"
           : unknown ? "UNKNOWN (a query was not decided)"
                     : "no invariant violated";
}

int run_bmc(const ProveArgs& args, std::ostream& out) {
    bool bad = false;
    json rows = json::array();
    for (const std::string& w : proofs::explore_world_names()) {
        if (!args.bmc_world.empty() && w != args.bmc_world) continue;
        proofs::ExploreOptions eo;
        eo.depth = args.bmc_depth;
        eo.z3_every = args.bmc_z3_every;
        eo.step_every = args.bmc_step_every;
        eo.z3.timeout_ms = std::max(args.timeout_ms, 20000u);
        const proofs::ExploreResult r = proofs::explore(w, eo);
        bad = bad || r.violation || r.unknown;
        if (args.json) {
            rows.push_back({{"kind", "explicit"},
                            {"world", r.world},
                            {"depth", r.depth},
                            {"states", r.states},
                            {"statements", r.edges},
                            {"per_level", r.per_level},
                            {"z3_checked", r.z3_checked},
                            {"z3_steps", r.z3_steps},
                            {"violation", r.violation},
                            {"unknown", r.unknown},
                            {"seconds", r.seconds},
                            {"trace", r.trace},
                            {"detail", r.detail}});
            continue;
        }
        out << r.trace << r.detail;
        out << "explicit bmc world " << r.world << ": depth " << r.depth << ", " << r.states
            << " states (per level";
        for (std::size_t n : r.per_level) out << " " << n;
        out << "), " << r.edges << " statements; Z3 confirmed the encoded invariants on "
            << r.z3_checked << " states, one encoded step from " << r.z3_steps << ": "
            << verdict(r.violation, r.unknown) << " in " << fixed(r.seconds, 1) << " s\n";
    }
    if (args.bmc_symbolic > 0) {
        proofs::Options opt;
        opt.timeout_ms = std::max(args.timeout_ms, 60000u);
        const proofs::BmcResult r = proofs::bmc(args.seed, args.bmc_symbolic, args.bmc_worlds, opt);
        bad = bad || r.violation || r.unknown;
        if (args.json) {
            rows.push_back({{"kind", "symbolic"},
                            {"depth", r.depth},
                            {"worlds", r.worlds},
                            {"seed", r.seed},
                            {"violation", r.violation},
                            {"unknown", r.unknown},
                            {"seconds", r.seconds},
                            {"trace", r.trace},
                            {"detail", r.detail}});
        } else {
            out << r.trace << r.detail;
            out << "symbolic bmc depth " << r.depth << " from " << r.worlds << " worlds (seed "
                << r.seed << "): " << verdict(r.violation, r.unknown) << " in "
                << fixed(r.seconds, 1) << " s\n";
        }
    }
    if (args.json) out << json{{"bmc", rows}}.dump(2) << "\n";
    return bad ? 1 : 0;
}

}  // namespace

CLI::App* add_prove_command(CLI::App& app, ProveArgs& args) {
    auto* p = app.add_subcommand(
        "prove",
        "Discharge the Z3 proof obligations (every transition x every invariant, "
        "unbounded, INV-DEVICE-SAFE and INV-NO-FREE-WHILE-CACHED among them; INV-INVALIDATE; "
        "non-vacuity); exit 0 all proved, 1 otherwise");
    p->add_flag("--json", args.json, "Print the results as JSON");
    p->add_option("--only", args.only, "Only obligations (or mutants) whose name contains NAME");
    p->add_flag("--mutants", args.mutants,
                "Run the planted bugs instead: each must yield a counterexample to its invariant");
    p->add_flag("--stats", args.stats, "Print solver statistics per obligation");
    p->add_option("--timeout-ms", args.timeout_ms, "Per-query solver timeout (a timeout fails)");
    p->add_flag("--skip-open", args.skip_open,
                "Skip the obligations Z3 does not discharge yet (proofs::open_obligations)");
    p->add_option("--conformance", args.conformance,
                  "Instead: N random concrete states from ref, each transition's encoding "
                  "compared with ref (status and successor)");
    p->add_option("--seed", args.seed, "Seed of --conformance");
    p->add_option("--bmc-depth", args.bmc_depth,
                  "Instead: bounded model checking. Every sequence of K statements (every "
                  "subop and event over each fixed small world's universe) on ref, with ref's "
                  "invariants on every state reached and, by Z3, the encoded ones on a sample "
                  "(--bmc-z3-every); then the "
                  "encoding unrolled --bmc-symbolic steps from random worlds. A violation "
                  "prints a trace for pviommu run");
    p->add_option("--bmc-world", args.bmc_world, "Only this explicit BMC world");
    p->add_option("--bmc-z3-every", args.bmc_z3_every,
                  "Z3 checks the encoded invariants on every N-th state reached (default 500; "
                  "0: none)");
    p->add_option("--bmc-step-every", args.bmc_step_every,
                  "One symbolic encoded step (any transition, any arguments) from every N-th "
                  "state reached (default 10000; 0: none)");
    p->add_option("--bmc-symbolic", args.bmc_symbolic,
                  "Depth of the symbolic BMC that follows (0: none)");
    p->add_option("--bmc-worlds", args.bmc_worlds, "Random worlds the symbolic BMC starts from");
    p->add_option("--jobs", args.jobs,
                  "Obligations run on N threads at once (default: the hardware threads)");
    p->add_flag("--small", args.small,
                "Prove the inductive obligations at small width (a weaker claim; seconds)");
    return p;
}

int run_prove(const ProveArgs& args, std::ostream& out) {
    if (args.conformance > 0) return run_conformance(args, out);
    if (args.bmc_depth > 0) return run_bmc(args, out);
    return args.mutants ? run_mutants(args, out) : run_obligations(args, out);
}

bool prove_summary(std::string& line) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto& open = proofs::open_obligations();
    std::size_t proved = 0, total = 0;
    std::string failed;
    // The same full-width run as `pviommu prove` (v2: 291 obligations, 20-26 s on 2 cores).
    proofs::Options opt;
    opt.timeout_ms = 20000u;
    for (const proofs::Result& r :
         proofs::check_obligations(proofs::obligation_names(), opt, proofs::default_jobs())) {
        ++total;
        proved += r.pass;
        if (!r.pass) failed += " " + r.name;
    }
    line = "obligations proved " + std::to_string(proved) + "/" + std::to_string(total) +
           " (full width) in " + fixed(since(t0), 1) + " s" +
           (open.empty() ? ""
                         : " (" + std::to_string(open.size()) +
                               " of them still open at full width: see pviommu prove)") +
           (failed.empty() ? "" : " (FAILED:" + failed + ")");
    return total > 0 && proved == total;
}

}  // namespace cli
