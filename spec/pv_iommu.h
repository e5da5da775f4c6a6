/******************************************************************************
 * pv_iommu.h
 *
 * PV IOMMU interface: lets a domain (the hardware domain, or a device-model
 * stub domain) control the bus addresses (BFNs) its devices use, and map
 * foreign guest pages for DMA by emulators (XenGT-style mediated
 * pass-through, QEMU, stub domains).
 *
 * This is the pviommu project's statement of the ABI of the 2015 PV IOMMU
 * drafts (Crossley/Durrant, draft B) with the XenServer encoding ("XS-impl":
 * subop ids 1-6, u16/u16/s32 header, 24-byte union). Semantics, check order
 * and every error row: spec/pv-iommu.md (rulings R1-R10, F1-F11).
 *
 * Hypercall: iommu_op(struct pv_iommu_op *ops, unsigned int count)
 *   Runs ops[0..count-1] in order (R10). Each op carries its own status; the
 *   hypercall returns 0 whatever the statuses, and a failing op never stops
 *   or corrupts the ops after it.
 *
 * Compiles alone as C11 and as C++ (checked by spec/tests/abi_c11.c and
 * spec/tests/abi_test.cpp with -Werror).
 */

#ifndef PVIOMMU_PUBLIC_PV_IOMMU_H
#define PVIOMMU_PUBLIC_PV_IOMMU_H

#include <stdint.h>

/* Special domain id: "the calling domain". Never valid as a foreign domid. */
#define PV_IOMMU_DOMID_SELF 0x7ff0U
/* First reserved domid: real domains are 0..0x7fef. */
#define PV_IOMMU_DOMID_FIRST_RESERVED 0x7ff0U

/* "No bus frame": input to lookup_foreign_page when the caller has no IOMMU. */
#define PV_IOMMU_BFN_INVALID (~(uint64_t)0)

/*
 * Subop ids (as XS-impl). Any other id: status -EOPNOTSUPP (R1), before any
 * other check.
 */
#define IOMMUOP_query_caps          1
#define IOMMUOP_map_page            2
#define IOMMUOP_unmap_page          3
#define IOMMUOP_map_foreign_page    4
#define IOMMUOP_lookup_foreign_page 5
#define IOMMUOP_unmap_foreign_page  6

/*
 * Flag bits of pv_iommu_op.flags (IN for every subop but query_caps).
 *
 *  bit 0      readable     BFN mapping is readable by the device
 *  bit 1      writeable    BFN mapping is writeable by the device
 *  bit 2      swap_mfn     map_foreign_page only: on balloon-out the BFN may be
 *                          re-pointed at Xen's scratch page and the reference
 *                          dropped at once (R7); ignored by other subops
 *  bits 3-9   reserved     must be 0, else -EINVAL (R1)
 *  bits 10-15 page order   IN: order of the op (R2); query_caps OUT: the
 *                          largest order the IOMMU unit supports
 */
/* Bit-number macros keep Xen's public-header spelling (_XENMEM_*, _PGC_*), reserved
   identifiers included. */
/* NOLINTBEGIN(bugprone-reserved-identifier) */
#define _IOMMUOP_readable  0
#define IOMMUOP_readable   (1U << _IOMMUOP_readable)
#define _IOMMUOP_writeable 1
#define IOMMUOP_writeable  (1U << _IOMMUOP_writeable)
#define _IOMMUOP_swap_mfn  2
#define IOMMUOP_swap_mfn   (1U << _IOMMUOP_swap_mfn)
#define _IOMMUOP_reserved  3
#define IOMMUOP_reserved   (0x7fU << _IOMMUOP_reserved) /* bits 3-9 */
#define _IOMMU_page_order  10
#define IOMMU_page_order   (0x3fU << _IOMMU_page_order) /* bits 10-15 */
/* NOLINTEND(bugprone-reserved-identifier) */

/* Page-order field helpers (XS-impl's mask 0xf1 << 10 was a typo for 0x3f). */
#define IOMMU_get_page_order(flags) \
    ((unsigned int)(((flags)&IOMMU_page_order) >> _IOMMU_page_order))
#define IOMMU_set_page_order(flags, order)      \
    ((uint16_t)(((flags) & ~IOMMU_page_order) | \
                (((unsigned int)(order) << _IOMMU_page_order) & IOMMU_page_order)))

/* Xen errno values (xen/include/public/errno.h) of the resource-limit and -EBUSY rows. */
#define PV_IOMMU_ENOMEM    12 /* D20: the caller's quota is used up */
#define PV_IOMMU_EOVERFLOW 75 /* D19: a frame's reference count is at its limit */
#define PV_IOMMU_EBUSY     16 /* R6 v2: unmap_page on a bfn that a tuple of the caller claims */

