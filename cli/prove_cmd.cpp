#include "cli/prove_cmd.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

#include "cli/diff_cmd.h"  // kVersion: the project version, as `pviommu --version` prints it
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

// Obligations per kind (proofs::obligation_kind), in a fixed order.
struct KindCount {
    std::size_t proved = 0, total = 0;
};
const char* const kKinds[] = {"inductive", "identity", "base", "lemma", "coverage", "witness"};

int run_obligations(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.rlimit = args.rlimit;
    opt.obligation_timeout_ms = args.obligation_timeout_ms;
    opt.stats = args.stats;
    opt.small = args.small;
    opt.smt2_dir = args.smt2_dir;
    opt.plant = args.plant;
    opt.real_widths = args.real_widths;
    const bool cvc5 = args.solver == "cvc5";
    if (args.solver != "z3" && !cvc5) {
        out << "--solver: z3 or cvc5, not " << args.solver << "\n";
        return 2;
    }
    std::string cvc5_ver;
    if (cvc5) {
        cvc5_ver = proofs::cvc5_version();
        if (cvc5_ver.empty()) {
            out << "--solver=cvc5: no cvc5 on PATH (Debian: apt-get install cvc5)\n";
            return 2;
        }
        if (opt.smt2_dir.empty()) {
            char tmpl[] = "/tmp/pviommu-smt2-XXXXXX";
            if (mkdtemp(tmpl) == nullptr) {
                out << "--solver=cvc5: cannot make a directory for the SMT-LIB files\n";
                return 2;
            }
            opt.smt2_dir = tmpl;
        }
    }
    if (!opt.smt2_dir.empty()) std::filesystem::create_directories(opt.smt2_dir);
    // cvc5's verdicts on every exported query: agree with Z3, disagree, or unknown/error.
    std::size_t agree = 0, disagree = 0, undecided = 0, errors = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::size_t proved = 0, total = 0;
    std::uint64_t rlimit_total = 0;
    std::map<std::string, KindCount> kinds;
    json rows = json::array();
    if (!args.json)
        out << std::left << std::setw(48) << "obligation" << std::setw(9) << "result" << std::right
            << std::setw(9) << "seconds" << std::setw(12) << "rlimit"
            << (args.stats ? "  statistics" : "") << "\n";
    const auto& open = proofs::open_obligations();
    std::vector<std::string> names;
    for (const auto& name : proofs::obligation_names()) {
        if (!args.only.empty() && name.find(args.only) == std::string::npos) continue;
        if (args.skip_open && std::find(open.begin(), open.end(), name) != open.end()) continue;
        names.push_back(name);
    }
    const unsigned jobs = args.jobs > 0 ? args.jobs : proofs::default_jobs();
    // Text mode streams a row per obligation; --json prints nothing until the end, so it shows
    // progress on stderr instead (only on a terminal).
    std::optional<Progress> progress;
    if (args.json) progress.emplace("prove: obligations", names.size());
    (void)proofs::check_obligations(names, opt, jobs, [&](const proofs::Result& r) {
        ++total;
        if (progress) progress->update(total);
        proved += r.pass;
        rlimit_total += r.rlimit;
        KindCount& kc = kinds[proofs::obligation_kind(r.name)];
        ++kc.total;
        kc.proved += r.pass;
        std::string second;  // cvc5's row: agree/disagree/unknown over the obligation's queries
        if (cvc5) {
            std::size_t a = 0, d = 0, u = 0, e = 0;
            for (const auto& [file, z3v] : r.exported) {
                const std::string v = proofs::cvc5_verdict(file, args.cvc5_timeout_ms);
                if (v == z3v) {
                    ++a;
                } else if (v == "sat" || v == "unsat") {
                    ++d;
                    second.append("\n  DISAGREE: cvc5 ")
                        .append(v)
                        .append(", Z3 ")
                        .append(z3v)
                        .append(" on ")
                        .append(file);
                } else if (v == "unknown") {
                    ++u;
                } else {
                    ++e;  // cvc5 could not read it (an array-valued lambda)
                }
            }
            agree += a, disagree += d, undecided += u, errors += e;
            second = "cvc5 agree " + std::to_string(a) + "/" + std::to_string(a + d + u + e) +
                     (d ? ", disagree " + std::to_string(d) : "") +
                     (u ? ", unknown " + std::to_string(u) : "") +
                     (e ? ", unread " + std::to_string(e) : "") + second;
        }
        if (args.json) {
            json row{{"obligation", r.name}, {"kind", proofs::obligation_kind(r.name)},
                     {"result", r.result},   {"pass", r.pass},
                     {"seconds", r.seconds}, {"rlimit", r.rlimit},
                     {"queries", r.queries}};
            if (args.stats) row["statistics"] = r.stats;
            if (cvc5) row["cvc5"] = second;
            if (!r.detail.empty()) row["detail"] = r.detail;
            rows.push_back(row);
        } else {
            out << std::left << std::setw(48) << r.name << std::setw(9) << r.result << std::right
                << std::setw(9) << fixed(r.seconds, 3) << std::setw(12) << r.rlimit;
            if (args.stats) out << "  " << r.stats;
            if (cvc5) out << "  " << second;
            out << "\n";
            if (!r.pass) out << "  " << r.detail << "\n";
            out.flush();
        }
    });
    const double secs = since(t0);
    // Issue 17's honest summary: what kind each obligation is (identity transitions and witness
    // evaluations are not proofs of anything hard), the widths, the solver, the work.
    std::ostringstream by_kind;
    json kinds_json = json::object();
    for (const char* k : kKinds) {
        const auto it = kinds.find(k);
        if (it == kinds.end()) continue;
        by_kind << (by_kind.tellp() > 0 ? ", " : "") << k << " " << it->second.proved << "/"
                << it->second.total;
        kinds_json[k] = {{"proved", it->second.proved}, {"total", it->second.total}};
    }
    const std::string widths = proofs::widths_text(args.small, args.real_widths);
    if (args.json) {
        out << json{{"version", kVersion},
                    {"obligations", rows},
                    {"proved", proved},
                    {"total", total},
                    {"kinds", kinds_json},
                    {"widths", widths},
                    {"solver", proofs::solver_version()},
                    {"rlimit_per_query", args.rlimit},
                    {"rlimit_total", rlimit_total},
                    {"seconds", secs},
                    {"jobs", jobs}}
                   .dump(2)
            << "\n";
    } else {
        out << "obligations proved " << proved << "/" << total << " (" << by_kind.str()
            << "); widths: " << widths << "; " << proofs::solver_version() << ", rlimit "
            << args.rlimit << " per query, " << rlimit_total << " used in all; " << fixed(secs, 1)
            << " s (" << jobs << (jobs == 1 ? " job" : " jobs") << ")\n";
        if (!opt.smt2_dir.empty()) out << "SMT-LIB 2 queries written to " << opt.smt2_dir << "\n";
        if (cvc5)
            out << cvc5_ver << ": agrees with Z3 on " << agree << " of "
                << agree + disagree + undecided + errors << " queries, disagrees on " << disagree
                << ", unknown on " << undecided << " (" << args.cvc5_timeout_ms
                << " ms each), cannot read " << errors << "\n";
    }
    if (disagree > 0) return 1;
    return total > 0 && proved == total ? 0 : 1;
}

