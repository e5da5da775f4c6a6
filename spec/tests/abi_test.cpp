// The ABI header compiles alone as C++20 with -Werror (this file includes nothing before it).
#include <doctest/doctest.h>

#include <cstddef>

#include "spec/pv_iommu.h"

static_assert(sizeof(pv_iommu_op) == 32);
static_assert(offsetof(pv_iommu_op, flags) == 2);
static_assert(offsetof(pv_iommu_op, status) == 4);
static_assert(offsetof(pv_iommu_op, u) == 8);
static_assert(sizeof(pv_iommu_op::u) == 24);

TEST_CASE("abi: page-order helpers round-trip every order and keep the low bits") {
    for (unsigned k = 0; k < 64; ++k) {
        const uint16_t f = IOMMU_set_page_order(IOMMUOP_readable | IOMMUOP_swap_mfn, k);
        CHECK(IOMMU_get_page_order(f) == k);
        CHECK((f & 0x3ffU) == (IOMMUOP_readable | IOMMUOP_swap_mfn));
    }
    CHECK(IOMMU_set_page_order(0xffffU, 0) == 0x03ffU);
}

TEST_CASE("abi: constants") {
    CHECK(PV_IOMMU_BFN_INVALID == ~uint64_t{0});
    CHECK(PV_IOMMU_DOMID_SELF == 0x7ff0U);
    CHECK(IOMMUOP_unmap_foreign_page == 6);
    CHECK(PV_IOMMU_IOREQ_BUFFER_SLOT_NUM == 511);
}
