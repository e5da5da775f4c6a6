// proofs/encoding.cpp: spec/ and ref/ as SMT. Each transition follows ref/hypervisor.cpp check
// by check (same order, same status, same rule names); the edits follow ref's edits. Where the
// encoding computes a value differently from ref (a ghost count instead of a loop), the comment
// says which invariant makes the two agree.
#include "proofs/encoding.h"

#include <boost/hana.hpp>
#include <stdexcept>

#include "spec/ops.h"

namespace proofs {

using z3::expr;

Sorts::Sorts(z3::context& c, Widths w_)
    : ctx(c),
      w(w_),
      A(c.bv_sort(w_.addr)),
      D(c.bv_sort(w_.dom)),
      S(c.bv_sort(w_.sid)),
      C(c.int_sort()),
      K2(c.bv_sort(2)),
      B(c.bool_sort()),
      DA(c.bv_sort(w_.dom + w_.addr)),
      DD(c.bv_sort(2 * w_.dom)),
      DS(c.bv_sort(w_.dom + w_.sid)),
      BDS(c.bv_sort(w_.addr + w_.dom + w_.sid)),
      T(c.bv_sort(2 * w_.addr + w_.dom + w_.sid)),
      HK(c.bv_sort(w_.dom + w_.addr + w_.dom + w_.sid)) {}

namespace {

expr arr(const Sorts& so, const std::string& n, const z3::sort& d, const z3::sort& r) {
    return so.ctx.constant(n.c_str(), so.ctx.array_sort(d, r));
}
expr bv(const Sorts& so, unsigned v, const z3::sort& s) { return so.ctx.num_val(v, s); }
expr ones(const z3::sort& s) { return s.ctx().bv_val(-1, s.bv_size()); }

// Index builders.
expr da(const expr& d, const expr& a) { return z3::concat(d, a); }
expr ds(const expr& d, const expr& s) { return z3::concat(d, s); }
expr bds(const expr& b, const expr& d, const expr& s) { return z3::concat(b, z3::concat(d, s)); }

// Parts of a tuple index t = (m, b, d, s).
struct TupleParts {
    expr m, b, d, s, bds;
};
TupleParts parts(const Sorts& so, const expr& t) {
    const unsigned a = so.w.addr, dw = so.w.dom, sw = so.w.sid;
    const unsigned top = 2 * a + dw + sw - 1;
    return {t.extract(top, top - a + 1), t.extract(top - a, dw + sw), t.extract(dw + sw - 1, sw),
            t.extract(sw - 1, 0), t.extract(top - a, 0)};
}
// Parts of (c,bfn).
std::pair<expr, expr> parts_da(const Sorts& so, const expr& x) {
    const unsigned a = so.w.addr, dw = so.w.dom;
    return {x.extract(dw + a - 1, a), x.extract(a - 1, 0)};
}

// forall with patterns (the C++ helpers take none): each inner vector is one multi-pattern.
// Patterns must be inc_ref'd before Z3_mk_forall_const (it crashes otherwise, 4.8.12).
expr forall_p(const std::vector<expr>& vars, const std::vector<std::vector<expr>>& pats,
              const expr& body) {
    z3::context& ctx = body.ctx();
    // A pattern is a read of a state array that is a plain constant (a pre-state). Over a
    // successor (stores, lambdas, ites) the quantifier only occurs in a negated goal, where it
    // is skolemized and needs no pattern: fall back to Z3's own choice.
    auto plain = [](const expr& t) {
        return t.is_app() && t.decl().decl_kind() == Z3_OP_SELECT && t.arg(0).is_const() &&
               t.arg(0).decl().decl_kind() == Z3_OP_UNINTERPRETED;
    };
    // A read of a successor array that is the pre-state array under point stores triggers on
    // the pre-state read: a negated goal's inner quantifier (an existential goal) then matches
    // the witnesses that the pre-state hypotheses name (the stores only change single points,
    // which the body decides).
    auto base = [&](const expr& t) -> std::optional<expr> {
        if (plain(t)) return t;
        if (!t.is_app() || t.decl().decl_kind() != Z3_OP_SELECT) return std::nullopt;
        expr a = t.arg(0);
        while (a.is_app() && a.decl().decl_kind() == Z3_OP_STORE) a = a.arg(0);
        if (!(a.is_const() && a.decl().decl_kind() == Z3_OP_UNINTERPRETED)) return std::nullopt;
        z3::expr_vector ix(ctx);
        for (unsigned j = 1; j < t.num_args(); ++j) ix.push_back(t.arg(j));
        return z3::select(a, ix);
    };
    std::vector<std::vector<expr>> pats2;
    for (const auto& pat : pats) {
        std::vector<expr> p2;
        for (const expr& t : pat) {
            const auto bt = base(t);
            if (!bt) {
                z3::expr_vector vs(ctx);
                for (const expr& v : vars) vs.push_back(v);
                return z3::forall(vs, body);
            }
            p2.push_back(*bt);
        }
        pats2.push_back(p2);
    }
    std::vector<Z3_app> bound;
    for (const expr& v : vars) bound.push_back(Z3_to_app(ctx, v));
    std::vector<Z3_pattern> ps;
    for (const auto& pat : pats2) {
        std::vector<Z3_ast> terms;
        for (const expr& t : pat) terms.push_back(t);
        Z3_pattern zp = Z3_mk_pattern(ctx, static_cast<unsigned>(terms.size()), terms.data());
        Z3_inc_ref(ctx, Z3_pattern_to_ast(ctx, zp));
        ps.push_back(zp);
    }
    Z3_ast q = Z3_mk_forall_const(ctx, 0, static_cast<unsigned>(bound.size()), bound.data(),
                                  static_cast<unsigned>(ps.size()), ps.data(), body);
    expr out(ctx, q);
    for (Z3_pattern zp : ps) Z3_dec_ref(ctx, Z3_pattern_to_ast(ctx, zp));
    ctx.check_error();
    return out;
}
expr exists_p(const std::vector<expr>& vars, const std::vector<std::vector<expr>>& pats,
              const expr& body) {
    // NOT forall NOT: the pattern guides instantiation where the exists occurs negatively.
    return !forall_p(vars, pats, !body);
}

// Two-index arrays (the ghost slot arrays): indexed by (frame, slot) without concatenation,
// so that E-matching instances collapse by congruence instead of building new index terms.
expr sel2(const expr& a, const expr& f, const expr& i) {
    z3::expr_vector ix(a.ctx());
    ix.push_back(f);
    ix.push_back(i);
    return z3::select(a, ix);
}
expr st2(const expr& a, const expr& f, const expr& i, const expr& v) {
    z3::expr_vector ix(a.ctx());
    ix.push_back(f);
    ix.push_back(i);
    return z3::store(a, ix, v);
}
expr arr2(const Sorts& so, const std::string& n, const z3::sort& d1, const z3::sort& d2,
          const z3::sort& r) {
    z3::sort_vector d(so.ctx);
    d.push_back(d1);
    d.push_back(d2);
    return so.ctx.constant(n.c_str(), so.ctx.array_sort(d, r));
}

}  // namespace

St fresh_state(const Sorts& so, const std::string& p) {
    auto& c = so.ctx;
    return St{
        c.bool_const((p + "host_iommu").c_str()),
        c.constant((p + "mode").c_str(), so.K2),
        c.constant((p + "nframes").c_str(), so.A),
        c.constant((p + "maxc").c_str(), so.C),
        arr(so, p + "fstate", so.A, so.K2),
        arr(so, p + "owner", so.A, so.D),
        arr(so, p + "count", so.A, so.C),
        arr(so, p + "alloc", so.A, so.B),
        arr(so, p + "live", so.D, so.B),
        arr(so, p + "hw", so.D, so.B),
        arr(so, p + "iommu_hw", so.D, so.B),
        arr(so, p + "dm", so.DD, so.B),
        arr(so, p + "rmrr", so.DA, so.B),
        arr(so, p + "p2mv", so.DA, so.B),
        arr(so, p + "p2m", so.DA, so.A),
        arr(so, p + "dying", so.D, so.B),
        arr(so, p + "srv", so.DS, so.B),
        arr(so, p + "emu", so.DS, so.D),
        arr(so, p + "ekind", so.DA, so.K2),
        arr(so, p + "emfn", so.DA, so.A),
        arr(so, p + "removed", so.DA, so.B),
        arr(so, p + "m2b", so.T, so.B),
        arr(so, p + "swap", so.T, so.B),
        arr(so, p + "temu", so.T, so.D),
        arr(so, p + "torph", so.T, so.B),
        c.constant((p + "fault").c_str(), so.C),
        arr(so, p + "nT0", so.A, so.C),
        arr(so, p + "nT1", so.A, so.C),
        arr2(so, p + "slotT0", so.A, so.C, so.T),
        arr2(so, p + "slotT1", so.A, so.C, so.T),
        arr(so, p + "idxT", so.T, so.C),
        arr(so, p + "tcls", so.T, so.B),
        arr(so, p + "nL", so.A, so.C),
        arr2(so, p + "slotL", so.A, so.C, so.DA),
        arr(so, p + "idxL", so.DA, so.C),
        arr(so, p + "p2mg", so.A, so.A),
        arr(so, p + "pend", so.A, so.C),
        arr2(so, p + "await", so.D, so.A, so.B),
        arr2(so, p + "tlb", so.DA, so.A, so.B),
        arr(so, p + "hk", so.HK, so.B),
        arr(so, p + "hm", so.HK, so.A),
        arr(so, p + "rcap", so.DS, so.C),
        arr(so, p + "rlen", so.DS, so.C),
        arr(so, p + "rq", so.BDS, so.C),
        arr(so, p + "sq", so.BDS, so.C),
        arr(so, p + "pdl", so.BDS, so.C),
        arr(so, p + "owe", so.BDS, so.C),
        arr(so, p + "quota", so.D, so.C),
        arr(so, p + "hold", so.D, so.C),
        arr(so, p + "hsw", so.DA, so.C),
    };
}

namespace {
// f applied field by field to two states: the one list of St's fields outside fresh_state.
template <class F>
St zip_state(const St& a, const St& b, F f) {
    return St{f(a.host_iommu, b.host_iommu),
              f(a.mode, b.mode),
              f(a.nframes, b.nframes),
              f(a.maxc, b.maxc),
              f(a.fstate, b.fstate),
              f(a.owner, b.owner),
              f(a.count, b.count),
              f(a.alloc, b.alloc),
              f(a.live, b.live),
              f(a.hw, b.hw),
              f(a.iommu_hw, b.iommu_hw),
              f(a.dm, b.dm),
              f(a.rmrr, b.rmrr),
              f(a.p2mv, b.p2mv),
              f(a.p2m, b.p2m),
              f(a.dying, b.dying),
              f(a.srv, b.srv),
              f(a.emu, b.emu),
              f(a.ekind, b.ekind),
              f(a.emfn, b.emfn),
              f(a.removed, b.removed),
              f(a.m2b, b.m2b),
              f(a.swap, b.swap),
              f(a.temu, b.temu),
              f(a.torph, b.torph),
              f(a.fault, b.fault),
              f(a.nT0, b.nT0),
              f(a.nT1, b.nT1),
              f(a.slotT0, b.slotT0),
              f(a.slotT1, b.slotT1),
              f(a.idxT, b.idxT),
              f(a.tcls, b.tcls),
              f(a.nL, b.nL),
              f(a.slotL, b.slotL),
              f(a.idxL, b.idxL),
              f(a.p2mg, b.p2mg),
              f(a.pend, b.pend),
              f(a.await, b.await),
              f(a.tlb, b.tlb),
              f(a.hk, b.hk),
              f(a.hm, b.hm),
              f(a.rcap, b.rcap),
              f(a.rlen, b.rlen),
              f(a.rq, b.rq),
              f(a.sq, b.sq),
              f(a.pdl, b.pdl),
              f(a.owe, b.owe),
              f(a.quota, b.quota),
              f(a.hold, b.hold),
              f(a.hsw, b.hsw)};
}
}  // namespace

St ite_state(const expr& c, const St& a, const St& b) {
    return zip_state(a, b, [&c](const expr& x, const expr& y) { return z3::ite(c, x, y); });
}

std::vector<Clause> same_fields(const St& a, const St& b) {
    static const char* const names[] = {
        "host_iommu", "mode",     "nframes", "maxc", "fstate", "owner", "count", "alloc", "live",
        "hw",         "iommu_hw", "dm",      "rmrr", "p2mv",   "p2m",   "dying", "srv",   "emu",
        "ekind",      "emfn",     "removed", "m2b",  "swap",   "temu",  "torph", "fault", "nT0",
        "nT1",        "slotT0",   "slotT1",  "idxT", "tcls",   "nL",    "slotL", "idxL",  "p2mg",
        "pend",       "await",    "tlb",     "hk",   "hm",     "rcap",  "rlen",  "rq",    "sq",
        "pdl",        "owe",      "quota",   "hold", "hsw"};
    std::vector<Clause> out;
    (void)zip_state(a, b, [&out](const expr& x, const expr& y) {
        out.push_back({names[out.size()], x == y});
        return x;
    });
    return out;
}

expr same_state(const St& a, const St& b) {
    expr all = a.fault.ctx().bool_val(true);
    (void)zip_state(a, b, [&all](const expr& x, const expr& y) {
        all = all && x == y;
        return x;
    });
    return all;
}

// ---------------------------------------------------------------------------------------------
// Derived predicates: one definition of each rule (spec/state.cpp).

expr usable(const Sorts&, const St& s, const expr& c) {
    // usable(C) := IOMMU present AND C.iommu_hw AND NOT (C hardware AND passthrough).
    return s.host_iommu && s.live[c] && s.iommu_hw[c] && !(s.hw[c] && s.mode == 2);
}

expr privileged(const Sorts&, const St& s, const expr& e, const expr& t) {
    // The hardware domain has privilege over every domain; `dm E over T` gives E over T.
    return s.live[e] && s.live[t] && (s.hw[e] || s.dm[ds(e, t)]);
}

namespace {

// D18's conditions for C's identity entry at b, but for the absence of an explicit entry
// (AUX-HELD: an explicit entry never shadows them).
expr identity_cond(const Sorts& so, const St& s, const expr& c, const expr& b) {
    return s.hw[c] && usable(so, s, c) && s.mode == 0 && z3::ult(b, s.nframes) &&
           s.fstate[b] != bv(so, kXen, so.K2) && !s.removed[da(c, b)];
}
// D18: C's computed identity entry at b (no explicit entry there).
expr identity_rule(const Sorts& so, const St& s, const expr& c, const expr& b) {
    return s.ekind[da(c, b)] == bv(so, kNone, so.K2) && identity_cond(so, s, c, b);
}

// A tuple's class: 1 when a balloon's swap drops it (swap flag, usable emulator), else 0. The
// class of a tuple never changes while it exists (swap and the emulator are fixed at creation,
// D22; an emulator's usability is static while it lives, and its tuples go before it does).
expr drop_class(const Sorts& so, const St& s, const expr& t) {
    return s.swap[t] && usable(so, s, s.temu[t]);
}

// Does a tuple of emulator c (orphans included, F12) use bfn b, for a frame other than
// `except` if given? (spec State::claimed)
expr claimed(const Sorts& so, const St& s, const expr& c, const expr& b,
             const std::optional<expr>& except, const std::string& tag) {
    // Quantified over whole tuple indices (the trigger is m2b[tt]), never over their parts.
    expr tt = so.ctx.constant(("cl_t_" + tag).c_str(), so.T);
    const TupleParts p = parts(so, tt);
    expr body = s.m2b[tt] && p.b == b && s.temu[tt] == c;
    if (except) body = body && p.m != *except;
    return exists_p({tt}, {{s.m2b[tt]}}, body);
}

// Parts of an H key k = (e, b, d, s); `bds` is the tuple index without its frame, so that the
// key's own tuple is concat(frame, bds).
struct KeyParts {
    expr e, b, d, s, bds;
};
KeyParts key_parts(const Sorts& so, const expr& k) {
    const unsigned a = so.w.addr, dw = so.w.dom, sw = so.w.sid;
    const unsigned top = dw + a + dw + sw - 1;
    return {k.extract(top, top - dw + 1), k.extract(a + dw + sw - 1, dw + sw),
            k.extract(dw + sw - 1, sw), k.extract(sw - 1, 0), k.extract(a + dw + sw - 1, 0)};
}
expr hkey(const expr& e, const expr& b, const expr& d, const expr& i) {
    return z3::concat(e, bds(b, d, i));
}

// Reference counting, with the ghost holders kept in step.
expr one(const Sorts& so) { return bv(so, 1, so.C); }

St get_ref(const Sorts& so, St s, const expr& m) {
    s.count = z3::store(s.count, m, s.count[m] + one(so));
    return s;
}
// R11 (v2): a reference whose holder went (a tuple, a local entry) stays on the frame until
// c's IOTLB is flushed: one more deferred reference of m, awaiting c's flush. `put` drops it.
St defer_put(const Sorts& so, St s, const expr& m, const expr& c) {
    s.pend = z3::store(s.pend, m, s.pend[m] + one(so));
    s.await = st2(s.await, c, m, so.ctx.bool_val(true));
    return s;
}

// Ghost: append tuple t (of frame m) to the slots of its class `cls`. The class is a C++ bool:
// a transition that may add a tuple of either class has one case per class, so that no store
// carries an ite value (E-matching then sees plain stores only).
St ghost_add_tuple(const Sorts& so, St s, const expr& m, const expr& t, bool cls) {
    expr& nA = cls ? s.nT1 : s.nT0;
    expr& slot = cls ? s.slotT1 : s.slotT0;
    const expr n = nA[m];
    s.idxT = z3::store(s.idxT, t, n);
    slot = st2(slot, m, n, t);
    nA = z3::store(nA, m, n + one(so));
    return s;
}
// Ghost: remove tuple t (of frame m, class `cls`): the last slot moves into its place
// (Hyperkernel's swap-with-last).
St ghost_remove_tuple(const Sorts& so, St s, const expr& m, const expr& t, bool cls) {
    expr& nA = cls ? s.nT1 : s.nT0;
    expr& slot = cls ? s.slotT1 : s.slotT0;
    const expr i = s.idxT[t];
    const expr last = nA[m] - one(so);
    const expr h = sel2(slot, m, last);
    slot = st2(slot, m, i, h);
    s.idxT = z3::store(s.idxT, h, i);
    nA = z3::store(nA, m, last);
    return s;
}
St ghost_add_local(const Sorts& so, St s, const expr& m, const expr& cb) {
    const expr n = s.nL[m];
    s.idxL = z3::store(s.idxL, cb, n);
    s.slotL = st2(s.slotL, m, n, cb);
    s.nL = z3::store(s.nL, m, n + one(so));
    return s;
}
St ghost_remove_local(const Sorts& so, St s, const expr& m, const expr& cb) {
    const expr i = s.idxL[cb];
    const expr last = s.nL[m] - one(so);
    const expr h = sel2(s.slotL, m, last);
    s.slotL = st2(s.slotL, m, i, h);
    s.idxL = z3::store(s.idxL, h, i);
    s.nL = z3::store(s.nL, m, last);
    return s;
}

// D20: c holds one more (a tuple it serves, a local entry), or one less.
St add_holding(const Sorts& so, St s, const expr& c) {
    s.hold = z3::store(s.hold, c, s.hold[c] + one(so));
    return s;
}
St drop_holding(const Sorts& so, St s, const expr& c) {
    s.hold = z3::store(s.hold, c, s.hold[c] - one(so));
    return s;
}
// D20: may c take one more holding? (quota -1: none.)
expr under_quota(const St& s, const expr& c) { return s.quota[c] < 0 || s.hold[c] < s.quota[c]; }

// Adds tuple (m, x) of emulator c, class `cls`, swap flag `sw`, and its reference (ref:
// tuples[t] = TupleInfo{sw, c, false}; get_ref). The caller's case guard says that the tuple's
// class is `cls` (class_of).
St add_tuple(const Sorts& so, St s, const expr& m, const expr& x, const expr& sw, const expr& c,
             bool take_ref, bool cls) {
    const expr t = z3::concat(m, x);
    s.m2b = z3::store(s.m2b, t, so.ctx.bool_val(true));
    s.swap = z3::store(s.swap, t, sw);
    s.temu = z3::store(s.temu, t, c);
    s.torph = z3::store(s.torph, t, so.ctx.bool_val(false));
    s.tcls = z3::store(s.tcls, t, so.ctx.bool_val(cls));
    s = ghost_add_tuple(so, s, m, t, cls);
    if (take_ref) s = get_ref(so, s, m);
    s = add_holding(so, s, c);  // D20: a tuple C serves
    if (cls) s.hsw = z3::store(s.hsw, da(c, m), s.hsw[da(c, m)] + one(so));
    return s;
}
// Removes tuple (m, x) of class `cls` whose emulator is c; its reference is deferred until c's
// flush (R11), and c holds one tuple less (D20).
St unlink_tuple(const Sorts& so, St s, const expr& m, const expr& x, bool cls, const expr& c) {
    const expr t = z3::concat(m, x);
    s.m2b = z3::store(s.m2b, t, so.ctx.bool_val(false));
    s = ghost_remove_tuple(so, s, m, t, cls);
    s = drop_holding(so, s, c);
    if (cls) s.hsw = z3::store(s.hsw, da(c, m), s.hsw[da(c, m)] - one(so));
    return defer_put(so, s, m, c);
}
// The class a tuple that emulator c makes with swap flag `sw` has in state s.
expr class_of(const Sorts& so, const St& s, const expr& c, const expr& sw) {
    return sw && usable(so, s, c);
}

// INV-DEVICE-SAFE's ghost set H (D23, spec/ghost.cpp).
St hand(St s, const expr& key, const expr& m) {  // + key -> m
    s.hk = z3::store(s.hk, key, s.hk.ctx().bool_val(true));
    s.hm = z3::store(s.hm, key, m);
    return s;
}
St release_key(St s, const expr& key) {  // - key
    s.hk = z3::store(s.hk, key, s.hk.ctx().bool_val(false));
    return s;
}
// A name for a lambda's bound constant that no other lambda of this thread uses: Z3 4.8.12
// crashes deleting a context where two lambdas with different bodies share one.
std::string lambda_name(const Sorts& so, const std::string& name) {
    thread_local unsigned long n = 0;
    return so.tag + name + "#" + std::to_string(++n);
}
// - every key of c at bfn b.
St release_at(const Sorts& so, St s, const expr& c, const expr& b, const std::string& name) {
    const expr k = so.ctx.constant(lambda_name(so, name).c_str(), so.HK);
    const KeyParts kp = key_parts(so, k);
    s.hk = z3::lambda(k, s.hk[k] && !(kp.e == c && kp.b == b));
    return s;
}
// destroy: every key of e (forget_emulator).
St forget_emulator(const Sorts& so, St s, const expr& e, const std::string& name) {
    const expr k = so.ctx.constant(lambda_name(so, name).c_str(), so.HK);
    s.hk = z3::lambda(k, s.hk[k] && key_parts(so, k).e != e);
    return s;
}

// The Hana field list of an op drives its Z3 arguments: one constant per field, named after it.
template <class Op>
std::vector<std::pair<std::string, expr>> op_args(const Sorts& so, const std::string& prefix) {
    std::vector<std::pair<std::string, expr>> out;
    Op op{};
    boost::hana::for_each(boost::hana::accessors<Op>(), [&](auto acc) {
        const std::string field = boost::hana::to<char const*>(boost::hana::first(acc));
        using F = std::decay_t<decltype(boost::hana::second(acc)(op))>;
        z3::sort sort = so.ctx.bv_sort(16);
        if constexpr (std::is_same_v<F, spec::Bfn> || std::is_same_v<F, spec::Gfn> ||
                      std::is_same_v<F, spec::Mfn>)
            sort = so.A;
        else if constexpr (std::is_same_v<F, spec::DomId>)
            sort = so.D;
        else if constexpr (std::is_same_v<F, spec::IoServId>)
            sort = so.S;
        out.emplace_back(field, so.ctx.constant((so.tag + prefix + field).c_str(), sort));
    });
    return out;
}
expr arg(const std::vector<std::pair<std::string, expr>>& a, const std::string& name) {
    for (const auto& [n, e] : a)
        if (n == name) return e;
    throw std::logic_error("no op field " + name);
}

// R1, R2 for an order-0 call: reserved flag bits -> -EINVAL (checked); the order is 0 (scope:
// the encoding covers order 0, where R2's order and alignment checks always pass).
expr reserved_clear(const expr& flags) { return flags.extract(9, 3) == 0; }
expr order_zero(const expr& flags) { return flags.extract(15, 10) == 0; }

// Builds ok and the first-failing status from checks.
void finish_checks(const Sorts& so, Transition& t) {
    expr ok = so.ctx.bool_val(true);
    for (const Check& c : t.checks) ok = ok && c.holds;
    t.ok = ok;
    expr st = bv(so, kOk, so.ctx.bv_sort(8));
    for (auto it = t.checks.rbegin(); it != t.checks.rend(); ++it)
        st = z3::ite(it->holds, st, bv(so, it->status, so.ctx.bv_sort(8)));
    t.status = st;
}

// On -EIO the armed fault is consumed (D10): the only edit of a failing call.
St consume_fault(const Sorts& so, St s) {
    s.fault = s.fault - one(so);
    return s;
}

// A transition with one case, its success: its successor is n whenever it runs (flush and the
// control-plane statements have no failing case).
Transition one_case(Transition t, const St& n) {
    t.next = n;
    t.cases = {{t.ok, n}};
    return t;
}

// A new transition with no checks yet.
Transition blank(const Sorts& so, const St& s, const std::string& name) {
    return Transition{
        name, {}, {}, so.ctx.bool_val(true), so.ctx.bool_val(true), s, {}, z3::expr_vector(so.ctx),
        {}};
}

// Xen pauses a domain before it tears it down (the concurrency contract: destroy runs at a
// quiescent point): a dying domain makes no call.
Clause not_dying(const St& s, const expr& c) {
    return {"scope: C not dying (Xen pauses a domain it destroys)", !s.dying[c]};
}

}  // namespace

expr eff_kind(const Sorts& so, const St& s, const expr& c, const expr& b) {
    const z3::sort k3 = so.ctx.bv_sort(3);
    return z3::ite(identity_rule(so, s, c, b), bv(so, kIdentity, k3),
                   z3::zext(s.ekind[da(c, b)], 1));
}

View dma_view(const Sorts& so, const St& s, const expr& e, const expr& b) {
    const z3::sort k3 = so.ctx.bv_sort(3);
    const expr u = usable(so, s, e);
    const expr k = eff_kind(so, s, e, b);
    auto is = [&](unsigned kind) { return k == bv(so, kind, k3); };
    // F13: usable E: its entry (scratch, a frame, the 1:1 rule) or a fault; else frame b itself.
    return {u && is(kScratch),
            (u && (is(kLocal) || is(kForeign) || is(kIdentity))) || (!u && z3::ult(b, s.nframes)),
            z3::ite(u && !is(kIdentity), s.emfn[da(e, b)], b)};
}

// ---------------------------------------------------------------------------------------------
// Transitions

std::vector<std::string> transition_names() {
    return {"map_foreign_page",
            "unmap_foreign_page",
            "lookup_foreign_page",
            "map_page",
            "unmap_page",
            "balloon",
            "populate",
            "destroy_begin",
            "destroy_drop_tuple",
            "destroy_drop_local",
            "destroy_finish",
            "query_caps",
            "drain",
            "deliver",
            "tlb_fill",
            "flush",
            "put",
            "create_domain",
            "dm",
            "ioserver",
            "rmrr",
            "xen_gfn",
            "fault"};
}

bool is_control_plane(const std::string& transition) {
    return transition == "create_domain" || transition == "dm" || transition == "ioserver" ||
           transition == "rmrr" || transition == "xen_gfn" || transition == "fault";
}

namespace {

// D19: a call that adds a reference to m needs m's count below max_count (-EOVERFLOW). With
// INV-MAX-COUNT this is also why no count wraps: count < max_count <= the sort's top.
expr below_max(const St& s, const expr& m) { return s.count[m] < s.maxc; }

Transition map_page(const Sorts& so, const St& s, Mutant mut) {
    auto a = op_args<spec::MapPage>(so, "map_page.");
    const expr c = so.ctx.constant((so.tag + "map_page.C").c_str(), so.D);
    const expr flags = arg(a, "flags"), b = arg(a, "bfn"), g = arg(a, "gfn");
    const expr m = s.p2m[da(c, g)];
    const expr k3z = bv(so, kNone, so.ctx.bv_sort(3));
    Transition t = blank(so, s, "map_page");
    t.args.push_back(c);
    for (auto& [n, e] : a) t.args.push_back(e);
    t.scope.push_back({"scope: order 0", order_zero(flags)});
    t.scope.push_back(not_dying(s, c));
    t.checks.push_back({"R1: reserved flag bits", reserved_clear(flags), kEinval});
    t.checks.push_back({"F6: usable(C)", usable(so, s, c), kEperm});
    t.checks.push_back({"R6: gfn in C's P2M", s.p2mv[da(c, g)], kEnxio});
    t.checks.push_back({"R6: not a Xen frame", s.fstate[m] != bv(so, kXen, so.K2), kEperm});
    if (mut != Mutant::map_skips_rmrr)
        t.checks.push_back({"R6: bfn outside C's RMRR", !s.rmrr[da(c, b)], kEacces});
    t.checks.push_back({"R6: bfn free and unclaimed",
                        eff_kind(so, s, c, b) == k3z && !claimed(so, s, c, b, {}, "map_page"),
                        kEexist});
    if (mut != Mutant::map_skips_max_count)
        t.checks.push_back({"D19: count below max_count", below_max(s, m), kEoverflow});
    if (mut != Mutant::map_page_skips_quota)
        t.checks.push_back({"D20: C's holdings below its quota", under_quota(s, c), kEnomem});
    t.checks.push_back({"R6, F9: no injected unit failure", s.fault == 0, kEio});
    finish_checks(so, t);
    St n = s;
    n.ekind = z3::store(n.ekind, da(c, b), bv(so, kLocal, so.K2));  // R6: a local entry
    n.emfn = z3::store(n.emfn, da(c, b), m);
    n = ghost_add_local(so, n, m, da(c, b));
    n = get_ref(so, n, m);      // R6: one reference
    n = add_holding(so, n, c);  // D20: a local entry of C
    const expr eio = t.status == static_cast<int>(kEio);
    const St f = consume_fault(so, s);
    t.next = ite_state(t.ok, n, ite_state(eio, f, s));
    t.cases = {{t.ok, n}, {eio, f}, {!t.ok && !eio, s}};
    return t;
}

Transition unmap_page(const Sorts& so, const St& s, Mutant) {
    auto a = op_args<spec::UnmapPage>(so, "unmap_page.");
    const expr c = so.ctx.constant((so.tag + "unmap_page.C").c_str(), so.D);
    const expr flags = arg(a, "flags"), b = arg(a, "bfn");
    const expr cb = da(c, b);
    const expr k = eff_kind(so, s, c, b);
    const z3::sort k3 = so.ctx.bv_sort(3);
    Transition t = blank(so, s, "unmap_page");
    t.args.push_back(c);
    for (auto& [n, e] : a) t.args.push_back(e);
    t.scope.push_back({"scope: order 0", order_zero(flags)});
    t.scope.push_back(not_dying(s, c));
    t.checks.push_back({"R1: reserved flag bits", reserved_clear(flags), kEinval});
    t.checks.push_back({"F6: usable(C)", usable(so, s, c), kEperm});
    t.checks.push_back({"F10: an entry at bfn", k != bv(so, kNone, k3), kEnoent});
    t.checks.push_back({"R6, F10: not foreign or scratch",
                        k != bv(so, kForeign, k3) && k != bv(so, kScratch, k3), kEperm});
    t.checks.push_back(
        {"R6 v2, F10: no tuple of C claims bfn", !claimed(so, s, c, b, {}, "unmap_page"), kEbusy});
    finish_checks(so, t);
    // identity: removed, drops nothing; local: the entry goes, its reference deferred until
    // C's flush (R11).
    St id = s;
    id.removed = z3::store(id.removed, cb, so.ctx.bool_val(true));
    St loc = s;
    const expr m = s.emfn[cb];
    loc.ekind = z3::store(loc.ekind, cb, bv(so, kNone, so.K2));
    loc = ghost_remove_local(so, loc, m, cb);
    loc = defer_put(so, loc, m, c);
    loc = drop_holding(so, loc, c);  // D20
    const expr is_id = k == bv(so, kIdentity, k3);
    t.next = ite_state(t.ok, ite_state(is_id, id, loc), s);
    t.cases = {{t.ok && is_id, id}, {t.ok && !is_id, loc}, {!t.ok, s}};
    return t;
}

Transition map_foreign_page(const Sorts& so, const St& s, Mutant mut) {
    auto a = op_args<spec::MapForeignPage>(so, "map_foreign_page.");
    const expr c = so.ctx.constant((so.tag + "map_foreign_page.C").c_str(), so.D);
    const expr flags = arg(a, "flags"), b = arg(a, "bfn"), g = arg(a, "gfn"), d = arg(a, "domid"),
               i = arg(a, "ioserver");
    const expr m = s.p2m[da(d, g)];
    const expr sw = flags.extract(2, 2) == 1;  // IOMMUOP_swap_mfn
    const expr x = bds(b, d, i);
    const expr tn = z3::concat(m, x);
    const z3::sort k3 = so.ctx.bv_sort(3);
    const expr k = eff_kind(so, s, c, b);
    Transition t = blank(so, s, "map_foreign_page");
    t.args.push_back(c);
    for (auto& [n, e] : a) t.args.push_back(e);
    t.scope.push_back({"scope: order 0", order_zero(flags)});
    t.scope.push_back(not_dying(s, c));
    t.checks.push_back({"R1: reserved flag bits", reserved_clear(flags), kEinval});
    t.checks.push_back({"R3: usable(C)", usable(so, s, c), kEperm});
    t.checks.push_back({"R3: domid foreign", d != ones(so.D) && d != c, kEperm});
    // A dying domain is no live domain (Xen: its domain lookups fail once it is dying); ref's
    // destroy is atomic, so ref never shows one.
    t.checks.push_back({"R3: domid live (and not dying)", s.live[d] && !s.dying[d], kEnxio});
    t.checks.push_back({"R3: privilege over domid", privileged(so, s, c, d), kEperm});
    t.checks.push_back(
        {"R3: ioserver of domid served by C", s.srv[ds(d, i)] && s.emu[ds(d, i)] == c, kEnodev});
    t.checks.push_back({"R3: gfn in domid's P2M", s.p2mv[da(d, g)], kEnxio});
    t.checks.push_back({"R3: not a Xen frame", s.fstate[m] != bv(so, kXen, so.K2), kEperm});
    if (mut != Mutant::map_skips_rmrr)
        t.checks.push_back({"R3: bfn outside C's RMRR", !s.rmrr[da(c, b)], kEacces});
    t.checks.push_back(
        {"R3, F3: bfn free or the same foreign frame, unclaimed for another frame",
         (k == bv(so, kNone, k3) || (k == bv(so, kForeign, k3) && s.emfn[da(c, b)] == m)) &&
             !claimed(so, s, c, b, m, "map_foreign_page"),
         kEexist});
    t.checks.push_back(
        {"D19: a new tuple needs count below max_count", s.m2b[tn] || below_max(s, m), kEoverflow});
    if (mut != Mutant::map_foreign_skips_quota)
        t.checks.push_back({"D20: a new tuple needs C's holdings below its quota",
                            s.m2b[tn] || under_quota(s, c), kEnomem});
    t.checks.push_back({"R3, F9: no injected unit failure", s.fault == 0, kEio});
    finish_checks(so, t);
    St n = s;
    n.ekind = z3::store(n.ekind, da(c, b), bv(so, kForeign, so.K2));  // R3: foreign entry
    n.emfn = z3::store(n.emfn, da(c, b), m);
    n = hand(n, hkey(c, b, d, i), m);  // D23: C was handed bfn for the frame
    // R3: a new tuple holds one reference (one case per ghost class of the new tuple).
    const expr cls = class_of(so, s, c, sw);
    const St fresh1 = add_tuple(so, n, m, x, sw, c, true, true);
    const St fresh0 = add_tuple(so, n, m, x, sw, c, true, false);
    const St again = n;  // R3: same tuple again: nothing new
    n = ite_state(s.m2b[tn], again, ite_state(cls, fresh1, fresh0));
    const expr eio = t.status == static_cast<int>(kEio);
    const St f = consume_fault(so, s);
    t.next = ite_state(t.ok, n, ite_state(eio, f, s));
    t.cases = {{t.ok && s.m2b[tn], again},
               {t.ok && !s.m2b[tn] && cls, fresh1},
               {t.ok && !s.m2b[tn] && !cls, fresh0},
               {eio, f},
               {!t.ok && !eio, s}};
    return t;
}

Transition lookup_foreign_page(const Sorts& so, const St& s, Mutant mut) {
    auto a = op_args<spec::LookupForeignPage>(so, "lookup_foreign_page.");
    const expr c = so.ctx.constant((so.tag + "lookup_foreign_page.C").c_str(), so.D);
    // The input bfn is only compared with BFN_INVALID (R4): a Bool stands for it.
    const expr bfn_invalid =
        so.ctx.bool_const((so.tag + "lookup_foreign_page.bfn_is_invalid").c_str());
    // The out bfn when a tuple exists: the lowest bfn of the frame's tuples of (domid,
    // ioserver) (R4), pinned down by scope.
    const expr out = so.ctx.constant((so.tag + "lookup_foreign_page.out").c_str(), so.A);
    const expr flags = arg(a, "flags"), g = arg(a, "gfn"), d = arg(a, "domid"),
               i = arg(a, "ioserver");
    const expr m = s.p2m[da(d, g)];
    const expr x = bds(m, d, i);  // the tuple lookup registers: bfn = mfn
    const z3::sort k3 = so.ctx.bv_sort(3);
    Transition t = blank(so, s, "lookup_foreign_page");
    t.args.push_back(c);
    t.args.push_back(bfn_invalid);
    t.args.push_back(out);
    for (auto& [n, e] : a)
        if (n != "bfn") t.args.push_back(e);
    t.scope.push_back({"scope: order 0", order_zero(flags)});
    t.scope.push_back(not_dying(s, c));
    const expr u = usable(so, s, c);
    expr tt = so.ctx.constant((so.tag + "lookup_foreign_page.t").c_str(), so.T);
    const TupleParts tp = parts(so, tt);
    const expr has_tuple =
        exists_p({tt}, {{s.m2b[tt]}}, s.m2b[tt] && tp.m == m && tp.d == d && tp.s == i);
    const expr to = z3::concat(m, bds(out, d, i));
    t.scope.push_back(
        {"scope: out is the lowest bfn of the frame's tuples of (domid, ioserver)",
         z3::implies(has_tuple, s.m2b[to] && forall_p({tt}, {{s.m2b[tt]}},
                                                      z3::implies(s.m2b[tt] && tp.m == m &&
                                                                      tp.d == d && tp.s == i,
                                                                  !z3::ult(tp.b, out))))});
    const expr ident = eff_kind(so, s, c, m) == bv(so, kIdentity, k3);
    t.checks.push_back({"R1: reserved flag bits", reserved_clear(flags), kEinval});
    t.checks.push_back({"R4(R3): domid foreign", d != ones(so.D) && d != c, kEperm});
    t.checks.push_back({"R4(R3): domid live (and not dying)", s.live[d] && !s.dying[d], kEnxio});
    t.checks.push_back({"R4(R3): privilege over domid", privileged(so, s, c, d), kEperm});
    t.checks.push_back({"R4(R3): ioserver of domid served by C",
                        s.srv[ds(d, i)] && s.emu[ds(d, i)] == c, kEnodev});
    t.checks.push_back({"R4(R3): gfn in domid's P2M", s.p2mv[da(d, g)], kEnxio});
    t.checks.push_back({"R4(R3): not a Xen frame", s.fstate[m] != bv(so, kXen, so.K2), kEperm});
    t.checks.push_back({"R4, F4: not usable(C) takes only BFN_INVALID", u || bfn_invalid, kEinval});
    t.checks.push_back({"R4: usable(C) needs a tuple or an identity entry at bfn == mfn",
                        !u || has_tuple || ident, kEnoent});
    const expr tn = z3::concat(m, x);
    t.checks.push_back({"D19: a new tuple needs count below max_count",
                        z3::ite(u, has_tuple, s.m2b[tn]) || below_max(s, m), kEoverflow});
    t.checks.push_back({"D20: a new tuple needs C's holdings below its quota",
                        z3::ite(u, has_tuple, s.m2b[tn]) || under_quota(s, c), kEnomem});
    finish_checks(so, t);
    // D23: C is handed the out bfn for the frame.
    const St handed_m = hand(s, hkey(c, m, d, i), m);
    const St handed_out = hand(s, hkey(c, out, d, i), m);
    // Not usable: the tuple (mfn, domid, ioserver) at bfn = mfn, if new (+1 ref).
    // (F4: never swap, so the new tuple is of class 0.)
    const St nu_new = add_tuple(so, handed_m, m, x, so.ctx.bool_val(false), c, true, false);
    const St nu = ite_state(s.m2b[tn], handed_m, nu_new);
    // Usable, no tuple, identity entry: the tuple is added (+1 ref: registered interest).
    const St id = add_tuple(so, handed_m, m, x, so.ctx.bool_val(false), c,
                            mut != Mutant::lookup_identity_no_ref, false);
    // A tuple: its bfn, nothing new.
    const St n = ite_state(!u, nu, ite_state(has_tuple, handed_out, id));
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok && !u && s.m2b[tn], handed_m},
               {t.ok && !u && !s.m2b[tn], nu_new},
               {t.ok && u && has_tuple, handed_out},
               {t.ok && u && !has_tuple, id},
               {!t.ok, s}};
    return t;
}

