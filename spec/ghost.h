// spec/ghost.h: INV-DEVICE-SAFE's ghost set H (v2, spec/pv-iommu.md; D23), kept by whoever drives a
// model (the trace runner, the property tests, the explorer) from observable outcomes only, so that
// the same check holds any model to it, impl included. A model never reads H.
#pragma once

#include <span>

#include "spec/hypervisor.h"

namespace spec {

// After a call or batch by emulator c returned with `results` (in op order); `before` and
// `after` are the states before and after it (`before` is read only when an
// unmap_foreign_page succeeded: callers may pass nullptr when none is in the batch). No op
// changes a P2M, so `after` tells the frame at each gfn the op was given.
//   map_foreign_page ok:    + (c, bfn+i, domid, ioserver) -> frame at gfn+i, each i < 2^order
//   lookup_foreign_page ok: + (c, out bfn, domid, ioserver) -> frame at gfn
//   unmap_foreign_page ok:  - (c, bfn, domid, ioserver); and when no tuple of c uses bfn
//                           any more (R5 removed the last user's entry, or F5's scratch branch
//                           removed the scratch entry), every key of c at bfn: c's own unmap
//                           took the translation away, releasing every address it had there
//                           (D23). c's tuples at bfn when the op ran are known from `before`
//                           and the ops of the batch before this one.
void record_handed(Handed& h, const State* before, const State& after, DomId c,
                   std::span<const OpResult> results);
// Whether record_handed needs `before` for these results.
[[nodiscard]] bool handed_needs_before(std::span<const OpResult> results);

// destroy e: e's keys go (its device went with it). Keys of other emulators on e's frames, or
// naming e as their domid, stay: that is what R9 v2's orphans keep safe.
void forget_emulator(Handed& h, DomId e);

}  // namespace spec
