#include "props/history.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <sstream>
#include <thread>

#include "impl/hypervisor.h"
#include "props/workers.h"
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

// A reusable spinning barrier for n threads (lockstep rounds): the last to arrive resets the
// count, then opens the round; the others spin on the round number, yielding every 64 spins.
class SpinBarrier {
public:
    explicit SpinBarrier(unsigned n) : n_(n) {}
    void wait() {
        // acquire: the round this thread waits to see change.
        const unsigned round = round_.load(std::memory_order_acquire);
        // acq_rel: the last arriver sees every other arrival (and what it wrote before).
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
            // relaxed: published by the release below; no one arrives before it.
            arrived_.store(0, std::memory_order_relaxed);
            // release: opens the next round (and publishes the reset).
            round_.fetch_add(1, std::memory_order_release);
            return;
        }
        // acquire: pairs with the opening release.
        for (unsigned s = 1; round_.load(std::memory_order_acquire) == round; ++s)
            if (s % 64 == 0) std::this_thread::yield();
    }

private:
    const unsigned n_;
    std::atomic<unsigned> arrived_{0};  // threads at the barrier this round
    std::atomic<unsigned> round_{0};    // rounds opened so far
};

// Busy work the optimiser cannot drop.
void spin(unsigned n) {
    std::atomic<unsigned> sink{0};
    for (unsigned i = 0; i < n; ++i) sink.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

History run_history(const ConcurrentCase& c, const SutFactory& make_sut, const RunOptions& opt,
                    Workers* workers) {
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

    // Stalls: a plan of this run's own, unless the factory gave the SUT one.
    std::shared_ptr<FaultPlan> plan;
    if (opt.stalls && sut->fault_plan() == nullptr) {
        std::mt19937_64 r(opt.seed ^ 0x57a1157a11ULL);
        plan = std::make_shared<FaultPlan>(r());
        const std::uint32_t sleeps[] = {2, 10, 40};
        plan->max_sleep_us(sleeps[r() % 3]);
        for (FaultPoint p : all_fault_points())
            if (is_stall(p) && r() % 4 != 0) plan->rate(p, 1u << (r() % 4));
        sut->set_fault_plan(plan);
    }

    // The clock: fetch_add with acq_rel so that an operation whose response was stamped before
    // another's invocation really completed before it started (the real-time order the
    // checker relies on is the order of these stamps).
    std::atomic<std::uint64_t> clock{0};
    std::vector<std::vector<Event>> per(c.threads.size());
    const auto k = static_cast<unsigned>(c.threads.size());
    // Lockstep: which round each operation runs in (thread t's i-th op in rounds[t][i]).
    std::vector<std::vector<std::size_t>> rounds(k);
    std::size_t round_count = 0;
    if (opt.lockstep) {
        std::size_t longest = 0;
        for (const auto& t : c.threads) longest = std::max(longest, t.size());
        round_count = longest + longest / 2;
        std::mt19937_64 r(opt.seed ^ 0x10c857e9ULL);
        for (unsigned t = 0; t < k; ++t) {
            // c.threads[t].size() distinct rounds of round_count, in order: skip a round
            // while there are more rounds left than operations.
            std::size_t left = c.threads[t].size();
            for (std::size_t q = 0; q < round_count && left != 0; ++q) {
                if (round_count - q > left && r() % 3 == 0) continue;
                rounds[t].push_back(q);
                --left;
            }
        }
    }
    SpinBarrier barrier(k);
    const std::function<void(unsigned)> job = [&](unsigned t) {
        std::mt19937_64 rng(opt.seed * 0x9e3779b97f4a7c15ULL + t);
        per[t].reserve(c.threads[t].size());
        auto run_op = [&](std::size_t i) {
            if (opt.max_spin != 0) spin(static_cast<unsigned>(rng() % opt.max_spin));
            if (!opt.lockstep && opt.yield_one_in != 0 && rng() % opt.yield_one_in == 0)
                std::this_thread::yield();
            Event e;
            e.thread = t;
            e.index = i;
            e.op = c.threads[t][i];
            e.invoked = clock.fetch_add(1, std::memory_order_acq_rel);
            e.outcome = execute(*sut, e.op);
            e.responded = clock.fetch_add(1, std::memory_order_acq_rel);
            per[t].push_back(std::move(e));
        };
        if (!opt.lockstep) {
            for (std::size_t i = 0; i < c.threads[t].size(); ++i) run_op(i);
            return;
        }
        std::size_t next = 0;
        for (std::size_t q = 0; q < round_count; ++q) {
            if (q != 0) barrier.wait();
            if (next < rounds[t].size() && rounds[t][next] == q) run_op(next++);
        }
    };
    if (workers != nullptr && workers->size() >= k) {
        workers->run(k, job);
    } else {
        Workers own(k);
        own.run(k, job);
    }
    if (plan) {
        for (FaultPoint p : all_fault_points())
            h.stall_hits[static_cast<std::size_t>(p)] = plan->hits(p);
        sut->set_fault_plan(nullptr);
    }
    for (auto& v : per)
        for (auto& e : v) h.events.push_back(std::move(e));
    std::sort(h.events.begin(), h.events.end(),
              [](const Event& a, const Event& b) { return a.invoked < b.invoked; });
    h.final_state = sut->snapshot();
    return h;
}

Overlap overlap(const History& h) {
    Overlap o;
    o.ops = h.events.size();
    std::vector<bool> hit(h.events.size(), false);
    std::vector<bool> seen;
    for (std::size_t a = 0; a < h.events.size(); ++a) {
        const Event& e = h.events[a];
        if (e.thread >= seen.size()) seen.resize(e.thread + 1, false);
        if (!seen[e.thread]) {
            seen[e.thread] = true;
            ++o.threads;
        }
        // Sorted by invocation: only later events can start before e responds.
        for (std::size_t z = a + 1; z < h.events.size() && h.events[z].invoked < e.responded; ++z) {
            if (h.events[z].thread == e.thread) continue;
            ++o.pairs;
            hit[a] = true;
            hit[z] = true;
        }
    }
    for (bool b : hit) o.overlapped += b ? 1 : 0;
    return o;
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