// Removes tuple (m, x) of emulator e, which uses bfn b (R5; R9's teardown); its reference is
// deferred until e's flush (R11); e's foreign entry at b becomes `after` (none for
// unmap_foreign_page, scratch for destroy, D7) when no other tuple of e uses b (ref claimed(),
// after the removal), unless `keep_entry` (a planted bug). Returns the successor and its cases,
// one per ghost class of the tuple and per whether another tuple of e still uses b (`still`):
// for the proofs, "another tuple of e still claims b" names its witness, a free constant w (a
// case for an arbitrary w covers the existential), and the case mentions w's read in the
// successor so that E-matching has it. A case's `unclaimed`: no tuple of e uses b afterwards
// (D23: unmap_foreign_page then releases every key of e at b). `name` prefixes the constants.
struct DropCase {
    expr guard;
    St st;
    bool unclaimed;
};
struct Drop {
    St next;
    expr still;
    std::vector<DropCase> cases;
    expr w;  // the free witness constant of the "still claimed" cases
};
Drop drop_emulated_tuple(const Sorts& so, const St& s, const expr& m, const expr& x, const expr& b,
                         const expr& e, unsigned after, bool keep_entry, const std::string& name) {
    const expr tum = z3::concat(m, x);
    const expr cb = da(e, b);
    const expr cls = s.tcls[tum];  // AUX-CLASS: the ghost class is the tuple's class
    expr tt2 = so.ctx.constant((so.tag + name + ".t2").c_str(), so.T);
    const TupleParts q = parts(so, tt2);
    // claimed(e, b) after the removal, stated on the pre-state (a plain trigger m2b[t2]).
    const expr still =
        exists_p({tt2}, {{s.m2b[tt2]}}, s.m2b[tt2] && tt2 != tum && q.b == b && s.temu[tt2] == e);
    const expr foreign = s.ekind[cb] == bv(so, kForeign, so.K2);
    const expr last = foreign && !still;
    const expr w = so.ctx.constant((so.tag + name + ".other").c_str(), so.T);
    const TupleParts wp = parts(so, w);
    const expr claims_w = s.m2b[w] && w != tum && wp.b == b && s.temu[w] == e;
    Drop out{s, still, {}, w};
    for (bool k : {true, false}) {
        const St dropped = unlink_tuple(so, s, m, x, k, e);
        St gone = dropped;
        if (!keep_entry) gone.ekind = z3::store(gone.ekind, cb, bv(so, after, so.K2));
        const expr kc = k ? cls : !cls;
        out.cases.push_back({kc && last, gone, true});
        out.cases.push_back({kc && !foreign && !still, dropped, true});
        out.cases.push_back({kc && claims_w && dropped.m2b[w], dropped, false});
        const St nk = ite_state(last, gone, dropped);
        out.next = k ? nk : ite_state(cls, out.next, nk);
    }
    return out;
}

