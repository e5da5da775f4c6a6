#include "props/linearizability.h"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <unordered_set>

#include "ref/hypervisor.h"

namespace props {

using namespace spec;

// ---------------------------------------------------------------------------------------------
// Hashing

namespace {

struct Hasher {
    std::uint64_t h = 0x243f6a8885a308d3ULL;
    void add(std::uint64_t v) {
        // splitmix64 of the running value xor v: order-sensitive, well mixed.
        std::uint64_t z = (h ^ v) + 0x9e3779b97f4a7c15ULL;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        h = z ^ (z >> 31);
    }
};

}  // namespace

std::uint64_t state_hash(const State& s) {
    Hasher x;
    x.add(s.host.iommu);
    x.add(static_cast<std::uint64_t>(s.host.mode));
    x.add(s.host.max_order);
    x.add(s.host.frames);
    x.add(s.host.max_count);
    x.add(s.fault_iommu_map);
    x.add(s.frames.size());
    for (const auto& [m, f] : s.frames) {
        x.add(m.v);
        x.add(static_cast<std::uint64_t>(f.state) | std::uint64_t{f.owner.v} << 8 |
              std::uint64_t{f.allocated} << 24 | std::uint64_t{f.count} << 32);
    }
    x.add(s.domains.size());
    for (const auto& [d, dom] : s.domains) {
        x.add(d.v);
        x.add(std::uint64_t{dom.hardware} | std::uint64_t{dom.iommu_hw} << 1);
        x.add(dom.quota ? std::uint64_t{*dom.quota} + 1 : 0);
        x.add(dom.p2m.size());
        for (const auto& [g, m] : dom.p2m) {
            x.add(g.v);
            x.add(m.v);
        }
        x.add(dom.rmrr.size());
        for (const Range& r : dom.rmrr) {
            x.add(r.first.v);
            x.add(r.count);
        }
        x.add(dom.dm_over.size());
        for (DomId t : dom.dm_over) x.add(t.v);
        x.add(dom.iommu.size());
        for (const auto& [b, e] : dom.iommu) {
            x.add(b.v);
            x.add(e.mfn.v);
            x.add(std::uint64_t{e.perms} | static_cast<std::uint64_t>(e.kind) << 8);
        }
        x.add(dom.removed_identity.size());
        for (Bfn b : dom.removed_identity) x.add(b.v);
    }
    x.add(s.servers.size());
    for (const auto& [k, srv] : s.servers) {
        x.add(std::uint64_t{k.first.v} << 16 | k.second.v);
        x.add(std::uint64_t{srv.emulator.v} << 32 | srv.ring_slots);
        for (const auto* q : {&srv.buffered, &srv.sync}) {
            x.add(q->size());
            for (const IoReq& r : *q) {
                x.add(r.type);
                x.add(r.bfn.v);
            }
        }
    }
    x.add(s.m2b.size());
    for (const auto& [m, ts] : s.m2b) {
        x.add(m.v);
        x.add(ts.size());
        for (const auto& [t, info] : ts) {
            x.add(t.bfn.v);
            x.add(std::uint64_t{t.domid.v} << 16 | t.ioserver.v);
            x.add(info.swap);
            x.add(std::uint64_t{info.emulator.v} << 1 | info.orphan);
        }
    }
    return x.h;
}

// ---------------------------------------------------------------------------------------------
// The search

namespace {

enum class StepKind { op, balloon, delivery, populate, drain };

struct Step {
    StepKind kind = StepKind::op;
    std::size_t ev = 0;   // index into History::events
    std::size_t sub = 0;  // op of a batch, or invalidate of a balloon
    std::uint64_t inv = 0, resp = 0;
    long prev = -1;  // the step that must be taken before this one
};

// A balloon's invalidates between its linearization point and its last delivery.
struct InFlight {
    std::vector<std::pair<ServerKey, Bfn>> reqs;  // F8 order, fixed at L
    std::size_t next = 0;                         // the next one to deliver
    std::uint32_t sync = 0;                       // delivered on the synchronous channel so far
    bool operator==(const InFlight&) const = default;
};

struct Node {
    std::shared_ptr<const ref::Hypervisor> hv;  // the model state
    std::map<std::size_t, InFlight> in_flight;  // by balloon event
    std::map<Mfn, std::size_t> freed;           // free frame -> event that freed it (this run)
    std::uint64_t hash = 0;

