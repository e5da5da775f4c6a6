// proofs/explore.h: explicit-state bounded model checking of ref, with the encoding checked on
// every state it reaches. The symbolic BMC of prove.h unrolls the encoding and stops at depth 3
// (measured: the query grows about 14x per step); this one enumerates instead. From the initial
// state of a fixed small world it runs EVERY statement of the world's universe (every subop
// with every argument the world lists, every event: balloon, populate, drain, destroy) on every
// distinct state, breadth first, to depth K, and checks on every state reached:
//   - ref's state invariants (spec::check_invariants with H: every INV-* of spec/pv-iommu.md,
//     INV-DEVICE-SAFE included, with the ghost set H kept per path as the trace runner keeps it,
//     D23), and
//     INV-INVALIDATE on every balloon, and R10 on every call (trace::Runner's checks);
//   - the ENCODED invariants (every INV-* and AUX-* of proofs/invariants.cpp), by Z3 on the
//     state encoded concretely (H too, and every translation its entries allow cached in the
//     IOTLBs): the induction's hypotheses hold on every reachable state;
//   - on a sample of the states, one symbolic step of the encoding with any arguments
//     (encoded_step_from): no INV-* fails one step further in the encoding.
// A violation prints a TRACE-FORMAT file (the world, then one statement per step, each followed
// by `check invariants`) that `pviommu run` replays on ref.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proofs/prove.h"
#include "spec/state.h"
#include "trace/trace.h"

