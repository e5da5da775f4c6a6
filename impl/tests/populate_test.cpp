// populate's hint (impl/frame_hint.h; issue 15, bug 3): a free at or above the hint, made while
// a populate's scan is parked past that frame, must not be lost. Deterministic: a FaultPlan hook
// parks the scan at stall.populate_scan (it has passed frame 1 and seen frame 2 free) while
// another thread balloons frame 1 out; then a sequential populate, with no free racing it, must
// take frame 1, the lowest free one (R8). Before the fix (and with planted bug
// populate-hint-no-generation) the parked populate raised the hint over frame 1: the next
// populate took a higher frame, or reported none free while frame 1 was.
#include <doctest/doctest.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "impl/hypervisor.h"
#include "impl/mutants.h"

using namespace spec;

namespace {

struct Outcome {
    std::optional<Mfn> parked;  // the populate whose scan was parked
    std::optional<Mfn> after;   // the sequential populate after it
    bool hook_ran = false;
    bool frame1_free = false;  // before the sequential populate
};

// frames: 3 (the symptom: "none free" while frame 1 is) or more (a higher frame taken).
Outcome lost_free(std::uint64_t frames) {
    Host h;
    h.frames = frames;
    auto hv = impl::make(h);
    auto* ih = dynamic_cast<impl::Hypervisor*>(hv.get());
    REQUIRE(ih != nullptr);
    // Guest 1: gfn g -> mfn g for g < 3; the rest of the frames free.
    REQUIRE(hv->create_domain(DomId{1}, DomainRole::guest, false, 3));
    REQUIRE(hv->balloon(DomId{1}, Gfn{0}).mfn == Mfn{0});
    REQUIRE(hv->balloon(DomId{1}, Gfn{2}).mfn == Mfn{2});
    // Takes frame 0; the hint is now 1, frame 1 taken, frame 2 free.
    REQUIRE(hv->populate(DomId{1}, Gfn{10}).mfn == Mfn{0});

    Outcome out;
    auto plan = std::make_shared<FaultPlan>(1);
    std::atomic<bool> armed{true};
    plan->on_stall([&](FaultPoint p) {
        // The parked populate has scanned past frame 1 (taken) and seen frame 2 free: another
        // thread frees frame 1 now, at the hint, and returns before the scan goes on.
        if (p != FaultPoint::stall_populate_scan || !armed.exchange(false)) return;
        std::thread other([&] { (void)hv->balloon(DomId{1}, Gfn{1}); });
        other.join();
        out.hook_ran = true;
    });
    hv->set_fault_plan(plan);
    out.parked = hv->populate(DomId{1}, Gfn{11}).mfn;
    hv->set_fault_plan(nullptr);
    out.frame1_free = ih->frame_view(Mfn{1}).state == FrameState::free;
    out.after = hv->populate(DomId{1}, Gfn{12}).mfn;  // no free races it: the lowest
    return out;
}

}  // namespace

TEST_CASE("populate: a free behind a parked scan is not lost (issue 15 bug 3)") {
    for (const std::uint64_t frames : {3, 4, 16}) {
        CAPTURE(frames);
        const Outcome o = lost_free(frames);
        REQUIRE(o.hook_ran);
        CHECK(o.parked == Mfn{2});  // it saw frame 2 free: relaxation (b) lets it take it
        REQUIRE(o.frame1_free);
        CHECK_MESSAGE(o.after == Mfn{1},  // R8: the lowest free frame
                      "frame 1 is free, the next populate took "
                          << (o.after ? std::to_string(o.after->v) : std::string("none")));
    }
    impl::epoch_quiesce();
}

TEST_CASE("populate: planted bug populate-hint-no-generation is caught (mutants build)") {
    if (!impl::mutants_compiled()) {
        MESSAGE("this build carries no mutants (-DPVIOMMU_MUTANTS=ON): nothing to check");
        return;
    }
    int id = 0;
    for (const auto& m : impl::mutants())
        if (m.name == "populate-hint-no-generation") id = m.id;
    REQUIRE(id != 0);
    REQUIRE(impl::select_mutant(id));
    const Outcome none = lost_free(3);
    const Outcome higher = lost_free(4);
    impl::select_mutant(0);
    MESSAGE("populate-hint-no-generation: frames=3: the next populate got "
            << (none.after ? std::to_string(none.after->v) : "none") << "; frames=4: it got "
            << (higher.after ? std::to_string(higher.after->v) : "none")
            << "; frame 1 was free both times");
    CHECK(none.frame1_free);
    CHECK(none.after == std::nullopt);  // "no free frame" while frame 1 is free
    CHECK(higher.frame1_free);
    CHECK(higher.after == Mfn{3});  // a higher frame while frame 1 is free
    impl::epoch_quiesce();
}
