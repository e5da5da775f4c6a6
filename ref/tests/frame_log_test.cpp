// Incremental invariant checking (spec::FrameLog, ref::Hypervisor::track_frames): after every
// statement, the check that covers only the frames ref recorded must say exactly what the full
// check says; and a violation at a frame the statement touched must be caught by it. The
// statements come from trace's random generator (the same traces `pviommu diff --random` runs),
// run on ref through trace::Runner.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ref/hypervisor.h"
#include "spec/state.h"
#include "trace/gen.h"
#include "trace/runner.h"

using namespace spec;

namespace {

std::vector<std::string> texts(const std::vector<Violation>& vs) {
    std::vector<std::string> out;
    out.reserve(vs.size());
    for (const auto& v : vs) out.push_back(v.invariant + ": " + v.detail);
    std::sort(out.begin(), out.end());
    return out;
}

trace::Trace parsed(const std::string& text) {
    auto p = trace::parse("t.trace", text);
    REQUIRE(std::holds_alternative<trace::Trace>(p));
    return std::get<trace::Trace>(p);
}

bool names(const std::vector<Violation>& vs, const std::string& inv, const std::string& what) {
    return std::any_of(vs.begin(), vs.end(), [&](const Violation& v) {
        return v.invariant == inv && v.detail.find(what) != std::string::npos;
    });
}

// A frame below the host's count that no one uses (free, so absent from the state).
std::optional<Mfn> free_frame(const State& s) {
    for (std::uint64_t m = s.host.frames; m-- > 0;)
        if (!s.frames.contains(Mfn{m})) return Mfn{m};
    return std::nullopt;
}

}  // namespace

TEST_CASE(
    "frame log: the incremental check equals the full one after every statement, and "
    "catches a violation planted at any frame, entry, tuple or handed bfn the statement "
    "touched") {
    std::size_t steps = 0, incremental = 0;
    // Planted violations caught, by kind: a count, an entry, a tuple, a handed bfn.
    std::size_t counts = 0, entries = 0, tuples = 0, handed = 0;
    for (std::uint64_t seed = 1; seed <= 300; ++seed) {
        const trace::Trace t = trace::random_trace(seed, 150);
        ref::Hypervisor h(t.host);
        h.track_frames(true);
        trace::Runner r(t, h, {&h.state(), {}}, trace::Check::none);
        auto& live = const_cast<State&>(h.state());  // NOLINT: planted bugs below
        while (!r.done()) {
            (void)r.step();
            ++steps;
            const FrameLog& log = h.state().frame_log;
            incremental += log.incremental() ? 1 : 0;
            INFO("seed " << seed << " step " << steps);
            if (log.incremental() && steps % 2 == 1) {
                // Planted bugs, every other statement, each undone after its check and touched
                // again (the check indexed the planted state): a violation at a place this
                // statement touched (ref recorded it) must be caught by the incremental check.
                const auto& fs = log.touched();
                const auto hit = std::find_if(fs.begin(), fs.end(),
                                              [&](Mfn m) { return live.frames.contains(m); });
                std::optional<std::pair<DomId, Bfn>> entry;  // a touched explicit entry
                for (const auto& [c, b] : log.touched_entries())
                    if (const Domain* d = live.domain(c); d != nullptr && d->iommu.contains(b) &&
                                                          d->iommu.at(b).kind != EntryKind::scratch)
                        entry = {c, b};
                const auto with_tuples =
                    std::find_if(fs.begin(), fs.end(), [&](Mfn m) { return live.m2b.contains(m); });
                const auto spare = free_frame(live);
                switch (steps / 2 % 4) {
                    case 0: {  // a touched frame left with one reference too many
                        if (hit == fs.end()) break;
                        const Mfn m = *hit;  // the check clears the log (and fs)
                        ++live.frames.at(m).count;
                        CHECK(names(check_invariants(h.state()), "INV-COUNT",
                                    "mfn=" + hex(m.v) + " "));
                        --live.frames.at(m).count;
                        ++counts;
                        continue;
                    }
                    case 1: {  // a touched entry re-pointed at a free frame
                        if (!entry || !spare) break;
                        const auto [c, b] = *entry;
                        Entry& e = live.domains.at(c).iommu.at(b);
                        const Mfn was = e.mfn;
                        e.mfn = *spare;
                        CHECK(names(check_invariants(h.state()), "INV-NO-FREE-WHILE-MAPPED",
                                    "iommu " + std::to_string(c.v) + " bfn=" + hex(b.v) + " "));
                        e.mfn = was;
                        live.frame_log.touch_entry(c, b);
                        ++entries;
                        continue;
                    }
                    case 2: {  // a tuple of a touched frame whose emulator is no live domain
                        if (with_tuples == fs.end()) break;
                        const Mfn m = *with_tuples;
                        auto& [tu, info] = *live.m2b.at(m).begin();
                        const DomId was = info.emulator;
                        info.emulator = DomId{999};
                        CHECK(names(check_invariants(h.state()), "INV-M2B-SET",
                                    "emulator 999 is not a live domain"));
                        info.emulator = was;
                        live.frame_log.touch(m);
                        ++tuples;
                        continue;
                    }
                    default: {  // a touched entry's bfn handed out for another frame
                        if (!entry || !spare) break;
                        const auto [c, b] = *entry;
                        Handed more = r.handed();
                        more[{c, b, DomId{777}, IoServId{0}}] = *spare;
                        CHECK(names(check_invariants(h.state(), more), "INV-DEVICE-SAFE",
                                    "emulator " + std::to_string(c.v) + " was handed bfn=" +
                                        hex(b.v) + " for mfn=" + hex(spare->v)));
                        ++handed;
                        continue;
                    }
                }
            }
            const State copy = h.state();  // a copy is unarmed: its check is the full one
            REQUIRE_FALSE(copy.frame_log.armed());
            const auto inc = check_invariants(h.state(), r.handed());
            const auto full = check_invariants(copy, r.handed());
            REQUIRE(texts(inc) == texts(full));
        }
    }
    MESSAGE(steps << " statements, " << incremental << " checked incrementally; planted and "
                  << "caught: " << counts << " counts, " << entries << " entries, " << tuples
                  << " tuples, " << handed << " handed bfns");
    CHECK(incremental + 400 > steps);  // all but each trace's first check
    CHECK(counts > 500);
    CHECK(entries > 100);
    CHECK(tuples > 100);
    CHECK(handed > 100);
}

