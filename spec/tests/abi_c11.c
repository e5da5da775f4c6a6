/* spec/pv_iommu.h compiles alone as C11 with -Werror -pedantic, and its layout is the ABI. */
#include <stddef.h>

#include "spec/pv_iommu.h"

_Static_assert(sizeof(struct pv_iommu_op) == 32, "pv_iommu_op is 32 bytes");
_Static_assert(offsetof(struct pv_iommu_op, subop_id) == 0, "subop_id at 0");
_Static_assert(offsetof(struct pv_iommu_op, flags) == 2, "flags at 2");
_Static_assert(offsetof(struct pv_iommu_op, status) == 4, "status at 4");
_Static_assert(offsetof(struct pv_iommu_op, u) == 8, "union at 8");
_Static_assert(sizeof(((struct pv_iommu_op *)0)->u) == 24, "union is 24 bytes");
_Static_assert(offsetof(struct pv_iommu_op, u.map_foreign_page.gfn) == 16, "gfn at 16");
_Static_assert(offsetof(struct pv_iommu_op, u.map_foreign_page.domid) == 24, "domid at 24");
_Static_assert(offsetof(struct pv_iommu_op, u.map_foreign_page.ioserver) == 26, "ioserver at 26");
_Static_assert(offsetof(struct pv_iommu_op, u.unmap_foreign_page.domid) == 16, "R5 domid at 16");
_Static_assert(offsetof(struct pv_iommu_op, u.unmap_foreign_page.ioserver) == 18, "ioserver at 18");
_Static_assert(IOMMU_page_order == 0xfc00U, "order bits 10-15");
_Static_assert(IOMMUOP_reserved == 0x03f8U, "reserved bits 3-9");
_Static_assert((IOMMUOP_readable | IOMMUOP_writeable | IOMMUOP_swap_mfn | IOMMUOP_reserved |
                IOMMU_page_order) == 0xffffU,
               "the flag fields tile 16 bits");

int pv_iommu_abi_c11_anchor(void);
int pv_iommu_abi_c11_anchor(void) { return (int)IOMMU_get_page_order(IOMMU_set_page_order(0, 9)); }
