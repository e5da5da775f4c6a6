// bench/tests/peers_test.cpp: every contender of the benchmark against ref on the same
// deterministic op sequence: identical statuses, out fields and balloon outcomes, identical
// servers' queues after every balloon (which invalidates each ioreq server got, buffered or
// synchronous, in what order: R7, F8), and identical frame counts and tuple counts at the end.
// A peer that got the semantics wrong would make the benchmark compare unlike things.
#include "bench/peers.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

using namespace spec;

namespace {

struct Step {
    int kind;  // 0 map, 1 lookup, 2 unmap, 3 balloon
    DomId c, t;
    IoServId s;
    Bfn b;
    Gfn g;
    bool swap;
};

std::vector<Step> sequence(std::uint64_t seed, std::size_t n, const bench::WorldSpec& w) {
    std::mt19937_64 rng(seed);
    std::vector<Step> out;
    for (std::size_t i = 0; i < n; ++i) {
        Step s{};
        const auto p = static_cast<std::uint32_t>(rng() % w.pairs);
        s.c = bench::emulator_of_pair(p);
        s.t = bench::target_of_pair(p);
        const auto r = rng() % 100;
        if (r < 3)
            s.t = bench::target_of_pair((p + 1) % w.pairs);  // no privilege
        else if (r < 5)
            s.t = s.c;  // not foreign
        else if (r < 6)
            s.t = DomId{99};                                                  // no such domain
        s.s = IoServId{static_cast<std::uint16_t>(rng() % (w.servers + 1))};  // last: none
        s.b = Bfn{0x10000 + rng() % 24};                                      // collisions
        s.g = Gfn{rng() % (w.frames + 2)};                                    // some past the end
        s.swap = rng() % 2;
        const auto k = rng() % 100;
        s.kind = k < 40 ? 0 : k < 65 ? 1 : k < 92 ? 2 : 3;
        if (s.kind == 3 && s.t.v == 99) s.t = s.c;  // events name live domains (the contract)
        out.push_back(s);
    }
    return out;
}

std::string show(const Step& s) {
    std::ostringstream o;
    static const char* names[] = {"map", "lookup", "unmap", "balloon"};
    o << names[s.kind] << " c=" << s.c.v << " t=" << s.t.v << " s=" << s.s.v << " bfn=" << s.b.v
      << " gfn=" << s.g.v << " swap=" << s.swap;
    return o.str();
}

void run(bench::Adapter& a, const Step& s, std::vector<std::string>& log) {
    Bfn out{0xdead};
    std::ostringstream o;
    switch (s.kind) {
        case 0:
            o << int(a.map_foreign(s.c, s.t, s.s, s.b, s.g, s.swap, out)) << " " << out.v;
            break;
        case 1:
            o << int(a.lookup_foreign(s.c, s.t, s.s, s.g, out)) << " " << out.v;
            break;
        case 2:
            o << int(a.unmap_foreign(s.c, s.t, s.s, s.b));
            break;
        case 3: {
            const BalloonOutcome r = a.balloon(s.t, s.g);
            o << (r.mfn ? std::to_string(r.mfn->v) : "-") << " " << r.invalidates << " "
              << r.synchronous;
            break;
        }
    }
    log.push_back(o.str());
}

using Servers = std::map<bench::ServerName, bench::ServerObs>;

// Up to 8 bfns of v from index i, in hex.
std::string bfns(const std::vector<std::uint64_t>& v, std::size_t i) {
    std::ostringstream o;
    o << "[" << std::hex;
    for (std::size_t j = i; j < v.size() && j < i + 8; ++j) o << (j > i ? " 0x" : "0x") << v[j];
    if (v.size() > i + 8) o << " ...";
    o << "]";
    return o.str();
}
std::string channel_diff(const char* name, const std::vector<std::uint64_t>& got,
                         const std::vector<std::uint64_t>& want) {
    if (got == want) return "";
    std::size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    std::ostringstream o;
    o << " " << name << "[" << i << "..] got " << bfns(got, i) << " (" << got.size()
      << " in all), want " << bfns(want, i) << " (" << want.size() << ")";
    return o.str();
}
// One line per server whose queues differ: the server, then per channel the first index that
// differs and what got and want (ref) hold from there.
std::string servers_diff(const Servers& got, const Servers& want) {
    std::set<bench::ServerName> names;
    for (const auto& [n, q] : got) names.insert(n);
    for (const auto& [n, q] : want) names.insert(n);
    std::ostringstream o;
    const bench::ServerObs none;
    for (const bench::ServerName& n : names) {
        const auto g = got.find(n), w = want.find(n);
        const bench::ServerObs& gq = g == got.end() ? none : g->second;
        const bench::ServerObs& wq = w == want.end() ? none : w->second;
        if (g != got.end() && w != want.end() && gq == wq) continue;
        o << "\n  server (target " << n.first << ", ioserver " << n.second << ")"
          << (g == got.end() ? " missing" : "") << (w == want.end() ? " not in ref" : "")
          << channel_diff("buffered", gq.buffered, wq.buffered)
          << channel_diff("sync", gq.sync, wq.sync);
    }
    return o.str();
}

// Non-vacuity of the queue check: the tuples of each live (target, gfn) in insertion order,
// followed through ref's verdicts. A balloon is counted as reordering when, on some server,
// F8's order of that server's tuples differs from their insertion order: there a peer that
// announces unsorted tuples fills that server's queue in a different order. (The queues keep
// each server's order only, so F8 between different servers is not observable here.)
class Reorders {
public:
    void step(const Step& s, const std::string& verdict) {
        const std::string st = verdict.substr(0, verdict.find(' '));
        const Key k{s.b.v, s.t.v, s.s.v};
        const Where at{s.t.v, s.g.v};
        if (s.kind == 0 && st == "0" && !where_.contains(k)) {  // a new tuple (else D3: same)
            where_[k] = at;
            live_[at].push_back(k);
        } else if (s.kind == 2 && st == "0") {
            if (const auto it = where_.find(k); it != where_.end()) {
                std::erase(live_[it->second], k);
                where_.erase(it);
            }
        } else if (s.kind == 3 && st != "-") {  // the P2M entry went: its tuples announced
            std::vector<Key>& ts = live_[at];
            if (reordered(ts)) ++count;
            for (const Key& t : ts) where_.erase(t);
            ts.clear();
        }
    }
    int count = 0;  // balloons whose announce order differs from insertion order on a server

private:
    using Key = std::tuple<std::uint64_t, std::uint16_t, std::uint16_t>;  // (bfn, domid, ioserver)
    using Where = std::pair<std::uint16_t, std::uint64_t>;                // (target, gfn)
    static bool reordered(const std::vector<Key>& ts) {
        for (std::size_t i = 0; i < ts.size(); ++i)
            for (std::size_t j = i + 1; j < ts.size(); ++j)
                if (std::get<1>(ts[i]) == std::get<1>(ts[j]) &&
                    std::get<2>(ts[i]) == std::get<2>(ts[j]) && ts[j] < ts[i])
                    return true;
        return false;
    }
    std::map<Key, Where> where_;
    std::map<Where, std::vector<Key>> live_;
};

// ref's verdicts on steps, the statuses they reach (a balloon: "sync" if it went synchronous),
// its servers' queues after each balloon step and at the end, and the reorder count.
struct Oracle {
    std::unique_ptr<bench::Adapter> a = bench::make_ref_unlocked();
    std::vector<std::string> want;
    std::set<std::string> seen;
    std::map<std::size_t, Servers> queues;
    Servers end_queues;
    Reorders reorders;
    Oracle(const bench::WorldSpec& w, const std::vector<Step>& steps) {
        a->setup(w);
        for (std::size_t i = 0; i < steps.size(); ++i) {
            run(*a, steps[i], want);
            reorders.step(steps[i], want[i]);
            if (steps[i].kind != 3) {
                seen.insert(want[i].substr(0, want[i].find(' ')));
            } else {
                if (want[i].back() != '0') seen.insert("sync");
                queues[i] = a->observe_servers();
            }
        }
        end_queues = a->observe_servers();
    }
};

// Runs steps on a, checking its servers' queues against the oracle's after each balloon step
// and at the end, and its verdicts against the oracle's; reports the first divergence of each.
void replay(bench::Adapter& a, const std::vector<Step>& steps, const Oracle& oracle,
            const std::string& who) {
    std::vector<std::string> got;
    bool queues_ok = true;
    for (std::size_t i = 0; i < steps.size(); ++i) {
        run(a, steps[i], got);
        if (steps[i].kind != 3 || !queues_ok) continue;
        const Servers q = a.observe_servers();
        if (q != oracle.queues.at(i)) {
            queues_ok = false;
            FAIL_CHECK(who << " step " << i << " " << show(steps[i])
                           << ": servers' queues differ from ref's:"
                           << servers_diff(q, oracle.queues.at(i)));
        }
    }
    for (std::size_t i = 0; i < steps.size(); ++i) {
        if (got[i] != oracle.want[i]) {
            FAIL_CHECK(who << " step " << i << " " << show(steps[i]) << ": got " << got[i]
                           << ", ref " << oracle.want[i]);
            break;
        }
    }
    const Servers q = a.observe_servers();
    if (q != oracle.end_queues)
        FAIL_CHECK(who << " at the end:" << servers_diff(q, oracle.end_queues));
}

}  // namespace