int run_mutants(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.timeout_ms = args.timeout_ms;
    std::size_t caught = 0, total = 0;
    json rows = json::array();
    // The encoding's planted bugs, then the explicit BMC's ("bmc:NAME"), then ref's, caught
    // by the conformance on the explicit BMC's edges ("ref:NAME").
    std::vector<std::string> names = proofs::mutant_names();
    for (const auto& n : proofs::explore_mutant_names()) names.push_back("bmc:" + n);
    for (const auto& n : proofs::ref_mutant_names()) names.push_back("ref:" + n);
    for (const auto& name : names) {
        if (!args.only.empty() && name.find(args.only) == std::string::npos) continue;
        const proofs::MutantResult r =
            name.rfind("bmc:", 0) == 0   ? proofs::check_explore_mutant(name.substr(4))
            : name.rfind("ref:", 0) == 0 ? proofs::check_ref_mutant(name.substr(4))
                                         : proofs::check_mutant(name, opt);
        ++total;
        caught += r.caught;
        // Issue 17, item 6: each counterexample's trace (ref's path to its pre-state) and its
        // pre-state (canonical dump) as files, for `pviommu run`.
        std::string files;
        if (!args.mutant_traces.empty()) {
            std::filesystem::create_directories(args.mutant_traces);
            std::string base = r.mutant;
            std::replace(base.begin(), base.end(), ':', '_');
            if (!r.trace.empty()) {
                const std::string f = args.mutant_traces + "/" + base + ".trace";
                std::ofstream(f) << r.trace;
                files += " trace " + f;
            }
            if (!r.state.empty()) {
                const std::string f = args.mutant_traces + "/" + base + ".state";
                std::ofstream(f) << r.state;
                files += " state " + f;
            }
        }
        if (args.json) {
            rows.push_back({{"mutant", r.mutant},
                            {"transition", r.transition},
                            {"expected", r.expected},
                            {"caught", r.caught},
                            {"classification", r.classification},
                            {"trace", r.trace},
                            {"state", r.state},
                            {"seconds", r.seconds},
                            {"detail", r.detail}});
        } else {
            out << "mutant " << std::left << std::setw(28) << r.mutant << " "
                << (r.caught ? "caught  " : "SURVIVED") << " " << r.expected << " (" << r.transition
                << ", " << fixed(r.seconds, 3) << " s)"
                << (r.classification.empty() ? "" : ": " + r.classification) << "\n";
            std::istringstream d(r.detail);
            for (std::string l; std::getline(d, l);) out << "    " << l << "\n";
            if (!r.trace.empty()) {
                out << "    replayable trace (pviommu run):\n";
                std::istringstream t(r.trace);
                for (std::string l; std::getline(t, l);) out << "      " << l << "\n";
            }
            if (!files.empty()) out << "    written:" << files << "\n";
        }
    }
    if (args.json)
        out << json{{"version", kVersion}, {"mutants", rows}, {"caught", caught}, {"total", total}}
                   .dump(2)
            << "\n";
    else
        out << "mutants caught " << caught << "/" << total << "\n";
    return total > 0 && caught == total ? 0 : 1;
}

