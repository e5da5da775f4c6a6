#include "trace/runner.h"

#include <algorithm>
#include <map>
#include <ostream>
#include <sstream>

#include "spec/ghost.h"
#include "trace/diff.h"
#include "trace/fields.h"

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

const State& Runner::now() {
    if (hooks_.live != nullptr) return *hooks_.live;
    snap_ = h_.snapshot();
    return *snap_;
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
                    const State& snap = now();
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
                // D23: only an unmap_foreign_page needs the state before (which branch it took),
                // and of it only the M2B (record_handed reads nothing else).
                before_call_.reset();
                if (std::any_of(s.ops.begin(), s.ops.end(), [](const Op& op) {
                        return std::holds_alternative<UnmapForeignPage>(op);
                    })) {
                    State b;
                    b.m2b = now().m2b;
                    before_call_ = std::move(b);
                }
                if (hooks_.take_rulings) (void)hooks_.take_rulings();  // drop stale ones
                const long rc = h_.iommu_op(s.caller, raw);
                if (hooks_.take_rulings) {
                    // An unknown subop id never reaches the model's subops: R1 decides it.
                    const std::vector<std::string> rs = hooks_.take_rulings();
                    std::size_t k = 0;
                    for (std::size_t i = 0; i < s.ops.size(); ++i) {
                        std::string why =
                            std::holds_alternative<UnknownOp>(s.ops[i])
                                ? "-EOPNOTSUPP: R1, an unknown subop id, before any other check"
                                : (k < rs.size() ? rs[k++] : std::string("(no ruling)"));
                        r.rulings.push_back((s.batch ? "op " + std::to_string(i) + ": " : "") +
                                            why);
                    }
                }
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
                std::size_t k = 0, pending_before = 0;
                {
                    const State& before = now();
                    const auto m = before.p2m(s.d, s.gfn);
                    if (m && before.frame(*m).state != FrameState::xen)
                        if (auto it = before.m2b.find(*m); it != before.m2b.end())
                            for (const auto& [t, info] : it->second)
                                k += !info.orphan;  // orphans have no server to tell (R9 v2)
                    pending_before = pending(before);
                }
                const BalloonOutcome out = h_.balloon(s.d, s.gfn);
                const std::size_t delivered = pending(now()) - pending_before;
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
                const State& snap = now();
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
    const bool check_now = !r.fatal && check_ == Check::every;
    if (r.is_call || is_destroy || check_now) {
        const State& after = now();
        if (r.is_call)
            record_handed(handed_, before_call_ ? &*before_call_ : nullptr, after,
                          std::get<CallStmt>(st.stmt).caller, last_);
        else if (is_destroy)
            forget_emulator(handed_, std::get<DestroyStmt>(st.stmt).d);
        // D15: every state invariant after every statement, INV-DEVICE-SAFE included.
        if (check_now)
            for (const Violation& v : check_invariants(after, handed_)) {
                fail(r, "after this statement " + v.invariant + ": " + v.detail);
                r.fatal = true;
            }
    }
    return r;
}