    [[nodiscard]] const State& s() const { return hv->state(); }
    void rehash() {
        Hasher x;
        x.add(state_hash(s()));
        for (const auto& [ev, f] : in_flight) {
            x.add(ev);
            x.add(f.next);
            x.add(f.sync);
            for (const auto& [k, b] : f.reqs) {
                x.add(std::uint64_t{k.first.v} << 16 | k.second.v);
                x.add(b.v);
            }
        }
        for (const auto& [m, ev] : freed) {
            x.add(m.v);
            x.add(ev);
        }
        hash = x.h;
    }
};

// Frames owned in `before` and free in `after` were freed by event ev.
void note_frees(const State& before, const State& after, std::size_t ev,
                std::map<Mfn, std::size_t>& freed) {
    for (const auto& [m, f] : before.frames)
        if (f.state == FrameState::owned && after.frame(m).state == FrameState::free) freed[m] = ev;
}

std::string one_line(const trace::Stmt& op) {
    std::string s = trace::statement_text(op);
    while (!s.empty() && s.back() == '\n') s.pop_back();
    std::replace(s.begin(), s.end(), '\n', ';');
    return s;
}

class Search {
public:
    Search(const History& h, const CheckOptions& opt) : h_(h), opt_(opt) {}

    CheckResult run() {
        CheckResult res;
        if (!build_steps(res)) return res;
        if (opt_.check_final_state && h_.final_state) final_dump_ = dump(*h_.final_state);
        done_.assign(steps_.size(), false);
        Node root;
        root.hv = std::make_shared<const ref::Hypervisor>(h_.initial);
        root.rehash();
        std::vector<std::size_t> order;
        best_node_ = root;
        const bool ok = dfs(root, order);
        res.nodes = nodes_;
        res.memo_hits = memo_hits_;
        if (ok) {
            res.verdict = Verdict::linearizable;
            std::ostringstream os;
            for (std::size_t i : found_) os << "  " << step_text(i) << "\n";
            res.linearization = os.str();
        } else if (gave_up_) {
            res.verdict = Verdict::undecided;
            res.report =
                "undecided: more than " + std::to_string(opt_.max_nodes) + " search nodes\n";
        } else {
            res.verdict = Verdict::violation;
            res.report = violation_report();
        }
        return res;
    }

private:
    // One or more steps per event; false (with a report) if an outcome does not even have
    // the shape its statement calls for.
    bool build_steps(CheckResult& res) {
        for (std::size_t ev = 0; ev < h_.events.size(); ++ev) {
            const Event& e = h_.events[ev];
            auto add = [&](StepKind k, std::size_t sub, long prev) {
                steps_.push_back(Step{k, ev, sub, e.invoked, e.responded, prev});
                return static_cast<long>(steps_.size() - 1);
            };
            bool shape = true;
            if (const auto* c = std::get_if<trace::CallStmt>(&e.op)) {
                const auto* rs = std::get_if<std::vector<OpResult>>(&e.outcome);
                shape = rs != nullptr && rs->size() == c->ops.size();
                long prev = -1;
                for (std::size_t i = 0; shape && i < c->ops.size(); ++i)
                    prev = add(StepKind::op, i, prev);
            } else if (std::holds_alternative<trace::BalloonStmt>(e.op)) {
                const auto* b = std::get_if<BalloonOutcome>(&e.outcome);
                shape = b != nullptr && b->invalidates <= 4096 && b->synchronous <= b->invalidates;
                if (shape) {
                    long prev = add(StepKind::balloon, 0, -1);
                    for (std::uint32_t i = 0; i < b->invalidates; ++i)
                        prev = add(StepKind::delivery, i, prev);
                }
            } else if (std::holds_alternative<trace::PopulateStmt>(e.op)) {
                shape = std::holds_alternative<PopulateOutcome>(e.outcome);
                if (shape) add(StepKind::populate, 0, -1);
            } else {
                shape = std::holds_alternative<std::vector<IoReq>>(e.outcome);
                if (shape) add(StepKind::drain, 0, -1);
            }
            if (!shape) {
                res.verdict = Verdict::violation;
                res.report = "malformed outcome: t" + std::to_string(e.thread) + "#" +
                             std::to_string(e.index) + " " + one_line(e.op) + " -> " +
                             outcome_text(e.outcome) + "\n";
                return false;
            }
        }
        return true;
    }

