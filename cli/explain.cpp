#include "cli/explain.h"

#include <ostream>
#include <sstream>
#include <variant>

#include "impl/hypervisor.h"
#include "ref/hypervisor.h"
#include "trace/diff.h"

namespace cli {

RunModel make_run_model(const std::string& name, const spec::Host& host, bool explain,
                        bool track_frames) {
    if (name != "ref") return {impl::make(host), {}};
    auto r = std::make_unique<ref::Hypervisor>(host);
    r->track_frames(track_frames);
    trace::ModelHooks hooks;
    hooks.live = &r->state();
    if (explain) {
        r->record_rulings(true);
        hooks.take_rulings = [p = r.get()]() {
            std::vector<std::string> out;
            for (const auto& w : p->take_rulings()) {
                std::string s(spec::status_name(w.status));
                s += ": " + std::string(w.subop);
                if (w.row != 0) s += " row " + std::to_string(w.row);
                s += ", " + std::string(w.why);
                out.push_back(std::move(s));
            }
            return out;
        };
    }
    return {std::move(r), std::move(hooks)};
}

bool explain_failure(const std::string& trace_path, std::ostream& out) {
    auto parsed = trace::parse_file(trace_path);
    if (const auto* err = std::get_if<trace::ParseError>(&parsed)) {
        out << "explain: " << err->text() << "\n";
        return false;
    }
    const trace::Trace& t = std::get<trace::Trace>(parsed);
    out << "--- explain (ref): each statement's outcome, the row that decided each op's status, "
           "the state change ---\n";
    RunModel m = make_run_model("ref", t.host, true);
    trace::RunOptions opt;
    opt.explain = true;
    opt.hooks = m.hooks;
    std::ostringstream text;
    (void)trace::run(t, *m.hv, opt, text);
    // The world's statements (domains, servers, privileges) as one line each: their state
    // change is the world itself, which the trace file shows.
    const std::string prefix = t.file + ":";
    bool world = false;
    std::size_t hidden = 0;
    std::istringstream is(text.str());
    for (std::string l; std::getline(is, l);) {
        if (l.rfind(prefix, 0) == 0) {
            const std::size_t colon = l.find(": ", prefix.size());
            const std::string stmt = colon == std::string::npos ? "" : l.substr(colon + 2);
            const std::string kw = stmt.substr(0, stmt.find(' '));
            world = kw == "host" || kw == "domain" || kw == "dm" || kw == "ioserver" ||
                    kw == "rmrr" || kw == "xen_gfn" || kw == "quota";
            if (!world && hidden != 0) {
                out << "    (the world's " << hidden << " new dump lines are not shown)\n";
                hidden = 0;
            }
        } else if (world && l.rfind("    ", 0) == 0) {
            ++hidden;
            continue;
        }
        out << l << "\n";
    }
    const trace::ModelFactory ref_f = [](const spec::Host& h) { return ref::make(h); };
    const trace::ModelFactory impl_f = [](const spec::Host& h) { return impl::make(h); };
    const trace::DiffResult d = trace::diff(t, ref_f, impl_f);
    if (!d.divergence) {
        out << "--- ref and impl agree on this trace (the failure needs the property's own "
               "checks) ---\n";
        for (const auto& f : d.failures_b) out << "  impl: " << f << "\n";
        return true;
    }
    const trace::Divergence& v = *d.divergence;
    out << "--- impl diverges from ref at " << t.file << ":" << v.line << " ---\n"
        << "  " << v.statement << "\n"
        << "  ref:  " << v.outcome_a << (v.fatal_a ? " (stopped)" : "") << "\n"
        << "  impl: " << v.outcome_b << (v.fatal_b ? " (stopped)" : "") << "\n";
    if (!v.dump_diff.empty()) {
        out << "  state after it (- only ref, + only impl):\n";
        for (const auto& l : v.dump_diff) out << "    " << l << "\n";
    }
    for (const auto& f : d.failures_b) out << "  impl: " << f << "\n";
    return true;
}

}  // namespace cli
