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

using EntryKey = std::pair<DomId, Bfn>;  // (domain, bfn): one entry of a domain's IOMMU context

// The checks of one thing each, shared by the full and the incremental check. The texts of
// violations are built only for violations.
struct Checker {
    const State& s;
    std::vector<Violation>& out;

    void fail(std::string inv, std::string detail) const {
        out.push_back({std::move(inv), std::move(detail)});
    }

    // INV-FREE-ZERO, INV-MAX-COUNT of one stored frame: free frames have count 0 and are not
    // allocated; Xen frames likewise (F7); an owned frame's count is not 0 (R8 frees it at 0).
    void frame(Mfn m, const Frame& f) const {
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
    }

    // INV-COUNT of one frame: count(f) = allocated(f) + #tuples(f) + #local entries(f).
    void count(Mfn m, std::uint64_t references) const {
        const Frame f = s.frame(m);
        if (f.count != references)
            fail("INV-COUNT", "mfn=" + hex(m.v) + " count=" + std::to_string(f.count) +
                                  " but references=" + std::to_string(references));
    }

    // INV-M2B-SET of a frame's tuple set: never empty (no empty inner maps).
    void tuple_set(Mfn m, const std::map<Tuple, TupleInfo>& tuples) const {
        if (tuples.empty()) fail("INV-M2B-SET", "mfn=" + hex(m.v) + " has an empty tuple set");
    }

    // One tuple: INV-NO-FREE-WHILE-MAPPED, INV-NO-XEN, INV-PRIV, INV-M2B-SET.
    void tuple(Mfn m, const Tuple& t, const TupleInfo& info) const {
        const Frame f = s.frame(m);
        const DomId emu = info.emulator;
        const auto where = [&] { return tuple_text(m, t); };
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
                return;
            }
            if (!s.privileged(emu, t.domid))
                fail("INV-PRIV", "tuple " + where() + ": emulator " + std::to_string(emu.v) +
                                     " lacks privilege");
        }
        if (s.usable(emu)) {
            const auto e = s.entry(emu, t.bfn);
            // Nothing, or the tuple's own frame (foreign, or identity for a lookup); never
            // another frame, a local entry or scratch (R7 and R9 re-point only bfns that no
            // tuple uses any more).
            const bool ok =
                !e ||
                ((e->kind == EntryKind::foreign || e->kind == EntryKind::identity) && e->mfn == m);
            if (!ok) fail("INV-M2B-SET", "tuple " + where() + " but " + entry_text(emu, t.bfn, *e));
        }
    }

    // One explicit entry of domain id: INV-NO-FREE-WHILE-MAPPED, INV-NO-XEN (frames and RMRR).
    void entry(DomId id, const Domain& d, Bfn b, const Entry& e) const {
        if (e.kind != EntryKind::local && e.kind != EntryKind::foreign) return;
        const Frame f = s.frame(e.mfn);
        if (f.state == FrameState::free) fail("INV-NO-FREE-WHILE-MAPPED", entry_text(id, b, e));
        if (f.state == FrameState::xen) fail("INV-NO-XEN", entry_text(id, b, e));
        for (const Range& r : d.rmrr)
            if (r.meets(b, 1)) fail("INV-NO-XEN", entry_text(id, b, e) + " lies in an RMRR");
    }

    // INV-QUOTA (D20): domain id holds no more than its quota.
    void quota(DomId id, const Domain& d) const {
        if (!d.quota) return;
        const std::uint64_t n = s.holdings(id);
        if (n > *d.quota)
            fail("INV-QUOTA", "domain " + std::to_string(id.v) + " holds " + std::to_string(n) +
                                  " > quota=" + std::to_string(*d.quota));
    }
};

// Every invariant over the whole state.
std::vector<Violation> check_full(const State& s) {
    std::vector<Violation> out;
    const Checker c{s, out};
    // Expected counts, from what holds references: allocation, tuples, local entries.
    std::map<Mfn, std::uint64_t> refs;
    for (const auto& [m, f] : s.frames)
        if (f.allocated) ++refs[m];
    for (const auto& [m, tuples] : s.m2b) {
        c.tuple_set(m, tuples);
        refs[m] += tuples.size();
    }
    for (const auto& [id, d] : s.domains)
        for (const auto& [b, e] : d.iommu)
            if (e.kind == EntryKind::local) ++refs[e.mfn];
    for (const auto& [m, f] : s.frames) c.frame(m, f);
    for (const auto& [id, d] : s.domains) c.quota(id, d);
    for (const auto& [m, n] : refs) c.count(m, n);
    for (const auto& [m, f] : s.frames)
        if (!refs.contains(m)) c.count(m, 0);
    for (const auto& [m, tuples] : s.m2b)
        for (const auto& [t, info] : tuples) c.tuple(m, t, info);
    for (const auto& [id, d] : s.domains)
        for (const auto& [b, e] : d.iommu) c.entry(id, d, b, e);
    return out;
}

}  // namespace