Transition unmap_foreign_page(const Sorts& so, const St& s, Mutant mut) {
    auto a = op_args<spec::UnmapForeignPage>(so, "unmap_foreign_page.");
    const expr c = so.ctx.constant((so.tag + "unmap_foreign_page.C").c_str(), so.D);
    const expr flags = arg(a, "flags"), b = arg(a, "bfn"), d = arg(a, "domid"),
               i = arg(a, "ioserver");
    // ref takes the first frame (lowest mfn) with this tuple of C: `um`, pinned down by scope.
    const expr um = so.ctx.constant((so.tag + "unmap_foreign_page.mfn").c_str(), so.A);
    const expr x = bds(b, d, i);
    const expr cb = da(c, b);
    const expr key = hkey(c, b, d, i);
    Transition t = blank(so, s, "unmap_foreign_page");
    t.args.push_back(c);
    for (auto& [n, e] : a) t.args.push_back(e);
    t.scope.push_back({"scope: order 0", order_zero(flags)});
    t.scope.push_back({"scope: C live (ref's precondition)", s.live[c]});
    t.scope.push_back(not_dying(s, c));
    expr tt = so.ctx.constant((so.tag + "unmap_foreign_page.t").c_str(), so.T);
    const TupleParts tp = parts(so, tt);
    // F5, F12: C's own tuple is the one whose recorded emulator is C (orphans included).
    const expr own = exists_p({tt}, {{s.m2b[tt]}}, s.m2b[tt] && tp.bds == x && s.temu[tt] == c);
    const expr tu = z3::concat(um, x);
    t.scope.push_back(
        {"scope: mfn is the lowest frame with C's tuple",
         z3::implies(own, s.m2b[tu] && s.temu[tu] == c &&
                              forall_p({tt}, {{s.m2b[tt]}},
                                       z3::implies(s.m2b[tt] && tp.bds == x && s.temu[tt] == c,
                                                   !z3::ult(tp.m, um))))});
    const expr scratch = s.ekind[cb] == bv(so, kScratch, so.K2);
    t.checks.push_back({"R1: reserved flag bits", reserved_clear(flags), kEinval});
    t.checks.push_back({"F5: C's own tuple, or a scratch entry at bfn", own || scratch, kEnoent});
    finish_checks(so, t);
    // R5: the tuple, its reference deferred (R11); the foreign entry goes when no tuple of C
    // uses bfn. D23: C's key goes, and every key of C at bfn when no tuple of C uses it.
    const Drop dr = drop_emulated_tuple(
        so, s, um, x, b, c, kNone, mut == Mutant::unmap_foreign_keeps_entry, "unmap_foreign_page");
    St n = ite_state(dr.still, release_key(dr.next, key),
                     release_at(so, dr.next, c, b, "unmap_foreign_page.k1"));
    // A planted bug in `next` only (the cases below stay right): the tuple stays, its
    // reference is still deferred and dropped.
    if (mut == Mutant::unmap_foreign_next_keeps_tuple) n.m2b = s.m2b;
    // R5, F5: a scratch entry at bfn goes, whatever domid/ioserver say; D23 as above.
    St sc = s;
    sc.ekind = z3::store(sc.ekind, cb, bv(so, kNone, so.K2));
    const expr cl = claimed(so, s, c, b, {}, "unmap_foreign_page");
    const St sc_key = release_key(sc, key);
    const St sc_all = release_at(so, sc, c, b, "unmap_foreign_page.k2");
    t.next = ite_state(t.ok, ite_state(own, n, ite_state(cl, sc_key, sc_all)), s);
    for (const DropCase& dc : dr.cases)
        t.cases.push_back({t.ok && own && dc.guard,
                           dc.unclaimed ? release_at(so, dc.st, c, b, "unmap_foreign_page.k1")
                                        : release_key(dc.st, key)});
    const expr w = so.ctx.constant((so.tag + "unmap_foreign_page.w").c_str(), so.T);
    const TupleParts wp = parts(so, w);
    t.cases.push_back({t.ok && !own && !cl, sc_all});
    t.cases.push_back(
        {t.ok && !own && s.m2b[w] && wp.b == b && s.temu[w] == c && sc.m2b[w], sc_key});
    t.cases.push_back({!t.ok, s});
    t.case_vars = {dr.w, w};
    return t;
}

