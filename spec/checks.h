// spec/checks.h: the pure, state-free checks that open every subop (R1, R2). Shared by ref/ and
// impl/ so that both apply the same field rules; everything that reads state is per model.
#pragma once

#include <initializer_list>
#include <optional>

#include "spec/state.h"

namespace spec {

// R1: reserved flag bits -> -EINVAL. R2 (F1): order > host max_order, or any of `aligned`
// (bfn, gfn) not a multiple of 2^order -> -ENOSPC; single_frame subops (lookup_foreign_page,
// unmap_foreign_page) take order 0 only. nullopt: the op passes R1 and R2.
[[nodiscard]] inline std::optional<Status> check_flags_and_order(
    Flags f, const Host& h, std::initializer_list<std::uint64_t> aligned, bool single_frame) {
    if (f.reserved()) return Status::einval;  // R1
    const unsigned order = f.order();
    if (order > h.max_order) return Status::enospc;              // R2, F1
    if (single_frame && order != 0) return Status::enospc;       // R2: one frame only
    const std::uint64_t mask = (std::uint64_t{1} << order) - 1;  // order <= 63
    for (std::uint64_t v : aligned)
        if ((v & mask) != 0) return Status::enospc;  // R2: aligned to 2^order
    return std::nullopt;
}

// The frames an order-k op covers (R2, F10).
[[nodiscard]] inline std::uint64_t frames_of_order(Flags f) {
    return std::uint64_t{1} << f.order();
}

}  // namespace spec