// The log's records, and the indexes of the state that make a check proportional to what was
// touched: which frames' tuples claim (emulator, bfn), which explicit entries name a frame.
// The indexes describe the state as of the last check; a check first brings them up to date
// from the records (a touched frame's tuples, a touched entry), or rebuilds them when a whole
// domain was touched.
struct FrameLog::Data {
    bool checked = false;  // a full check has been made (and the indexes built)
    std::set<Mfn> touched;
    std::set<EntryKey> entries;
    std::set<DomId> domains;

    std::map<EntryKey, std::set<Mfn>> claims;      // (emulator, bfn) -> frames with such tuples
    std::map<Mfn, std::vector<EntryKey>> claimed;  // the reverse: what a frame's tuples claim
    std::map<Mfn, std::set<EntryKey>> naming;      // frame -> local/foreign entries naming it
    std::map<EntryKey, Mfn> named;                 // the reverse: the frame an entry names

    void forget() {
        touched.clear();
        entries.clear();
        domains.clear();
    }
    void index_tuples(const State& s, Mfn m) {
        if (const auto it = claimed.find(m); it != claimed.end()) {
            for (const EntryKey& k : it->second) {
                const auto c = claims.find(k);  // gone already: two tuples, one key
                if (c == claims.end()) continue;
                c->second.erase(m);
                if (c->second.empty()) claims.erase(c);
            }
            claimed.erase(it);
        }
        const auto it = s.m2b.find(m);
        if (it == s.m2b.end()) return;
        auto& mine = claimed[m];
        for (const auto& [t, info] : it->second) {
            const EntryKey k{info.emulator, t.bfn};
            claims[k].insert(m);
            mine.push_back(k);
        }
    }
    void index_entry(const State& s, const EntryKey& k) {
        if (const auto it = named.find(k); it != named.end()) {
            const auto n = naming.find(it->second);
            n->second.erase(k);
            if (n->second.empty()) naming.erase(n);
            named.erase(it);
        }
        if (const Domain* d = s.domain(k.first)) {
            const auto e = d->iommu.find(k.second);
            if (e != d->iommu.end() &&
                (e->second.kind == EntryKind::local || e->second.kind == EntryKind::foreign)) {
                naming[e->second.mfn].insert(k);
                named[k] = e->second.mfn;
            }
        }
    }
    void rebuild(const State& s) {
        claims.clear();
        claimed.clear();
        naming.clear();
        named.clear();
        for (const auto& [m, tuples] : s.m2b) index_tuples(s, m);
        for (const auto& [id, d] : s.domains)
            for (const auto& [b, e] : d.iommu) index_entry(s, {id, b});
    }
};

