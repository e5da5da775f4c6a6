// spec::check_invariants must catch each planted violation (a checker that cannot fail proves
// nothing), and the canonical dump is stable text.
#include "spec/state.h"

#include <doctest/doctest.h>

#include <algorithm>

using namespace spec;

namespace {

// A small consistent world: hardware domain 0 (usable), guest 1 with two frames, server (1,0)
// served by 0, a foreign mapping of guest frame 0x11 at bfn 0x1000 with its tuple, and a local
// entry of dom0's own frame 0x0.
State world() {
    State s;
    s.host.frames = 64;
    Domain& d0 = s.domains[DomId{0}];
    d0.hardware = true;
    d0.iommu_hw = true;
    d0.p2m[Gfn{0}] = Mfn{0};
    d0.iommu[Bfn{0x2000}] = Entry{Mfn{0}, 3, EntryKind::local};
    Domain& d1 = s.domains[DomId{1}];
    d1.p2m[Gfn{0}] = Mfn{0x10};
    d1.p2m[Gfn{1}] = Mfn{0x11};
    s.frames[Mfn{0}] = Frame{FrameState::owned, DomId{0}, 2, true};
    s.frames[Mfn{0x10}] = Frame{FrameState::owned, DomId{1}, 1, true};
    s.frames[Mfn{0x11}] = Frame{FrameState::owned, DomId{1}, 2, true};
    s.servers[{DomId{1}, IoServId{0}}] = IoServer{DomId{0}, 511, {}, {}};
    d0.iommu[Bfn{0x1000}] = Entry{Mfn{0x11}, 3, EntryKind::foreign};
    s.m2b[Mfn{0x11}][Tuple{Bfn{0x1000}, DomId{1}, IoServId{0}}] = TupleInfo{false};
    return s;
}

bool names(const std::vector<Violation>& vs, const std::string& inv) {
    return std::any_of(vs.begin(), vs.end(),
                       [&](const Violation& v) { return v.invariant == inv; });
}

}  // namespace

TEST_CASE("invariants: the consistent world has none") { CHECK(check_invariants(world()).empty()); }

TEST_CASE("invariants: each planted violation is caught and named") {
    SUBCASE("INV-COUNT: a count off by one") {
        State s = world();
        s.frames[Mfn{0x11}].count = 3;
        CHECK(names(check_invariants(s), "INV-COUNT"));
    }
    SUBCASE("INV-COUNT: a tuple without its reference") {
        State s = world();
        s.m2b[Mfn{0x10}][Tuple{Bfn{0x10}, DomId{1}, IoServId{0}}] = TupleInfo{};
        CHECK(names(check_invariants(s), "INV-COUNT"));
    }
    SUBCASE("INV-NO-FREE-WHILE-MAPPED: frame freed under a tuple and a foreign entry") {
        State s = world();
        s.frames.erase(Mfn{0x11});
        s.domains[DomId{1}].p2m.erase(Gfn{1});
        const auto vs = check_invariants(s);
        CHECK(names(vs, "INV-NO-FREE-WHILE-MAPPED"));
    }
    SUBCASE("INV-NO-FREE-WHILE-MAPPED: frame freed under a local entry") {
        State s = world();
        s.frames.erase(Mfn{0});
        s.domains[DomId{0}].p2m.erase(Gfn{0});
        CHECK(names(check_invariants(s), "INV-NO-FREE-WHILE-MAPPED"));
    }
    SUBCASE("INV-FREE-ZERO: an owned frame at count 0, a free frame with a count") {
        State s = world();
        s.frames[Mfn{0x20}] = Frame{FrameState::owned, DomId{1}, 0, false};
        CHECK(names(check_invariants(s), "INV-FREE-ZERO"));
        s = world();
        s.frames[Mfn{0x21}] = Frame{FrameState::free, DomId{}, 1, false};
        CHECK(names(check_invariants(s), "INV-FREE-ZERO"));
        s = world();
        s.frames[Mfn{0x22}] = Frame{FrameState::xen, DomId{}, 0, true};
        CHECK(names(check_invariants(s), "INV-FREE-ZERO"));
    }
    SUBCASE("INV-M2B-SET: a tuple whose bfn maps another frame") {
        State s = world();
        s.domains[DomId{0}].iommu[Bfn{0x1000}].mfn = Mfn{0x10};
        CHECK(names(check_invariants(s), "INV-M2B-SET"));
    }
    SUBCASE("INV-M2B-SET: a tuple on a scratch entry") {
        State s = world();
        s.domains[DomId{0}].iommu[Bfn{0x1000}].kind = EntryKind::scratch;
        CHECK(names(check_invariants(s), "INV-M2B-SET"));
    }
    SUBCASE("INV-NO-XEN: a tuple and an entry on a Xen frame") {
        State s = world();
        s.frames[Mfn{0x11}] = Frame{FrameState::xen, DomId{}, 0, false};
        CHECK(names(check_invariants(s), "INV-NO-XEN"));
    }
    SUBCASE("INV-NO-XEN: a local entry inside an RMRR") {
        State s = world();
        s.domains[DomId{0}].rmrr.push_back(Range{Bfn{0x1ffe}, 4});
        CHECK(names(check_invariants(s), "INV-NO-XEN"));
    }
    SUBCASE("INV-PRIV: the emulator lost its privilege, or the server is gone") {
        State s = world();
        s.servers[{DomId{1}, IoServId{0}}].emulator = DomId{1};  // a guest over itself? no dm
        s.domains[DomId{1}].iommu_hw = false;
        CHECK(names(check_invariants(s), "INV-PRIV"));
        s = world();
        s.servers.clear();
        CHECK(names(check_invariants(s), "INV-PRIV"));
    }
}

