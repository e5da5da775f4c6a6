// proofs/encoding_matches_ref.cpp: the link between the SMT encoding and ref. Random concrete
// states of small worlds are built by driving ref with random operations; each sample takes
// such a state and one more operation, runs it on ref, and evaluates the encoded transition on
// the same state: status and every successor component must agree. The state is handed to Z3
// as concrete arrays (constant arrays with stores, lambdas over ite tables), ghosts included
// (their slots computed here as INV-COUNT describes them), so the solver only evaluates; the
// quantified checks (claimed, "a tuple exists") are decided by it over the finite small-width
// domains.
//
// v2: the encoded state carries what ref does not: R11's deferred references and awaited
// flushes, the IOTLBs, INV-DEVICE-SAFE's H (D23) and the domains being destroyed. An Ext is a
// spec::State with them. ref's atomic op is a chain of encoded steps (the removal, a flush of
// each context it awaits, a put of each frame it deferred; destroy: R9 v2's steps, each with
// its flush and puts); each step is compared with its C++ counterpart here on Exts, H with
// spec/ghost.cpp's record_handed, and the chain's end with ref's post-state.
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>
#include <variant>

#include "proofs/encoding.h"
#include "proofs/explore.h"
#include "proofs/prove.h"
#include "ref/hypervisor.h"
#include "spec/ghost.h"
#include "spec/hypervisor.h"
#include "spec/ops.h"
#include "trace/trace.h"

namespace proofs {

namespace {

// Wall-clock seconds since t0 (the Result of a tool).
double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

using z3::expr;
using namespace spec;

// Widths of the samples: 16 frame numbers, domids 0..2 (3 stands for DOMID_SELF), ioserver ids
// 0..1 (counts are integers).
Widths conf_widths() { return {4, 2, 1}; }
constexpr unsigned kAddrs = 16, kDoms = 3, kSids = 2;

// The encoded state beyond spec::State (see the file comment).
struct Ext {
    State s;
    std::map<Mfn, std::uint32_t> pend;          // R11: deferred references per frame
    std::set<std::pair<DomId, Mfn>> await;      // (c, m): a deferred reference of m awaits c
    std::set<std::tuple<DomId, Bfn, Mfn>> tlb;  // c's IOTLB caches bfn -> m
    Handed h;                                   // INV-DEVICE-SAFE's H (D23)
    std::set<DomId> dying;                      // destroy_begin ran, destroy_finish not yet
    // R7 (issue 17, item 5): the invalidations a balloon's linearization owes and its deliver
    // steps have not put into a ring or onto a synchronous channel yet, in F8 order.
    std::vector<std::pair<ServerKey, Bfn>> owed;
    bool operator==(const Ext&) const = default;
};
std::string ext_text(const Ext& x) {
    std::ostringstream os;
    os << dump(x.s);
    for (const auto& [m, n] : x.pend) os << "pend mfn=" << m.v << " " << n << "\n";
    for (const auto& [c, m] : x.await) os << "await " << c.v << " mfn=" << m.v << "\n";
    for (const auto& [c, b, m] : x.tlb)
        os << "tlb " << c.v << " bfn=" << b.v << " mfn=" << m.v << "\n";
    for (const auto& [k, m] : x.h)
        os << "handed " << k.emulator.v << " bfn=" << k.bfn.v << " domid=" << k.domid.v
           << " ioserver=" << k.ioserver.v << " -> mfn=" << m.v << "\n";
    for (DomId d : x.dying) os << "dying " << d.v << "\n";
    for (const auto& [k, b] : x.owed)
        os << "owed " << k.first.v << " id=" << k.second.v << " bfn=" << b.v << "\n";
    return os.str();
}

// The canonical dump lines of the chain's end and of ref's post-state that the other lacks
// (what a chain that ends elsewhere than ref got wrong, first).
std::string dump_diff(const State& chain, const State& ref) {
    auto lines = [](const State& x) {
        std::set<std::string> out;
        std::istringstream is(dump(x));
        for (std::string l; std::getline(is, l);) out.insert(l);
        return out;
    };
    const auto a = lines(chain), b = lines(ref);
    std::string out;
    for (const auto& l : a)
        if (!b.contains(l)) out += "    chain only: " + l + "\n";
    for (const auto& l : b)
        if (!a.contains(l)) out += "    ref only:   " + l + "\n";
    return out;
}

// A table over a one-index domain: `def` everywhere but the listed points (a constant array
// with stores; lambdas made Z3 4.8.12 abort when the context was deleted).
expr table(z3::context&, const std::vector<z3::sort>& dom, const expr& def,
           const std::vector<std::pair<std::vector<expr>, expr>>& points) {
    expr a = z3::const_array(dom[0], def);
    for (const auto& [ix, v] : points) a = z3::store(a, ix[0], v);
    return a;
}
// SMT-LIB's name of a sort (bit-vector, Int or Bool).
std::string sort_text(const z3::sort& s) {
    if (s.is_bv()) return "(_ BitVec " + std::to_string(s.bv_size()) + ")";
    return s.is_int() ? "Int" : "Bool";
}
// A two-index array: `def` everywhere but the listed points. A two-index constant array (the C
// API makes one-index ones only: SMT-LIB's `as const` makes any) with stores. (Measured: a
// lambda over an ite table made Z3 4.8.12 crash deleting a context where a step's lambda was
// built over it; free arrays pinned or defined by facts left the encoded invariants unknown at
// 20 s on some explored states, since Z3 then had to build a model of them.)
expr table2(z3::context& c, const z3::sort& d1, const z3::sort& d2, const z3::sort& r,
            const std::string& def, const std::vector<std::pair<std::vector<expr>, expr>>& points) {
    const std::string k = "((as const (Array " + sort_text(d1) + " " + sort_text(d2) + " " +
                          sort_text(r) + ")) " + def + ")";
    const z3::expr_vector parsed = c.parse_string(("(assert (= " + k + " " + k + "))").c_str());
    expr a = parsed[0].arg(0);
    for (const auto& [ix, v] : points) {
        z3::expr_vector iv(c);
        iv.push_back(ix[0]);
        iv.push_back(ix[1]);
        a = z3::store(a, iv, v);
    }
    return a;
}

// A two-index Bool set (the awaited flushes, the IOTLBs): true exactly at the listed points.
expr set2(z3::context& c, const z3::sort& d1, const z3::sort& d2,
          const std::vector<std::pair<expr, expr>>& points) {
    std::vector<std::pair<std::vector<expr>, expr>> pts;
    for (const auto& [x, y] : points) pts.push_back({{x, y}, c.bool_val(true)});
    return table2(c, d1, d2, c.bool_sort(), "false", pts);
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
    expr cnt(std::uint64_t v) const { return c.int_val(v); }
    expr da(DomId x, std::uint64_t y) const { return z3::concat(d(x), a(y)); }
    expr ds(DomId x, IoServId y) const { return z3::concat(d(x), s(y)); }
    expr tup(Mfn m, const Tuple& t) const {
        return z3::concat(a(m.v), z3::concat(a(t.bfn.v), z3::concat(d(t.domid), s(t.ioserver))));
    }
    expr key(const HandedKey& k) const {
        return z3::concat(d(k.emulator),
                          z3::concat(a(k.bfn.v), z3::concat(d(k.domid), s(k.ioserver))));
    }
};

bool drop_class_ref(const State& st, const TupleInfo& info) {
    return info.swap && st.usable(info.emulator);  // drop_class: swap, usable emulator
}

// Ext -> St (concrete). Ghosts: slots in (mfn, tuple) order per class, locals in (domid, bfn)
// order.
St encode_state(const Sorts& so, const Ext& x) {
    const State& st = x.s;
    z3::context& c = so.ctx;
    Enc e{c, so};
    St s = fresh_state(so, "conf.");
    s.host_iommu = c.bool_val(st.host.iommu);
    s.mode = e.k2(static_cast<unsigned>(st.host.mode));
    s.nframes = e.a(st.host.frames);
    s.maxc = e.cnt(st.host.max_count);  // D19
    std::vector<std::pair<std::vector<expr>, expr>> fstate, owner, count, alloc, live, hw, iommu_hw,
        dm, rmrr, p2mv, p2m, srv, emu, ekind, emfn, removed, m2b, swap, temu, torph, nT0, nT1,
        slotT0, slotT1, idxT, tcls, nL, slotL, idxL, p2mg, dying, pend, hk, hm;
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
            const bool k = drop_class_ref(st, info);
            m2b.push_back({{tt}, c.bool_val(true)});
            swap.push_back({{tt}, c.bool_val(info.swap)});
            temu.push_back({{tt}, e.d(info.emulator)});
            torph.push_back({{tt}, c.bool_val(info.orphan)});
            tcls.push_back({{tt}, c.bool_val(k)});
            idxT.push_back({{tt}, e.cnt(n[k])});
            (k ? slotT1 : slotT0).push_back({{e.a(m.v), e.cnt(n[k])}, tt});
            ++n[k];
        }
        nT0.push_back({{e.a(m.v)}, e.cnt(n[0])});
        nT1.push_back({{e.a(m.v)}, e.cnt(n[1])});
    }
    for (DomId d : x.dying) dying.push_back({{e.d(d)}, c.bool_val(true)});
    for (const auto& [m, n] : x.pend) pend.push_back({{e.a(m.v)}, e.cnt(n)});
    // R7's queues (issue 17, item 5): per server its ring's slots and length, per (bfn, server)
    // the requests on the ring, on the synchronous channel, owed, and the ghost owe (their sum:
    // a state ref reached has lost none).
    std::vector<std::pair<std::vector<expr>, expr>> rcap, rlen, rq, sq, pdl, owe;
    {
        std::map<std::tuple<std::uint64_t, DomId, IoServId>, std::array<std::uint64_t, 3>> per;
        for (const auto& [key, sv] : st.servers) {
            rcap.push_back({{e.ds(key.first, key.second)}, e.cnt(sv.ring_slots)});
            rlen.push_back({{e.ds(key.first, key.second)}, e.cnt(sv.buffered.size())});
            for (const IoReq& q : sv.buffered) ++per[{q.bfn.v, key.first, key.second}][0];
            for (const IoReq& q : sv.sync) ++per[{q.bfn.v, key.first, key.second}][1];
        }
        for (const auto& [key, b] : x.owed) ++per[{b.v, key.first, key.second}][2];
        for (const auto& [k, n] : per) {
            const expr ix = z3::concat(e.a(std::get<0>(k)), e.ds(std::get<1>(k), std::get<2>(k)));
            rq.push_back({{ix}, e.cnt(n[0])});
            sq.push_back({{ix}, e.cnt(n[1])});
            pdl.push_back({{ix}, e.cnt(n[2])});
            owe.push_back({{ix}, e.cnt(n[0] + n[1] + n[2])});
        }
    }
    // D20: each live domain's quota (-1: none) and holdings; per (emulator, frame) how many of
    // the emulator's tuples of the frame a balloon's swap drops (class 1).
    std::vector<std::pair<std::vector<expr>, expr>> quota, hold, hsw;
    for (const auto& [id, dom] : st.domains) {
        quota.push_back({{e.d(id)}, c.int_val(dom.quota ? std::int64_t{*dom.quota} : -1)});
        hold.push_back({{e.d(id)}, e.cnt(st.holdings(id))});
    }
    {
        std::map<std::pair<DomId, std::uint64_t>, std::uint64_t> per;
        for (const auto& [m, tuples] : st.m2b)
            for (const auto& [t, info] : tuples)
                if (drop_class_ref(st, info)) ++per[{info.emulator, m.v}];
        for (const auto& [k, n] : per) hsw.push_back({{e.da(k.first, k.second)}, e.cnt(n)});
    }
    for (const auto& [k, m] : x.h) {
        hk.push_back({{e.key(k)}, c.bool_val(true)});
        hm.push_back({{e.key(k)}, e.a(m.v)});
    }
    std::vector<std::pair<expr, expr>> await, tlb;
    for (const auto& [d, m] : x.await) await.push_back({e.d(d), e.a(m.v)});
    for (const auto& [d, b, m] : x.tlb) tlb.push_back({e.da(d, b.v), e.a(m.v)});
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
    s.dying = table(c, {so.D}, f, dying);
    s.srv = table(c, {so.DS}, f, srv);
    s.emu = table(c, {so.DS}, e.d(DomId{0}), emu);
    s.ekind = table(c, {so.DA}, e.k2(kNone), ekind);
    s.emfn = table(c, {so.DA}, e.a(0), emfn);
    s.removed = table(c, {so.DA}, f, removed);
    s.m2b = table(c, {so.T}, f, m2b);
    s.swap = table(c, {so.T}, f, swap);
    s.temu = table(c, {so.T}, e.d(DomId{0}), temu);
    s.torph = table(c, {so.T}, f, torph);
    s.fault = e.cnt(st.fault_iommu_map);
    s.nT0 = table(c, {so.A}, e.cnt(0), nT0);
    s.nT1 = table(c, {so.A}, e.cnt(0), nT1);
    const std::string t0 = "(_ bv0 " + std::to_string(so.T.bv_size()) + ")";
    s.slotT0 = table2(c, so.A, so.C, so.T, t0, slotT0);
    s.slotT1 = table2(c, so.A, so.C, so.T, t0, slotT1);
    s.idxT = table(c, {so.T}, e.cnt(0), idxT);
    s.tcls = table(c, {so.T}, f, tcls);
    s.nL = table(c, {so.A}, e.cnt(0), nL);
    s.slotL =
        table2(c, so.A, so.C, so.DA, "(_ bv0 " + std::to_string(so.DA.bv_size()) + ")", slotL);
    s.idxL = table(c, {so.DA}, e.cnt(0), idxL);
    s.p2mg = table(c, {so.A}, e.a(0), p2mg);
    s.pend = table(c, {so.A}, e.cnt(0), pend);
    s.await = set2(c, so.D, so.A, await);
    s.tlb = set2(c, so.DA, so.A, tlb);
    s.hk = table(c, {so.HK}, f, hk);
    s.hm = table(c, {so.HK}, e.a(0), hm);
    s.rcap = table(c, {so.DS}, e.cnt(0), rcap);
    s.rlen = table(c, {so.DS}, e.cnt(0), rlen);
    s.rq = table(c, {so.BDS}, e.cnt(0), rq);
    s.sq = table(c, {so.BDS}, e.cnt(0), sq);
    s.pdl = table(c, {so.BDS}, e.cnt(0), pdl);
    s.owe = table(c, {so.BDS}, e.cnt(0), owe);
    s.quota = table(c, {so.D}, c.int_val(-1), quota);
    s.hold = table(c, {so.D}, e.cnt(0), hold);
    s.hsw = table(c, {so.DA}, e.cnt(0), hsw);
    return s;
}

// An Ext of a state ref reached with nothing in flight; `full_tlb`: every usable context caches
// every translation its local and foreign entries allow (the most R11's fill can cache).
Ext ext_of(const State& st, const Handed& h, bool full_tlb) {
    Ext x{st, {}, {}, {}, h, {}, {}};
    if (full_tlb)
        for (const auto& [d, dom] : st.domains)
            if (st.usable(d))
                for (const auto& [b, en] : dom.iommu)
                    if (en.kind == EntryKind::local || en.kind == EntryKind::foreign)
                        x.tlb.insert({d, b, en.mfn});
    return x;
}