Summary run(const Trace& t, spec::Hypervisor& hv, const RunOptions& opt, std::ostream& out) {
    Summary sum;
    Runner runner(t, hv, opt.hooks, opt.check);
    const auto shown_dump = [&]() { return filter_dump(dump(runner.now()), opt.filter); };
    std::string before;
    if (opt.explain) before = shown_dump();
    int last_line = 0;
    while (!runner.done()) {
        const StepRecord r = runner.step();
        last_line = r.line;
        ++sum.statements;
        sum.calls += r.is_call;
        if (opt.verbose || opt.explain) {
            out << t.file << ":" << r.line << ": " << r.statement;
            if (!r.outcome.empty()) out << "  -> " << r.outcome;
            out << "\n";
        }
        if (opt.explain) {
            for (const auto& why : r.rulings) out << "    " << why << "\n";
            std::string after = shown_dump();
            for (const auto& l : explain_change(before, after)) out << "    " << l << "\n";
            before = std::move(after);
        }
        for (const auto& f : r.failures) {
            out << f << "\n";
            sum.failures.push_back(f);
        }
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
    // After the last statement, one full check of every invariant, INV-DEVICE-SAFE over all of
    // H (as the trace left it): for --check=end it is D15, relaxed to once; for --check=every on
    // a model that logs what each statement touched (ref) it sees what no statement touched, which
    // the incremental checks after each statement do not look at.
    const bool final_check =
        opt.check == Check::end || (opt.check == Check::every && runner.now().frame_log.armed());
    if (final_check && !sum.fatal && !t.statements.empty()) {
        const std::string where = t.file + ":" + std::to_string(last_line) + ": ";
        for (const Violation& v : check_all_invariants(runner.now(), runner.handed())) {
            const std::string f =
                where + "after the last statement (full check) " + v.invariant + ": " + v.detail;
            out << f << "\n";
            sum.failures.push_back(f);
            sum.fatal = true;
        }
        if (sum.fatal) ++sum.failed;
    }
    if (opt.dump) out << shown_dump();
    return sum;
}

// ---------------------------------------------------------------------------------------------
// Dump filters and --explain

namespace {

// The value of `key=` in a dump line's words, if present.
std::optional<std::string_view> field(std::string_view line, std::string_view key) {
    std::size_t pos = 0;
    while (pos < line.size()) {
        const auto sp = line.find(' ', pos);
        const std::string_view w =
            line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
        if (w.size() > key.size() && w.substr(0, key.size()) == key && w[key.size()] == '=')
            return w.substr(key.size() + 1);
        if (sp == std::string_view::npos) break;
        pos = sp + 1;
    }
    return std::nullopt;
}

std::vector<std::string_view> words_of(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t pos = 0;
    while (pos <= line.size()) {
        const auto sp = line.find(' ', pos);
        const auto w =
            line.substr(pos, sp == std::string_view::npos ? std::string_view::npos : sp - pos);
        if (!w.empty()) out.push_back(w);
        if (sp == std::string_view::npos) break;
        pos = sp + 1;
    }
    return out;
}

std::optional<std::uint64_t> number(std::string_view v) {
    std::uint64_t x = 0;
    if (fields::parse_u64(v, x)) return std::nullopt;
    return x;
}

// How many leading words of a dump line name the fact it states (the rest are its values):
// `frame mfn=M | state=.. count=..`, `m2b mfn=M bfn=B domid=D ioserver=S | swap=..`.
std::size_t key_words(std::string_view keyword) {
    static const std::map<std::string_view, std::size_t> n = {
        {"host", 1},     {"domain", 2}, {"frame", 2}, {"p2m", 3}, {"iommu", 3}, {"m2b", 5},
        {"ioserver", 3}, {"ioreq", 4},  {"fault", 2}, {"dm", 4},  {"rmrr", 4}};
    const auto it = n.find(keyword);
    return it == n.end() ? 1000 : it->second;  // unknown: the whole line is its key
}

}  // namespace

bool DumpFilter::keeps(std::string_view line) const {
    const auto w = words_of(line);
    if (w.empty() || w[0] == "host") return true;
    if (domain) {
        const std::string d = std::to_string(domain->v);
        bool named = false;
        // Positional domids: `domain D`, `dm E over T`, `rmrr D`, `p2m D`, `iommu C`,
        // `ioserver T`, `ioreq T`; keyed ones: owner=, domid=, emulator=.
        if (w[0] != "frame" && w[0] != "m2b" && w[0] != "fault" && w.size() > 1 && w[1] == d)
            named = true;
        if (w[0] == "dm" && w.size() > 3 && w[3] == d) named = true;
        for (const char* k : {"owner", "domid", "emulator"})
            if (const auto v = field(line, k); v && *v == d) named = true;
        if (!named) return false;
    }
    if (mfns) {
        bool named = false;
        if (const auto v = field(line, "mfn"))
            if (const auto m = number(*v)) named = *m >= mfns->first.v && *m <= mfns->second.v;
        if (!named) return false;
    }
    return true;
}

std::optional<std::string> parse_dump_filter(std::string_view text, DumpFilter& out) {
    out = DumpFilter{};
    std::size_t pos = 0;
    while (pos <= text.size()) {
        const auto comma = text.find(',', pos);
        const std::string_view term = text.substr(
            pos, comma == std::string_view::npos ? std::string_view::npos : comma - pos);
        pos = comma == std::string_view::npos ? text.size() + 1 : comma + 1;
        if (term.empty()) continue;
        if (term.substr(0, 4) == "dom=") {
            DomId d;
            if (auto err = fields::parse_value(term.substr(4), d)) return "dom=: " + *err;
            out.domain = d;
        } else if (term.substr(0, 4) == "mfn=") {
            const std::string_view v = term.substr(4);
            const auto dash = v.find('-');
            Mfn lo, hi;
            if (auto err = fields::parse_value(v.substr(0, dash), lo)) return "mfn=: " + *err;
            hi = lo;
            if (dash != std::string_view::npos)
                if (auto err = fields::parse_value(v.substr(dash + 1), hi)) return "mfn=: " + *err;
            if (hi.v < lo.v) return "mfn=: the range " + std::string(v) + " is empty";
            out.mfns = std::make_pair(lo, hi);
        } else {
            return "unknown filter term " + fields::quoted(term) +
                   " (want dom=D, mfn=M or mfn=LO-HI)";
        }
    }
    return std::nullopt;
}

std::string filter_dump(const std::string& text, const DumpFilter& f) {
    if (f.empty()) return text;
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto nl = text.find('\n', pos);
        if (nl == std::string::npos) nl = text.size();
        const std::string_view line(text.data() + pos, nl - pos);
        if (f.keeps(line)) {
            out += line;
            out += '\n';
        }
        pos = nl + 1;
    }
    return out;
}

