#include "props/parallel.h"

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <optional>
#include <ostream>
#include <random>
#include <sstream>
#include <string>

#include "props/workers.h"
#include "ref/hypervisor.h"
#include "trace/gen.h"
#include "trace/runner.h"

namespace props {

using namespace spec;

ParallelBudget parallel_budget() {
    const char* b = std::getenv("PVIOMMU_BUDGET");
    if (b != nullptr && std::string(b) == "full") return {2000, 20};
    return {60, 8};
}

namespace {

// Draws by modulo from one engine (the same sequence on every standard library).
class Rand {
public:
    explicit Rand(std::uint64_t seed) : e_(seed) {}
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : e_() % n; }
    bool percent(unsigned p) { return below(100) < p; }
    template <class T>
    const T& pick(const std::vector<T>& v) {
        return v[below(v.size())];
    }

private:
    std::mt19937_64 e_;
};

struct Server {
    DomId target, emulator;
    IoServId id;
};

// What the generator aims at, read from ref's state after the world.
struct Targets {
    std::vector<Server> servers;
    std::vector<DomId> domains;                        // live
    std::vector<DomId> iommu_doms;                     // live, with iommu_hw
    std::map<DomId, std::vector<std::uint64_t>> gfns;  // a few RAM gfns of each domain
};

Targets targets_of(const State& s) {
    Targets t;
    for (const auto& [d, dom] : s.domains) {
        t.domains.push_back(d);
        if (dom.iommu_hw) t.iommu_doms.push_back(d);
        auto& g = t.gfns[d];
        for (const auto& [gfn, m] : dom.p2m) {
            if (g.size() >= 3) break;
            g.push_back(gfn.v);
        }
        g.push_back(g.empty() ? 0 : g.back() + 1);  // one more: often empty, for populate
    }
    for (const auto& [k, srv] : s.servers)
        if (s.domain(k.first) != nullptr && s.domain(srv.emulator) != nullptr)
            t.servers.push_back(Server{k.first, srv.emulator, k.second});
    return t;
}

class CaseGen {
public:
    CaseGen(Rand& r, const Targets& t) : r_(r), t_(t) {}

    Op subop() {
        const unsigned order = r_.percent(20) ? 1 : 0;
        const std::uint64_t bfn = (0x1000 + r_.below(4)) & ~std::uint64_t{order};
        std::uint16_t perms = static_cast<std::uint16_t>(1 + r_.below(3));
        if (r_.percent(40)) perms |= IOMMUOP_swap_mfn;
        if (!t_.servers.empty()) {
            const Server& s = r_.pick(t_.servers);
            caller_ = s.emulator;
            const std::uint64_t gfn = r_.pick(t_.gfns.at(s.target)) & ~std::uint64_t{order};
            switch (r_.below(10)) {
                case 0:
                case 1:
                case 2:
                case 3: {
                    MapForeignPage m;
                    m.flags = Flags::with_order(order, perms);
                    m.bfn = Bfn{bfn};
                    m.gfn = Gfn{gfn};
                    m.domid = s.target;
                    m.ioserver = s.id;
                    return m;
                }
                case 4:
                case 5: {
                    LookupForeignPage l;
                    l.gfn = Gfn{r_.pick(t_.gfns.at(s.target))};
                    l.domid = s.target;
                    l.ioserver = s.id;
                    return l;
                }
                case 6:
                case 7: {
                    UnmapForeignPage u;
                    u.bfn = Bfn{0x1000 + r_.below(4)};
                    u.domid = s.target;
                    u.ioserver = s.id;
                    return u;
                }
                case 8: {
                    QueryCaps q;
                    return q;
                }
                default:
                    break;
            }
        }
        const std::vector<DomId>& pool = t_.iommu_doms.empty() ? t_.domains : t_.iommu_doms;
        caller_ = r_.pick(pool);
        if (r_.percent(50)) {
            MapPage m;
            m.flags = Flags::with_order(order, perms & 3);
            m.bfn = Bfn{bfn};
            m.gfn = Gfn{r_.pick(t_.gfns.at(caller_)) & ~std::uint64_t{order}};
            return m;
        }
        UnmapPage u;
        u.flags = Flags::with_order(order, 0);
        u.bfn = Bfn{bfn};
        return u;
    }