// A random small world on ref: the host, domains 0..2 (at most one hardware), privileges,
// servers, RMRRs, Xen gfns, then `steps` random operations.
struct Gen {
    std::mt19937_64 rng;
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : rng() % n; }
    bool coin(unsigned pct) { return below(100) < pct; }
};

struct Sample {
    std::string op;  // the transition's name (or "destroy": its chain of steps)
    DomId c;         // caller (or the event's domain)
    Flags flags;
    Bfn bfn;
    Gfn gfn;
    DomId domid;
    IoServId ioserver;
    bool bfn_invalid = true;  // lookup_foreign_page
    Mfn mfn;                  // destroy_drop_tuple: the tuple's frame; put: the frame
    // Issue 17, item 4, the control plane: create_domain's role and iommu_hw; ioserver's
    // emulator; `n`: ioserver's ring slots, fault's count, create's ram (its chain's populates).
    bool hw = false, iommu_hw = false;
    DomId emulator;
    std::uint32_t n = 0;
    std::int64_t quota = -1;  // create_domain's quota= (D20), -1: none
};

// `text` (if given) gets the world as TRACE-FORMAT statements, so that `pviommu run` rebuilds it.
// `quotas`: some domains get a quota (D20; the conformance and INV-QUOTA's planted bugs).
std::unique_ptr<ref::Hypervisor> make_world(Gen& g, std::string* text = nullptr,
                                            bool quotas = false);

// D20 (issue 17, item 4): the worlds' quotas come from a generator of their own, seeded from a
// copy of g's state, so that g's draws (the worlds and ops that seeds reach) are unchanged.
Gen quota_gen(const Gen& g) {
    std::mt19937_64 copy = g.rng;
    return Gen{std::mt19937_64{copy() ^ 0x9e3779b97f4a7c15ULL}};
}
// A domain just created gets a quota of 0..3 a quarter of the time (tight enough that -ENOMEM
// rows are reached); returns the statement's ` quota=N` text, or "". Only the general worlds
// (make_world) have quotas: the emulation worlds are where the tuples, deliveries and orphans
// come from (measured: with quotas there too, seed 4's 1,000 samples made no orphan and no
// delivery).
std::string maybe_quota(Gen& qg, ref::Hypervisor& hv, DomId d) {
    if (!qg.coin(40)) return "";
    const auto q = static_cast<std::uint32_t>(qg.below(3));
    hv.set_quota(d, q);
    return " quota=" + std::to_string(q);
}

// A world of the emulation shapes v2 is about, with the IOMMU on: the hardware domain (mostly
// with an IOMMU, mostly inclusive: lookups on the 1:1 map, R6's -EBUSY) emulates guests 1 and
// 2; guest 1 emulates guest 2 through `dm` (a stub domain); guest 2 mostly has no IOMMU (its
// emulator... and an emulator without one hands out frames as bus addresses: R9 v2's orphans).
std::unique_ptr<ref::Hypervisor> make_emulation_world(Gen& g, std::string* text) {
    std::ostringstream os;
    Host h;
    h.iommu = true;
    h.mode = g.coin(70) ? IommuMode::inclusive : IommuMode::strict;
    h.max_order = 0;
    h.frames = 10 + g.below(5);
    if (g.coin(15)) h.max_count = static_cast<std::uint32_t>(2 + g.below(3));  // D19
    os << "host iommu=on mode=" << mode_name(h.mode) << " max_order=0 frames=" << h.frames;
    if (h.max_count != spec::kMaxCountLimit) os << " max_count=" << h.max_count;
    os << "\n";
    auto hvp = std::make_unique<ref::Hypervisor>(h);
    ref::Hypervisor& hv = *hvp;
    const bool io[3] = {g.coin(75), g.coin(85), g.coin(30)};
    const std::uint64_t ram[3] = {g.below(3), 1 + g.below(3), 1 + g.below(3)};
    for (std::uint16_t d = 0; d < 3; ++d) {
        (void)hv.create_domain(DomId{d}, d == 0 ? DomainRole::hardware : DomainRole::guest, io[d],
                               ram[d]);
        os << "domain " << d << (d == 0 ? " hardware" : " guest") << (io[d] ? " iommu_hw" : "")
           << " ram=" << ram[d] << "\n";
    }
    if (g.coin(70)) {
        hv.grant_dm(DomId{1}, DomId{2});
        os << "dm 1 over 2\n";
    }
    auto server = [&](std::uint16_t t, std::uint16_t id, std::uint16_t e) {
        const auto ring = static_cast<std::uint32_t>(g.below(5));
        hv.create_ioserver(DomId{t}, IoServId{id}, DomId{e}, ring);
        os << "ioserver " << t << " id=" << id << " emulator=" << e << " ring=" << ring << "\n";
    };
    server(1, 0, 0);
    server(2, 0, 0);
    if (g.coin(70)) server(2, 1, 1);
    if (g.coin(30)) server(1, 1, 0);
    if (g.coin(15)) {
        hv.arm_iommu_map_fault(1);
        os << "fault iommu_map count=1\n";
    }
    if (text != nullptr) *text = os.str();
    return hvp;
}

std::unique_ptr<ref::Hypervisor> make_world(Gen& g, std::string* text, bool quotas) {
    if (g.coin(35)) return make_emulation_world(g, text);
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
    Gen qg = quota_gen(g);
    for (std::uint16_t d = 0; d < kDoms; ++d) {
        if (!g.coin(85)) continue;
        const bool hwd = !have_hw && g.coin(40);
        have_hw = have_hw || hwd;
        const bool io = g.coin(75);
        const std::uint64_t ram = g.below(4);
        if (hv.create_domain(DomId{d}, hwd ? DomainRole::hardware : DomainRole::guest, io, ram)) {
            doms.push_back(DomId{d});
            os << "domain " << d << (hwd ? " hardware" : " guest") << (io ? " iommu_hw" : "")
               << " ram=" << ram << (quotas ? maybe_quota(qg, hv, DomId{d}) : "") << "\n";
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
        // F5, F12: the tuple's own emulator (orphans included) unmaps it.
        if (g.coin(50) && st.domain(jt->second.emulator) != nullptr) s.c = jt->second.emulator;
    } else {
        s.domid = g.coin(5) ? kDomIdSelf : DomId{static_cast<std::uint16_t>(g.below(kDoms))};
        s.ioserver = IoServId{static_cast<std::uint16_t>(g.below(kSids))};
    }
    // Aimed at the success rows and those after them (-EEXIST, D19's -EOVERFLOW): an emulator
    // of a server, that server's target and one of its RAM gfns, and often a bfn C uses.
    if (!st.servers.empty() && g.coin(50)) {
        auto it = st.servers.begin();
        std::advance(it, static_cast<long>(g.below(st.servers.size())));
        // Mostly a server whose emulator has privilege over its target (the rows after R3's
        // privilege check, success among them, and the tuples R5, R7 and R9 then remove).
        std::vector<decltype(it)> good;
        for (auto jt = st.servers.begin(); jt != st.servers.end(); ++jt)
            if (jt->second.emulator != jt->first.first &&
                st.privileged(jt->second.emulator, jt->first.first) &&
                (s.op != "map_foreign_page" || st.usable(jt->second.emulator)))
                good.push_back(jt);
        if (!good.empty() && g.coin(70)) it = good[g.below(good.size())];
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
    // R11's removing ops where they remove something: a tuple by its emulator (orphans too),
    // a local entry by its context (their chains then flush and put).
    if (s.op != "destroy" && !st.m2b.empty() && g.coin(12)) {
        auto it = st.m2b.begin();
        std::advance(it, static_cast<long>(g.below(st.m2b.size())));
        auto jt = it->second.begin();
        std::advance(jt, static_cast<long>(g.below(it->second.size())));
        s.op = "unmap_foreign_page", s.flags = Flags{}, s.c = jt->second.emulator;
        s.bfn = jt->first.bfn, s.domid = jt->first.domid, s.ioserver = jt->first.ioserver;
    } else if (s.op != "destroy" && g.coin(8)) {
        std::vector<std::pair<DomId, Bfn>> locals;
        for (const auto& [d, dom] : st.domains)
            for (const auto& [b, en] : dom.iommu)
                if (en.kind == EntryKind::local) locals.emplace_back(d, b);
        // (and a 1:1 bfn that a lookup registered: R6 v2's -EBUSY)
        for (const auto& [m, tuples] : st.m2b)
            for (const auto& [t, info] : tuples)
                if (const auto en = st.entry(info.emulator, t.bfn);
                    en && en->kind == EntryKind::identity)
                    locals.emplace_back(info.emulator, t.bfn);
        if (!locals.empty()) {
            const auto [d, b] = locals[g.below(locals.size())];
            s.op = "unmap_page", s.flags = Flags{}, s.c = d, s.bfn = b;
        }
    }
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
        const auto& [t, info] = *it->second.begin();
        s.c = g.coin(50) ? t.domid : info.emulator;
        if (st.domain(s.c) == nullptr) s.c = t.domid == s.c ? info.emulator : t.domid;
        if (st.domain(s.c) == nullptr) s.op = "query_caps", s.c = live.empty() ? DomId{0} : live[0];
    }
    return s;
}

// Issue 17, item 4: a control-plane statement on ref (create_domain with `ram` frames); false
// when `s` is none.
bool run_control(ref::Hypervisor& hv, const Sample& s, std::uint64_t ram) {
    if (s.op == "create_domain") {
        (void)hv.create_domain(s.c, s.hw ? DomainRole::hardware : DomainRole::guest, s.iommu_hw,
                               ram);
        // D20: the trace runner sets a `domain` statement's quota= the same way.
        if (s.quota >= 0) hv.set_quota(s.c, static_cast<std::uint32_t>(s.quota));
    } else if (s.op == "dm")
        hv.grant_dm(s.c, s.domid);
    else if (s.op == "ioserver")
        hv.create_ioserver(s.c, s.ioserver, s.emulator, s.n);
    else if (s.op == "rmrr")
        hv.add_rmrr(s.c, s.bfn, 1);
    else if (s.op == "xen_gfn")
        (void)hv.add_xen_gfn(s.c, s.gfn);
    else if (s.op == "fault")
        hv.arm_iommu_map_fault(s.n);
    else
        return false;
    return true;
}

// Runs the sample on ref; returns its status code (-status) and leaves the post-state in hv.
// query_caps: `caps` (if given) gets the flags it returned; `results` (if given) gets a call's
// OpResult (out fields included), for D23's record_handed.
unsigned run_ref(ref::Hypervisor& hv, const Sample& s, Flags* caps = nullptr,
                 std::vector<OpResult>* results = nullptr) {
    Status st = Status::ok;
    auto done = [&](const Op& op) {
        if (results != nullptr) results->push_back({st, op});
    };
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
        done(op);
    } else if (s.op == "unmap_foreign_page") {
        UnmapForeignPage op;
        op.flags = s.flags, op.bfn = s.bfn, op.domid = s.domid, op.ioserver = s.ioserver;
        st = hv.unmap_foreign_page(s.c, op);
        done(op);
    } else if (s.op == "lookup_foreign_page") {
        LookupForeignPage op;
        op.flags = s.flags, op.bfn = s.bfn_invalid ? kBfnInvalid : s.bfn, op.gfn = s.gfn,
        op.domid = s.domid, op.ioserver = s.ioserver;
        st = hv.lookup_foreign_page(s.c, op);
        done(op);
    } else if (s.op == "map_page") {
        MapPage op;
        op.flags = s.flags, op.bfn = s.bfn, op.gfn = s.gfn;
        st = hv.map_page(s.c, op);
        done(op);
    } else if (s.op == "unmap_page") {
        UnmapPage op;
        op.flags = s.flags, op.bfn = s.bfn;
        st = hv.unmap_page(s.c, op);
        done(op);
    } else if (s.op == "balloon") {
        (void)hv.balloon(s.c, s.gfn);
    } else if (s.op == "destroy") {
        hv.destroy(s.c);
    } else if (!run_control(hv, s, 0)) {
        (void)hv.populate(s.c, s.gfn);
    }
    return static_cast<unsigned>(-static_cast<int>(st));
}

std::string sample_text(const Sample& s) {
    std::ostringstream os;
    os << s.op << " C=" << s.c.v << " flags=" << flags_text(s.flags) << " bfn=" << s.bfn.v
       << (s.bfn_invalid ? "(lookup: BFN_INVALID)" : "") << " gfn=" << s.gfn.v
       << " domid=" << s.domid.v << " ioserver=" << s.ioserver.v;
    if (s.op == "destroy_drop_tuple" || s.op == "put") os << " mfn=" << s.mfn.v;
    if (s.op == "create_domain")
        os << " hardware=" << s.hw << " iommu_hw=" << s.iommu_hw << " ram=" << s.n;
    if (s.op == "ioserver") os << " emulator=" << s.emulator.v << " ring=" << s.n;
    if (s.op == "fault") os << " count=" << s.n;
    return os.str();
}

// ---------------------------------------------------------------------------------------------
// The encoded steps on Exts (C++), one per transition that is no ref operation, and ref's
// operations as the encoding's removal step (R11: references deferred).

// One step of a chain: the transition, its Ext before and after, ref's status (subops).
struct Step {
    Sample smp;
    Ext pre, post;
    unsigned status = 0;
    Flags caps{};
};

Sample event(const char* op, DomId c) {
    Sample s;
    s.op = op;
    s.c = c;
    return s;
}

// R11: flush(c): c's IOTLB is emptied and no deferred reference awaits c any more.
Ext ext_flush(Ext x, DomId c) {
    std::erase_if(x.tlb, [c](const auto& e) { return std::get<0>(e) == c; });
    std::erase_if(x.await, [c](const auto& e) { return e.first == c; });
    return x;
}
// R11: put(m): m's deferred references go once no flush is awaited for them; R8: freed at 0.
Ext ext_put(Ext x, Mfn m) {
    const auto it = x.pend.find(m);
    if (it == x.pend.end() ||
        std::any_of(x.await.begin(), x.await.end(), [m](const auto& e) { return e.second == m; }))
        return x;
    Frame& f = x.s.frames.at(m);
    f.count -= it->second;
    x.pend.erase(it);
    if (f.count == 0) x.s.frames.erase(m);
    return x;
}
// R11: a device of usable context c caches the translation of its local or foreign entry at b.
Ext ext_fill(Ext x, DomId c, Bfn b) {
    const Domain* d = x.s.domain(c);
    if (!x.s.usable(c) || d == nullptr) return x;
    const auto it = d->iommu.find(b);
    if (it == d->iommu.end() ||
        (it->second.kind != EntryKind::local && it->second.kind != EntryKind::foreign))
        return x;
    x.tlb.insert({c, b, it->second.mfn});
    return x;
}
// R7 (issue 17, item 5): deliver one invalidation owed to server (d, i) for bfn b (the first
// such in F8 order): into the ring when it has 2 free slots, else onto the synchronous channel.
// Nothing owed: nothing happens (the encoded deliver's failing case).
Ext ext_deliver(Ext x, DomId d, IoServId i, Bfn b) {
    const auto it = std::find(x.owed.begin(), x.owed.end(), std::make_pair(ServerKey{d, i}, b));
    if (it == x.owed.end()) return x;
    x.owed.erase(it);
    IoServer& srv = x.s.servers.at({d, i});
    (srv.ring_has_room() ? srv.buffered : srv.sync)
        .push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE, b});
    return x;
}
// D11, one request per step (issue 17, item 5): the first request naming b on server (d, i)'s
// ring if the ring holds any request, else the first on its synchronous channel; nothing
// otherwise (the encoded drain counts requests per bfn: it may take any bfn the ring holds;
// ref's drain, and the chains, take the head).
Ext ext_drain_one(Ext x, DomId d, IoServId i, Bfn b) {
    const auto sit = x.s.servers.find({d, i});
    if (sit == x.s.servers.end()) return x;
    auto& q = sit->second.buffered.empty() ? sit->second.sync : sit->second.buffered;
    const auto it = std::find_if(q.begin(), q.end(), [b](const IoReq& r) { return r.bfn == b; });
    if (it != q.end()) q.erase(it);
    return x;
}