Transition balloon(const Sorts& so, const St& s, Mutant mut) {
    const expr d = so.ctx.constant((so.tag + "balloon.D").c_str(), so.D);
    const expr g = so.ctx.constant((so.tag + "balloon.gfn").c_str(), so.A);
    const expr m = s.p2m[da(d, g)];
    Transition t = blank(so, s, "balloon");
    t.frame = m;
    t.args.push_back(d);
    t.args.push_back(g);
    t.scope.push_back({"scope: D live (ref's precondition)", s.live[d]});
    // Events have no status: a failing check means "nothing happens" (code 0 either way).
    t.checks.push_back({"R7: gfn has a RAM frame", s.p2mv[da(d, g)], kOk});
    t.checks.push_back({"F7: not a Xen frame", s.fstate[m] != bv(so, kXen, so.K2), kOk});
    finish_checks(so, t);
    St n = s;
    n.p2mv = z3::store(n.p2mv, da(d, g), so.ctx.bool_val(false));  // R7: the P2M entry goes
    // R7, F8: one invalidation per tuple of the frame, to the tuple's server, with its bfn;
    // R9 v2: none for an orphan (it has no server any more). Issue 17, item 5: the balloon's
    // linearization owes them (pdl, and the ghost owe, indexed by (bfn, domid, ioserver));
    // `deliver` steps, before the balloon returns, put each into its server's ring or onto the
    // synchronous channel.
    {
        const expr x1 = so.ctx.constant((so.tag + "balloon.x1").c_str(), so.BDS);
        const expr x2 = so.ctx.constant((so.tag + "balloon.x2").c_str(), so.BDS);
        auto owed = [&](const expr& y) {
            return z3::ite(s.m2b[z3::concat(m, y)] && !s.torph[z3::concat(m, y)], one(so),
                           bv(so, 0, so.C));
        };
        n.pdl = z3::lambda(x1, s.pdl[x1] + owed(x1));
        n.owe = z3::lambda(x2, s.owe[x2] + owed(x2));
    }
    // R7, D13: swap-flagged tuples of usable emulators whose entry is foreign go at once.
    expr tt = so.ctx.constant((so.tag + "balloon.t").c_str(), so.T);
    const TupleParts p = parts(so, tt);
    const expr e = s.temu[tt];
    const expr dropped = p.m == m && s.m2b[tt] && s.swap[tt] && usable(so, s, e) &&
                         s.ekind[da(e, p.b)] == bv(so, kForeign, so.K2);
    if (mut != Mutant::swap_keeps_tuple_drops_ref) n.m2b = z3::lambda(tt, s.m2b[tt] && !dropped);
    // Their references: the ghost count nT1[m] is the number of them (INV-COUNT, AUX-SWAP); they
    // are deferred (R11) until the flush of every usable context (the emulators of the dropped
    // tuples are among them: AUX-SWAP), which is where their stale translations may be cached.
    n.nT1 = z3::store(n.nT1, m, bv(so, 0, so.C));
    n.pend = z3::store(n.pend, m, s.pend[m] + s.nT1[m]);
    // D20: each emulator holds its dropped tuples less: hsw[(e, m)] of them. The counter is
    // tied to the tuples by conformance, not by proof (a cardinality), so the decrement is
    // clamped at 0 (it never is below on a state ref reaches: conformance reads hsw): what the
    // proof needs is only that a balloon takes no holdings up (INV-QUOTA).
    {
        const expr he = so.ctx.constant(lambda_name(so, "balloon.he").c_str(), so.D);
        const expr h = s.hsw[da(he, m)];
        n.hold = z3::lambda(he, s.hold[he] - z3::ite(h > 0, h, bv(so, 0, so.C)));
        const expr hx = so.ctx.constant(lambda_name(so, "balloon.hx").c_str(), so.DA);
        n.hsw = z3::lambda(hx, z3::ite(parts_da(so, hx).second == m, bv(so, 0, so.C), s.hsw[hx]));
    }
    {
        const expr ac = so.ctx.constant((so.tag + "balloon.ac").c_str(), so.D);
        const expr af = so.ctx.constant((so.tag + "balloon.af").c_str(), so.A);
        z3::expr_vector vs(so.ctx);
        vs.push_back(ac);
        vs.push_back(af);
        n.await = z3::lambda(
            vs, sel2(s.await, ac, af) || (af == m && s.nT1[m] != 0 && usable(so, s, ac)));
    }
    // R7, D13: a foreign entry of the frame that no tuple of its emulator uses any more ->
    // scratch. (ref re-points only bfns of dropped tuples; under AUX-FOREIGN every foreign
    // entry is claimed before, so an unclaimed one after lost a dropped tuple; under
    // INV-M2B-SET the claiming tuples are all on m.)
    expr cb = so.ctx.constant((so.tag + "balloon.cb").c_str(), so.DA);
    const auto [ec, eb] = parts_da(so, cb);
    expr qt = so.ctx.constant((so.tag + "balloon.qt").c_str(), so.T);
    const TupleParts q = parts(so, qt);
    const expr still =
        exists_p({qt}, {{n.m2b[qt]}}, n.m2b[qt] && q.m == m && q.b == eb && s.temu[qt] == ec);
    n.ekind =
        z3::lambda(cb, z3::ite(s.ekind[cb] == bv(so, kForeign, so.K2) && s.emfn[cb] == m && !still,
                               bv(so, kScratch, so.K2), s.ekind[cb]));
    // R7: the allocation reference is dropped at once (no IOTLB holds it); R8: freed at 0.
    const expr left = s.count[m] - one(so);
    const expr freed = mut == Mutant::balloon_frees_with_tuples ? so.ctx.bool_val(true) : left == 0;
    n.count = z3::store(n.count, m, z3::ite(freed, bv(so, 0, so.C), left));
    n.alloc = z3::store(n.alloc, m, so.ctx.bool_val(false));
    n.fstate = z3::store(n.fstate, m, z3::ite(freed, bv(so, kFree, so.K2), s.fstate[m]));
    n.owner = z3::store(n.owner, m, z3::ite(freed, bv(so, 0, so.D), s.owner[m]));
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok, n}, {!t.ok, s}};
    return t;
}

// R8's pick (populate, xen_gfn): `some` free frame exists; `lowest`: `pick` is the
// lowest-numbered free frame when one exists.
struct Pick {
    expr pick, some, lowest;
};
Pick lowest_free(const Sorts& so, const St& s, const std::string& name) {
    const expr pick = so.ctx.constant((so.tag + name + ".mfn").c_str(), so.A);
    const expr f = so.ctx.constant((so.tag + name + ".f").c_str(), so.A);
    const expr fr = bv(so, kFree, so.K2);
    const expr some = exists_p({f}, {{s.fstate[f]}}, s.fstate[f] == fr && z3::ult(f, s.nframes));
    const expr lowest = z3::implies(
        some, s.fstate[pick] == fr && z3::ult(pick, s.nframes) &&
                  forall_p({f}, {{s.fstate[f]}}, z3::implies(z3::ult(f, pick), s.fstate[f] != fr)));
    return {pick, some, lowest};
}

