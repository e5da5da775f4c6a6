#include "spec/ops.h"

#include <type_traits>

namespace spec {

std::uint16_t subop_id(const Op& op) {
    return std::visit(
        [](const auto& o) -> std::uint16_t {
            if constexpr (std::is_same_v<std::decay_t<decltype(o)>, UnknownOp>)
                return o.subop_id;
            else
                return std::decay_t<decltype(o)>::id;
        },
        op);
}

Flags op_flags(const Op& op) {
    return std::visit([](const auto& o) { return o.flags; }, op);
}

// The mapping between each op struct and its union member is written out per subop: it IS the
// ABI (spec/pv_iommu.h), and a reviewer compares the two side by side.
pv_iommu_op encode(const Op& op) {
    pv_iommu_op raw{};
    raw.subop_id = subop_id(op);
    raw.flags = op_flags(op).raw;
    std::visit(
        [&raw](const auto& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (std::is_same_v<T, QueryCaps>) {
                raw.u.query_caps.offset = 0;
            } else if constexpr (std::is_same_v<T, MapPage>) {
                raw.u.map_page.bfn = o.bfn.v;
                raw.u.map_page.gfn = o.gfn.v;
            } else if constexpr (std::is_same_v<T, UnmapPage>) {
                raw.u.unmap_page.bfn = o.bfn.v;
            } else if constexpr (std::is_same_v<T, MapForeignPage>) {
                raw.u.map_foreign_page.bfn = o.bfn.v;
                raw.u.map_foreign_page.gfn = o.gfn.v;
                raw.u.map_foreign_page.domid = o.domid.v;
                raw.u.map_foreign_page.ioserver = o.ioserver.v;
            } else if constexpr (std::is_same_v<T, LookupForeignPage>) {
                raw.u.lookup_foreign_page.bfn = o.bfn.v;
                raw.u.lookup_foreign_page.gfn = o.gfn.v;
                raw.u.lookup_foreign_page.domid = o.domid.v;
                raw.u.lookup_foreign_page.ioserver = o.ioserver.v;
            } else if constexpr (std::is_same_v<T, UnmapForeignPage>) {
                raw.u.unmap_foreign_page.bfn = o.bfn.v;
                raw.u.unmap_foreign_page.domid = o.domid.v;
                raw.u.unmap_foreign_page.ioserver = o.ioserver.v;
            } else {
                static_assert(std::is_same_v<T, UnknownOp>);
            }
        },
        op);
    return raw;
}

Op decode(const pv_iommu_op& raw) {
    const Flags flags{raw.flags};
    switch (raw.subop_id) {
        case IOMMUOP_query_caps: {
            QueryCaps o;
            o.flags = flags;
            return o;
        }
        case IOMMUOP_map_page: {
            MapPage o;
            o.flags = flags;
            o.bfn = Bfn{raw.u.map_page.bfn};
            o.gfn = Gfn{raw.u.map_page.gfn};
            return o;
        }
        case IOMMUOP_unmap_page: {
            UnmapPage o;
            o.flags = flags;
            o.bfn = Bfn{raw.u.unmap_page.bfn};
            return o;
        }
        case IOMMUOP_map_foreign_page: {
            MapForeignPage o;
            o.flags = flags;
            o.bfn = Bfn{raw.u.map_foreign_page.bfn};
            o.gfn = Gfn{raw.u.map_foreign_page.gfn};
            o.domid = DomId{raw.u.map_foreign_page.domid};
            o.ioserver = IoServId{raw.u.map_foreign_page.ioserver};
            return o;
        }
        case IOMMUOP_lookup_foreign_page: {
            LookupForeignPage o;
            o.flags = flags;
            o.bfn = Bfn{raw.u.lookup_foreign_page.bfn};
            o.gfn = Gfn{raw.u.lookup_foreign_page.gfn};
            o.domid = DomId{raw.u.lookup_foreign_page.domid};
            o.ioserver = IoServId{raw.u.lookup_foreign_page.ioserver};
            return o;
        }
        case IOMMUOP_unmap_foreign_page: {
            UnmapForeignPage o;
            o.flags = flags;
            o.bfn = Bfn{raw.u.unmap_foreign_page.bfn};
            o.domid = DomId{raw.u.unmap_foreign_page.domid};
            o.ioserver = IoServId{raw.u.unmap_foreign_page.ioserver};
            return o;
        }
        default:
            return UnknownOp{raw.subop_id, flags};
    }
}

}  // namespace spec
