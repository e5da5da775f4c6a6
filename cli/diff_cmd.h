// cli/diff_cmd.h: `pviommu diff` and the diff phases of `pviommu verify`: traces (files or
// random) run on two models through trace::diff. Exit status: 0 the models agree everywhere,
// 1 a divergence (or a random trace that fails on both), 2 malformed input (that file does not
// run; the others do).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "trace/diff.h"

namespace cli {

// The version `pviommu --version` prints and every JSON output carries ("version").
inline constexpr const char* kVersion = PVIOMMU_VERSION;

// Progress of a long run on stderr, only when stderr is a terminal (a pipe or a log gets
// nothing): `\rWHAT: DONE/TOTAL (RATE/s, ETA Ns)`, at most 5 times a second; the line is
// cleared when it goes out of scope.
class Progress {
public:
    Progress(std::string what, std::size_t total);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;
    void update(std::size_t done);
    [[nodiscard]] bool shown() const { return tty_; }

private:
    std::string what_;
    std::size_t total_;
    bool tty_;
    bool drawn_ = false;
    std::chrono::steady_clock::time_point start_, last_;
};

// The two models a diff compares; both factories non-null.
struct Models {
    trace::ModelFactory a, b;
    std::string name_a, name_b;  // as printed: "ref", "impl" (distinct even for ref vs ref)
};

struct FileDiff {
    std::string file;
    int exit_code = 0;
    std::string error;                        // the parse error, if malformed
    std::optional<trace::DiffResult> result;  // absent if malformed
};

// Diffs each file in order; a malformed or unreadable one gets its error (exit 2) and the others
// still run.
[[nodiscard]] std::vector<FileDiff> diff_files(const std::vector<std::string>& files,
                                               const Models& m);

// `FILE:LINE: divergence at STATEMENT`, both outcomes and the dump lines; failed expectations
// of either side; or `FILE: same on A and B (N statements)`.
void print_diff(const trace::DiffResult& d, const Models& m, std::ostream& out);
[[nodiscard]] nlohmann::json to_json(const trace::DiffResult& d, const Models& m);
[[nodiscard]] nlohmann::json to_json(const std::vector<FileDiff>& rs, const Models& m);

// A random campaign: traces from seeds seed, seed+1, ...; stops at the first seed that
// diverges or fails, shrinks a divergence and (if out_dir is set) writes it to
// out_dir/diverge-<seed>.trace.
struct Campaign {
    std::uint64_t seed = 1;
    std::size_t traces = 200;
    std::size_t steps = 100;
    std::optional<std::string> out_dir;
    std::function<void(std::size_t traces_done)> progress;  // after each trace, if set
};

struct CampaignResult {
    std::size_t traces_run = 0, statements = 0;
    double seconds = 0;
    std::optional<std::uint64_t> bad_seed;    // the seed that diverged or failed
    std::vector<std::string> failures;        // of bad_seed, when it failed without diverging
    std::size_t original_statements = 0;      // of bad_seed's trace
    std::size_t shrunk_statements = 0;        // of the shrunk trace
    std::optional<trace::DiffResult> shrunk;  // the shrunk divergence, lines as written
    std::string path;                         // where it was written ("" if not)
    std::string write_error;                  // why it could not be written
    [[nodiscard]] int exit_code() const { return bad_seed ? 1 : 0; }
};

[[nodiscard]] CampaignResult run_campaign(const Campaign& c, const Models& m);
void print_campaign(const Campaign& c, const CampaignResult& r, const Models& m, std::ostream& out);
[[nodiscard]] nlohmann::json to_json(const Campaign& c, const CampaignResult& r, const Models& m);

}  // namespace cli
