// proofs/encoding_matches_ref.cpp: the link between the SMT encoding and ref. Random concrete
// states of small worlds are built by driving ref with random operations; each sample takes
// such a state and one more operation, runs it on ref, and evaluates the encoded transition on
// the same state: status and every successor component must agree. The state is handed to Z3
// as concrete arrays (lambdas over ite tables), ghosts included (their slots computed here as
// INV-COUNT describes them), so the solver only evaluates; the quantified checks (claimed,
// "a tuple exists") are decided by it over the finite small-width domains.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>

#include "proofs/encoding.h"
#include "proofs/explore.h"
#include "proofs/prove.h"
#include "ref/hypervisor.h"
#include "spec/hypervisor.h"
#include "spec/ops.h"

namespace proofs {

namespace {

using z3::expr;
using namespace spec;

// Widths of the samples: 16 frame numbers, domids 0..2 (3 stands for DOMID_SELF), ioserver ids
// 0..1, counts up to 63.
Widths conf_widths() { return {4, 2, 1, 6}; }
constexpr unsigned kAddrs = 16, kDoms = 3, kSids = 2;

// A table over a one-index domain: `def` everywhere but the listed points (a constant array
// with stores; lambdas made Z3 4.8.12 abort when the context was deleted).
expr table(z3::context&, const std::vector<z3::sort>& dom, const expr& def,
           const std::vector<std::pair<std::vector<expr>, expr>>& points) {
    expr a = z3::const_array(dom[0], def);
    for (const auto& [ix, v] : points) a = z3::store(a, ix[0], v);
    return a;
}
// A two-index ghost slot array: only its slots below n matter (INV-COUNT), so a free constant
// pinned at the listed points.
expr table2(z3::context& c, const std::string& name, const z3::sort& d1, const z3::sort& d2,
            const z3::sort& r, const std::vector<std::pair<std::vector<expr>, expr>>& points,
            std::vector<expr>& facts) {
    z3::sort_vector d(c);
    d.push_back(d1);
    d.push_back(d2);
    expr a = c.constant(name.c_str(), c.array_sort(d, r));
    for (const auto& [ix, v] : points) {
        z3::expr_vector iv(c);
        iv.push_back(ix[0]);
        iv.push_back(ix[1]);
        facts.push_back(z3::select(a, iv) == v);
    }
    return a;
}

struct Enc {
    z3::context& c;
    const Sorts& so;
    expr a(std::uint64_t v) const { return c.bv_val(v, so.w.addr); }
    expr d(DomId v) const {
        return v == kDomIdSelf ? c.bv_val(-1, so.w.dom) : c.bv_val(v.v, so.w.dom);
    }
    expr s(IoServId v) const { return c.bv_val(v.v, so.w.sid); }
    expr k2(unsigned v) const { return c.bv_val(v, 2); }
    expr cnt(std::uint64_t v) const { return c.bv_val(v, so.w.cnt); }
    expr da(DomId x, std::uint64_t y) const { return z3::concat(d(x), a(y)); }
    expr ds(DomId x, IoServId y) const { return z3::concat(d(x), s(y)); }
    expr tup(Mfn m, const Tuple& t) const {
        return z3::concat(a(m.v), z3::concat(a(t.bfn.v), z3::concat(d(t.domid), s(t.ioserver))));
    }
};

bool drop_class_ref(const State& st, const Tuple& t, const TupleInfo& info) {
    const IoServer* srv = st.server(t.domid, t.ioserver);
    return info.swap && srv != nullptr && st.usable(srv->emulator);
}

// spec::State -> St (concrete). Ghosts: slots in (mfn, tuple) order per class, locals in
// (domid, bfn) order.
St encode_state(const Sorts& so, const State& st, std::vector<expr>& facts) {
    z3::context& c = so.ctx;
    Enc e{c, so};
    St s = fresh_state(so, "conf.");
    s.host_iommu = c.bool_val(st.host.iommu);
    s.mode = e.k2(static_cast<unsigned>(st.host.mode));
    s.nframes = e.a(st.host.frames);
    // D19: a max_count above the count sort's top is that top (the small worlds' counts stay
    // far below it: at most 1 + 12 steps' tuples and entries).
    s.maxc = e.cnt(std::min<std::uint64_t>(st.host.max_count, (std::uint64_t{1} << so.w.cnt) - 1));
    std::vector<std::pair<std::vector<expr>, expr>> fstate, owner, count, alloc, live, hw, iommu_hw,
        dm, rmrr, p2mv, p2m, srv, emu, ekind, emfn, removed, m2b, swap, nT0, nT1, slotT0, slotT1,
        idxT, tcls, nL, slotL, idxL, p2mg;
    for (const auto& [m, f] : st.frames) {
        fstate.push_back({{e.a(m.v)},
                          e.k2(f.state == FrameState::free  ? kFree
                               : f.state == FrameState::xen ? kXen
                                                            : kOwned)});
        owner.push_back({{e.a(m.v)}, e.d(f.owner)});
        count.push_back({{e.a(m.v)}, e.cnt(f.count)});
        alloc.push_back({{e.a(m.v)}, c.bool_val(f.allocated)});
    }
    std::map<std::uint64_t, std::uint64_t> nloc;
    for (const auto& [id, dom] : st.domains) {
        live.push_back({{e.d(id)}, c.bool_val(true)});
        hw.push_back({{e.d(id)}, c.bool_val(dom.hardware)});
        iommu_hw.push_back({{e.d(id)}, c.bool_val(dom.iommu_hw)});
        for (DomId t : dom.dm_over) dm.push_back({{z3::concat(e.d(id), e.d(t))}, c.bool_val(true)});
        for (std::uint64_t b = 0; b < kAddrs; ++b)
            for (const Range& r : dom.rmrr)
                if (r.meets(Bfn{b}, 1)) rmrr.push_back({{e.da(id, b)}, c.bool_val(true)});
        for (const auto& [g, m] : dom.p2m) {
            p2mv.push_back({{e.da(id, g.v)}, c.bool_val(true)});
            p2m.push_back({{e.da(id, g.v)}, e.a(m.v)});
            if (st.frame(m).state != FrameState::xen) p2mg.push_back({{e.a(m.v)}, e.a(g.v)});
        }
        for (const auto& [b, en] : dom.iommu) {
            const unsigned k = en.kind == EntryKind::local     ? kLocal
                               : en.kind == EntryKind::foreign ? kForeign
                                                               : kScratch;
            ekind.push_back({{e.da(id, b.v)}, e.k2(k)});
            emfn.push_back({{e.da(id, b.v)}, e.a(en.mfn.v)});
            if (en.kind == EntryKind::local) {
                const std::uint64_t i = nloc[en.mfn.v]++;
                slotL.push_back({{e.a(en.mfn.v), e.cnt(i)}, e.da(id, b.v)});
                idxL.push_back({{e.da(id, b.v)}, e.cnt(i)});
            }
        }
        for (Bfn b : dom.removed_identity) removed.push_back({{e.da(id, b.v)}, c.bool_val(true)});
    }
    for (const auto& [m, n] : nloc) nL.push_back({{e.a(m)}, e.cnt(n)});
    for (const auto& [key, sv] : st.servers) {
        srv.push_back({{e.ds(key.first, key.second)}, c.bool_val(true)});
        emu.push_back({{e.ds(key.first, key.second)}, e.d(sv.emulator)});
    }
    for (const auto& [m, tuples] : st.m2b) {
        std::uint64_t n[2] = {0, 0};
        for (const auto& [t, info] : tuples) {
            const expr tt = e.tup(m, t);
            const bool k = drop_class_ref(st, t, info);
            m2b.push_back({{tt}, c.bool_val(true)});
            swap.push_back({{tt}, c.bool_val(info.swap)});
            tcls.push_back({{tt}, c.bool_val(k)});
            idxT.push_back({{tt}, e.cnt(n[k])});
            (k ? slotT1 : slotT0).push_back({{e.a(m.v), e.cnt(n[k])}, tt});
            ++n[k];
        }
        nT0.push_back({{e.a(m.v)}, e.cnt(n[0])});
        nT1.push_back({{e.a(m.v)}, e.cnt(n[1])});
    }
    const expr f = c.bool_val(false);
    s.fstate = table(c, {so.A}, e.k2(kFree), fstate);
    s.owner = table(c, {so.A}, e.d(DomId{0}), owner);
    s.count = table(c, {so.A}, e.cnt(0), count);
    s.alloc = table(c, {so.A}, f, alloc);
    s.live = table(c, {so.D}, f, live);
    s.hw = table(c, {so.D}, f, hw);
    s.iommu_hw = table(c, {so.D}, f, iommu_hw);
    s.dm = table(c, {so.DD}, f, dm);
    s.rmrr = table(c, {so.DA}, f, rmrr);
    s.p2mv = table(c, {so.DA}, f, p2mv);
    s.p2m = table(c, {so.DA}, e.a(0), p2m);
    s.srv = table(c, {so.DS}, f, srv);
    s.emu = table(c, {so.DS}, e.d(DomId{0}), emu);
    s.ekind = table(c, {so.DA}, e.k2(kNone), ekind);
    s.emfn = table(c, {so.DA}, e.a(0), emfn);
    s.removed = table(c, {so.DA}, f, removed);
    s.m2b = table(c, {so.T}, f, m2b);
    s.swap = table(c, {so.T}, f, swap);
    s.fault = e.cnt(st.fault_iommu_map);
    s.nT0 = table(c, {so.A}, e.cnt(0), nT0);
    s.nT1 = table(c, {so.A}, e.cnt(0), nT1);
    s.slotT0 = table2(c, "conf.slotT0", so.A, so.C, so.T, slotT0, facts);
    s.slotT1 = table2(c, "conf.slotT1", so.A, so.C, so.T, slotT1, facts);
    s.idxT = table(c, {so.T}, e.cnt(0), idxT);
    s.tcls = table(c, {so.T}, f, tcls);
    s.nL = table(c, {so.A}, e.cnt(0), nL);
    s.slotL = table2(c, "conf.slotL", so.A, so.C, so.DA, slotL, facts);
    s.idxL = table(c, {so.DA}, e.cnt(0), idxL);
    s.p2mg = table(c, {so.A}, e.a(0), p2mg);
    return s;
}

// A random small world on ref: the host, domains 0..2 (at most one hardware), privileges,
// servers, RMRRs, Xen gfns, then `steps` random operations.
struct Gen {
    std::mt19937_64 rng;
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng() % n; }
    bool coin(unsigned pct) { return below(100) < pct; }
};

struct Sample {
    std::string op;  // the transition's name
    DomId c;         // caller (or the event's domain)
    Flags flags;
    Bfn bfn;
    Gfn gfn;
    DomId domid;
    IoServId ioserver;
    bool bfn_invalid = true;  // lookup_foreign_page
    Mfn mfn;                  // destroy_drop_tuple: the tuple's frame
};

// R9's teardown steps (destroy_drop_tuple, destroy_drop_local, destroy_finish; the P2M goes by
// balloon) that ref's destroy(d) amounts to on st, in ref's order: the tuples of each server d
// serves or that serves d, every RAM gfn of d, every local entry of d's context, the end.
std::vector<Sample> destroy_chain(const State& st, DomId d) {
    std::vector<Sample> out;
    auto step = [&](const char* op, Bfn b, Gfn g, DomId dom, IoServId i, Mfn m) {
        out.push_back(Sample{op, d, Flags{}, b, g, dom, i, true, m});
    };
    for (const auto& [key, srv] : st.servers) {
        if (key.first != d && srv.emulator != d) continue;
        for (const auto& [m, tuples] : st.m2b)
            for (const auto& [t, info] : tuples)
                if (t.domid == key.first && t.ioserver == key.second)
                    step("destroy_drop_tuple", t.bfn, Gfn{}, t.domid, t.ioserver, m);
    }
    const Domain& dom = st.domains.at(d);
    for (const auto& [g, m] : dom.p2m)
        if (st.frame(m).state != FrameState::xen)
            step("balloon", Bfn{}, g, DomId{}, IoServId{}, Mfn{});
    for (const auto& [b, en] : dom.iommu)
        if (en.kind == EntryKind::local)
            step("destroy_drop_local", b, Gfn{}, DomId{}, IoServId{}, Mfn{});
    step("destroy_finish", Bfn{}, Gfn{}, DomId{}, IoServId{}, Mfn{});
    return out;
}

// One teardown step on a state, as the encoding's step does it (the conformance test compares
// each encoded step with it, and the chain's end with ref's destroy).
State teardown_step(const State& st, const Sample& smp) {
    State s = st;
    auto put_ref = [&](Mfn m) {  // R8: freed (a fresh frame) at 0
        Frame& f = s.frames.at(m);
        if (--f.count == 0) s.frames.erase(m);
    };
    if (smp.op == "balloon") {
        ref::Hypervisor hv(s);
        (void)hv.balloon(smp.c, smp.gfn);
        return hv.state();
    }
    if (smp.op == "destroy_drop_tuple") {
        const Tuple t{smp.bfn, smp.domid, smp.ioserver};
        auto it = s.m2b.find(smp.mfn);
        it->second.erase(t);
        if (it->second.empty()) s.m2b.erase(it);
        put_ref(smp.mfn);
        const DomId e = s.servers.at({t.domid, t.ioserver}).emulator;
        bool used = false;  // claimed(e, bfn)
        for (const auto& [m, ts] : s.m2b)
            for (const auto& [u, info] : ts)
                used =
                    used || (u.bfn == t.bfn && s.servers.at({u.domid, u.ioserver}).emulator == e);
        auto& ctx = s.domains.at(e).iommu;
        if (auto en = ctx.find(t.bfn);
            en != ctx.end() && en->second.kind == EntryKind::foreign && !used)
            en->second = Entry{Mfn{}, en->second.perms, EntryKind::scratch};  // D7
        return s;
    }
    if (smp.op == "destroy_drop_local") {
        auto& ctx = s.domains.at(smp.c).iommu;
        const Mfn m = ctx.at(smp.bfn).mfn;
        ctx.erase(smp.bfn);
        put_ref(m);
        return s;
    }
    // destroy_finish: the domain, its servers and those serving it, every privilege naming it.
    std::erase_if(s.servers, [&](const auto& kv) {
        return kv.first.first == smp.c || kv.second.emulator == smp.c;
    });
    s.domains.erase(smp.c);
    for (auto& [id, dom] : s.domains) dom.dm_over.erase(smp.c);
    return s;
}

// A teardown step `what` that acts on st itself (for the non-vacuity witnesses): a tuple drop
// or a local drop of any live domain's chain, or the end of a chain that is only the end.
std::optional<Sample> acting_step(const std::string& what, const State& st) {
    for (const auto& [d, dom] : st.domains) {
        const std::vector<Sample> ch = destroy_chain(st, d);
        for (const Sample& smp : ch)
            if (smp.op == what && (what != "destroy_finish" || ch.size() == 1)) return smp;
    }
    return std::nullopt;
}
bool is_destroy_step(const std::string& op) { return op.rfind("destroy_", 0) == 0; }

// `text` (if given) gets the world as TRACE-FORMAT statements, so that `pviommu run` rebuilds it.
std::unique_ptr<ref::Hypervisor> make_world(Gen& g, std::string* text = nullptr) {
    std::ostringstream os;
    Host h;
    h.iommu = g.coin(90);
    h.mode = static_cast<IommuMode>(g.below(3));
    h.max_order = 0;
    h.frames = 6 + g.below(9);  // 6..14: nframes fits the 4-bit sort
    if (g.coin(25)) h.max_count = static_cast<std::uint32_t>(1 + g.below(4));  // D19: 1..4
    os << "host iommu=" << (h.iommu ? "on" : "off") << " mode=" << mode_name(h.mode)
       << " max_order=0 frames=" << h.frames;
    if (h.max_count != spec::kMaxCountLimit) os << " max_count=" << h.max_count;
    os << "\n";
    auto hvp = std::make_unique<ref::Hypervisor>(h);
    ref::Hypervisor& hv = *hvp;
    bool have_hw = false;
    std::vector<DomId> doms;
    for (std::uint16_t d = 0; d < kDoms; ++d) {
        if (!g.coin(85)) continue;
        const bool hwd = !have_hw && g.coin(40);
        have_hw = have_hw || hwd;
        const bool io = g.coin(75);
        const std::uint64_t ram = g.below(4);
        if (hv.create_domain(DomId{d}, hwd ? DomainRole::hardware : DomainRole::guest, io, ram)) {
            doms.push_back(DomId{d});
            os << "domain " << d << (hwd ? " hardware" : " guest") << (io ? " iommu_hw" : "")
               << " ram=" << ram << "\n";
        }
    }
    for (DomId e : doms)
        for (DomId t : doms)
            if (e != t && g.coin(40)) {
                hv.grant_dm(e, t);
                os << "dm " << e.v << " over " << t.v << "\n";
            }
    for (DomId t : doms)
        for (std::uint16_t id = 0; id < kSids; ++id)
            if (g.coin(60)) {
                const DomId e = doms[g.below(doms.size())];
                const auto ring = static_cast<std::uint32_t>(g.below(5));
                hv.create_ioserver(t, IoServId{id}, e, ring);
                os << "ioserver " << t.v << " id=" << id << " emulator=" << e.v << " ring=" << ring
                   << "\n";
            }
    for (DomId d : doms) {
        if (g.coin(20)) {
            const Bfn b{g.below(kAddrs)};
            const std::uint64_t n = 1 + g.below(2);
            hv.add_rmrr(d, b, n);
            os << "rmrr " << d.v << " bfn=" << b.v << " count=" << n << "\n";
        }
        if (g.coin(15)) {
            const Gfn x{4 + g.below(4)};
            if (!hv.state().p2m(d, x) && hv.add_xen_gfn(d, x))
                os << "xen_gfn " << d.v << " gfn=" << x.v << "\n";
        }
    }
    if (g.coin(10)) {
        hv.arm_iommu_map_fault(1);
        os << "fault iommu_map count=1\n";
    }
    if (text != nullptr) *text = os.str();
    return hvp;
}

Sample random_op(Gen& g, const State& st) {
    static const char* names[] = {"map_foreign_page", "unmap_foreign_page", "lookup_foreign_page",
                                  "map_page",         "unmap_page",         "balloon",
                                  "populate",         "query_caps",         "drain"};
    Sample s;
    s.op = names[g.below(g.coin(10) ? 9 : 7)];  // query_caps and drain: rarer (no edit)
    // R9: rare (it ends most of the world), less so once tuples exist for its chain to drop.
    if (g.coin(st.m2b.empty() ? 3 : 12)) s.op = "destroy";
    std::vector<DomId> live;
    for (const auto& [d, dom] : st.domains) live.push_back(d);
    s.c = live.empty() ? DomId{0} : live[g.below(live.size())];
    std::uint16_t fl = static_cast<std::uint16_t>(g.below(8));  // r, w, swap
    if (g.coin(5)) fl |= 0x8;                                   // a reserved bit (R1)
    s.flags = Flags{fl};
    // Addresses: mostly ones in use (mapped gfns, tuple bfns), some anywhere.
    s.bfn = Bfn{g.below(kAddrs)};
    s.gfn = Gfn{g.below(6)};
    if (!st.m2b.empty() && g.coin(40)) {
        auto it = st.m2b.begin();
        std::advance(it, static_cast<long>(g.below(st.m2b.size())));
        auto jt = it->second.begin();
        std::advance(jt, static_cast<long>(g.below(it->second.size())));
        s.bfn = jt->first.bfn;
        s.domid = jt->first.domid;
        s.ioserver = jt->first.ioserver;
    } else {
        s.domid = g.coin(5) ? kDomIdSelf : DomId{static_cast<std::uint16_t>(g.below(kDoms))};
        s.ioserver = IoServId{static_cast<std::uint16_t>(g.below(kSids))};
    }
    // Aimed at the success rows and those after them (-EEXIST, D19's -EOVERFLOW): an emulator
    // of a server, that server's target and one of its RAM gfns, and often a bfn C uses.
    if (!st.servers.empty() && g.coin(35)) {
        auto it = st.servers.begin();
        std::advance(it, static_cast<long>(g.below(st.servers.size())));
        s.c = it->second.emulator;
        s.domid = it->first.first;
        s.ioserver = it->first.second;
        if (const Domain* t = st.domain(s.domid); t != nullptr && !t->p2m.empty()) {
            auto pt = t->p2m.begin();
            std::advance(pt, static_cast<long>(g.below(t->p2m.size())));
            s.gfn = pt->first;
        }
        if (const Domain* cd = st.domain(s.c); cd != nullptr && !cd->iommu.empty() && g.coin(50)) {
            auto et = cd->iommu.begin();
            std::advance(et, static_cast<long>(g.below(cd->iommu.size())));
            s.bfn = et->first;
        }
    }
    s.bfn_invalid = g.coin(80);
    // drain names an existing server (ref's precondition), as `drain T id=S` must.
    if (s.op == "drain") {
        if (st.servers.empty()) {
            s.op = "query_caps";
        } else {
            auto it = st.servers.begin();
            std::advance(it, static_cast<long>(g.below(st.servers.size())));
            s.c = it->first.first;
            s.ioserver = it->first.second;
        }
    }
    // A destroy is mostly aimed at a domain some tuple's server names (its target or its
    // emulator), so that the teardown chain drops tuples.
    if (s.op == "destroy" && !st.m2b.empty() && g.coin(75)) {
        auto it = st.m2b.begin();
        std::advance(it, static_cast<long>(g.below(st.m2b.size())));
        const Tuple& t = it->second.begin()->first;
        const IoServer* srv = st.server(t.domid, t.ioserver);
        s.c = g.coin(50) || srv == nullptr ? t.domid : srv->emulator;
        if (st.domain(s.c) == nullptr) s.c = t.domid;
    }
    return s;
}

// Runs the sample on ref; returns its status code (-status) and leaves the post-state in hv.
// query_caps: `caps` (if given) gets the flags it returned.
unsigned run_ref(ref::Hypervisor& hv, const Sample& s, Flags* caps = nullptr) {
    Status st = Status::ok;
    if (s.op == "query_caps") {
        QueryCaps op;
        st = hv.query_caps(s.c, op);
        if (caps != nullptr) *caps = op.flags;
        return static_cast<unsigned>(-static_cast<int>(st));
    }
    if (s.op == "drain") {
        (void)hv.drain(s.c, s.ioserver, UINT32_MAX);
        return 0;
    }
    if (s.op == "map_foreign_page") {
        MapForeignPage op;
        op.flags = s.flags, op.bfn = s.bfn, op.gfn = s.gfn, op.domid = s.domid,
        op.ioserver = s.ioserver;
        st = hv.map_foreign_page(s.c, op);
    } else if (s.op == "unmap_foreign_page") {
        UnmapForeignPage op;
        op.flags = s.flags, op.bfn = s.bfn, op.domid = s.domid, op.ioserver = s.ioserver;
        st = hv.unmap_foreign_page(s.c, op);
    } else if (s.op == "lookup_foreign_page") {
        LookupForeignPage op;
        op.flags = s.flags, op.bfn = s.bfn_invalid ? kBfnInvalid : s.bfn, op.gfn = s.gfn,
        op.domid = s.domid, op.ioserver = s.ioserver;
        st = hv.lookup_foreign_page(s.c, op);
    } else if (s.op == "map_page") {
        MapPage op;
        op.flags = s.flags, op.bfn = s.bfn, op.gfn = s.gfn;
        st = hv.map_page(s.c, op);
    } else if (s.op == "unmap_page") {
        UnmapPage op;
        op.flags = s.flags, op.bfn = s.bfn;
        st = hv.unmap_page(s.c, op);
    } else if (s.op == "balloon") {
        (void)hv.balloon(s.c, s.gfn);
    } else if (s.op == "destroy") {
        hv.destroy(s.c);
    } else {
        (void)hv.populate(s.c, s.gfn);
    }
    return static_cast<unsigned>(-static_cast<int>(st));
}

std::string sample_text(const Sample& s) {
    std::ostringstream os;
    os << s.op << " C=" << s.c.v << " flags=" << flags_text(s.flags) << " bfn=" << s.bfn.v
       << (s.bfn_invalid ? "(lookup: BFN_INVALID)" : "") << " gfn=" << s.gfn.v
       << " domid=" << s.domid.v << " ioserver=" << s.ioserver.v;
    if (s.op == "destroy_drop_tuple") os << " mfn=" << s.mfn.v;
    return os.str();
}

// The concrete state `st` encoded, and a solver that holds its facts. The bare smt tactic: no
// solve-eqs, so every named read gets a value in the model (with it, a read equal to a
// quantified term was eliminated and evaluated back to the term).
struct Concrete {
    St s;
    z3::solver sv;
};
Concrete concrete_solver(const Sorts& so, const State& st, unsigned timeout_ms) {
    std::vector<expr> facts;
    Concrete out{encode_state(so, st, facts), z3::tactic(so.ctx, "smt").mk_solver()};
    for (const expr& f : facts) out.sv.add(f);
    z3::params p(so.ctx);
    p.set("timeout", timeout_ms);
    out.sv.set(p);
    return out;
}

// The transition's arguments (named after their fields) set to the sample's.
void fix_args(z3::solver& sv, const Enc& e, const Transition& t, const Sample& smp) {
    z3::context& c = e.c;
    // By name: the transition's args carry their field names.
    for (unsigned i = 0; i < t.args.size(); ++i) {
        const expr a = t.args[i];
        const std::string n = a.decl().name().str();
        const std::string f = n.substr(n.find('.') + 1);
        if (f == "C" || f == "D")
            sv.add(a == e.d(smp.c));
        else if (f == "flags")
            sv.add(a == c.bv_val(smp.flags.raw, 16));
        else if (f == "bfn")
            sv.add(a == e.a(smp.bfn.v));
        else if (f == "gfn")
            sv.add(a == e.a(smp.gfn.v));
        else if (f == "domid")
            sv.add(a == e.d(smp.domid));
        else if (f == "ioserver")
            sv.add(a == e.s(smp.ioserver));
        else if (f == "bfn_is_invalid")
            sv.add(a == c.bool_val(smp.bfn_invalid));
        else if (f == "mfn")
            sv.add(a == e.a(smp.mfn.v));
    }
}

// The encoded transition on `pre` with the sample's arguments; compares with ref's outcome
// (`caps`: what ref's query_caps returned). Returns "" on agreement, else what differs.
std::string compare(const State& pre, const Sample& smp, unsigned ref_status, const State& post,
                    const Options& opt, Flags caps = Flags{}) {
    z3::context c;
    Sorts so(c, conf_widths());
    Enc e{c, so};
    auto [s, sv] = concrete_solver(so, pre, opt.timeout_ms);
    Transition t = make_transition(so, s, smp.op, Mutant::none);
    fix_args(sv, e, t, smp);
    for (const Clause& cl : t.scope) sv.add(cl.e);
    // Successor reads become named constants, so that the solver decides their quantifiers.
    const expr okv = c.bool_const("conf.ok");
    const expr stv = c.constant("conf.status", c.bv_sort(8));
    // destroy_finish acts on every state its chain reaches (its three checks are universal:
    // all of D's holders are gone): that is refuted apart, where the negated checks are ground
    // after skolemization, and its successor (lambdas, no quantifier) is read in the ok case.
    // Measured: with the checks in the successor's ite, 5 of 43 chains' finish came back
    // unknown (incomplete quantifiers), whichever check was left out.
    const bool finish = smp.op == "destroy_finish";
    if (finish) {
        auto [s2, sv2] = concrete_solver(so, pre, opt.timeout_ms);
        const Transition t2 = make_transition(so, s2, smp.op, Mutant::none);
        fix_args(sv2, e, t2, smp);
        for (const Clause& cl : t2.scope) sv2.add(cl.e);
        sv2.add(!t2.ok);
        if (const z3::check_result r2 = sv2.check(); r2 != z3::unsat)
            return r2 == z3::sat ? "  destroy_finish's checks fail at the end of the chain\n"
                                 : "solver: unknown (" + sv2.reason_unknown() + ")";
        sv.add(okv && stv == 0);
    } else {
        sv.add(okv == t.ok && stv == t.status);
    }
    struct Read {
        std::string what;
        expr v;
        expr want;
    };
    std::vector<Read> reads;
    auto read = [&](const std::string& what, const expr& term, const expr& want) {
        const expr v =
            c.constant(("conf.r" + std::to_string(reads.size())).c_str(), term.get_sort());
        sv.add(v == term);
        reads.push_back({what, v, want});
    };
    const St& n = finish ? t.cases.front().second : t.next;
    if (t.out)  // query_caps: R2's map_cap bit
        read("query_caps map_cap", *t.out, c.bool_val((caps.raw & IOMMU_QUERY_map_cap) != 0));
    for (std::uint64_t m = 0; m < kAddrs; ++m) {
        const Frame f = post.frame(Mfn{m});
        const std::string w = "frame " + std::to_string(m);
        read(w + " state", n.fstate[e.a(m)],
             e.k2(f.state == FrameState::free  ? kFree
                  : f.state == FrameState::xen ? kXen
                                               : kOwned));
        if (f.state == FrameState::owned) read(w + " owner", n.owner[e.a(m)], e.d(f.owner));
        read(w + " count", n.count[e.a(m)], e.cnt(f.count));
        read(w + " allocated", n.alloc[e.a(m)], c.bool_val(f.allocated));
    }
    // Domains, servers and privileges: destroy_finish changes them. A domain that is gone (or
    // never was) reads as an empty one.
    const Domain none;
    for (std::uint16_t d = 0; d < kDoms; ++d) {
        const DomId dd{d};
        const Domain* pd = post.domain(dd);
        read("domain " + std::to_string(d) + " live", n.live[e.d(dd)], c.bool_val(pd != nullptr));
        for (std::uint16_t i = 0; i < kSids; ++i)
            read("ioserver " + std::to_string(d) + " id=" + std::to_string(i),
                 n.srv[e.ds(dd, IoServId{i})], c.bool_val(post.server(dd, IoServId{i}) != nullptr));
        for (std::uint16_t t2 = 0; t2 < kDoms; ++t2)
            read("dm " + std::to_string(d) + " over " + std::to_string(t2),
                 n.dm[z3::concat(e.d(dd), e.d(DomId{t2}))],
                 c.bool_val(pd != nullptr && pd->dm_over.contains(DomId{t2})));
    }
    for (std::uint16_t d = 0; d < kDoms; ++d) {
        const Domain* dom = post.domain(DomId{d});
        if (dom == nullptr) dom = &none;
        for (std::uint64_t x = 0; x < kAddrs; ++x) {
            const std::string w = "domain " + std::to_string(d) + " @" + std::to_string(x);
            const auto pm = dom->p2m.find(Gfn{x});
            read(w + " p2m valid", n.p2mv[e.da(DomId{d}, x)], c.bool_val(pm != dom->p2m.end()));
            if (pm != dom->p2m.end()) read(w + " p2m", n.p2m[e.da(DomId{d}, x)], e.a(pm->second.v));
            const auto en = dom->iommu.find(Bfn{x});
            const unsigned k = en == dom->iommu.end()                  ? kNone
                               : en->second.kind == EntryKind::local   ? kLocal
                               : en->second.kind == EntryKind::foreign ? kForeign
                                                                       : kScratch;
            read(w + " entry kind", n.ekind[e.da(DomId{d}, x)], e.k2(k));
            if (k == kLocal || k == kForeign)
                read(w + " entry mfn", n.emfn[e.da(DomId{d}, x)], e.a(en->second.mfn.v));
            read(w + " identity removed", n.removed[e.da(DomId{d}, x)],
                 c.bool_val(dom->removed_identity.contains(Bfn{x})));
        }
    }
    // Tuples: those before and after, and every tuple of the frames involved.
    std::map<std::pair<std::uint64_t, Tuple>, bool> tuples;
    for (const State* st : {&pre, &post})
        for (const auto& [m, ts] : st->m2b)
            for (const auto& [tp, info] : ts) tuples[{m.v, tp}] = false;
    for (auto& [k, v] : tuples) {
        const auto it = post.m2b.find(Mfn{k.first});
        v = it != post.m2b.end() && it->second.contains(k.second);
        read("tuple mfn=" + std::to_string(k.first) + " bfn=" + std::to_string(k.second.bfn.v) +
                 " domid=" + std::to_string(k.second.domid.v) +
                 " ioserver=" + std::to_string(k.second.ioserver.v),
             n.m2b[e.tup(Mfn{k.first}, k.second)], c.bool_val(v));
        if (v)
            read("tuple swap", n.swap[e.tup(Mfn{k.first}, k.second)],
                 c.bool_val(post.m2b.at(Mfn{k.first}).at(k.second).swap));
    }
    read("fault", n.fault, e.cnt(post.fault_iommu_map));
    const z3::check_result r = sv.check();
    if (r != z3::sat)
        return std::string("solver: ") + (r == z3::unsat ? "unsat (scope excludes the sample)"
                                                         : "unknown (" + sv.reason_unknown() + ")");
    const z3::model mdl = sv.get_model();
    std::ostringstream diff;
    const unsigned zst = static_cast<unsigned>(mdl.eval(stv, true).get_numeral_uint64());
    if (zst != ref_status) diff << "  status: ref " << ref_status << ", encoding " << zst << "\n";

    for (const Read& rd : reads) {
        const expr got = mdl.eval(rd.v, true), want = mdl.eval(rd.want, true);
        if (!z3::eq(got.simplify(), want.simplify()))
            diff << "  " << rd.what << ": ref " << want << ", encoding " << got << "\n";
    }
    return diff.str();
}

// What a BMC checks after a step: every INV-* but INV-COUNT (ref's check_invariants decides
// INV-COUNT on every explored state; its ghosts are the induction's device, not a property of
// the state).
std::vector<std::string> bmc_invariants() {
    std::vector<std::string> invs;
    for (const auto& n : invariant_names())
        if (n.rfind("INV-", 0) == 0 && n != "INV-COUNT") invs.push_back(n);
    return invs;
}

const std::vector<std::string>& bmc_ops() {
    static const std::vector<std::string> v = {
        "map_foreign_page", "unmap_foreign_page", "lookup_foreign_page",
        "map_page",         "unmap_page",         "balloon",
        "populate"};
    return v;
}

// One BMC run from the concrete initial state of one world: `depth` steps, each one of the
// encoded transitions with free arguments; sat when a state invariant (INV-*) fails at some
// step. On sat, `trace` gets a TRACE-FORMAT file that replays the steps on ref.
z3::check_result bmc_world(const State& init, const std::string& world, unsigned depth,
                           const Options& opt, std::string& trace, std::string& detail) {
    z3::context c;
    Sorts so(c, conf_widths());
    auto [s, sv] = concrete_solver(so, init, opt.timeout_ms);
    const std::vector<std::string> invs = bmc_invariants();
    expr bad = c.bool_val(false);
    struct Step {
        expr sel;
        std::vector<Transition> ts;
    };
    std::vector<Step> steps;
    std::vector<std::pair<unsigned, Clause>> clauses;  // (after step k, an INV-* clause)
    for (unsigned k = 0; k < depth; ++k) {
        Sorts sk = so;
        sk.tag = "s" + std::to_string(k) + ":";
        const expr sel = c.constant(("bmc.sel" + std::to_string(k)).c_str(), c.bv_sort(3));
        sv.add(z3::ult(sel, c.bv_val(static_cast<unsigned>(bmc_ops().size()), 3)));
        Step st{sel, {}};
        St next = fresh_state(so, "bmc" + std::to_string(k + 1) + ".");
        for (unsigned j = 0; j < bmc_ops().size(); ++j) {
            st.ts.push_back(make_transition(sk, s, bmc_ops()[j], Mutant::none));
            const Transition& t = st.ts.back();
            const expr on = sel == c.bv_val(j, 3);
            for (const Clause& cl : t.scope) sv.add(z3::implies(on, cl.e));
            const St& n = t.next;
            const std::vector<std::pair<expr, expr>> fields = {
                {next.fstate, n.fstate}, {next.owner, n.owner}, {next.count, n.count},
                {next.alloc, n.alloc},   {next.p2mv, n.p2mv},   {next.p2m, n.p2m},
                {next.ekind, n.ekind},   {next.emfn, n.emfn},   {next.removed, n.removed},
                {next.m2b, n.m2b},       {next.swap, n.swap},   {next.fault, n.fault},
                {next.nT0, n.nT0},       {next.nT1, n.nT1},     {next.slotT0, n.slotT0},
                {next.slotT1, n.slotT1}, {next.idxT, n.idxT},   {next.tcls, n.tcls},
                {next.nL, n.nL},         {next.slotL, n.slotL}, {next.idxL, n.idxL},
                {next.p2mg, n.p2mg}};
            for (const auto& [a, b] : fields) sv.add(z3::implies(on, a == b));
        }
        // Static components: the host, domains, privileges, RMRRs and servers.
        next.host_iommu = s.host_iommu, next.mode = s.mode, next.nframes = s.nframes;
        next.maxc = s.maxc;
        next.live = s.live, next.hw = s.hw, next.iommu_hw = s.iommu_hw, next.dm = s.dm;
        next.rmrr = s.rmrr, next.srv = s.srv, next.emu = s.emu;
        steps.push_back(st);
        s = next;
        for (const auto& n : invs)
            for (const Clause& cl : invariant(so, s, n)) {
                bad = bad || !cl.e;
                clauses.push_back({k + 1, cl});
            }
    }
    sv.add(bad);
    if (const char* e = std::getenv("PVIOMMU_DUMP")) std::ofstream(e) << sv.to_smt2();
    const z3::check_result r = sv.check();
    if (r == z3::unknown) detail = "unknown (" + sv.reason_unknown() + ")";
    if (r != z3::sat) return r;
    const z3::model m = sv.get_model();
    std::ostringstream os;
    os << "# BMC counterexample (proofs/encoding_matches_ref.cpp): an INV-* fails within " << depth
       << " steps\n";
    for (const auto& [k, cl] : clauses)
        if (m.eval(cl.e, true).is_false()) {
            os << "# first failing: " << cl.name << ", after step " << k << "\n";
            break;
        }
    os << world;
    auto num = [&](const expr& e) { return m.eval(e, true).get_numeral_uint64(); };
    auto dom = [&](const expr& e) {
        const std::uint64_t v = num(e);
        return v == 3 ? std::string("0x7ff0") : std::to_string(v);
    };
    for (const Step& st : steps) {
        const unsigned j = static_cast<unsigned>(num(st.sel));
        const Transition& t = st.ts[j];
        std::map<std::string, expr> a;
        for (unsigned i = 0; i < t.args.size(); ++i) {
            const std::string n = t.args[i].decl().name().str();
            a.emplace(n.substr(n.find('.') + 1), t.args[i]);
        }
        const std::string& op = bmc_ops()[j];
        if (op == "balloon" || op == "populate") {
            os << op << " " << num(a.at("D")) << " gfn=" << num(a.at("gfn")) << "\n";
        } else {
            os << "call " << num(a.at("C")) << " " << op << " flags=" << num(a.at("flags"));
            for (const char* f : {"bfn", "gfn", "domid", "ioserver"}) {
                if (!a.contains(f)) continue;
                os << " " << f << "="
                   << (std::string(f) == "domid" ? dom(a.at(f)) : std::to_string(num(a.at(f))));
            }
            if (op == "lookup_foreign_page" && !m.eval(a.at("bfn_is_invalid"), true).is_true())
                os << " bfn=1";
            os << "\n";
        }
        os << "check invariants\n";
    }
    trace = os.str();
    return r;
}

}  // namespace

