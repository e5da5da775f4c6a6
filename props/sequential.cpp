#include "props/sequential.h"

#include <rapidcheck.h>
#include <rapidcheck/state.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <ostream>
#include <set>
#include <sstream>
#include <unordered_map>

#include "impl/hypervisor.h"
#include "ref/hypervisor.h"
#include "spec/ghost.h"
#include "trace/fields.h"
#include "trace/runner.h"

namespace rc::detail {
// In librapidcheck, not in its headers: the RC_PARAMS "reproduce=" value of a failure.
std::string reproduceMapToString(const std::unordered_map<std::string, Reproduce>& map);
}  // namespace rc::detail

namespace props {
namespace {

using namespace spec;
using rc::Gen;
namespace gen = rc::gen;

// ---------------------------------------------------------------------------------------------
// Worlds: one world language (TRACE-FORMAT), so a failure prints as a replayable trace. Each
// world has a hardware domain, guests, a stub domain with dm privilege, servers with tiny rings
// (ring full after 1-2 invalidates), RMRRs, and a Xen-backed gfn.

constexpr std::string_view kWorldBody = R"(domain 0 hardware iommu_hw ram=12
domain 1 guest ram=12
domain 2 guest ram=6
domain 3 guest iommu_hw ram=4
dm 3 over 1
ioserver 1 id=0 emulator=0 ring=5
ioserver 1 id=1 emulator=3 ring=3
ioserver 2 id=0 emulator=0 ring=0
ioserver 2 id=1 emulator=0
rmrr 0 bfn=0x40 count=2
rmrr 3 bfn=0x44 count=4
xen_gfn 1 gfn=0x10
)";

// kWorldBody with small quotas (D20) on the two emulators, the hardware domain and domain 3.
std::string quotas(std::string w) {
    w.replace(w.find("ram=12"), 6, "ram=12 quota=4");
    w.replace(w.find("iommu_hw ram=4"), 14, "iommu_hw ram=4 quota=2");
    return w;
}

const std::vector<std::string>& worlds() {
    static const std::vector<std::string> w = {
        "host iommu=on mode=inclusive max_order=2 frames=96\n" + std::string(kWorldBody),
        "host iommu=on mode=inclusive max_order=2 frames=96\n" + std::string(kWorldBody),
        "host iommu=on mode=strict max_order=2 frames=96\n" + std::string(kWorldBody),
        "host iommu=on mode=passthrough max_order=1 frames=96\n" + std::string(kWorldBody),
        "host iommu=off mode=inclusive max_order=2 frames=96\n" + std::string(kWorldBody),
        // D19/D20: a count limit a few maps reach, and small quotas on both emulators.
        "host iommu=on mode=inclusive max_order=2 frames=96 max_count=3\n" +
            quotas(std::string(kWorldBody)),
    };
    return w;
}

// The model: ref's whole state, plus the trace lines run so far (for the failure trace).
struct Model {
    State s;
    std::string world;
    std::vector<std::string> lines;
    Handed handed;  // INV-DEVICE-SAFE's ghost set H (D23), from ref's outcomes
};

// Shared by the commands of one run (the Sut side): the mix counters and the failure path.
struct Sink {
    std::map<std::string, std::uint64_t>* mix;
    std::uint64_t* commands;
    const std::string* failure_trace;
};
thread_local Sink g_sink{};

struct Sut {
    std::unique_ptr<spec::Hypervisor> impl;
};

// ---------------------------------------------------------------------------------------------
// Generators: values biased towards what breaks things, from the model's own state. One
// overload per vocabulary type; op structs are filled field by field from their Hana list.

std::vector<std::uint64_t> interesting_bfns(const State& s) {
    std::vector<std::uint64_t> v = {0x0,          0x1,    0x5,    0x3f,   0x40,
                                    0x41,         0x42,   0x43,   0x44,   0x47,
                                    0x48,         0x1000, 0x1001, 0x1004, s.host.frames - 1,
                                    s.host.frames};
    for (const auto& [d, dom] : s.domains)
        for (const auto& [b, e] : dom.iommu) v.push_back(b.v);
    for (const auto& [m, ts] : s.m2b) {
        v.push_back(m.v);
        for (const auto& [t, info] : ts) v.push_back(t.bfn.v);
    }
    return v;
}

Gen<std::uint64_t> gen_bfn(const State& s) {
    return gen::weightedOneOf<std::uint64_t>({
        {6, gen::elementOf(interesting_bfns(s))},
        {2, gen::inRange<std::uint64_t>(0, 0x50)},
        {1, gen::inRange<std::uint64_t>(0x1000, 0x1010)},
        {1, gen::arbitrary<std::uint64_t>()},
    });
}

Gen<std::uint64_t> gen_gfn() {
    return gen::weightedOneOf<std::uint64_t>({
        {8, gen::inRange<std::uint64_t>(0, 13)},
        {1, gen::just<std::uint64_t>(0x10)},  // the Xen-backed gfn
        {1, gen::arbitrary<std::uint64_t>()},
    });
}

std::vector<std::uint16_t> live(const State& s) {
    std::vector<std::uint16_t> v;
    for (const auto& [d, dom] : s.domains) v.push_back(d.v);
    if (v.empty()) v.push_back(0);
    return v;
}

Gen<std::uint16_t> gen_domid(const State& s) {
    return gen::weightedOneOf<std::uint16_t>({
        {8, gen::elementOf(live(s))},
        {1, gen::just<std::uint16_t>(PV_IOMMU_DOMID_SELF)},
        {1, gen::inRange<std::uint16_t>(0, 9)},
    });
}

// r/w, swap half the time, a reserved bit 1 in 25, order 0 mostly, sometimes up to
// max_order, sometimes just above it (R2).
std::uint16_t draw_flags(const State& s) {
    std::uint16_t f = *gen::element<std::uint16_t>(1, 2, 3, 3, 0);
    if (*gen::element(true, false)) f |= IOMMUOP_swap_mfn;
    if (*gen::weightedElement<int>({{24, 0}, {1, 1}}) == 1)
        f |= static_cast<std::uint16_t>(1u << *gen::inRange(3, 10));
    const unsigned max = s.host.max_order;
    const unsigned order =
        *gen::weightedElement<unsigned>({{14, 0u}, {3, std::min(1u, max)}, {2, max}, {1, max + 1}});
    return static_cast<std::uint16_t>(IOMMU_set_page_order(f, order));
}

void fill(const State& s, Bfn& v) { v = Bfn{*gen_bfn(s)}; }
void fill(const State&, Gfn& v) { v = Gfn{*gen_gfn()}; }
void fill(const State& s, DomId& v) { v = DomId{*gen_domid(s)}; }
void fill(const State&, IoServId& v) {
    v = IoServId{*gen::weightedOneOf<std::uint16_t>(
        {{9, gen::inRange<std::uint16_t>(0, 2)}, {1, gen::just<std::uint16_t>(7)}})};
}
void fill(const State& s, Flags& v) { v = Flags{draw_flags(s)}; }

// Targeting: most calls should reach the deep rows (success, -EEXIST, swap), not stop at the
// first check. Picks, from the model, a caller and the fields that make a call plausible.
struct Aim {
    DomId caller;
    std::optional<ServerKey> server;             // a server the caller serves
    std::optional<std::pair<Mfn, Tuple>> tuple;  // an existing tuple of the caller
};

Aim aim(const State& s) {
    Aim a{DomId{*gen::elementOf(live(s))}, std::nullopt, std::nullopt};
    std::vector<ServerKey> servers;
    for (const auto& [k, srv] : s.servers) servers.push_back(k);
    std::vector<std::pair<Mfn, Tuple>> tuples;
    for (const auto& [m, ts] : s.m2b)
        for (const auto& [t, info] : ts) tuples.emplace_back(m, t);
    if (!tuples.empty() && *gen::inRange(0, 10) < 5) {
        const auto& mt = *gen::elementOf(tuples);
        if (const IoServer* srv = s.server(mt.second.domid, mt.second.ioserver)) {
            a.caller = srv->emulator;
            a.tuple = mt;
            a.server = ServerKey{mt.second.domid, mt.second.ioserver};
            return a;
        }
    }
    if (!servers.empty() && *gen::inRange(0, 10) < 8) {
        const ServerKey k = *gen::elementOf(servers);
        a.server = k;
        a.caller = s.servers.at(k).emulator;
    }
    return a;
}

// An op of type T with every field drawn from the model (from its Hana field list), then aimed
// at the model's servers and tuples most of the time, then aligned to its order most of the
// time (R2 is worth hitting, but not on every call).
template <class T>
T gen_op(const State& s, const Aim& a) {
    T op;
    trace::fields::for_each_field(op, [&](std::string_view, auto& member) { fill(s, member); });
    if constexpr (requires {
                      op.domid;
                      op.ioserver;
                  }) {
        if (a.server) {
            op.domid = a.server->first;
            op.ioserver = a.server->second;
        }
    }
    if constexpr (requires {
                      op.gfn;
                      op.domid;
                  }) {
        // The same frame from several servers: a gfn of the target whose frame already has
        // tuples, half the time; else one of its RAM gfns, mostly.
        if (const Domain* t = s.domain(op.domid)) {
            std::vector<std::uint64_t> shared, ram;
            for (const auto& [g, m] : t->p2m) {
                ram.push_back(g.v);
                if (s.m2b.contains(m)) shared.push_back(g.v);
            }
            const int roll = *gen::inRange(0, 10);
            if (!shared.empty() && roll < 5)
                op.gfn = Gfn{*gen::elementOf(shared)};
            else if (!ram.empty() && roll < 9)
                op.gfn = Gfn{*gen::elementOf(ram)};
        }
    }
    if constexpr (std::is_same_v<T, UnmapForeignPage> || std::is_same_v<T, MapForeignPage>) {
        if (a.tuple && *gen::inRange(0, 10) < 7) op.bfn = a.tuple->second.bfn;
    }
    if constexpr (std::is_same_v<T, UnmapForeignPage> || std::is_same_v<T, LookupForeignPage>) {
        if (*gen::inRange(0, 10) < 8)
            op.flags = Flags{static_cast<std::uint16_t>(op.flags.raw & 0x3ff)};
    }
    const std::uint64_t mask = (std::uint64_t{1} << op.flags.order()) - 1;
    if (*gen::inRange(0, 10) < 8) {
        trace::fields::for_each_field(op, [&](std::string_view name, auto& member) {
            if constexpr (std::is_same_v<std::decay_t<decltype(member)>, Bfn> ||
                          std::is_same_v<std::decay_t<decltype(member)>, Gfn>)
                if (name == "bfn" || name == "gfn") member.v &= ~mask;
        });
    }
    if constexpr (std::is_same_v<T, LookupForeignPage>)
        if (*gen::inRange(0, 10) < 7) op.bfn = kBfnInvalid;  // the usual input
    return op;
}

Op gen_any_op(const State& s, const Aim& a) {
    switch (*gen::inRange(0, 8)) {
        case 0:
            return gen_op<QueryCaps>(s, a);
        case 1:
            return gen_op<MapPage>(s, a);
        case 2:
            return gen_op<UnmapPage>(s, a);
        case 3:
        case 4:
            return gen_op<MapForeignPage>(s, a);
        case 5:
            return gen_op<LookupForeignPage>(s, a);
        case 6:
            return gen_op<UnmapForeignPage>(s, a);
        default:
            return UnknownOp{*gen::inRange<std::uint16_t>(7, 12), Flags{}};
    }
}

// ---------------------------------------------------------------------------------------------
// Running one statement on both models and comparing.

void count(const std::string& key) { ++(*g_sink.mix)[key]; }

[[noreturn]] void fail(const Model& m, const std::string& line, const std::string& why) {
    // The failing sequence as a trace: the world, every statement so far, this one. The last
    // failure written is the shrunk one (RapidCheck re-runs candidates smallest-last).
    std::ofstream out(*g_sink.failure_trace);
    // Every line of the reason is a comment (a state difference spans many lines), so the file
    // parses as a trace.
    out << "# pviommu props: impl diverged from ref at the last statement\n";
    std::istringstream reason(why);
    for (std::string l; std::getline(reason, l);) out << "# " << l << "\n";
    out << m.world;
    for (const auto& l : m.lines) out << l << "\n";
    out << line << "\n";
    RC_FAIL(why + "\n  replay: pviommu diff " + *g_sink.failure_trace);
}

void compare_states(const Model& m, const std::string& line, const State& rs, const State& is,
                    const Handed& handed) {
    if (rs != is) {
        const std::string a = dump(rs), b = dump(is);
        fail(m, line, "state differs\n--- ref\n" + a + "--- impl\n" + b);
    }
    const auto vs = check_invariants(is, handed);
    if (!vs.empty()) fail(m, line, vs.front().invariant + ": " + vs.front().detail);
}

using Cmd = rc::state::Command<Model, Sut>;

// A statement that both models run: a subclass says how to run it once on a model and returns
// the observable outcome text; calls also hand back their op results (for the ghost set H).
struct Stmt : Cmd {
    virtual std::string line() const = 0;
    virtual std::string exec(spec::Hypervisor& h, const State& before,
                             std::vector<OpResult>& results) const = 0;
    virtual bool pre(const State& s) const = 0;
    // D23: what this statement does to H, given its results and the states around it.
    virtual void ghost(Handed&, const State&, const State&, const std::vector<OpResult>&) const {}

