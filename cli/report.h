// cli/report.h: `pviommu verify --html FILE`: everything verify found, as one self-contained
// HTML page (inline CSS, inline SVG, a few lines of inline JavaScript; nothing is fetched):
//   - the verdict and each phase's one-line result;
//   - the proof matrix: one row per transition, one column per invariant (and the coverage,
//     non-vacuity and base obligations), each cell the verdict and its cost (seconds, Z3 rlimit);
//   - the property mix and coverage of the sequential state machine: for each subop the
//     statuses it returned and how often, the events' cases;
//   - the concurrency results, with a timeline of the first history that is not linearizable
//     (one lane per thread, one bar per operation from its invocation to its response, in the
//     spirit of Porcupine's visualizer), or of a sample history when every one was; and the
//     timeline of a history the property rejected while a planted bug (impl/mutants.h) was
//     selected, in builds that carry them;
//   - the benchmark plot: the newest bench/results/*.svg, embedded as a data: URI.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "proofs/prove.h"
#include "props/history.h"
#include "props/linearizability.h"
#include "props/parallel.h"
#include "props/sequential.h"

namespace cli {

struct ReportPhase {
    std::string name;  // "examples on ref", "diff random", ...
    bool pass = false;
    std::string line;  // what verify's text output says of it
};

struct ReportData {
    std::string version;
    bool pass = false;
    double seconds = 0;
    std::vector<ReportPhase> phases;
    // Proofs: the obligations' results (absent: not run, prove_line says why).
    std::optional<std::vector<proofs::Result>> proofs;
    std::string prove_line;
    std::string prove_widths;  // proofs::widths_text
    // The sequential state machine.
    props::SequentialResult sequential;
    int sequential_tests = 0;  // asked for
    // The parallel property (absent: not run).
    std::optional<props::ParallelSummary> parallel;
    // The history drawn: the first that was not linearizable, or a sample one.
    std::optional<props::History> history;
    bool history_linearizable = true;
    std::string history_title;    // where it comes from (case seed, ...)
    std::string history_checker;  // the checker's report or the linearization found
    // A planted bug caught by the same property: the first history found not linearizable
    // while a concurrency mutant of impl/mutants.h was selected (builds that carry them: the
    // mutants preset). Absent: mutant_note says why.
    std::optional<props::History> mutant_history;
    std::string mutant_name;     // impl:NAME (impl/mutants.h)
    std::string mutant_what;     // the mutant's description
    std::string mutant_title;    // where it comes from (case seed, cases tried, seconds)
    std::string mutant_checker;  // the checker's report
    std::string mutant_note;     // why there is no mutant history
    // The benchmark plot (SVG text) and where it came from.
    std::string bench_svg, bench_svg_path;
};

// The newest *.svg in dir (by modification time), or "" if there is none.
[[nodiscard]] std::string newest_svg(const std::string& dir);

// The page. Every piece of text from the data is HTML-escaped.
[[nodiscard]] std::string html_report(const ReportData& d);

// Runs one sample concurrent case on impl (a few timings) and fills d's history with the first
// history that is not linearizable, else the last one (linearizable, with its linearization).
void sample_history(ReportData& d, std::uint64_t seed);

// Runs the linearizability property (props::run_parallel, stopping at the first failure) against
// impl with each concurrency mutant of impl/mutants.h selected in turn, a few cases at a time,
// until one history is not linearizable or about `seconds` have passed; fills d's mutant_*
// (mutant_note only, when this build carries no mutants or none was caught in time). Leaves no
// mutant selected.
void mutant_history(ReportData& d, std::uint64_t seed, double seconds);

}  // namespace cli
