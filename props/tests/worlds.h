// props/tests/worlds.h: the small world the hand-built concurrent cases share.
// Frames: domain 0 gets 0-3, domain 1 gets 4-7 (gfn 0 -> mfn 4), domain 3 gets 8-9; 10.. free.
// Domain 0 (hardware) serves ioreq server (1,0); stub domain 3, privileged over 1, serves (1,1).
#pragma once

namespace props::test {

inline constexpr const char* kWorld = R"(host frames=32 max_order=1
domain 0 hardware iommu_hw ram=4
domain 1 guest ram=4
domain 3 guest iommu_hw ram=2
dm 3 over 1
ioserver 1 id=0 emulator=0
ioserver 1 id=1 emulator=3
)";

}  // namespace props::test
