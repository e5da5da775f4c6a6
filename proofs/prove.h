// proofs/prove.h: the proof obligations of the PV IOMMU model, run by name. No Z3 type leaks
// out of this header (z3++.h stays inside proofs/*.cpp).
//
// Obligations:
//   TRANSITION/INVARIANT   Inv AND scope(T) AND T => INVARIANT(next), unbounded, at full width
//                          (every INV-* and AUX-* for every transition; Inv is their conjunction;
//                          v2: INV-DEVICE-SAFE over the ghost set H and INV-NO-FREE-WHILE-CACHED
//                          over the ghost IOTLBs, with destroy's teardown steps and R11's fill,
//                          flush and deferred put among the transitions)
//   lemma/LEMMA-HOLDERS    Inv => the count facts the freeing steps use
//   INV-INVALIDATE/balloon a balloon of a frame with k tuples (orphans aside) emits exactly those
//                          k invalidations
//   non-vacuity/init       Inv AND the initial state, with a live domain owning a frame, is sat
//   non-vacuity/T          Inv AND scope(T) AND ok(T) is sat (each transition can succeed)
// The non-vacuity checks are shown by witnesses: states that ref reached in small worlds,
// encoded concretely (at small widths), on which Z3 confirms Inv, scope(T) and ok(T).
// A timeout or `unknown` is a failure, never a pass.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace proofs {

struct Options {
    unsigned timeout_ms = 10000;  // per solver query
    bool stats = false;           // collect solver statistics
    // Inductive obligations at Widths::small() instead of full(): a weaker claim (a universe of
    // 8 frame numbers, 3 domains, 2 ioserver ids), for the ci budget of the tests.
    bool small = false;
};

struct Result {
    std::string name;    // "map_page/INV-COUNT", "non-vacuity/balloon", ...
    std::string result;  // "proved" | "sat" (non-vacuity) | "failed" | "unknown"
    bool pass = false;
    double seconds = 0;
    unsigned queries = 0;
    std::string stats;   // "key=value ..." when Options::stats
    std::string detail;  // on failure: the smallest failing clause and the counterexample
};

[[nodiscard]] std::vector<std::string> obligation_names();

// Obligations that Z3 does not yet discharge at FULL width within the per-query budget (it
// answers unknown); all of them are proved at small width (Options::small). At full width they
// are NOT proved: `pviommu prove` runs and fails them; proofs_tests with PVIOMMU_BUDGET=full
// skip them and name them as open. Every name here is one of obligation_names().
[[nodiscard]] const std::vector<std::string>& open_obligations();
[[nodiscard]] Result check_obligation(const std::string& name, const Options& opt);

// The obligations `names` on `jobs` threads (each obligation builds its own Z3 context, so
// they share nothing); `done` is called on the calling thread for each result in the order of
// `names`, as soon as it and every one before it are finished. Returns the results in order.
std::vector<Result> check_obligations(const std::vector<std::string>& names, const Options& opt,
                                      unsigned jobs,
                                      const std::function<void(const Result&)>& done = {});
// The default for `jobs`: the machine's hardware threads (at least 1).
[[nodiscard]] unsigned default_jobs();

// Planted bugs: each must give a counterexample to its expected invariant, after the planted
// step and the unmutated steps that follow it (R11: a put deferred to the end of the op): on a
// state ref reaches, encoded concretely, with the steps' arguments chosen by Z3; failing that,
// by Z3's model search at small widths from any state where Inv holds.
struct MutantResult {
    std::string mutant;
    std::string transition;
    std::string expected;  // the invariant it must break
    bool caught = false;   // a counterexample to `expected` was found
    double seconds = 0;
    std::string detail;  // the failing clause and the counterexample
};

// The encoding against ref (proofs/encoding_matches_ref.cpp): `samples` random concrete states
// of small worlds, built by driving ref with random operations from one seed; each evaluates
// one encoded transition (status and every successor component) and compares with ref.
struct ConformanceResult {
    std::uint64_t seed = 0;
    std::size_t samples = 0;
    std::size_t divergences = 0;
    std::map<std::string, std::size_t> per_op;   // samples per transition
    std::map<unsigned, std::size_t> per_status;  // samples per ref status (-errno; 0 ok)
    std::size_t orphans = 0;  // teardown steps that left an orphan (R9 v2 step 2)
    double seconds = 0;
    std::string detail;  // each divergence: the op, what differs, both states
};
[[nodiscard]] ConformanceResult conformance(std::uint64_t seed, std::size_t samples,
                                            const Options& opt);

// Bounded model checking from the initial states of `worlds` random small worlds (the
// conformance generator's, at its widths): every sequence of `depth` encoded transitions with
// any arguments; a state where an INV-* fails is a violation, printed as a TRACE-FORMAT file
// (the world statements, then one call or event per step, each followed by `check invariants`)
// that `pviommu run` replays on ref.
struct BmcResult {
    std::uint64_t seed = 0;
    unsigned depth = 0;
    std::size_t worlds = 0;  // worlds checked
    bool violation = false;
    bool unknown = false;  // some world's query was not decided (a failure)
    double seconds = 0;
    std::string trace;  // the counterexample trace, when violation
    std::string detail;
};
[[nodiscard]] BmcResult bmc(std::uint64_t seed, unsigned depth, std::size_t worlds,
                            const Options& opt);

[[nodiscard]] std::vector<std::string> mutant_names();
[[nodiscard]] MutantResult check_mutant(const std::string& name, const Options& opt);

}  // namespace proofs
