// spec/ops.h: the six subops as C++ structs, each described ONCE with BOOST_HANA_DEFINE_STRUCT.
// The member names are the trace language's field names; the field lists drive trace parsing
// and printing (trace/), equality, RapidCheck generators (props/) and Z3 variables (proofs/).
// Out fields live in the same struct (the ABI is an in/out struct): a model writes them on
// success (D2).
#pragma once

#include <boost/hana/define_struct.hpp>
#include <cstdint>
#include <string_view>
#include <variant>

#include "spec/types.h"

namespace spec {

struct QueryCaps {
    static constexpr std::uint16_t id = IOMMUOP_query_caps;
    static constexpr std::string_view name = "query_caps";
    // flags is output only (R1: ignored as input): bit 0 map_cap, bits 10-15 max_order.
    BOOST_HANA_DEFINE_STRUCT(QueryCaps, (Flags, flags));
    bool operator==(const QueryCaps&) const = default;
};

struct MapPage {
    static constexpr std::uint16_t id = IOMMUOP_map_page;
    static constexpr std::string_view name = "map_page";
    BOOST_HANA_DEFINE_STRUCT(MapPage, (Flags, flags), (Bfn, bfn), (Gfn, gfn));
    bool operator==(const MapPage&) const = default;
};

struct UnmapPage {
    static constexpr std::uint16_t id = IOMMUOP_unmap_page;
    static constexpr std::string_view name = "unmap_page";
    BOOST_HANA_DEFINE_STRUCT(UnmapPage, (Flags, flags), (Bfn, bfn));
    bool operator==(const UnmapPage&) const = default;
};

struct MapForeignPage {
    static constexpr std::uint16_t id = IOMMUOP_map_foreign_page;
    static constexpr std::string_view name = "map_foreign_page";
    // OUT: bfn (F3: the bfn mapped).
    BOOST_HANA_DEFINE_STRUCT(MapForeignPage, (Flags, flags), (Bfn, bfn), (Gfn, gfn), (DomId, domid),
                             (IoServId, ioserver));
    bool operator==(const MapForeignPage&) const = default;
};

struct LookupForeignPage {
    static constexpr std::uint16_t id = IOMMUOP_lookup_foreign_page;
    static constexpr std::string_view name = "lookup_foreign_page";
    // IN bfn defaults to BFN_INVALID (TRACE-FORMAT); OUT: bfn.
    BOOST_HANA_DEFINE_STRUCT(LookupForeignPage, (Flags, flags), (Bfn, bfn), (Gfn, gfn),
                             (DomId, domid), (IoServId, ioserver));
    LookupForeignPage() : bfn(kBfnInvalid) {}
    bool operator==(const LookupForeignPage&) const = default;
};

struct UnmapForeignPage {
    static constexpr std::uint16_t id = IOMMUOP_unmap_foreign_page;
    static constexpr std::string_view name = "unmap_foreign_page";
    BOOST_HANA_DEFINE_STRUCT(UnmapForeignPage, (Flags, flags), (Bfn, bfn), (DomId, domid),
                             (IoServId, ioserver));
    bool operator==(const UnmapForeignPage&) const = default;
};

// Any other subop_id (D4: only flags). R1 answers -EOPNOTSUPP.
struct UnknownOp {
    static constexpr std::string_view name = "unknown";
    std::uint16_t subop_id = 0;
    Flags flags;
    bool operator==(const UnknownOp&) const = default;
};

using Op = std::variant<QueryCaps, MapPage, UnmapPage, MapForeignPage, LookupForeignPage,
                        UnmapForeignPage, UnknownOp>;

// Which out fields a subop has (D2).
template <class T>
inline constexpr bool has_out_bfn =
    std::is_same_v<T, MapForeignPage> || std::is_same_v<T, LookupForeignPage>;
template <class T>
inline constexpr bool has_out_flags = std::is_same_v<T, QueryCaps>;

[[nodiscard]] std::uint16_t subop_id(const Op& op);
[[nodiscard]] Flags op_flags(const Op& op);

// ABI encoding. encode writes every field the op has (others 0); decode reads by subop_id, so
// decode(encode(op)) == op for every op, reserved bits included. Status is not part of Op.
[[nodiscard]] pv_iommu_op encode(const Op& op);
[[nodiscard]] Op decode(const pv_iommu_op& raw);

}  // namespace spec