    void checkPreconditions(const Model& m) const override { RC_PRE(pre(m.s)); }
    void apply(Model& m) const override {
        ref::Hypervisor r(m.s);
        std::vector<OpResult> results;
        (void)exec(r, m.s, results);
        State after = r.snapshot();
        ghost(m.handed, m.s, after, results);
        m.s = std::move(after);
        m.lines.push_back(line());
    }
    void run(const Model& m, Sut& sut) const override {
        ++*g_sink.commands;
        ref::Hypervisor r(m.s);
        std::vector<OpResult> want_r, got_r;
        const std::string want = exec(r, m.s, want_r);
        const std::string got = exec(*sut.impl, m.s, got_r);
        if (want != got) fail(m, line(), "outcome: ref '" + want + "', impl '" + got + "'");
        // H from impl's own outcomes (equal to ref's here) holds impl to INV-DEVICE-SAFE.
        const State rs = r.snapshot(), is = sut.impl->snapshot();
        Handed handed = m.handed;
        ghost(handed, m.s, is, got_r);
        compare_states(m, line(), rs, is, handed);
    }
    void show(std::ostream& os) const override { os << line(); }
};

template <class T>
struct Call : Stmt {
    DomId caller;
    T op;
    explicit Call(const Model& m) : Call(m.s, aim(m.s)) {}
    Call(const State& s, const Aim& a) : caller(a.caller), op(gen_op<T>(s, a)) {}
    bool pre(const State& s) const override { return s.domain(caller) != nullptr; }
    std::string line() const override {
        return "call " + std::to_string(caller.v) + " " + trace::op_text(op);
    }
    std::string exec(spec::Hypervisor& h, const State&,
                     std::vector<OpResult>& results) const override {
        const auto r = run_op(h, caller, op);
        if (h.name() == "impl")
            count(std::string(T::name) + " " + std::string(status_name(r.status)));
        results = {r};
        return trace::op_outcome(r);
    }
    void ghost(Handed& hd, const State& before, const State& after,
               const std::vector<OpResult>& results) const override {
        record_handed(hd, &before, after, caller, results);
    }
};

struct Batch : Stmt {
    DomId caller;
    std::vector<Op> ops;
    explicit Batch(const Model& m) {
        const Aim a = aim(m.s);
        caller = a.caller;
        const int n = *gen::inRange(2, 5);
        for (int i = 0; i < n; ++i) ops.push_back(gen_any_op(m.s, a));
    }
    bool pre(const State& s) const override { return s.domain(caller) != nullptr; }
    std::string line() const override {
        std::string s = "batch " + std::to_string(caller.v) + "\n";
        for (const auto& op : ops) s += "op " + trace::op_text(op) + "\n";
        return s + "end";
    }
    std::string exec(spec::Hypervisor& h, const State&,
                     std::vector<OpResult>& results) const override {
        std::vector<pv_iommu_op> raw;
        for (const Op& op : ops) raw.push_back(encode(op));
        if (h.iommu_op(caller, raw) != 0) return "hypercall returned non-zero (R10)";
        std::string out;
        for (const auto& r : raw) {
            results.push_back({static_cast<Status>(r.status), decode(r)});
            out += trace::op_outcome(results.back()) + "; ";
        }
        if (h.name() == "impl") count("batch");
        return out;
    }
    void ghost(Handed& hd, const State& before, const State& after,
               const std::vector<OpResult>& results) const override {
        record_handed(hd, &before, after, caller, results);
    }
};

struct Balloon : Stmt {
    DomId d;
    Gfn g;
    explicit Balloon(const Model& m) {
        // Mostly a gfn whose frame has tuples: the interesting case.
        // Mostly a gfn whose frame has tuples, preferring frames several servers share (one
        // invalidate per server, F8 across servers).
        std::vector<std::pair<std::uint16_t, std::uint64_t>> mapped, shared;
        for (const auto& [id, dom] : m.s.domains) {
            for (const auto& [gfn, mfn] : dom.p2m) {
                auto it = m.s.m2b.find(mfn);
                if (it == m.s.m2b.end()) continue;
                mapped.emplace_back(id.v, gfn.v);
                std::set<ServerKey> servers;
                for (const auto& [t, info] : it->second) servers.insert({t.domid, t.ioserver});
                if (servers.size() > 1) shared.emplace_back(id.v, gfn.v);
            }
        }
        const int roll = *gen::inRange(0, 10);
        if (!shared.empty() && roll < 5) {
            const auto [dd, gg] = *gen::elementOf(shared);
            d = DomId{dd};
            g = Gfn{gg};
        } else if (!mapped.empty() && roll < 8) {
            const auto [dd, gg] = *gen::elementOf(mapped);
            d = DomId{dd};
            g = Gfn{gg};
        } else {
            d = DomId{*gen::elementOf(live(m.s))};
            g = Gfn{*gen_gfn()};
        }
    }
    bool pre(const State& s) const override { return s.domain(d) != nullptr; }
    std::string line() const override {
        return "balloon " + std::to_string(d.v) + " gfn=" + hex(g.v);
    }
    std::string exec(spec::Hypervisor& h, const State& before,
                     std::vector<OpResult>&) const override {
        std::size_t k = 0;  // INV-INVALIDATE: tuples of live servers (orphans get none)
        const auto m = before.p2m(d, g);
        if (m && before.frame(*m).state != FrameState::xen)
            if (auto it = before.m2b.find(*m); it != before.m2b.end())
                for (const auto& [t, info] : it->second) k += !info.orphan;
        const BalloonOutcome out = h.balloon(d, g);
        if (out.invalidates != k)
            return "INV-INVALIDATE: " + std::to_string(k) + " tuples, " +
                   std::to_string(out.invalidates) + " invalidates";
        if (h.name() == "impl") {
            count(k == 0 ? "balloon without tuples" : "balloon with tuples");
            if (out.synchronous != 0) count("balloon ring full -> synchronous");
        }
        return (out.mfn ? hex(out.mfn->v) : std::string("nothing")) + " " +
               std::to_string(out.invalidates) + " " + std::to_string(out.synchronous);
    }
};

struct Populate : Stmt {
    DomId d;
    Gfn g;
    explicit Populate(const Model& m) : d(DomId{*gen::elementOf(live(m.s))}), g(Gfn{*gen_gfn()}) {}
    bool pre(const State& s) const override { return s.domain(d) != nullptr; }
    std::string line() const override {
        return "populate " + std::to_string(d.v) + " gfn=" + hex(g.v);
    }
    std::string exec(spec::Hypervisor& h, const State&, std::vector<OpResult>&) const override {
        const auto out = h.populate(d, g);
        if (h.name() == "impl") count(out.mfn ? "populate took a frame" : "populate nothing");
        return out.mfn ? hex(out.mfn->v) : "nothing";
    }
};

struct Drain : Stmt {
    DomId t;
    IoServId id;
    std::uint32_t n;
    explicit Drain(const Model& m) {
        std::vector<std::pair<std::uint16_t, std::uint16_t>> keys;
        for (const auto& [k, srv] : m.s.servers) keys.emplace_back(k.first.v, k.second.v);
        if (keys.empty()) keys.emplace_back(0, 0);
        const auto [tt, ii] = *gen::elementOf(keys);
        t = DomId{tt};
        id = IoServId{ii};
        n = *gen::inRange<std::uint32_t>(1, 4);
    }
    bool pre(const State& s) const override { return s.server(t, id) != nullptr; }
    std::string line() const override {
        return "drain " + std::to_string(t.v) + " id=" + std::to_string(id.v) +
               " count=" + std::to_string(n);
    }
    std::string exec(spec::Hypervisor& h, const State&, std::vector<OpResult>&) const override {
        std::string out;
        for (const IoReq& q : h.drain(t, id, n)) out += hex(q.bfn.v) + " ";
        if (h.name() == "impl") count(out.empty() ? "drain empty" : "drain got requests");
        return out;
    }
};

struct Destroy : Stmt {
    DomId d;
    explicit Destroy(const Model& m) : d(DomId{*gen::elementOf(live(m.s))}) {}
    bool pre(const State& s) const override {
        return s.domain(d) != nullptr && s.domains.size() > 1;
    }
    std::string line() const override { return "destroy " + std::to_string(d.v); }
    std::string exec(spec::Hypervisor& h, const State& before,
                     std::vector<OpResult>&) const override {
        const bool mapped = !before.m2b.empty();
        h.destroy(d);
        if (h.name() == "impl") {
            count(mapped ? "destroy while mapped" : "destroy");
            std::size_t orphans = 0;
            for (const auto& [m, tuples] : h.snapshot().m2b)
                for (const auto& [t, info] : tuples) orphans += info.orphan;
            if (orphans != 0) count("destroy left orphans (R9 v2)");
        }
        return "";
    }
    void ghost(Handed& hd, const State&, const State&,
               const std::vector<OpResult>&) const override {
        forget_emulator(hd, d);
    }
};

// Builds both models from a world trace.
void build(const std::string& world, spec::Hypervisor& h) {
    auto parsed = trace::parse("world", world);
    const auto& t = std::get<trace::Trace>(parsed);
    trace::Runner r(t, h);
    while (!r.done()) (void)r.step();
}

}  // namespace

