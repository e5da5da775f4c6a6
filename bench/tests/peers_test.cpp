// bench/tests/peers_test.cpp: every contender of the benchmark against ref on the same
// deterministic op sequence: identical statuses, out fields and balloon outcomes, and identical
// frame counts and tuple counts at the end. A peer that got the semantics wrong would make the
// benchmark compare unlike things.
#include "bench/peers.h"

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <sstream>

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

}  // namespace

TEST_CASE("every contender matches ref on the same op sequence") {
    bench::WorldSpec w;
    w.pairs = 2;
    w.frames = 16;
    w.servers = 3;
    w.ring_slots = 6;  // the ring fills: synchronous invalidates are compared too
    for (std::uint64_t seed : {1, 2, 3, 4, 5}) {
        const auto steps = sequence(seed, 3000, w);
        auto oracle = bench::make_ref_unlocked();
        oracle->setup(w);
        std::vector<std::string> want;
        for (const Step& s : steps) run(*oracle, s, want);
        const auto want_obs = oracle->observe();
        // Not vacuous: the sequence reaches every status and ring-full balloons.
        std::set<std::string> seen;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            const std::string st = want[i].substr(0, want[i].find(' '));
            if (steps[i].kind != 3)
                seen.insert(st);
            else if (want[i].back() != '0')
                seen.insert("sync");
        }
        for (const char* st : {"0", "-1", "-2", "-6", "-17", "-19", "sync"})
            CHECK(seen.contains(st));
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
            std::vector<std::string> got;
            for (const Step& s : steps) run(*a, s, got);
            for (std::size_t i = 0; i < steps.size(); ++i) {
                if (got[i] != want[i]) {
                    FAIL_CHECK(c.name << " step " << i << " " << show(steps[i]) << ": got "
                                      << got[i] << ", ref " << want[i]);
                    break;
                }
            }
            const auto obs = a->observe();
            CHECK(obs == want_obs);
            a->thread_end();
        }
    }
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
            st.s = IoServId{static_cast<std::uint16_t>(rng() % 100 < 3 ? w.servers : rng() % 4)};
            st.g = Gfn{rng() % (w.frames + 1)};  // one past the end
            st.b = Bfn{0x10000000 + st.g.v};
            const bool high = st.g.v >= half;
            st.swap = high && rng() % 2 == 0;
            const auto k = rng() % 100;
            st.kind = k < 45 ? 0 : k < 70 ? 1 : high ? 3 : 2;
            if (st.kind == 3 && st.t.v == 99) st.t = st.c;
            steps.push_back(st);
        }
        auto oracle = bench::make_ref_unlocked();
        oracle->setup(w);
        std::vector<std::string> want;
        for (const Step& st : steps) run(*oracle, st, want);
        std::set<std::string> seen;
        for (std::size_t i = 0; i < steps.size(); ++i) {
            if (steps[i].kind != 3)
                seen.insert(want[i].substr(0, want[i].find(' ')));
            else if (want[i].back() != '0')
                seen.insert("sync");
        }
        for (const char* st : {"0", "-1", "-2", "-6", "-19", "sync"}) CHECK(seen.contains(st));
        auto a = bench::make_v2_core();
        a->thread_begin();
        a->setup(w);
        std::vector<std::string> got;
        for (const Step& st : steps) run(*a, st, got);
        for (std::size_t i = 0; i < steps.size(); ++i)
            if (got[i] != want[i]) {
                FAIL_CHECK("seed " << seed << " step " << i << " " << show(steps[i]) << ": got "
                                   << got[i] << ", ref " << want[i]);
                break;
            }
        CHECK(a->observe() == oracle->observe());
        a->thread_end();
    }
}