// A ref operation (a subop, balloon, populate, query_caps, drain) as the encoding's step: ref's
// successor, every reference it dropped from a tuple or a local entry kept as deferred (R11),
// awaiting the flush of the caller (unmap_foreign_page, unmap_page) or of every usable context
// (balloon's swap: the emulators of the dropped tuples are among them); H as record_handed.
struct RefStep {
    Ext post;
    unsigned status = 0;
    Flags caps{};
    State ref_post;
};
// Planted bugs of ref (ref_mutant_names): ref's successor `post` of `smp` from `pre` (status
// `st`) as the buggy ref would leave it.
State planted_ref(const std::string& mutant, const State& pre, const Sample& smp, unsigned st,
                  State post) {
    if (mutant.empty()) return post;
    if (mutant == "unmap_keeps_foreign_entry") {
        // R5 broken: the foreign entry stays after its last tuple went.
        if (smp.op != "unmap_foreign_page" || st != 0) return post;
        const Domain* was = pre.domain(smp.c);
        Domain* now = post.domains.contains(smp.c) ? &post.domains.at(smp.c) : nullptr;
        if (was == nullptr || now == nullptr) return post;
        const auto it = was->iommu.find(smp.bfn);
        if (it != was->iommu.end() && it->second.kind == EntryKind::foreign &&
            !now->iommu.contains(smp.bfn))
            now->iommu[smp.bfn] = it->second;
        return post;
    }
    if (mutant == "ring_full_drop") {
        // R7 broken: what goes to the synchronous channel (the ring is full) is dropped.
        if (smp.op != "balloon") return post;
        for (auto& [key, srv] : post.servers)
            if (const IoServer* was = pre.server(key.first, key.second);
                was != nullptr && srv.sync.size() > was->sync.size())
                srv.sync.resize(was->sync.size());
        return post;
    }
    throw std::invalid_argument("no ref mutant named " + mutant);
}

RefStep ref_step(const Ext& pre, const Sample& smp, const std::string& mutant = "") {
    ref::Hypervisor hv(pre.s);
    Flags caps;
    std::vector<OpResult> results;
    const unsigned st = run_ref(hv, smp, &caps, &results);
    const State rp = planted_ref(mutant, pre.s, smp, st, hv.state());
    RefStep r{pre, st, caps, rp};
    r.post.s = rp;
    std::optional<Mfn> ballooned;
    if (smp.op == "balloon")
        if (const auto m = pre.s.p2m(smp.c, smp.gfn); m && pre.s.frame(*m).state != FrameState::xen)
            ballooned = *m;
    if (smp.op == "unmap_foreign_page" || smp.op == "unmap_page" || smp.op == "balloon") {
        for (const auto& [m, f] : pre.s.frames) {
            if (f.state != FrameState::owned) continue;
            const Frame after = rp.frame(m);
            const std::uint32_t alloc_drop = ballooned == m ? 1 : 0;
            const std::uint32_t deferred = f.count - alloc_drop - after.count;
            if (deferred == 0) continue;
            r.post.s.frames[m] =
                Frame{FrameState::owned, f.owner, after.count + deferred, after.allocated};
            r.post.pend[m] += deferred;
            if (smp.op == "balloon") {
                for (const auto& [d, dom] : pre.s.domains)
                    if (pre.s.usable(d)) r.post.await.insert({d, m});
            } else {
                r.post.await.insert({smp.c, m});
            }
        }
    }
    if (!results.empty()) record_handed(r.post.h, &pre.s, rp, smp.c, results);
    return r;
}

// R11 after a step: a flush of every context awaited, then a put of every frame deferred.
void settle(std::vector<Step>& out, Ext& cur) {
    std::set<DomId> ctxs;
    for (const auto& [c, m] : cur.await) ctxs.insert(c);
    for (DomId c : ctxs) {
        Ext n = ext_flush(cur, c);
        out.push_back({event("flush", c), cur, n});
        cur = n;
    }
    std::vector<Mfn> ms;
    for (const auto& [m, n] : cur.pend) ms.push_back(m);
    for (Mfn m : ms) {
        Sample smp = event("put", DomId{});
        smp.mfn = m;
        Ext n = ext_put(cur, m);
        out.push_back({smp, cur, n});
        cur = n;
    }
}

// A balloon as the encoding's steps (issue 17, item 5): its linearization (ref's successor `r`
// with the servers' queues as before, and the invalidations owed: one per tuple of the frame
// but orphans, in F8 order), then one deliver step per invalidation, in that order (ref's
// loop: each into the ring if it has room then, else synchronous). `cur` moves to the end.
void balloon_steps(std::vector<Step>& out, Ext& cur, const Sample& smp, const RefStep& r) {
    Ext lin = r.post;
    lin.s.servers = cur.s.servers;
    if (const auto m = cur.s.p2m(smp.c, smp.gfn);
        m && cur.s.frame(*m).state != FrameState::xen && cur.s.m2b.contains(*m))
        for (const auto& [t, info] : cur.s.m2b.at(*m))
            if (!info.orphan) lin.owed.emplace_back(ServerKey{t.domid, t.ioserver}, t.bfn);
    out.push_back({smp, cur, lin, r.status, r.caps});
    cur = lin;
    while (!cur.owed.empty()) {
        const auto [key, b] = cur.owed.front();
        Sample dv = event("deliver", key.first);
        dv.ioserver = key.second, dv.bfn = b;
        Ext n = ext_deliver(cur, key.first, key.second, b);
        out.push_back({dv, cur, n});
        cur = n;
    }
}

// ref's drain (D11: the ring's requests, then the synchronous channel's) as the encoding's
// steps, one request each, the head first; an empty drain is one failing step.
void drain_steps(std::vector<Step>& out, Ext& cur, const Sample& smp) {
    const IoServer* srv = cur.s.server(smp.c, smp.ioserver);
    std::vector<Bfn> order;
    if (srv != nullptr) {
        for (const IoReq& q : srv->buffered) order.push_back(q.bfn);
        for (const IoReq& q : srv->sync) order.push_back(q.bfn);
    }
    if (order.empty()) {
        out.push_back({smp, cur, cur});
        return;
    }
    for (Bfn b : order) {
        Sample one = smp;
        one.bfn = b;
        Ext n = ext_drain_one(cur, smp.c, smp.ioserver, b);
        out.push_back({one, cur, n});
        cur = n;
    }
}

// R9 v2 steps 1 and 2 on one tuple (m, t) of dying d (destroy_drop_tuple): it goes (d holds
// it, or its emulator E is usable and E's entry at bfn is foreign; E's entry re-pointed at
// scratch unless another tuple of E uses bfn, D7), its reference deferred until E's flush; or
// it stays, an orphan.
Ext ext_drop_tuple(Ext x, DomId d, Mfn m, const Tuple& t) {
    State& s = x.s;
    TupleInfo& info = s.m2b.at(m).at(t);
    const DomId e = info.emulator;
    const auto entry = s.entry(e, t.bfn);
    if (e != d && !(s.usable(e) && entry && entry->kind == EntryKind::foreign)) {
        info.orphan = true;
        return x;
    }
    auto it = s.m2b.find(m);
    it->second.erase(t);
    if (it->second.empty()) s.m2b.erase(it);
    ++x.pend[m];
    x.await.insert({e, m});
    auto& ctx = s.domains.at(e).iommu;
    if (auto en = ctx.find(t.bfn);
        en != ctx.end() && en->second.kind == EntryKind::foreign && !s.claimed(e, t.bfn))
        en->second = Entry{Mfn{}, en->second.perms, EntryKind::scratch};  // D7
    return x;
}
// R9 v2 step 4 on one local entry of d: it goes, its reference deferred until d's flush.
Ext ext_drop_local(Ext x, DomId d, Bfn b) {
    auto& ctx = x.s.domains.at(d).iommu;
    const Mfn m = ctx.at(b).mfn;
    ctx.erase(b);
    ++x.pend[m];
    x.await.insert({d, m});
    return x;
}

// ref's destroy(d) as the encoding's steps, each followed by its flush and puts (R11): begin,
// step 1 (the tuples d holds), step 2 (the tuples of servers whose target is d), step 3 (a
// balloon per RAM gfn of d), step 4 (d's local entries), finish.
std::vector<Step> destroy_steps(const Ext& pre, DomId d) {
    std::vector<Step> out;
    Ext cur = pre;
    auto add = [&](const Sample& smp, const Ext& n) {
        out.push_back({smp, cur, n});
        cur = n;
    };
    {
        Ext n = cur;
        n.dying.insert(d);
        forget_emulator(n.h, d);  // D23
        add(event("destroy_begin", d), n);
    }
    auto drop = [&](Mfn m, const Tuple& t) {
        Sample smp = event("destroy_drop_tuple", d);
        smp.mfn = m, smp.bfn = t.bfn, smp.domid = t.domid, smp.ioserver = t.ioserver;
        add(smp, ext_drop_tuple(cur, d, m, t));
        settle(out, cur);
    };
    std::vector<std::pair<Mfn, Tuple>> held;
    for (const auto& [m, tuples] : cur.s.m2b)
        for (const auto& [t, info] : tuples)
            if (info.emulator == d) held.emplace_back(m, t);
    for (const auto& [m, t] : held) drop(m, t);
    std::vector<std::pair<Mfn, Tuple>> of_servers;
    for (const auto& [key, srv] : cur.s.servers) {
        if (key.first != d) continue;
        for (const auto& [m, tuples] : cur.s.m2b)
            for (const auto& [t, info] : tuples)
                if (t.domid == d && t.ioserver == key.second && !info.orphan)
                    of_servers.emplace_back(m, t);
    }
    for (const auto& [m, t] : of_servers) drop(m, t);
    const auto p2m = cur.s.domains.at(d).p2m;
    for (const auto& [g, m] : p2m) {
        if (cur.s.frame(m).state == FrameState::xen) continue;  // goes at the finish
        Sample smp = event("balloon", d);
        smp.gfn = g;
        balloon_steps(out, cur, smp, ref_step(cur, smp));
        settle(out, cur);
    }
    const auto iommu = cur.s.domains.at(d).iommu;
    for (const auto& [b, en] : iommu) {
        if (en.kind != EntryKind::local) continue;
        Sample smp = event("destroy_drop_local", d);
        smp.bfn = b;
        add(smp, ext_drop_local(cur, d, b));
        settle(out, cur);
    }
    {
        Ext n = cur;
        std::erase_if(n.s.servers, [d](const auto& kv) {
            return kv.first.first == d || kv.second.emulator == d;
        });
        n.s.domains.erase(d);
        for (auto& [id, dom] : n.s.domains) dom.dm_over.erase(d);  // D8
        std::erase_if(n.tlb, [d](const auto& e) { return std::get<0>(e) == d; });
        std::erase_if(n.await, [d](const auto& e) { return e.first == d; });
        forget_emulator(n.h, d);
        n.dying.erase(d);
        add(event("destroy_finish", d), n);
    }
    return out;
}

// The chain of encoded steps that ref's operation `smp` amounts to from `pre`; `ref_post`
// gets ref's own post-state (the chain must end there), `status` ref's status.
std::vector<Step> chain_of(const Ext& pre, const Sample& smp, State& ref_post, unsigned& status,
                           const std::string& ref_mutant = "") {
    if (smp.op == "destroy") {
        ref::Hypervisor hv(pre.s);
        hv.destroy(smp.c);
        ref_post = hv.state();
        status = 0;
        return destroy_steps(pre, smp.c);
    }
    const RefStep r = ref_step(pre, smp, ref_mutant);
    ref_post = r.ref_post;
    status = r.status;
    std::vector<Step> out;
    Ext cur = pre;
    if (smp.op == "balloon") {
        balloon_steps(out, cur, smp, r);  // issue 17, item 5: R7's deliveries as steps
    } else if (smp.op == "drain") {
        drain_steps(out, cur, smp);
    } else {
        out.push_back({smp, pre, r.post, r.status, r.caps});
        cur = r.post;
    }
    settle(out, cur);
    return out;
}

// Issue 17, item 4: a well-formed control-plane statement on `st` (spec/trace-format.md
// section 2; the scope of its transition), nullopt when the one drawn is not.
std::optional<Sample> random_control(Gen& g, const State& st) {
    static const char* names[] = {"create_domain", "dm", "ioserver", "rmrr", "xen_gfn", "fault"};
    Sample s;
    s.op = names[g.below(6)];
    std::vector<DomId> live;
    bool have_hw = false;
    for (const auto& [d, dom] : st.domains) {
        live.push_back(d);
        have_hw = have_hw || dom.hardware;
    }
    std::uint64_t free = 0;
    for (std::uint64_t m = 0; m < st.host.frames; ++m)
        free += st.frame(Mfn{m}).state == FrameState::free;
    if (s.op == "fault") {
        s.n = static_cast<std::uint32_t>(g.below(4));
        return s;
    }
    if (s.op == "create_domain") {
        std::vector<DomId> dead;
        for (std::uint16_t d = 0; d < kDoms; ++d)
            if (st.domain(DomId{d}) == nullptr) dead.push_back(DomId{d});
        if (dead.empty()) return std::nullopt;
        s.c = dead[g.below(dead.size())];
        // (scope: no tuple names D: a domid reused while orphans name it is not encoded)
        for (const auto& [m, ts] : st.m2b)
            for (const auto& [t, info] : ts)
                if (t.domid == s.c || info.emulator == s.c) return std::nullopt;
        s.hw = !have_hw && g.coin(40);
        s.iommu_hw = g.coin(75);
        s.n = static_cast<std::uint32_t>(std::min<std::uint64_t>(g.below(3), free));  // ram
        if (g.coin(30)) s.quota = static_cast<std::int64_t>(g.below(4));              // D20
        return s;
    }
    if (live.empty()) return std::nullopt;
    s.c = live[g.below(live.size())];
    if (s.op == "dm") {
        s.domid = live[g.below(live.size())];
    } else if (s.op == "ioserver") {
        s.ioserver = IoServId{static_cast<std::uint16_t>(g.below(kSids))};
        s.emulator = live[g.below(live.size())];
        s.n = static_cast<std::uint32_t>(g.below(5));
        if (st.server(s.c, s.ioserver) != nullptr) return std::nullopt;
    } else if (s.op == "rmrr") {
        s.bfn = Bfn{g.below(kAddrs)};
        if (st.domain(s.c)->iommu.contains(s.bfn)) return std::nullopt;
    } else {  // xen_gfn
        s.gfn = Gfn{g.below(kAddrs)};
        if (st.p2m(s.c, s.gfn) || free == 0) return std::nullopt;
    }
    return s;
}

