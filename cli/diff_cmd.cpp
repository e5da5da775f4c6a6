#include "cli/diff_cmd.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "ref/hypervisor.h"
#include "trace/gen.h"

namespace cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int kExitMalformed = 2;

// A batch prints as several lines; a message wants one.
std::string one_line(const std::string& s) {
    std::string out;
    for (char ch : s) {
        if (ch == '\n')
            out += "; ";
        else
            out += ch;
    }
    return out;
}

std::string outcome_text(const std::string& outcome, bool fatal) {
    std::string s = outcome.empty() ? "(no outcome)" : outcome;
    if (fatal) s += " (stopped)";
    return s;
}

}  // namespace

Progress::Progress(std::string what, std::size_t total)
    : what_(std::move(what)),
      total_(total),
      tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
}

void Progress::update(std::size_t done) {
    if (!tty_) return;
    const auto now = std::chrono::steady_clock::now();
    if (done < total_ && now - last_ < std::chrono::milliseconds(200)) return;
    last_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? static_cast<double>(done) / secs : 0;
    const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0;
    std::fprintf(stderr, "\r\033[K%s: %zu/%zu (%.1f/s, ETA %.0f s)", what_.c_str(), done, total_,
                 rate, eta);
    std::fflush(stderr);
    drawn_ = true;
}

std::vector<FileDiff> diff_files(const std::vector<std::string>& files, const Models& m) {
    std::vector<FileDiff> out;
    for (const auto& f : files) {
        auto parsed = trace::parse_file(f);
        if (auto* err = std::get_if<trace::ParseError>(&parsed)) {
            out.push_back({err->file, kExitMalformed, err->text(), std::nullopt});
            continue;
        }
        const trace::Trace& t = std::get<trace::Trace>(parsed);
        FileDiff r{t.file, 0, {}, trace::diff(t, m.a, m.b)};
        r.exit_code = r.result->diverged() ? 1 : 0;
        out.push_back(std::move(r));
    }
    return out;
}

void print_diff(const trace::DiffResult& d, const Models& m, std::ostream& out) {
    if (const auto& v = d.divergence) {
        const std::size_t w = std::max(m.name_a.size(), m.name_b.size()) + 1;
        auto label = [w](const std::string& n) { return n + ":" + std::string(w - n.size(), ' '); };
        out << d.file << ":" << v->line << ": divergence at " << one_line(v->statement) << "\n"
            << "  " << label(m.name_a) << outcome_text(v->outcome_a, v->fatal_a) << "\n"
            << "  " << label(m.name_b) << outcome_text(v->outcome_b, v->fatal_b) << "\n";
        if (!v->dump_diff.empty()) {
            out << "  dump after it (-" << m.name_a << " only, +" << m.name_b << " only):\n";
            for (const auto& l : v->dump_diff) out << "    " << l << "\n";
        }
    } else {
        out << d.file << ": same on " << m.name_a << " and " << m.name_b << " (" << d.statements
            << " statements" << (d.stopped ? ", both stopped" : "") << ")\n";
    }
    for (const auto& f : d.failures_a) out << "  failed on " << m.name_a << ": " << f << "\n";
    for (const auto& f : d.failures_b) out << "  failed on " << m.name_b << ": " << f << "\n";
}

json to_json(const trace::DiffResult& d, const Models& m) {
    json j{{"file", d.file},
           {"model_a", m.name_a},
           {"model_b", m.name_b},
           {"statements", d.statements},
           {"same", !d.diverged()},
           {"stopped", d.stopped},
           {"failures_a", d.failures_a},
           {"failures_b", d.failures_b}};
    if (const auto& v = d.divergence) {
        j["divergence"] = json{{"line", v->line},           {"statement", v->statement},
                               {"outcome_a", v->outcome_a}, {"outcome_b", v->outcome_b},
                               {"fatal_a", v->fatal_a},     {"fatal_b", v->fatal_b},
                               {"dump_diff", v->dump_diff}};
    } else {
        j["divergence"] = nullptr;
    }
    return j;
}

json to_json(const std::vector<FileDiff>& rs, const Models& m) {
    json arr = json::array();
    for (const auto& r : rs) {
        json j = r.result ? to_json(*r.result, m) : json{{"file", r.file}, {"error", r.error}};
        j["exit"] = r.exit_code;
        arr.push_back(std::move(j));
    }
    return arr;
}

