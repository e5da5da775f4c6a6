#include "props/history.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <sstream>
#include <thread>

#include "impl/hypervisor.h"
#include "ref/hypervisor.h"
#include "trace/runner.h"

namespace props {

using namespace spec;

bool is_data_path(const trace::Stmt& s) {
    return std::holds_alternative<trace::CallStmt>(s) ||
           std::holds_alternative<trace::BalloonStmt>(s) ||
           std::holds_alternative<trace::PopulateStmt>(s) ||
           std::holds_alternative<trace::DrainStmt>(s);
}

std::size_t ConcurrentCase::op_count() const {
    std::size_t n = 0;
    for (const auto& t : threads) n += t.size();
    return n;
}

Outcome execute(spec::Hypervisor& h, const DataOp& op) {
    if (const auto* c = std::get_if<trace::CallStmt>(&op)) {
        std::vector<pv_iommu_op> raw;
        raw.reserve(c->ops.size());
        for (const Op& o : c->ops) raw.push_back(encode(o));
        (void)h.iommu_op(c->caller, std::span<pv_iommu_op>(raw));
        std::vector<OpResult> out;
        out.reserve(raw.size());
        for (const pv_iommu_op& r : raw)
            out.push_back(OpResult{static_cast<Status>(r.status), decode(r)});
        return out;
    }
    if (const auto* b = std::get_if<trace::BalloonStmt>(&op)) return h.balloon(b->d, b->gfn);
    if (const auto* p = std::get_if<trace::PopulateStmt>(&op)) return h.populate(p->d, p->gfn);
    const auto& d = std::get<trace::DrainStmt>(op);
    return h.drain(d.target, d.id, d.count.value_or(UINT32_MAX));
}

namespace {

// One line of statement text (a batch's lines joined with "; ").
std::string one_line(const DataOp& op) {
    std::string s = trace::statement_text(op);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    std::replace(s.begin(), s.end(), '\n', ';');
    return s;
}

}  // namespace

std::string outcome_text(const Outcome& o) {
    std::ostringstream os;
    if (const auto* rs = std::get_if<std::vector<OpResult>>(&o)) {
        for (std::size_t i = 0; i < rs->size(); ++i)
            os << (i ? ", " : "") << trace::op_outcome((*rs)[i]);
    } else if (const auto* b = std::get_if<BalloonOutcome>(&o)) {
        os << "mfn=" << (b->mfn ? hex(b->mfn->v) : std::string("none"))
           << " invalidates=" << b->invalidates << " sync=" << b->synchronous;
    } else if (const auto* p = std::get_if<PopulateOutcome>(&o)) {
        os << "mfn=" << (p->mfn ? hex(p->mfn->v) : std::string("none"));
    } else {
        const auto& reqs = std::get<std::vector<IoReq>>(o);
        os << "drained [";
        for (std::size_t i = 0; i < reqs.size(); ++i) os << (i ? " " : "") << hex(reqs[i].bfn.v);
        os << "]";
    }
    return os.str();
}

namespace {

// Runs the world's statements on h; returns the first failure as text (empty: all ran).
std::string run_world(const trace::Trace& world, spec::Hypervisor& h) {
    trace::Runner r(world, h);
    while (!r.done()) {
        const trace::StepRecord rec = r.step();
        if (rec.fatal || !rec.failures.empty()) {
            std::string msg = "world line " + std::to_string(rec.line) + " (" + rec.statement + ")";
            for (const auto& f : rec.failures) msg += ": " + f;
            return msg;
        }
    }
    return {};
}

// Busy work the optimiser cannot drop.
void spin(unsigned n) {
    std::atomic<unsigned> sink{0};
    for (unsigned i = 0; i < n; ++i) sink.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

History run_history(const ConcurrentCase& c, const SutFactory& make_sut, const RunOptions& opt) {
    History h;
    ref::Hypervisor model(c.world.host);
    h.world_error = run_world(c.world, model);
    if (!h.world_error.empty()) return h;
    h.initial = model.state();
    auto sut = make_sut(c.world.host);
    h.world_error = run_world(c.world, *sut);
    if (!h.world_error.empty()) return h;
    if (dump(sut->snapshot()) != dump(h.initial)) {
        h.world_error = "the SUT's state after the world differs from ref's";
        return h;
    }

    // The clock: fetch_add with acq_rel so that an operation whose response was stamped before
    // another's invocation really completed before it started (the real-time order the
    // checker relies on is the order of these stamps).
    std::atomic<std::uint64_t> clock{0};
    std::atomic<unsigned> waiting{static_cast<unsigned>(c.threads.size())};
    std::vector<std::vector<Event>> per(c.threads.size());
    std::vector<std::thread> ts;
    for (unsigned t = 0; t < c.threads.size(); ++t) {
        ts.emplace_back([&, t] {
            std::mt19937_64 rng(opt.seed * 0x9e3779b97f4a7c15ULL + t);
            waiting.fetch_sub(1, std::memory_order_acq_rel);
            // Spin (so that released threads are on a CPU together), yielding now and then
            // (so that a thread not yet started gets one when there are fewer CPUs than threads).
            for (unsigned n = 1; waiting.load(std::memory_order_acquire) != 0; ++n)
                if (n % 64 == 0) std::this_thread::yield();
            for (std::size_t i = 0; i < c.threads[t].size(); ++i) {
                if (opt.max_spin != 0) spin(static_cast<unsigned>(rng() % opt.max_spin));
                if (opt.yield_one_in != 0 && rng() % opt.yield_one_in == 0)
                    std::this_thread::yield();
                Event e;
                e.thread = t;
                e.index = i;
                e.op = c.threads[t][i];
                e.invoked = clock.fetch_add(1, std::memory_order_acq_rel);
                e.outcome = execute(*sut, e.op);
                e.responded = clock.fetch_add(1, std::memory_order_acq_rel);
                per[t].push_back(std::move(e));
            }
        });
    }
    for (auto& t : ts) t.join();
    for (auto& v : per)
        for (auto& e : v) h.events.push_back(std::move(e));
    std::sort(h.events.begin(), h.events.end(),
              [](const Event& a, const Event& b) { return a.invoked < b.invoked; });
    h.final_state = sut->snapshot();
    return h;
}

std::string case_text(const ConcurrentCase& c) {
    std::ostringstream os;
    os << "# concurrent case: the world, then one block per thread (run in parallel)\n";
    os << trace::print(c.world);
    for (std::size_t t = 0; t < c.threads.size(); ++t) {
        os << "# thread " << t << "\n";
        for (const auto& s : c.threads[t]) os << trace::statement_text(s) << "\n";
    }
    return os.str();
}

std::string history_text(const History& h) {
    std::ostringstream os;
    for (const Event& e : h.events)
        os << "  [" << e.invoked << "," << e.responded << "] t" << e.thread << "#" << e.index << " "
           << one_line(e.op) << " -> " << outcome_text(e.outcome) << "\n";
    return os.str();
}

SutFactory impl_factory() {
    return [](const Host& host) { return impl::make(host); };
}

}  // namespace props
