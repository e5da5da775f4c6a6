// proofs/explore.cpp: explicit-state bounded model checking (see proofs/explore.h). The step
// function is ref, run through trace::Runner (so each statement gets the checks `pviommu run`
// makes: INV-INVALIDATE on balloons) or, for calls, as the runner runs them (the ABI, R10) with
// the ghost set H updated from the results (D23, spec/ghost.h); states are deduplicated by
// their canonical dump, which is exact (spec/state.cpp: every component, ioreq queues
// included), together with H.
#include "proofs/explore.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <unordered_map>
#include <variant>

#include "proofs/parallel.h"
#include "ref/hypervisor.h"
#include "spec/ghost.h"
#include "trace/runner.h"
#include "trace/trace.h"

namespace proofs {

namespace {

using namespace spec;

// A world: its TRACE-FORMAT statements and the universe its statements range over. Every call
// is made by every live domain; every event names every live domain (drain: every server).
struct World {
    std::string name;
    std::string text;
    std::vector<std::uint16_t> flags;  // map_page, map_foreign_page, lookup_foreign_page
    std::vector<std::uint64_t> bfns;   // lookups also try BFN_INVALID
    std::vector<std::uint64_t> gfns;
    std::vector<std::uint16_t> domids;  // map/lookup/unmap_foreign_page's target
    std::vector<std::uint16_t> ioservers;
};

// The worlds fit the conformance widths (frames, gfns, bfns < 16; domids 0..2; ioserver ids
// 0..1), so the encoding can be checked on every state they reach. Flags: rw, rw|swap_mfn and a
// reserved bit (R1); bfn 0 is also an identity bfn of the hardware domain in inclusive mode.
const std::vector<World>& worlds() {
    static const std::vector<World> w = {
        // XenGT's shape: the hardware domain emulates a guest's device; the guest maps its own
        // pages too. A one-request ring (R7: the second invalidate goes synchronous), D19's
        // max_count low enough to be reached, strict mode (no identity map).
        {"xengt",
         "host iommu=on mode=strict max_order=0 frames=6 max_count=3\n"
         "domain 0 hardware iommu_hw ram=1\n"
         "domain 1 guest iommu_hw ram=2\n"
         "ioserver 1 id=0 emulator=0 ring=2\n",
         {0x3, 0x7, 0x8},
         {0x0, 0x1},
         {0x0, 0x1},
         {1, 0},
         {0, 1}},
        // A stub domain (1) emulates guest 2 next to the hardware domain's server; an RMRR, a
        // Xen gfn in the guest, an armed -EIO (D10), a quota (D20), inclusive mode's identity
        // entries for the hardware domain.
        {"stubdom",
         "host iommu=on mode=inclusive max_order=0 frames=7 max_count=4\n"
         "domain 0 hardware ram=0\n"
         "domain 1 guest iommu_hw ram=1 quota=2\n"
         "domain 2 guest ram=2\n"
         "dm 1 over 2\n"
         "ioserver 2 id=0 emulator=1 ring=4\n"
         "ioserver 2 id=1 emulator=0 ring=2\n"
         "rmrr 1 bfn=0x1 count=1\n"
         "xen_gfn 2 gfn=0x2\n"
         "fault iommu_map count=1\n",
         {0x3, 0x7},
         {0x0, 0x1},
         {0x1, 0x2},
         {2},
         {0, 1}},
        // Order-1 calls (R2; the encoding covers order 0 only, so this world is their model
        // check): two-frame maps (flags 0x403: rw, order 1) next to order-0 ones, at aligned
        // bfns, on a guest whose two RAM frames form one aligned pair (gfn 1 is misaligned
        // for order 1).
        {"order1",
         "host iommu=on mode=strict max_order=1 frames=6\n"
         "domain 0 hardware iommu_hw ram=0\n"
         "domain 1 guest iommu_hw ram=2\n"
         "ioserver 1 id=0 emulator=0 ring=4\n",
         {0x3, 0x403},
         {0x0, 0x2},
         {0x0, 0x1},
         {1},
         {0}},
    };
    return w;
}

// Worlds for the edge-driven conformance only (conformance_on_edges; not among
// explore_world_names, so the BMC's ctest time is unchanged): inclusive mode with a usable
// hardware domain, whose lookups register tuples on its 1:1 map (R4's identity row, R6 v2's
// -EBUSY, and R9 v2's orphans when the target dies), two servers of one guest with one
// emulator (two tuples on one bfn: the "another tuple still uses bfn" rows of R5 and R9), and
// a guest without an IOMMU.
const std::vector<World>& extra_worlds() {
    static const std::vector<World> w = {
        {"inclusive",
         "host iommu=on mode=inclusive max_order=0 frames=6 max_count=3\n"
         "domain 0 hardware iommu_hw ram=0\n"
         "domain 1 guest iommu_hw ram=1\n"
         "domain 2 guest ram=1\n"
         "dm 1 over 2\n"
         "ioserver 1 id=0 emulator=0 ring=2\n"
         "ioserver 1 id=1 emulator=0 ring=2\n"
         "ioserver 2 id=0 emulator=1 ring=2\n",
         {0x3, 0x7},
         {0x0, 0x1},
         {0x0},
         {1, 2},
         {0, 1}},
    };
    return w;
}

const World& world_named(const std::string& n) {
    for (const World& w : worlds())
        if (w.name == n) return w;
    for (const World& w : extra_worlds())
        if (w.name == n) return w;
    throw std::invalid_argument("no explore world named " + n);
}

// Every statement of the universe that is well formed in `st` (TRACE-FORMAT: callers and event
// domains live, drained servers existing).
std::vector<trace::Stmt> statements(const World& w, const State& st) {
    std::vector<trace::Stmt> out;
    auto call = [&](DomId c, Op op) { out.push_back(trace::CallStmt{c, false, {op}, {0}}); };
    for (const auto& [c, dom] : st.domains) {
        call(c, QueryCaps{});
        for (std::uint64_t b : w.bfns) {
            UnmapPage u;
            u.bfn = Bfn{b};
            call(c, u);
            for (std::uint16_t d : w.domids)
                for (std::uint16_t s : w.ioservers) {
                    UnmapForeignPage uf;
                    uf.bfn = Bfn{b}, uf.domid = DomId{d}, uf.ioserver = IoServId{s};
                    call(c, uf);
                }
        }
        for (std::uint16_t f : w.flags)
            for (std::uint64_t g : w.gfns) {
                for (std::uint64_t b : w.bfns) {
                    MapPage mp;
                    mp.flags = Flags{f}, mp.bfn = Bfn{b}, mp.gfn = Gfn{g};
                    call(c, mp);
                }
                for (std::uint16_t d : w.domids)
                    for (std::uint16_t s : w.ioservers) {
                        for (std::uint64_t b : w.bfns) {
                            MapForeignPage mf;
                            mf.flags = Flags{f}, mf.bfn = Bfn{b}, mf.gfn = Gfn{g},
                            mf.domid = DomId{d}, mf.ioserver = IoServId{s};
                            call(c, mf);
                        }
                        LookupForeignPage lk;  // bfn = BFN_INVALID: look up only
                        lk.flags = Flags{f}, lk.gfn = Gfn{g}, lk.domid = DomId{d},
                        lk.ioserver = IoServId{s};
                        call(c, lk);
                        lk.bfn = Bfn{w.bfns.front()};
                        call(c, lk);
                    }
            }
        for (std::uint64_t g : w.gfns) {
            out.push_back(trace::BalloonStmt{c, Gfn{g}});
            out.push_back(trace::PopulateStmt{c, Gfn{g}});
        }
        out.push_back(trace::DestroyStmt{c});
    }
    for (const auto& [key, srv] : st.servers)
        out.push_back(trace::DrainStmt{key.first, key.second, std::nullopt});
    return out;
}

// Runs one statement of trace `t` on h with trace::Runner's checks; "" or the failures. H
// follows the statement (D23): a call's results (the ABI round trip the runner makes, R10's
// status checked), destroy's forget_emulator.
std::string run_one(trace::Trace& t, const trace::Stmt& s, spec::Hypervisor& h, Handed& handed,
                    std::vector<int>& statuses) {
    statuses.clear();
    if (const auto* call = std::get_if<trace::CallStmt>(&s)) {
        std::optional<State> before;  // record_handed reads it for unmap_foreign_page only
        if (std::any_of(call->ops.begin(), call->ops.end(),
                        [](const Op& op) { return std::holds_alternative<UnmapForeignPage>(op); }))
            before = h.snapshot();
        std::vector<pv_iommu_op> raw;
        for (const Op& op : call->ops) raw.push_back(encode(op));
        const long rc = h.iommu_op(call->caller, raw);
        std::vector<OpResult> results;
        for (const pv_iommu_op& r : raw) {
            results.push_back({static_cast<Status>(r.status), decode(r)});
            statuses.push_back(r.status);
        }
        record_handed(handed, before ? &*before : nullptr, h.snapshot(), call->caller, results);
        return rc == 0 ? "" : "the hypercall returned " + std::to_string(rc) + ", not 0 (R10)\n";
    }
    t.statements.assign(1, trace::Statement{1, s});
    trace::Runner r(t, h);
    const trace::StepRecord rec = r.step();
    std::string f;
    for (const std::string& x : rec.failures) f += x + "\n";
    if (const auto* d = std::get_if<trace::DestroyStmt>(&s)) forget_emulator(handed, d->d);
    return f;
}

// H as text, for the states' identity.
std::string handed_text(const Handed& h) {
    std::string out;
    for (const auto& [k, m] : h)
        out += "H " + std::to_string(k.emulator.v) + " " + std::to_string(k.bfn.v) + " " +
               std::to_string(k.domid.v) + " " + std::to_string(k.ioserver.v) + " " +
               std::to_string(m.v) + "\n";
    return out;
}

struct Node {
    std::size_t parent;  // index into nodes; the initial state is its own parent
    trace::Stmt via;     // the statement from the parent
};

std::string path_trace(const World& w, const std::vector<Node>& nodes, std::size_t i,
                       const std::string& why) {
    std::vector<std::size_t> chain;
    for (; nodes[i].parent != i; i = nodes[i].parent) chain.push_back(i);
    std::ostringstream os;
    os << "# explicit BMC counterexample (proofs/explore.cpp), world " << w.name << ":\n";
    std::istringstream lines(why);
    for (std::string l; std::getline(lines, l);)
        if (!l.empty()) os << "#   " << l << "\n";
    os << w.text;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it)
        os << trace::statement_text(nodes[*it].via) << "\ncheck invariants\n";
    return os.str();
}

// The planted bugs of the explicit BMC (explore_mutant_names): each edits the successor that
// ref computed, as a buggy model would have left it.
State planted(const std::string& mutant, const trace::Stmt& s, const State& pre, State post) {
    if (mutant.empty()) return post;
    if (mutant == "balloon_frees_with_tuples") {
        // The ballooned frame is freed although tuples (and their references) remain.
        if (const auto* b = std::get_if<trace::BalloonStmt>(&s))
            if (const auto m = pre.p2m(b->d, b->gfn);
                m && pre.m2b.contains(*m) && post.m2b.contains(*m))
                post.frames[*m].state = FrameState::free;
        return post;
    }
    if (mutant == "unmap_foreign_keeps_ref") {
        // unmap_foreign_page drops the tuple but not its reference.
        const auto* c = std::get_if<trace::CallStmt>(&s);
        if (c != nullptr && std::holds_alternative<UnmapForeignPage>(c->ops.at(0)))
            for (auto& [m, f] : post.frames)
                if (const Frame before = pre.frame(m); f.count + 1 == before.count) ++f.count;
        return post;
    }
    if (mutant == "destroy_leaves_foreign_entry") {
        // R9: a surviving emulator's foreign entry keeps pointing at the dead domain's frame
        // instead of turning scratch (D7).
        if (std::holds_alternative<trace::DestroyStmt>(s))
            for (auto& [e, dom] : post.domains)
                for (auto& [b, en] : dom.iommu)
                    if (const Domain* was = pre.domain(e); was != nullptr)
                        if (const auto it = was->iommu.find(b);
                            it != was->iommu.end() && it->second.kind == EntryKind::foreign &&
                            en.kind == EntryKind::scratch)
                            en = it->second;
        return post;
    }
    if (mutant == "teardown-v1") {
        // R9 v1: step 2 drops every tuple of a server of the destroyed domain with its
        // reference, where v2 leaves an orphan (the emulator may still reach the frame).
        if (const auto* ds = std::get_if<trace::DestroyStmt>(&s))
            for (auto it = post.m2b.begin(); it != post.m2b.end();) {
                const Mfn m = it->first;
                std::erase_if(it->second, [&](const auto& kv) {
                    const bool was_orphan = pre.m2b.contains(m) &&
                                            pre.m2b.at(m).contains(kv.first) &&
                                            pre.m2b.at(m).at(kv.first).orphan;
                    if (!kv.second.orphan || was_orphan || kv.first.domid != ds->d) return false;
                    if (--post.frames.at(m).count == 0) post.frames.erase(m);  // R8
                    return true;
                });
                it = it->second.empty() ? post.m2b.erase(it) : std::next(it);
            }
        return post;
    }
    throw std::invalid_argument("no explore mutant named " + mutant);
}

}  // namespace

