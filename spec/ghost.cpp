#include "spec/ghost.h"

#include <type_traits>
#include <variant>

#include "spec/checks.h"

namespace spec {

void record_handed(Handed& h, const State& after, DomId c, std::span<const OpResult> results) {
    for (const OpResult& r : results) {
        if (r.status != Status::ok) continue;
        std::visit(
            [&](const auto& op) {
                using T = std::decay_t<decltype(op)>;
                if constexpr (std::is_same_v<T, MapForeignPage>) {
                    const std::uint64_t n = frames_of_order(op.flags);
                    for (std::uint64_t i = 0; i < n; ++i)
                        if (const auto m = after.p2m(op.domid, Gfn{op.gfn.v + i}))
                            h[{c, Bfn{op.bfn.v + i}, op.domid, op.ioserver}] = *m;
                } else if constexpr (std::is_same_v<T, LookupForeignPage>) {
                    if (const auto m = after.p2m(op.domid, op.gfn))
                        h[{c, op.bfn, op.domid, op.ioserver}] = *m;
                } else if constexpr (std::is_same_v<T, UnmapForeignPage>) {
                    h.erase({c, op.bfn, op.domid, op.ioserver});
                    if (after.dma(c, op.bfn).kind == DmaView::Kind::fault)
                        std::erase_if(h, [&](const auto& kv) {
                            return kv.first.emulator == c && kv.first.bfn == op.bfn;
                        });
                }
            },
            r.op);
    }
}

void forget_emulator(Handed& h, DomId e) {
    std::erase_if(h, [e](const auto& kv) { return kv.first.emulator == e; });
}

}  // namespace spec
