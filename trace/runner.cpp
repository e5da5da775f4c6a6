#include "trace/runner.h"

#include <algorithm>
#include <ostream>

#include "spec/ghost.h"

namespace trace {

using namespace spec;

namespace {

std::string h(std::uint64_t v) { return hex(v); }

std::size_t pending(const State& s) {
    std::size_t n = 0;
    for (const auto& [k, srv] : s.servers) n += srv.buffered.size() + srv.sync.size();
    return n;
}

template <class T>
std::string opt_text(const std::optional<T>& v) {
    return v ? std::to_string(*v) : std::string("none");
}

}  // namespace

std::string op_outcome(const OpResult& r) {
    std::string s(status_name(r.status));
    if (r.status != Status::ok) return s;
    std::visit(
        [&s](const auto& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (has_out_bfn<T>) s += " bfn=" + h(o.bfn.v);
            if constexpr (has_out_flags<T>)
                s += " flags=" + h(o.flags.raw & 0x3ffU) +
                     " order=" + std::to_string(o.flags.order());
        },
        r.op);
    return s;
}

void Runner::fail(StepRecord& r, const std::string& msg) const {
    r.failures.push_back(t_.file + ":" + std::to_string(r.line) + ": " + msg);
}

void Runner::run_expect(const ExpectStmt& e, StepRecord& r) const {
    const std::size_t i = e.op.value_or(0);
    const std::string which = e.op ? "op " + std::to_string(i) + ": " : "";
    if (i >= last_.size()) {
        fail(r, which + "no such op");
        return;
    }
    const OpResult& res = last_[i];
    if (res.status != e.status) {
        fail(r, which + "expected status=" + std::string(status_name(e.status)) + ", got " +
                    std::string(status_name(res.status)));
        return;
    }
    const bool want_out = e.bfn || e.flags || e.order;
    if (want_out && res.status != Status::ok) {
        fail(r, which + "no out fields: status " + std::string(status_name(res.status)) + " (D2)");
        return;
    }
    std::visit(
        [&](const auto& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (has_out_bfn<T>) {
                if (e.bfn && *e.bfn != o.bfn)
                    fail(r, which + "expected bfn=" + h(e.bfn->v) + ", got bfn=" + h(o.bfn.v));
            }
            if constexpr (has_out_flags<T>) {
                if (e.flags && *e.flags != (o.flags.raw & 0x3ffU))
                    fail(r, which + "expected flags=" + h(*e.flags) +
                                ", got flags=" + h(o.flags.raw & 0x3ffU));
                if (e.order && *e.order != o.flags.order())
                    fail(r, which + "expected order=" + std::to_string(*e.order) +
                                ", got order=" + std::to_string(o.flags.order()));
            }
        },
        res.op);
}

StepRecord Runner::step() {
    const Statement& st = t_.statements.at(next_++);
    StepRecord r;
    r.line = st.line;
    r.statement = statement_text(st.stmt);
    std::visit(
        [&](const auto& s) {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, DomainStmt>) {
                if (!h_.create_domain(s.d, s.role, s.iommu_hw, s.ram)) {
                    const State snap = h_.snapshot();
                    std::uint64_t used = 0;
                    for (const auto& [m, f] : snap.frames) used += f.state != FrameState::free;
                    fail(r, "domain " + std::to_string(s.d.v) + " ram=" + std::to_string(s.ram) +
                                ": only " + std::to_string(snap.host.frames - used) +
                                " frames free (D9)");
                    r.fatal = true;
                } else if (s.quota) {
                    h_.set_quota(s.d, *s.quota);  // D20
                }
            } else if constexpr (std::is_same_v<T, DmStmt>) {
                h_.grant_dm(s.emulator, s.target);
            } else if constexpr (std::is_same_v<T, IoServerStmt>) {
                h_.create_ioserver(s.target, s.id, s.emulator, s.ring);
            } else if constexpr (std::is_same_v<T, RmrrStmt>) {
                h_.add_rmrr(s.d, s.first, s.count);
            } else if constexpr (std::is_same_v<T, XenGfnStmt>) {
                if (!h_.add_xen_gfn(s.d, s.gfn)) {
                    fail(r, "xen_gfn: no free frame");
                    r.fatal = true;
                }
            } else if constexpr (std::is_same_v<T, FaultStmt>) {
                h_.arm_iommu_map_fault(s.count);
            } else if constexpr (std::is_same_v<T, DestroyStmt>) {
                h_.destroy(s.d);
            } else if constexpr (std::is_same_v<T, CallStmt>) {
                r.is_call = true;
                std::vector<pv_iommu_op> raw;
                for (const Op& op : s.ops) raw.push_back(encode(op));
                // D23: only an unmap_foreign_page needs the state before (which branch it took).
                before_call_.reset();
                if (std::any_of(s.ops.begin(), s.ops.end(), [](const Op& op) {
                        return std::holds_alternative<UnmapForeignPage>(op);
                    }))
                    before_call_ = h_.snapshot();
                const long rc = h_.iommu_op(s.caller, raw);
                last_.clear();
                for (std::size_t i = 0; i < raw.size(); ++i) {
                    last_.push_back({static_cast<Status>(raw[i].status), decode(raw[i])});
                    if (i != 0) r.outcome += "; ";
                    r.outcome += op_outcome(last_.back());
                }
                if (rc != 0) {
                    fail(r, "the hypercall returned " + std::to_string(rc) + ", not 0 (R10)");
                    r.fatal = true;
                }
            } else if constexpr (std::is_same_v<T, BalloonStmt>) {
                const State before = h_.snapshot();
                std::size_t k = 0;
                const auto m = before.p2m(s.d, s.gfn);
                if (m && before.frame(*m).state != FrameState::xen)
                    if (auto it = before.m2b.find(*m); it != before.m2b.end())
                        for (const auto& [t, info] : it->second)
                            k += !info.orphan;  // orphans have no server to tell (R9 v2)
                const BalloonOutcome out = h_.balloon(s.d, s.gfn);
                const std::size_t delivered = pending(h_.snapshot()) - pending(before);
                r.outcome = out.mfn ? "mfn=" + h(out.mfn->v) +
                                          " invalidates=" + std::to_string(out.invalidates) +
                                          " synchronous=" + std::to_string(out.synchronous)
                                    : "nothing";
                if (out.invalidates != k || delivered != k) {  // INV-INVALIDATE
                    fail(r, "INV-INVALIDATE: the frame had " + std::to_string(k) +
                                " tuples; the balloon reported " + std::to_string(out.invalidates) +
                                " invalidates and queued " + std::to_string(delivered));
                    r.fatal = true;
                }
            } else if constexpr (std::is_same_v<T, PopulateStmt>) {
                const PopulateOutcome out = h_.populate(s.d, s.gfn);
                r.outcome = out.mfn ? "mfn=" + h(out.mfn->v) : "nothing";
            } else if constexpr (std::is_same_v<T, DrainStmt>) {
                const auto reqs = h_.drain(s.target, s.id, s.count.value_or(UINT32_MAX));
                r.outcome = std::to_string(reqs.size()) + " requests";
                for (const IoReq& q : reqs) r.outcome += " invalidate:" + h(q.bfn.v);
            } else if constexpr (std::is_same_v<T, ExpectStmt>) {
                ++r.expectations;
                run_expect(s, r);
            } else {
                ++r.expectations;
                const State snap = h_.snapshot();
                if constexpr (std::is_same_v<T, CheckInvariants>) {
                    for (const Violation& v : check_invariants(snap, handed_))
                        fail(r, v.invariant + ": " + v.detail);
                } else if constexpr (std::is_same_v<T, CheckDma>) {
                    const DmaView v = snap.dma(s.e, s.bfn);
                    r.outcome = dma_text(v);
                    if (v != s.view) fail(r, "expected " + r.statement + ", got " + dma_text(v));
                } else if constexpr (std::is_same_v<T, CheckFrame>) {
                    const Frame f = snap.frame(s.mfn);
                    const std::string actual =
                        "state=" + std::string(state_name(f.state)) +
                        (f.state == FrameState::owned ? " owner=" + std::to_string(f.owner.v)
                                                      : "") +
                        " count=" + std::to_string(f.count) +
                        " allocated=" + std::to_string(f.allocated ? 1 : 0);
                    const bool ok =
                        (!s.state || *s.state == f.state) &&
                        (!s.owner || (f.state == FrameState::owned && *s.owner == f.owner)) &&
                        (!s.count || *s.count == f.count) &&
                        (!s.allocated || *s.allocated == f.allocated);
                    if (!ok) fail(r, "expected " + r.statement + ", got " + actual);
                } else if constexpr (std::is_same_v<T, CheckP2m>) {
                    const auto m = snap.p2m(s.d, s.gfn);
                    if (m != s.mfn)
                        fail(r, "expected " + r.statement + ", got " +
                                    (m ? "mfn=" + h(m->v) : "none"));
                } else if constexpr (std::is_same_v<T, CheckM2bCount>) {
                    auto it = snap.m2b.find(s.mfn);
                    const std::size_t n = it == snap.m2b.end() ? 0 : it->second.size();
                    if (n != s.tuples)
                        fail(r, "expected " + r.statement + ", got tuples=" + std::to_string(n));
                } else if constexpr (std::is_same_v<T, CheckM2bTuple>) {
                    auto it = snap.m2b.find(s.mfn);
                    const bool has = it != snap.m2b.end() && it->second.contains(s.tuple);
                    if (has != s.has)
                        fail(r, "expected " + r.statement + ", but it " +
                                    (has ? "is there" : "is not there"));
                } else if constexpr (std::is_same_v<T, CheckIommu>) {
                    const auto e = snap.entry(s.c, s.bfn);
                    bool ok;
                    if (s.none)
                        ok = !e.has_value();
                    else
                        ok = e && (!s.kind || *s.kind == e->kind) &&
                             (!s.mfn || (e->kind != EntryKind::scratch && *s.mfn == e->mfn));
                    if (!ok) {
                        std::string actual = "none";
                        if (e) {
                            actual = "kind=" + std::string(kind_name(e->kind));
                            if (e->kind != EntryKind::scratch)
                                actual = "mfn=" + h(e->mfn.v) + " " + actual;
                        }
                        fail(r, "expected " + r.statement + ", got " + actual);
                    }
                } else if constexpr (std::is_same_v<T, CheckIoreqCount>) {
                    const IoServer* srv = snap.server(s.target, s.id);
                    const std::uint32_t b = static_cast<std::uint32_t>(srv->buffered.size());
                    const std::uint32_t y = static_cast<std::uint32_t>(srv->sync.size());
                    if ((s.buffered && *s.buffered != b) || (s.sync && *s.sync != y))
                        fail(r, "expected " + r.statement + ", got buffered=" + std::to_string(b) +
                                    " sync=" + std::to_string(y));
                } else if constexpr (std::is_same_v<T, CheckIoreqNext>) {
                    const IoServer* srv = snap.server(s.target, s.id);
                    std::optional<Bfn> next;
                    if (!srv->buffered.empty())
                        next = srv->buffered.front().bfn;
                    else if (!srv->sync.empty())
                        next = srv->sync.front().bfn;
                    if (next != s.bfn)
                        fail(r, "expected " + r.statement + ", got next=" +
                                    (next ? "invalidate bfn=" + h(next->v) : std::string("none")));
                }
            }
        },
        st.stmt);
    // D23: the ghost set H follows what the calls handed out and what destroy took away.
    const bool is_destroy = std::holds_alternative<DestroyStmt>(st.stmt);
    if (r.is_call || is_destroy || !r.fatal) {
        const State after = h_.snapshot();
        if (r.is_call)
            record_handed(handed_, before_call_ ? &*before_call_ : nullptr, after,
                          std::get<CallStmt>(st.stmt).caller, last_);
        else if (is_destroy)
            forget_emulator(handed_, std::get<DestroyStmt>(st.stmt).d);
        // D15: every state invariant after every statement, INV-DEVICE-SAFE included.
        if (!r.fatal)
            for (const Violation& v : check_invariants(after, handed_)) {
                fail(r, "after this statement " + v.invariant + ": " + v.detail);
                r.fatal = true;
            }
    }
    return r;
}

Summary run(const Trace& t, spec::Hypervisor& hv, const RunOptions& opt, std::ostream& out) {
    Summary sum;
    Runner runner(t, hv);
    while (!runner.done()) {
        const StepRecord r = runner.step();
        ++sum.statements;
        sum.calls += r.is_call;
        if (opt.verbose) {
            out << t.file << ":" << r.line << ": " << r.statement;
            if (!r.outcome.empty()) out << "  -> " << r.outcome;
            out << "\n";
        }
        for (const auto& f : r.failures) out << f << "\n";
        // One statement is one expectation, however many of its parts differ; a failure of a
        // statement that is not an expectation (an invariant, the world) counts as failed too.
        if (!r.failures.empty())
            ++sum.failed;
        else if (r.expectations != 0)
            ++sum.passed;
        if (r.fatal) {
            sum.fatal = true;
            break;
        }
    }
    if (opt.dump) out << dump(hv.snapshot());
    return sum;
}

}  // namespace trace