Transition populate(const Sorts& so, const St& s, Mutant) {
    const expr d = so.ctx.constant((so.tag + "populate.D").c_str(), so.D);
    const expr g = so.ctx.constant((so.tag + "populate.gfn").c_str(), so.A);
    // R8: the lowest-numbered free frame, `pick`, pinned down by scope.
    const auto [pick, some, lowest] = lowest_free(so, s, "populate");
    Transition t = blank(so, s, "populate");
    t.frame = pick;
    t.args.push_back(d);
    t.args.push_back(g);
    t.scope.push_back({"scope: D live (ref's precondition)", s.live[d]});
    t.scope.push_back({"scope: mfn is the lowest free frame", lowest});
    t.checks.push_back({"R8: gfn has no frame yet", !s.p2mv[da(d, g)], kOk});
    t.checks.push_back({"R8: a free frame exists", some, kOk});
    finish_checks(so, t);
    St n = s;
    n.fstate = z3::store(n.fstate, pick, bv(so, kOwned, so.K2));
    n.owner = z3::store(n.owner, pick, d);
    n.count = z3::store(n.count, pick, one(so));
    n.alloc = z3::store(n.alloc, pick, so.ctx.bool_val(true));
    n.p2mv = z3::store(n.p2mv, da(d, g), so.ctx.bool_val(true));
    n.p2m = z3::store(n.p2m, da(d, g), pick);
    n.p2mg = z3::store(n.p2mg, pick, g);
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok, n}, {!t.ok, s}};
    return t;
}

// query_caps changes no component of this encoding: it only writes its out field (R2: map_cap
// exactly when usable(C)). It is the identity on St; a transition so that every obligation, the
// conformance samples and BMC cover every subop and event by name.
Transition query_caps(const Sorts& so, const St& s, Mutant) {
    const expr c = so.ctx.constant((so.tag + "query_caps.C").c_str(), so.D);
    Transition t = blank(so, s, "query_caps");
    t.args.push_back(c);
    t.scope.push_back({"scope: C live (ref's precondition)", s.live[c]});
    finish_checks(so, t);  // no check: query_caps always succeeds (R1: flags are output only)
    t.out = usable(so, s, c);
    t.cases = {{t.ok, s}};
    return t;
}

// deliver's and drain's head: the transition with its arguments (D, ioserver, bfn), the
// server's index x = (D, ioserver) and the index k = (bfn, D, ioserver) of its per-bfn counts.
struct QueueStep {
    Transition t;
    expr x, k;
};
QueueStep queue_step(const Sorts& so, const St& s, const std::string& name) {
    const expr d = so.ctx.constant((so.tag + name + ".D").c_str(), so.D);
    const expr i = so.ctx.constant((so.tag + name + ".ioserver").c_str(), so.S);
    const expr b = so.ctx.constant((so.tag + name + ".bfn").c_str(), so.A);
    QueueStep q{blank(so, s, name), ds(d, i), z3::concat(b, ds(d, i))};
    for (const expr& a : {d, i, b}) q.t.args.push_back(a);
    return q;
}

// Issue 17, item 5. drain (D11) takes a server's requests, the ring's first, then the
// synchronous channel's; one request per step (ref's drain of n requests is n steps, an empty
// one a failing step). The request's bfn is an argument: the encoding counts requests per bfn
// (rq, sq), not their order, so a step may take any bfn the ring holds (ref takes its head:
// conformance fixes the argument to it).
Transition drain(const Sorts& so, const St& s, Mutant) {
    auto [t, x, k] = queue_step(so, s, "drain");
    t.scope.push_back({"scope: the server exists (ref's precondition)", s.srv[x]});
    const expr ring = s.rlen[x] > 0 && s.rq[k] > 0;
    const expr sync = s.rlen[x] == 0 && s.sq[k] > 0;
    t.checks.push_back({"D11: a request naming bfn is next (the ring first)", ring || sync, kOk});
    finish_checks(so, t);
    St nr = s;  // from the ring: its 2 slots free again
    nr.rq = z3::store(s.rq, k, s.rq[k] - one(so));
    nr.rlen = z3::store(s.rlen, x, s.rlen[x] - one(so));
    nr.owe = z3::store(s.owe, k, s.owe[k] - one(so));
    St ns = s;  // from the synchronous channel
    ns.sq = z3::store(s.sq, k, s.sq[k] - one(so));
    ns.owe = z3::store(s.owe, k, s.owe[k] - one(so));
    t.next = ite_state(ring, nr, ite_state(sync, ns, s));
    t.cases = {{ring, nr}, {sync, ns}, {!t.ok, s}};
    return t;
}

// Issue 17, item 5. R7: one invalidation a balloon owes server (D, ioserver) for bfn goes into
// the server's buffered ring when it has 2 free slots (a request takes 2 of its rcap slots),
// otherwise onto the synchronous channel: never dropped. A balloon's linearization owes them
// (pdl); its deliveries follow, one step each, before it returns (spec section 7; the
// encoding lets any step interleave, and delivers the owed ones in any order: ref's F8 order
// is one of them, the one conformance drives).
Transition deliver(const Sorts& so, const St& s, Mutant mut) {
    auto [t, x, k] = queue_step(so, s, "deliver");
    t.checks.push_back({"R7: an invalidation of bfn is owed to the server", s.pdl[k] > 0, kOk});
    finish_checks(so, t);
    const expr room = 2 * s.rlen[x] + 2 <= s.rcap[x];
    St nr = s;  // R7: into the ring
    nr.pdl = z3::store(s.pdl, k, s.pdl[k] - one(so));
    nr.rq = z3::store(s.rq, k, s.rq[k] + one(so));
    nr.rlen = z3::store(s.rlen, x, s.rlen[x] + one(so));
    St ns = s;  // R7: the ring is full: the synchronous channel
    ns.pdl = z3::store(s.pdl, k, s.pdl[k] - one(so));
    if (mut != Mutant::deliver_ring_full_drop) ns.sq = z3::store(s.sq, k, s.sq[k] + one(so));
    t.next = ite_state(t.ok, ite_state(room, nr, ns), s);
    t.cases = {{t.ok && room, nr}, {t.ok && !room, ns}, {!t.ok, s}};
    return t;
}

// R11 (v2): the IOTLBs. A device of usable context C may cache the translation of any local or
// foreign entry of C at any time (tlb_fill); flush(C) empties C's IOTLB, and every deferred
// reference awaiting C's flush stops awaiting it; put(M) drops the deferred references of M
// once no flush is awaited for them (R8: freed at 0). An op that removes or re-points an entry
// is its removal step (above: unmap_foreign_page, unmap_page, balloon, destroy's steps); its
// flush and put are these steps, which any other step may interleave with. Identity entries
// are not cached here: they hold no reference (the 1:1 map covers free frames by design, D18),
// and INV-DEVICE-SAFE is what keeps a lookup's 1:1 address safe.
Transition tlb_fill(const Sorts& so, const St& s, Mutant) {
    const expr c = so.ctx.constant((so.tag + "tlb_fill.C").c_str(), so.D);
    const expr b = so.ctx.constant((so.tag + "tlb_fill.bfn").c_str(), so.A);
    const expr cb = da(c, b);
    Transition t = blank(so, s, "tlb_fill");
    t.args.push_back(c);
    t.args.push_back(b);
    t.checks.push_back({"R11: a local or foreign entry of a usable context",
                        usable(so, s, c) && (s.ekind[cb] == bv(so, kLocal, so.K2) ||
                                             s.ekind[cb] == bv(so, kForeign, so.K2)),
                        kOk});
    finish_checks(so, t);
    St n = s;
    n.tlb = st2(n.tlb, cb, s.emfn[cb], so.ctx.bool_val(true));
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok, n}, {!t.ok, s}};
    return t;
}

Transition flush(const Sorts& so, const St& s, Mutant) {
    const expr c = so.ctx.constant((so.tag + "flush.C").c_str(), so.D);
    Transition t = blank(so, s, "flush");
    t.args.push_back(c);
    finish_checks(so, t);  // a flush is always possible
    St n = s;
    {
        const expr x = so.ctx.constant((so.tag + "flush.x").c_str(), so.DA);
        const expr f = so.ctx.constant((so.tag + "flush.f").c_str(), so.A);
        z3::expr_vector vs(so.ctx);
        vs.push_back(x);
        vs.push_back(f);
        n.tlb = z3::lambda(vs, sel2(s.tlb, x, f) && parts_da(so, x).first != c);
    }
    {
        const expr ac = so.ctx.constant((so.tag + "flush.ac").c_str(), so.D);
        const expr af = so.ctx.constant((so.tag + "flush.af").c_str(), so.A);
        z3::expr_vector vs(so.ctx);
        vs.push_back(ac);
        vs.push_back(af);
        n.await = z3::lambda(vs, sel2(s.await, ac, af) && ac != c);
    }
    return one_case(std::move(t), n);
}

Transition put(const Sorts& so, const St& s, Mutant mut) {
    const expr m = so.ctx.constant((so.tag + "put.mfn").c_str(), so.A);
    Transition t = blank(so, s, "put");
    t.frame = m;
    t.args.push_back(m);
    t.checks.push_back({"R11: deferred references on the frame", s.pend[m] != 0, kOk});
    if (mut != Mutant::put_before_flush) {
        const expr c = so.ctx.constant((so.tag + "put.c").c_str(), so.D);
        t.checks.push_back({"R11: no flush awaited for them (the put comes after the flush)",
                            forall_p({c}, {{sel2(s.await, c, m)}}, !sel2(s.await, c, m)), kOk});
    }
    finish_checks(so, t);
    // R8: freed when the count reaches 0.
    const expr left = s.count[m] - s.pend[m];
    St kept = s;
    kept.count = z3::store(kept.count, m, left);
    kept.pend = z3::store(kept.pend, m, bv(so, 0, so.C));
    St freed = kept;
    freed.count = z3::store(s.count, m, bv(so, 0, so.C));
    freed.fstate = z3::store(freed.fstate, m, bv(so, kFree, so.K2));
    freed.owner = z3::store(freed.owner, m, bv(so, 0, so.D));
    freed.alloc = z3::store(freed.alloc, m, so.ctx.bool_val(false));
    const expr zero = left == 0;
    t.next = ite_state(t.ok, ite_state(zero, freed, kept), s);
    t.cases = {{t.ok && zero, freed}, {t.ok && !zero, kept}, {!t.ok, s}};
    return t;
}

// R9 v2, destroy(D), as the preemptible teardown Xen runs (domain_relinquish_resources: one
// holder at a time, restarted until none is left), then the domain goes. ref's atomic destroy
// is these steps run to completion: destroy_begin (D's device is gone: H forgets D's keys; D
// makes no call any more); destroy_drop_tuple for every tuple D holds (step 1) and every tuple
// of a server whose target is D (step 2: dropped, or left as an orphan); balloon for each RAM
// gfn of D (step 3: the encoded balloon itself); destroy_drop_local for each local entry of D's
// context (step 4); then destroy_finish (D, its servers and those serving it, its context and
// IOTLB). Each removal defers its reference, and a flush and a put follow each step (R11: a
// flush after each step of a destroy). The conformance test runs the chain on ref's pre-state
// and compares its end with ref's destroy. D stays live until destroy_finish, so the
// intermediate states are states of this encoding, and every subop of another domain may
// interleave with them (a stronger claim than ref's atomic destroy needs).
Transition destroy_begin(const Sorts& so, const St& s, Mutant) {
    const expr d = so.ctx.constant((so.tag + "destroy_begin.D").c_str(), so.D);
    Transition t = blank(so, s, "destroy_begin");
    t.args.push_back(d);
    t.scope.push_back({"scope: D live (ref's precondition)", s.live[d]});
    t.checks.push_back({"R9 v2: not being destroyed already", !s.dying[d], kOk});
    finish_checks(so, t);
    St n = forget_emulator(so, s, d, "destroy_begin.k");  // D23: destroy E removes E's keys
    n.dying = z3::store(n.dying, d, so.ctx.bool_val(true));
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok, n}, {!t.ok, s}};
    return t;
}

Transition destroy_drop_tuple(const Sorts& so, const St& s, Mutant mut) {
    const expr d = so.ctx.constant((so.tag + "destroy_drop_tuple.D").c_str(), so.D);
    const expr m = so.ctx.constant((so.tag + "destroy_drop_tuple.mfn").c_str(), so.A);
    const expr b = so.ctx.constant((so.tag + "destroy_drop_tuple.bfn").c_str(), so.A);
    const expr dom = so.ctx.constant((so.tag + "destroy_drop_tuple.domid").c_str(), so.D);
    const expr i = so.ctx.constant((so.tag + "destroy_drop_tuple.ioserver").c_str(), so.S);
    const expr x = bds(b, dom, i);
    const expr tum = z3::concat(m, x);
    const expr e = s.temu[tum];
    Transition t = blank(so, s, "destroy_drop_tuple");
    for (const expr& a : {d, m, b, dom, i}) t.args.push_back(a);
    t.scope.push_back({"scope: D live (ref's precondition)", s.live[d]});
    t.checks.push_back({"R9 v2: D is being destroyed", s.dying[d], kOk});
    const expr held = e == d;
    t.checks.push_back(
        {"R9 v2 step 1 or 2: a tuple D holds, or a tuple of a server whose "
         "target is D (not an orphan)",
         s.m2b[tum] && (held || (!s.torph[tum] && dom == d)), kOk});
    finish_checks(so, t);
    // Step 1: a tuple D holds goes (D's context dies with D; until destroy_finish its entry at
    // bfn turns scratch like any other, so AUX-FOREIGN holds in between). Step 2: a tuple of a
    // server of D goes where its emulator E is usable and E's entry at bfn is foreign (re-pointed
    // at E's scratch page unless another tuple of E uses bfn); otherwise it stays, an orphan,
    // with its reference (E's device may still reach the frame: E not usable, or the 1:1 entry
    // a lookup registered). Every dropped reference is deferred until E's flush (R11).
    const expr release = mut == Mutant::teardown_v1
                             ? so.ctx.bool_val(true)
                             : usable(so, s, e) && s.ekind[da(e, b)] == bv(so, kForeign, so.K2);
    const Drop dr =
        drop_emulated_tuple(so, s, m, x, b, e, kScratch,
                            mut == Mutant::destroy_leaves_foreign_entry, "destroy_drop_tuple");
    St orphan = s;
    orphan.torph = z3::store(orphan.torph, tum, so.ctx.bool_val(true));
    const expr goes = held || release;
    for (const DropCase& dc : dr.cases) t.cases.push_back({t.ok && goes && dc.guard, dc.st});
    t.cases.push_back({t.ok && !goes, orphan});
    t.cases.push_back({!t.ok, s});
    t.next = ite_state(t.ok, ite_state(goes, dr.next, orphan), s);
    t.case_vars = {dr.w};
    return t;
}

