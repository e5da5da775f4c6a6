// spec/types.h: the project's vocabulary. Frame numbers and ids are strong types (as Xen's
// TYPE_SAFE(uint64_t, dfn)): a Bfn never silently becomes an Mfn.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "spec/pv_iommu.h"

namespace spec {

// A value of Rep that only converts explicitly. Tag makes each instantiation a distinct type.
template <class Tag, class Rep>
struct Strong {
    using rep = Rep;
    Rep v{};
    constexpr Strong() = default;
    constexpr explicit Strong(Rep x) : v(x) {}
    constexpr auto operator<=>(const Strong&) const = default;
};

using Mfn = Strong<struct MfnTag, std::uint64_t>;            // machine frame number
using Gfn = Strong<struct GfnTag, std::uint64_t>;            // guest frame number (a domain's P2M)
using Bfn = Strong<struct BfnTag, std::uint64_t>;            // bus frame number (an IOMMU context)
using DomId = Strong<struct DomIdTag, std::uint16_t>;        // domain id
using IoServId = Strong<struct IoServIdTag, std::uint16_t>;  // ioreq server id (per target)

inline constexpr DomId kDomIdSelf{PV_IOMMU_DOMID_SELF};
inline constexpr std::uint16_t kDomIdMax = PV_IOMMU_DOMID_FIRST_RESERVED - 1;  // 0x7fef
inline constexpr Bfn kBfnInvalid{PV_IOMMU_BFN_INVALID};
inline constexpr std::uint32_t kMaxRingSlots = PV_IOMMU_IOREQ_BUFFER_SLOT_NUM;  // D5
inline constexpr std::uint64_t kMaxFrames = std::uint64_t{1} << 24;             // D6
inline constexpr unsigned kMaxOrderLimit = 63;                                  // D6
// D19: the largest reference count of a frame: impl's count field is 32 bits wide (bits 0-31
// of the frame word), so the default max_count is the field's limit and no count can carry
// into the allocated/state bits above it.
inline constexpr std::uint32_t kMaxCountLimit = 0xffffffffU;

// A subop's status: 0 or a negative Xen errno (xen/include/public/errno.h values).
enum class Status : std::int32_t {
    ok = 0,
    eperm = -1,
    enoent = -2,
    eio = -5,
    enxio = -6,
    enomem = -PV_IOMMU_ENOMEM,  // D20: the caller's quota of tuples and local entries is used up
    eacces = -13,
    ebusy = -PV_IOMMU_EBUSY,  // R6 v2: unmap_page on a bfn a tuple of the caller claims
    eexist = -17,
    enodev = -19,
    einval = -22,
    enospc = -28,
    eoverflow = -PV_IOMMU_EOVERFLOW,  // D19: a frame's reference count is at the host's max_count
    eopnotsupp = -95,
};

// "0", "-EPERM", ...
[[nodiscard]] std::string_view status_name(Status s);
// Inverse of status_name; nullopt for an unknown name.
[[nodiscard]] std::optional<Status> status_from_name(std::string_view name);

// The 16-bit flags word of struct pv_iommu_op, kept raw so reserved bits survive (R1).
struct Flags {
    std::uint16_t raw = 0;
    constexpr auto operator<=>(const Flags&) const = default;

    [[nodiscard]] constexpr bool readable() const { return (raw & IOMMUOP_readable) != 0; }
    [[nodiscard]] constexpr bool writeable() const { return (raw & IOMMUOP_writeable) != 0; }
    [[nodiscard]] constexpr bool swap_mfn() const { return (raw & IOMMUOP_swap_mfn) != 0; }
    [[nodiscard]] constexpr bool reserved() const { return (raw & IOMMUOP_reserved) != 0; }
    [[nodiscard]] constexpr unsigned order() const { return IOMMU_get_page_order(raw); }
    // r/w bits only (what an IOMMU entry keeps).
    [[nodiscard]] constexpr std::uint8_t perms() const {
        return static_cast<std::uint8_t>(raw & (IOMMUOP_readable | IOMMUOP_writeable));
    }
    [[nodiscard]] static constexpr Flags with_order(unsigned order, std::uint16_t low = 0) {
        return Flags{IOMMU_set_page_order(low, order)};
    }
};

// Trace notation of a flags word: "rw+swap+order=2", "-", or hex for reserved bits.
[[nodiscard]] std::string flags_text(Flags f);
// "0x1f": frame numbers in traces and dumps (D14).
[[nodiscard]] std::string hex(std::uint64_t v);
// "rw", "r", "w", "-" for entry permissions.
[[nodiscard]] std::string_view perms_text(std::uint8_t perms);

}  // namespace spec