TEST_CASE(
    "frame log: a violation at a frame the statement touched is caught; a full check "
    "catches the rest (frames and entries no statement touched)") {
    const trace::Trace t = parsed(
        "host frames=4096\n"
        "domain 0 hardware iommu_hw ram=2000\n"
        "domain 1 guest ram=4\n"
        "ioserver 1 id=0 emulator=0\n"
        "call 0 map_foreign_page bfn=0x1000 gfn=2 domid=1 ioserver=0 flags=rw\n");
    ref::Hypervisor h(t.host);
    h.track_frames(true);
    trace::Runner r(t, h, {&h.state(), {}}, trace::Check::none);
    while (!r.done()) {
        (void)r.step();
        if (!r.done()) REQUIRE(check_invariants(h.state()).empty());
    }
    // After the map: guest 1's gfn 2 is mfn 2000 + 2 (dom0 took 0..1999); the map touched it
    // only (one reference more), not dom0's 2,000 frames.
    const Mfn m{2002};
    REQUIRE(h.state().frame_log.incremental());
    CHECK(h.state().frame_log.touched() == std::set<Mfn>{m});

    // Planted bug 1: the statement left the frame it touched with a wrong count.
    auto& live = const_cast<State&>(h.state());  // NOLINT(cppcoreguidelines-pro-type-const-cast)
    live.frames.at(m).count += 5;
    CHECK(names(check_invariants(h.state()), "INV-COUNT", "mfn=0x7d2"));

    // Planted bug 2: a frame no statement touched (dom0's mfn 7, no mapping names it): the
    // incremental check does not look at it, by design; the full check (pviommu run's last)
    // does.
    live.frames.at(m).count -= 5;
    live.frames.at(Mfn{7}).count = 3;
    CHECK(check_invariants(h.state()).empty());
    CHECK(names(check_all_invariants(h.state()), "INV-COUNT", "mfn=0x7"));

    // Planted bug 3: an entry no statement touched (dom0's context, bfn 0x2000) naming a free
    // frame: missed by the incremental check, caught by the full one.
    live.frames.at(Mfn{7}).count = 1;
    REQUIRE(check_all_invariants(h.state()).empty());
    live.domains.at(DomId{0}).iommu[Bfn{0x2000}] = Entry{Mfn{4000}, 3, EntryKind::foreign};
    CHECK(check_invariants(h.state()).empty());
    CHECK(names(check_all_invariants(h.state()), "INV-NO-FREE-WHILE-MAPPED",
                "iommu 0 bfn=0x2000 mfn=0xfa0"));

    // Planted bug 4: what the device was handed (H) disagrees with its view at a place no
    // statement touched (dom0's bfn 0x1000, handed as mfn 7, reaches mfn 0x7d2): missed by the
    // incremental INV-DEVICE-SAFE, caught by the full one with H (pviommu run's last check).
    live.domains.at(DomId{0}).iommu.erase(Bfn{0x2000});
    REQUIRE(check_all_invariants(h.state(), r.handed()).empty());
    Handed handed = r.handed();
    handed[HandedKey{DomId{0}, Bfn{0x1000}, DomId{1}, IoServId{0}}] = Mfn{7};
    CHECK(check_invariants(h.state(), handed).empty());
    CHECK(names(check_all_invariants(h.state(), handed), "INV-DEVICE-SAFE", "bfn=0x1000"));
}