Transition destroy_drop_local(const Sorts& so, const St& s, Mutant) {
    const expr d = so.ctx.constant((so.tag + "destroy_drop_local.D").c_str(), so.D);
    const expr b = so.ctx.constant((so.tag + "destroy_drop_local.bfn").c_str(), so.A);
    const expr cb = da(d, b);
    Transition t = blank(so, s, "destroy_drop_local");
    t.args.push_back(d);
    t.args.push_back(b);
    t.scope.push_back({"scope: D live (ref's precondition)", s.live[d]});
    t.checks.push_back({"R9 v2: D is being destroyed", s.dying[d], kOk});
    t.checks.push_back(
        {"R9 v2 step 4: a local entry of D's context", s.ekind[cb] == bv(so, kLocal, so.K2), kOk});
    finish_checks(so, t);
    // R9 step 4: the entry goes, its reference deferred until D's flush (as unmap_page's local
    // case, without R6's usable check: teardown is Xen's, not a call of D).
    St n = s;
    const expr m = s.emfn[cb];
    n.ekind = z3::store(n.ekind, cb, bv(so, kNone, so.K2));
    n = ghost_remove_local(so, n, m, cb);
    n = defer_put(so, n, m, d);
    n = drop_holding(so, n, d);  // D20
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok, n}, {!t.ok, s}};
    return t;
}

Transition destroy_finish(const Sorts& so, const St& s, Mutant) {
    const expr d = so.ctx.constant((so.tag + "destroy_finish.D").c_str(), so.D);
    Transition t = blank(so, s, "destroy_finish");
    t.args.push_back(d);
    t.scope.push_back({"scope: D live (ref's precondition)", s.live[d]});
    t.checks.push_back({"R9 v2: D is being destroyed", s.dying[d], kOk});
    expr tt = so.ctx.constant((so.tag + "destroy_finish.t").c_str(), so.T);
    const TupleParts p = parts(so, tt);
    expr g = so.ctx.constant((so.tag + "destroy_finish.g").c_str(), so.A);
    t.checks.push_back(
        {"R9 v2 steps 1, 2 done: no tuple D holds, none of a server of D but orphans",
         !exists_p({tt}, {{s.m2b[tt]}},
                   s.m2b[tt] && (s.temu[tt] == d || (!s.torph[tt] && p.d == d))),
         kOk});
    // Step 3 is stated on frames, not gfns: D holds no allocation reference. A stronger guard
    // under AUX-P2M (a RAM gfn's frame is allocated and owned by its domain), the same one on
    // every reachable state (only populate sets allocated, only balloon clears it, each with
    // the P2M entry; conformance checks that the finish acts at every chain's end), and a flat
    // body: measured, the gfn form (a read of fstate at p2m[D, g]) left Z3's model search
    // unknown on 4 of 300 conformance samples.
    t.checks.push_back(
        {"R9 v2 step 3 done: no RAM frame in D's P2M (D holds no allocation reference)",
         forall_p({g}, {{s.fstate[g]}},
                  !(s.fstate[g] == bv(so, kOwned, so.K2) && s.owner[g] == d && s.alloc[g])),
         kOk});
    // Over whole (context, bfn) indices, as every entry clause of the invariants (measured:
    // quantified over the bfn with the index built by concatenation, the model search came
    // back unknown on 2 of 300 conformance samples).
    expr cb = so.ctx.constant((so.tag + "destroy_finish.cb").c_str(), so.DA);
    t.checks.push_back(
        {"R9 v2 step 4 done: no local entry in D's context",
         forall_p({cb}, {{s.ekind[cb]}},
                  z3::implies(s.ekind[cb] == bv(so, kLocal, so.K2), parts_da(so, cb).first != d)),
         kOk});
    finish_checks(so, t);
    // The domain goes, with its servers and those serving it (F11), its P2M (the Xen-backed
    // gfns that are left), its IOMMU context and IOTLB (no flush of it is awaited any more: it
    // is gone), its RMRRs, every privilege naming it (D8) and its keys in H (D23). No count
    // changes: every reference D's teardown drops was deferred by the steps.
    St n = forget_emulator(so, s, d, "destroy_finish.k");
    const expr f = so.ctx.bool_val(false);
    n.live = z3::store(n.live, d, f);
    n.hw = z3::store(n.hw, d, f);
    n.iommu_hw = z3::store(n.iommu_hw, d, f);
    n.dying = z3::store(n.dying, d, f);
    expr dd = so.ctx.constant((so.tag + "destroy_finish.dd").c_str(), so.DD);
    n.dm = z3::lambda(dd, s.dm[dd] && dd.extract(2 * so.w.dom - 1, so.w.dom) != d &&
                              dd.extract(so.w.dom - 1, 0) != d);
    // One bound constant per lambda (Z3 4.8.12 aborts at context deletion when they share).
    auto row = [&](const char* what) {
        return so.ctx.constant((so.tag + "destroy_finish." + what).c_str(), so.DA);
    };
    auto dom_of = [&](const expr& x) { return parts_da(so, x).first; };
    const expr x1 = row("x1"), x2 = row("x2"), x3 = row("x3"), x4 = row("x4"), x5 = row("x5");
    n.rmrr = z3::lambda(x1, s.rmrr[x1] && dom_of(x1) != d);
    n.p2mv = z3::lambda(x2, s.p2mv[x2] && dom_of(x2) != d);
    n.ekind = z3::lambda(x3, z3::ite(dom_of(x3) == d, bv(so, kNone, so.K2), s.ekind[x3]));
    n.removed = z3::lambda(x4, s.removed[x4] && dom_of(x4) != d);
    expr xs = so.ctx.constant((so.tag + "destroy_finish.xs").c_str(), so.DS);
    const expr sd = xs.extract(so.w.dom + so.w.sid - 1, so.w.sid);
    n.srv = z3::lambda(xs, s.srv[xs] && sd != d && s.emu[xs] != d);
    // F11: a server that goes discards its requests, and what was owed to it (issue 17, item 5).
    {
        const expr xr = so.ctx.constant((so.tag + "destroy_finish.xr").c_str(), so.DS);
        auto gone = [&](const expr& sx) {
            return sx.extract(so.w.dom + so.w.sid - 1, so.w.sid) == d || s.emu[sx] == d;
        };
        const expr zero = bv(so, 0, so.C);
        n.rlen = z3::lambda(xr, z3::ite(gone(xr), zero, s.rlen[xr]));
        const unsigned lo = so.w.dom + so.w.sid;
        auto per_key = [&](const expr& a, const char* what) {
            const expr y = so.ctx.constant((so.tag + "destroy_finish." + what).c_str(), so.BDS);
            return z3::lambda(y, z3::ite(gone(y.extract(lo - 1, 0)), zero, a[y]));
        };
        n.rq = per_key(s.rq, "yq");
        n.sq = per_key(s.sq, "ys");
        n.pdl = per_key(s.pdl, "yp");
        n.owe = per_key(s.owe, "yo");
    }
    {
        const expr tf = so.ctx.constant((so.tag + "destroy_finish.tf").c_str(), so.A);
        z3::expr_vector vs(so.ctx);
        vs.push_back(x5);
        vs.push_back(tf);
        n.tlb = z3::lambda(vs, sel2(s.tlb, x5, tf) && dom_of(x5) != d);
    }
    {
        const expr ac = so.ctx.constant((so.tag + "destroy_finish.ac").c_str(), so.D);
        const expr af = so.ctx.constant((so.tag + "destroy_finish.af").c_str(), so.A);
        z3::expr_vector vs(so.ctx);
        vs.push_back(ac);
        vs.push_back(af);
        n.await = z3::lambda(vs, sel2(s.await, ac, af) && ac != d);
    }
    t.next = ite_state(t.ok, n, s);
    t.cases = {{t.ok, n}, {!t.ok, s}};
    return t;
}

// ---------------------------------------------------------------------------------------------
// The control plane (issue 17, item 4): the statements of spec/trace-format.md section 2 that
// change encoded state, as transitions. A statement that the trace language rejects as
// malformed (exit 2: a live domid declared again, a server that exists, an rmrr after the first
// call, ...) is never issued: its precondition is scope. None has a failing case: a
// well-formed statement always acts. `host` is static (St's first four components), and D20's
// quotas are not encoded.

// A trace statement runs between ops and ref's destroy is atomic: no domain it names is dying.
Clause not_dying_stmt(const St& s, const expr& d, const std::string& who) {
    return {"scope: " + who + " not dying (a statement runs between atomic ops)", !s.dying[d]};
}

// `domain D hardware|guest [iommu_hw]` with ram=0. ram=N is this step then N populates of
// gfns 0..N-1: ref's create hands gfn g the lowest free frame, in order, as R8's populate does
// (and stops the run, exit 1, when fewer than N are free: not issued).
Transition create_domain(const Sorts& so, const St& s, Mutant mut) {
    const expr d = so.ctx.constant((so.tag + "create_domain.D").c_str(), so.D);
    const expr hwd = so.ctx.bool_const((so.tag + "create_domain.hardware").c_str());
    const expr io = so.ctx.bool_const((so.tag + "create_domain.iommu_hw").c_str());
    // D20: `quota=N` (0 <= N <= 2^32-1), -1 when the statement has none.
    const expr quota = so.ctx.constant((so.tag + "create_domain.quota").c_str(), so.C);
    Transition t = blank(so, s, "create_domain");
    for (const expr& a : {d, hwd, io, quota}) t.args.push_back(a);
    t.scope.push_back({"scope: D20, quota=N with 0 <= N <= 2^32-1, or none (-1)",
                       quota >= -1 && quota <= so.ctx.int_val(std::uint64_t{0xffffffff})});
    t.scope.push_back({"scope: D not live (a live domid declared again: exit 2)", !s.live[d]});
    if (mut != Mutant::create_domain_self)
        t.scope.push_back(
            {"scope: D is no DOMID_SELF (a domid above 0x7fef: exit 2)", d != ones(so.D)});
    const expr q = so.ctx.constant((so.tag + "create_domain.q").c_str(), so.D);
    t.scope.push_back(
        {"scope: D8, no second hardware domain (exit 2)",
         z3::implies(hwd, forall_p({q}, {{s.live[q]}}, z3::implies(s.live[q], !s.hw[q])))});
    // Not encoded: a destroyed domid declared again while orphans of its predecessor (R9 v2
    // step 2) still name it (AUX-ORPHAN: an orphan's target is dead or dying). A dead D is no
    // tuple's emulator (AUX-ORPHAN) and no domid of a tuple but an orphan (INV-PRIV), so this
    // excludes that case only.
    expr tt = so.ctx.constant((so.tag + "create_domain.t").c_str(), so.T);
    const TupleParts p = parts(so, tt);
    t.scope.push_back(
        {"scope: no tuple names D as its domid (for a dead D only an orphan can; not encoded: a "
         "domid reused while orphans of its predecessor name it)",
         !exists_p({tt}, {{s.m2b[tt]}}, s.m2b[tt] && p.d == d)});
    finish_checks(so, t);  // no check: a well-formed `domain` statement always acts
    // A new domain holds no key of H (D23; destroy_finish removed its predecessor's): its
    // device's view changes with usable(D) (INV-DEVICE-SAFE).
    St n = forget_emulator(so, s, d, "create_domain.k");
    n.live = z3::store(n.live, d, so.ctx.bool_val(true));
    n.hw = z3::store(n.hw, d, hwd);
    n.iommu_hw = z3::store(n.iommu_hw, d, io);
    n.quota = z3::store(n.quota, d, quota);          // D20: its quota, or none
    n.hold = z3::store(n.hold, d, bv(so, 0, so.C));  // D20: a new domain holds nothing
    return one_case(std::move(t), n);
}

// `dm E over T`: E gets privilege over T (D8).
Transition dm(const Sorts& so, const St& s, Mutant mut) {
    const expr e = so.ctx.constant((so.tag + "dm.C").c_str(), so.D);
    const expr tg = so.ctx.constant((so.tag + "dm.domid").c_str(), so.D);
    Transition t = blank(so, s, "dm");
    t.args.push_back(e);
    t.args.push_back(tg);
    t.scope.push_back({"scope: E and T live (naming no domain: exit 2)", s.live[e] && s.live[tg]});
    t.scope.push_back(not_dying_stmt(s, e, "E"));
    t.scope.push_back(not_dying_stmt(s, tg, "T"));
    finish_checks(so, t);
    St n = s;
    if (mut == Mutant::dm_replaces_privileges) {
        const expr dd = so.ctx.constant(lambda_name(so, "dm.dd").c_str(), so.DD);
        n.dm = z3::lambda(dd, z3::ite(dd.extract(2 * so.w.dom - 1, so.w.dom) == e,
                                      dd.extract(so.w.dom - 1, 0) == tg, s.dm[dd]));
    } else {
        n.dm = z3::store(s.dm, ds(e, tg), so.ctx.bool_val(true));
    }
    return one_case(std::move(t), n);
}