// The chain of encoded steps of a control-plane statement: the statement (create_domain with
// no frame), then for create_domain's ram=N one populate of each gfn 0..N-1 (R8's lowest free
// frame, as ref's create hands them out). `ref_post` gets ref's own post-state.
std::vector<Step> control_chain(const Ext& pre, const Sample& smp, State& ref_post) {
    {
        ref::Hypervisor whole(pre.s);
        (void)run_control(whole, smp, smp.n);
        ref_post = whole.state();
    }
    std::vector<Step> out;
    ref::Hypervisor hv(pre.s);
    (void)run_control(hv, smp, 0);
    Ext cur = pre;
    cur.s = hv.state();
    out.push_back({smp, pre, cur});
    for (std::uint64_t g = 0; smp.op == "create_domain" && g < smp.n; ++g) {
        Sample p = smp;
        p.op = "populate";
        p.gfn = Gfn{g};
        const RefStep r = ref_step(cur, p);
        out.push_back({p, cur, r.post, r.status});
        cur = r.post;
    }
    return out;
}

// A tlb_fill of a random usable context's local or foreign entry (nullopt: none exists).
std::optional<Sample> random_fill(Gen& g, const State& st) {
    std::vector<std::pair<DomId, Bfn>> can;
    for (const auto& [d, dom] : st.domains)
        if (st.usable(d))
            for (const auto& [b, en] : dom.iommu)
                if (en.kind == EntryKind::local || en.kind == EntryKind::foreign)
                    can.emplace_back(d, b);
    if (can.empty()) return std::nullopt;
    const auto [d, b] = can[g.below(can.size())];
    Sample smp = event("tlb_fill", d);
    smp.bfn = b;
    return smp;
}

// A balloon of a frame that some tuple other than an orphan holds (its chain then has deliver
// steps); `smp` unchanged if none.
void aim_balloon(const State& st, Sample& smp) {
    for (const auto& [m, ts] : st.m2b) {
        if (std::none_of(ts.begin(), ts.end(), [](const auto& kv) { return !kv.second.orphan; }))
            continue;
        for (const auto& [d, dom] : st.domains)
            for (const auto& [g, pm] : dom.p2m)
                if (pm == m) {
                    smp.op = "balloon", smp.c = d, smp.gfn = g;
                    return;
                }
    }
}

// The concrete state `st` encoded, and a solver that holds its facts. The bare smt tactic: no
// solve-eqs, so every named read gets a value in the model (with it, a read equal to a
// quantified term was eliminated and evaluated back to the term).
struct Concrete {
    St s;
    z3::solver sv;
};
// `timeout_ms` 0: none; `rlimit` 0: none (an obligation, non-vacuity, uses the rlimit only, so
// that its verdict does not depend on the machine's load).
Concrete concrete_solver(const Sorts& so, const Ext& st, unsigned timeout_ms, unsigned rlimit = 0) {
    Concrete out{encode_state(so, st), z3::tactic(so.ctx, "smt").mk_solver()};
    z3::params p(so.ctx);
    if (timeout_ms != 0) p.set("timeout", timeout_ms);
    if (rlimit != 0) p.set("rlimit", rlimit);
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
        else if (f == "hardware")
            sv.add(a == c.bool_val(smp.hw));
        else if (f == "iommu_hw")
            sv.add(a == c.bool_val(smp.iommu_hw));
        else if (f == "emulator")
            sv.add(a == e.d(smp.emulator));
        else if (f == "ring" || f == "count")
            sv.add(a == e.cnt(smp.n));
        else if (f == "quota")
            sv.add(a == c.int_val(smp.quota));
    }
}

// The encoded transition of step `sp` on its pre-state with its arguments; compares status and
// every successor component with the step's post-state (`caps`: what ref's query_caps
// returned). Returns "" on agreement, else what differs.
// `hit` (if given) gets the indices of the transition's cases whose guard holds on the sample
// (the guards' witness constants chosen by the solver: some case must hold, coverage/T).
std::string compare(const Step& sp, const Options& opt, std::vector<std::size_t>* hit = nullptr) {
    const Ext& pre = sp.pre;
    const Ext& post = sp.post;
    const Sample& smp = sp.smp;
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
    // destroy_finish acts on every state its chain reaches (its checks are universal: all of
    // D's holders are gone): that is refuted apart, where the negated checks are ground after
    // skolemization, and its successor (lambdas, no quantifier) is read in the ok case.
    // Measured: with the checks in the successor's ite, 5 of 43 chains' finish came back
    // unknown (incomplete quantifiers), whichever check was left out.
    const bool finish = smp.op == "destroy_finish";
    std::vector<expr> guards;  // conf.caseK == case K's guard
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
        if (hit != nullptr) hit->push_back(0);
    } else {
        sv.add(okv == t.ok && stv == t.status);
        if (hit != nullptr) {
            // Named, so that the solver decides each guard's quantifiers (a model's evaluation
            // of a quantifier is not reliable).
            expr any = c.bool_val(false);
            for (std::size_t k = 0; k < t.cases.size(); ++k) {
                const expr hk = c.bool_const(("conf.case" + std::to_string(k)).c_str());
                sv.add(hk == t.cases[k].first);
                guards.push_back(hk);
                any = any || hk;
            }
            sv.add(any);
        }
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
        read("query_caps map_cap", *t.out, c.bool_val((sp.caps.raw & IOMMU_QUERY_map_cap) != 0));
    for (std::uint64_t m = 0; m < kAddrs; ++m) {
        const Frame f = post.s.frame(Mfn{m});
        const std::string w = "frame " + std::to_string(m);
        read(w + " state", n.fstate[e.a(m)],
             e.k2(f.state == FrameState::free  ? kFree
                  : f.state == FrameState::xen ? kXen
                                               : kOwned));
        if (f.state == FrameState::owned) read(w + " owner", n.owner[e.a(m)], e.d(f.owner));
        read(w + " count", n.count[e.a(m)], e.cnt(f.count));
        read(w + " allocated", n.alloc[e.a(m)], c.bool_val(f.allocated));
        const auto pe = post.pend.find(Mfn{m});
        read(w + " deferred references", n.pend[e.a(m)],
             e.cnt(pe == post.pend.end() ? 0 : pe->second));
    }
    // Domains, servers and privileges: destroy_finish changes them. A domain that is gone (or
    // never was) reads as an empty one.
    const Domain none;
    for (std::uint16_t d = 0; d < kDoms; ++d) {
        const DomId dd{d};
        const Domain* pd = post.s.domain(dd);
        read("domain " + std::to_string(d) + " live", n.live[e.d(dd)], c.bool_val(pd != nullptr));
        read("domain " + std::to_string(d) + " dying", n.dying[e.d(dd)],
             c.bool_val(post.dying.contains(dd)));
        if (pd != nullptr) {  // issue 17, item 4: create_domain sets them
            read("domain " + std::to_string(d) + " hardware", n.hw[e.d(dd)],
                 c.bool_val(pd->hardware));
            read("domain " + std::to_string(d) + " iommu_hw", n.iommu_hw[e.d(dd)],
                 c.bool_val(pd->iommu_hw));
            // D20: the quota, the holdings counter (ref's holdings: its tuples, orphans
            // included, and local entries) and the ghost count of its swap tuples per frame.
            read("domain " + std::to_string(d) + " quota", n.quota[e.d(dd)],
                 c.int_val(pd->quota ? std::int64_t{*pd->quota} : -1));
            read("domain " + std::to_string(d) + " holdings", n.hold[e.d(dd)],
                 e.cnt(post.s.holdings(dd)));
            for (std::uint64_t m = 0; m < kAddrs; ++m) {
                if (!pre.s.m2b.contains(Mfn{m}) && !post.s.m2b.contains(Mfn{m})) continue;
                std::uint64_t k = 0;
                if (const auto it = post.s.m2b.find(Mfn{m}); it != post.s.m2b.end())
                    for (const auto& [tp, info] : it->second)
                        k += info.emulator == dd && drop_class_ref(post.s, info);
                read("domain " + std::to_string(d) + " swap tuples of mfn=" + std::to_string(m),
                     n.hsw[e.da(dd, m)], e.cnt(k));
            }
        }
        for (std::uint16_t i = 0; i < kSids; ++i)
            read("ioserver " + std::to_string(d) + " id=" + std::to_string(i),
                 n.srv[e.ds(dd, IoServId{i})],
                 c.bool_val(post.s.server(dd, IoServId{i}) != nullptr));
        for (std::uint16_t t2 = 0; t2 < kDoms; ++t2)
            read("dm " + std::to_string(d) + " over " + std::to_string(t2),
                 n.dm[z3::concat(e.d(dd), e.d(DomId{t2}))],
                 c.bool_val(pd != nullptr && pd->dm_over.contains(DomId{t2})));
        for (std::uint64_t m = 0; m < kAddrs; ++m) {
            z3::expr_vector ix(c);
            ix.push_back(e.d(dd));
            ix.push_back(e.a(m));
            read("await " + std::to_string(d) + " mfn=" + std::to_string(m),
                 z3::select(n.await, ix), c.bool_val(post.await.contains({dd, Mfn{m}})));
        }
    }
    for (std::uint16_t d = 0; d < kDoms; ++d) {
        const Domain* dom = post.s.domain(DomId{d});
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
            read(w + " rmrr", n.rmrr[e.da(DomId{d}, x)],
                 c.bool_val(std::any_of(dom->rmrr.begin(), dom->rmrr.end(),
                                        [x](const Range& r) { return r.meets(Bfn{x}, 1); })));
        }
    }
    // Tuples: those before and after, and every tuple of the frames involved.
    std::map<std::pair<std::uint64_t, Tuple>, bool> tuples;
    for (const State* st : {&pre.s, &post.s})
        for (const auto& [m, ts] : st->m2b)
            for (const auto& [tp, info] : ts) tuples[{m.v, tp}] = false;
    for (auto& [k, v] : tuples) {
        const auto it = post.s.m2b.find(Mfn{k.first});
        v = it != post.s.m2b.end() && it->second.contains(k.second);
        const expr tt = e.tup(Mfn{k.first}, k.second);
        read("tuple mfn=" + std::to_string(k.first) + " bfn=" + std::to_string(k.second.bfn.v) +
                 " domid=" + std::to_string(k.second.domid.v) +
                 " ioserver=" + std::to_string(k.second.ioserver.v),
             n.m2b[tt], c.bool_val(v));
        if (v) {
            const TupleInfo& info = post.s.m2b.at(Mfn{k.first}).at(k.second);
            read("tuple swap", n.swap[tt], c.bool_val(info.swap));
            read("tuple emulator", n.temu[tt], e.d(info.emulator));
            read("tuple orphan", n.torph[tt], c.bool_val(info.orphan));
        }
    }
    // The IOTLBs: every translation cached before or after.
    std::set<std::tuple<DomId, Bfn, Mfn>> cached = pre.tlb;
    cached.insert(post.tlb.begin(), post.tlb.end());
    for (const auto& [d, b, m] : cached) {
        z3::expr_vector ix(c);
        ix.push_back(e.da(d, b.v));
        ix.push_back(e.a(m.v));
        read("tlb " + std::to_string(d.v) + " bfn=" + std::to_string(b.v) +
                 " mfn=" + std::to_string(m.v),
             z3::select(n.tlb, ix), c.bool_val(post.tlb.contains({d, b, m})));
    }
    // H: every key before or after, and the key the sample names.
    std::set<HandedKey> keys;
    for (const Handed* h : {&pre.h, &post.h})
        for (const auto& [k, m] : *h) keys.insert(k);
    keys.insert({smp.c, smp.bfn, smp.domid, smp.ioserver});
    for (const HandedKey& k : keys) {
        const std::string w =
            "H key " + std::to_string(k.emulator.v) + " bfn=" + std::to_string(k.bfn.v) +
            " domid=" + std::to_string(k.domid.v) + " ioserver=" + std::to_string(k.ioserver.v);
        const auto it = post.h.find(k);
        read(w, n.hk[e.key(k)], c.bool_val(it != post.h.end()));
        if (it != post.h.end()) read(w + " mfn", n.hm[e.key(k)], e.a(it->second.v));
    }
    read("fault", n.fault, e.cnt(post.s.fault_iommu_map));
    // R7's queues (issue 17, item 5, INV-INVALIDATE): per server its ring's slots and length;
    // per (bfn, server) the requests on the ring and on the synchronous channel, those owed
    // (a balloon's linearization, before its deliver steps) and the ghost owe, at every bfn a
    // queue, an owed invalidation or a tuple names before or after, and the sample's.
    std::set<std::uint64_t> qbfns = {smp.bfn.v};
    for (const Ext* x : {&pre, &post}) {
        for (const auto& [key, srv] : x->s.servers) {
            for (const IoReq& q : srv.buffered) qbfns.insert(q.bfn.v);
            for (const IoReq& q : srv.sync) qbfns.insert(q.bfn.v);
        }
        for (const auto& [key, b] : x->owed) qbfns.insert(b.v);
        for (const auto& [m, ts] : x->s.m2b)
            for (const auto& [tp, info] : ts) qbfns.insert(tp.bfn.v);
    }
    for (std::uint16_t d = 0; d < kDoms; ++d)
        for (std::uint16_t i = 0; i < kSids; ++i) {
            const DomId dd{d};
            const IoServId ii{i};
            const IoServer* srv = post.s.server(dd, ii);
            const std::string w = "ioserver " + std::to_string(d) + " id=" + std::to_string(i);
            read(w + " ring length", n.rlen[e.ds(dd, ii)],
                 e.cnt(srv == nullptr ? 0 : srv->buffered.size()));
            if (srv != nullptr) {
                read(w + " ring slots", n.rcap[e.ds(dd, ii)], e.cnt(srv->ring_slots));
                read(w + " emulator", n.emu[e.ds(dd, ii)], e.d(srv->emulator));
            }
            for (const std::uint64_t b : qbfns) {
                std::uint64_t nr = 0, ns = 0, np = 0;
                if (srv != nullptr) {
                    for (const IoReq& q : srv->buffered) nr += q.bfn.v == b;
                    for (const IoReq& q : srv->sync) ns += q.bfn.v == b;
                }
                for (const auto& [key, ob] : post.owed) np += key == ServerKey{dd, ii} && ob.v == b;
                const expr k = z3::concat(e.a(b), e.ds(dd, ii));
                const std::string wb = w + " bfn=" + std::to_string(b);
                read(wb + " requests on the ring", n.rq[k], e.cnt(nr));
                read(wb + " requests on the synchronous channel", n.sq[k], e.cnt(ns));
                read(wb + " invalidations owed", n.pdl[k], e.cnt(np));
                read(wb + " owed, not yet drained (ghost)", n.owe[k], e.cnt(nr + ns + np));
            }
        }
    const z3::check_result r = sv.check();
    if (r != z3::sat)
        return std::string("solver: ") + (r == z3::unsat ? "unsat (scope excludes the sample)"
                                                         : "unknown (" + sv.reason_unknown() + ")");
    const z3::model mdl = sv.get_model();
    std::ostringstream diff;
    if (hit != nullptr && !finish)
        for (std::size_t k = 0; k < guards.size(); ++k)
            if (mdl.eval(guards[k], true).is_true()) hit->push_back(k);
    const unsigned zst = static_cast<unsigned>(mdl.eval(stv, true).get_numeral_uint64());
    if (zst != sp.status) diff << "  status: ref " << sp.status << ", encoding " << zst << "\n";

    for (const Read& rd : reads) {
        const expr got = mdl.eval(rd.v, true), want = mdl.eval(rd.want, true);
        if (!z3::eq(got.simplify(), want.simplify()))
            diff << "  " << rd.what << ": ref " << want << ", encoding " << got << "\n";
    }
    return diff.str();
}

}  // namespace