SequentialResult run_sequential(const SequentialOptions& opt, std::ostream& out) {
    SequentialResult res;
    // RapidCheck prints its configuration (with a seed of its own) when first used; make that
    // line name the seed this run uses, unless the user set RC_PARAMS.
    if (opt.seed != 0) setenv("RC_PARAMS", ("seed=" + std::to_string(opt.seed)).c_str(), 0);
    g_sink = Sink{&res.mix, &res.commands, &opt.failure_trace};
    const auto t0 = std::chrono::steady_clock::now();

    const auto property = [] {
        const std::string world = *gen::elementOf(worlds());
        auto parsed = trace::parse("world", world);
        const auto& t = std::get<trace::Trace>(parsed);
        ref::Hypervisor r(t.host);
        build(world, r);
        Sut sut{impl::make(t.host)};
        build(world, *sut.impl);
        Model m0{r.snapshot(), world, {}, {}};
        rc::state::check(
            m0, sut,
            rc::state::gen::execOneOfWithArgs<
                Call<MapForeignPage>, Call<MapForeignPage>, Call<MapForeignPage>,
                Call<LookupForeignPage>, Call<LookupForeignPage>, Call<UnmapForeignPage>,
                Call<UnmapForeignPage>, Call<MapPage>, Call<UnmapPage>, Call<QueryCaps>, Batch,
                Balloon, Balloon, Populate, Drain, Drain, Destroy>());
    };

    rc::detail::TestMetadata meta;
    meta.id = meta.description = "impl refines ref (sequential state machine)";
    rc::detail::TestParams params;
    params.seed = opt.seed;
    params.maxSuccess = opt.tests;
    params.maxSize = opt.max_size;
    const auto result = rc::detail::checkTestable(property, meta, params);
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (result.template is<rc::detail::SuccessResult>()) {
        res.passed = true;
        res.tests = result.template get<rc::detail::SuccessResult>().numSuccess;
    } else {
        rc::detail::printResultMessage(result, out);
        out << "\n";
        if (result.template is<rc::detail::FailureResult>()) {
            const auto& f = result.template get<rc::detail::FailureResult>();
            res.tests = f.numSuccess;
            res.reproduce = rc::detail::reproduceMapToString({{meta.id, f.reproduce}});
            out << "failure trace: " << opt.failure_trace << "\n"
                << "reproduce: RC_PARAMS=\"reproduce=" << res.reproduce << "\"\n";
        }
    }
    g_sink = Sink{};
    return res;
}

}  // namespace props
