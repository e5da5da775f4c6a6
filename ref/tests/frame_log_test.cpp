// Incremental invariant checking (spec::FrameLog, ref::Hypervisor::track_frames): after every
// statement, the check that covers only the frames ref recorded must say exactly what the full
// check says; and a violation at a frame the statement touched must be caught by it. The
// statements come from trace's random generator (the same traces `pviommu diff --random` runs),
// run on ref through trace::Runner.
#include <doctest/doctest.h>

#include <algorithm>
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

}  // namespace

TEST_CASE(
    "frame log: the incremental check equals the full one after every statement, and "
    "catches a count broken at any frame the statement touched") {
    std::size_t steps = 0, incremental = 0, planted = 0;
    for (std::uint64_t seed = 1; seed <= 150; ++seed) {
        const trace::Trace t = trace::random_trace(seed, 120);
        ref::Hypervisor h(t.host);
        h.track_frames(true);
        trace::Runner r(t, h, {&h.state(), {}}, trace::Check::none);
        auto& live = const_cast<State&>(h.state());  // NOLINT: planted bugs below
        while (!r.done()) {
            (void)r.step();
            ++steps;
            incremental += h.state().frame_log.incremental() ? 1 : 0;
            INFO("seed " << seed << " step " << steps);
            // Planted bug, every other statement: a frame this statement touched (ref recorded
            // it) left with one reference too many must be caught by the incremental check.
            const auto& touched = h.state().frame_log.touched();
            const auto hit = std::find_if(touched.begin(), touched.end(),
                                          [&](Mfn m) { return live.frames.contains(m); });
            if (steps % 2 == 1 && h.state().frame_log.incremental() && hit != touched.end()) {
                const Mfn m = *hit;
                ++live.frames.at(m).count;
                CHECK(names(check_invariants(h.state()), "INV-COUNT", "mfn=" + hex(m.v) + " "));
                --live.frames.at(m).count;
                ++planted;
                continue;
            }
            const State copy = h.state();  // a copy is unarmed: its check is the full one
            REQUIRE_FALSE(copy.frame_log.armed());
            const auto inc = check_invariants(h.state(), r.handed());
            const auto full = check_invariants(copy, r.handed());
            REQUIRE(texts(inc) == texts(full));
        }
    }
    MESSAGE(steps << " statements, " << incremental << " checked incrementally, " << planted
                  << " planted violations caught");
    CHECK(incremental + 200 > steps);  // all but each trace's first check
    CHECK(planted > 1000);
}

TEST_CASE(
    "frame log: a violation at a frame the statement touched is caught; a full check "
    "catches the rest") {
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
}
