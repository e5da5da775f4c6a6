#include "spec/hypervisor.h"

#include <type_traits>

namespace spec {

// R10: each op runs in order with its own status; the hypercall returns 0 whatever they are,
// and a failing op never stops the ones after it. D2: out fields are written on success only.
long Hypervisor::iommu_op(DomId caller, std::span<pv_iommu_op> ops) {
    for (pv_iommu_op& raw : ops) {
        Op op = decode(raw);
        const Status st = std::visit(
            [&](auto& o) -> Status {
                using T = std::decay_t<decltype(o)>;
                if constexpr (std::is_same_v<T, QueryCaps>)
                    return query_caps(caller, o);
                else if constexpr (std::is_same_v<T, MapPage>)
                    return map_page(caller, o);
                else if constexpr (std::is_same_v<T, UnmapPage>)
                    return unmap_page(caller, o);
                else if constexpr (std::is_same_v<T, MapForeignPage>)
                    return map_foreign_page(caller, o);
                else if constexpr (std::is_same_v<T, LookupForeignPage>)
                    return lookup_foreign_page(caller, o);
                else if constexpr (std::is_same_v<T, UnmapForeignPage>)
                    return unmap_foreign_page(caller, o);
                else
                    return Status::eopnotsupp;  // R1: unknown subop, before any other check
            },
            op);
        raw.status = static_cast<std::int32_t>(st);
        if (st != Status::ok) continue;
        if (const auto* q = std::get_if<QueryCaps>(&op)) {
            raw.flags = q->flags.raw;
            raw.u.query_caps.offset = 0;
        } else if (const auto* m = std::get_if<MapForeignPage>(&op)) {
            raw.u.map_foreign_page.bfn = m->bfn.v;
        } else if (const auto* l = std::get_if<LookupForeignPage>(&op)) {
            raw.u.lookup_foreign_page.bfn = l->bfn.v;
        }
    }
    return 0;
}

OpResult run_op(Hypervisor& h, DomId caller, const Op& op) {
    pv_iommu_op raw = encode(op);
    (void)h.iommu_op(caller, std::span<pv_iommu_op>(&raw, 1));
    return OpResult{static_cast<Status>(raw.status), decode(raw)};
}

}  // namespace spec