    // Allocator-heavy cases: mostly balloons and populates of the servers' targets, on more
    // empty gfns, so that populates race the frees of balloons and later populates see where
    // the racing ones left the allocation hint (issue 15, bug 3's class: a scan that passed a
    // frame freed behind it).
    // populate_share: percent of populates (the rest of 85% balloons); threads lean one way
    // or the other, so that one thread's populates meet another's frees.
    void alloc_heavy(bool on, unsigned populate_share = 40) {
        alloc_ = on;
        populates_ = populate_share;
    }

    DataOp statement() {
        if (alloc_ && !t_.domains.empty()) {
            const std::uint64_t a = r_.below(100);
            const DomId d = hot_domain();
            const std::vector<std::uint64_t>& g = t_.gfns.at(d);
            if (a < populates_) {  // an empty gfn: one past the RAM gfns, or one more above
                const std::uint64_t next = g.empty() ? 0 : g.back() + r_.below(3);
                return trace::PopulateStmt{d, Gfn{r_.percent(25) ? r_.pick(g) : next}};
            }
            if (a < 85) return trace::BalloonStmt{d, Gfn{r_.pick(g)}};
        }
        const std::uint64_t k = r_.below(100);
        if (k < 50 || t_.domains.empty()) {
            trace::CallStmt c;
            c.ops.push_back(subop());
            c.caller = caller_;
            c.op_lines.push_back(0);
            return c;
        }
        if (k < 58) {  // a batch of 2-3 ops of one caller
            trace::CallStmt c;
            c.batch = true;
            c.ops.push_back(subop());
            c.caller = caller_;
            const std::uint64_t n = 1 + r_.below(2);
            for (std::uint64_t i = 0; i < n; ++i) {
                Op o = subop();
                if (caller_ == c.caller) c.ops.push_back(o);
            }
            caller_ = c.caller;
            c.op_lines.assign(c.ops.size(), 0);
            return c;
        }
        const DomId d = hot_domain();
        const std::uint64_t g = r_.pick(t_.gfns.at(d));
        if (k < 72) return trace::BalloonStmt{d, Gfn{g}};
        if (k < 82) return trace::PopulateStmt{d, Gfn{g}};
        if (t_.servers.empty()) return trace::BalloonStmt{d, Gfn{g}};
        const Server& s = r_.pick(t_.servers);
        std::optional<std::uint32_t> count;
        if (r_.percent(60)) count = static_cast<std::uint32_t>(1 + r_.below(3));
        return trace::DrainStmt{s.target, s.id, count};
    }

private:
    // Balloons and populates aim at the servers' targets (where the tuples are).
    DomId hot_domain() {
        if (!t_.servers.empty()) return r_.pick(t_.servers).target;
        return r_.pick(t_.domains);
    }

    Rand& r_;
    const Targets& t_;
    DomId caller_{};
    bool alloc_ = false;
    unsigned populates_ = 40;
};

// The stress test's world, with a varied host mode and ring sizes.
trace::Trace stress_world(Rand& r, std::uint64_t seed) {
    trace::Trace t;
    t.file = "parallel-" + std::to_string(seed);
    t.host.frames = 64;
    t.host.max_order = 2;
    t.host.mode = r.percent(75) ? IommuMode::inclusive : IommuMode::strict;
    auto add = [&t](trace::Stmt s) { t.statements.push_back(trace::Statement{0, std::move(s)}); };
    // D19/D20 in a quarter of the cases each, from the seed (r's stream is left as it was):
    // a count limit a few maps reach, and a stub-domain quota that racing maps compete for.
    if (seed % 4 == 1) t.host.max_count = 3;
    const std::optional<std::uint32_t> stub_quota =
        seed % 4 == 2 ? std::optional<std::uint32_t>(2) : std::nullopt;
    add(trace::DomainStmt{DomId{0}, DomainRole::hardware, true, 12, std::nullopt});
    add(trace::DomainStmt{DomId{1}, DomainRole::guest, false, 6, std::nullopt});
    add(trace::DomainStmt{DomId{2}, DomainRole::guest, false, 6, std::nullopt});
    add(trace::DomainStmt{DomId{3}, DomainRole::guest, true, 4, stub_quota});
    add(trace::DmStmt{DomId{3}, DomId{1}});
    add(trace::DmStmt{DomId{3}, DomId{2}});
    const std::uint32_t rings[] = {3, 5, 7, 511};
    add(trace::IoServerStmt{DomId{1}, IoServId{0}, DomId{0}, rings[r.below(4)]});
    add(trace::IoServerStmt{DomId{1}, IoServId{1}, DomId{3}, rings[r.below(4)]});
    add(trace::IoServerStmt{DomId{2}, IoServId{0}, DomId{0}, rings[r.below(4)]});
    if (r.percent(50)) add(trace::IoServerStmt{DomId{2}, IoServId{1}, DomId{3}, rings[r.below(4)]});
    if (r.percent(30)) add(trace::RmrrStmt{DomId{3}, Bfn{0x1003}, 1});
    if (r.percent(10)) add(trace::FaultStmt{1});
    return t;
}

State world_state(const trace::Trace& world) {
    ref::Hypervisor h(world.host);
    trace::Runner run(world, h);
    while (!run.done()) (void)run.step();
    return h.state();
}

}  // namespace

