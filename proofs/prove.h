// proofs/prove.h: the proof obligations of the PV IOMMU model, run by name. No Z3 type leaks
// out of this header (z3++.h stays inside proofs/*.cpp).
//
// Obligations:
//   TRANSITION/INVARIANT   Inv AND scope(T) AND T => INVARIANT(next), unbounded, at full width
//                          (every INV-* and AUX-* for every transition; Inv is their conjunction;
//                          v2: INV-DEVICE-SAFE over the ghost set H and INV-NO-FREE-WHILE-CACHED
//                          over the ghost IOTLBs, with destroy's teardown steps and R11's fill,
//                          flush and deferred put among the transitions)
//   init/INVARIANT         Init => INVARIANT (Init: what the control plane leaves, proofs::initial)
//   coverage/T             T's cases cover T under its scope, and each case equals T's next
//   lemma/LEMMA-HOLDERS    Inv => the count facts the freeing steps use
//   INV-INVALIDATE/balloon a balloon of a frame with k tuples (orphans aside) owes exactly those
//                          k invalidations (issue 17, item 5: its deliver steps then put each on
//                          the server's ring or synchronous channel; T/INV-INVALIDATE says no
//                          step drops or duplicates one before it is drained)
//   non-vacuity/init       Inv AND the initial state, with a live domain owning a frame, is sat
//   non-vacuity/T          Inv AND scope(T) AND ok(T) is sat (each transition can succeed)
// The non-vacuity checks are shown by witnesses: states that ref reached in small worlds,
// encoded concretely (at small widths), on which Z3 confirms Inv, scope(T) and ok(T).
// Each query is bounded by Z3's rlimit (Options::rlimit), not by wall-clock time, so a verdict
// does not depend on the machine's load. An exhausted rlimit (`unknown`) is a failure.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace proofs {

// The obligations' budget is Z3's resource limit (rlimit), not wall-clock time (issue 17): a
// query's verdict is then a function of the query alone, the same on a loaded machine as on a
// quiet one (measured: wall-clock timeouts gave 157/159 under load average 4.5).
// kDefaultRlimit was sized from the measured use (README, "Budget").
inline constexpr unsigned kDefaultRlimit = 40'000'000;

struct Options {
    // Per solver query, wall clock: the tools that are no obligation (conformance, BMC, the
    // planted bugs' searches). The obligations ignore it (see obligation_timeout_ms).
    unsigned timeout_ms = 10000;
    // The obligations: Z3's rlimit per query (each try of a clause gets its share); 0 none.
    unsigned rlimit = kDefaultRlimit;
    // The obligations: an extra wall-clock cap per query (0: none, the default). Set, a
    // verdict may depend on the machine's load again.
    unsigned obligation_timeout_ms = 0;
    bool stats = false;  // collect solver statistics
    // Issue 17, item 7: a directory where every decided obligation query is written as an
    // SMT-LIB 2 file (Z3's rendering of the solver: declarations, assertions, check-sat), named
    // after the obligation and the query; "" none. Result::exported lists them.
    std::string smt2_dir;
    // Inductive obligations at Widths::small() instead of full(): a weaker claim (a universe of
    // 8 frame numbers, 3 domains, 2 ioserver ids), for the ci budget of the tests.
    bool small = false;
    // Issue 17, item 3: the obligations at Xen's widths (Widths::real(): bfn/gfn/mfn 64 bits,
    // domid 16, ioserver id 16; counts are unbounded integers at every width).
    bool real_widths = false;
    // Issue 17, item 6, shown: one of mutant_names() planted in its transition while the
    // obligations run (`pviommu prove --plant NAME`), so that a failing obligation's
    // counterexample is decoded and classified (Result::detail). "" none.
    std::string plant;
    // On a failing (sat or unknown) inductive obligation: rerun its clause at small width with
    // a wall-clock cap of this many ms (a diagnostic, not the verdict), decode the model into a
    // spec::State and classify it by running ref (Result::detail). 0: no rerun.
    unsigned explain_ms = 20000;
};

struct Result {
    std::string name;    // "map_page/INV-COUNT", "non-vacuity/balloon", ...
    std::string result;  // "proved" | "sat" (non-vacuity) | "failed" | "unknown"
    bool pass = false;
    double seconds = 0;
    unsigned queries = 0;
    std::string stats;         // "key=value ..." when Options::stats
    std::string detail;        // on failure: the smallest failing clause and the counterexample
    std::uint64_t rlimit = 0;  // Z3 resource units its queries used (all its tries)
    // With Options::smt2_dir: (file, Z3's answer "unsat" | "sat") of each decided query.
    std::vector<std::pair<std::string, std::string>> exported = {};
};

[[nodiscard]] std::vector<std::string> obligation_names();
// The kind of an obligation, for an honest count (issue 17): "inductive" (T/I and
// INV-INVALIDATE/balloon: one step under Inv), "identity" (T/I for query_caps, which changes
// no encoded component: true by construction), "base" (init/I: Init => I), "lemma",
// "coverage" (T's cases cover T and each equals T's next), "witness" (non-vacuity: Z3 evaluates
// Inv, scope and ok on one concrete state ref reached; a check, not a proof).
[[nodiscard]] std::string obligation_kind(const std::string& name);
// The solver and its version ("Z3 4.8.12.0"), and the widths the obligations run at.
[[nodiscard]] std::string solver_version();
[[nodiscard]] std::string widths_text(bool small, bool real = false);

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
    // Issue 17, item 6: the counterexample decoded into a spec::State and classified by running
    // ref from it ("encoding bug", "ref bug", "counterexample to induction", "unreachable
    // counterexample to induction"); `trace`: a replayable TRACE-FORMAT file of ref's path to
    // its pre-state, when one is known; `state`: the pre-state in the canonical dump format.
    std::string classification = "";
    std::string trace = "";
    std::string state = "";
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

// A second solver (issue 17, item 7): cvc5 (Debian package cvc5) on an SMT-LIB 2 file that
// Options::smt2_dir wrote, with a wall-clock limit per file. Returns "unsat", "sat", "unknown"
// or "error: ..." (its first line otherwise). cvc5_version() is "" when no cvc5 is on PATH.
[[nodiscard]] std::string cvc5_version();
[[nodiscard]] std::string cvc5_verdict(const std::string& file, unsigned timeout_ms);

[[nodiscard]] std::vector<std::string> mutant_names();
[[nodiscard]] MutantResult check_mutant(const std::string& name, const Options& opt);

}  // namespace proofs