TEST_CASE("usable, privilege and the computed 1:1 map (D18)") {
    State s = world();
    CHECK(s.usable(DomId{0}));
    CHECK_FALSE(s.usable(DomId{1}));
    CHECK(s.privileged(DomId{0}, DomId{1}));
    CHECK_FALSE(s.privileged(DomId{1}, DomId{0}));
    const auto e = s.entry(DomId{0}, Bfn{0x10});
    REQUIRE(e.has_value());
    CHECK(e->kind == EntryKind::identity);
    CHECK(e->mfn == Mfn{0x10});
    CHECK_FALSE(s.entry(DomId{0}, Bfn{64}).has_value());  // beyond the host's frames
    s.domains[DomId{0}].removed_identity.insert(Bfn{0x10});
    CHECK_FALSE(s.entry(DomId{0}, Bfn{0x10}).has_value());
    s.host.mode = IommuMode::strict;
    CHECK_FALSE(s.entry(DomId{0}, Bfn{0x11}).has_value());
    s.host.mode = IommuMode::passthrough;
    CHECK_FALSE(s.usable(DomId{0}));
}

TEST_CASE("dump: canonical text, only what differs from a fresh host") {
    State fresh;
    CHECK(dump(fresh) == "host iommu=on mode=inclusive max_order=9 frames=4096\n");
    State s = world();
    s.servers[{DomId{1}, IoServId{0}}].buffered.push_back(IoReq{8, Bfn{0x1000}});
    s.domains[DomId{0}].removed_identity.insert(Bfn{0x5});
    CHECK(dump(s) ==
          "host iommu=on mode=inclusive max_order=9 frames=64\n"
          "domain 0 hardware iommu_hw\n"
          "domain 1 guest\n"
          "p2m 0 gfn=0x0 mfn=0x0\n"
          "p2m 1 gfn=0x0 mfn=0x10\n"
          "p2m 1 gfn=0x1 mfn=0x11\n"
          "frame mfn=0x0 state=owned owner=0 count=2 allocated=1\n"
          "frame mfn=0x10 state=owned owner=1 count=1 allocated=1\n"
          "frame mfn=0x11 state=owned owner=1 count=2 allocated=1\n"
          "iommu 0 bfn=0x5 removed\n"
          "iommu 0 bfn=0x1000 mfn=0x11 kind=foreign perms=rw\n"
          "iommu 0 bfn=0x2000 mfn=0x0 kind=local perms=rw\n"
          "m2b mfn=0x11 bfn=0x1000 domid=1 ioserver=0 swap=0\n"
          "ioserver 1 id=0 emulator=0 ring=511\n"
          "ioreq 1 id=0 buffered#0 invalidate bfn=0x1000\n");
}
