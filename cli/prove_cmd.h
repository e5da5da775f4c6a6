// cli/prove_cmd.h: `pviommu prove` and the proof phase of `pviommu verify`. Runs the Z3 proof
// obligations of proofs/ (proofs/prove.h) and prints one row per obligation. Exit status: 0
// every obligation proved (and, with --mutants, every planted bug caught), 1 otherwise.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <iosfwd>
#include <string>

#include "proofs/prove.h"

namespace cli {

struct ProveArgs {
    bool json = false;
    std::string only;             // run only obligations whose name contains it ("" = all)
    bool mutants = false;         // run the planted bugs instead of the obligations
    std::string mutant_traces;    // --mutants: write each trace and pre-state dump here
    std::string plant;            // obligations with this planted bug (proofs::Options::plant)
    bool real_widths = false;     // obligations at Xen's widths (proofs::Options::real_widths)
    bool stats = false;           // print solver statistics
    bool skip_open = false;       // skip proofs::open_obligations() (they are not proved)
    unsigned timeout_ms = 10000;  // wall clock: --conformance, --bmc-depth, --mutants' searches
    unsigned rlimit = proofs::kDefaultRlimit;  // Z3 rlimit per obligation query
    unsigned obligation_timeout_ms = 0;        // extra wall-clock cap on obligations (0 none)
    std::string smt2_dir;                      // write each decided query as SMT-LIB 2 here
    std::string solver = "z3";                 // z3 | cvc5 (then cvc5 checks every exported query)
    unsigned cvc5_timeout_ms = 10000;          // cvc5's wall-clock limit per query
    std::size_t conformance = 0;               // > 0: run that many encoding-vs-ref samples instead
    std::uint64_t seed = 1;                    // the conformance samples' seed
    unsigned edges = 0;  // > 0: conformance on the explicit BMC's edges to that depth
    std::size_t edges_per_bucket = 1;
    bool small = false;      // inductive obligations at small width (weaker claim)
    unsigned bmc_depth = 0;  // > 0: bounded model checking to that depth instead
    // With --bmc-depth: the explicit-state BMC of proofs/explore.h runs to bmc_depth on these
    // worlds ("" every one), then the symbolic BMC (the encoding unrolled) to bmc_symbolic
    // steps from bmc_worlds random small worlds.
    std::string bmc_world;
    // Z3 checks the encoded invariants on every bmc_z3_every-th state reached and takes one
    // encoded symbolic step from every bmc_step_every-th (0: none). The full budget's sampling
    // (proofs_tests): Z3 costs about 80 ms a state (v2: H, the IOTLBs) and 0.5 s a step, the
    // explorer microseconds, so checking every state would take hours at depth 8.
    std::size_t bmc_z3_every = 500;
    std::size_t bmc_step_every = 10000;
    unsigned bmc_symbolic = 2;   // the symbolic BMC's depth (0: none)
    std::size_t bmc_worlds = 3;  // random small worlds the symbolic BMC starts from
    unsigned jobs = 0;           // obligations run at once (0: the hardware threads)
};

// Registers `prove` on app; its flags fill `args`. Returns the subcommand (test `*sub`).
CLI::App* add_prove_command(CLI::App& app, ProveArgs& args);

// Runs what args select, prints the table (or JSON) to out; returns the exit status.
[[nodiscard]] int run_prove(const ProveArgs& args, std::ostream& out);

// For `pviommu verify`: every obligation, the inductive ones at small width (verify's time
// budget); `line` gets the one-line summary
// ("obligations proved K/N in S s"). Returns true when all are proved.
[[nodiscard]] bool prove_summary(std::string& line);

}  // namespace cli