    bool dfs(const Node& n, std::vector<std::size_t>& order) {
        if (order.size() > best_depth_ || best_depth_ == 0) {
            best_depth_ = order.size();
            best_order_ = order;
            best_node_ = n;
        }
        if (order.size() == steps_.size()) {
            if (final_dump_.empty() || dump(n.s()) == final_dump_) {
                found_ = order;
                return true;
            }
            if (leaf_mismatch_.empty()) leaf_mismatch_ = dump(n.s());
            return false;
        }
        if (++nodes_ > opt_.max_nodes) {
            gave_up_ = true;
            return false;
        }
        std::string key(reinterpret_cast<const char*>(&n.hash), sizeof n.hash);
        key.reserve(sizeof n.hash + done_.size() / 8 + 1);
        for (std::size_t i = 0; i < done_.size(); i += 8) {
            char c = 0;
            for (std::size_t j = i; j < std::min(i + 8, done_.size()); ++j)
                if (done_[j]) c = static_cast<char>(c | (1 << (j - i)));
            key.push_back(c);
        }
        if (!memo_.insert(key).second) {
            ++memo_hits_;
            return false;
        }
        std::uint64_t min_resp = UINT64_MAX;
        for (std::size_t i = 0; i < steps_.size(); ++i)
            if (!done_[i]) min_resp = std::min(min_resp, steps_[i].resp);
        for (std::size_t i = 0; i < steps_.size(); ++i) {
            const Step& st = steps_[i];
            if (done_[i] || st.inv >= min_resp) continue;
            if (st.prev >= 0 && !done_[static_cast<std::size_t>(st.prev)]) continue;
            std::optional<Node> c = apply(n, st);
            if (!c) continue;
            done_[i] = true;
            order.push_back(i);
            const bool ok = dfs(*c, order);
            order.pop_back();
            done_[i] = false;
            if (ok) return true;
            if (gave_up_) return false;
        }
        return false;
    }

    // Takes step st from n: the child node, or nullopt if the model's answer differs from the
    // recorded one (or the model cannot run the statement there).
    std::optional<Node> apply(const Node& n, const Step& st) const {
        try {
            return apply_step(n, st);
        } catch (const std::exception&) {
            return std::nullopt;  // e.g. a drain of a server that does not exist in the model
        }
    }

