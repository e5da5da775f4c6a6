// cli/explain.h: the models `pviommu run` builds (ref with its live state and, for --explain,
// the row of spec/pv-iommu.md section 4 that decided each op's status), and the --explain
// rendering of a shrunk property failure: the failing trace's per-statement state change and
// rulings on ref, then where and how impl diverged.
#pragma once

#include <iosfwd>
#include <memory>
#include <string>

#include "spec/hypervisor.h"
#include "trace/runner.h"

namespace cli {

struct RunModel {
    std::unique_ptr<spec::Hypervisor> hv;
    trace::ModelHooks hooks;
};
// name: "ref" (live state; rulings when explain; with track_frames, ref records the frames and
// IOMMU entries each statement changes, so that the runner's invariant check after every
// statement covers what it touched only: spec::FrameLog) or "impl".
[[nodiscard]] RunModel make_run_model(const std::string& name, const spec::Host& host, bool explain,
                                      bool track_frames = false);

// For a shrunk failure written as a trace (props/sequential.h): runs it on ref with --explain
// (each statement's outcome, each op's deciding row, the state change), then diffs it ref
// against impl and prints the divergence: the statement, both outcomes, the dump lines that
// differ. Returns false (with the reason printed) if the trace cannot be read.
bool explain_failure(const std::string& trace_path, std::ostream& out);

}  // namespace cli