int run_conformance(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.timeout_ms = std::max(args.timeout_ms, 20000u);
    const proofs::ConformanceResult r = proofs::conformance(args.seed, args.conformance, opt);
    if (args.json) {
        out << json{{"version", kVersion},  {"samples", r.samples}, {"divergences", r.divergences},
                    {"seed", r.seed},       {"per_op", r.per_op},   {"per_status", r.per_status},
                    {"orphans", r.orphans}, {"seconds", r.seconds}, {"detail", r.detail}}
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

// Conformance driven from the explicit BMC's edges, with per-case coverage (issue 17).
int run_edge_conformance(const ProveArgs& args, std::ostream& out) {
    proofs::Options opt;
    opt.timeout_ms = std::max(args.timeout_ms, 20000u);
    std::map<std::string, std::set<std::size_t>> hit;
    std::size_t divergences = 0;
    bool unknown = false;
    json rows = json::array();
    for (const std::string& w : proofs::edge_conformance_worlds()) {
        if (!args.bmc_world.empty() && w != args.bmc_world) continue;
        const proofs::EdgeConformanceResult r =
            proofs::conformance_on_edges(w, args.edges, args.edges_per_bucket, "", opt);
        divergences += r.divergences;
        unknown = unknown || r.unknown;
        for (const auto& [t, ks] : r.cases_hit) hit[t].insert(ks.begin(), ks.end());
        if (args.json) {
            rows.push_back({{"world", r.world},
                            {"depth", r.depth},
                            {"edges", r.edges},
                            {"buckets", r.buckets},
                            {"compared", r.compared},
                            {"steps", r.steps},
                            {"skipped", r.skipped},
                            {"divergences", r.divergences},
                            {"unknown", r.unknown},
                            {"seconds", r.seconds},
                            {"detail", r.detail}});
            continue;
        }
        out << r.detail << "edge conformance world " << r.world << ": depth " << r.depth << ", "
            << r.edges << " edges in " << r.buckets << " buckets, " << r.compared << " compared ("
            << r.steps << " encoded steps), " << r.skipped << " outside the "
            << "encoding, " << r.divergences << " divergences in " << fixed(r.seconds, 1) << " s\n";
    }
    // Per-case coverage of the union: every case reached but the documented ones.
    const auto unreached = proofs::unreached_cases();
    std::size_t missing = 0;
    json cov = json::object();
    for (const auto& [t, n] : proofs::case_counts()) {
        std::string line = "  " + t + ": cases reached";
        for (std::size_t k = 0; k < n; ++k) {
            const bool h = hit[t].contains(k);
            const auto ut = unreached.find(t);
            const bool excused = ut != unreached.end() && ut->second.contains(k);
            line += " " + std::to_string(k) + (h ? "" : excused ? "(-)" : "(MISSING)");
            missing += !h && !excused;
        }
        cov[t] = {{"cases", n}, {"reached", hit[t]}};
        if (!args.json) out << line << "\n";
    }
    if (args.json) {
        out << json{{"version", kVersion},
                    {"worlds", rows},
                    {"coverage", cov},
                    {"missing", missing},
                    {"divergences", divergences}}
                   .dump(2)
            << "\n";
    } else {
        out << "edge conformance: " << divergences << " divergences; " << missing
            << " cases missing ((-): not reachable, see proofs::unreached_cases)\n";
    }
    return divergences == 0 && !unknown && missing == 0 ? 0 : 1;
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
    if (args.json) out << json{{"version", kVersion}, {"bmc", rows}}.dump(2) << "\n";
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
    p->add_flag("--real-widths", args.real_widths,
                "Obligations at Xen's widths: bfn/gfn/mfn 64 bits, domid and ioserver 16 "
                "(default: 8 bits each); counts are unbounded integers either way");
    p->add_option("--plant", args.plant,
                  "Run the obligations with this planted bug (one of --mutants' encoding "
                  "mutants): a failing one's counterexample is decoded and classified");
    p->add_option("--mutant-traces", args.mutant_traces,
                  "With --mutants: write each counterexample's replayable trace (DIR/NAME.trace) "
                  "and pre-state (DIR/NAME.state, the canonical dump) there");
    p->add_flag("--mutants", args.mutants,
                "Run the planted bugs instead: each must yield a counterexample to its invariant");
    p->add_flag("--stats", args.stats, "Print solver statistics per obligation");
    p->add_option("--timeout-ms", args.timeout_ms,
                  "Per-query wall-clock timeout of --conformance, --bmc-depth and --mutants' "
                  "searches (the obligations use --rlimit)");
    p->add_option("--rlimit", args.rlimit,
                  "Z3 resource limit per obligation query (0: none); exhausted, the obligation "
                  "is unknown and fails. A count of Z3's work: the verdict does not depend on "
                  "the machine's load");
    p->add_option("--smt2", args.smt2_dir,
                  "Also write every decided obligation query as an SMT-LIB 2 file into DIR");
    p->add_option("--solver", args.solver,
                  "z3 (default), or cvc5: after Z3, cvc5 checks every exported query and each "
                  "row says agree/disagree/unknown (needs cvc5 on PATH)");
    p->add_option("--cvc5-timeout-ms", args.cvc5_timeout_ms, "cvc5's wall-clock limit per query");
    p->add_option("--obligation-timeout-ms", args.obligation_timeout_ms,
                  "An extra wall-clock cap per obligation query (default 0: none; set, verdicts "
                  "may depend on load)");
    p->add_flag("--skip-open", args.skip_open,
                "Skip the obligations Z3 does not discharge yet (proofs::open_obligations)");
    p->add_option("--conformance", args.conformance,
                  "Instead: N random concrete states from ref, each transition's encoding "
                  "compared with ref (status and successor)");
    p->add_option("--seed", args.seed, "Seed of --conformance");
    p->add_option("--conformance-edges", args.edges,
                  "Instead: conformance driven from the explicit BMC's edges to depth K (every "
                  "statement from every state reached, bucketed by kind, status and change; "
                  "--edges-per-bucket of each compared), with per-case coverage of the encoded "
                  "transitions; --bmc-world picks one world");
    p->add_option("--edges-per-bucket", args.edges_per_bucket,
                  "Edges compared per bucket of --conformance-edges (default 1)");
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
    if (args.edges > 0) return run_edge_conformance(args, out);
    if (args.conformance > 0) return run_conformance(args, out);
    if (args.bmc_depth > 0) return run_bmc(args, out);
    return args.mutants ? run_mutants(args, out) : run_obligations(args, out);
}

bool prove_summary(std::string& line) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto& open = proofs::open_obligations();
    std::size_t proved = 0, total = 0;
    std::string failed;
    // The same full-width run as `pviommu prove` (every obligation, rlimit-bounded).
    proofs::Options opt;  // rlimit only, as `pviommu prove`
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
