// fuzz/worlds.h: the fixed worlds that fuzz_abi_diff's first byte selects from, as trace text
// (control-plane statements only), so a divergence prints as a replayable trace. Frames are
// few so that populate runs out, balloons reuse frames, and the dumps stay short.
#pragma once

#include <array>

#include "props/tests/worlds.h"

namespace fuzz {

inline constexpr std::array<const char*, 7> kWorlds = {
    // 0: the props world: hardware domain 0 and stub domain 3 both emulate for guest 1.
    props::test::kWorld,
    // 1: inclusive, every kind of server ring (tiny, odd, full size), RMRRs in both emulators,
    //    Xen-backed gfns in the hardware domain and in a guest, a stub domain over two guests.
    R"(host frames=64 max_order=2
domain 0 hardware iommu_hw ram=8
domain 1 guest iommu_hw ram=8
domain 2 guest iommu_hw ram=4
domain 3 guest ram=4
dm 2 over 1
dm 2 over 3
ioserver 1 id=0 emulator=0 ring=4
ioserver 1 id=1 emulator=2 ring=2
ioserver 3 id=0 emulator=2
ioserver 3 id=1 emulator=0 ring=3
rmrr 0 bfn=0x20 count=4
rmrr 2 bfn=0x8 count=2
xen_gfn 1 gfn=8
xen_gfn 0 gfn=9
)",
    // 2: strict mode (no 1:1 map): the hardware domain maps its own pages.
    R"(host mode=strict frames=48 max_order=3
domain 0 hardware iommu_hw ram=8
domain 1 guest ram=8
domain 2 guest iommu_hw ram=4
dm 2 over 1
ioserver 1 id=0 emulator=0 ring=2
ioserver 1 id=1 emulator=2 ring=1
rmrr 0 bfn=0x4 count=1
xen_gfn 1 gfn=8
)",
    // 3: passthrough: the hardware domain cannot use the IOMMU (lookup without bfn); the stub
    //    domain can.
    R"(host mode=passthrough frames=48 max_order=1
domain 0 hardware iommu_hw ram=6
domain 1 guest ram=6
domain 2 guest iommu_hw ram=4
dm 2 over 1
ioserver 1 id=0 emulator=0 ring=4
ioserver 1 id=1 emulator=2
)",
    // 4: no IOMMU at all: only lookup_foreign_page with BFN_INVALID succeeds.
    R"(host iommu=off frames=32 max_order=0
domain 0 hardware iommu_hw ram=4
domain 1 guest ram=4
domain 2 guest ram=2
dm 2 over 1
ioserver 1 id=0 emulator=0 ring=0
ioserver 1 id=1 emulator=2 ring=2
)",
    // 5: almost every frame in use (populate fails, frees are reused at once), guest emulating
    //    for guest, a hardware domain without IOMMU hardware.
    R"(host frames=14 max_order=1
domain 0 hardware ram=3
domain 1 guest iommu_hw ram=4
domain 2 guest ram=4
dm 1 over 2
ioserver 2 id=0 emulator=1 ring=2
ioserver 2 id=7 emulator=0
xen_gfn 2 gfn=4
)",
    // 6: resource limits (D19, D20): counts saturate at 3, emulators have small quotas, two
    //    servers of two emulators on one guest so that one frame meets both limits.
    R"(host frames=40 max_order=1 max_count=3
domain 0 hardware iommu_hw ram=6 quota=3
domain 1 guest ram=6
domain 2 guest iommu_hw ram=4 quota=2
dm 2 over 1
ioserver 1 id=0 emulator=0 ring=4
ioserver 1 id=1 emulator=2 ring=2
)",
};

}  // namespace fuzz