std::vector<std::string> explain_change(const std::string& before, const std::string& after) {
    const std::vector<std::string> diff = line_diff(before, after);
    // Pair a removed and an added line stating the same fact (same key words) into one `~`.
    const auto key_of = [](std::string_view line) {
        const auto w = words_of(line);
        const std::size_t n = w.empty() ? 0 : std::min(key_words(w[0]), w.size());
        std::string k;
        for (std::size_t i = 0; i < n; ++i) k += (i ? " " : "") + std::string(w[i]);
        return std::make_pair(k, n);
    };
    std::map<std::string, std::size_t> added;  // key -> index in diff of its `+` line
    for (std::size_t i = 0; i < diff.size(); ++i)
        if (diff[i][0] == '+') added.emplace(key_of(std::string_view(diff[i]).substr(1)).first, i);
    std::vector<bool> used(diff.size(), false);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < diff.size(); ++i) {
        if (used[i]) continue;
        const std::string_view line = std::string_view(diff[i]).substr(1);
        if (diff[i][0] == '-') {
            const auto [k, n] = key_of(line);
            const auto it = added.find(k);
            if (it != added.end() && !used[it->second] && n < words_of(line).size()) {
                used[it->second] = true;
                const auto old_w = words_of(line);
                const auto new_w = words_of(std::string_view(diff[it->second]).substr(1));
                std::string change = "~ " + k;
                // key=value words compared by key; other words shown as gone (-w) or new (+w).
                std::map<std::string_view, std::string_view> ov, nv;
                std::vector<std::string_view> order;
                const auto split = [&order](const std::vector<std::string_view>& ws,
                                            std::size_t from,
                                            std::map<std::string_view, std::string_view>& into) {
                    for (std::size_t j = from; j < ws.size(); ++j) {
                        const auto eq = ws[j].find('=');
                        const std::string_view key =
                            eq == std::string_view::npos ? ws[j] : ws[j].substr(0, eq);
                        const std::string_view val = eq == std::string_view::npos
                                                         ? std::string_view("")
                                                         : ws[j].substr(eq + 1);
                        if (!into.contains(key) &&
                            std::find(order.begin(), order.end(), key) == order.end())
                            order.push_back(key);
                        into[key] = val;
                    }
                };
                split(old_w, n, ov);
                split(new_w, n, nv);
                for (const auto key : order) {
                    const bool in_old = ov.contains(key), in_new = nv.contains(key);
                    if (in_old && in_new && ov[key] == nv[key]) continue;
                    change += " ";
                    if (in_old && in_new)
                        change += std::string(key) + " " + std::string(ov[key]) + "->" +
                                  std::string(nv[key]);
                    else if (in_old)
                        change += "-" + std::string(key) +
                                  (ov[key].empty() ? "" : "=" + std::string(ov[key]));
                    else
                        change += "+" + std::string(key) +
                                  (nv[key].empty() ? "" : "=" + std::string(nv[key]));
                }
                out.push_back(change);
                continue;
            }
            // A frame that leaves the dump went back to free (count 0).
            out.push_back("- " + std::string(line) +
                          (line.substr(0, 6) == "frame " ? "  (freed)" : ""));
        } else {
            used[i] = true;
            out.push_back("+ " + std::string(line));
        }
    }
    return out;
}

}  // namespace trace