ConcurrentCase random_case(std::uint64_t seed) {
    Rand r(seed);
    ConcurrentCase c;
    if (r.percent(20)) {
        c.world = trace::random_trace(seed, r.below(12));
    } else {
        c.world = stress_world(r, seed);
    }
    Targets t = targets_of(world_state(c.world));
    if (t.domains.empty()) {  // random_trace destroyed everything: use the stress world
        c.world = stress_world(r, seed);
        t = targets_of(world_state(c.world));
    }
    CaseGen g(r, t);
    const bool alloc = r.percent(25);
    const std::uint64_t prefix = r.below(5);
    for (std::uint64_t i = 0; i < prefix; ++i)
        c.world.statements.push_back(trace::Statement{0, g.statement()});
    if (alloc && !t.servers.empty()) {
        // A frame freed and taken again: populate's hint rests just above it, below frames
        // that are taken (where a scan passes frames that a racing balloon may free).
        const DomId d = t.servers.front().target;
        const std::vector<std::uint64_t>& gs = t.gfns.at(d);
        c.world.statements.push_back(trace::Statement{0, trace::BalloonStmt{d, Gfn{gs.front()}}});
        c.world.statements.push_back(
            trace::Statement{0, trace::PopulateStmt{d, Gfn{gs.back() + 3}}});
    }
    // Renumber lines as printed (the world is printed for replay).
    const trace::ParseResult reparsed = trace::parse(c.world.file, trace::print(c.world));
    if (const auto* tr = std::get_if<trace::Trace>(&reparsed)) c.world = *tr;
    const std::uint64_t threads = 2 + r.below(2);
    c.threads.resize(threads);
    for (std::size_t ti = 0; ti < threads; ++ti) {
        auto& th = c.threads[ti];
        // The threads only (the prefix stays as it was): thread 0 leans to populates, the
        // others to balloons.
        g.alloc_heavy(alloc, ti == 0 ? 65 : 20);
        const std::uint64_t n = 3 + r.below(4);
        for (std::uint64_t i = 0; i < n; ++i) th.push_back(g.statement());
    }
    return c;
}

void OverlapTotals::add(const Overlap& o) {
    if (o.threads < 2) return;
    ++histories;
    overlapped += o.pairs != 0 ? 1 : 0;
    pairs += o.pairs;
    ops += o.ops;
    overlapped_ops += o.overlapped;
}

void OverlapTotals::add(const OverlapTotals& t) {
    histories += t.histories;
    overlapped += t.overlapped;
    pairs += t.pairs;
    ops += t.ops;
    overlapped_ops += t.overlapped_ops;
}

double OverlapTotals::share() const {
    return histories == 0 ? 0.0 : static_cast<double>(overlapped) / static_cast<double>(histories);
}
double OverlapTotals::mean_pairs() const {
    return histories == 0 ? 0.0 : static_cast<double>(pairs) / static_cast<double>(histories);
}
double OverlapTotals::op_share() const {
    return ops == 0 ? 0.0 : static_cast<double>(overlapped_ops) / static_cast<double>(ops);
}

std::string OverlapTotals::text() const {
    std::ostringstream os;
    os << std::fixed << std::setprecision(1) << "overlap " << 100 * share() << "% of " << histories
       << " histories (>= " << 100 * kMinOverlapShare << "% required), " << std::setprecision(2)
       << mean_pairs() << " overlapping pairs/history, " << std::setprecision(1) << 100 * op_share()
       << "% of operations overlapped";
    return os.str();
}