namespace proofs {

// One edge of the exploration: a statement run on a reached state (with its path's H), ref's
// successor (after a planted bug, if any) and the statuses of a call's ops (empty for events).
struct Edge {
    const spec::State& pre;
    const spec::Handed& h;
    const trace::Stmt& stmt;
    const spec::State& post;
    const std::vector<int>& statuses;
};

struct ExploreOptions {
    unsigned depth = 8;
    // Called on every edge (statement executed), in breadth-first order (conformance_on_edges).
    std::function<void(const Edge&)> on_edge = {};
    // Z3 checks the encoded invariants on every `z3_every`-th new state (1: all; 0: none).
    std::size_t z3_every = 1;
    // One symbolic encoded step from every `step_every`-th new state (0: none).
    std::size_t step_every = 0;
    Options z3;  // per-query timeout
    // A planted bug (explore_mutant_names; "" none): the explorer must report a violation.
    std::string mutant;
};

struct ExploreResult {
    std::string world;
    unsigned depth = 0;                  // levels explored
    std::size_t states = 0;              // distinct states within `depth` steps, initial included
    std::size_t edges = 0;               // statements executed
    std::vector<std::size_t> per_level;  // new states first reached at each depth 0..depth
    std::size_t z3_checked = 0;          // states on which Z3 confirmed the encoded Inv
    std::size_t z3_steps = 0;            // states from which one encoded step was checked
    bool violation = false;              // an invariant failed (ref's or the encoded one)
    bool unknown = false;                // a Z3 query was not decided (a failure)
    std::string trace;                   // on violation: the replayable trace
    std::string detail;
    double seconds = 0;
};

// The fixed small worlds (names); each is a TRACE-FORMAT world plus its argument universe.
[[nodiscard]] std::vector<std::string> explore_world_names();
// Planted bugs of the step (a successor edited as a buggy model would leave it), each of which
// the explorer must catch: balloon_frees_with_tuples (INV-NO-FREE-WHILE-MAPPED),
// unmap_foreign_keeps_ref (INV-COUNT), destroy_leaves_foreign_entry (INV-NO-FREE-WHILE-MAPPED:
// R9 leaves a surviving emulator's foreign entry on the dead domain's freed frame; issue 5's
// fifth planted bug), teardown-v1 (INV-DEVICE-SAFE: R9 step 2 drops the tuples it should
// leave as orphans, as v1 did, and their frames are freed under an emulator's bus address).
[[nodiscard]] std::vector<std::string> explore_mutant_names();
// Runs the explorer on the mutant's world (xengt; stubdom for teardown-v1, whose hardware
// domain emulates without an IOMMU) with planted bug `name` (depth 4, no Z3): caught when it
// reports a violation of the expected invariant; the detail is the trace.
[[nodiscard]] MutantResult check_explore_mutant(const std::string& name);
[[nodiscard]] ExploreResult explore(const std::string& world, const ExploreOptions& opt);

// Conformance driven from the explicit BMC's edges (issue 17; proofs/encoding_matches_ref.cpp).
// Random samples almost never reach the success rows that matter; the explorer reaches every
// state within `depth` statements of a world. Its edges are bucketed by (statement kind, ref's
// status, which components of the state changed and by how much), and the first `per_bucket`
// of each bucket run as the random conformance runs a sample: ref's op as its chain of encoded
// steps, each compared (status, every successor component, R7's queues included: a balloon is
// its linearization and one deliver step per invalidation, a drain one step per request) with
// the encoded transition on the concrete pre-state. Each step also records which of the
// transition's cases held (the cases the inductive obligations are proved on, coverage/T ties them
// to next), so the run says which cases the edges reach. `ref_mutant` (ref_mutant_names; "" none)
// plants a bug in ref's successor, which must show as divergences.
struct EdgeConformanceResult {
    std::string world;
    unsigned depth = 0;
    std::size_t edges = 0;     // statements the explorer ran
    std::size_t buckets = 0;   // distinct (kind, status, change) classes among them
    std::size_t compared = 0;  // edges compared (each a chain of steps)
    std::size_t steps = 0;     // encoded steps compared
    std::size_t skipped = 0;   // edges outside the encoding (order > 0, D20's -ENOMEM)
    std::size_t divergences = 0;
    bool unknown = false;  // a query was not decided (counted among the divergences)
    std::map<std::string, std::set<std::size_t>> cases_hit;  // transition -> case indices
    double seconds = 0;
    std::string detail;  // each divergence: the statement, what differs, the pre-state
};
[[nodiscard]] EdgeConformanceResult conformance_on_edges(const std::string& world, unsigned depth,
                                                         std::size_t per_bucket,
                                                         const std::string& ref_mutant,
                                                         const Options& opt);
// The worlds conformance_on_edges runs on by default: the explorer's xengt and stubdom, and
// "inclusive" (a usable hardware domain on the 1:1 map, one emulator serving two servers of one
// guest), kept out of explore_world_names.
[[nodiscard]] std::vector<std::string> edge_conformance_worlds();
// The cases no edge reaches, each with why (every other case of every transition must be
// reached by the union of edge_conformance_worlds at depth 4, one edge per bucket).
[[nodiscard]] std::map<std::string, std::map<std::size_t, std::string>> unreached_cases();
// The number of cases of each encoded transition (its name -> t.cases.size()).
[[nodiscard]] std::map<std::string, std::size_t> case_counts();
// Planted bugs of ref's successor for conformance_on_edges: unmap_keeps_foreign_entry (a
// successful unmap_foreign_page leaves the foreign entry that R5 removes), ring_full_drop (a
// balloon drops the invalidations that R7 sends on the synchronous channel when the ring is
// full). Each is caught when the edge-driven conformance reports divergences.
[[nodiscard]] std::vector<std::string> ref_mutant_names();
[[nodiscard]] MutantResult check_ref_mutant(const std::string& name);

// The encoded invariants (every INV-* and AUX-*) on a concrete state with its ghost set H (and
// every translation its entries allow cached), at the conformance widths (frames, gfns and
// bfns below 16, domids 0..2, ioserver ids 0..1): "" when Z3 confirms them all, else the
// failing clause's name (or "unknown (...)").
[[nodiscard]] std::string encoded_invariants_on(const spec::State& st, const spec::Handed& h,
                                                const Options& opt);
// One encoded step from a concrete state (with H, every translation cached): with any
// transition and any arguments, no INV-* (but INV-COUNT, whose ghosts are the induction's)
// fails after it. "" when Z3 shows none does, else "TRANSITION breaks CLAUSE" (or
// "unknown (...)").
[[nodiscard]] std::string encoded_step_from(const spec::State& st, const spec::Handed& h,
                                            const Options& opt);

}  // namespace proofs
