// trace/gen.h: random traces for `pviommu diff --random`, and a shrinker for the ones that
// diverge. All randomness comes from one std::mt19937_64 seeded with the given seed, drawn
// without std:: distributions (their algorithms differ between standard libraries), so a seed
// names the same trace everywhere.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "trace/runner.h"
#include "trace/trace.h"

namespace trace {

// A valid trace (parse(print(t)) succeeds and gives t back, lines numbered as printed), named
// `random-<seed>`: a host (iommu mostly on; mode mostly inclusive; max_order 0..4, mostly
// small; 64..512 frames), a world of 2-5 domains (at most one hardware domain), dm privileges,
// ioreq servers with small rings, RMRR ranges and Xen-backed gfns, then `steps` statements:
// calls and batches of the six subops and unknown ids (mostly plausible arguments, some
// invalid), balloons (mostly of gfns that were mapped), populates, drains, faults, domain
// destruction and re-creation of destroyed domids (F11, D8), new servers and privileges, and
// `check invariants`. No expectations: a diff compares models. Domain RAM never exceeds what
// is free (no D9 stop).
// With an oracle, the mix also has `check dma` statements (v2), each expecting what the
// oracle model's device sees there (the oracle runs the trace once; give it ref::make).
[[nodiscard]] Trace random_trace(std::uint64_t seed, std::size_t steps,
                                 const ModelFactory& oracle = {});

// Greedy shrinking. Requires still_fails(t). Tries to remove chunks of statements (halving
// the chunk size down to one), then single ops of batches, keeping only candidates that still
// parse (print -> parse: no statement names a removed domain or server) and still_fails;
// repeats until nothing can be removed. Returns a trace, as parse() returns it (lines
// numbered as printed), for which still_fails holds, no longer than t.
using TracePredicate = std::function<bool(const Trace&)>;
[[nodiscard]] Trace shrink(const Trace& t, const TracePredicate& still_fails);

}  // namespace trace