    std::optional<Node> apply_step(const Node& n, const Step& st) const {
        const Event& e = h_.events[st.ev];
        Node c;
        c.in_flight = n.in_flight;
        c.freed = n.freed;
        switch (st.kind) {
            case StepKind::op: {
                const auto& call = std::get<trace::CallStmt>(e.op);
                const OpResult& rec = std::get<std::vector<OpResult>>(e.outcome)[st.sub];
                auto hv = std::make_shared<ref::Hypervisor>(n.s());
                const OpResult r = run_op(*hv, call.caller, call.ops[st.sub]);
                if (r.status != rec.status || !(r.op == rec.op)) return std::nullopt;
                if (std::holds_alternative<UnmapPage>(r.op) ||
                    std::holds_alternative<UnmapForeignPage>(r.op))
                    note_frees(n.s(), hv->state(), st.ev, c.freed);
                c.hv = std::move(hv);
                break;
            }
            case StepKind::balloon: {
                const auto& b = std::get<trace::BalloonStmt>(e.op);
                const BalloonOutcome& rec = std::get<BalloonOutcome>(e.outcome);
                const State& s0 = n.s();
                InFlight f;
                const auto m = s0.p2m(b.d, b.gfn);
                if (m && s0.frame(*m).state == FrameState::owned) {
                    const auto it = s0.m2b.find(*m);
                    if (it != s0.m2b.end())
                        for (const auto& [t, info] :
                             it->second)       // F8: ascending (bfn, domid, ioserver)
                            if (!info.orphan)  // R9 v2: an orphan has no server to tell
                                f.reqs.push_back({ServerKey{t.domid, t.ioserver}, t.bfn});
                }
                ref::Hypervisor hv(s0);
                const BalloonOutcome o = hv.balloon(b.d, b.gfn);
                if (o.mfn != rec.mfn || o.invalidates != rec.invalidates ||
                    f.reqs.size() != rec.invalidates)
                    return std::nullopt;
                // The state change without the deliveries: the queues as they were at L.
                State s1 = hv.state();
                for (const auto& [k, bfn] : f.reqs) {
                    const auto old = s0.servers.find(k);
                    const auto now = s1.servers.find(k);
                    if (old == s0.servers.end() || now == s1.servers.end()) continue;
                    now->second.buffered = old->second.buffered;
                    now->second.sync = old->second.sync;
                }
                c.hv = std::make_shared<ref::Hypervisor>(std::move(s1));
                note_frees(s0, c.s(), st.ev, c.freed);
                if (f.reqs.empty()) {
                    if (rec.synchronous != 0) return std::nullopt;
                } else {
                    c.in_flight[st.ev] = std::move(f);
                }
                break;
            }
            case StepKind::delivery: {
                const BalloonOutcome& rec = std::get<BalloonOutcome>(e.outcome);
                InFlight& f = c.in_flight.at(st.ev);
                if (f.next != st.sub || f.next >= f.reqs.size()) return std::nullopt;
                const auto& [k, bfn] = f.reqs[f.next];
                State s = n.s();
                const auto it = s.servers.find(k);
                if (it == s.servers.end()) return std::nullopt;
                IoServer& srv = it->second;
                const IoReq req{PV_IOMMU_IOREQ_TYPE_INVALIDATE, bfn};
                if (srv.ring_has_room()) {  // R7: 2 free slots -> ring, else synchronous
                    srv.buffered.push_back(req);
                } else {
                    srv.sync.push_back(req);
                    ++f.sync;
                }
                ++f.next;
                if (f.next == f.reqs.size()) {
                    if (f.sync != rec.synchronous) return std::nullopt;
                    c.in_flight.erase(st.ev);
                }
                c.hv = std::make_shared<ref::Hypervisor>(std::move(s));
                break;
            }
            case StepKind::populate: {
                const auto& p = std::get<trace::PopulateStmt>(e.op);
                const PopulateOutcome& rec = std::get<PopulateOutcome>(e.outcome);
                const State& s0 = n.s();
                if (s0.domain(p.d) == nullptr || s0.p2m(p.d, p.gfn)) {
                    if (rec.mfn) return std::nullopt;  // gfn had a frame: nothing happens
                    c.hv = n.hv;
                    break;
                }
                // (b): every free frame below the one taken was freed by an operation that
                // overlaps this populate.
                const std::uint64_t limit = rec.mfn ? rec.mfn->v : s0.host.frames;
                if (limit >= s0.host.frames && rec.mfn) return std::nullopt;
                for (std::uint64_t j = 0; j < limit; ++j) {
                    if (s0.frame(Mfn{j}).state != FrameState::free) continue;
                    const auto fr = n.freed.find(Mfn{j});
                    if (fr == n.freed.end() || h_.events[fr->second].responded < e.invoked)
                        return std::nullopt;
                }
                if (!rec.mfn) {
                    c.hv = n.hv;
                    break;
                }
                if (s0.frame(*rec.mfn).state != FrameState::free) return std::nullopt;
                State s = s0;
                s.frames[*rec.mfn] = Frame{FrameState::owned, p.d, 1, true};
                s.domains.at(p.d).p2m[p.gfn] = *rec.mfn;
                c.freed.erase(*rec.mfn);
                c.hv = std::make_shared<ref::Hypervisor>(std::move(s));
                break;
            }
            case StepKind::drain: {
                const auto& d = std::get<trace::DrainStmt>(e.op);
                const auto& rec = std::get<std::vector<IoReq>>(e.outcome);
                auto hv = std::make_shared<ref::Hypervisor>(n.s());
                if (hv->drain(d.target, d.id, d.count.value_or(UINT32_MAX)) != rec)
                    return std::nullopt;
                c.hv = std::move(hv);
                break;
            }
        }
        c.rehash();
        return c;
    }

    [[nodiscard]] std::string event_text(std::size_t ev) const {
        const Event& e = h_.events[ev];
        std::ostringstream os;
        os << "[" << e.invoked << "," << e.responded << "] t" << e.thread << "#" << e.index << " "
           << one_line(e.op) << " -> " << outcome_text(e.outcome);
        return os.str();
    }

    [[nodiscard]] std::string step_text(std::size_t i) const {
        const Step& st = steps_[i];
        const Event& e = h_.events[st.ev];
        std::ostringstream os;
        os << "t" << e.thread << "#" << e.index << " ";
        switch (st.kind) {
            case StepKind::op: {
                const auto& call = std::get<trace::CallStmt>(e.op);
                os << "call " << call.caller.v << " " << trace::op_text(call.ops[st.sub]);
                if (call.batch) os << " (batch op " << st.sub << ")";
                break;
            }
            case StepKind::balloon:
                os << one_line(e.op) << " (state change)";
                break;
            case StepKind::delivery:
                os << one_line(e.op) << " (invalidate " << st.sub << " delivered)";
                break;
            default:
                os << one_line(e.op);
        }
        return os.str();
    }

