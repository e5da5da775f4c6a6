#include "ref/hypervisor.h"

#include <cassert>
#include <vector>

#include "spec/checks.h"

namespace ref {

using namespace spec;

Hypervisor::Hypervisor(const Host& host) { s_.host = host; }

std::unique_ptr<spec::Hypervisor> make(const Host& host) {
    return std::make_unique<Hypervisor>(host);
}

// ---------------------------------------------------------------------------------------------
// Frames and references

std::uint64_t Hypervisor::free_frames() const {
    std::uint64_t used = 0;
    for (const auto& [m, f] : s_.frames) used += f.state != FrameState::free;
    return s_.host.frames - used;
}

std::optional<Mfn> Hypervisor::alloc_frame() {
    // R8: the lowest-numbered free frame. Frames below low_water_ are all in use.
    for (std::uint64_t m = low_water_; m < s_.host.frames; ++m) {
        if (s_.frame(Mfn{m}).state == FrameState::free) {
            low_water_ = m + 1;
            return Mfn{m};
        }
    }
    low_water_ = s_.host.frames;
    return std::nullopt;
}

void Hypervisor::get_ref(Mfn m) {
    s_.frame_log.touch(m);
    Frame& f = s_.frames[m];
    assert(f.state == FrameState::owned && f.count > 0);  // Xen's get_page: owned, count != 0
    ++f.count;
}

void Hypervisor::put_ref(Mfn m) {
    s_.frame_log.touch(m);
    auto it = s_.frames.find(m);
    assert(it != s_.frames.end() && it->second.count > 0);
    if (--it->second.count == 0) {  // R8: freed when the count reaches 0
        assert(!it->second.allocated);
        s_.frames.erase(it);
        if (m.v < low_water_) low_water_ = m.v;
    }
}

// ---------------------------------------------------------------------------------------------
// Tuples

void Hypervisor::drop_tuple(Mfn m, const Tuple& t) {
    s_.frame_log.touch(m);  // its tuples
    auto it = s_.m2b.find(m);
    assert(it != s_.m2b.end() && it->second.contains(t));
    it->second.erase(t);
    if (it->second.empty()) s_.m2b.erase(it);
    put_ref(m);
}

void Hypervisor::scratch_if_unused(DomId e, Bfn b) {
    s_.frame_log.touch_entry(e, b);
    auto& ctx = s_.domains.at(e).iommu;
    auto it = ctx.find(b);
    if (it == ctx.end() || it->second.kind != EntryKind::foreign || s_.claimed(e, b)) return;
    it->second = Entry{Mfn{}, it->second.perms, EntryKind::scratch};  // D7: keeps its perms
}

// ---------------------------------------------------------------------------------------------
// Control plane

bool Hypervisor::create_domain(DomId d, DomainRole role, bool iommu_hw, std::uint64_t ram) {
    if (free_frames() < ram) return false;  // D9
    s_.frame_log.touch_domain(d);
    Domain& dom = s_.domains[d];
    dom.hardware = role == DomainRole::hardware;
    dom.iommu_hw = iommu_hw;
    for (std::uint64_t g = 0; g < ram; ++g) {
        const Mfn m = *alloc_frame();
        s_.frame_log.touch(m);
        s_.frames[m] = Frame{FrameState::owned, d, 1, true};
        dom.p2m[Gfn{g}] = m;
    }
    return true;
}

void Hypervisor::grant_dm(DomId emulator, DomId target) {
    s_.frame_log.touch_domain(emulator);  // INV-PRIV of its tuples
    s_.domains.at(emulator).dm_over.insert(target);
}

void Hypervisor::create_ioserver(DomId target, IoServId id, DomId emulator,
                                 std::uint32_t ring_slots) {
    s_.frame_log.touch_domain(target);  // INV-PRIV of the tuples for target
    s_.frame_log.touch_domain(emulator);
    s_.servers[{target, id}] = IoServer{emulator, ring_slots, {}, {}};
}

void Hypervisor::add_rmrr(DomId d, Bfn first, std::uint64_t count) {
    s_.frame_log.touch_domain(d);  // INV-NO-XEN of its entries
    s_.domains.at(d).rmrr.push_back(Range{first, count});
}

bool Hypervisor::add_xen_gfn(DomId d, Gfn g) {
    const auto m = alloc_frame();
    if (!m) return false;
    s_.frame_log.touch(*m);
    s_.frames[*m] = Frame{FrameState::xen, DomId{}, 0, false};  // F7: count 0, not allocated
    s_.domains.at(d).p2m[g] = *m;
    return true;
}

void Hypervisor::arm_iommu_map_fault(std::uint32_t count) { s_.fault_iommu_map = count; }  // D10

void Hypervisor::set_quota(DomId d, std::uint32_t quota) {
    s_.frame_log.touch_domain(d);    // INV-QUOTA
    s_.domains.at(d).quota = quota;  // D20
}

bool Hypervisor::over_quota(DomId c, std::uint64_t more) const {
    const auto& q = s_.domains.at(c).quota;
    return q && more != 0 && s_.holdings(c) + more > *q;
}

std::optional<Status> Hypervisor::one_more_tuple_refused(DomId c, Mfn m) const {
    if (s_.frame(m).count >= s_.host.max_count) return Status::eoverflow;  // D19: count
    if (over_quota(c, 1)) return Status::enomem;                           // D20: C's quota
    return std::nullopt;
}

bool Hypervisor::iommu_unit_fails(std::uint64_t units) {
    if (s_.fault_iommu_map > 0) {  // D10: armed
        --s_.fault_iommu_map;
        return true;
    }
    // Fault point iommu_map: ref changes nothing before this point, so the unit that fails
    // does not matter here (impl must discard the units it staged before it).
    return faults_ != nullptr && faults_->iommu_map_fails(units).has_value();
}

void Hypervisor::destroy(DomId d) {
    s_.frame_log.touch_domain(d);
    // Sequentially every step ends flushed (R11): a reference a step drops is dropped after
    // the flush that covers it, which no sequential observer can tell from at once.

    // R9 v2 step 1: the servers d serves as emulator, with their pending requests (F11), and
    // every tuple d holds, orphans included: d's IOMMU context dies with d, so no device of d
    // reaches them.
    std::erase_if(s_.servers, [d](const auto& kv) { return kv.second.emulator == d; });
    std::vector<std::pair<Mfn, Tuple>> held;
    for (const auto& [m, tuples] : s_.m2b)
        for (const auto& [t, info] : tuples)
            if (info.emulator == d) held.emplace_back(m, t);
    for (const auto& [m, t] : held) drop_tuple(m, t);

    // R9 v2 step 2 (D12 order): the servers whose target is d, with their pending requests.
    // Their tuples go only where the emulator E is usable and its entry at the bfn is foreign
    // (re-pointed at E's scratch page unless another tuple of E uses it); every other one stays
    // as an orphan with its reference (D22): E's device may still DMA to that frame.
    std::vector<std::pair<DomId, Bfn>> repoint;
    for (auto it = s_.servers.begin(); it != s_.servers.end();) {
        const auto [target, id] = it->first;
        if (target != d) {
            ++it;
            continue;
        }
        const DomId e = it->second.emulator;
        std::vector<std::pair<Mfn, Tuple>> mine;
        for (auto& [m, tuples] : s_.m2b)
            for (auto& [t, info] : tuples)
                if (t.domid == target && t.ioserver == id && !info.orphan) {
                    const auto entry = s_.entry(e, t.bfn);
                    if (s_.usable(e) && entry && entry->kind == EntryKind::foreign)
                        mine.emplace_back(m, t);
                    else {
                        s_.frame_log.touch(m);
                        info.orphan = true;  // R9 v2, F12: stays, with its reference
                    }
                }
        for (const auto& [m, t] : mine) {
            drop_tuple(m, t);
            repoint.emplace_back(e, t.bfn);
        }
        it = s_.servers.erase(it);  // F11: pending requests go with the server
    }
    for (const auto& [e, b] : repoint) scratch_if_unused(e, b);

    // R9 v2 step 3: the P2M, as balloon-out (R7) in ascending gfn order; Xen-backed entries
    // simply go. Only orphans are left on d's frames, and they get no invalidation.
    Domain& dom = s_.domains.at(d);
    while (!dom.p2m.empty()) {
        const auto [g, m] = *dom.p2m.begin();
        if (s_.frame(m).state == FrameState::xen)
            dom.p2m.erase(dom.p2m.begin());
        else
            (void)balloon(d, g);
    }

    // R9 v2 step 4: the IOMMU context; local entries drop their references.
    for (const auto& [b, e] : dom.iommu)
        if (e.kind == EntryKind::local) put_ref(e.mfn);
    s_.domains.erase(d);
    for (auto& [id, other] : s_.domains) other.dm_over.erase(d);  // D8
}

// ---------------------------------------------------------------------------------------------
// Subops

Status Hypervisor::ruled(std::string_view subop, int row, Status st, std::string_view why) {
    if (record_) rulings_.push_back(Ruling{subop, row, st, why});
    return st;
}

Status Hypervisor::flags_row(std::string_view subop, Status st) {
    if (st == Status::einval) return ruled(subop, 1, st, "R1: a reserved flag bit is set");
    return ruled(subop, 2, st, "R2: order above max_order (or above 0 here), or not aligned");
}

// Rows as map_foreign_page's table numbers them (4-7); lookup_foreign_page's are one less.
std::optional<Hypervisor::Refusal> Hypervisor::check_target(DomId c, DomId domid,
                                                            IoServId ioserver) const {
    if (domid == kDomIdSelf || domid == c)  // R3: foreign only
        return Refusal{Status::eperm, 4, "R3: domid is DOMID_SELF or the caller"};
    if (s_.domain(domid) == nullptr)  // R3: live domid
        return Refusal{Status::enxio, 5, "R3: domid is not a live domain"};
    if (!s_.privileged(c, domid))  // R3: privilege
        return Refusal{Status::eperm, 6, "R3: the caller has no privilege over domid"};
    const IoServer* srv = s_.server(domid, ioserver);
    if (srv == nullptr || srv->emulator != c)  // R3: C's server
        return Refusal{Status::enodev, 7, "R3: no server (domid, ioserver) served by the caller"};
    return std::nullopt;
}

Status Hypervisor::query_caps(DomId c, QueryCaps& op) {
    // OUT: map_cap exactly when usable(C); order bits: max_order, 0 when not usable (R2).
    op.flags = s_.usable(c) ? Flags::with_order(s_.host.max_order, IOMMU_QUERY_map_cap) : Flags{};
    return ruled("query_caps", 0, Status::ok,
                 s_.usable(c) ? "usable: map_cap and max_order" : "not usable: flags 0");
}

Status Hypervisor::map_page(DomId c, MapPage& op) {
    constexpr std::string_view me = "map_page";
    if (auto st = check_flags_and_order(op.flags, s_.host, {op.bfn.v, op.gfn.v}, false))
        return flags_row(me, *st);  // R1, R2
    if (!s_.usable(c)) return ruled(me, 3, Status::eperm, "R6, F6: the caller is not usable");
    const std::uint64_t n = frames_of_order(op.flags);
    std::vector<Mfn> mfns;
    for (std::uint64_t i = 0; i < n; ++i) {  // R6, F2: own P2M
        const auto m = s_.p2m(c, Gfn{op.gfn.v + i});
        if (!m) return ruled(me, 4, Status::enxio, "R6, F2: a gfn is not in the caller's P2M");
        mfns.push_back(*m);
    }
    for (Mfn m : mfns)
        if (s_.frame(m).state == FrameState::xen)  // R6: Xen frame
            return ruled(me, 5, Status::eperm, "R6, F2: a gfn is backed by a Xen frame");
    for (const Range& r : s_.domain(c)->rmrr)
        if (r.meets(op.bfn, n))  // R6: RMRR
            return ruled(me, 6, Status::eacces, "R6: the bfn range meets an RMRR of the caller");
    for (std::uint64_t i = 0; i < n; ++i) {  // R6: occupied
        const Bfn b{op.bfn.v + i};
        if (s_.entry(c, b) || s_.claimed(c, b))
            return ruled(me, 7, Status::eexist,
                         "R6, F12: a bfn has an entry (any kind) or is claimed by a tuple");
    }
    for (Mfn m : mfns)
        if (s_.frame(m).count >= s_.host.max_count)  // D19: count
            return ruled(me, 8, Status::eoverflow, "D19: a frame's count is at max_count");
    if (over_quota(c, n))  // D20: C's quota
        return ruled(me, 9, Status::enomem, "D20: the caller's holdings would pass its quota");
    if (iommu_unit_fails(n))  // R6, F9: unit
        return ruled(me, 10, Status::eio, "R6, F9, D10: the IOMMU unit failed (armed fault)");
    auto& ctx = s_.domains.at(c).iommu;
    for (std::uint64_t i = 0; i < n; ++i) {
        s_.frame_log.touch_entry(c, Bfn{op.bfn.v + i});
        ctx[Bfn{op.bfn.v + i}] = Entry{mfns[i], op.flags.perms(), EntryKind::local};
        get_ref(mfns[i]);  // R6: one ref each
    }
    return ruled(me, 0, Status::ok, "R6: local entries made, one reference each");
}

Status Hypervisor::unmap_page(DomId c, UnmapPage& op) {
    constexpr std::string_view me = "unmap_page";
    if (auto st = check_flags_and_order(op.flags, s_.host, {op.bfn.v}, false))
        return flags_row(me, *st);  // R1, R2
    if (!s_.usable(c)) return ruled(me, 3, Status::eperm, "R6, F6: the caller is not usable");
    const std::uint64_t n = frames_of_order(op.flags);
    std::vector<Entry> entries;
    for (std::uint64_t i = 0; i < n; ++i) {  // F10: all present
        const auto e = s_.entry(c, Bfn{op.bfn.v + i});
        if (!e) return ruled(me, 4, Status::enoent, "R6, F10: a bfn has no entry");
        entries.push_back(*e);
    }
    for (const Entry& e : entries)  // R6, F10
        if (e.kind == EntryKind::foreign || e.kind == EntryKind::scratch)
            return ruled(me, 5, Status::eperm, "R6, F10: a bfn has a foreign or scratch entry");
    for (std::uint64_t i = 0; i < n; ++i)  // R6 v2, F10: a bfn a lookup registered
        if (s_.claimed(c, Bfn{op.bfn.v + i}))
            return ruled(me, 6, Status::ebusy, "R6 v2, F10: a bfn is claimed by a tuple");
    Domain& dom = s_.domains.at(c);
    for (std::uint64_t i = 0; i < n; ++i) {
        const Bfn b{op.bfn.v + i};
        s_.frame_log.touch_entry(c, b);
        if (entries[i].kind == EntryKind::identity) {
            dom.removed_identity.insert(b);  // drops nothing
        } else {
            dom.iommu.erase(b);
            put_ref(entries[i].mfn);  // local: drops one
        }
    }
    return ruled(me, 0, Status::ok, "R6: entries removed (identity: no reference; local: one)");
}

Status Hypervisor::map_foreign_page(DomId c, MapForeignPage& op) {
    constexpr std::string_view me = "map_foreign_page";
    if (auto st = check_flags_and_order(op.flags, s_.host, {op.bfn.v, op.gfn.v}, false))
        return flags_row(me, *st);  // R1, R2
    if (!s_.usable(c)) return ruled(me, 3, Status::eperm, "R3: the caller is not usable");
    if (auto no = check_target(c, op.domid, op.ioserver))  // R3: target
        return ruled(me, no->row, no->status, no->why);
    const std::uint64_t n = frames_of_order(op.flags);
    std::vector<Mfn> mfns;
    for (std::uint64_t i = 0; i < n; ++i) {  // R3, F2: gfns
        const auto m = s_.p2m(op.domid, Gfn{op.gfn.v + i});
        if (!m) return ruled(me, 8, Status::enxio, "R3, F2: a gfn is not in domid's P2M");
        mfns.push_back(*m);
    }
    for (Mfn m : mfns)
        if (s_.frame(m).state == FrameState::xen)  // R3: Xen frame
            return ruled(me, 9, Status::eperm, "R3, F2: a gfn is backed by a Xen frame");
    for (const Range& r : s_.domain(c)->rmrr)
        if (r.meets(op.bfn, n))  // R3: RMRR of C
            return ruled(me, 10, Status::eacces, "R3: the bfn range meets an RMRR of the caller");
    for (std::uint64_t i = 0; i < n; ++i) {  // R3, F3: -EEXIST
        const Bfn b{op.bfn.v + i};
        const auto e = s_.entry(c, b);
        if (e && !(e->kind == EntryKind::foreign && e->mfn == mfns[i]))
            return ruled(me, 11, Status::eexist,
                         "R3, F3: a bfn has an entry of another frame or kind");
        if (s_.claimed(c, b, mfns[i]))
            return ruled(me, 11, Status::eexist,
                         "R3, F12: a bfn is claimed by a tuple for another frame");
    }
    std::uint64_t fresh = 0;  // new tuples
    for (std::uint64_t i = 0; i < n; ++i) {
        const auto it = s_.m2b.find(mfns[i]);
        if (it != s_.m2b.end() &&
            it->second.contains(Tuple{Bfn{op.bfn.v + i}, op.domid, op.ioserver}))
            continue;
        ++fresh;
        if (s_.frame(mfns[i]).count >= s_.host.max_count)  // D19
            return ruled(me, 12, Status::eoverflow, "D19: a new tuple's frame is at max_count");
    }
    if (over_quota(c, fresh))  // D20: C's quota
        return ruled(me, 13, Status::enomem, "D20: the caller's holdings would pass its quota");
    if (iommu_unit_fails(n))  // R3, F9: unit
        return ruled(me, 14, Status::eio, "R3, F9, D10: the IOMMU unit failed (armed fault)");
    auto& ctx = s_.domains.at(c).iommu;
    for (std::uint64_t i = 0; i < n; ++i) {
        const Bfn b{op.bfn.v + i};
        s_.frame_log.touch_entry(c, b);
        s_.frame_log.touch(mfns[i]);                                    // its tuples
        ctx[b] = Entry{mfns[i], op.flags.perms(), EntryKind::foreign};  // D3: last perms
        auto& tuples = s_.m2b[mfns[i]];
        const Tuple t{b, op.domid, op.ioserver};
        if (!tuples.contains(t)) {  // R3: new tuple
            tuples[t] = TupleInfo{op.flags.swap_mfn(), c, false};
            get_ref(mfns[i]);  // one ref each
        }
    }
    return ruled(me, 0, Status::ok,  // F3: OUT bfn = bfn
                 fresh == 0 ? "R3: idempotent re-map, no new tuple or reference"
                            : "R3: foreign entries, one new tuple and reference per new frame");
}

Status Hypervisor::lookup_foreign_page(DomId c, LookupForeignPage& op) {
    constexpr std::string_view me = "lookup_foreign_page";
    if (auto st = check_flags_and_order(op.flags, s_.host, {}, true))
        return flags_row(me, *st);                         // R1, R2
    if (auto no = check_target(c, op.domid, op.ioserver))  // R4(R3): target
        return ruled(me, no->row - 1, no->status, no->why);
    const auto m = s_.p2m(op.domid, op.gfn);
    if (!m) return ruled(me, 7, Status::enxio, "R4(R3): gfn is not in domid's P2M");
    if (s_.frame(*m).state == FrameState::xen)  // R4(R3): Xen frame
        return ruled(me, 8, Status::eperm, "R4(R3): gfn is backed by a Xen frame");
    // D19, D20 rows 10 and 11.
    const auto refused = [&](Status st) {
        return st == Status::eoverflow
                   ? ruled(me, 10, st, "D19: a tuple would be added and the count is max_count")
                   : ruled(me, 11, st, "D20: a tuple would pass the caller's quota");
    };
    auto& tuples = s_.m2b[*m];
    if (!s_.usable(c)) {
        if (op.bfn != kBfnInvalid) {  // R4, F4: last
            if (tuples.empty()) s_.m2b.erase(*m);
            return ruled(me, 9, Status::einval,
                         "R4, F4: the caller is not usable and bfn is not BFN_INVALID");
        }
        const Tuple t{Bfn{m->v}, op.domid, op.ioserver};  // bfn = mfn
        const bool fresh = !tuples.contains(t);
        if (fresh) {
            if (const auto st = one_more_tuple_refused(c, *m)) {  // D19, D20
                if (tuples.empty()) s_.m2b.erase(*m);
                return refused(*st);
            }
            s_.frame_log.touch(*m);
            tuples[t] = TupleInfo{false, c, false};  // F4: never swap
            get_ref(*m);
        }
        op.bfn = t.bfn;
        s_.frame_log.touch_entry(c, op.bfn);  // handed out: INV-DEVICE-SAFE there
        return ruled(me, 0, Status::ok,
                     fresh ? "R4: not usable: bfn = mfn, tuple added (+1 reference)"
                           : "R4: not usable: bfn = mfn, the tuple was there");
    }
    for (const auto& [t, info] : tuples) {  // R4: lowest bfn
        if (t.domid == op.domid && t.ioserver == op.ioserver) {
            op.bfn = t.bfn;
            s_.frame_log.touch_entry(c, op.bfn);  // handed out again: INV-DEVICE-SAFE there
            return ruled(me, 0, Status::ok, "R4: the server's tuple's (lowest) bfn, nothing added");
        }
    }
    const auto e = s_.entry(c, Bfn{m->v});
    if (e && e->kind == EntryKind::identity) {                // R4: 1:1 path
        if (const auto st = one_more_tuple_refused(c, *m)) {  // D19, D20
            if (tuples.empty()) s_.m2b.erase(*m);
            return refused(*st);
        }
        s_.frame_log.touch(*m);
        tuples[Tuple{Bfn{m->v}, op.domid, op.ioserver}] = TupleInfo{false, c, false};
        get_ref(*m);  // registers interest
        op.bfn = Bfn{m->v};
        s_.frame_log.touch_entry(c, op.bfn);  // handed out: INV-DEVICE-SAFE there
        return ruled(me, 0, Status::ok, "R4: the 1:1 entry bfn = mfn, tuple added (+1 reference)");
    }
    if (tuples.empty()) s_.m2b.erase(*m);
    return ruled(me, 12, Status::enoent, "R4: no tuple of the server and no 1:1 entry at mfn");
}

Status Hypervisor::unmap_foreign_page(DomId c, UnmapForeignPage& op) {
    constexpr std::string_view me = "unmap_foreign_page";
    if (auto st = check_flags_and_order(op.flags, s_.host, {}, true))
        return flags_row(me, *st);  // R1, R2
    const Tuple t{op.bfn, op.domid, op.ioserver};
    for (const auto& [m, tuples] : s_.m2b) {  // F5: C's own tuple, orphans included (F12)
        const auto it = tuples.find(t);
        if (it == tuples.end() || it->second.emulator != c) continue;
        drop_tuple(m, t);  // R5: tuple and ref (after C's IOTLB flush, R11)
        s_.frame_log.touch_entry(c, op.bfn);
        auto& ctx = s_.domains.at(c).iommu;
        auto e = ctx.find(op.bfn);  // R5: last user?
        if (e != ctx.end() && e->second.kind == EntryKind::foreign && !s_.claimed(c, op.bfn))
            ctx.erase(e);
        return ruled(me, 0, Status::ok, "R5: the caller's tuple and its reference removed");
    }
    s_.frame_log.touch_entry(c, op.bfn);
    auto& ctx = s_.domains.at(c).iommu;
    auto it = ctx.find(op.bfn);
    if (it != ctx.end() && it->second.kind == EntryKind::scratch) {  // R5, F5: scratch
        ctx.erase(it);
        return ruled(me, 0, Status::ok, "R5, F5: no tuple; the scratch entry removed");
    }
    return ruled(me, 3, Status::enoent,  // F5: anything else
                 "R5, F5: no tuple (bfn, domid, ioserver) of the caller and no scratch entry");
}

// ---------------------------------------------------------------------------------------------
// Events

BalloonOutcome Hypervisor::balloon(DomId d, Gfn g) {
    const auto m = s_.p2m(d, g);
    if (!m) return {};                                     // R7: no RAM frame, nothing
    if (s_.frame(*m).state == FrameState::xen) return {};  // F7: Xen frame, entry stays
    s_.domains.at(d).p2m.erase(g);                         // R7: the P2M entry goes
    BalloonOutcome out{*m, 0, 0};

    std::vector<std::pair<Tuple, TupleInfo>> tuples;
    if (auto it = s_.m2b.find(*m); it != s_.m2b.end())
        tuples.assign(it->second.begin(), it->second.end());  // F8: (bfn, domid, ioserver)
    for (const auto& [t, info] : tuples) {                    // R7: one invalidate per tuple
        if (info.orphan) continue;  // R9 v2: an orphan has no server to tell
        IoServer& srv = s_.servers.at({t.domid, t.ioserver});
        // Fault point ring_full: one draw per invalidate, whatever the ring's fill.
        const bool forced_full = faults_ != nullptr && faults_->ring_full();
        if (srv.ring_has_room() && !forced_full) {
            srv.buffered.push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE, t.bfn});
        } else {
            srv.sync.push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE, t.bfn});  // ring full
            ++out.synchronous;
        }
        ++out.invalidates;
    }
    // R7, D13: swap-flagged tuples of usable holders with a foreign entry go at once.
    std::vector<std::pair<DomId, Bfn>> swapped;
    for (const auto& [t, info] : tuples) {
        const DomId e = info.emulator;
        const auto entry = s_.entry(e, t.bfn);
        if (s_.usable(e) && info.swap && entry && entry->kind == EntryKind::foreign) {
            drop_tuple(*m, t);
            swapped.emplace_back(e, t.bfn);
        }
    }
    for (const auto& [e, b] : swapped) scratch_if_unused(e, b);
    s_.frame_log.touch(*m);
    Frame& f = s_.frames.at(*m);  // R7: allocation ref dropped
    f.allocated = false;
    put_ref(*m);
    return out;
}

PopulateOutcome Hypervisor::populate(DomId d, Gfn g) {
    if (s_.p2m(d, g)) return {};   // gfn has a frame: nothing
    const auto m = alloc_frame();  // R8: lowest free frame
    if (!m) return {};
    s_.frame_log.touch(*m);
    s_.frames[*m] = Frame{FrameState::owned, d, 1, true};
    s_.domains.at(d).p2m[g] = *m;
    return {*m};
}

std::vector<IoReq> Hypervisor::drain(DomId target, IoServId id, std::uint32_t max) {
    IoServer& srv = s_.servers.at({target, id});
    std::vector<IoReq> out;
    for (auto* q : {&srv.buffered, &srv.sync}) {  // D11: buffered first
        while (out.size() < max && !q->empty()) {
            out.push_back(q->front());
            q->pop_front();
        }
    }
    return out;
}

}  // namespace ref