namespace {
// Each planted bug of `planted`, the invariant that must catch it, and the world it runs on.
struct ExploreMutant {
    std::string name, expected, world;
};
const std::vector<ExploreMutant>& explore_mutants() {
    static const std::vector<ExploreMutant> m = {
        {"balloon_frees_with_tuples", "INV-NO-FREE-WHILE-MAPPED", "xengt"},
        {"unmap_foreign_keeps_ref", "INV-COUNT", "xengt"},
        {"destroy_leaves_foreign_entry", "INV-NO-FREE-WHILE-MAPPED", "xengt"},
        // The hardware domain emulates guest 2 without an IOMMU: its lookups hand out bus
        // addresses that are the frames themselves, which R9 v2 keeps as orphans.
        {"teardown-v1", "INV-DEVICE-SAFE", "stubdom"}};
    return m;
}
}  // namespace

std::vector<std::string> explore_mutant_names() {
    std::vector<std::string> n;
    for (const auto& m : explore_mutants()) n.push_back(m.name);
    return n;
}

MutantResult check_explore_mutant(const std::string& name) {
    const auto it = std::find_if(explore_mutants().begin(), explore_mutants().end(),
                                 [&](const auto& m) { return m.name == name; });
    if (it == explore_mutants().end())
        throw std::invalid_argument("no explore mutant named " + name);
    ExploreOptions o;
    o.depth = 4;
    o.z3_every = 0;
    o.mutant = name;
    const ExploreResult r = explore(it->world, o);
    MutantResult m{"bmc:" + name, "explicit bmc (ref, world " + it->world + ")",
                   it->expected,  false,
                   r.seconds,     r.trace};
    m.caught = r.violation && r.trace.find(it->expected) != std::string::npos;
    if (!r.violation) m.detail = "no violation within depth 4";
    return m;
}

