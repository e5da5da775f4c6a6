// impl/frame_cell.cpp: the v2 frame-cell protocol (impl/frame_cell.h has the protocol, its
// linearization points and why).
#include "impl/frame_cell.h"

#include <cassert>
#include <cstdlib>

namespace impl::v2 {

namespace {
constexpr std::uint32_t kNoDesc = 0;
}  // namespace

std::uint64_t& CellCore::writes() {
#ifdef PVIOMMU_RELACY
    // cppcheck-suppress constVariable
    static std::uint64_t w[16];  // written through the reference returned: Relacy's fibers
    return w[rl::thread_index()];
#else
    thread_local std::uint64_t w = 0;  // per thread: no sharing
    return w;
#endif
}

// ---- thread slots and magazines ---------------------------------------------------------------

#ifdef PVIOMMU_RELACY
unsigned CellCore::thread_slot() { return rl::thread_index(); }  // fibers of one OS thread
#else
namespace {
// A slot per live thread, claimed at its first use of any CellCore and released at its exit:
// the index of its magazine in every core. Only one live thread owns a slot, so a magazine is
// touched by one thread at a time; the claim (acquire) and release (release) order a slot's
// next owner after its previous one.
std::atomic<bool> g_slot_used[CellCore::kSlots];
struct SlotClaim {
    unsigned id = 0;
    SlotClaim() {
        for (unsigned i = 0; i < CellCore::kSlots; ++i) {
            bool was = false;
            // acquire: after the previous owner's release below.
            if (g_slot_used[i].compare_exchange_strong(was, true, std::memory_order_acquire)) {
                id = i;
                return;
            }
        }
        std::abort();  // more than kSlots live threads use CellCore: a configuration error
    }
    ~SlotClaim() { g_slot_used[id].store(false, std::memory_order_release); }  // see above
    SlotClaim(const SlotClaim&) = delete;
    SlotClaim& operator=(const SlotClaim&) = delete;
};
}  // namespace
// A trivially constructed thread_local (no guard on each access: the magazine is reached four
// times per op) caches the slot; the claim object, with its destructor, is made once per thread.
unsigned CellCore::thread_slot() {
    constexpr unsigned kUnclaimed = ~0U;
    thread_local unsigned slot = kUnclaimed;
    if (slot == kUnclaimed) [[unlikely]] {
        thread_local SlotClaim claim;
        slot = claim.id;
    }
    return slot;
}
#endif

// A magazine is its thread's own: plain fields. A popped record or descriptor is filled with
// relaxed stores after a release fence (see Pool::pop), whichever way it was popped.
namespace {
template <class Stash, class Pool>
std::uint32_t stash_pop(Stash& s, Pool& pool) {
    if (s.n == 0) return pool.pop();
    fence(std::memory_order_release);  // as Pool::pop's
    return s.ids[--s.n];
}
template <class Stash, class Pool>
void stash_push(Stash& s, Pool& pool, std::uint32_t i) {
    if (s.n == Stash::kCap) {
        pool.push(i);
        return;
    }
    s.ids[s.n++] = i;
}
}  // namespace

std::uint32_t CellCore::pop_rec() { return stash_pop(mags_[thread_slot()].rec, recs_); }
void CellCore::push_rec(std::uint32_t i) { stash_push(mags_[thread_slot()].rec, recs_, i); }
std::uint32_t CellCore::pop_desc() { return stash_pop(mags_[thread_slot()].desc, descs_); }
void CellCore::push_desc(std::uint32_t i) { stash_push(mags_[thread_slot()].desc, descs_, i); }

// ---- pools ------------------------------------------------------------------------------------

template <class Node>
std::uint32_t CellCore::Pool<Node>::pop() {
    // acquire: the pusher's release made the node's `next` (and everything before it) visible.
    std::uint64_t h = head.load(std::memory_order_acquire);
    for (;;) {
        const auto i = static_cast<std::uint32_t>(h);
        if (i == 0) return 0;
        // relaxed: if i is no longer the head (popped and pushed again), the tag moved and the
        // CAS below fails, whatever this read saw.
        const auto nx = static_cast<std::uint32_t>(nodes[i].link().load(std::memory_order_relaxed));
        const std::uint64_t nh = ((h >> 32) + 1) << 32 | nx;
        ++writes();
        // acquire: as the load above (on failure too: h is re-read).
        if (head.compare_exchange_weak(h, nh, std::memory_order_acquire,
                                       std::memory_order_acquire)) {
            // release: the caller fills the node next with relaxed stores; a seqlock reader that
            // reads one of them synchronizes with this fence and then sees the cell (leaf) that
            // owned the node before it moved on (impl/frame_cell.h, "Reads never write").
            fence(std::memory_order_release);
            return i;
        }
    }
}

template <class Node>
void CellCore::Pool<Node>::push(std::uint32_t i) {
    // relaxed: the CAS below compares the whole word (tag included).
    std::uint64_t h = head.load(std::memory_order_relaxed);
    for (;;) {
        // relaxed: published by the CAS's release.
        nodes[i].link().store(static_cast<std::uint32_t>(h), std::memory_order_relaxed);
        const std::uint64_t nh = ((h >> 32) + 1) << 32 | i;
        ++writes();
        // release: the cell (leaf) CAS that retired node i, and next, happen before its reuse.
        if (head.compare_exchange_weak(h, nh, std::memory_order_release, std::memory_order_relaxed))
            return;
    }
}

// ---- construction -----------------------------------------------------------------------------

CellCore::CellCore(const CellConfig& cfg)
    : cfg_(cfg),
      cells_(new Atomic<std::uint64_t>[cfg.frames]),
      p2m_(new Atomic<std::uint64_t>[std::size_t{cfg.doms} * cfg.gfns]),
      leaves_(new Atomic<std::uint64_t>[std::size_t{cfg.doms} * cfg.bfns]) {
    mags_.reset(new Mag[kSlots]);
    recs_.nodes.reset(new Record[cfg.records]);
    recs_.size = cfg.records;
    descs_.nodes.reset(new Desc[cfg.descs]);
    descs_.size = cfg.descs;
    // Every index but 0 free: a chain 1 -> 2 -> ... -> N-1 -> 0 (relaxed: before any thread).
    for (std::uint32_t i = 1; i < cfg.records; ++i)
        recs_.nodes[i].link().store(i + 1 < cfg.records ? i + 1 : 0, std::memory_order_relaxed);
    recs_.head.store(cfg.records > 1 ? 1 : 0, std::memory_order_relaxed);
    for (std::uint32_t i = 1; i < cfg.descs; ++i)
        descs_.nodes[i].link().store(i + 1 < cfg.descs ? i + 1 : 0, std::memory_order_relaxed);
    descs_.head.store(cfg.descs > 1 ? 1 : 0, std::memory_order_relaxed);
}

void CellCore::seed(std::uint32_t m, std::uint16_t d, std::uint64_t g) {
    Snap s;
    s.h = Hdr{1, true, FState::owned, d, 0};
    s.gfn = g;
    const std::uint32_t r = make_record(s);
    assert(r != 0);
    const std::uint64_t c = next_cell(0, r, false);
    // relaxed: the control plane seeds before any data-path thread starts.
    cells_[m].store(c, std::memory_order_relaxed);
    p2m(d, g).store(p2m_value(m, c), std::memory_order_relaxed);
}

// ---- reads ------------------------------------------------------------------------------------

template <class F>
std::uint64_t CellCore::read_cell(std::uint32_t m, F&& f) const {
    for (;;) {
        // acquire: pairs with the CAS (acq_rel) that published the record.
        const std::uint64_t c = cells_[m].load(std::memory_order_acquire);
        const std::uint32_t i = cell_idx(c);
        f(i != 0 ? &recs_.nodes[i] : nullptr);
        // acquire fence: if a field f read saw a refill (after the record left the cell), the
        // refiller's release fence synchronizes with it, and the load below sees the cell moved.
        fence(std::memory_order_acquire);
        // relaxed: ordered by the fence.
        if (cells_[m].load(std::memory_order_relaxed) == c || planted(CellMutant::read_no_validate))
            return c;
    }
}

void CellCore::snap_into(std::uint32_t m, Snap& s) const {
    s.cell = read_cell(m, [&](const Record* r) {
        s.h = Hdr{};
        s.gfn = 0;
        s.n = 0;
        if (r == nullptr) return;
        // relaxed: validated by read_cell (a seqlock read of atomics).
        s.h = unpack(r->hdr.load(std::memory_order_relaxed));
        const std::uint64_t gn = r->gfn_n.load(std::memory_order_relaxed);
        s.gfn = Record::gfn_of(gn);
        s.n = Record::n_of(gn);
        for (std::uint32_t k = 0; k < s.n; ++k) {
            s.hb[k] = r->hb(k);
            s.hw[k] = r->hw[k].load(std::memory_order_relaxed);
        }
    });
}

bool CellCore::read_desc(const Atomic<std::uint64_t>& lf, std::uint64_t iv, std::uint64_t* mfn,
                         std::uint64_t* hb, std::uint64_t* hw, bool* add, std::uint64_t* before,
                         std::uint64_t* after) const {
    const Desc& d = descs_.nodes[intent_desc(iv)];
    // relaxed: a seqlock read, validated by the leaf below (the leaf holds the descriptor's
    // generation, so it never holds iv again once the descriptor is recycled).
    *mfn = d.mfn.load(std::memory_order_relaxed);
    *hb = d.hb.load(std::memory_order_relaxed);
    *hw = d.hw.load(std::memory_order_relaxed);
    *add = d.add.load(std::memory_order_relaxed) != 0;
    *before = d.before.load(std::memory_order_relaxed);
    *after = d.after.load(std::memory_order_relaxed);
    fence(std::memory_order_acquire);  // as in snap()
    return lf.load(std::memory_order_relaxed) == iv && *mfn < cfg_.frames;
}

std::uint64_t CellCore::resolve(const Snap& s, std::uint64_t hb, std::uint64_t hw, bool add,
                                std::uint64_t before, std::uint64_t after) {
    const bool present = s.find(hb, holder_key(hw)) >= 0;
    if (add) return present ? after : before;
    if (present) return before;  // the removal is not (yet) decided
    // Removed: the leaf stays as it was if another holder of the same kind still holds it.
    return s.holds_leaf(holder_emulator(hw), hb, (hw & kHolderLocal) != 0) ? before : after;
}

std::uint64_t CellCore::read_leaf(std::uint16_t c, std::uint64_t b) {
    Atomic<std::uint64_t>& lf = leaf(c, b);
    for (;;) {
        const std::uint64_t e = lf.load(std::memory_order_acquire);  // pairs with the CASes
        if (leaf_code(e) != kLeafIntent) return e;
        if (planted(CellMutant::read_settles)) {
            settle(lf, e, true);
            continue;
        }
        std::uint64_t mfn = 0, hb = 0, hw = 0, before = 0, after = 0;
        bool add = false;
        if (!read_desc(lf, e, &mfn, &hb, &hw, &add, &before, &after)) continue;
        const Snap s = snap(static_cast<std::uint32_t>(mfn));
        // The leaf held e before and after the cell's snapshot: its value at that instant.
        if (lf.load(std::memory_order_acquire) == e) return resolve(s, hb, hw, add, before, after);
    }
}

St CellCore::p2m_read(std::uint16_t d, std::uint64_t g, std::uint32_t* m, Snap* s,
                      std::uint64_t* leaf_value) const {
    const std::uint64_t l1 = p2m(d, g).load(std::memory_order_acquire);  // pairs with the CASes
    *leaf_value = l1;
    if (l1 == 0) return St::enxio;  // absent at this load
    *m = cell_idx(l1) - 1;
    snap_into(*m, *s);
    // The leaf held l1 (a value of one life of the frame, never repeated) across the snapshot:
    // at the snapshot's instant, P2M(d, g) was this frame iff the cell backs (d, g).
    if (p2m(d, g).load(std::memory_order_acquire) != l1) return St::none;
    return p2m_verdict(s->cell, s->h, s->gfn, d, g);
}

St CellCore::p2m_verdict(std::uint64_t c, const Hdr& h, std::uint64_t gfn, std::uint16_t d,
                         std::uint64_t g) {
    if (planted(CellMutant::map_trusts_p2m)) return cell_idx(c) == 0 ? St::enxio : St::ok;
    return cell_backs(c, h, gfn, d, g) ? St::ok : St::enxio;
}

// ---- writes -----------------------------------------------------------------------------------

std::uint32_t CellCore::make_record(const Snap& s) {
    const std::uint32_t r = pop_rec();
    if (r == 0) return 0;
    Record& rec = recs_.nodes[r];
    // relaxed: published by the cell CAS (acq_rel) that installs the record.
    rec.hdr.store(pack(s.h), std::memory_order_relaxed);
    assert(s.n <= kMaxHolders && s.gfn < (std::uint64_t{1} << kNShift));
    rec.gfn_n.store(Record::gfn_n_of(s.gfn, s.n), std::memory_order_relaxed);
    for (std::uint32_t k = 0; k < s.n; k += 2) {
        assert(s.hb[k] <= 0xffffffffU && (k + 1 == s.n || s.hb[k + 1] <= 0xffffffffU));
        rec.hb2[k / 2].store(s.hb[k] | (k + 1 < s.n ? s.hb[k + 1] << 32 : 0),
                             std::memory_order_relaxed);
    }
    for (std::uint32_t k = 0; k < s.n; ++k) rec.hw[k].store(s.hw[k], std::memory_order_relaxed);
    return r;
}

void CellCore::settle(Atomic<std::uint64_t>& lf, std::uint64_t iv, bool helper) {
    std::uint64_t mfn = 0, hb = 0, hw = 0, before = 0, after = 0;
    bool add = false;
    if (!read_desc(lf, iv, &mfn, &hb, &hw, &add, &before, &after)) return;  // settled already
    const auto m = static_cast<std::uint32_t>(mfn);
    if (helper && !planted(CellMutant::settle_no_bump)) {
        // The fence: after this CAS no cell CAS that expects an older value succeeds, so the
        // owner's decision is final (made before it, or never). A free or reserved cell needs
        // none: the owner expects a value with a record, not reserved, which never comes back
        // (and a reserved cell must keep its value: populate's leaf is tagged with it).
        std::uint64_t c = cells_[m].load(std::memory_order_acquire);  // pairs with the CASes
        while (cell_idx(c) != 0 && (c & kReserved) == 0 &&
               !cas(cells_[m], c, next_cell(c, cell_idx(c), false))) {
        }
    }
    settle_decided(lf, iv, m, hb, hw, add, before, after);
}

void CellCore::settle_decided(Atomic<std::uint64_t>& lf, std::uint64_t iv, std::uint32_t m,
                              std::uint64_t hb, std::uint64_t hw, bool add, std::uint64_t before,
                              std::uint64_t after) {
    const std::uint64_t v = resolve(snap(m), hb, hw, add, before, after);
    std::uint64_t exp = iv;
    (void)cas(lf, exp, v);  // fails only if another settler won: same value
}

St CellCore::change_holder(std::uint16_t c, std::uint64_t b, std::uint32_t m, const Snap& s,
                           std::uint64_t expected_leaf, std::uint64_t hw, bool add,
                           std::uint64_t leaf_after) {
    Snap n = s;
    if (add) {
        if (n.n == kMaxHolders) return St::eperm;  // the model's bound (product: a chain)
        n.hb[n.n] = b;
        n.hw[n.n] = hw;
        ++n.n;
        ++n.h.count;
    } else {
        const int at = s.find(b, holder_key(hw));
        assert(at >= 0);
        for (auto k = static_cast<std::uint32_t>(at); k + 1 < n.n; ++k) {
            n.hb[k] = n.hb[k + 1];
            n.hw[k] = n.hw[k + 1];
        }
        --n.n;
        --n.h.count;
        ++n.h.deferred;  // step 5: the reference waits for the flush
    }
    const std::uint32_t d = pop_desc();
    if (d == kNoDesc) return St::none;  // exhausted (only if threads hold them all): retry
    Desc& desc = descs_.nodes[d];
    // relaxed: published by the leaf CAS (acq_rel) below.
    const std::uint64_t gen = desc.gen.load(std::memory_order_relaxed) + 1;
    desc.gen.store(gen, std::memory_order_relaxed);
    desc.mfn.store(m, std::memory_order_relaxed);
    desc.hb.store(b, std::memory_order_relaxed);
    desc.hw.store(hw, std::memory_order_relaxed);
    desc.add.store(add ? 1 : 0, std::memory_order_relaxed);
    desc.before.store(expected_leaf, std::memory_order_relaxed);
    desc.after.store(leaf_after, std::memory_order_relaxed);
    const std::uint64_t iv = leaf_intent(d, gen);
    Atomic<std::uint64_t>& lf = leaf(c, b);
    std::uint64_t e = expected_leaf;
    if (!cas(lf, e, iv)) {
        push_desc(d);
        return St::none;
    }
    const std::uint32_t r = make_record(n);
    bool won = false;
    if (r != 0) {
        std::uint64_t c0 = s.cell;
        won = cas(cells_[m], c0, next_cell(c0, r, false));  // the linearization point
        if (!won)
            push_rec(r);
        else if (cell_idx(s.cell) != 0)
            push_rec(cell_idx(s.cell));
    }
    // The owner settles its own intent: its decision is final (its cell CAS is done), and it
    // knows the descriptor it filled, so it need not read it back (settle's first step).
    settle_decided(lf, iv, m, b, hw, add, expected_leaf, leaf_after);
    push_desc(d);
    return won ? St::ok : St::none;
}

St CellCore::map_page(std::uint16_t c, std::uint64_t b, std::uint64_t g, std::uint8_t perms) {
    for (;;) {
        std::uint32_t m = 0;
        Snap s;
        std::uint64_t l = 0;
        const St st = p2m_read(c, g, &m, &s, &l);
        if (st == St::none) continue;
        if (st == St::enxio) return St::enxio;
        if (s.h.state == FState::xen) return St::eperm;
        const std::uint64_t e = leaf(c, b).load(std::memory_order_acquire);  // pairs with CASes
        if (leaf_code(e) == kLeafIntent) {
            settle(leaf(c, b), e, true);
            continue;
        }
        if (e != 0) {
            // The cell unchanged around the leaf's load: P2M(c, g) was m when it was occupied.
            if (cells_[m].load(std::memory_order_acquire) != s.cell) continue;
            return St::eexist;
        }
        const St r =
            change_holder(c, b, m, s, e, local_holder(c), true, leaf_entry(kLeafLocal, perms, m));
        if (r != St::none) return r;
    }
}

St CellCore::unmap_page(std::uint16_t c, std::uint64_t b, std::uint32_t* deferred_mfn) {
    for (;;) {
        const std::uint64_t e = leaf(c, b).load(std::memory_order_acquire);  // pairs with CASes
        if (leaf_code(e) == kLeafIntent) {
            settle(leaf(c, b), e, true);
            continue;
        }
        if (e == 0) return St::enoent;
        if (leaf_code(e) != kLeafLocal) return St::eperm;
        const auto m = static_cast<std::uint32_t>(leaf_mfn(e));
        const Snap s = snap(m);
        if (leaf(c, b).load(std::memory_order_acquire) != e) continue;
        if (s.find(b, holder_key(local_holder(c))) < 0) continue;  // settled away meanwhile
        const St r = change_holder(c, b, m, s, e, local_holder(c), false, 0);
        if (r == St::ok) *deferred_mfn = m;
        if (r != St::none) return r;
    }
}

St CellCore::map_foreign(std::uint16_t c, std::uint64_t b, std::uint16_t t, std::uint16_t sv,
                         std::uint64_t g, std::uint8_t perms, bool swap) {
    const std::uint64_t hw = foreign_holder(c, t, sv, swap);
    for (;;) {
        std::uint32_t m = 0;
        Snap s;
        std::uint64_t l = 0;
        const St st = p2m_read(t, g, &m, &s, &l);
        if (st == St::none) continue;
        if (st == St::enxio) return St::enxio;
        if (s.h.state == FState::xen) return St::eperm;
        const std::uint64_t e = leaf(c, b).load(std::memory_order_acquire);  // pairs with CASes
        if (leaf_code(e) == kLeafIntent) {
            settle(leaf(c, b), e, true);
            continue;
        }
        const bool same_frame = leaf_code(e) == kLeafForeign && leaf_mfn(e) == m;
        if (s.find(b, holder_key(hw)) >= 0 || (e != 0 && !same_frame)) {
            // Idempotent re-map (the tuple is there) or -EEXIST: decided on the cell, unchanged
            // around the leaf's load.
            if (cells_[m].load(std::memory_order_acquire) != s.cell) continue;
            return s.find(b, holder_key(hw)) >= 0 ? St::ok : St::eexist;
        }
        const St r = change_holder(c, b, m, s, e, hw, true, leaf_entry(kLeafForeign, perms, m));
        if (r != St::none) return r;
    }
}

St CellCore::unmap_foreign(std::uint16_t c, std::uint64_t b, std::uint16_t t, std::uint16_t sv,
                           std::uint32_t* deferred_mfn) {
    const std::uint64_t hw = foreign_holder(c, t, sv, false);
    for (;;) {
        const std::uint64_t e = leaf(c, b).load(std::memory_order_acquire);  // pairs with CASes
        if (leaf_code(e) == kLeafIntent) {
            settle(leaf(c, b), e, true);
            continue;
        }
        if (leaf_code(e) != kLeafForeign) return St::enoent;
        const auto m = static_cast<std::uint32_t>(leaf_mfn(e));
        const Snap s = snap(m);
        if (leaf(c, b).load(std::memory_order_acquire) != e) continue;
        if (s.find(b, holder_key(hw)) < 0) return St::enoent;
        const St r = change_holder(c, b, m, s, e, hw, false, 0);
        if (r == St::ok) *deferred_mfn = m;
        if (r != St::none) return r;
    }
}

St CellCore::lookup(std::uint16_t t, std::uint16_t sv, std::uint64_t g, std::uint64_t* bfn) {
    // p2m_read and the holders' scan in one seqlock read of the record, in place: the hot read
    // of W1 copies no Snap (the same decisions as p2m_read, by p2m_verdict).
    for (;;) {
        const std::uint64_t l1 = p2m(t, g).load(std::memory_order_acquire);  // pairs with CASes
        if (l1 == 0) return St::enxio;                                       // absent at this load
        const std::uint32_t m = cell_idx(l1) - 1;
        Hdr h;
        std::uint64_t gfn = 0, best = 0;
        bool found = false;
        const std::uint64_t c = read_cell(m, [&](const Record* r) {
            h = Hdr{};
            found = false;
            if (r == nullptr) return;
            // relaxed: validated by read_cell (a seqlock read of atomics).
            h = unpack(r->hdr.load(std::memory_order_relaxed));
            const std::uint64_t gn = r->gfn_n.load(std::memory_order_relaxed);
            gfn = Record::gfn_of(gn);
            const std::uint32_t n = Record::n_of(gn);
            for (std::uint32_t k = 0; k < n; ++k) {
                const std::uint64_t hw = r->hw[k].load(std::memory_order_relaxed);
                if ((hw & kHolderLocal) != 0 || holder_domid(hw) != t || holder_ioserver(hw) != sv)
                    continue;
                const std::uint64_t hb = r->hb(k);
                if (!found || hb < best) best = hb;
                found = true;
            }
        });
        // The leaf held l1 across the read: at its instant, P2M(t, g) was m iff m backs (t, g).
        if (p2m(t, g).load(std::memory_order_acquire) != l1) continue;
        if (const St v = p2m_verdict(c, h, gfn, t, g); v != St::ok) return v;
        if (h.state == FState::xen) return St::eperm;
        if (!found) return St::enoent;
        *bfn = best;
        return St::ok;  // the linearization point: the validated read
    }
}

St CellCore::populate(std::uint16_t d, std::uint64_t g, std::uint32_t* got) {
    for (;;) {
        std::uint64_t l = p2m(d, g).load(std::memory_order_acquire);  // pairs with the CASes
        if (l != 0) {
            const std::uint32_t m = cell_idx(l) - 1;
            const Snap s = snap(m);
            if (p2m(d, g).load(std::memory_order_acquire) != l) continue;
            if (s.backs(d, g)) return St::none;  // g has a frame
            if (!s.free() && s.reserved() && l == p2m_value(m, s.cell)) {
                // A populate of (d, g) wrote its leaf and has not un-reserved yet: finish it
                // (its linearization point), then g has a frame.
                std::uint64_t c = s.cell;
                (void)cas(cells_[m], c, next_cell(c, cell_idx(c), false));
                return St::none;
            }
            // A leaf of an ended life (a balloon between its cell CAS and its leaf clear): clear
            // it for the balloon (the value is that life's, so no later life's leaf matches).
            (void)cas(p2m(d, g), l, 0);
            continue;
        }
        // R8: the lowest free frame (the product starts at FrameHint's bound).
        std::uint32_t m = 0;
        std::uint64_t c0 = 0;
        for (; m < cfg_.frames; ++m) {
            c0 = cells_[m].load(std::memory_order_acquire);  // pairs with the CASes
            if (cell_idx(c0) == 0 && (c0 & kReserved) == 0) break;
        }
        if (m == cfg_.frames) return St::none;  // relaxation (b) when racing a free
        Snap n;
        n.h = Hdr{1, true, FState::owned, d, 0};
        n.gfn = g;
        const std::uint32_t r = make_record(n);
        if (r == 0) return St::none;
        const std::uint64_t cr = next_cell(c0, r, true);
        if (!cas(cells_[m], c0, cr)) {
            push_rec(r);
            continue;
        }
        std::uint64_t zero = 0;
        if (!cas(p2m(d, g), zero, p2m_value(m, cr))) {
            // Another populate of (d, g) won, or a stale leaf: undo (nobody else un-reserves a
            // cell whose leaf was never written).
            std::uint64_t c1 = cr;
            const bool undone = cas(cells_[m], c1, next_cell(cr, 0, false));
            assert(undone);
            (void)undone;
            push_rec(r);
            continue;
        }
        std::uint64_t c1 = cr;
        (void)cas(cells_[m], c1, next_cell(cr, r, false));  // fails: a helper un-reserved it
        if (got != nullptr) *got = m;
        return St::ok;
    }
}

St CellCore::balloon(std::uint16_t d, std::uint64_t g, std::uint32_t* mfn,
                     std::uint32_t* deferred_refs, std::uint64_t* announced_hb,
                     std::uint64_t* announced_hw, std::uint32_t* n_announced) {
    for (;;) {
        std::uint32_t m = 0;
        Snap s;
        std::uint64_t l = 0;
        const St st = p2m_read(d, g, &m, &s, &l);
        if (st == St::none) continue;
        if (st == St::enxio) return St::none;           // R7: no RAM frame, nothing
        if (s.h.state == FState::xen) return St::none;  // F7
        // R7, D13: swap-flagged tuples with a foreign entry go: a remove intent on each leaf.
        Snap n = s;
        n.n = 0;
        std::uint32_t descs[kMaxHolders];
        std::uint64_t ivs[kMaxHolders];
        Atomic<std::uint64_t>* lfs[kMaxHolders];
        std::uint32_t swapped = 0;  // intents installed (one per leaf)
        std::uint32_t moved = 0;    // swapped tuples (references deferred): >= swapped
        bool retry = false;
        for (std::uint32_t k = 0; k < s.n && !retry; ++k) {
            const std::uint64_t hw = s.hw[k];
            Atomic<std::uint64_t>& lf = leaf(holder_emulator(hw), s.hb[k]);
            const std::uint64_t e = (hw & (kHolderLocal | kHolderSwap)) == kHolderSwap
                                        ? lf.load(std::memory_order_acquire)  // pairs with CASes
                                        : 0;
            bool own = false;  // another swapped tuple of this leaf put this balloon's intent
            for (std::uint32_t j = 0; j < swapped; ++j) own = own || ivs[j] == e;
            if (own) {
                // Removed by the same cell CAS; the intent's descriptor names the first tuple,
                // and both leave at once, so its decision (and the leaf's value) is shared.
                ++moved;
                continue;
            }
            if (leaf_code(e) == kLeafIntent) {
                settle(lf, e, true);
                retry = true;
                break;
            }
            if (leaf_code(e) != kLeafForeign || leaf_mfn(e) != m) {  // stays (and is announced)
                n.hb[n.n] = s.hb[k];
                n.hw[n.n] = hw;
                ++n.n;
                continue;
            }
            const std::uint32_t di = pop_desc();
            if (di == kNoDesc) {
                retry = true;
                break;
            }
            Desc& desc = descs_.nodes[di];
            // relaxed: published by the leaf CAS below.
            const std::uint64_t gen = desc.gen.load(std::memory_order_relaxed) + 1;
            desc.gen.store(gen, std::memory_order_relaxed);
            desc.mfn.store(m, std::memory_order_relaxed);
            desc.hb.store(s.hb[k], std::memory_order_relaxed);
            desc.hw.store(hw, std::memory_order_relaxed);
            desc.add.store(0, std::memory_order_relaxed);
            desc.before.store(e, std::memory_order_relaxed);
            // R12: re-pointed at the emulator's scratch page, perms kept (D7).
            desc.after.store(leaf_entry(kLeafScratch, static_cast<std::uint8_t>((e >> 5) & 3), 0),
                             std::memory_order_relaxed);
            const std::uint64_t iv = leaf_intent(di, gen);
            std::uint64_t ee = e;
            if (!cas(lf, ee, iv)) {
                push_desc(di);
                retry = true;
                break;
            }
            descs[swapped] = di;
            ivs[swapped] = iv;
            lfs[swapped] = &lf;
            ++swapped;
            ++moved;
        }
        bool won = false;
        std::uint32_t r = 0;
        if (!retry) {
            n.h.allocated = false;  // R7: the allocation reference goes at once
            n.h.count -= 1 + moved;
            n.h.deferred += moved;  // step 5: the swapped tuples' references wait
            const bool frees = n.h.count == 0 && n.h.deferred == 0;
            r = frees ? 0 : make_record(n);
            if (frees || r != 0) {
                std::uint64_t c0 = s.cell;
                won = cas(cells_[m], c0, next_cell(c0, r, false));  // the linearization point
            }
        }
        for (std::uint32_t k = 0; k < swapped; ++k) {
            settle(*lfs[k], ivs[k], false);
            push_desc(descs[k]);
        }
        if (!won) {
            if (r != 0) push_rec(r);
            continue;
        }
        if (cell_idx(s.cell) != 0) push_rec(cell_idx(s.cell));
        std::uint64_t exp = l;
        (void)cas(p2m(d, g), exp, 0);  // fails: a populate cleared it for us
        std::uint32_t na = 0;
        for (std::uint32_t k = 0; k < s.n; ++k) {  // F8: one invalidate per tuple
            if ((s.hw[k] & kHolderLocal) != 0) continue;
            if (announced_hb != nullptr) announced_hb[na] = s.hb[k];
            if (announced_hw != nullptr) announced_hw[na] = s.hw[k];
            ++na;
        }
        if (n_announced != nullptr) *n_announced = na;
        // Steps 6-7 are the caller's: the swapped emulators' IOTLB flushes (impl/iotlb.h), then
        // put_deferred(m, *deferred_refs).
        if (mfn != nullptr) *mfn = m;
        if (deferred_refs != nullptr) *deferred_refs = moved;
        return St::ok;
    }
}

bool CellCore::put_deferred(std::uint32_t m, std::uint32_t k, bool* freed) {
    for (;;) {
        const Snap s = snap(m);
        if (s.free() || s.reserved() || s.h.deferred < k) return false;  // not ours to put
        Snap n = s;
        n.h.deferred -= k;
        bool frees = n.h.count == 0 && n.h.deferred == 0;  // R8: free at 0 and 0
        if (planted(CellMutant::put_ignores_deferred)) frees = n.h.count == 0;
        const std::uint32_t r = frees ? 0 : make_record(n);
        if (!frees && r == 0) continue;
        std::uint64_t c = s.cell;
        if (cas(cells_[m], c, next_cell(c, r, false))) {
            push_rec(cell_idx(s.cell));
            if (freed != nullptr) *freed = frees;
            return true;
        }
        if (r != 0) push_rec(r);
    }
}

}  // namespace impl::v2