    // What the model answers for step st from node n (for the report).
    [[nodiscard]] std::string model_answer(const Node& n, const Step& st) const {
        const Event& e = h_.events[st.ev];
        try {
            ref::Hypervisor hv(n.s());
            switch (st.kind) {
                case StepKind::op: {
                    const auto& call = std::get<trace::CallStmt>(e.op);
                    return outcome_text(
                        std::vector<OpResult>{run_op(hv, call.caller, call.ops[st.sub])});
                }
                case StepKind::balloon: {
                    const auto& b = std::get<trace::BalloonStmt>(e.op);
                    return outcome_text(hv.balloon(b.d, b.gfn)) +
                           " (sync counted as if undisturbed)";
                }
                case StepKind::populate: {
                    const auto& p = std::get<trace::PopulateStmt>(e.op);
                    return outcome_text(hv.populate(p.d, p.gfn)) + " (lowest free)";
                }
                case StepKind::drain: {
                    const auto& d = std::get<trace::DrainStmt>(e.op);
                    return outcome_text(hv.drain(d.target, d.id, d.count.value_or(UINT32_MAX)));
                }
                case StepKind::delivery:
                    return "(delivery)";
            }
        } catch (const std::exception& ex) {
            return std::string("model cannot run it: ") + ex.what();
        }
        return {};
    }

    [[nodiscard]] std::string violation_report() const {
        std::ostringstream os;
        os << "NOT LINEARIZABLE (" << nodes_ << " search nodes)\n";
        if (best_depth_ == steps_.size()) {
            os << "every operation linearizes, but no linearization ends in the SUT's final "
                  "state\n";
            os << "model's final dump (first complete linearization):\n" << leaf_mismatch_;
            os << "SUT's final dump:\n" << final_dump_;
            os << "timeline:\n";
            for (std::size_t ev = 0; ev < h_.events.size(); ++ev)
                os << "  " << event_text(ev) << "\n";
            return os.str();
        }
        os << "longest linearizable prefix (" << best_depth_ << " of " << steps_.size()
           << " steps):\n";
        for (std::size_t i : best_order_) os << "  " << step_text(i) << "\n";
        // The stuck operation: the untaken step with the earliest response.
        std::vector<bool> taken(steps_.size(), false);
        for (std::size_t i : best_order_) taken[i] = true;
        std::size_t stuck = steps_.size();
        for (std::size_t i = 0; i < steps_.size(); ++i)
            if (!taken[i] && (stuck == steps_.size() || steps_[i].resp < steps_[stuck].resp))
                stuck = i;
        const Event& se = h_.events[steps_[stuck].ev];
        os << "then no step fits. Earliest-returning operation not linearized: " << step_text(stuck)
           << "\n";
        os << "  recorded: " << outcome_text(se.outcome) << "\n";
        os << "  ref there: " << model_answer(best_node_, steps_[stuck]) << "\n";
        os << "timeline of the operations overlapping it (thread, [invoked,responded], op -> "
              "result):\n";
        for (std::size_t ev = 0; ev < h_.events.size(); ++ev) {
            const Event& e = h_.events[ev];
            if (e.responded < se.invoked || e.invoked > se.responded) continue;
            os << "  " << (ev == steps_[stuck].ev ? "* " : "  ") << event_text(ev) << "\n";
        }
        os << "model state at the end of the prefix:\n" << dump(best_node_.s());
        return os.str();
    }

    const History& h_;
    const CheckOptions& opt_;
    std::vector<Step> steps_;
    std::vector<bool> done_;
    std::unordered_set<std::string> memo_;
    std::string final_dump_;
    std::uint64_t nodes_ = 0, memo_hits_ = 0;
    bool gave_up_ = false;
    std::vector<std::size_t> found_, best_order_;
    std::size_t best_depth_ = 0;
    Node best_node_;
    std::string leaf_mismatch_;
};

}  // namespace

CheckResult check_linearizable(const History& h, const CheckOptions& opt) {
    if (!h.world_error.empty()) {
        CheckResult r;
        r.verdict = Verdict::violation;
        r.report = "world: " + h.world_error + "\n";
        return r;
    }
    return Search(h, opt).run();
}

}  // namespace props