ConformanceResult conformance(std::uint64_t seed, std::size_t samples, const Options& opt) {
    ConformanceResult res;
    res.seed = seed;
    const auto t0 = std::chrono::steady_clock::now();
    Gen g{std::mt19937_64(seed)};
    // Issue 17, item 4: the control-plane statements, drawn by a generator of their own and
    // compared from the state reached, then discarded (so the ops' draws, and the rows that
    // seed 4 reaches, are those of the conformance without them). Not counted in `samples`.
    Gen gc{std::mt19937_64(seed * 31 + 17)};
    auto diverged = [&](const std::string& what, const std::string& d, const Ext& pre) {
        ++res.divergences;
        if (res.detail.size() < 20000)
            res.detail +=
                "divergence on " + what + "\n" + d + "  pre-state:\n" + ext_text(pre) + "\n";
    };
    while (res.samples < samples) {
        const auto hvp = make_world(g, nullptr, true);  // D20: with quotas, -ENOMEM rows
        Ext cur = ext_of(hvp->state(), {}, false);
        const std::size_t steps = 1 + g.below(20);
        for (std::size_t k = 0; k < steps && res.samples < samples; ++k) {
            // R11: a device may cache a translation at any time (a step of its own).
            if (g.coin(30))
                if (const auto fill = random_fill(g, cur.s)) {
                    const Step sp{*fill, cur, ext_fill(cur, fill->c, fill->bfn)};
                    if (const std::string d = compare(sp, opt); !d.empty())
                        diverged(sample_text(*fill), d, cur);
                    ++res.samples;
                    ++res.per_op["tlb_fill"];
                    cur = sp.post;
                    if (res.samples >= samples) break;
                }
            const Sample smp = random_op(g, cur.s);
            if (cur.s.domain(smp.c) == nullptr) break;  // every encoded op has a live caller
            State ref_post;
            unsigned st = 0;
            const std::vector<Step> chain = chain_of(cur, smp, ref_post, st);
            std::string d;
            for (const Step& sp : chain) {
                // R9 v2 step 2 left an orphan (the tuple is still there).
                if (sp.smp.op == "destroy_drop_tuple" && sp.post.s.m2b.contains(sp.smp.mfn) &&
                    sp.post.s.m2b.at(sp.smp.mfn)
                        .contains(Tuple{sp.smp.bfn, sp.smp.domid, sp.smp.ioserver}))
                    ++res.orphans;
                const std::string dd = compare(sp, opt);
                if (!dd.empty())
                    d += chain.size() == 1 ? dd : "  step " + sample_text(sp.smp) + ":\n" + dd;
                if (sp.smp.op != smp.op) ++res.per_op[sp.smp.op];
            }
            const Ext& end = chain.back().post;
            if (!(end.s == ref_post) || !end.pend.empty() || !end.await.empty() ||
                !end.owed.empty())
                d += "  the chain of steps ends elsewhere than ref:\n" +
                     dump_diff(end.s, ref_post) + "  the chain's end:\n" + ext_text(end) +
                     "  ref's post-state:\n" + dump(ref_post);
            ++res.samples;
            ++res.per_op[smp.op];
            ++res.per_status[st];
            if (!d.empty()) diverged(sample_text(smp), d, cur);
            cur = end;
            if (gc.coin(20))
                if (const std::optional<Sample> cs = random_control(gc, cur.s)) {
                    State cpost;
                    const std::vector<Step> cchain = control_chain(cur, *cs, cpost);
                    std::string cd;
                    for (const Step& sp : cchain) {
                        const std::string dd = compare(sp, opt);
                        if (!dd.empty()) cd += "  step " + sample_text(sp.smp) + ":\n" + dd;
                        ++res.per_op[sp.smp.op];
                    }
                    if (!(cchain.back().post.s == cpost))
                        cd += "  the chain of steps ends elsewhere than ref:\n" +
                              dump_diff(cchain.back().post.s, cpost);
                    if (!cd.empty()) diverged(sample_text(*cs), cd, cur);
                }
        }
    }
    res.seconds = seconds_since(t0);
    return res;
}