/* query_caps OUT flag bit 0: the caller may choose BFNs (map_foreign_page). */
#define _IOMMU_QUERY_map_cap 0 /* NOLINT(bugprone-reserved-identifier): Xen spelling */
#define IOMMU_QUERY_map_cap  (1U << _IOMMU_QUERY_map_cap)

/*
 * IOMMUOP_query_caps
 * IN:  nothing (flags is output only and ignored as input).
 * OUT: flags: IOMMU_QUERY_map_cap set exactly when the caller can use the
 *      IOMMU; page-order bits = the host's max_order, 0 when it cannot.
 *      offset: always 0 (XS-impl's foreign BFN offset is not modelled).
 *      status: always 0.
 *
 * IOMMUOP_map_page        IN: bfn, gfn (caller's own), flags (r/w, order)
 * IOMMUOP_unmap_page      IN: bfn, flags (order)
 *      Both need an IOMMU the caller can use (-EPERM). map_page takes one
 *      reference per frame; unmap_page drops it (identity entries hold none).
 *      unmap_page returns -EBUSY (16) when a tuple of the caller claims a bfn
 *      of the range (an identity entry that lookup_foreign_page registered),
 *      after -ENOENT and -EPERM, changing nothing (R6 v2).
 *
 * IOMMUOP_map_foreign_page
 * IN:  bfn, gfn, domid, ioserver, flags (r/w, swap_mfn, order)
 * OUT: bfn: the BFN mapped (the input BFN).
 *      Adds an M2B tuple (mfn -> bfn, domid, ioserver) holding one reference
 *      per frame, unless the identical tuple exists.
 *
 * IOMMUOP_lookup_foreign_page
 * IN:  gfn, domid, ioserver, bfn (must be PV_IOMMU_BFN_INVALID when the
 *      caller has no IOMMU; ignored otherwise), flags (order must be 0)
 * OUT: bfn: the bus frame the emulator may use for gfn.
 *
 * IOMMUOP_unmap_foreign_page
 * IN:  bfn, domid, ioserver, flags (order must be 0)
 *      Removes the caller's tuple and its reference (R5), also an orphan
 *      whose target domain died (R9 v2, F5, F12): domid and ioserver are
 *      only the tuple's key, not checked against live domains.
 *      Every reference an unmap or re-point held is dropped only after the
 *      caller's IOTLB is flushed, before the op returns (R11).
 *
 * NOTES
 * 1. Every status is 0 or a negative Xen errno value. Beyond the draft's
 *    table: map_page, map_foreign_page and lookup_foreign_page (when it would
 *    add a tuple) return -EOVERFLOW (75) when a frame's reference count is at
 *    the host's limit (D19), and -ENOMEM (12) when the caller's quota of
 *    tuples and local entries is used up (D20); both after -EEXIST, before
 *    -EIO, and both change nothing.
 * 2. Fields not used by a subop are ignored on input and left untouched.
 * 3. The union is 24 bytes: the 20-byte foreign members are padded to the
 *    8-byte alignment of their u64 fields. The whole op is 32 bytes.
 */
struct pv_iommu_op {
    uint16_t subop_id;
    uint16_t flags;
    int32_t status;
    union {
        struct {
            uint64_t offset;
        } query_caps;
        struct {
            uint64_t bfn;
            uint64_t gfn;
        } map_page;
        struct {
            uint64_t bfn;
        } unmap_page;
        struct {
            uint64_t bfn;
            uint64_t gfn;
            uint16_t domid;
            uint16_t ioserver;
        } map_foreign_page;
        struct {
            uint64_t bfn;
            uint64_t gfn;
            uint16_t domid;
            uint16_t ioserver;
        } lookup_foreign_page;
        struct {
            uint64_t bfn;
            uint16_t domid; /* added to XS-impl's layout: R5 */
            uint16_t ioserver;
        } unmap_foreign_page;
    } u;
};
typedef struct pv_iommu_op pv_iommu_op_t;

/* IOREQ_TYPE_INVALIDATE, as xen/include/public/hvm/ioreq.h. */
#define PV_IOMMU_IOREQ_TYPE_INVALIDATE 8
/* Slots in one buffered ioreq page (xen/include/public/hvm/ioreq.h). */
#define PV_IOMMU_IOREQ_BUFFER_SLOT_NUM 511

#endif /* PVIOMMU_PUBLIC_PV_IOMMU_H */