CaseResult check_case(const ConcurrentCase& c, const SutFactory& sut, unsigned repetitions,
                      std::uint64_t seed, Workers* workers) {
    CaseResult res;
    std::optional<Workers> own;
    if (workers == nullptr || workers->size() < c.threads.size()) {
        own.emplace(static_cast<unsigned>(c.threads.size()));
        workers = &*own;
    }
    for (unsigned i = 0; i < repetitions; ++i) {
        RunOptions ro;
        ro.seed = seed * 1000003 + i;
        // Vary the timing: from no spinning at all to long spins and frequent yields. Park
        // threads at the stall points in 7 runs of 8 (a loaded machine's threads otherwise run
        // one after the other: without stalls about half the histories overlap on 2 CPUs, with
        // them nearly all), and run the threads in lockstep rounds in 1 of 4.
        ro.max_spin = (i % 4 == 0) ? 0 : 4u << (i % 4) * 2;  // 0, 16, 64, 256
        ro.yield_one_in = i % 3 == 0 ? 0 : 2 + i % 5;        // sometimes never
        ro.stalls = i % 8 != 0;
        ro.lockstep = i % 4 == 0;
        History h = run_history(c, sut, ro, workers);
        CheckResult cr = check_linearizable(h);
        ++res.runs;
        res.nodes += cr.nodes;
        for (const Event& e : h.events) {
            if (const auto* rs = std::get_if<std::vector<OpResult>>(&e.outcome)) {
                res.ops += rs->size();
                for (const OpResult& r : *rs) res.ok_ops += r.status == Status::ok ? 1 : 0;
            } else if (const auto* b = std::get_if<BalloonOutcome>(&e.outcome)) {
                res.invalidates += b->invalidates;
            }
        }
        const Overlap o = overlap(h);
        res.overlaps += o.pairs;
        res.overlap.add(o);
        res.stalled_runs += ro.stalls ? 1 : 0;
        for (std::size_t p = 0; p < kFaultPoints; ++p) res.stall_hits[p] += h.stall_hits[p];
        if (cr.verdict != Verdict::linearizable) {
            res.failed = true;
            res.history = std::move(h);
            res.check = std::move(cr);
            return res;
        }
    }
    return res;
}

ConcurrentCase shrink_case(const ConcurrentCase& c0, const SutFactory& sut, unsigned repetitions,
                           std::uint64_t seed, unsigned max_attempts) {
    ConcurrentCase best = c0;
    unsigned attempts = 0;
    // A candidate whose world no longer runs (or already diverges sequentially) fails for
    // another reason than the original, unless that was the original's reason.
    const bool world_failure = !check_case(c0, sut, 1, seed).history.world_error.empty();
    auto fails = [&](const ConcurrentCase& c) {
        ++attempts;
        const CaseResult r = check_case(c, sut, repetitions, seed);
        return r.failed && (world_failure || r.history.world_error.empty());
    };
    bool progress = true;
    while (progress && attempts < max_attempts) {
        progress = false;
        // Whole threads.
        for (std::size_t t = 0;
             t < best.threads.size() && best.threads.size() > 1 && attempts < max_attempts;) {
            ConcurrentCase cand = best;
            cand.threads.erase(cand.threads.begin() + static_cast<std::ptrdiff_t>(t));
            if (fails(cand)) {
                best = std::move(cand);
                progress = true;
            } else {
                ++t;
            }
        }
        // Single statements of threads.
        for (std::size_t t = 0; t < best.threads.size(); ++t) {
            for (std::size_t i = 0; i < best.threads[t].size() && attempts < max_attempts;) {
                ConcurrentCase cand = best;
                cand.threads[t].erase(cand.threads[t].begin() + static_cast<std::ptrdiff_t>(i));
                if (fails(cand)) {
                    best = std::move(cand);
                    progress = true;
                } else {
                    ++i;
                }
            }
        }
        // Single ops of batches.
        for (std::size_t t = 0; t < best.threads.size(); ++t) {
            for (std::size_t i = 0; i < best.threads[t].size(); ++i) {
                auto* call = std::get_if<trace::CallStmt>(&best.threads[t][i]);
                if (call == nullptr || call->ops.size() < 2) continue;
                for (std::size_t j = 0;
                     j < call->ops.size() && call->ops.size() > 1 && attempts < max_attempts;) {
                    ConcurrentCase cand = best;
                    auto& cc = std::get<trace::CallStmt>(cand.threads[t][i]);
                    cc.ops.erase(cc.ops.begin() + static_cast<std::ptrdiff_t>(j));
                    cc.op_lines.resize(cc.ops.size());
                    if (fails(cand)) {
                        best = std::move(cand);
                        call = std::get_if<trace::CallStmt>(&best.threads[t][i]);
                        progress = true;
                    } else {
                        ++j;
                    }
                }
            }
        }
        // Data-path statements of the world's prefix.
        for (std::size_t i = 0; i < best.world.statements.size() && attempts < max_attempts;) {
            if (!is_data_path(best.world.statements[i].stmt)) {
                ++i;
                continue;
            }
            ConcurrentCase cand = best;
            cand.world.statements.erase(cand.world.statements.begin() +
                                        static_cast<std::ptrdiff_t>(i));
            if (fails(cand)) {
                best = std::move(cand);
                progress = true;
            } else {
                ++i;
            }
        }
    }
    return best;
}