namespace {
// What a BMC checks after a step: every INV-* but INV-COUNT (ref's check_invariants decides
// INV-COUNT on every explored state; its ghosts are the induction's device, not a property of
// the state).
std::vector<std::string> bmc_invariants() {
    std::vector<std::string> invs;
    for (const auto& n : invariant_names())
        if (n.rfind("INV-", 0) == 0 && n != "INV-COUNT") invs.push_back(n);
    return invs;
}

// The subops and events, and R11's steps (a removal's flush and put, a device's IOTLB fill),
// which a removing op needs before its references go.
const std::vector<std::string>& bmc_ops() {
    static const std::vector<std::string> v = {"map_foreign_page",
                                               "unmap_foreign_page",
                                               "lookup_foreign_page",
                                               "map_page",
                                               "unmap_page",
                                               "balloon",
                                               "populate",
                                               "tlb_fill",
                                               "flush",
                                               "put"};
    return v;
}

// One BMC run from the concrete initial state of one world: `depth` steps, each one of the
// encoded transitions with free arguments; sat when a state invariant (INV-*) fails at some
// step. On sat, `trace` gets a TRACE-FORMAT file that replays the steps on ref.
z3::check_result bmc_world(const State& init, const std::string& world, unsigned depth,
                           const Options& opt, std::string& trace, std::string& detail) {
    z3::context c;
    Sorts so(c, conf_widths());
    auto [s, sv] = concrete_solver(so, ext_of(init, {}, false), opt.timeout_ms);
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
        const expr sel = c.constant(("bmc.sel" + std::to_string(k)).c_str(), c.bv_sort(4));
        sv.add(z3::ult(sel, c.bv_val(static_cast<unsigned>(bmc_ops().size()), 4)));
        Step st{sel, {}};
        St next = fresh_state(so, "bmc" + std::to_string(k + 1) + ".");
        for (unsigned j = 0; j < bmc_ops().size(); ++j) {
            st.ts.push_back(make_transition(sk, s, bmc_ops()[j], Mutant::none));
            const Transition& t = st.ts.back();
            const expr on = sel == c.bv_val(j, 4);
            for (const Clause& cl : t.scope) sv.add(z3::implies(on, cl.e));
            sv.add(z3::implies(on, same_state(next, t.next)));
        }
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
        if (op == "tlb_fill" || op == "flush" || op == "put") {
            // R11's steps have no statement: ref's ops end flushed.
            os << "# " << op;
            for (const auto& [n, v] : a) os << " " << n << "=" << num(v);
            os << "\n";
            continue;
        }
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
    res.seconds = seconds_since(t0);
    return res;
}

namespace {

// The explorer's statement as a conformance sample (nullopt: outside the encoding: a batch,
// an order > 0 call).
std::optional<Sample> sample_of(const trace::Stmt& st) {
    Sample smp;
    if (const auto* b = std::get_if<trace::BalloonStmt>(&st)) {
        smp.op = "balloon", smp.c = b->d, smp.gfn = b->gfn;
        return smp;
    }
    if (const auto* p = std::get_if<trace::PopulateStmt>(&st)) {
        smp.op = "populate", smp.c = p->d, smp.gfn = p->gfn;
        return smp;
    }
    if (const auto* d = std::get_if<trace::DestroyStmt>(&st)) {
        smp.op = "destroy", smp.c = d->d;
        return smp;
    }
    if (const auto* dr = std::get_if<trace::DrainStmt>(&st)) {
        smp.op = "drain", smp.c = dr->target, smp.ioserver = dr->id;
        return smp;
    }
    const auto* call = std::get_if<trace::CallStmt>(&st);
    if (call == nullptr || call->ops.size() != 1) return std::nullopt;
    smp.c = call->caller;
    bool order0 = true;
    std::visit(
        [&](const auto& op) {
            using T = std::decay_t<decltype(op)>;
            if constexpr (std::is_same_v<T, QueryCaps>) {
                smp.op = "query_caps";
            } else if constexpr (std::is_same_v<T, UnknownOp>) {
                order0 = false;  // R1's -EOPNOTSUPP: no encoded transition
            } else {
                smp.flags = op.flags;
                order0 = (op.flags.raw >> 10) == 0;
                smp.bfn = op.bfn;
                if constexpr (std::is_same_v<T, MapPage>) {
                    smp.op = "map_page", smp.gfn = op.gfn;
                } else if constexpr (std::is_same_v<T, UnmapPage>) {
                    smp.op = "unmap_page";
                } else if constexpr (std::is_same_v<T, MapForeignPage>) {
                    smp.op = "map_foreign_page", smp.gfn = op.gfn, smp.domid = op.domid,
                    smp.ioserver = op.ioserver;
                } else if constexpr (std::is_same_v<T, UnmapForeignPage>) {
                    smp.op = "unmap_foreign_page", smp.domid = op.domid, smp.ioserver = op.ioserver;
                } else {
                    smp.op = "lookup_foreign_page", smp.gfn = op.gfn, smp.domid = op.domid,
                    smp.ioserver = op.ioserver, smp.bfn_invalid = op.bfn == kBfnInvalid;
                }
            }
        },
        call->ops.front());
    if (!order0) return std::nullopt;
    return smp;
}

// What an edge changed, coarsely (counts of each kind of fact before and after): edges with
// the same statement kind, status and change take the same path through ref and the encoding
// far more often than not, so a few of each bucket reach every case cheaply.
std::string change_signature(const State& a, const State& b) {
    auto counts = [](const State& s) {
        std::vector<long> v(16, 0);
        for (const auto& [m, f] : s.frames) {
            ++v[static_cast<std::size_t>(f.state)];
            v[3] += f.count;
            v[4] += f.allocated;
        }
        for (const auto& [m, ts] : s.m2b)
            for (const auto& [t, info] : ts) {
                ++v[5];
                v[6] += info.orphan + 10L * info.swap;
            }
        for (const auto& [d, dom] : s.domains) {
            ++v[7];
            v[8] += static_cast<long>(dom.p2m.size());
            v[9] += static_cast<long>(dom.removed_identity.size());
            for (const auto& [bf, en] : dom.iommu) ++v[10 + static_cast<std::size_t>(en.kind) % 4];
        }
        for (const auto& [k, srv] : s.servers) {
            v[14] += static_cast<long>(srv.buffered.size());
            v[15] += static_cast<long>(srv.sync.size()) * 100 + 1;
        }
        v[3] += 1000L * s.fault_iommu_map;
        return v;
    };
    const auto x = counts(a), y = counts(b);
    std::string out;
    for (std::size_t i = 0; i < x.size(); ++i) out += std::to_string(y[i] - x[i]) + ",";
    return out;
}

}  // namespace

std::vector<std::string> edge_conformance_worlds() { return {"xengt", "stubdom", "inclusive"}; }

std::map<std::string, std::map<std::size_t, std::string>> unreached_cases() {
    const std::string chain = "a failing step: ref's chains only take this step where it acts";
    const std::string control =
        "a control-plane statement (issue 17, item 4): the explorer's worlds are built before "
        "it runs, so no edge is one; the random conformance compares it";
    return {
        {"create_domain", {{0, control}}},
        {"dm", {{0, control}}},
        {"ioserver", {{0, control}}},
        {"rmrr", {{0, control}}},
        {"xen_gfn", {{0, control}}},
        {"fault", {{0, control}}},
        {"destroy_begin", {{1, chain}}},
        {"deliver", {{2, chain}}},
        {"destroy_drop_local", {{1, chain}}},
        {"destroy_finish", {{1, chain}}},
        {"put", {{2, chain}}},
        {"tlb_fill", {{1, chain}}},
        {"destroy_drop_tuple",
         {{1,
           "a class-1 tuple whose emulator has no foreign entry at its bfn: AUX-SWAP says none "
           "exists"},
          {7, chain}}},
        {"unmap_foreign_page",
         {{1,
           "a class-1 tuple whose emulator has no foreign entry at its bfn: AUX-SWAP says none "
           "exists"},
          {7,
           "a scratch entry at a bfn that another tuple of C claims: a bfn turns scratch only "
           "when no tuple of C uses it, and a scratch bfn is never claimed again (R3 -EEXIST; "
           "a lookup registers only on the 1:1 map or without an IOMMU)"}}},
    };
}

std::map<std::string, std::size_t> case_counts() {
    std::map<std::string, std::size_t> out;
    z3::context c;
    Sorts so(c, conf_widths());
    const St s = fresh_state(so, "");
    for (const std::string& n : transition_names())
        out[n] = make_transition(so, s, n, Mutant::none).cases.size();
    return out;
}

EdgeConformanceResult conformance_on_edges(const std::string& world, unsigned depth,
                                           std::size_t per_bucket, const std::string& ref_mutant,
                                           const Options& opt) {
    EdgeConformanceResult res;
    res.world = world;
    res.depth = depth;
    const auto t0 = std::chrono::steady_clock::now();
    struct Pick {
        State pre;
        Handed h;
        Sample smp;
    };
    std::vector<Pick> picks;
    std::map<std::string, std::size_t> bucket;
    ExploreOptions eo;
    eo.depth = depth;
    eo.z3_every = 0;
    eo.on_edge = [&](const Edge& e) {
        ++res.edges;
        const std::optional<Sample> smp = sample_of(e.stmt);
        const int st = e.statuses.empty() ? 0 : e.statuses.front();
        // Order > 0 is not encoded (D20's quotas are, issue 17 item 4: -ENOMEM edges too).
        if (!smp) {
            ++res.skipped;
            return;
        }
        const std::string key =
            smp->op + "/" + std::to_string(st) + "/" + change_signature(e.pre, e.post);
        if (bucket[key]++ < per_bucket) picks.push_back({e.pre, e.h, *smp});
    };
    const ExploreResult er = explore(world, eo);
    res.buckets = bucket.size();
    for (std::size_t k = 0; k < picks.size(); ++k) {
        const Pick& p = picks[k];
        // Every other pick with every translation cached (R11's flushes then clear some).
        const Ext cur = ext_of(p.pre, p.h, k % 2 == 1);
        State ref_post;
        unsigned st = 0;
        const std::vector<Step> chain = chain_of(cur, p.smp, ref_post, st, ref_mutant);
        std::string d;
        for (const Step& sp : chain) {
            std::vector<std::size_t> hit;
            const std::string dd = compare(sp, opt, &hit);
            ++res.steps;
            for (std::size_t h : hit) res.cases_hit[sp.smp.op].insert(h);
            if (dd.rfind("solver: unknown", 0) == 0) res.unknown = true;
            if (!dd.empty())
                d += chain.size() == 1 ? dd : "  step " + sample_text(sp.smp) + ":\n" + dd;
        }
        const Ext& end = chain.back().post;
        if (!(end.s == ref_post) || !end.pend.empty() || !end.await.empty() || !end.owed.empty())
            d += "  the chain of steps ends elsewhere than ref:\n" + dump_diff(end.s, ref_post) +
                 "  the chain's end:\n" + ext_text(end) + "  ref's post-state:\n" + dump(ref_post);
        // R11: a device caches a translation (on the picks with nothing cached yet).
        if (k % 2 == 0) {
            for (const auto& [dd, dom] : p.pre.domains) {
                if (!p.pre.usable(dd)) continue;
                for (const auto& [b, en] : dom.iommu) {
                    if (en.kind != EntryKind::local && en.kind != EntryKind::foreign) continue;
                    Sample fill = event("tlb_fill", dd);
                    fill.bfn = b;
                    std::vector<std::size_t> hit;
                    const std::string df =
                        compare(Step{fill, cur, ext_fill(cur, dd, b)}, opt, &hit);
                    ++res.steps;
                    for (std::size_t h : hit) res.cases_hit["tlb_fill"].insert(h);
                    if (!df.empty()) d += "  step " + sample_text(fill) + ":\n" + df;
                    break;
                }
                break;
            }
        }
        ++res.compared;
        if (!d.empty()) {
            ++res.divergences;
            if (res.detail.size() < 20000)
                res.detail += "divergence on " + sample_text(p.smp) + "\n" + d + "  pre-state:\n" +
                              ext_text(cur) + "\n";
        }
    }
    if (er.violation) res.detail += "the explorer found a violation:\n" + er.trace;
    res.seconds = seconds_since(t0);
    return res;
}

std::vector<std::string> ref_mutant_names() {
    return {"unmap_keeps_foreign_entry", "ring_full_drop"};
}

MutantResult check_ref_mutant(const std::string& name) {
    const auto names = ref_mutant_names();
    if (std::find(names.begin(), names.end(), name) == names.end())
        throw std::invalid_argument("no ref mutant named " + name);
    Options o;
    o.timeout_ms = 20000u;
    // xengt: a one-request ring (the second invalidation of a balloon goes synchronous), an
    // emulator that maps and unmaps foreign pages. Depth 3 reaches both rows.
    const EdgeConformanceResult r = conformance_on_edges("xengt", 3, 1, name, o);
    MutantResult m{"ref:" + name, "conformance on the explicit BMC's edges (world xengt, depth 3)",
                   "CONFORMANCE", r.divergences > 0 && !r.unknown,
                   r.seconds,     ""};
    m.detail = std::to_string(r.divergences) + " divergences in " + std::to_string(r.compared) +
               " edges compared\n" + r.detail.substr(0, 1500);
    return m;
}

std::string encoded_invariants_on(const State& st, const Handed& h, const Options& opt) {
    z3::context c;
    Sorts so(c, conf_widths());
    // Every translation the state's entries allow cached: the most R11's fills can reach.
    const Ext x = ext_of(st, h, true);
    auto [s, sv] = concrete_solver(so, x, opt.timeout_ms);
    const std::vector<Clause> inv = all_invariants(so, s);
    for (const Clause& cl : inv) sv.add(cl.e);
    const z3::check_result r = sv.check();
    if (r == z3::sat) return "";
    if (r == z3::unknown) return "unknown (" + sv.reason_unknown() + ")";
    // Which clause: each one alone on the state (only on failure, so the cost is no matter).
    for (const Clause& cl : inv) {
        auto [s1, sv1] = concrete_solver(so, x, opt.timeout_ms);
        for (const Clause& c1 : all_invariants(so, s1))
            if (c1.name == cl.name) sv1.add(c1.e);
        if (sv1.check() != z3::sat) return cl.name;
    }
    return "the conjunction (no single clause fails)";
}

std::string encoded_step_from(const State& st, const Handed& h, const Options& opt) {
    const Ext x = ext_of(st, h, true);
    // As bmc_world, bmc_invariants() after the step; one query per transition (measured: one
    // query over all 16 with a selector came back unknown at 20 s on some order-1 states).
    const std::vector<std::string> invs = bmc_invariants();
    // Every encoded transition, the teardown steps of destroy and R11's steps included.
    for (const std::string& op : transition_names()) {
        z3::context c;
        Sorts so(c, conf_widths());
        auto [s, sv] = concrete_solver(so, x, opt.timeout_ms);
        const Transition t = make_transition(so, s, op, Mutant::none);
        for (const Clause& cl : t.scope) sv.add(cl.e);
        expr bad = c.bool_val(false);
        std::vector<Clause> clauses;
        for (const auto& n : invs)
            for (const Clause& cl : invariant(so, t.next, n)) {
                bad = bad || !cl.e;
                clauses.push_back(cl);
            }
        sv.add(bad);
        const z3::check_result r = sv.check();
        if (r == z3::unsat) continue;
        if (r == z3::unknown) return "unknown (" + sv.reason_unknown() + ", " + op + ")";
        const z3::model m = sv.get_model();
        for (const Clause& cl : clauses)
            if (m.eval(cl.e, true).is_false()) return op + " breaks " + cl.name;
        return op + ": a violation (no clause named)";
    }
    return "";
}

namespace {
// Issue 17, item 4: non-vacuity of a control-plane statement. A state ref reached (a random
// world, then a few random ops, each as its chain), encoded concretely, where Inv holds and
// some well-formed statement `what` (scope, arguments chosen by the solver) acts (changes the
// encoded state); a state where none is well formed (every domid live, say) is passed over.
// The subops and events ref runs as one call whose encoding is one transition (the others are
// steps of a chain: R11's tlb_fill, flush and put, destroy's teardown, a balloon's deliveries).
bool is_ref_subop(const std::string& op) {
    static const std::set<std::string> ops = {
        "map_foreign_page", "unmap_foreign_page", "lookup_foreign_page", "map_page", "unmap_page",
        "balloon",          "populate",           "query_caps",          "drain"};
    return ops.contains(op);
}

// The end of a witness search that found no state where `what` acts.
Result witness_not_found(Result res, const std::string& what,
                         std::chrono::steady_clock::time_point t0) {
    res.pass = false;
    res.result = "failed";
    res.detail = "no state found where " + what + " acts";
    res.seconds = seconds_since(t0);
    return res;
}

Result control_witness(const std::string& what, const Options& opt) {
    Result res{"non-vacuity/" + what, "sat", true, 0, 0, "", ""};
    const auto t0 = std::chrono::steady_clock::now();
    Gen g{std::mt19937_64(20261206)};
    for (unsigned tries = 0; tries < 200; ++tries) {
        const auto hvp = make_world(g);
        Ext cur = ext_of(hvp->state(), {}, false);
        const std::size_t steps = g.below(6);
        for (std::size_t k = 0; k < steps; ++k) {
            const Sample smp = random_op(g, cur.s);
            if (cur.s.domain(smp.c) == nullptr) break;
            State ref_post;
            unsigned st = 0;
            cur = chain_of(cur, smp, ref_post, st).back().post;
        }
        z3::context c;
        Sorts so(c, conf_widths());
        auto [s, sv] = concrete_solver(so, cur, opt.obligation_timeout_ms, opt.rlimit);
        for (const Clause& cl : all_invariants(so, s)) sv.add(cl.e);
        const Transition t = make_transition(so, s, what, Mutant::none);
        for (const Clause& cl : t.scope) sv.add(cl.e);
        sv.add(t.ok);
        sv.add(!same_state(t.next, s));
        const z3::check_result r = sv.check();
        ++res.queries;
        res.rlimit = rlimit_count(sv);
        if (r == z3::unsat) continue;  // no well-formed `what` here
        if (r == z3::unknown) {
            res.pass = false;
            res.result = "unknown";
            res.detail = "unknown (" + sv.reason_unknown() + ")\n" + ext_text(cur);
        } else {
            std::ostringstream os;
            os << "witness: a state ref reached, then " << what;
            const z3::model m = sv.get_model();
            for (const expr& a : t.args) {
                const std::string n = a.decl().name().str();
                os << " " << n.substr(n.find('.') + 1) << "=" << m.eval(a, true);
            }
            res.detail = os.str();
        }
        res.seconds = seconds_since(t0);
        return res;
    }
    return witness_not_found(std::move(res), what, t0);
}
}  // namespace

Result non_vacuity_by_witness(const std::string& what, const Options& opt) {
    if (is_control_plane(what)) return control_witness(what, opt);
    Result res{"non-vacuity/" + what, "sat", true, 0, 0, "", ""};
    const auto t0 = std::chrono::steady_clock::now();
    // A reachable state of a random small world where `what` acts (its step changes the
    // encoded state, or a subop returns 0), found by driving ref as the conformance test does,
    // each op as its chain of steps (R11's flushes and puts, destroy's teardown steps); for
    // "init", the initial state of a world where a domain owns a frame.
    const bool ref_op = is_ref_subop(what);
    Gen g{std::mt19937_64(20151117)};
    for (unsigned tries = 0; tries < 2000; ++tries) {
        const auto hvp = make_world(g);
        Ext cur = ext_of(hvp->state(), {}, false);
        std::optional<Step> found;
        if (what == "init") {
            bool owns = false;
            for (const auto& [m, f] : cur.s.frames) owns = owns || f.state == FrameState::owned;
            if (!owns) continue;
        } else {
            for (std::size_t k = 0; k < 12 && !found; ++k) {
                if (what == "tlb_fill" || g.coin(30))
                    if (const auto fill = random_fill(g, cur.s)) {
                        const Step sp{*fill, cur, ext_fill(cur, fill->c, fill->bfn)};
                        if (what == "tlb_fill" && !(sp.post == sp.pre)) found = sp;
                        cur = sp.post;
                        if (found) break;
                    }
                Sample smp = random_op(g, cur.s);
                if (cur.s.domain(smp.c) == nullptr) break;
                // (drain only where it is well formed: on an existing server)
                if (ref_op && g.coin(50) &&
                    (what != "drain" || cur.s.server(smp.c, smp.ioserver) != nullptr))
                    smp.op = what;
                // Issue 17, item 5: deliver acts in a balloon's chain (a frame with a tuple
                // that is no orphan), drain on a server with a request queued.
                if (what == "deliver" && g.coin(50)) aim_balloon(cur.s, smp);
                if (what == "drain")
                    for (const auto& [key, srv] : cur.s.servers)
                        if (!srv.buffered.empty() || !srv.sync.empty()) {
                            smp.op = "drain", smp.c = key.first, smp.ioserver = key.second;
                            break;
                        }
                State ref_post;
                unsigned st = 0;
                const std::vector<Step> chain = chain_of(cur, smp, ref_post, st);
                // query_caps edits no encoded component: acting is returning 0.
                const bool identity = what == "query_caps";
                for (const Step& sp : chain)
                    if (sp.smp.op == what && sp.status == 0 && (identity || !(sp.post == sp.pre))) {
                        found = sp;
                        break;
                    }
                cur = chain.back().post;
            }
            if (!found) continue;
        }
        z3::context c;
        Sorts so(c, conf_widths());
        Enc e{c, so};
        auto [s, sv] =
            concrete_solver(so, found ? found->pre : cur, opt.obligation_timeout_ms, opt.rlimit);
        for (const Clause& cl : all_invariants(so, s)) sv.add(cl.e);
        std::optional<Transition> t;
        if (what == "init") {
            for (const Clause& cl : initial(so, s)) sv.add(cl.e);
        } else {
            t = make_transition(so, s, what, Mutant::none);
            fix_args(sv, e, *t, found->smp);
            for (const Clause& cl : t->scope) sv.add(cl.e);
            sv.add(t->ok);
        }
        const z3::check_result r = sv.check();
        ++res.queries;
        res.rlimit = rlimit_count(sv);
        if (r != z3::sat) {
            res.pass = false;
            res.result = r == z3::unsat ? "failed" : "unknown";
            res.detail =
                (r == z3::unsat ? std::string("the invariants (or ok) fail on a state ref reached")
                                : "unknown (" + sv.reason_unknown() + ")") +
                (found ? "\n  " + sample_text(found->smp) : std::string()) + "\n" +
                ext_text(found ? found->pre : cur);
        } else {
            res.detail = "witness: a state ref reached" +
                         (found ? ", then " + sample_text(found->smp) : std::string());
        }
        res.seconds = seconds_since(t0);
        return res;
    }
    return witness_not_found(std::move(res), what, t0);
}

namespace {
// Issue 17, item 6 (defined at the end of this file).
Ext decode_ext(const z3::model& m, const Sorts& so, const St& s);
Sample decode_sample(const z3::model& m, const Sorts& so, const Transition& t);
bool is_ref_op(const std::string& op);
std::string stmt_text(const Sample& s);
std::vector<std::string> expectations(const State& enc, const State& ref);
Explanation explain_step(const Ext& pre, const Sample& smp, const Ext& encoded_post,
                         const std::string& expected);
}  // namespace

bool mutant_by_witness(const std::string& transition, Mutant mut,
                       const std::vector<std::string>& then, const std::string& expected,
                       const std::string& at, std::size_t max_states, const Options& opt,
                       std::string& detail, Explanation* explained) {
    std::string world_text, path_text;  // the current world and the statements run in it
    const Sample* current = nullptr;    // the statement whose chain holds the step tried
    bool at_front = false;              // the step tried is its chain's first
    // Issue 17, item 6: the counterexample classified by running ref from its pre-state, and
    // the trace of ref's path to it (the world, the statements run, then the planted op with
    // Z3's arguments and, after it, what the encoding's successor claims where ref differs).
    auto explain_witness = [&](const Sorts& so, const z3::model& m, const Ext& pre,
                               const std::vector<Transition>& steps, Explanation& out) {
        const Sample smp = decode_sample(m, so, steps.front());
        out = explain_step(pre, smp, decode_ext(m, so, steps.front().next), expected);
        out.dump = dump(pre.s);
        std::ostringstream tr;
        tr << "# pviommu prove: a counterexample to " << expected << " at " << transition
           << (mut == Mutant::none ? "" : " (a planted bug)") << ": " << out.classification
           << "\n# the world and ref's path to the "
           << "pre-state (the state before " << at << "):\n"
           << world_text << path_text;
        if (at_front && at == transition && is_ref_op(at)) {
            State ref_post;
            unsigned st = 0;
            (void)chain_of(pre, smp, ref_post, st);
            const Ext enc_end = decode_ext(m, so, steps.back().next);
            tr << "# the planted op, with the solver's arguments; ref keeps the invariants\n"
               << stmt_text(smp) << "\ncheck invariants\n"
               << "# what the encoding's " << transition;
            for (std::size_t j = 1; j < steps.size(); ++j) tr << ", then " << steps[j].name;
            tr << " left, where ref differs (each fails on ref: " << expected
               << " breaks on the encoding's state)\n";
            for (const std::string& l : expectations(enc_end.s, ref_post))
                tr << l << "   # encoding: " << expected << "\n";
        } else {
            tr << "# the counterexample is at the step " << at << " inside this statement's chain"
               << " (R9 v2, R11): no statement runs it alone\n"
               << (current != nullptr ? stmt_text(*current) : std::string("# (none)")) << "\n";
        }
        out.trace = tr.str();
        out.text += "pre-state: reached by ref from a random world (trace below)\n";
    };
    // A state just before a step `at` of a chain: encoded, the planted step and `then` from it.
    auto query = [&](const Ext& pre) -> z3::check_result {
        z3::context c;
        Sorts so(c, conf_widths());
        auto [s, sv] = concrete_solver(so, pre, std::max(opt.timeout_ms, 20000u));
        for (const Clause& cl : all_invariants(so, s)) sv.add(cl.e);
        Sorts sm = so;
        sm.tag = "mutant:";
        std::vector<Transition> steps{make_transition(sm, s, transition, mut)};
        for (std::size_t j = 0; j < then.size(); ++j) {
            Sorts sj = so;
            sj.tag = "then" + std::to_string(j) + ":";
            steps.push_back(make_transition(sj, steps.back().next, then[j], Mutant::none));
        }
        for (const Transition& t : steps)
            for (const Clause& cl : t.scope) sv.add(cl.e);
        expr holds = c.bool_val(true);
        const std::vector<Clause> goal = invariant(so, steps.back().next, expected);
        for (const Clause& cl : goal) holds = holds && cl.e;
        sv.add(!holds);
        const z3::check_result r = sv.check();
        if (r == z3::unknown) {
            detail = "unknown (" + sv.reason_unknown() + ") on\n" + ext_text(pre);
        } else if (r == z3::sat) {
            const z3::model m = sv.get_model();
            std::ostringstream os;
            for (const Clause& cl : goal)
                if (m.eval(cl.e, true).is_false()) {
                    os << "counterexample to " << cl.name << "\n";
                    break;
                }
            for (const Transition& t : steps) {
                os << "  " << (&t == &steps.front() ? "" : "then ") << t.name;
                for (unsigned k = 0; k < t.args.size(); ++k) {
                    const std::string n = t.args[k].decl().name().str();
                    os << " " << n.substr(n.find('.') + 1) << "=" << m.eval(t.args[k], true);
                }
                os << "\n";
            }
            os << "  from a state ref reached (encoded with its ghosts):\n" << ext_text(pre);
            detail = os.str();
            if (explained != nullptr) explain_witness(so, m, pre, steps, *explained);
        }
        return r;
    };
    Gen g{std::mt19937_64(19700101)};
    std::size_t tried = 0;
    for (unsigned world = 0; world < 4000 && tried < max_states; ++world) {
        // Quotas only for INV-QUOTA's bugs: the others are searched on the states they were
        // (measured: with quotas in every world, map_skips_max_count and
        // destroy_leaves_foreign_entry were no longer found among 300 states).
        const auto hvp = make_world(g, &world_text, expected == "INV-QUOTA");
        path_text.clear();
        Ext cur = ext_of(hvp->state(), {}, true);
        for (std::size_t k = 0; k < 16 && tried < max_states; ++k) {
            Sample smp = random_op(g, cur.s);
            if (cur.s.domain(smp.c) == nullptr) break;
            // Aimed at `at`: a ref op with the same draw of arguments, or a destroy of a
            // tuple's target (R9 v2 step 2) for a teardown step.
            const bool ref_op = at == "map_foreign_page" || at == "unmap_foreign_page" ||
                                at == "lookup_foreign_page" || at == "map_page" ||
                                at == "unmap_page" || at == "balloon" || at == "populate";
            if (ref_op && smp.op != "destroy" && g.coin(40)) smp.op = at;
            if (at == "deliver" && g.coin(40)) aim_balloon(cur.s, smp);  // R7's deliveries
            // A balloon of a mapped frame leaves its tuples (but the swap ones) as its last
            // holders: where an unmap's removal frees the frame (once its put runs). Measured:
            // without it, unmap_foreign_keeps_entry was found only by the model search below,
            // whose 40 s MBQI search found it or not depending on the context's other terms.
            if (at == "unmap_foreign_page" && g.coin(20)) aim_balloon(cur.s, smp);
            if (at.rfind("destroy_", 0) == 0 && !cur.s.m2b.empty() && g.coin(25)) {
                const Tuple& t = cur.s.m2b.begin()->second.begin()->first;
                if (cur.s.domain(t.domid) != nullptr) smp.op = "destroy", smp.c = t.domid;
            }
            State ref_post;
            unsigned st = 0;
            const std::vector<Step> chain = chain_of(cur, smp, ref_post, st);
            current = &smp;
            for (const Step& sp : chain) {
                if (sp.smp.op != at || tried >= max_states) continue;
                ++tried;
                at_front = &sp == &chain.front();
                const z3::check_result r = query(sp.pre);
                if (r == z3::sat) return true;
                if (r == z3::unknown) return false;
            }
            path_text += stmt_text(smp) + "\n";
            // R11: a device caches every translation it may before the next op.
            cur = ext_of(chain.back().post.s, chain.back().post.h, true);
        }
    }
    detail = "no counterexample on " + std::to_string(tried) + " reached states before " + at;
    return false;
}

}  // namespace proofs