namespace {

// What one incremental check covers.
struct Coverage {
    std::set<Mfn> frames;  // single-frame invariants, and the tuples and entries on them
    std::set<std::pair<Mfn, Tuple>> tuples;
    std::set<EntryKey> entries;
    std::set<DomId> quotas;
};

// Brings d's indexes up to date and says what the check after these records covers: the touched
// frames and the frames the touched entries name (before and after); the tuples on those frames
// and those of each touched entry's domain at its bfn; the entries naming those frames and the
// touched entries; the quotas of the domains whose holdings those change; and, for a touched
// domain, every tuple whose emulator or target it is and every entry of its context.
Coverage cover(const State& s, FrameLog::Data& d) {
    Coverage cv;
    for (const EntryKey& k : d.entries) {  // the frames they named before
        cv.entries.insert(k);
        if (const auto it = d.named.find(k); it != d.named.end()) cv.frames.insert(it->second);
    }
    if (!d.domains.empty()) {
        d.rebuild(s);  // a whole domain changed: rare (control plane), costs the mappings
    } else {
        for (const EntryKey& k : d.entries) d.index_entry(s, k);
        for (const Mfn m : d.touched) d.index_tuples(s, m);
    }
    for (const EntryKey& k : d.entries)  // and now
        if (const auto it = d.named.find(k); it != d.named.end()) cv.frames.insert(it->second);
    cv.frames.insert(d.touched.begin(), d.touched.end());
    for (const EntryKey& k : d.entries) {
        cv.quotas.insert(k.first);
        if (const auto it = d.claims.find(k); it != d.claims.end())
            for (const Mfn m : it->second)
                if (const auto tuples = s.m2b.find(m); tuples != s.m2b.end())
                    for (const auto& [t, info] : tuples->second)
                        if (t.bfn == k.second && info.emulator == k.first) cv.tuples.insert({m, t});
    }
    for (const Mfn m : cv.frames) {
        if (const auto it = s.m2b.find(m); it != s.m2b.end())
            for (const auto& [t, info] : it->second) {
                cv.tuples.insert({m, t});
                cv.quotas.insert(info.emulator);
            }
        if (const auto it = d.naming.find(m); it != d.naming.end())
            cv.entries.insert(it->second.begin(), it->second.end());
    }
    for (const DomId id : d.domains) {
        cv.quotas.insert(id);
        if (const Domain* dom = s.domain(id))
            for (const auto& [b, e] : dom->iommu) cv.entries.insert({id, b});
    }
    if (!d.domains.empty())
        for (const auto& [m, tuples] : s.m2b)
            for (const auto& [t, info] : tuples)
                if (d.domains.contains(info.emulator) || d.domains.contains(t.domid))
                    cv.tuples.insert({m, t});
    return cv;
}

std::vector<Violation> check_covered(const State& s, const FrameLog::Data& d, const Coverage& cv) {
    std::vector<Violation> out;
    const Checker c{s, out};
    for (const Mfn m : cv.frames) {
        const auto f = s.frames.find(m);
        if (f != s.frames.end()) c.frame(m, f->second);
        std::uint64_t refs = f != s.frames.end() && f->second.allocated ? 1 : 0;
        if (const auto it = s.m2b.find(m); it != s.m2b.end()) {
            c.tuple_set(m, it->second);
            refs += it->second.size();
        }
        if (const auto it = d.naming.find(m); it != d.naming.end())
            for (const auto& [id, b] : it->second) {
                const auto e = s.entry(id, b);  // as indexed: the log recorded every change
                refs += e && e->kind == EntryKind::local && e->mfn == m;
            }
        c.count(m, refs);
    }
    for (const auto& [m, t] : cv.tuples) c.tuple(m, t, s.m2b.at(m).at(t));
    for (const auto& [id, b] : cv.entries) {
        const Domain* dom = s.domain(id);
        if (dom == nullptr) continue;
        if (const auto e = dom->iommu.find(b); e != dom->iommu.end())
            c.entry(id, *dom, b, e->second);
    }
    for (const DomId id : cv.quotas)
        if (const Domain* dom = s.domain(id)) c.quota(id, *dom);
    return out;
}

// INV-DEVICE-SAFE over every entry of h, or (d given) over those at a touched entry or of a
// touched domain (E's view of a bfn changes only with E's context or E's existence), or whose
// frame or bfn as a frame is covered (the frame's freedom; the identity rule and untranslated
// DMA read the frame at bfn).
std::vector<Violation> device_safe(const State& s, const Handed& h, const FrameLog::Data* d,
                                   const Coverage* cv) {
    std::vector<Violation> out;
    for (const auto& [k, m] : h) {
        if (d != nullptr && !d->domains.contains(k.emulator) &&
            !d->entries.contains({k.emulator, k.bfn}) && !cv->frames.contains(m) &&
            !cv->frames.contains(Mfn{k.bfn.v}))
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

// The check of s (with h's INV-DEVICE-SAFE if given): incremental when the log allows it, full
// otherwise; the log then forgets its records (and, after a full check, rebuilds its indexes).
std::vector<Violation> check(const State& s, const Handed* h, bool force_full) {
    FrameLog::Data* d = s.frame_log.data();
    if (d == nullptr || !d->checked || force_full) {
        auto out = check_full(s);
        if (h != nullptr) {
            auto more = device_safe(s, *h, nullptr, nullptr);
            out.insert(out.end(), more.begin(), more.end());
        }
        if (d != nullptr) d->rebuild(s);
        s.frame_log.checked();
        return out;
    }
    const Coverage cv = cover(s, *d);
    auto out = check_covered(s, *d, cv);
    if (h != nullptr) {
        auto more = device_safe(s, *h, d, &cv);
        out.insert(out.end(), more.begin(), more.end());
    }
    s.frame_log.checked();
    return out;
}

}  // namespace

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
// Before the first check nothing is recorded: that check is a full one anyway (so building a
// world of a million frames logs none of them).
void FrameLog::touch(Mfn m) {
    if (d_ && d_->checked) d_->touched.insert(m);
}
void FrameLog::touch_entry(DomId c, Bfn b) {
    if (d_ && d_->checked) d_->entries.insert({c, b});
}
void FrameLog::touch_domain(DomId d) {
    if (d_ && d_->checked) d_->domains.insert(d);
}
bool FrameLog::armed() const { return d_ != nullptr; }
bool FrameLog::incremental() const { return d_ && d_->checked; }
const std::set<Mfn>& FrameLog::touched() const {
    static const std::set<Mfn> none;
    return d_ ? d_->touched : none;
}
const std::set<EntryKey>& FrameLog::touched_entries() const {
    static const std::set<EntryKey> none;
    return d_ ? d_->entries : none;
}
const std::set<DomId>& FrameLog::touched_domains() const {
    static const std::set<DomId> none;
    return d_ ? d_->domains : none;
}
void FrameLog::checked() const {
    if (!d_) return;
    d_->checked = true;
    d_->forget();
}

std::vector<Violation> check_invariants(const State& s) { return check(s, nullptr, false); }

std::vector<Violation> check_all_invariants(const State& s) { return check(s, nullptr, true); }

std::vector<Violation> check_device_safe(const State& s, const Handed& h) {
    return device_safe(s, h, nullptr, nullptr);
}

std::vector<Violation> check_invariants(const State& s, const Handed& h) {
    return check(s, &h, false);
}

std::vector<Violation> check_all_invariants(const State& s, const Handed& h) {
    return check(s, &h, true);
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