CampaignResult run_campaign(const Campaign& c, const Models& m) {
    CampaignResult r;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < c.traces && !r.bad_seed; ++i) {
        const std::uint64_t seed = c.seed + i;
        const trace::Trace t = trace::random_trace(seed, c.steps, ref::make);
        const trace::DiffResult d = trace::diff(t, m.a, m.b);
        ++r.traces_run;
        r.statements += d.statements;
        if (c.progress) c.progress(r.traces_run);
        if (d.diverged()) {
            r.bad_seed = seed;
            r.original_statements = t.statements.size();
        } else if (!d.failures_a.empty() || !d.failures_b.empty() || d.stopped) {
            // No expectations in a random trace: a failure is a broken invariant or world.
            r.bad_seed = seed;
            r.failures = d.failures_a;
            if (d.failures_b != d.failures_a)
                r.failures.insert(r.failures.end(), d.failures_b.begin(), d.failures_b.end());
        }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r.bad_seed || !r.failures.empty()) return r;

    const auto still = [&m](const trace::Trace& x) { return trace::diff(x, m.a, m.b).diverged(); };
    const trace::Trace small =
        trace::shrink(trace::random_trace(*r.bad_seed, c.steps, ref::make), still);
    r.shrunk_statements = small.statements.size();
    if (!c.out_dir) {
        r.shrunk = trace::diff(small, m.a, m.b);
        return r;
    }
    // Written with a header, then parsed back from the same text so that reported lines are
    // the file's lines.
    const fs::path path =
        fs::path(*c.out_dir) / ("diverge-" + std::to_string(*r.bad_seed) + ".trace");
    const std::string text =
        "# pviommu diff --random: seed " + std::to_string(*r.bad_seed) + ", steps " +
        std::to_string(c.steps) + "; " + m.name_a + " and " + m.name_b + " diverge (shrunk from " +
        std::to_string(r.original_statements) + " to " + std::to_string(small.statements.size()) +
        " statements).\n" + "# Replay: pviommu diff " + path.string() + "\n" + trace::print(small);
    std::error_code ec;
    fs::create_directories(path.parent_path().empty() ? fs::path(".") : path.parent_path(), ec);
    std::ofstream f(path, std::ios::binary);
    f << text;
    f.close();
    if (ec || !f) {
        r.write_error = "cannot write " + path.string() + (ec ? ": " + ec.message() : "");
        r.shrunk = trace::diff(small, m.a, m.b);
        return r;
    }
    r.path = path.string();
    auto parsed = trace::parse(r.path, text);
    r.shrunk = trace::diff(std::get<trace::Trace>(parsed), m.a, m.b);
    return r;
}

void print_campaign(const Campaign& c, const CampaignResult& r, const Models& m,
                    std::ostream& out) {
    out << "pviommu diff: " << c.traces << " random traces x " << c.steps << " steps from seed "
        << c.seed << " (" << m.name_a << " vs " << m.name_b << ")\n";
    if (r.bad_seed && !r.failures.empty()) {
        out << "seed " << *r.bad_seed << ": fails on both models:\n";
        for (const auto& f : r.failures) out << "  " << f << "\n";
        out << "replay: pviommu diff --random=1 --seed=" << *r.bad_seed << " --steps=" << c.steps
            << "\n";
        return;
    }
    if (r.bad_seed) {
        out << "seed " << *r.bad_seed << ": divergence; shrunk from " << r.original_statements
            << " to " << r.shrunk_statements << " statements\n";
        if (r.shrunk) print_diff(*r.shrunk, m, out);
        if (!r.path.empty())
            out << "wrote " << r.path << " (seed " << *r.bad_seed << ")\n";
        else
            out << "replay: pviommu diff --random=1 --seed=" << *r.bad_seed
                << " --steps=" << c.steps << "\n";
        if (!r.write_error.empty()) out << "pviommu diff: " << r.write_error << "\n";
        return;
    }
    out << r.traces_run << " traces, " << r.statements << " statements: no divergence in "
        << r.seconds << " s (" << (r.seconds > 0 ? r.traces_run / r.seconds : 0) << " traces/s)\n";
}

json to_json(const Campaign& c, const CampaignResult& r, const Models& m) {
    json j{{"version", kVersion},
           {"seed", c.seed},
           {"traces", c.traces},
           {"steps", c.steps},
           {"model_a", m.name_a},
           {"model_b", m.name_b},
           {"traces_run", r.traces_run},
           {"statements", r.statements},
           {"seconds", r.seconds},
           {"passed", !r.bad_seed},
           {"bad_seed", r.bad_seed ? json(*r.bad_seed) : json(nullptr)},
           {"failures", r.failures}};
    if (r.shrunk) {
        j["original_statements"] = r.original_statements;
        j["shrunk_statements"] = r.shrunk_statements;
        j["shrunk"] = to_json(*r.shrunk, m);
        j["path"] = r.path.empty() ? json(nullptr) : json(r.path);
        if (!r.write_error.empty()) j["write_error"] = r.write_error;
    }
    return j;
}

}  // namespace cli