// ---------------------------------------------------------------------------------------------
// Counterexamples as states (issue 17, item 6). A model of a failing query (at a small width:
// every index of every array is evaluated) is decoded into an Ext (a spec::State with the
// encoding's R11 ghosts and H), the transition's arguments into a Sample; ref (or, for R11's
// and R9's steps, their C++ counterparts above, which conformance ties to ref) runs from the
// decoded pre-state, and the counterexample is classified.

namespace proofs {

namespace {

std::uint64_t model_u64(const z3::model& m, const expr& e) {
    const expr v = m.eval(e, true);
    std::uint64_t u = 0;
    if (v.is_numeral_u64(u)) return u;
    std::int64_t i = 0;
    if (v.is_numeral_i64(i)) return i < 0 ? 0 : static_cast<std::uint64_t>(i);
    return 0;
}
bool model_true(const z3::model& m, const expr& e) { return m.eval(e, true).is_true(); }

// The decoded state: every index of the model's arrays below the sorts' sizes (so only at
// small widths: at 8 bits the tuple sort alone has 2^25 indices).
Ext decode_ext(const z3::model& m, const Sorts& so, const St& s) {
    if (so.w.addr > 4 || so.w.dom > 2 || so.w.sid > 1)
        throw std::invalid_argument("decode_ext: only at small widths");
    Enc e{so.ctx, so};
    const std::uint64_t na = 1ULL << so.w.addr;
    const std::uint16_t self = static_cast<std::uint16_t>((1U << so.w.dom) - 1);
    const std::uint16_t nd = self, ns = static_cast<std::uint16_t>(1U << so.w.sid);
    auto dom = [&](std::uint64_t v) {
        return v == self ? kDomIdSelf : DomId{static_cast<std::uint16_t>(v)};
    };
    auto d_of = [&](const expr& x) { return dom(model_u64(m, x)); };
    Ext x;
    State& st = x.s;
    st.host.iommu = model_true(m, s.host_iommu);
    st.host.mode = static_cast<IommuMode>(std::min<std::uint64_t>(model_u64(m, s.mode), 2));
    st.host.max_order = 0;
    st.host.frames = std::max<std::uint64_t>(1, model_u64(m, s.nframes));
    st.host.max_count = static_cast<std::uint32_t>(
        std::clamp<std::uint64_t>(model_u64(m, s.maxc), 1, spec::kMaxCountLimit));
    for (std::uint64_t a = 0; a < na; ++a) {
        const expr ea = e.a(a);
        const std::uint64_t k = model_u64(m, s.fstate[ea]);
        Frame f;
        f.state = k == kXen ? FrameState::xen : k == kOwned ? FrameState::owned : FrameState::free;
        if (f.state == FrameState::owned) f.owner = d_of(s.owner[ea]);
        f.count = static_cast<std::uint32_t>(model_u64(m, s.count[ea]));
        f.allocated = model_true(m, s.alloc[ea]);
        if (!f.fresh()) st.frames[Mfn{a}] = f;
        if (const std::uint64_t p = model_u64(m, s.pend[ea]); p > 0)
            x.pend[Mfn{a}] = static_cast<std::uint32_t>(p);
    }
    for (std::uint16_t d = 0; d < nd; ++d) {
        const DomId dd{d};
        if (model_true(m, s.dying[e.d(dd)])) x.dying.insert(dd);
        if (!model_true(m, s.live[e.d(dd)])) continue;
        Domain& dm = st.domains[dd];
        dm.hardware = model_true(m, s.hw[e.d(dd)]);
        dm.iommu_hw = model_true(m, s.iommu_hw[e.d(dd)]);
        if (std::int64_t q = -1; m.eval(s.quota[e.d(dd)], true).is_numeral_i64(q) && q >= 0)
            dm.quota = static_cast<std::uint32_t>(std::min<std::int64_t>(q, 0xffffffff));  // D20
        for (std::uint16_t t = 0; t < nd; ++t)
            if (model_true(m, s.dm[z3::concat(e.d(dd), e.d(DomId{t}))]))
                dm.dm_over.insert(DomId{t});
        for (std::uint64_t a = 0; a < na; ++a) {
            const expr ix = e.da(dd, a);
            if (model_true(m, s.rmrr[ix])) dm.rmrr.push_back(Range{Bfn{a}, 1});
            if (model_true(m, s.p2mv[ix])) dm.p2m[Gfn{a}] = Mfn{model_u64(m, s.p2m[ix])};
            const std::uint64_t k = model_u64(m, s.ekind[ix]);
            if (k == kLocal || k == kForeign)
                dm.iommu[Bfn{a}] = Entry{Mfn{model_u64(m, s.emfn[ix])}, 0,
                                         k == kLocal ? EntryKind::local : EntryKind::foreign};
            else if (k == kScratch)
                dm.iommu[Bfn{a}] = Entry{Mfn{}, 0, EntryKind::scratch};
            if (model_true(m, s.removed[ix])) dm.removed_identity.insert(Bfn{a});
            for (std::uint64_t mm = 0; mm < na; ++mm) {
                z3::expr_vector i2(so.ctx);
                i2.push_back(ix);
                i2.push_back(e.a(mm));
                if (model_true(m, z3::select(s.tlb, i2))) x.tlb.insert({dd, Bfn{a}, Mfn{mm}});
            }
        }
        for (std::uint64_t mm = 0; mm < na; ++mm) {
            z3::expr_vector i2(so.ctx);
            i2.push_back(e.d(dd));
            i2.push_back(e.a(mm));
            if (model_true(m, z3::select(s.await, i2))) x.await.insert({dd, Mfn{mm}});
        }
    }
    for (std::uint16_t d = 0; d < nd; ++d)
        for (std::uint16_t i = 0; i < ns; ++i)
            if (model_true(m, s.srv[e.ds(DomId{d}, IoServId{i})])) {
                const expr x2 = e.ds(DomId{d}, IoServId{i});
                IoServer sv;
                sv.emulator = d_of(s.emu[x2]);
                // R7's queues (issue 17, item 5): counts per bfn, decoded in bfn order (the
                // encoding keeps no order), a few of each at most.
                sv.ring_slots = static_cast<std::uint32_t>(
                    std::min<std::uint64_t>(model_u64(m, s.rcap[x2]), kMaxRingSlots));
                for (std::uint64_t b = 0; b < na; ++b) {
                    const expr k = z3::concat(e.a(b), x2);
                    const IoReq q{PV_IOMMU_IOREQ_TYPE_INVALIDATE, Bfn{b}};
                    for (std::uint64_t j = std::min<std::uint64_t>(model_u64(m, s.rq[k]), 8); j > 0;
                         --j)
                        sv.buffered.push_back(q);
                    for (std::uint64_t j = std::min<std::uint64_t>(model_u64(m, s.sq[k]), 8); j > 0;
                         --j)
                        sv.sync.push_back(q);
                    for (std::uint64_t j = std::min<std::uint64_t>(model_u64(m, s.pdl[k]), 8);
                         j > 0; --j)
                        x.owed.emplace_back(ServerKey{DomId{d}, IoServId{i}}, Bfn{b});
                }
                st.servers[{DomId{d}, IoServId{i}}] = sv;
            }
    for (std::uint64_t mm = 0; mm < na; ++mm)
        for (std::uint64_t b = 0; b < na; ++b)
            for (std::uint16_t d = 0; d <= self; ++d)
                for (std::uint16_t i = 0; i < ns; ++i) {
                    const Tuple t{Bfn{b}, dom(d), IoServId{i}};
                    const expr tt = e.tup(Mfn{mm}, t);
                    if (!model_true(m, s.m2b[tt])) continue;
                    st.m2b[Mfn{mm}][t] = TupleInfo{model_true(m, s.swap[tt]), d_of(s.temu[tt]),
                                                   model_true(m, s.torph[tt])};
                }
    for (std::uint16_t d = 0; d < nd; ++d)
        for (std::uint64_t b = 0; b < na; ++b)
            for (std::uint16_t t = 0; t <= self; ++t)
                for (std::uint16_t i = 0; i < ns; ++i) {
                    const HandedKey k{DomId{d}, Bfn{b}, dom(t), IoServId{i}};
                    if (model_true(m, s.hk[e.key(k)])) x.h[k] = Mfn{model_u64(m, s.hm[e.key(k)])};
                }
    st.fault_iommu_map = static_cast<std::uint32_t>(model_u64(m, s.fault));
    return x;
}

// The transition's arguments as the model gives them (by field name, as fix_args sets them).
Sample decode_sample(const z3::model& m, const Sorts& so, const Transition& t) {
    Sample smp;
    smp.op = t.name;
    const std::uint16_t self = static_cast<std::uint16_t>((1U << so.w.dom) - 1);
    auto dom = [&](const expr& x) {
        const std::uint64_t v = model_u64(m, x);
        return v == self ? kDomIdSelf : DomId{static_cast<std::uint16_t>(v)};
    };
    for (unsigned i = 0; i < t.args.size(); ++i) {
        const expr a = t.args[i];
        const std::string n = a.decl().name().str();
        const std::string f = n.substr(n.find('.') + 1);
        if (f == "C" || f == "D")
            smp.c = dom(a);
        else if (f == "flags")
            smp.flags = Flags{static_cast<std::uint16_t>(model_u64(m, a))};
        else if (f == "bfn")
            smp.bfn = Bfn{model_u64(m, a)};
        else if (f == "gfn")
            smp.gfn = Gfn{model_u64(m, a)};
        else if (f == "domid")
            smp.domid = dom(a);
        else if (f == "ioserver")
            smp.ioserver = IoServId{static_cast<std::uint16_t>(model_u64(m, a))};
        else if (f == "bfn_is_invalid")
            smp.bfn_invalid = model_true(m, a);
        else if (f == "mfn")
            smp.mfn = Mfn{model_u64(m, a)};
        else if (f == "hardware")
            smp.hw = model_true(m, a);
        else if (f == "iommu_hw")
            smp.iommu_hw = model_true(m, a);
        else if (f == "emulator")
            smp.emulator = dom(a);
        else if (f == "ring" || f == "count")
            smp.n = static_cast<std::uint32_t>(model_u64(m, a));
        else if (f == "quota") {
            std::int64_t q = -1;
            smp.quota = m.eval(a, true).is_numeral_i64(q) && q >= 0 ? q : -1;
        }
    }
    return smp;
}

bool is_ref_op(const std::string& op) { return is_ref_subop(op) || is_control_plane(op); }

// The C++ counterpart of one encoded step from `pre` (ref's op for a subop or event, the
// functions above for R11's and R9 v2's steps); nullopt when there is none.
std::optional<Ext> cpp_step(const Ext& pre, const Sample& smp) {
    // Issue 17, item 5: one drained request, one delivered invalidation.
    if (smp.op == "drain") return ext_drain_one(pre, smp.c, smp.ioserver, smp.bfn);
    if (smp.op == "deliver") return ext_deliver(pre, smp.c, smp.ioserver, smp.bfn);
    if (smp.op == "balloon") {
        std::vector<Step> out;
        Ext cur = pre;
        balloon_steps(out, cur, smp, ref_step(pre, smp));
        return out.front().post;  // the linearization
    }
    if (is_ref_op(smp.op)) return ref_step(pre, smp).post;
    if (smp.op == "flush") return ext_flush(pre, smp.c);
    if (smp.op == "put") return ext_put(pre, smp.mfn);
    if (smp.op == "tlb_fill") return ext_fill(pre, smp.c, smp.bfn);
    if (smp.op == "destroy_drop_tuple")
        return ext_drop_tuple(pre, smp.c, smp.mfn, Tuple{smp.bfn, smp.domid, smp.ioserver});
    if (smp.op == "destroy_drop_local") return ext_drop_local(pre, smp.c, smp.bfn);
    if (smp.op == "destroy_begin") {
        Ext n = pre;
        n.dying.insert(smp.c);
        forget_emulator(n.h, smp.c);
        return n;
    }
    return std::nullopt;
}

// What the encoding represents of an Ext, as text: no entry permissions, RMRRs as
// single bfns (the encoding's rmrr is per bfn), R7's queues as counts per bfn (no order).
std::string encoded_text(Ext x) {
    std::map<std::string, std::array<std::uint64_t, 3>> counts;
    for (const auto& [k, sv] : x.s.servers) {
        const std::string w =
            "queue " + std::to_string(k.first.v) + " id=" + std::to_string(k.second.v);
        counts[w + " ring length"][0] = sv.buffered.size();
        for (const IoReq& q : sv.buffered) ++counts[w + " bfn=" + std::to_string(q.bfn.v)][0];
        for (const IoReq& q : sv.sync) ++counts[w + " bfn=" + std::to_string(q.bfn.v)][1];
    }
    for (const auto& [k, b] : x.owed)
        ++counts["queue " + std::to_string(k.first.v) + " id=" + std::to_string(k.second.v) +
                 " bfn=" + std::to_string(b.v)][2];
    std::ostringstream qs;
    for (const auto& [w, n] : counts)
        qs << w << ": ring " << n[0] << " sync " << n[1] << " owed " << n[2] << "\n";
    x.owed.clear();
    x.s.host.max_order = 0;
    for (auto& [d, dom] : x.s.domains) {
        for (auto& [b, en] : dom.iommu) {
            en.perms = 0;
            if (en.kind == EntryKind::scratch) en.mfn = Mfn{};
        }
        std::set<std::uint64_t> bs;
        for (const Range& r : dom.rmrr)
            for (std::uint64_t b = 0; b < kAddrs; ++b)
                if (r.meets(Bfn{b}, 1)) bs.insert(b);
        dom.rmrr.clear();
        for (std::uint64_t b : bs) dom.rmrr.push_back(Range{Bfn{b}, 1});
    }
    for (auto& [k, sv] : x.s.servers) {
        IoServer bare;
        bare.emulator = sv.emulator;
        bare.ring_slots = sv.ring_slots;
        sv = bare;
    }
    return ext_text(x) + qs.str();
}

std::vector<std::string> lines_of(const std::string& t) {
    std::vector<std::string> out;
    std::istringstream is(t);
    for (std::string l; std::getline(is, l);) out.push_back(l);
    return out;
}
// Lines of a that b lacks.
std::vector<std::string> minus(const std::string& a, const std::string& b) {
    const auto lb = lines_of(b);
    const std::set<std::string> sb(lb.begin(), lb.end());
    std::vector<std::string> out;
    for (const auto& l : lines_of(a))
        if (!sb.contains(l)) out.push_back(l);
    return out;
}

// The statement of a ref op in TRACE-FORMAT.
std::string stmt_text(const Sample& s) {
    auto dom = [](DomId d) { return std::to_string(d.v); };
    std::ostringstream os;
    if (s.op == "balloon" || s.op == "populate") {
        os << s.op << " " << s.c.v << " gfn=" << s.gfn.v;
    } else if (s.op == "destroy") {
        os << "destroy " << s.c.v;
    } else if (s.op == "drain") {
        os << "drain " << s.c.v << " id=" << s.ioserver.v;
    } else if (s.op == "deliver") {  // issue 17, item 5: a step of a balloon, no statement
        os << "# deliver " << s.c.v << " id=" << s.ioserver.v << " bfn=" << s.bfn.v;
    } else if (s.op == "query_caps") {
        os << "call " << s.c.v << " query_caps";
    } else if (s.op == "create_domain") {  // issue 17, item 4: the control plane
        os << "domain " << s.c.v << (s.hw ? " hardware" : " guest")
           << (s.iommu_hw ? " iommu_hw" : "") << " ram=" << s.n;
    } else if (s.op == "dm") {
        os << "dm " << s.c.v << " over " << s.domid.v;
    } else if (s.op == "ioserver") {
        os << "ioserver " << s.c.v << " id=" << s.ioserver.v << " emulator=" << s.emulator.v
           << " ring=" << s.n;
    } else if (s.op == "rmrr") {
        os << "rmrr " << s.c.v << " bfn=" << s.bfn.v << " count=1";
    } else if (s.op == "xen_gfn") {
        os << "xen_gfn " << s.c.v << " gfn=" << s.gfn.v;
    } else if (s.op == "fault") {
        os << "fault iommu_map count=" << s.n;
    } else {
        os << "call " << s.c.v << " " << s.op << " flags=" << s.flags.raw;
        const bool foreign = s.op == "map_foreign_page" || s.op == "unmap_foreign_page" ||
                             s.op == "lookup_foreign_page";
        if (s.op != "lookup_foreign_page" || !s.bfn_invalid) os << " bfn=" << s.bfn.v;
        if (s.op == "map_page" || s.op == "map_foreign_page" || s.op == "lookup_foreign_page")
            os << " gfn=" << s.gfn.v;
        if (foreign) os << " domid=" << dom(s.domid) << " ioserver=" << s.ioserver.v;
    }
    return os.str();
}

// TRACE-FORMAT expectations that hold on `enc` (the encoding's successor) where it differs
// from `ref` (ref's): each fails when the trace runs on ref.
std::vector<std::string> expectations(const State& enc, const State& ref) {
    std::vector<std::string> out;
    std::set<std::uint64_t> ms;
    for (const auto& [m, f] : enc.frames) ms.insert(m.v);
    for (const auto& [m, f] : ref.frames) ms.insert(m.v);
    for (std::uint64_t m : ms) {
        const Frame a = enc.frame(Mfn{m}), b = ref.frame(Mfn{m});
        if (a == b || m >= enc.host.frames) continue;
        std::ostringstream os;
        os << "check frame mfn=" << m << " state=" << state_name(a.state);
        if (a.state == FrameState::owned) os << " owner=" << a.owner.v;
        os << " count=" << a.count << " allocated=" << (a.allocated ? 1 : 0);
        out.push_back(os.str());
    }
    auto tuples = [](const State& s) {
        std::set<std::pair<Mfn, Tuple>> ts;
        for (const auto& [m, tt] : s.m2b)
            for (const auto& [t, info] : tt) ts.insert({m, t});
        return ts;
    };
    const auto ta = tuples(enc), tb = tuples(ref);
    auto tuple_text = [](const std::pair<Mfn, Tuple>& p) {
        return "mfn=" + std::to_string(p.first.v) + " %s bfn=" + std::to_string(p.second.bfn.v) +
               " domid=" + std::to_string(p.second.domid.v) +
               " ioserver=" + std::to_string(p.second.ioserver.v);
    };
    for (const auto& p : ta)
        if (!tb.contains(p)) {
            std::string t = tuple_text(p);
            out.push_back("check m2b " + t.replace(t.find("%s"), 2, "has"));
        }
    for (const auto& p : tb)
        if (!ta.contains(p)) {
            std::string t = tuple_text(p);
            out.push_back("check m2b " + t.replace(t.find("%s"), 2, "lacks"));
        }
    for (const auto& [d, dom] : enc.domains) {
        const Domain* rd = ref.domain(d);
        if (rd == nullptr) continue;
        std::set<std::uint64_t> bs;
        for (const auto& [b, en] : dom.iommu) bs.insert(b.v);
        for (const auto& [b, en] : rd->iommu) bs.insert(b.v);
        for (std::uint64_t b : bs) {
            const auto a = enc.entry(d, Bfn{b}), r = ref.entry(d, Bfn{b});
            const bool same =
                a.has_value() == r.has_value() &&
                (!a || (a->kind == r->kind && (a->kind == EntryKind::scratch || a->mfn == r->mfn)));
            if (same) continue;
            std::ostringstream os;
            os << "check iommu " << d.v << " bfn=" << b;
            if (!a)
                os << " none";
            else
                os << (a->kind == EntryKind::scratch ? "" : " mfn=" + std::to_string(a->mfn.v))
                   << " kind=" << kind_name(a->kind);
            out.push_back(os.str());
        }
    }
    return out;
}

// The state ref would be in once the encoding's deferred puts (R11) ran: each frame's count
// less its deferred references, freed at 0 (ref's ops are atomic: it has no such references).
State settled_view(const Ext& x) {
    State s = x.s;
    for (const auto& [m, n] : x.pend) {
        const auto it = s.frames.find(m);
        if (it == s.frames.end()) continue;
        it->second.count = it->second.count > n ? it->second.count - n : 0;
        if (it->second.count == 0 && !it->second.allocated) s.frames.erase(it);
    }
    return s;
}

Explanation explain_step(const Ext& pre, const Sample& smp, const Ext& encoded_post,
                         const std::string& expected) {
    Explanation ex;
    std::ostringstream os;
    os << "counterexample decoded: " << stmt_text(smp) << "  (" << sample_text(smp) << ")\n";
    if (const auto bad = check_invariants(settled_view(pre), pre.h); !bad.empty()) {
        ex.classification = "unreachable counterexample to induction";
        os << "classification: " << ex.classification << ": the pre-state breaks "
           << bad.front().invariant << " (" << bad.front().detail
           << ") as ref checks it, so no run of ref reaches it; ref is not run from it\n";
        ex.text = os.str();
        return ex;
    }
    std::optional<Ext> cpp;
    std::string thrown;
    try {
        cpp = cpp_step(pre, smp);
    } catch (const std::exception& err) {
        thrown = err.what();
    }
    if (!cpp) {
        ex.classification = "unclassified";
        os << "classification: " << ex.classification << ": "
           << (thrown.empty() ? "no C++ counterpart of " + smp.op : "ref threw: " + thrown) << "\n";
        ex.text = os.str();
        return ex;
    }
    const std::string enc_text = encoded_text(encoded_post), ref_text = encoded_text(*cpp);
    if (enc_text != ref_text) {
        ex.classification = "encoding bug";
        os << "classification: " << ex.classification << ": ref from the pre-state does not do "
           << "what the encoded " << smp.op << " did:\n";
        for (const auto& l : minus(enc_text, ref_text)) os << "    encoding: " << l << "\n";
        for (const auto& l : minus(ref_text, enc_text)) os << "    ref:      " << l << "\n";
    } else if (const auto bad = check_invariants(settled_view(*cpp), cpp->h); !bad.empty()) {
        ex.classification = "ref bug";
        os << "classification: " << ex.classification << ": ref does what the encoding did and "
           << "breaks " << bad.front().invariant << " (" << bad.front().detail << ")\n";
    } else {
        ex.classification = "counterexample to induction";
        os << "classification: " << ex.classification << ": ref does what the encoding did and "
           << "keeps ref's invariants; " << expected
           << " fails on the encoded state only (an AUX-* or ghost clause, or an unreachable "
           << "pre-state)\n";
    }
    ex.text = os.str();
    return ex;
}

}  // namespace

Explanation explain_model(const Sorts& so, const z3::model& m, const St& pre, const Transition& t,
                          const St& post, const std::string& expected) {
    const Ext x = decode_ext(m, so, pre);
    const Sample smp = decode_sample(m, so, t);
    const Ext y = decode_ext(m, so, post);
    Explanation ex = explain_step(x, smp, y, expected);
    ex.dump = dump(x.s);
    // Does the explicit-state explorer reach the decoded pre-state? (Its dump among the states
    // of every explorer world within kReachDepth statements.)
    const std::string want = dump(x.s);
    std::size_t states = 0;
    bool reached = false;
    for (const std::string& w : explore_world_names()) {
        ExploreOptions eo;
        eo.depth = kReachDepth;
        eo.z3_every = 0;
        std::set<std::string> seen;
        eo.on_edge = [&](const Edge& ed) {
            if (!reached && dump(ed.post) == want) reached = true;
            seen.insert(dump(ed.post));
        };
        (void)explore(w, eo);
        states += seen.size();
        if (reached) break;
    }
    ex.text += reached ? "pre-state: reached by the explicit-state explorer\n"
                       : "pre-state: not reached by the explicit-state explorer (its " +
                             std::to_string(explore_world_names().size()) + " worlds to depth " +
                             std::to_string(kReachDepth) + ", " + std::to_string(states) +
                             " states); in the canonical dump format (then the encoding's "
                             "ghosts: deferred references, awaited flushes, IOTLBs, H):\n" +
                             ext_text(x);
    return ex;
}

}  // namespace proofs