std::vector<std::string> explore_world_names() {
    std::vector<std::string> n;
    for (const World& w : worlds()) n.push_back(w.name);
    return n;
}

ExploreResult explore(const std::string& name, const ExploreOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const World& w = world_named(name);
    ExploreResult res;
    res.world = w.name;
    const trace::ParseResult pr = trace::parse("explore:" + w.name, w.text);
    if (const auto* e = std::get_if<trace::ParseError>(&pr))
        throw std::logic_error("explore world " + w.name + ": " + e->text());
    trace::Trace t = std::get<trace::Trace>(pr);
    ref::Hypervisor init(t.host);
    for (trace::Runner r(t, init); !r.done();)
        if (const trace::StepRecord rec = r.step(); rec.fatal)
            throw std::logic_error("explore world " + w.name + ": " + rec.failures.at(0));
    t.statements.clear();

    std::vector<Node> nodes{{0, trace::CheckInvariants{}}};
    // A state of the exploration: the model's state and the ghost set H of its path (D23).
    struct Point {
        std::size_t node;
        State st;
        Handed h;
    };
    std::unordered_map<std::string, std::size_t> seen{{dump(init.state()), 0}};
    std::vector<Point> level{{0, init.state(), {}}};
    res.per_level.push_back(1);
    std::size_t fresh = 0;  // new states so far (z3_every / step_every count them)

    auto fail = [&](std::size_t node, const std::string& why) {
        res.violation = true;
        res.trace = path_trace(w, nodes, node, why);
    };
    // The Z3 checks of one level's new states `lv`: the encoded invariants on those at the
    // indices `inv`, one encoded step from those at `step`, on the machine's threads (each
    // query has its own context). The first failure in order wins.
    auto z3_checks = [&](const std::vector<Point>& lv, const std::vector<std::size_t>& inv,
                         const std::vector<std::size_t>& step) {
        std::vector<std::pair<std::size_t, bool>> work;  // (index into lv, a step check)
        for (std::size_t i : inv) work.emplace_back(i, false);
        for (std::size_t i : step) work.emplace_back(i, true);
        std::vector<std::string> out(work.size());
        parallel_for(work.size(), default_jobs(), [&](std::size_t k) {
            const Point& p = lv[work[k].first];
            out[k] = work[k].second ? encoded_step_from(p.st, p.h, opt.z3)
                                    : encoded_invariants_on(p.st, p.h, opt.z3);
        });
        res.z3_checked += inv.size();
        res.z3_steps += step.size();
        for (std::size_t k = 0; k < work.size() && !res.violation && !res.unknown; ++k) {
            if (out[k].empty()) continue;
            const std::size_t node = lv[work[k].first].node;
            if (out[k].rfind("unknown", 0) == 0) {
                res.unknown = true;
                res.detail = std::string("a Z3 query (") +
                             (work[k].second ? "one encoded step" : "the encoded invariants") +
                             ") was " + out[k] + " on this state:\n" + dump(lv[work[k].first].st) +
                             handed_text(lv[work[k].first].h);
            } else {
                fail(node, work[k].second
                               ? "one encoded step further: " + out[k]
                               : "the encoded invariant " + out[k] + " fails on a reached state");
            }
        }
    };
    auto pick = [&](std::size_t every) { return every != 0 && fresh % every == 0; };

    if (const auto v = check_invariants(init.state(), Handed{}); !v.empty())
        fail(0, v.front().invariant + ": " + v.front().detail);
    else
        z3_checks(level,
                  opt.z3_every != 0 ? std::vector<std::size_t>{0} : std::vector<std::size_t>{},
                  opt.step_every != 0 ? std::vector<std::size_t>{0} : std::vector<std::size_t>{});
    std::vector<int> statuses;  // the current call's statuses (run_one)
    for (unsigned k = 1; k <= opt.depth && !res.violation && !res.unknown && !level.empty(); ++k) {
        std::vector<Point> next;
        std::vector<std::size_t> inv, step;
        for (const Point& from : level) {
            for (const trace::Stmt& s : statements(w, from.st)) {
                ref::Hypervisor h(from.st);
                Handed handed = from.h;
                std::string why = run_one(t, s, h, handed, statuses);
                ++res.edges;
                // ref's successor in place; a copy only for a planted bug or a new state (most
                // statements fail and change nothing).
                const std::optional<State> mutated =
                    opt.mutant.empty() ? std::nullopt
                                       : std::optional(planted(opt.mutant, s, from.st, h.state()));
                const State& post = mutated ? *mutated : h.state();
                if (opt.on_edge) opt.on_edge(Edge{from.st, from.h, s, post, statuses});
                if (why.empty() && post == from.st && handed == from.h) continue;
                const auto [it, added] =
                    seen.try_emplace(dump(post) + handed_text(handed), nodes.size());
                if (!added && why.empty()) continue;
                // A failing statement into a known state gets a node of its own, for its trace.
                nodes.push_back({from.node, s});
                if (why.empty())
                    for (const Violation& v : check_invariants(post, handed))
                        why += v.invariant + ": " + v.detail + "\n";
                if (!why.empty()) {
                    fail(nodes.size() - 1, why);
                    break;
                }
                ++fresh;
                if (pick(opt.z3_every)) inv.push_back(next.size());
                if (pick(opt.step_every)) step.push_back(next.size());
                next.push_back({nodes.size() - 1, post, std::move(handed)});
            }
            if (res.violation) break;
        }
        if (!res.violation) z3_checks(next, inv, step);
        res.depth = k;
        res.per_level.push_back(next.size());
        level = std::move(next);
    }
    res.states = seen.size();
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

}  // namespace proofs