// `ioserver T id=S emulator=E ring=SLOTS`: server (T, S) served by E, its ring of SLOTS slots
// empty (R7, D5).
Transition ioserver(const Sorts& so, const St& s, Mutant mut) {
    const expr tg = so.ctx.constant((so.tag + "ioserver.D").c_str(), so.D);
    const expr i = so.ctx.constant((so.tag + "ioserver.ioserver").c_str(), so.S);
    const expr e = so.ctx.constant((so.tag + "ioserver.emulator").c_str(), so.D);
    const expr ring = so.ctx.int_const((so.tag + "ioserver.ring").c_str());
    const expr x = ds(tg, i);
    Transition t = blank(so, s, "ioserver");
    for (const expr& a : {tg, i, e, ring}) t.args.push_back(a);
    t.scope.push_back({"scope: T and E live (naming no domain: exit 2)", s.live[tg] && s.live[e]});
    t.scope.push_back(not_dying_stmt(s, tg, "T"));
    t.scope.push_back(not_dying_stmt(s, e, "E"));
    if (mut != Mutant::ioserver_over_existing)
        t.scope.push_back({"scope: (T, S) no existing server (exit 2)", !s.srv[x]});
    t.scope.push_back({"scope: 0..511 ring slots (D5; above: exit 2)", 0 <= ring && ring <= 511});
    finish_checks(so, t);
    // The per-bfn queue counts of a server that does not exist are 0 on every reachable state
    // (Init, destroy_finish), and ioserver leaves them; the ring's length is set (INV-INVALIDATE
    // bounds it by the new slots).
    St n = s;
    n.srv = z3::store(s.srv, x, so.ctx.bool_val(true));
    n.emu = z3::store(s.emu, x, e);
    n.rcap = z3::store(s.rcap, x, ring);
    n.rlen = z3::store(s.rlen, x, bv(so, 0, so.C));
    return one_case(std::move(t), n);
}

// `rmrr D bfn=B count=N`, one bfn: the encoding's RMRRs are per bfn, so a range of N is N
// steps (D16). Only before the first call (else exit 2); the encoding states the consequence
// it needs, that D has no explicit entry at bfn (none exists before the first call).
Transition rmrr(const Sorts& so, const St& s, Mutant mut) {
    const expr d = so.ctx.constant((so.tag + "rmrr.D").c_str(), so.D);
    const expr b = so.ctx.constant((so.tag + "rmrr.bfn").c_str(), so.A);
    Transition t = blank(so, s, "rmrr");
    t.args.push_back(d);
    t.args.push_back(b);
    t.scope.push_back({"scope: D live (naming no domain: exit 2)", s.live[d]});
    t.scope.push_back(not_dying_stmt(s, d, "D"));
    if (mut != Mutant::rmrr_over_mapped_entry)
        t.scope.push_back(
            {"scope: before the first call (else exit 2): no explicit entry of D at "
             "bfn",
             s.ekind[da(d, b)] == bv(so, kNone, so.K2)});
    finish_checks(so, t);
    St n = s;
    n.rmrr = z3::store(s.rmrr, da(d, b), so.ctx.bool_val(true));
    return one_case(std::move(t), n);
}

// `xen_gfn D gfn=G`: the lowest free frame becomes Xen's (count 0, not allocated, F7) and backs
// gfn G of D.
Transition xen_gfn(const Sorts& so, const St& s, Mutant mut) {
    const expr d = so.ctx.constant((so.tag + "xen_gfn.D").c_str(), so.D);
    const expr g = so.ctx.constant((so.tag + "xen_gfn.gfn").c_str(), so.A);
    const auto [pick, some, lowest] = lowest_free(so, s, "xen_gfn");
    Transition t = blank(so, s, "xen_gfn");
    t.frame = pick;
    t.args.push_back(d);
    t.args.push_back(g);
    t.scope.push_back({"scope: D live (naming no domain: exit 2)", s.live[d]});
    t.scope.push_back(not_dying_stmt(s, d, "D"));
    t.scope.push_back({"scope: gfn has no frame yet (D9: exit 2)", !s.p2mv[da(d, g)]});
    t.scope.push_back({"scope: a free frame exists (else the run stops, exit 1)", some});
    if (mut != Mutant::xen_gfn_takes_used_frame)
        t.scope.push_back({"scope: mfn is the lowest free frame", lowest});
    finish_checks(so, t);
    St n = s;
    n.fstate = z3::store(s.fstate, pick, bv(so, kXen, so.K2));
    n.owner = z3::store(s.owner, pick, bv(so, 0, so.D));
    n.count = z3::store(s.count, pick, bv(so, 0, so.C));
    n.alloc = z3::store(s.alloc, pick, so.ctx.bool_val(false));
    n.p2mv = z3::store(s.p2mv, da(d, g), so.ctx.bool_val(true));
    n.p2m = z3::store(s.p2m, da(d, g), pick);
    return one_case(std::move(t), n);
}

// `fault iommu_map count=N`: sets the pending count to N (D10: a second one replaces the first).
Transition fault(const Sorts& so, const St& s, Mutant mut) {
    const expr n_ = so.ctx.int_const((so.tag + "fault.count").c_str());
    Transition t = blank(so, s, "fault");
    t.args.push_back(n_);
    t.scope.push_back(
        {"scope: N is 0..2^32-1 (else exit 2)", 0 <= n_ && n_ <= so.ctx.int_val(4294967295U)});
    finish_checks(so, t);
    St n = s;
    n.fault = mut == Mutant::fault_count_off_by_one ? n_ - 1 : n_;
    return one_case(std::move(t), n);
}

}  // namespace

Transition make_transition(const Sorts& so, const St& s, const std::string& name, Mutant mut) {
    if (name == "map_foreign_page") return map_foreign_page(so, s, mut);
    if (name == "unmap_foreign_page") return unmap_foreign_page(so, s, mut);
    if (name == "lookup_foreign_page") return lookup_foreign_page(so, s, mut);
    if (name == "map_page") return map_page(so, s, mut);
    if (name == "unmap_page") return unmap_page(so, s, mut);
    if (name == "balloon") return balloon(so, s, mut);
    if (name == "populate") return populate(so, s, mut);
    if (name == "query_caps") return query_caps(so, s, mut);
    if (name == "drain") return drain(so, s, mut);
    if (name == "deliver") return deliver(so, s, mut);
    if (name == "destroy_begin") return destroy_begin(so, s, mut);
    if (name == "destroy_drop_tuple") return destroy_drop_tuple(so, s, mut);
    if (name == "destroy_drop_local") return destroy_drop_local(so, s, mut);
    if (name == "destroy_finish") return destroy_finish(so, s, mut);
    if (name == "tlb_fill") return tlb_fill(so, s, mut);
    if (name == "flush") return flush(so, s, mut);
    if (name == "put") return put(so, s, mut);
    if (name == "create_domain") return create_domain(so, s, mut);
    if (name == "dm") return dm(so, s, mut);
    if (name == "ioserver") return ioserver(so, s, mut);
    if (name == "rmrr") return rmrr(so, s, mut);
    if (name == "xen_gfn") return xen_gfn(so, s, mut);
    if (name == "fault") return fault(so, s, mut);
    throw std::invalid_argument("no transition " + name);
}

// ---------------------------------------------------------------------------------------------
// Invariants

std::vector<std::string> invariant_names() {
    return {"INV-NO-FREE-WHILE-MAPPED",
            "INV-COUNT",
            "INV-FREE-ZERO",
            "INV-M2B-SET",
            "INV-NO-XEN",
            "INV-PRIV",
            "INV-MAX-COUNT",
            "INV-DEVICE-SAFE",
            "INV-NO-FREE-WHILE-CACHED",
            "AUX-WF",
            "AUX-P2M",
            "AUX-SWAP",
            "AUX-FOREIGN",
            "AUX-CLASS",
            "AUX-HELD",
            "AUX-ORPHAN",
            "AUX-TLB",
            "INV-INVALIDATE",
            "INV-QUOTA"};
}