BmcResult bmc(std::uint64_t seed, unsigned depth, std::size_t worlds, const Options& opt) {
    BmcResult res;
    res.seed = seed;
    res.depth = depth;
    const auto t0 = std::chrono::steady_clock::now();
    Gen g{std::mt19937_64(seed)};
    for (std::size_t w = 0; w < worlds; ++w) {
        std::string world;
        const auto hv = make_world(g, &world);
        std::string trace, detail;
        const z3::check_result r = bmc_world(hv->state(), world, depth, opt, trace, detail);
        ++res.worlds;
        if (r == z3::sat) {
            res.violation = true;
            res.trace = trace;
            break;
        }
        if (r == z3::unknown) {
            res.unknown = true;
            res.detail += "world " + std::to_string(w) + ": " + detail + "\n" + world;
        }
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

ConformanceResult conformance(std::uint64_t seed, std::size_t samples, const Options& opt) {
    ConformanceResult res;
    res.seed = seed;
    const auto t0 = std::chrono::steady_clock::now();
    Gen g{std::mt19937_64(seed)};
    while (res.samples < samples) {
        const auto hvp = make_world(g);
        ref::Hypervisor& hv = *hvp;
        const std::size_t steps = 1 + g.below(12);
        for (std::size_t k = 0; k < steps && res.samples < samples; ++k) {
            const State pre = hv.state();
            const Sample smp = random_op(g, pre);
            if (pre.domain(smp.c) == nullptr) break;  // every encoded op has a live caller
            Flags caps;
            const unsigned st = run_ref(hv, smp, &caps);
            std::string d;
            if (smp.op == "destroy") {
                // R9: each teardown step's encoding against the step, and the steps' end
                // against ref's destroy.
                State cur = pre;
                for (const Sample& step : destroy_chain(pre, smp.c)) {
                    const State nx = teardown_step(cur, step);
                    const std::string dd = compare(cur, step, 0, nx, opt);
                    if (!dd.empty()) d += "  teardown step " + sample_text(step) + ":\n" + dd;
                    ++res.per_op[step.op];
                    cur = nx;
                }
                if (!(cur == hv.state()))
                    d += "  the teardown steps end elsewhere than ref's destroy:\n" + dump(cur);
            } else {
                d = compare(pre, smp, st, hv.state(), opt, caps);
            }
            ++res.samples;
            ++res.per_op[smp.op];
            ++res.per_status[st];
            if (!d.empty()) {
                ++res.divergences;
                if (res.detail.size() < 20000)
                    res.detail += "divergence on " + sample_text(smp) + "\n" + d +
                                  "  pre-state:\n" + dump(pre) + "  ref's post-state:\n" +
                                  dump(hv.state()) + "\n";
            }
        }
    }
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

std::string encoded_invariants_on(const State& st, const Options& opt) {
    z3::context c;
    Sorts so(c, conf_widths());
    auto [s, sv] = concrete_solver(so, st, opt.timeout_ms);
    const std::vector<Clause> inv = all_invariants(so, s);
    for (const Clause& cl : inv) sv.add(cl.e);
    const z3::check_result r = sv.check();
    if (r == z3::sat) return "";
    if (r == z3::unknown) return "unknown (" + sv.reason_unknown() + ")";
    // Which clause: each one alone on the state (only on failure, so the cost is no matter).
    for (const Clause& cl : inv) {
        auto [s1, sv1] = concrete_solver(so, st, opt.timeout_ms);
        for (const Clause& c1 : all_invariants(so, s1))
            if (c1.name == cl.name) sv1.add(c1.e);
        if (sv1.check() != z3::sat) return cl.name;
    }
    return "the conjunction (no single clause fails)";
}

std::string encoded_step_from(const State& st, const Options& opt) {
    z3::context c;
    Sorts so(c, conf_widths());
    auto [s, sv] = concrete_solver(so, st, opt.timeout_ms);
    // As bmc_world: one selector over the transitions, bmc_invariants() after it.
    const std::vector<std::string> invs = bmc_invariants();
    // Every encoded transition, the teardown steps of destroy included.
    const std::vector<std::string> ops = transition_names();
    const expr sel = c.constant("step.sel", c.bv_sort(4));
    sv.add(z3::ult(sel, c.bv_val(static_cast<unsigned>(ops.size()), 4)));
    expr bad = c.bool_val(false);
    std::vector<Clause> clauses;
    for (unsigned j = 0; j < ops.size(); ++j) {
        const Transition t = make_transition(so, s, ops[j], Mutant::none);
        const expr on = sel == c.bv_val(j, 4);
        expr scope = c.bool_val(true);
        for (const Clause& cl : t.scope) scope = scope && cl.e;
        for (const auto& n : invs)
            for (const Clause& cl : invariant(so, t.next, n)) {
                bad = bad || (on && scope && !cl.e);
                clauses.push_back({ops[j] + " breaks " + cl.name, on && scope && !cl.e});
            }
    }
    sv.add(bad);
    const z3::check_result r = sv.check();
    if (r == z3::unsat) return "";
    if (r == z3::unknown) return "unknown (" + sv.reason_unknown() + ")";
    const z3::model m = sv.get_model();
    for (const Clause& cl : clauses)
        if (m.eval(cl.e, true).is_true()) return cl.name;
    return "a violation (no clause named)";
}

Result non_vacuity_by_witness(const std::string& what, const Options& opt) {
    Result res{"non-vacuity/" + what, "sat", true, 0, 0, "", ""};
    const auto t0 = std::chrono::steady_clock::now();
    // A reachable state of a random small world where `what` acts (ref changes the state, or
    // returns 0), found by driving ref as the conformance test does; for "init", the initial
    // state of a world where a domain owns a frame.
    Gen g{std::mt19937_64(20151117)};
    for (unsigned tries = 0; tries < 2000; ++tries) {
        const auto hvp = make_world(g);
        ref::Hypervisor& hv = *hvp;
        std::optional<Sample> found;
        State pre = hv.state();
        if (what == "init") {
            bool owns = false;
            for (const auto& [m, f] : pre.frames) owns = owns || f.state == FrameState::owned;
            if (!owns) continue;
        } else if (is_destroy_step(what)) {
            // A teardown step is no ref operation: a state where one acts, by destroy_chain.
            for (std::size_t k = 0; k < 12 && !found; ++k) {
                pre = hv.state();
                found = acting_step(what, pre);
                if (found) break;
                const Sample smp = random_op(g, pre);
                if (pre.domain(smp.c) == nullptr) break;
                (void)run_ref(hv, smp);
            }
            if (!found) continue;
        } else {
            for (std::size_t k = 0; k < 12 && !found; ++k) {
                pre = hv.state();
                Sample smp = random_op(g, pre);
                if (pre.domain(smp.c) == nullptr) break;
                // (drain only where it is well formed: on an existing server)
                if (g.coin(50) && (what != "drain" || pre.server(smp.c, smp.ioserver) != nullptr))
                    smp.op = what;
                const unsigned st = run_ref(hv, smp);
                // query_caps and drain edit no encoded component: acting is returning 0.
                const bool identity = what == "query_caps" || what == "drain";
                if (smp.op == what && st == 0 && (identity || dump(hv.state()) != dump(pre)))
                    found = smp;
            }
            if (!found) continue;
        }
        z3::context c;
        Sorts so(c, conf_widths());
        Enc e{c, so};
        auto [s, sv] = concrete_solver(so, pre, std::max(opt.timeout_ms, 20000u));
        for (const Clause& cl : all_invariants(so, s)) sv.add(cl.e);
        std::optional<Transition> t;
        if (what == "init") {
            for (const Clause& cl : initial(so, s)) sv.add(cl.e);
        } else {
            t = make_transition(so, s, what, Mutant::none);
            fix_args(sv, e, *t, *found);
            for (const Clause& cl : t->scope) sv.add(cl.e);
            sv.add(t->ok);
        }
        const z3::check_result r = sv.check();
        ++res.queries;
        if (r != z3::sat) {
            res.pass = false;
            res.result = r == z3::unsat ? "failed" : "unknown";
            res.detail =
                (r == z3::unsat ? std::string("the invariants (or ok) fail on a state ref reached")
                                : "unknown (" + sv.reason_unknown() + ")") +
                (found ? "\n  " + sample_text(*found) : std::string()) + "\n" + dump(pre);
        } else {
            res.detail = "witness: a state ref reached" +
                         (found ? ", then " + sample_text(*found) : std::string());
        }
        res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        return res;
    }
    res.pass = false;
    res.result = "failed";
    res.detail = "no state found where " + what + " acts";
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

}  // namespace proofs
