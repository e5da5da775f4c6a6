#include "cli/report.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "impl/mutants.h"
#include "spec/types.h"
#include "trace/trace.h"

namespace cli {

namespace {

std::string esc(std::string_view s) {
    std::string o;
    o.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&':
                o += "&amp;";
                break;
            case '<':
                o += "&lt;";
                break;
            case '>':
                o += "&gt;";
                break;
            case '"':
                o += "&quot;";
                break;
            case '\'':
                o += "&#39;";
                break;
            default:
                o += c;
        }
    }
    return o;
}

std::string fixed(double v, int digits) {
    std::ostringstream os;
    os << std::fixed << std::setprecision(digits) << v;
    return os.str();
}

std::string base64(std::string_view in) {
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((in.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
        const unsigned v = static_cast<unsigned char>(in[i]) << 16 |
                           static_cast<unsigned char>(in[i + 1]) << 8 |
                           static_cast<unsigned char>(in[i + 2]);
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += kAlphabet[v >> 6 & 63];
        out += kAlphabet[v & 63];
    }
    if (i < in.size()) {
        unsigned v = static_cast<unsigned char>(in[i]) << 16;
        if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
        out += kAlphabet[v >> 18 & 63];
        out += kAlphabet[v >> 12 & 63];
        out += i + 1 < in.size() ? kAlphabet[v >> 6 & 63] : '=';
        out += '=';
    }
    return out;
}

// One line of a statement (a batch prints as several lines: joined with " ; ").
std::string one_line(const trace::Stmt& s) {
    std::string t = trace::statement_text(s);
    while (!t.empty() && t.back() == '\n') t.pop_back();
    std::string o;
    for (char c : t) o += c == '\n' ? std::string(" ; ") : std::string(1, c);
    return o;
}

constexpr std::string_view kStyle = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:16px 28px}
header h1{margin:0;font-size:22px}
header .sub{opacity:.8;font-size:13px}
main{padding:8px 28px 40px;max-width:1400px}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:18px 0;padding:12px 18px}
h2{font-size:17px;margin:6px 0 10px}
.verdict{display:inline-block;padding:3px 12px;border-radius:12px;font-weight:700;margin-left:12px}
.pass{background:#d5f2dc;color:#135c27}.fail{background:#fbd9d7;color:#8a1c14}
.skip{background:#eceff3;color:#555}
table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #e2e5ea;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f0f2f5;position:sticky;top:0}
table.matrix td.c{text-align:center;min-width:40px;cursor:pointer}
table.matrix th.col{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;height:200px}
td.proved{background:#c9ecd2}td.sat{background:#d6e9fb}td.failed{background:#f5b7b1}
td.unknown{background:#fde3a7}td.none{background:#fafbfc}
.bar{height:10px;background:#5b8def;display:inline-block;vertical-align:middle}
pre{background:#f3f4f7;padding:8px;overflow:auto;font-size:12px;max-height:320px}
#detail{position:sticky;bottom:0;background:#fffbe6;border:1px solid #e6d37a;padding:6px 10px;
white-space:pre-wrap;font:12px monospace;min-height:1.4em;max-height:200px;overflow:auto}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:4px;font-size:12px}
svg text{font:11px system-ui,sans-serif}
.op:hover rect{stroke:#000;stroke-width:2}
.muted{color:#667}
img.plot{max-width:100%;border:1px solid #dde1e7}
)";

// The page's script: a details panel for hovered or clicked cells and bars, and a record of
// any script error in the page itself (#js-errors, which the render test reads back).
constexpr std::string_view kScript = R"(
(function(){
  var errors=document.getElementById('js-errors');
  window.addEventListener('error',function(e){errors.textContent+='error: '+e.message+'\n';});
  var panel=document.getElementById('detail');
  function show(e){var t=e.target.closest('[data-detail]');if(t){panel.textContent=t.getAttribute('data-detail');}}
  document.addEventListener('mouseover',show);
  document.addEventListener('click',show);
  var n=document.querySelectorAll('[data-detail]').length;
  document.getElementById('js-status').textContent='script ran: '+n+' items with details';
})();
)";

// Rows and columns of the proof matrix: "T/INV" is row T, column INV; "coverage/T",
// "non-vacuity/T" and "INV-INVALIDATE/T" are row T, column coverage, non-vacuity, INV-...;
// "init/INV" is row init; "lemma/L" row lemma.
std::pair<std::string, std::string> cell_of(const std::string& name) {
    const auto slash = name.find('/');
    if (slash == std::string::npos) return {name, ""};
    const std::string a = name.substr(0, slash), b = name.substr(slash + 1);
    if (a == "coverage" || a == "non-vacuity" || a.rfind("INV-", 0) == 0) return {b, a};
    return {a, b};
}

void proof_matrix(const ReportData& d, std::ostream& os) {
    os << "<section id=\"proofs\"><h2>Proof obligations";
    if (!d.proofs) {
        os << "<span class=\"verdict skip\">not run</span></h2><p>" << esc(d.prove_line)
           << "</p></section>\n";
        return;
    }
    const auto& rs = *d.proofs;
    std::size_t proved = 0;
    double secs = 0;
    for (const auto& r : rs) {
        proved += r.pass ? 1 : 0;
        secs += r.seconds;
    }
    const bool ok = !rs.empty() && proved == rs.size();
    os << "<span class=\"verdict " << (ok ? "pass" : "fail") << "\">" << proved << "/" << rs.size()
       << " proved</span></h2>\n<p>" << esc(d.prove_line) << ". " << esc(d.prove_widths)
       << ". Each cell: one obligation, its verdict (colour) and its cost in seconds of solver "
          "time (sum "
       << fixed(secs, 1)
       << " s); hover or click a cell for its kind, Z3 resource units, queries and, for a "
          "failure, the counterexample.</p>\n<p class=\"legend\"><span class=\"proved\" "
          "style=\"background:#c9ecd2\">proved (unsat)</span><span style=\"background:#d6e9fb\">"
          "sat (non-vacuity witness)</span><span style=\"background:#f5b7b1\">failed</span><span "
          "style=\"background:#fde3a7\">unknown (budget)</span></p>\n";
    std::vector<std::string> rows, cols;
    std::map<std::pair<std::string, std::string>, const proofs::Result*> cells;
    for (const auto& r : rs) {
        const auto [row, col] = cell_of(r.name);
        if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
        if (std::find(cols.begin(), cols.end(), col) == cols.end()) cols.push_back(col);
        cells[{row, col}] = &r;
    }
    // Invariants first (INV-*, then AUX-*, then the rest), as the obligations list them.
    std::stable_sort(cols.begin(), cols.end(), [](const std::string& a, const std::string& b) {
        const auto rank = [](const std::string& c) {
            return c.rfind("INV-", 0) == 0 ? 0 : c.rfind("AUX-", 0) == 0 ? 1 : 2;
        };
        return rank(a) < rank(b);
    });
    os << "<div style=\"overflow:auto\"><table class=\"matrix\"><tr><th>transition</th>";
    for (const auto& c : cols) os << "<th class=\"col\">" << esc(c) << "</th>";
    os << "</tr>\n";
    for (const auto& row : rows) {
        os << "<tr><th>" << esc(row) << "</th>";
        for (const auto& col : cols) {
            const auto it = cells.find({row, col});
            if (it == cells.end()) {
                os << "<td class=\"c none\"></td>";
                continue;
            }
            const proofs::Result& r = *it->second;
            const std::string cls = r.result == "proved" || r.result == "sat" ? r.result
                                    : r.pass                                  ? "proved"
                                    : r.result == "unknown"                   ? "unknown"
                                                                              : "failed";
            std::ostringstream det;
            det << r.name << ": " << r.result << " (" << proofs::obligation_kind(r.name) << "), "
                << fixed(r.seconds, 2) << " s, " << r.queries << " queries, rlimit " << r.rlimit;
            if (!r.detail.empty()) det << "\n" << r.detail;
            os << "<td class=\"c " << cls << "\" data-detail=\"" << esc(det.str()) << "\">"
               << (r.pass ? "" : "&#10007; ") << fixed(r.seconds, r.seconds < 10 ? 1 : 0)
               << "</td>";
        }
        os << "</tr>\n";
    }
    os << "</table></div></section>\n";
}

void property_mix(const ReportData& d, std::ostream& os) {
    const auto& s = d.sequential;
    os << "<section id=\"props\"><h2>Properties: impl refines ref<span class=\"verdict "
       << (s.passed ? "pass\">pass" : "fail\">FAIL") << "</span></h2>\n<p>The sequential "
       << "RapidCheck state machine: " << s.tests << "/" << d.sequential_tests
       << " command sequences passed, " << s.commands << " commands in " << fixed(s.seconds, 1)
       << " s. After every command: statuses, out fields and canonical dumps equal, every "
          "invariant holds.</p>\n";
    // Subops: "NAME STATUS" keys where STATUS is a status name; the rest are events' cases.
    std::map<std::string, std::map<std::string, std::uint64_t>> calls;
    std::set<std::string> statuses;
    std::vector<std::pair<std::string, std::uint64_t>> events;
    for (const auto& [k, n] : s.mix) {
        const auto sp = k.find(' ');
        const std::string st = sp == std::string::npos ? "" : k.substr(sp + 1);
        if (!st.empty() && (st == "0" || (st[0] == '-' && st.size() > 1 && st[1] == 'E'))) {
            calls[k.substr(0, sp)][st] += n;
            statuses.insert(st);
        } else {
            events.emplace_back(k, n);
        }
    }
    std::vector<std::string> cols(statuses.begin(), statuses.end());
    std::sort(cols.begin(), cols.end(), [](const std::string& a, const std::string& b) {
        return (a == "0") != (b == "0") ? a == "0" : a < b;
    });
    os << "<h3>Coverage: statuses each subop returned</h3><p class=\"muted\">Cells count the "
          "generated calls per subop and status (success 0, then each error); an empty cell is "
          "a status this run did not reach for that subop.</p>\n<div style=\"overflow:auto\">"
          "<table><tr><th>subop</th><th>calls</th><th>statuses reached</th>";
    for (const auto& c : cols) os << "<th>" << esc(c) << "</th>";
    os << "</tr>\n";
    for (const auto& [op, m] : calls) {
        std::uint64_t total = 0;
        for (const auto& [st, n] : m) total += n;
        os << "<tr><th>" << esc(op) << "</th><td>" << total << "</td><td>" << m.size() << "</td>";
        for (const auto& c : cols) {
            const auto it = m.find(c);
            if (it == m.end())
                os << "<td class=\"none\"></td>";
            else
                os << "<td class=\"" << (c == "0" ? "proved" : "sat") << "\">" << it->second
                   << "</td>";
        }
        os << "</tr>\n";
    }
    os << "</table></div>\n<h3>Mix of events and other commands</h3><table>";
    std::uint64_t most = 1;
    for (const auto& [k, n] : events) most = std::max(most, n);
    for (const auto& [k, n] : events)
        os << "<tr><th>" << esc(k) << "</th><td>" << n << "</td><td><span class=\"bar\" style=\""
           << "width:" << (300 * n / most + 1) << "px\"></span></td></tr>\n";
    os << "</table></section>\n";
}

// One op's short label (its subop or statement keyword) for a bar.
std::string short_label(const props::Event& e) {
    std::string t = one_line(e.op);
    if (t.rfind("call ", 0) == 0) {
        // call D SUBOP ...: the subop
        std::istringstream is(t);
        std::string w, d, subop;
        is >> w >> d >> subop;
        return subop;
    }
    if (t.rfind("batch", 0) == 0) return "batch";
    return t.substr(0, t.find(' '));
}

bool outcome_ok(const props::Outcome& o) {
    if (const auto* rs = std::get_if<std::vector<spec::OpResult>>(&o))
        return std::all_of(rs->begin(), rs->end(),
                           [](const spec::OpResult& r) { return r.status == spec::Status::ok; });
    return true;
}

// Porcupine-style: one lane per thread, one bar per operation from its invocation to its
// response. The clock values are ranked (equal values share a column), so every bar shows
// however the timings cluster.
void timeline(const props::History& h, bool bad, std::ostream& os) {
    std::vector<std::uint64_t> ticks;
    unsigned threads = 0;
    for (const auto& e : h.events) {
        ticks.push_back(e.invoked);
        ticks.push_back(e.responded);
        threads = std::max(threads, e.thread + 1);
    }
    std::sort(ticks.begin(), ticks.end());
    ticks.erase(std::unique(ticks.begin(), ticks.end()), ticks.end());
    const auto rank = [&ticks](std::uint64_t t) {
        return static_cast<double>(std::lower_bound(ticks.begin(), ticks.end(), t) - ticks.begin());
    };
    const double left = 90, width = 1000, lane = 46;
    const double step = ticks.size() > 1 ? width / static_cast<double>(ticks.size() - 1) : width;
    const double height = lane * threads + 40;
    os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << left + width + 30
       << "\" height=\"" << height << "\" role=\"img\" aria-label=\"history timeline\">\n";
    // Time axis and grid.
    os << "<line x1=\"" << left << "\" y1=\"" << height - 22 << "\" x2=\"" << left + width
       << "\" y2=\"" << height - 22 << "\" stroke=\"#999\"/>\n<text x=\"" << left << "\" y=\""
       << height - 6
       << "\" fill=\"#667\">time (order of invocations and responses) &#8594;</text>\n";
    for (unsigned t = 0; t < threads; ++t) {
        const double y = 10 + lane * t;
        os << "<rect x=\"0\" y=\"" << y - 4 << "\" width=\"" << left + width + 30 << "\" height=\""
           << lane - 4 << "\" fill=\"" << (t % 2 == 0 ? "#f7f8fa" : "#ffffff") << "\"/>\n"
           << "<text x=\"8\" y=\"" << y + 18 << "\" font-weight=\"bold\">thread " << t
           << "</text>\n";
    }
    for (const auto& e : h.events) {
        const double x0 = left + rank(e.invoked) * step;
        const double x1 = std::max(x0 + 8, left + rank(e.responded) * step);
        const double y = 12 + lane * e.thread;
        const bool ok = outcome_ok(e.outcome);
        const std::string fill = bad ? (ok ? "#f0a39c" : "#e2746a") : (ok ? "#8fc79f" : "#f2c26b");
        std::ostringstream det;
        det << "thread " << e.thread << " op " << e.index << ", clock [" << e.invoked << ", "
            << e.responded << "]\n"
            << one_line(e.op) << "\n-> " << props::outcome_text(e.outcome);
        const std::string label = short_label(e);
        os << "<g class=\"op\" data-detail=\"" << esc(det.str()) << "\"><title>" << esc(det.str())
           << "</title><rect x=\"" << x0 << "\" y=\"" << y << "\" width=\"" << x1 - x0
           << "\" height=\"" << lane - 16 << "\" rx=\"4\" fill=\"" << fill
           << "\" stroke=\"#555\"/>";
        // The label only where it fits (about 6 px a character).
        const std::size_t fits = static_cast<std::size_t>((x1 - x0 - 6) / 6);
        if (fits >= 3)
            os << "<text x=\"" << x0 + 4 << "\" y=\"" << y + 19 << "\">"
               << esc(label.size() > fits ? label.substr(0, fits - 1) + "…" : label) << "</text>";
        os << "</g>\n";
    }
    os << "</svg>\n";
}

void concurrency(const ReportData& d, std::ostream& os) {
    os << "<section id=\"concurrency\"><h2>Concurrency: histories of impl linearizable against "
          "ref";
    if (!d.parallel) {
        os << "<span class=\"verdict skip\">not run</span></h2>\n";
    } else {
        const auto& p = *d.parallel;
        os << "<span class=\"verdict " << (p.passed() ? "pass\">pass" : "fail\">FAIL")
           << "</span></h2>\n<p>" << p.cases << " random concurrent cases, " << p.histories
           << " histories, " << p.failed << " not linearizable, " << p.nodes << " search nodes, "
           << fixed(p.seconds, 1) << " s; " << p.ops << " subops (" << p.ok_ops << " succeeded), "
           << p.invalidates << " invalidates. " << esc(p.overlap.text()) << ".</p>\n";
    }
    if (d.history) {
        os << "<h3>"
           << (d.history_linearizable ? "A sample history (linearizable)"
                                      : "The first history that is NOT linearizable")
           << "</h3><p class=\"muted\">" << esc(d.history_title)
           << ". One lane per thread, one bar per operation from its invocation to its "
              "response; bars that overlap in time were concurrent, and the checker had to "
              "try their orders. "
           << (d.history_linearizable ? "Green: every op succeeded; amber: an op returned an error."
                                      : "Red: the operations of the violating history.")
           << " Hover a bar for the statement and its outcome.</p>\n<div "
              "style=\"overflow:auto\">";
        timeline(*d.history, !d.history_linearizable, os);
        os << "</div><details" << (d.history_linearizable ? "" : " open") << "><summary>"
           << (d.history_linearizable ? "the linearization found" : "the checker's report")
           << "</summary><pre>" << esc(d.history_checker) << "</pre></details>\n";
    }
    // The planted bug: what a violation looks like, from a real run of the same property.
    os << "<h3>A planted bug, caught: a history that is NOT linearizable</h3>\n";
    if (d.mutant_history) {
        os << "<div class=\"mutant\" data-mutant=\"" << esc(d.mutant_name)
           << "\"><p class=\"muted\">"
           << "With the planted bug <b>" << esc(d.mutant_name)
           << "</b> of impl/mutants.h selected (" << esc(d.mutant_what)
           << "), the linearizability property rejected this history: " << esc(d.mutant_title)
           << ". No order of its operations that respects real time gives ref's outcomes. "
              "Red: the operations of the violating history; hover a bar for its statement and "
              "outcome.</p>\n<div style=\"overflow:auto\">";
        timeline(*d.mutant_history, true, os);
        os << "</div><details><summary>the checker's report</summary><pre>" << esc(d.mutant_checker)
           << "</pre></details></div>\n";
    } else {
        os << "<p class=\"muted\" data-mutant=\"\">" << esc(d.mutant_note) << "</p>\n";
    }
    os << "</section>\n";
}

void bench(const ReportData& d, std::ostream& os) {
    os << "<section id=\"bench\"><h2>Benchmarks</h2>\n";
    if (d.bench_svg.empty()) {
        os << "<p>No plot: no bench/results/*.svg (run <code>pviommu bench --svg "
              "FILE</code>).</p>";
    } else {
        os << "<p class=\"muted\">" << esc(d.bench_svg_path)
           << " (the newest plot; ns/op against table size, impl and its peers per "
              "workload)</p>\n<img class=\"plot\" alt=\"benchmark plot\" "
              "src=\"data:image/svg+xml;base64,"
           << base64(d.bench_svg) << "\">";
    }
    os << "</section>\n";
}

}  // namespace

std::string newest_svg(const std::string& dir) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path best;
    fs::file_time_type best_time{};
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        if (e.path().extension() != ".svg") continue;
        const auto t = e.last_write_time(ec);
        if (ec) continue;
        if (best.empty() || t > best_time || (t == best_time && e.path() > best)) {
            best = e.path();
            best_time = t;
        }
    }
    return best.string();
}

std::string html_report(const ReportData& d) {
    std::ostringstream os;
    os << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>pviommu "
          "verify report</title>\n<style>"
       << kStyle << "</style></head>\n<body>\n<header><h1>pviommu verify<span class=\"verdict "
       << (d.pass ? "pass\">PASS" : "fail\">FAIL") << "</span></h1><div class=\"sub\">pviommu "
       << esc(d.version) << ", " << fixed(d.seconds, 1)
       << " s. An executable, checked model of the Xen PV IOMMU interface.</div></header>\n<main>\n"
       << "<section id=\"summary\"><h2>Phases</h2><table>";
    for (const auto& p : d.phases)
        os << "<tr><th>" << esc(p.name) << "</th><td class=\"" << (p.pass ? "proved" : "failed")
           << "\">" << (p.pass ? "pass" : "FAIL") << "</td><td>" << esc(p.line) << "</td></tr>\n";
    os << "</table></section>\n";
    proof_matrix(d, os);
    property_mix(d, os);
    concurrency(d, os);
    bench(d, os);
    os << "<div id=\"detail\">Hover or click a matrix cell or a history bar for its details.</div>"
          "\n<p class=\"muted\" id=\"js-status\">script did not run</p><pre id=\"js-errors\" "
          "style=\"display:none\"></pre>\n</main>\n<script>"
       << kScript << "</script>\n</body></html>\n";
    return os.str();
}

void sample_history(ReportData& d, std::uint64_t seed) {
    // A case whose history overlaps: try a few seeds and timings, keep the first history with
    // an overlapping pair (or the last one tried).
    for (std::uint64_t k = 0; k < 16; ++k) {
        const props::ConcurrentCase c = props::random_case(seed + k);
        props::RunOptions ro;
        ro.seed = seed * 31 + k;
        ro.stalls = true;
        ro.max_spin = 16;
        props::History h = props::run_history(c, props::impl_factory(), ro);
        const props::CheckResult cr = props::check_linearizable(h);
        const bool overlaps = props::overlap(h).pairs > 0;
        if (!overlaps && k + 1 < 16 && cr.verdict == props::Verdict::linearizable) continue;
        d.history_linearizable = cr.verdict == props::Verdict::linearizable;
        d.history_title = "case seed " + std::to_string(seed + k) + ", timing seed " +
                          std::to_string(ro.seed) + ", " + std::to_string(h.events.size()) +
                          " operations, " + std::to_string(props::overlap(h).pairs) +
                          " overlapping pairs";
        d.history_checker = d.history_linearizable ? cr.linearization : cr.report;
        d.history = std::move(h);
        return;
    }
}

void mutant_history(ReportData& d, std::uint64_t seed, double seconds) {
    if (!impl::mutants_compiled()) {
        d.mutant_note =
            "No planted-bug history: this build carries no mutants (configure with "
            "-DPVIOMMU_MUTANTS=ON, the mutants preset, whose report shows one).";
        return;
    }
    // Concurrency mutants first (only an interleaving exposes them), then the sequential ones
    // (any history that runs them is wrong); never those only devices can see.
    std::vector<impl::MutantInfo> order;
    for (const auto& m : impl::mutants())
        if (m.needs_concurrency && !m.needs_devices) order.push_back(m);
    for (const auto& m : impl::mutants())
        if (!m.needs_concurrency && !m.needs_devices) order.push_back(m);
    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    const auto elapsed = [&t0] { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    // Each mutant gets its share of the time, a few cases at a time from its own seeds.
    const double share = seconds / static_cast<double>(order.size() == 0 ? 1 : order.size());
    std::uint64_t tried = 0;
    for (std::size_t i = 0; i < order.size() && elapsed() < seconds; ++i) {
        const auto& m = order[i];
        impl::select_mutant(m.id);
        const double until = std::min(seconds, elapsed() + share);
        for (std::uint64_t chunk = 0; elapsed() < until; ++chunk) {
            props::ParallelOptions o;
            o.seed = seed + 1000 * static_cast<std::uint64_t>(m.id) + 4 * chunk;
            o.cases = 4;
            o.repetitions = 8;
            o.shrink = false;
            o.stop_at_first_failure = true;
            std::ostringstream log;
            const props::ParallelSummary r = props::run_parallel(o, log);
            tried += r.cases;
            if (r.failed == 0 || !r.first_failure_history) continue;
            impl::select_mutant(0);
            d.mutant_name = "impl:" + std::string(m.name);
            d.mutant_what = m.what;
            std::ostringstream title;
            title << "case seed " << r.first_failed_case << ", "
                  << r.first_failure_history->events.size() << " operations, "
                  << props::overlap(*r.first_failure_history).pairs
                  << " overlapping pairs; found after " << tried << " cases in " << std::fixed
                  << std::setprecision(1) << elapsed() << " s";
            d.mutant_title = title.str();
            d.mutant_checker = r.first_failure_report;
            d.mutant_history = r.first_failure_history;
            return;
        }
    }
    impl::select_mutant(0);
    std::ostringstream note;
    note << "No planted bug was caught within " << std::fixed << std::setprecision(1) << seconds
         << " s (" << tried << " cases); pviommu props --mutants hunts them at full budget.";
    d.mutant_note = note.str();
}

}  // namespace cli