std::vector<Clause> invariant(const Sorts& so, const St& s, const std::string& name) {
    auto& c = so.ctx;
    const expr f = c.constant("q.f", so.A);
    const expr i = c.constant("q.i", so.C);
    const expr t = c.constant("q.t", so.T);
    const expr cb = c.constant("q.cb", so.DA);
    const expr dg = c.constant("q.dg", so.DA);
    const expr k = c.constant("q.k", so.HK);
    const expr qd = c.constant("q.d", so.D);
    const TupleParts p = parts(so, t);
    const auto [ec, eb] = parts_da(so, cb);
    const expr key = ds(p.d, p.s);
    const expr E = s.temu[t];  // D22: the tuple's recorded emulator
    auto k2 = [&](unsigned v) { return bv(so, v, so.K2); };
    const expr mapped = s.ekind[cb] == k2(kLocal) || s.ekind[cb] == k2(kForeign);
    std::vector<Clause> out;
    if (name == "INV-NO-FREE-WHILE-MAPPED") {
        out.push_back(
            {name + "/tuple",
             forall_p({t}, {{s.m2b[t]}}, z3::implies(s.m2b[t], s.fstate[p.m] != k2(kFree)))});
        out.push_back(
            {name + "/entry", forall_p({cb}, {{s.ekind[cb]}},
                                       z3::implies(mapped, s.fstate[s.emfn[cb]] != k2(kFree)))});
    } else if (name == "INV-COUNT") {
        const expr sum = z3::ite(s.alloc[f], c.int_val(1), c.int_val(0)) + s.nT0[f] + s.nT1[f] +
                         s.nL[f] + s.pend[f];
        out.push_back(
            {name + "/sum: count = allocated + #tuples + #local entries + #deferred (R11)",
             forall_p({f},
                      {{s.count[f]}, {s.nT0[f]}, {s.nT1[f]}, {s.nL[f]}, {s.alloc[f]}, {s.pend[f]}},
                      s.count[f] == sum)});
        out.push_back({name + "/no holder count is negative",
                       forall_p({f}, {{s.nT0[f]}, {s.nT1[f]}, {s.nL[f]}, {s.pend[f]}},
                                s.nT0[f] >= 0 && s.nT1[f] >= 0 && s.nL[f] >= 0 && s.pend[f] >= 0)});
        // The class of a tuple is the ghost tcls (AUX-CLASS ties it to drop_class): the slot
        // clauses then carry no usable() expansion per instance.
        const expr cls = s.tcls[t];
        for (int kk = 0; kk < 2; ++kk) {
            const expr& n = kk ? s.nT1 : s.nT0;
            const expr& slot = kk ? s.slotT1 : s.slotT0;
            const expr in_cls = kk ? cls : !cls;
            const std::string tag = "/tuples class " + std::to_string(kk);
            out.push_back(
                {name + tag + ": every tuple has its slot",
                 forall_p({t}, {{s.m2b[t]}},
                          z3::implies(s.m2b[t] && in_cls, 0 <= s.idxT[t] && s.idxT[t] < n[p.m] &&
                                                              sel2(slot, p.m, s.idxT[t]) == t))});
            // A slot holds the whole tuple (frame included): no index is ever rebuilt by
            // concatenation, so E-matching instances close by congruence.
            const expr tx = sel2(slot, f, i);
            out.push_back(
                {name + tag + ": every slot holds a tuple",
                 forall_p({f, i}, {{sel2(slot, f, i)}},
                          z3::implies(0 <= i && i < n[f], s.m2b[tx] && parts(so, tx).m == f &&
                                                              (kk ? s.tcls[tx] : !s.tcls[tx]) &&
                                                              s.idxT[tx] == i))});
        }
        out.push_back({name + "/locals: every local entry has its slot",
                       forall_p({cb}, {{s.ekind[cb]}},
                                z3::implies(s.ekind[cb] == k2(kLocal),
                                            0 <= s.idxL[cb] && s.idxL[cb] < s.nL[s.emfn[cb]] &&
                                                sel2(s.slotL, s.emfn[cb], s.idxL[cb]) == cb))});
        const expr y = sel2(s.slotL, f, i);
        out.push_back(
            {name + "/locals: every slot holds a local entry",
             forall_p({f, i}, {{sel2(s.slotL, f, i)}},
                      z3::implies(0 <= i && i < s.nL[f],
                                  s.ekind[y] == k2(kLocal) && s.emfn[y] == f && s.idxL[y] == i))});
    } else if (name == "INV-FREE-ZERO") {
        out.push_back(
            {name + "/no count is negative", forall_p({f}, {{s.count[f]}}, s.count[f] >= 0)});
        out.push_back(
            {name + "/not owned: count 0, not allocated",
             forall_p({f}, {{s.fstate[f]}},
                      z3::implies(s.fstate[f] != k2(kOwned), s.count[f] == 0 && !s.alloc[f]))});
        out.push_back({name + "/owned: count not 0 (R8)",
                       forall_p({f}, {{s.fstate[f]}},
                                z3::implies(s.fstate[f] == k2(kOwned), s.count[f] != 0))});
    } else if (name == "INV-M2B-SET") {
        // No duplicate: the M2B is a set by construction (m2b maps a tuple to a Bool).
        const expr eK = s.ekind[da(E, p.b)];
        out.push_back(
            {name + "/a usable emulator's bfn maps the tuple's frame or nothing",
             forall_p({t}, {{s.m2b[t]}},
                      z3::implies(s.m2b[t] && usable(so, s, E),
                                  (eK == k2(kForeign) && s.emfn[da(E, p.b)] == p.m) ||
                                      (eK == k2(kNone) &&
                                       z3::implies(identity_rule(so, s, E, p.b), p.b == p.m))))});
    } else if (name == "INV-NO-XEN") {
        out.push_back(
            {name + "/tuple",
             forall_p({t}, {{s.m2b[t]}}, z3::implies(s.m2b[t], s.fstate[p.m] != k2(kXen)))});
        out.push_back(
            {name + "/entry", forall_p({cb}, {{s.ekind[cb]}},
                                       z3::implies(mapped, s.fstate[s.emfn[cb]] != k2(kXen)))});
        out.push_back(
            {name + "/rmrr", forall_p({cb}, {{s.ekind[cb]}}, z3::implies(mapped, !s.rmrr[cb]))});
    } else if (name == "INV-PRIV") {
        out.push_back(
            {name + "/tuple: but an orphan (D22), its server exists, is served by its emulator, "
                    "and the emulator has privilege",
             forall_p({t}, {{s.m2b[t]}},
                      z3::implies(s.m2b[t] && !s.torph[t],
                                  s.srv[key] && s.emu[key] == E && privileged(so, s, E, p.d)))});
    } else if (name == "INV-MAX-COUNT") {
        out.push_back({name + "/no count exceeds max_count (D19)",
                       forall_p({f}, {{s.count[f]}}, s.count[f] <= s.maxc)});
    } else if (name == "INV-DEVICE-SAFE") {
        // spec v2 (pv-iommu.md), D23, D25: for every key (E, bfn, domid, ioserver) -> mfn of H, E's
        // device view of bfn is E's scratch page, or frame mfn and mfn is not free.
        const KeyParts kp = key_parts(so, k);
        const View v = dma_view(so, s, kp.e, kp.b);
        const expr hm = s.hm[k];
        out.push_back({name + "/a handed bfn reaches E's scratch page or its frame, not free",
                       forall_p({k}, {{s.hk[k]}},
                                z3::implies(s.hk[k], v.scratch || (v.frame && v.mfn == hm &&
                                                                   s.fstate[hm] != k2(kFree))))});
    } else if (name == "INV-NO-FREE-WHILE-CACHED") {
        // R11: no IOTLB caches a translation to a free frame.
        out.push_back({name + "/a cached translation's frame is not free",
                       forall_p({cb, f}, {{sel2(s.tlb, cb, f)}},
                                z3::implies(sel2(s.tlb, cb, f), s.fstate[f] != k2(kFree)))});
    } else if (name == "AUX-WF") {
        out.push_back({name + "/frame state is free, xen or owned",
                       forall_p({f}, {{s.fstate[f]}}, s.fstate[f] != 3)});
        out.push_back({name + "/a frame that is not free is a numbered frame",
                       forall_p({f}, {{s.fstate[f]}},
                                z3::implies(s.fstate[f] != k2(kFree), z3::ult(f, s.nframes)))});
        out.push_back({name + "/DOMID_SELF is no domain", !s.live[ones(so.D)]});
        out.push_back({name + "/max_count is at least 1 (D19)", s.maxc >= 1});
        out.push_back({name + "/pending injected faults are not negative (D10)", s.fault >= 0});
    } else if (name == "AUX-P2M") {
        const expr m = s.p2m[dg];
        const auto [pd, pg] = parts_da(so, dg);
        out.push_back({name + "/a RAM gfn's frame is owned by it, allocated, and knows its gfn",
                       forall_p({dg}, {{s.p2mv[dg]}},
                                z3::implies(s.p2mv[dg] && s.fstate[m] != k2(kXen),
                                            s.fstate[m] == k2(kOwned) && s.alloc[m] &&
                                                s.owner[m] == pd && s.p2mg[m] == pg))});
    } else if (name == "AUX-SWAP") {
        out.push_back({name + "/a swap tuple of a usable emulator has its foreign entry",
                       forall_p({t}, {{s.m2b[t]}},
                                z3::implies(s.m2b[t] && drop_class(so, s, t),
                                            s.ekind[da(E, p.b)] == k2(kForeign) &&
                                                s.emfn[da(E, p.b)] == p.m))});
    } else if (name == "LEMMA-HOLDERS") {
        // Consequences of INV-COUNT and INV-FREE-ZERO (proved once, as "lemma/LEMMA-HOLDERS",
        // then assumed): a frame's count covers its deferred references, and what is left
        // (its holders) is at least its allocation reference plus one per tuple or local
        // entry. They spare each freeing step (balloon: count - 1 == 0? put: count - pend ==
        // 0?) the ghost-slot reasoning.
        const expr held = s.count[f] - s.pend[f];
        out.push_back(
            {name + "/the count covers the deferred references and allocation",
             forall_p({f}, {{s.count[f]}, {s.pend[f]}},
                      s.pend[f] >= 0 && held >= z3::ite(s.alloc[f], c.int_val(1), c.int_val(0)))});
        const expr tm = p.m;
        const expr heldt = s.count[tm] - s.pend[tm];
        out.push_back(
            {name + "/a tuple's frame holds 1 + allocated besides its deferred references",
             forall_p({t}, {{s.m2b[t]}},
                      z3::implies(s.m2b[t],
                                  heldt >= 1 + z3::ite(s.alloc[tm], c.int_val(1), c.int_val(0))))});
        const expr lm = s.emfn[cb];
        const expr heldl = s.count[lm] - s.pend[lm];
        out.push_back(
            {name + "/a local entry's frame holds 1 + allocated besides its deferred references",
             forall_p({cb}, {{s.ekind[cb]}},
                      z3::implies(s.ekind[cb] == k2(kLocal),
                                  heldl >= 1 + z3::ite(s.alloc[lm], c.int_val(1), c.int_val(0))))});
    } else if (name == "AUX-CLASS") {
        out.push_back({name + "/a tuple's ghost class is 1 exactly when a balloon's swap drops it",
                       forall_p({t}, {{s.m2b[t]}},
                                z3::implies(s.m2b[t], s.tcls[t] == drop_class(so, s, t)))});
    } else if (name == "AUX-FOREIGN") {
        const expr qt = c.constant("q.t2", so.T);
        const TupleParts q = parts(so, qt);
        out.push_back({name + "/a foreign entry is held by a tuple of its emulator",
                       forall_p({cb}, {{s.ekind[cb]}},
                                z3::implies(s.ekind[cb] == k2(kForeign),
                                            usable(so, s, ec) &&
                                                exists_p({qt}, {{s.m2b[qt]}},
                                                         s.m2b[qt] && q.m == s.emfn[cb] &&
                                                             q.b == eb && s.temu[qt] == ec)))});
    } else if (name == "AUX-HELD") {
        // What keeps INV-DEVICE-SAFE through the deferred puts and the teardown: a handed bfn
        // whose view is a frame is kept by E's foreign entry there (held by a tuple of E,
        // AUX-FOREIGN), or by the key's own tuple.
        const KeyParts kp = key_parts(so, k);
        const View v = dma_view(so, s, kp.e, kp.b);
        const expr ex = z3::concat(s.hm[k], kp.bds);
        out.push_back(
            {name + "/a handed bfn that reaches a frame is E's foreign entry or its own tuple's",
             forall_p({k}, {{s.hk[k]}},
                      z3::implies(s.hk[k] && v.frame, (usable(so, s, kp.e) &&
                                                       s.ekind[da(kp.e, kp.b)] == k2(kForeign)) ||
                                                          (s.m2b[ex] && s.temu[ex] == kp.e)))});
        out.push_back({name + "/no key of a dying domain (destroy_begin took them)",
                       forall_p({k}, {{s.hk[k]}}, z3::implies(s.hk[k], !s.dying[kp.e]))});
        // INV-M2B-SET without "or nothing": R6 v2's -EBUSY keeps a lookup's 1:1 entry, and R5,
        // R7, R9 remove or re-point a foreign entry only when no tuple of E uses it.
        out.push_back(
            {name + "/a usable emulator's tuple bfn maps its frame: foreign, or 1:1 (bfn == mfn)",
             forall_p(
                 {t}, {{s.m2b[t]}},
                 z3::implies(s.m2b[t] && usable(so, s, E),
                             (s.ekind[da(E, p.b)] == k2(kForeign) && s.emfn[da(E, p.b)] == p.m) ||
                                 (identity_rule(so, s, E, p.b) && p.b == p.m)))});
        out.push_back({name + "/an explicit entry is a usable context's, and never hides a 1:1 one",
                       forall_p({cb}, {{s.ekind[cb]}},
                                z3::implies(s.ekind[cb] != k2(kNone),
                                            usable(so, s, ec) && !identity_cond(so, s, ec, eb)))});
    } else if (name == "AUX-ORPHAN") {
        out.push_back(
            {name + "/an orphan's target is dead or dying (D22)",
             forall_p({t}, {{s.m2b[t]}},
                      z3::implies(s.m2b[t] && s.torph[t], !s.live[p.d] || s.dying[p.d]))});
        // Issue 17, item 4: so that create_domain finds no tuple of a dead emulator (its class,
        // AUX-CLASS, would change with usable(D)). map_foreign_page and lookup make tuples of a
        // usable or privileged, so live, caller; destroy_finish waits for its domain's tuples.
        out.push_back({name + "/a tuple's emulator is live",
                       forall_p({t}, {{s.m2b[t]}}, z3::implies(s.m2b[t], s.live[s.temu[t]]))});
        out.push_back({name + "/a dying domain is live",
                       forall_p({qd}, {{s.dying[qd]}}, z3::implies(s.dying[qd], s.live[qd]))});
    } else if (name == "AUX-TLB") {
        const expr ac = parts_da(so, cb).first;
        out.push_back(
            {name + "/a cached translation is its entry's, or a flush of it is awaited (R11)",
             forall_p({cb, f}, {{sel2(s.tlb, cb, f)}},
                      z3::implies(sel2(s.tlb, cb, f),
                                  (mapped && s.emfn[cb] == f) || sel2(s.await, ac, f)))});
        out.push_back({name + "/an awaited flush has a deferred reference to put",
                       forall_p({qd, f}, {{sel2(s.await, qd, f)}},
                                z3::implies(sel2(s.await, qd, f), s.pend[f] != 0))});
    } else if (name == "INV-INVALIDATE") {
        // Issue 17, item 5 (R7): every invalidation owed to a server and not drained yet (the
        // ghost owe) is still to be delivered, on its ring or on its synchronous channel: none
        // dropped, none twice; and a ring never holds more requests than its slots (2 each).
        const expr y = c.constant("q.y", so.BDS);
        const expr x = c.constant("q.x", so.DS);
        out.push_back({name + "/owed = on the ring + on the synchronous channel + undelivered",
                       forall_p({y}, {{s.owe[y]}, {s.rq[y]}, {s.sq[y]}, {s.pdl[y]}},
                                s.owe[y] == s.rq[y] + s.sq[y] + s.pdl[y])});
        out.push_back({name + "/no request count is negative",
                       forall_p({y}, {{s.rq[y]}, {s.sq[y]}, {s.pdl[y]}},
                                s.rq[y] >= 0 && s.sq[y] >= 0 && s.pdl[y] >= 0)});
        out.push_back({name + "/a ring holds at most its slots, 2 per request",
                       forall_p({x}, {{s.rlen[x]}, {s.rcap[x]}},
                                0 <= s.rlen[x] && 2 * s.rlen[x] <= s.rcap[x])});
    } else if (name == "INV-QUOTA") {
        // D20 (issue 17, item 4): a domain with a quota holds at most its quota (tuples it
        // serves and local entries: the counter, tied to them by conformance).
        out.push_back({name + "/holdings <= quota where a quota is set",
                       forall_p({qd}, {{s.hold[qd]}, {s.quota[qd]}},
                                z3::implies(s.quota[qd] >= 0, s.hold[qd] <= s.quota[qd]))});
    } else {
        throw std::invalid_argument("no invariant " + name);
    }
    return out;
}

std::vector<Clause> all_invariants(const Sorts& so, const St& s) {
    std::vector<Clause> out;
    for (const auto& n : invariant_names())
        for (auto& cl : invariant(so, s, n)) out.push_back(cl);
    return out;
}

std::vector<Clause> initial(const Sorts& so, const St& s) {
    auto& c = so.ctx;
    const expr f = c.constant("i.f", so.A);
    const expr t = c.constant("i.t", so.T);
    const expr cb = c.constant("i.cb", so.DA);
    const expr d = c.constant("i.d", so.D);
    const expr k = c.constant("i.k", so.HK);
    const expr y = c.constant("i.y", so.BDS);
    const expr x = c.constant("i.x", so.DS);
    return {
        {"init: no tuples", forall_p({t}, {{s.m2b[t]}}, !s.m2b[t])},
        {"init: no explicit entries, none removed",
         z3::forall(cb, s.ekind[cb] == 0 && !s.removed[cb])},
        {"init: no ghost holders but allocation, nothing deferred",
         z3::forall(f, s.nT0[f] == 0 && s.nT1[f] == 0 && s.nL[f] == 0 && s.pend[f] == 0)},
        {"init: nothing cached, no flush awaited",
         z3::forall(cb, f, !sel2(s.tlb, cb, f) && z3::forall(d, !sel2(s.await, d, f)))},
        {"init: nothing handed out, no domain dying",
         z3::forall(k, !s.hk[k]) && z3::forall(d, !s.dying[d])},
        // What create, populate and xen_gfn leave (the control plane, before any subop): a
        // frame is free, Xen's (count 0) or a domain's RAM, owned, allocated and holding only
        // that allocation reference (R8: populate); a RAM gfn's frame is its domain's and knows
        // its gfn; DOMID_SELF is no domain (create refuses it); max_count is at least 1 (host,
        // D19); a `fault` statement may have armed faults.
        {"init: a frame is free, Xen's, or owned with only its allocation reference",
         forall_p({f}, {{s.fstate[f]}},
                  s.fstate[f] != 3 && z3::implies(s.fstate[f] != 0, z3::ult(f, s.nframes)) &&
                      z3::ite(s.fstate[f] == bv(so, kOwned, so.K2), s.count[f] == 1 && s.alloc[f],
                              s.count[f] == 0 && !s.alloc[f]))},
        {"init: a RAM gfn's frame is its domain's, allocated, and knows its gfn (populate)",
         forall_p({cb}, {{s.p2mv[cb]}},
                  z3::implies(s.p2mv[cb] && s.fstate[s.p2m[cb]] != bv(so, kXen, so.K2),
                              s.fstate[s.p2m[cb]] == bv(so, kOwned, so.K2) &&
                                  s.owner[s.p2m[cb]] == parts_da(so, cb).first &&
                                  s.p2mg[s.p2m[cb]] == parts_da(so, cb).second))},
        {"init: DOMID_SELF is no domain, max_count at least 1, faults armed or not",
         !s.live[ones(so.D)] && s.maxc >= 1 && s.fault >= 0},
        // Issue 17, item 5: a server is created with empty queues (`ioserver ... ring=N`: any
        // number of slots), and nothing is owed before a balloon.
        {"init: no request queued or owed",
         z3::forall(y, s.rq[y] == 0 && s.sq[y] == 0 && s.pdl[y] == 0 && s.owe[y] == 0)},
        {"init: every ring empty, its slots not negative",
         z3::forall(x, s.rlen[x] == 0 && s.rcap[x] >= 0)},
        // D20: `domain ... quota=N` sets a quota; nothing is held before the first call.
        {"init: no domain holds anything (D20)",
         z3::forall(d, s.hold[d] == 0 && s.quota[d] >= -1) && z3::forall(cb, s.hsw[cb] == 0)},
    };
}

}  // namespace proofs
