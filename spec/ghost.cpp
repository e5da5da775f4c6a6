#include "spec/ghost.h"

#include <algorithm>
#include <map>
#include <set>
#include <type_traits>
#include <variant>

#include "spec/checks.h"

namespace spec {

namespace {

// The tuples of c at bfn b in s.
std::set<Tuple> tuples_at(const State& s, DomId c, Bfn b) {
    std::set<Tuple> out;
    for (const auto& [m, tuples] : s.m2b)
        for (const auto& [t, info] : tuples)
            if (t.bfn == b && info.emulator == c) out.insert(t);
    return out;
}

}  // namespace

bool handed_needs_before(std::span<const OpResult> results) {
    return std::any_of(results.begin(), results.end(), [](const OpResult& r) {
        return r.status == Status::ok && std::holds_alternative<UnmapForeignPage>(r.op);
    });
}

void record_handed(Handed& h, const State* before, const State& after, DomId c,
                   std::span<const OpResult> results) {
    // Tuples of c that ops earlier in this batch made (true) or removed (false).
    std::map<Tuple, bool> batch;
    for (const OpResult& r : results) {
        if (r.status != Status::ok) continue;
        std::visit(
            [&](const auto& op) {
                using T = std::decay_t<decltype(op)>;
                if constexpr (std::is_same_v<T, MapForeignPage>) {
                    const std::uint64_t n = frames_of_order(op.flags);
                    for (std::uint64_t i = 0; i < n; ++i) {
                        const Bfn b{op.bfn.v + i};
                        if (const auto m = after.p2m(op.domid, Gfn{op.gfn.v + i}))
                            h[{c, b, op.domid, op.ioserver}] = *m;
                        batch[Tuple{b, op.domid, op.ioserver}] = true;
                    }
                } else if constexpr (std::is_same_v<T, LookupForeignPage>) {
                    if (const auto m = after.p2m(op.domid, op.gfn))
                        h[{c, op.bfn, op.domid, op.ioserver}] = *m;
                    batch[Tuple{op.bfn, op.domid, op.ioserver}] = true;
                } else if constexpr (std::is_same_v<T, UnmapForeignPage>) {
                    // c's tuples at bfn when the op ran: `before`, then this batch's edits.
                    std::set<Tuple> live;
                    if (before != nullptr) live = tuples_at(*before, c, op.bfn);
                    for (const auto& [t, made] : batch)
                        if (t.bfn == op.bfn) {
                            if (made)
                                live.insert(t);
                            else
                                live.erase(t);
                        }
                    const Tuple t{op.bfn, op.domid, op.ioserver};
                    live.erase(t);
                    batch[t] = false;
                    h.erase({c, op.bfn, op.domid, op.ioserver});  // R5: its own key
                    if (live.empty())  // R5's last user or F5's scratch branch: c's own unmap
                        std::erase_if(h, [&](const auto& kv) {  // removed the translation
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
