// props/linearizability.h: is a recorded History linearizable against ref, under the
// concurrency contract of spec/pv-iommu.md section 7?
//
// Search: Wing & Gong's, in Lowe's "just-in-time" form with memoisation. The history's
// operations are split into steps (below); a step may be taken next iff its predecessor step is
// taken and it was invoked before the earliest response among the steps not yet taken (so no
// step is placed after an operation that had already returned when it was invoked). Taking a
// step runs it on a copy of the model state (ref::Hypervisor resumed from a spec::State) and
// compares the model's answer with the recorded one. A (set of taken steps, model state) pair
// that has been explored once is never explored again: the memo holds the taken-set bits and a
// 64-bit hash of the whole model state (every field of spec::State, plus the search's own
// annotations below). When every step is taken the model's canonical dump must equal the SUT's
// snapshot after the threads joined (the contract's third observable).
//
// Steps:
//  - a call: one step; a batch of k ops: k steps chained in array order (each op of a batch is
//    its own linearizable operation inside the batch's interval, section 7.4).
//  - a balloon (relaxation (a)): one step for its atomic state change at its linearization
//    point L (ref's balloon with the deliveries taken back out), which fixes the list of
//    invalidates (one per tuple of the frame at L, in F8 order, as "in flight"), then one
//    delivery step per invalidate, chained in F8 order, each deciding ring or synchronous
//    channel against the ring's fill when it is taken; they share the balloon's interval, so
//    all are delivered before it returns. Drains see only delivered requests. The balloon's
//    recorded frame and invalidate count are compared at L, its synchronous count after the
//    last delivery.
//  - a populate (relaxation (b)): the recorded frame must be free at L, and every lower frame
//    that is free at L must have been freed by an operation whose interval overlaps the
//    populate's (the search remembers which operation freed each frame). "None" is accepted
//    when the gfn had a frame, or when every free frame was freed by such an operation.
//  - a drain: one step, compared with what ref's drain takes.
//
// P-compositionality is not used: the state does not split by frame (one map_foreign_page
// touches a P2M entry, a frame, its M2B set and an IOMMU context; a balloon touches every
// server of the frame's tuples and the contexts of their emulators; every populate competes
// for the same "lowest free frame"). The cases are small (2-3 threads x 3-6 operations) and
// the memo bounds the search by (reachable taken-sets) x (distinct states), which is small.
#pragma once

#include <cstdint>
#include <string>

#include "props/history.h"

namespace props {

struct CheckOptions {
    std::uint64_t max_nodes = 1'000'000;  // search nodes before giving up (undecided)
    bool check_final_state = true;        // compare the final dump with History::final_state
};

enum class Verdict { linearizable, violation, undecided };

struct CheckResult {
    Verdict verdict = Verdict::linearizable;
    std::uint64_t nodes = 0;      // search nodes expanded
    std::uint64_t memo_hits = 0;  // pairs pruned by the memo
    std::string report;           // violation: the timeline of the overlapping operations
    std::string linearization;    // linearizable: the order found, one step a line
};

[[nodiscard]] CheckResult check_linearizable(const History& h, const CheckOptions& opt = {});

// A 64-bit hash of every field of s (equal states hash equal).
[[nodiscard]] std::uint64_t state_hash(const spec::State& s);

}  // namespace props
