// proofs/encoding.h: the PV IOMMU state and transitions as SMT terms (Z3), for the proof files
// of this folder only. It includes z3++.h: never include it from a header that code outside
// proofs/ includes (proofs/prove.h is the public face).
//
// The encoding is described in spec/pv-iommu.md, section "Proof encoding". In short:
//  - one bit-vector sort per kind of number: Addr (mfn, gfn and bfn share it, so that the 1:1
//    rule "bfn m maps frame m" is an equality), Dom, Sid (ioserver id), Cnt (counts);
//  - every map of spec::State is a Z3 array over (concatenations of) those sorts, with no bound
//    on how many frames, domains, servers or tuples exist;
//  - the reference counts are tied to the sets that hold them by ghost permutations
//    (Hyperkernel): per frame, the slots [0, n) list exactly the holders of one class;
//  - (v2) R11's deferred puts are a per-frame count of references whose holder is gone but
//    whose put waits for IOTLB flushes (pend, await), each usable context's IOTLB is a ghost
//    set of cached translations (tlb), and INV-DEVICE-SAFE's H (D23) is ghost state too (hk, hm).
#pragma once

#include <z3++.h>

#include <optional>
#include <string>
#include <vector>

#include "proofs/prove.h"

namespace proofs {

// Bit widths. Proofs run at full(); counterexample search and non-vacuity at small(). Counts
// (reference counts, ghost counts, slot indices, max_count, armed faults) are integers (v2:
// R11's deferred references move one unit between the terms of INV-COUNT's sum, which linear
// arithmetic decides at once and the bit-blasted adders of a bit-vector sort did not: measured,
// unmap_page/INV-COUNT's local case was unknown at 20 s with 16-bit counts); nothing bounds them
// but max_count (INV-MAX-COUNT).
struct Widths {
    unsigned addr = 8;  // mfn, gfn, bfn
    unsigned dom = 8;   // domid; the all-ones value stands for DOMID_SELF
    unsigned sid = 8;   // ioserver id
    static Widths full() { return {}; }
    static Widths small() { return {3, 2, 1}; }
    // Xen's widths (issue 17, item 3): bfn/gfn/mfn 64 bits, domid 16, ioserver id 16. (The
    // encoding's DOMID_SELF is the all-ones value, 0xffff here where Xen's is 0x7ff0: only its
    // being no live domain matters, AUX-WF.)
    static Widths real() { return {64, 16, 16}; }
};

// Frame states (2 bits) and explicit IOMMU entry kinds (2 bits); identity entries are a rule
// (D18), never stored, so the effective kind (3 bits) adds kIdentity.
enum : unsigned { kFree = 0, kXen = 1, kOwned = 2 };
enum : unsigned { kNone = 0, kLocal = 1, kForeign = 2, kScratch = 3, kIdentity = 4 };
// Status codes are -spec::Status (8 bits): 0 ok, 1 -EPERM, 2 -ENOENT, 5 -EIO, ...
enum : unsigned {
    kOk = 0,
    kEperm = 1,
    kEnoent = 2,
    kEio = 5,
    kEnxio = 6,
    kEnomem = 12,
    kEacces = 13,
    kEbusy = 16,
    kEexist = 17,
    kEnodev = 19,
    kEinval = 22,
    kEoverflow = 75
};

// Planted bugs in the transitions (STYLE: a suite that catches none is broken).
enum class Mutant {
    none,
    balloon_frees_with_tuples,     // balloon frees the frame whatever holds references
    swap_keeps_tuple_drops_ref,    // balloon's swap drops the reference, keeps the tuple
    lookup_identity_no_ref,        // lookup on an identity entry adds a tuple, no reference
    unmap_foreign_keeps_entry,     // unmap_foreign_page leaves the foreign entry behind
    map_skips_rmrr,                // map_page / map_foreign_page skip the RMRR check
    map_skips_max_count,           // map_page skips D19's max_count check
    destroy_leaves_foreign_entry,  // R9: a dropped tuple's foreign entry keeps its frame
    teardown_v1,                   // R9 step 2 drops every tuple of a server of the target (v1)
    put_before_flush,              // R11: a deferred put does not wait for the IOTLB flush
    // Planted in `next` only, its cases left right (issue 17): unmap_foreign_page's successor
    // drops the reference but keeps the tuple. The inductive obligations read the cases, so
    // only coverage/unmap_foreign_page (each case equals next) can catch it.
    unmap_foreign_next_keeps_tuple,
    // R7 (issue 17, item 5): a delivery into a full ring drops the invalidation instead of
    // sending it on the synchronous channel.
    deliver_ring_full_drop,
    // Issue 17, item 4: the control-plane statements as transitions, one planted bug each.
    create_domain_self,        // `domain` accepts DOMID_SELF (a trace's domid above 0x7fef)
    dm_replaces_privileges,    // `dm E over T` replaces E's privileges instead of adding one
    ioserver_over_existing,    // `ioserver` replaces an existing server (the trace's exit 2)
    rmrr_over_mapped_entry,    // `rmrr` after the first call, over a mapped bfn (exit 2)
    xen_gfn_takes_used_frame,  // `xen_gfn` takes any frame, not the lowest free one (R8)
    fault_count_off_by_one,    // `fault iommu_map count=N` arms N - 1 faults (D10)
    // Issue 17, item 4, D20: quotas.
    map_page_skips_quota,     // map_page skips D20's -ENOMEM check
    map_foreign_skips_quota,  // map_foreign_page skips D20's -ENOMEM check
};

struct Sorts {
    z3::context& ctx;
    Widths w;
    z3::sort A, D, S, C, K2, B;   // addr, dom, sid, count (Int), 2-bit state/kind, bool
    z3::sort DA, DD, DS, BDS, T;  // index sorts: (d,a), (d,d), (d,s), (b,d,s), (m,b,d,s)
    z3::sort HK;                  // (e,b,d,s): a key of INV-DEVICE-SAFE's ghost set H
    std::string tag;              // prefix of a transition's argument names (BMC: one set per step)
    Sorts(z3::context& c, Widths w);
};

// The state. Arrays map a (concatenated) index to a value; comments give index -> value.
struct St {
    // Host (static: no transition below changes it).
    z3::expr host_iommu;  // Bool
    z3::expr mode;        // K2: 0 inclusive, 1 strict, 2 passthrough
    z3::expr nframes;     // A: frames 0 .. nframes-1 exist (the 1:1 rule reads it)
    z3::expr maxc;        // C: D19's max_count (a count never exceeds it: INV-MAX-COUNT)
    // Frames.
    z3::expr fstate;  // A -> K2
    z3::expr owner;   // A -> D
    z3::expr count;   // A -> C
    z3::expr alloc;   // A -> Bool (PGC_allocated)
    // Domains (create_domain makes one live; destroy_finish clears a domain and what names it).
    z3::expr live, hw, iommu_hw;  // D -> Bool
    z3::expr dm;                  // (e,t) -> Bool: `dm e over t`
    z3::expr rmrr;                // (d,bfn) -> Bool: bfn lies in an RMRR of d
    z3::expr p2mv;                // (d,gfn) -> Bool: gfn has a frame
    z3::expr p2m;                 // (d,gfn) -> A
    z3::expr dying;               // D -> Bool: destroy_begin ran, destroy_finish not yet (v2)
    // IOREQ servers (ioserver creates one; only destroy_finish removes any).
    z3::expr srv;  // (d,s) -> Bool
    z3::expr emu;  // (d,s) -> D
    // IOMMU contexts: explicit entries.
    z3::expr ekind;    // (c,bfn) -> K2 (kNone .. kScratch)
    z3::expr emfn;     // (c,bfn) -> A
    z3::expr removed;  // (c,bfn) -> Bool: identity removed by unmap_page
    // M2B.
    z3::expr m2b;    // (m,b,d,s) -> Bool
    z3::expr swap;   // (m,b,d,s) -> Bool
    z3::expr temu;   // (m,b,d,s) -> D: the tuple's emulator (D22)
    z3::expr torph;  // (m,b,d,s) -> Bool: an orphan of R9 v2 step 2 (D22)
    z3::expr fault;  // C: pending injected -EIO (D10)
    // Ghosts: the reference holders of each frame, by class (see "Proof encoding").
    z3::expr nT0, nT1;        // A -> C: tuples that stay at a balloon (0) / that a swap drops (1)
    z3::expr slotT0, slotT1;  // (m, i) -> (b,d,s): two-index arrays
    z3::expr idxT;            // (m,b,d,s) -> C
    z3::expr tcls;            // (m,b,d,s) -> Bool: the tuple's class (AUX-CLASS)
    z3::expr nL;              // A -> C: local entries
    z3::expr slotL;           // (m, i) -> (c,bfn): a two-index array
    z3::expr idxL;            // (c,bfn) -> C
    z3::expr p2mg;            // A -> A: the gfn of an allocated frame in its owner's P2M
    // R11 (v2): deferred puts and the IOTLBs.
    z3::expr pend;   // A -> C: references whose holder is gone, their put deferred (INV-COUNT)
    z3::expr await;  // (c, m) -> Bool, two-index: a deferred reference of m awaits c's flush
    z3::expr tlb;    // ((c,bfn), m) -> Bool, two-index: c's IOTLB caches bfn -> frame m
    // INV-DEVICE-SAFE's ghost set H (D23): key (e,b,d,s) present, and the frame it was handed.
    z3::expr hk;  // HK -> Bool
    z3::expr hm;  // HK -> A
    // R7's delivery (issue 17, item 5). A server (d,s) has a buffered ring of rcap 8-byte slots
    // (static: ref's ring_slots) holding rlen requests of 2 slots each, and a synchronous channel;
    // per (bfn, d, s): the requests naming bfn on the ring (rq) and on the synchronous channel
    // (sq), the invalidations a balloon owes the server for bfn and has not delivered yet (pdl:
    // the balloon's linearization adds them, one `deliver` step each moves one into the ring,
    // or onto the synchronous channel when the ring lacks 2 free slots), and the ghost `owe`:
    // owed and not yet drained (INV-INVALIDATE: owe = rq + sq + pdl, none dropped, none twice).
    z3::expr rcap;  // DS -> C
    z3::expr rlen;  // DS -> C
    z3::expr rq;    // (b,d,s) -> C
    z3::expr sq;    // (b,d,s) -> C
    z3::expr pdl;   // (b,d,s) -> C
    z3::expr owe;   // (b,d,s) -> C
    // D20 (issue 17, item 4): per domain its quota (-1: none; set by create_domain) and its
    // holdings counter (the tuples it serves, orphans included, plus its local entries; +1 and
    // -1 with each, tied to those sets by conformance, not by proof: a cardinality), and per
    // (emulator, frame) the ghost count of the emulator's tuples of the frame that a balloon's
    // swap drops (class 1), so that a balloon takes each emulator's holdings down by them.
    z3::expr quota;  // D -> C
    z3::expr hold;   // D -> C
    z3::expr hsw;    // (e,m) -> C
};

St fresh_state(const Sorts& so, const std::string& prefix);
St ite_state(const z3::expr& c, const St& a, const St& b);
// Every component of a equals b's (a conjunction of array and scalar equalities).
z3::expr same_state(const St& a, const St& b);

// A named boolean fact: a rule's check, an invariant clause, an assumption.
struct Clause {
    std::string name;  // "R3: privilege", "INV-COUNT/sum", ...
    z3::expr e;
};

// same_state, one named equality per component (a failing one names what differs).
std::vector<Clause> same_fields(const St& a, const St& b);

// A check of the ruled order: `ok` when it holds, else `status` (the first failing one wins).
struct Check {
    std::string rule;
    z3::expr holds;
    unsigned status;
};

// One subop or event from a pre-state: (ok, next). `scope` are the assumptions under which
// the encoding applies (order 0, a live caller, the arguments' picks, no count overflow);
// `ok` is the conjunction of `checks`; `status` the first failing check's code (kOk if none);
// `next` the successor (the pre-state with edits when ok; on -EIO, the consumed fault).
struct Transition {
    std::string name;
    std::vector<Clause> scope;
    std::vector<Check> checks;
    z3::expr ok;
    z3::expr status;
    St next;
    std::optional<z3::expr> frame;  // balloon: the frame that left the P2M
    z3::expr_vector args;           // the operation's arguments (for printing counterexamples)
    // The same successor as guarded cases: next == the St of a case whose guard holds. The
    // obligations are proved case by case (smaller queries); coverage/T proves that some case
    // holds under scope and that each case equals next (issue 17), so the cases are T.
    std::vector<std::pair<z3::expr, St>> cases;
    std::optional<z3::expr> out = std::nullopt;  // query_caps: the map_cap bit it returns (Bool)
    // Free constants of the case guards that stand for a witness of an existential (a case
    // "another tuple w of E still uses bfn" covers `exists w` for every w): coverage/T
    // quantifies them existentially ("some case holds for some choice of them").
    std::vector<z3::expr> case_vars = {};
};

// Transitions by name: map_foreign_page, unmap_foreign_page, lookup_foreign_page, map_page,
// unmap_page, balloon, populate, and destroy (R9 v2) as its teardown steps destroy_begin,
// destroy_drop_tuple (steps 1 and 2), destroy_drop_local (step 4; balloon is step 3) and
// destroy_finish; query_caps (the identity on this state), drain and deliver; and R11's
// tlb_fill (a device's translation cached), flush (a context's IOTLB) and put (the deferred
// references of a frame). A removing op is its removal step; its flush and put follow as steps.
// (Issue 17, item 5) R7's `deliver` (one invalidation a balloon owes, into the ring or onto the
// synchronous channel) follows a balloon's linearization once per invalidation; drain takes
// one request (the ring's first, D11) per step.
// (Issue 17, item 4) The control-plane statements of spec/trace-format.md section 2:
// create_domain (`domain D ...` with ram=0; ram=N is it then N populates, see README), dm,
// ioserver, rmrr (one bfn; a range of N is N steps), xen_gfn and fault. A statement's
// malformed inputs (the trace's exit 2) are scope: the statement is not issued.
std::vector<std::string> transition_names();
// Z3's resource count of the solver's context (cumulative over its queries: the last read is
// an obligation's total); 0 if Z3 reports none.
std::uint64_t rlimit_count(const z3::solver& s);
// The control-plane ones among them (no explicit-BMC edge is one: the explorer's worlds are
// built before it runs; the random conformance compares them).
bool is_control_plane(const std::string& transition);
Transition make_transition(const Sorts& so, const St& s, const std::string& name, Mutant mut);

// The invariants: INV-* of spec/pv-iommu.md and the auxiliary AUX-* the induction needs. Each
// returns named clauses (quantified over every frame, domain, server, tuple).
std::vector<std::string> invariant_names();
std::vector<Clause> invariant(const Sorts& so, const St& s, const std::string& name);
std::vector<Clause> all_invariants(const Sorts& so, const St& s);

// A fresh host, as create/populate leave it before any subop: no tuples, entries or faults.
std::vector<Clause> initial(const Sorts& so, const St& s);

// Non-vacuity by a witness (proofs/encoding_matches_ref.cpp): a state that ref reached in a
// random small world, encoded concretely, satisfies Inv, and `what` (a transition name, or
// "init" with the initial-state clauses) has its scope and ok there. sat is the pass. A witness
// rather than a model search: measured, the search (MBQI) took 0.7 s to over 40 s per
// transition depending on the seed once D19 was encoded; the witness takes milliseconds.
Result non_vacuity_by_witness(const std::string& what, const Options& opt);

// A planted bug caught on a witness: among the states that ref reaches in random small worlds
// (driven as by the conformance test, each op as its chain of steps, every translation the
// entries allow cached before each op), one state before a step `at`, encoded concretely,
// where Inv holds and `transition` planted with `mut`, with arguments Z3 chooses, then the
// steps `then` (unmutated, arguments chosen too) break a clause of `expected`. Tried on at
// most `max_states` such states. `detail` gets the state and the steps; false when none is
// found (or a query is unknown: `detail` says so).
bool mutant_by_witness(const std::string& transition, Mutant mut,
                       const std::vector<std::string>& then, const std::string& expected,
                       const std::string& at, std::size_t max_states, const Options& opt,
                       std::string& detail, struct Explanation* explained = nullptr);

// Counterexamples as states (issue 17, item 6): a model of a failing query at a small width,
// decoded into a spec::State (with the encoding's R11 ghosts and H) and the transition's
// arguments; ref (or the C++ counterpart of an R11/R9 step) runs from the decoded pre-state:
// "encoding bug" (ref does not do what the encoded transition did), "ref bug" (ref does it and
// breaks a state invariant), "counterexample to induction" (ref does it and keeps ref's
// invariants), "unreachable counterexample to induction" (the pre-state breaks ref's own
// invariants, so no run of ref reaches it; ref is not run). `text` says which and why, and
// whether the explicit-state explorer (proofs/explore.h) reaches the pre-state within
// kReachDepth statements of one of its worlds; if not, the pre-state in the canonical dump
// format (`dump`). A witness-found counterexample (mutant_by_witness) has a ref path to its
// pre-state, printed as a replayable trace (`trace`) instead.
struct Explanation {
    std::string classification;
    std::string text;
    std::string dump;
    std::string trace;
};
inline constexpr unsigned kReachDepth = 3;
// `pre`, `t` (its arguments) and `post` (the successor the failing clause is about) evaluated
// in `m`. Only at widths of at most 4/2/1 bits (Widths::small()).
Explanation explain_model(const Sorts& so, const z3::model& m, const St& pre, const Transition& t,
                          const St& post, const std::string& expected);

// Derived predicates (shared with the tests).
z3::expr usable(const Sorts& so, const St& s, const z3::expr& c);
z3::expr privileged(const Sorts& so, const St& s, const z3::expr& e, const z3::expr& t);
z3::expr eff_kind(const Sorts& so, const St& s, const z3::expr& c, const z3::expr& b);  // 3 bits
// D25, F13: where a DMA of emulator e's device to bus address b lands: E's scratch page, a frame
// (which one: mfn), or a fault (neither).
struct View {
    z3::expr scratch, frame, mfn;
};
View dma_view(const Sorts& so, const St& s, const z3::expr& e, const z3::expr& b);

}  // namespace proofs