TEST_CASE("every contender matches ref on the same op sequence") {
    bench::WorldSpec w;
    w.pairs = 2;
    w.frames = 16;
    w.servers = 3;
    w.ring_slots = 6;  // the ring fills: synchronous invalidates are compared too
    int reorders = 0;
    for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
        const auto steps = sequence(seed, 3000, w);
        const Oracle oracle(w, steps);
        const auto want_obs = oracle.a->observe();
        // Not vacuous: the sequence reaches every status and ring-full balloons.
        for (const char* st : {"0", "-1", "-2", "-6", "-17", "-19", "sync"})
            CHECK(oracle.seen.contains(st));
        // ... and balloons where a missing F8 sort changes a server's queue (checked below).
        reorders += oracle.reorders.count;
        // The no-op-mutex variants too: the lock ceiling compares each with its locked twin, so
        // it must do the same work with the same results (one thread, as the ceiling runs it).
        auto cs = bench::contenders();
        for (auto& c : bench::unlocked_twins()) cs.push_back({c.name + "-nolock", c.make, c.unit});
        for (const auto& c : cs) {
            if (c.name == "v2-core") continue;  // a bound with a narrower domain: its own test
            CAPTURE(c.name);
            CAPTURE(seed);
            auto a = c.make();
            a->thread_begin();
            a->setup(w);
            replay(*a, steps, oracle, c.name);
            const auto obs = a->observe();
            CHECK(obs == want_obs);
            a->thread_end();
        }
    }
    CHECK(reorders >= 8);  // 16 in all now
}