ParallelSummary run_parallel(const ParallelOptions& opt, std::ostream& out) {
    const ParallelBudget b = parallel_budget();
    const std::uint64_t cases = opt.cases != 0 ? opt.cases : b.cases;
    const unsigned reps = opt.repetitions != 0 ? opt.repetitions : b.repetitions;
    const SutFactory sut = opt.sut ? opt.sut : impl_factory();
    ParallelSummary sum;
    Workers workers(3);  // every case has 2-3 threads; recycled across all of them
    const auto t0 = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < cases; ++i) {
        const std::uint64_t cs = opt.seed * 0x100000001b3ULL + i;
        const ConcurrentCase c = random_case(cs);
        CaseResult r = check_case(c, sut, reps, cs, &workers);
        ++sum.cases;
        sum.histories += r.runs;
        sum.nodes += r.nodes;
        sum.ops += r.ops;
        sum.ok_ops += r.ok_ops;
        sum.overlaps += r.overlaps;
        sum.invalidates += r.invalidates;
        sum.overlap.add(r.overlap);
        sum.stalled_runs += r.stalled_runs;
        for (std::size_t p = 0; p < kFaultPoints; ++p) sum.stall_hits[p] += r.stall_hits[p];
        if (!r.failed) continue;
        if (sum.failed++ == 0) sum.first_failed_case = cs;
        out << "parallel: case seed=" << cs << " (property seed " << opt.seed << ", case " << i
            << ") is NOT linearizable after " << r.runs << " runs\n";
        ConcurrentCase shown = c;
        CaseResult shown_r = std::move(r);
        if (opt.shrink) {
            shown = shrink_case(c, sut, reps * 4, cs);
            CaseResult again = check_case(shown, sut, reps * 4, cs, &workers);
            if (again.failed)
                shown_r = std::move(again);
            else
                shown = c;  // the shrunk case passed its re-check: show the original
        }
        out << "--- shrunk case (replay sequentially with `pviommu run`; threads run in parallel) "
               "---\n"
            << case_text(shown) << "--- recorded history ---\n"
            << history_text(shown_r.history) << "--- checker ---\n"
            << shown_r.check.report;
        if (!sum.first_failure) {
            sum.first_failure = shown;
            sum.first_failure_history = shown_r.history;
            sum.first_failure_report = shown_r.check.report;
        }
        if (opt.stop_at_first_failure) break;
    }
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out << "parallel: " << sum.cases << " cases x " << reps << " runs = " << sum.histories
        << " histories, " << sum.failed << " not linearizable, " << sum.nodes << " search nodes, "
        << sum.seconds << " s ("
        << (sum.seconds > 0 ? static_cast<double>(sum.cases) / sum.seconds : 0.0) << " cases/s, "
        << (sum.seconds > 0 ? static_cast<double>(sum.histories) / sum.seconds : 0.0)
        << " histories/s); " << sum.ops << " subops (" << sum.ok_ops << " succeeded), "
        << sum.invalidates << " invalidates, " << sum.overlaps << " overlapping pairs\n";
    out << "parallel: " << sum.overlap.text() << (sum.overlap.ok() ? "" : ": FAIL") << "\n";
    out << "parallel: stalls armed in " << sum.stalled_runs << " runs, hits:";
    for (FaultPoint p : all_fault_points())
        if (is_stall(p))
            out << " " << fault_point_name(p) << "=" << sum.stall_hits[static_cast<std::size_t>(p)];
    out << "\n";
    return sum;
}

int run_parallel_props(std::uint64_t seed, std::uint64_t cases, std::ostream& out) {
    ParallelOptions opt;
    opt.seed = seed;
    opt.cases = cases;
    return run_parallel(opt, out).passed() ? 0 : 1;
}

}  // namespace props
