#include "spec/state.h"

#include <sstream>

namespace spec {

std::string hex(std::uint64_t v) {
    std::ostringstream os;
    os << "0x" << std::hex << v;
    return os.str();
}

std::string_view mode_name(IommuMode m) {
    switch (m) {
        case IommuMode::inclusive:
            return "inclusive";
        case IommuMode::strict:
            return "strict";
        case IommuMode::passthrough:
            return "passthrough";
    }
    return "?";
}

std::string_view kind_name(EntryKind k) {
    switch (k) {
        case EntryKind::identity:
            return "identity";
        case EntryKind::local:
            return "local";
        case EntryKind::foreign:
            return "foreign";
        case EntryKind::scratch:
            return "scratch";
    }
    return "?";
}

std::string_view state_name(FrameState s) {
    switch (s) {
        case FrameState::free:
            return "free";
        case FrameState::xen:
            return "xen";
        case FrameState::owned:
            return "owned";
    }
    return "?";
}

Frame State::frame(Mfn m) const {
    auto it = frames.find(m);
    return it == frames.end() ? Frame{} : it->second;
}

const Domain* State::domain(DomId d) const {
    auto it = domains.find(d);
    return it == domains.end() ? nullptr : &it->second;
}

const IoServer* State::server(DomId target, IoServId id) const {
    auto it = servers.find({target, id});
    return it == servers.end() ? nullptr : &it->second;
}

std::optional<DomId> State::hardware_domain() const {
    for (const auto& [id, d] : domains)
        if (d.hardware) return id;
    return std::nullopt;
}

bool State::usable(DomId c) const {
    const Domain* d = domain(c);
    return host.iommu && d != nullptr && d->iommu_hw &&
           !(d->hardware && host.mode == IommuMode::passthrough);
}

bool State::privileged(DomId e, DomId t) const {
    const Domain* d = domain(e);
    if (d == nullptr || domain(t) == nullptr) return false;
    return d->hardware || d->dm_over.contains(t);
}

std::optional<Entry> State::entry(DomId c, Bfn b) const {
    const Domain* d = domain(c);
    if (d == nullptr) return std::nullopt;
    if (auto it = d->iommu.find(b); it != d->iommu.end()) return it->second;
    // D18: the 1:1 map of a usable hardware domain in inclusive mode is a rule.
    if (d->hardware && usable(c) && host.mode == IommuMode::inclusive && b.v < host.frames &&
        frame(Mfn{b.v}).state != FrameState::xen && !d->removed_identity.contains(b))
        return Entry{Mfn{b.v}, IOMMUOP_readable | IOMMUOP_writeable, EntryKind::identity};
    return std::nullopt;
}

std::optional<Mfn> State::p2m(DomId d, Gfn g) const {
    const Domain* dom = domain(d);
    if (dom == nullptr) return std::nullopt;
    auto it = dom->p2m.find(g);
    if (it == dom->p2m.end()) return std::nullopt;
    return it->second;
}

bool State::claimed(DomId c, Bfn b, std::optional<Mfn> except) const {
    for (const auto& [m, tuples] : m2b) {
        if (except && m == *except) continue;
        for (const auto& [t, info] : tuples)
            if (t.bfn == b && info.emulator == c) return true;
    }
    return false;
}

DmaView State::dma(DomId e, Bfn b) const {
    if (usable(e)) {  // F13: through E's IOMMU context
        const auto en = entry(e, b);
        if (!en) return {};
        if (en->kind == EntryKind::scratch) return {DmaView::Kind::scratch, Mfn{}};
        return {DmaView::Kind::frame, en->mfn};
    }
    if (b.v < host.frames) return {DmaView::Kind::frame, Mfn{b.v}};  // F13: no translation
    return {};
}

std::string dma_text(const DmaView& v) {
    switch (v.kind) {
        case DmaView::Kind::fault:
            return "fault";
        case DmaView::Kind::scratch:
            return "scratch";
        case DmaView::Kind::frame:
            break;
    }
    return "mfn=" + hex(v.mfn.v);
}

std::uint64_t State::holdings(DomId e) const {
    std::uint64_t n = 0;
    for (const auto& [m, tuples] : m2b)
        for (const auto& [t, info] : tuples) n += info.emulator == e;  // D22: orphans too
    if (const Domain* d = domain(e))
        for (const auto& [b, en] : d->iommu) n += en.kind == EntryKind::local;
    return n;
}

namespace {

std::string tuple_text(Mfn m, const Tuple& t) {
    return "mfn=" + hex(m.v) + " bfn=" + hex(t.bfn.v) + " domid=" + std::to_string(t.domid.v) +
           " ioserver=" + std::to_string(t.ioserver.v);
}

std::string entry_text(DomId c, Bfn b, const Entry& e) {
    return "iommu " + std::to_string(c.v) + " bfn=" + hex(b.v) + " mfn=" + hex(e.mfn.v) +
           " kind=" + std::string(kind_name(e.kind));
}

}  // namespace

namespace {

// What a check covers: everything (full), or the frames and domains a FrameLog recorded.
struct Scope {
    const std::set<Mfn>* frames = nullptr;  // null: every frame
    const std::set<DomId>* domains = nullptr;
    [[nodiscard]] bool full() const { return frames == nullptr; }
    [[nodiscard]] bool frame(Mfn m) const { return full() || frames->contains(m); }
    [[nodiscard]] bool domain(DomId d) const { return full() || domains->contains(d); }
};

// The checks, over everything or over a scope: the single-frame checks of the frames in scope;
// the tuples whose frame, emulator or target is in scope; the entries whose frame or domain is;
// the quotas always. The texts of violations are built only for violations.
std::vector<Violation> check_state(const State& s, const Scope& sc) {
    std::vector<Violation> out;
    auto fail = [&out](std::string inv, std::string detail) {
        out.push_back({std::move(inv), std::move(detail)});
    };
    // Every non-fresh frame in scope, in mfn order.
    const auto each_frame = [&](const auto& fn) {
        if (sc.full()) {
            for (const auto& [m, f] : s.frames) fn(m, f);
            return;
        }
        for (const Mfn m : *sc.frames) {
            const auto it = s.frames.find(m);
            if (it != s.frames.end()) fn(m, it->second);
        }
    };

    // Expected counts of the frames in scope, from what holds references: allocation, tuples,
    // local entries.
    std::map<Mfn, std::uint64_t> refs;
    each_frame([&refs](Mfn m, const Frame& f) {
        if (f.allocated) ++refs[m];
    });
    const auto count_tuples = [&](Mfn m, const std::map<Tuple, TupleInfo>& tuples) {
        if (tuples.empty()) fail("INV-M2B-SET", "mfn=" + hex(m.v) + " has an empty tuple set");
        refs[m] += tuples.size();
    };
    if (sc.full()) {
        for (const auto& [m, tuples] : s.m2b) count_tuples(m, tuples);
    } else {
        for (const Mfn m : *sc.frames)
            if (const auto it = s.m2b.find(m); it != s.m2b.end()) count_tuples(m, it->second);
    }
    for (const auto& [id, d] : s.domains)
        for (const auto& [b, e] : d.iommu)
            if (e.kind == EntryKind::local && sc.frame(e.mfn)) ++refs[e.mfn];

    // INV-FREE-ZERO: free frames have count 0 and are not allocated; Xen frames likewise (F7);
    // an owned frame's count is not 0 (R8 frees it at 0).
    each_frame([&](Mfn m, const Frame& f) {
        const auto where = [&] {
            return "mfn=" + hex(m.v) + " state=" + std::string(state_name(f.state)) +
                   " count=" + std::to_string(f.count) +
                   " allocated=" + std::to_string(f.allocated);
        };
        if (m.v >= s.host.frames) fail("INV-FREE-ZERO", where() + " is outside the host's frames");
        if (f.state != FrameState::owned && (f.count != 0 || f.allocated))
            fail("INV-FREE-ZERO", where());
        if (f.state == FrameState::owned && f.count == 0) fail("INV-FREE-ZERO", where() + " (R8)");
        if (f.count > s.host.max_count)
            fail("INV-MAX-COUNT",
                 where() + " is above max_count=" + std::to_string(s.host.max_count));
    });
    // INV-QUOTA (D20): no domain holds more than its quota.
    for (const auto& [id, d] : s.domains)
        if (d.quota && s.holdings(id) > *d.quota)
            fail("INV-QUOTA", "domain " + std::to_string(id.v) + " holds " +
                                  std::to_string(s.holdings(id)) +
                                  " > quota=" + std::to_string(*d.quota));
    // INV-COUNT: count(f) = allocated(f) + #tuples(f) + #local entries(f).
    for (const auto& [m, n] : refs) {
        const Frame f = s.frame(m);
        if (f.count != n)
            fail("INV-COUNT", "mfn=" + hex(m.v) + " count=" + std::to_string(f.count) +
                                  " but references=" + std::to_string(n));
    }
    each_frame([&](Mfn m, const Frame& f) {
        if (!refs.contains(m) && f.count != 0)
            fail("INV-COUNT",
                 "mfn=" + hex(m.v) + " count=" + std::to_string(f.count) + " but references=0");
    });

    // Tuples: INV-NO-FREE-WHILE-MAPPED, INV-NO-XEN, INV-PRIV, INV-M2B-SET.
    for (const auto& [m, tuples] : s.m2b) {
        const bool frame_in = sc.frame(m);
        const Frame f = s.frame(m);
        for (const auto& [t, info] : tuples) {
            const DomId emu = info.emulator;
            if (!frame_in && !sc.domain(emu) && !sc.domain(t.domid)) continue;
            const auto where = [&mm = m, &tt = t] { return tuple_text(mm, tt); };
            if (f.state == FrameState::free) fail("INV-NO-FREE-WHILE-MAPPED", "tuple " + where());
            if (f.state == FrameState::xen) fail("INV-NO-XEN", "tuple " + where());
            if (s.domain(emu) == nullptr)
                fail("INV-M2B-SET", "tuple " + where() + ": emulator " + std::to_string(emu.v) +
                                        " is not a live domain (R9 takes its tuples)");
            if (!info.orphan) {  // D22: an orphan's privilege went with its target
                const IoServer* srv = s.server(t.domid, t.ioserver);
                if (srv == nullptr || srv->emulator != emu) {
                    fail("INV-PRIV", "tuple " + where() + " has no ioreq server served by " +
                                         std::to_string(emu.v));
                    continue;
                }
                if (!s.privileged(emu, t.domid))
                    fail("INV-PRIV", "tuple " + where() + ": emulator " + std::to_string(emu.v) +
                                         " lacks privilege");
            }
            if (s.usable(emu)) {
                const auto e = s.entry(emu, t.bfn);
                // Nothing, or the tuple's own frame (foreign, or identity for a lookup);
                // never another frame, a local entry or scratch (R7 and R9 re-point only
                // bfns that no tuple uses any more).
                const bool ok =
                    !e || ((e->kind == EntryKind::foreign || e->kind == EntryKind::identity) &&
                           e->mfn == m);
                if (!ok)
                    fail("INV-M2B-SET", "tuple " + where() + " but " + entry_text(emu, t.bfn, *e));
            }
        }
    }
    // Entries: INV-NO-FREE-WHILE-MAPPED, INV-NO-XEN (frames and RMRR).
    for (const auto& [id, d] : s.domains) {
        const bool domain_in = sc.domain(id);
        for (const auto& [b, e] : d.iommu) {
            if (e.kind != EntryKind::local && e.kind != EntryKind::foreign) continue;
            if (!domain_in && !sc.frame(e.mfn)) continue;
            const Frame f = s.frame(e.mfn);
            if (f.state == FrameState::free) fail("INV-NO-FREE-WHILE-MAPPED", entry_text(id, b, e));
            if (f.state == FrameState::xen) fail("INV-NO-XEN", entry_text(id, b, e));
            for (const Range& r : d.rmrr)
                if (r.meets(b, 1)) fail("INV-NO-XEN", entry_text(id, b, e) + " lies in an RMRR");
        }
    }
    return out;
}

}  // namespace

struct FrameLog::Data {
    bool checked = false;
    std::set<Mfn> touched;
    std::set<DomId> domains;
};
FrameLog::FrameLog() = default;
FrameLog::FrameLog(const FrameLog& /*other*/) {}
FrameLog::FrameLog(FrameLog&& /*other*/) noexcept {}
FrameLog& FrameLog::operator=(const FrameLog& /*other*/) {
    disarm();
    return *this;
}
FrameLog& FrameLog::operator=(FrameLog&& /*other*/) noexcept {
    disarm();
    return *this;
}
FrameLog::~FrameLog() = default;
void FrameLog::arm() { d_ = std::make_unique<Data>(); }
void FrameLog::disarm() { d_.reset(); }
void FrameLog::touch(Mfn m) {
    if (d_) d_->touched.insert(m);
}
void FrameLog::touch_domain(DomId d) {
    if (d_) d_->domains.insert(d);
}
bool FrameLog::armed() const { return d_ != nullptr; }
bool FrameLog::incremental() const { return d_ && d_->checked; }
const std::set<Mfn>& FrameLog::touched() const {
    static const std::set<Mfn> none;
    return d_ ? d_->touched : none;
}
const std::set<DomId>& FrameLog::touched_domains() const {
    static const std::set<DomId> none;
    return d_ ? d_->domains : none;
}
void FrameLog::checked() const {
    if (!d_) return;
    d_->checked = true;
    d_->touched.clear();
    d_->domains.clear();
}

std::vector<Violation> check_invariants(const State& s) {
    const FrameLog& log = s.frame_log;
    const Scope sc = log.incremental() ? Scope{&log.touched(), &log.touched_domains()} : Scope{};
    auto out = check_state(s, sc);
    log.checked();
    return out;
}

std::vector<Violation> check_all_invariants(const State& s) {
    auto out = check_state(s, Scope{});
    s.frame_log.checked();
    return out;
}

namespace {

// INV-DEVICE-SAFE over every entry of h, or (log given) over those whose emulator or frame
// the log recorded.
std::vector<Violation> device_safe(const State& s, const Handed& h, const FrameLog* log) {
    std::vector<Violation> out;
    for (const auto& [k, m] : h) {
        if (log != nullptr && !log->touched_domains().contains(k.emulator) &&
            !log->touched().contains(m))
            continue;
        const DmaView v = s.dma(k.emulator, k.bfn);
        if (v.kind == DmaView::Kind::scratch) continue;  // E's own scratch page (R12)
        if (v.kind == DmaView::Kind::frame && v.mfn == m && s.frame(m).state != FrameState::free)
            continue;
        std::string reach = dma_text(v);
        if (v.kind == DmaView::Kind::frame)
            reach += " (state=" + std::string(state_name(s.frame(v.mfn).state)) + ")";
        out.push_back({"INV-DEVICE-SAFE", "emulator " + std::to_string(k.emulator.v) +
                                              " was handed bfn=" + hex(k.bfn.v) + " for mfn=" +
                                              hex(m.v) + " (domid=" + std::to_string(k.domid.v) +
                                              " ioserver=" + std::to_string(k.ioserver.v) +
                                              "), but a DMA there reaches " + reach});
    }
    return out;
}

}  // namespace

std::vector<Violation> check_device_safe(const State& s, const Handed& h) {
    return device_safe(s, h, nullptr);
}

std::vector<Violation> check_invariants(const State& s, const Handed& h) {
    const FrameLog& log = s.frame_log;
    const bool inc = log.incremental();
    auto out = check_state(s, inc ? Scope{&log.touched(), &log.touched_domains()} : Scope{});
    auto more = device_safe(s, h, inc ? &log : nullptr);
    out.insert(out.end(), more.begin(), more.end());
    log.checked();
    return out;
}

std::string dump(const State& s) {
    std::ostringstream os;
    os << "host iommu=" << (s.host.iommu ? "on" : "off") << " mode=" << mode_name(s.host.mode)
       << " max_order=" << s.host.max_order << " frames=" << s.host.frames;
    if (s.host.max_count != kMaxCountLimit) os << " max_count=" << s.host.max_count;
    os << '\n';
    for (const auto& [id, d] : s.domains) {
        os << "domain " << id.v << (d.hardware ? " hardware" : " guest")
           << (d.iommu_hw ? " iommu_hw" : "");
        if (d.quota) os << " quota=" << *d.quota;
        os << '\n';
        for (DomId t : d.dm_over) os << "dm " << id.v << " over " << t.v << '\n';
        for (const Range& r : d.rmrr)
            os << "rmrr " << id.v << " bfn=" << hex(r.first.v) << " count=" << r.count << '\n';
    }
    for (const auto& [id, d] : s.domains)
        for (const auto& [g, m] : d.p2m)
            os << "p2m " << id.v << " gfn=" << hex(g.v) << " mfn=" << hex(m.v) << '\n';
    for (const auto& [m, f] : s.frames) {
        os << "frame mfn=" << hex(m.v) << " state=" << state_name(f.state);
        if (f.state == FrameState::owned) os << " owner=" << f.owner.v;
        os << " count=" << f.count << " allocated=" << (f.allocated ? 1 : 0) << '\n';
    }
    for (const auto& [id, d] : s.domains) {
        // Explicit entries and removed identity bfns, merged in bfn order.
        auto e = d.iommu.begin();
        auto r = d.removed_identity.begin();
        while (e != d.iommu.end() || r != d.removed_identity.end()) {
            if (r == d.removed_identity.end() || (e != d.iommu.end() && e->first < *r)) {
                os << "iommu " << id.v << " bfn=" << hex(e->first.v);
                if (e->second.kind != EntryKind::scratch) os << " mfn=" << hex(e->second.mfn.v);
                os << " kind=" << kind_name(e->second.kind)
                   << " perms=" << perms_text(e->second.perms) << '\n';
                ++e;
            } else {
                os << "iommu " << id.v << " bfn=" << hex(r->v) << " removed\n";
                ++r;
            }
        }
    }
    for (const auto& [m, tuples] : s.m2b)
        for (const auto& [t, info] : tuples) {
            os << "m2b " << tuple_text(m, t) << " swap=" << (info.swap ? 1 : 0);
            if (info.orphan) os << " orphan emulator=" << info.emulator.v;  // D22
            os << '\n';
        }
    for (const auto& [key, srv] : s.servers) {
        const std::string name =
            std::to_string(key.first.v) + " id=" + std::to_string(key.second.v);
        os << "ioserver " << name << " emulator=" << srv.emulator.v << " ring=" << srv.ring_slots
           << '\n';
        std::size_t i = 0;
        for (const IoReq& q : srv.buffered)
            os << "ioreq " << name << " buffered#" << i++ << " invalidate bfn=" << hex(q.bfn.v)
               << '\n';
        i = 0;
        for (const IoReq& q : srv.sync)
            os << "ioreq " << name << " sync#" << i++ << " invalidate bfn=" << hex(q.bfn.v) << '\n';
    }
    if (s.fault_iommu_map != 0) os << "fault iommu_map pending=" << s.fault_iommu_map << '\n';
    return os.str();
}

}  // namespace spec
