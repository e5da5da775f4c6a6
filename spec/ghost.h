// spec/ghost.h: INV-DEVICE-SAFE's ghost set H (BRIEF v2, D23), kept by whoever drives a model
// (the trace runner, the property tests, the explorer) from observable outcomes only, so that
// the same check holds any model to it, impl included. A model never reads H.
#pragma once

#include <span>

#include "spec/hypervisor.h"

namespace spec {

// After a call or batch by emulator c returned with `results` (in op order); `after` is the
// state then. No op changes a P2M, so `after` tells the frame at each gfn the op was given.
//   map_foreign_page ok:    + (c, bfn+i, domid, ioserver) -> frame at gfn+i, each i < 2^order
//   lookup_foreign_page ok: + (c, out bfn, domid, ioserver) -> frame at gfn
//   unmap_foreign_page ok:  - (c, bfn, domid, ioserver); and every key of c at bfn when c's
//                           device view of bfn is a fault afterwards (F5's scratch branch, or
//                           the last tuple's entry gone)
void record_handed(Handed& h, const State& after, DomId c, std::span<const OpResult> results);

// destroy e: e's keys go (its device went with it). Keys of other emulators on e's frames, or
// naming e as their domid, stay: that is what R9 v2's orphans keep safe.
void forget_emulator(Handed& h, DomId e);

}  // namespace spec