// v2-core (the bare frame-cell core) on the bench's own op shapes, the domain it is built for:
// bus address kBase + gfn (several servers share one IOMMU entry), at most 4 servers per frame,
// the control-plane errors, swap-flagged maps and balloons with ring-full invalidations, but no
// unmap of a ballooned gfn (R12's scratch removal is not in the core). Same verdict as ref on
// every step and the same frames at the end.
TEST_CASE("v2-core matches ref on the bench's op shapes") {
    bench::WorldSpec w;
    w.pairs = 2;
    w.frames = 32;
    w.servers = 5;
    w.ring_slots = 6;
    const std::uint64_t half = w.frames / 2;  // gfns below: map/lookup/unmap; above: + balloon
    int reorders = 0;
    for (std::uint64_t seed : {1, 2, 3, 4, 5, 6}) {
        std::mt19937_64 rng(seed);
        std::vector<Step> steps;
        for (int i = 0; i < 4000; ++i) {
            Step st{};
            const auto p = static_cast<std::uint32_t>(rng() % w.pairs);
            st.c = bench::emulator_of_pair(p);
            st.t = bench::target_of_pair(p);
            const auto r = rng() % 100;
            if (r < 3)
                st.t = bench::target_of_pair((p + 1) % w.pairs);  // no privilege
            else if (r < 5)
                st.t = st.c;  // not foreign
            else if (r < 6)
                st.t = DomId{99};  // no such domain
            // Servers 0..2 at bus address kBase + gfn; 3 stands for server 0 at kBase2 + gfn, so
            // a server can hold two tuples on a frame (F8's order on it is observable), and a
            // frame at most 4 (the core's bound).
            const auto sv = rng() % 100 < 3 ? w.servers : rng() % 4;
            st.s = IoServId{static_cast<std::uint16_t>(sv == 3 ? 0 : sv)};
            st.g = Gfn{rng() % (w.frames + 1)};  // one past the end
            st.b = Bfn{(sv == 3 ? 0x20000000 : 0x10000000) + st.g.v};
            const bool high = st.g.v >= half;
            st.swap = high && rng() % 2 == 0;
            const auto k = rng() % 100;
            st.kind = k < 45 ? 0 : k < 70 ? 1 : high ? 3 : 2;
            if (st.kind == 3 && st.t.v == 99) st.t = st.c;
            steps.push_back(st);
        }
        const Oracle oracle(w, steps);
        for (const char* st : {"0", "-1", "-2", "-6", "-19", "sync"})
            CHECK(oracle.seen.contains(st));
        reorders += oracle.reorders.count;  // balloons where a missing F8 sort shows
        auto a = bench::make_v2_core();
        a->thread_begin();
        a->setup(w);
        replay(*a, steps, oracle, "v2-core seed " + std::to_string(seed));
        CHECK(a->observe() == oracle.a->observe());
        a->thread_end();
    }
    CHECK(reorders >= 3);  // 6 in all now (about one per seed)
}
