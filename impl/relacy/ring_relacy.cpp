// impl/relacy/ring_relacy.cpp: the buffered ring (impl/ring.h, the real header; issue 15) under
// Relacy, over real MCAS Words (impl/mcas.cpp in its Relacy build): producers and consumers in
// every interleaving the random scheduler reaches.
//
//   ring mpmc: 6 slots (3 requests; 6 does not divide 2^31), pointers started 4 below the
//     2^31 wrap; two producers push two requests each (a push that finds the ring full goes
//     elsewhere, as R7's synchronous channel), one consumer pops. Then, quiescent, the rest is
//     drained: every request pushed is popped exactly once, untorn (both slots its own), each
//     producer's in its push order, and the pointers are canonical.
//   ring aba: 2 slots (1 request), so the packed pointer word comes back to the same value on
//     every push/pop cycle; one producer pushes two requests, two consumers pop one each. The
//     same checks: a pop that validates only the pointer word returns a request twice.
// Planted bugs (impl/ring.h, relacy::RingMutant): free_running (the old scheme: free-running
// counters mod N) fails ring mpmc at the wrap; pop_unvalidated (a pop's slots read outside its
// Txn) fails ring aba.
#include <doctest/doctest.h>

#include <string>
#include <utility>

#include "impl/mcas.h"
#include "impl/relacy/harness.h"
#include "impl/ring.h"

namespace {

using impl::BufRing;
using impl::dec;
using impl::enc;
using impl::EpochGuard;
using impl::Txn;

// A request: producer p's k-th, as two slot payloads (lo = 2 id, hi = 2 id + 1), id = 4p + k.
struct Log {
    static constexpr unsigned kMax = 16;
    unsigned ids[kMax] = {};
    unsigned n = 0;
    bool torn = false;
    void add(std::uint64_t lo, std::uint64_t hi) {
        const std::uint64_t id = dec(lo) / 2;
        if (dec(lo) != 2 * id || dec(hi) != 2 * id + 1) torn = true;
        if (n < kMax) ids[n++] = static_cast<unsigned>(id);
    }
};

bool push(BufRing& r, unsigned id) {
    EpochGuard g;
    for (;;) {
        Txn t;
        const bool ok = r.push(t, enc(2 * std::uint64_t{id}), enc(2 * std::uint64_t{id} + 1));
        if (t.commit()) return ok;  // false: full at the commit (R7: the synchronous channel)
    }
}

void pop(BufRing& r, std::uint32_t max, Log& log) {
    EpochGuard g;
    for (;;) {
        Txn t;
        Log mine;
        (void)r.pop(t, max, [&](std::uint64_t lo, std::uint64_t hi) { mine.add(lo, hi); });
        if (!t.commit()) continue;
        for (unsigned i = 0; i < mine.n; ++i) log.ids[log.n++] = mine.ids[i];
        log.torn |= mine.torn;
        return;
    }
}

// The quiescent checks shared by both suites: pushed (per producer, in order, and whether the
// ring took it) against everything popped.
void check(BufRing& r, const bool (&pushed)[2][2], Log* logs, unsigned nlogs) {
    Log rest;
    pop(r, ~0u, rest);
    unsigned seen[8] = {};
    for (unsigned l = 0; l <= nlogs; ++l) {
        const Log& log = l < nlogs ? logs[l] : rest;
        RL_ASSERT(!log.torn);  // both slots of a request its own
        int last[2] = {-1, -1};
        for (unsigned i = 0; i < log.n; ++i) {
            const unsigned id = log.ids[i];
            RL_ASSERT(id < 8 && id % 4 < 2);
            ++seen[id];
            const int k = static_cast<int>(id % 4);
            RL_ASSERT(k > last[id / 4]);  // one consumer sees a producer's in push order
            last[id / 4] = k;
        }
    }
    for (unsigned p = 0; p < 2; ++p)
        for (unsigned k = 0; k < 2; ++k)
            RL_ASSERT(seen[4 * p + k] == (pushed[p][k] ? 1u : 0u));  // exactly once
    EpochGuard g;
    const BufRing::Pointers ptrs = r.pointers();
    RL_ASSERT(ptrs.read == ptrs.write);  // empty
}

struct RingMpmc : rl::test_suite<RingMpmc, 3> {
    impl::relacy::CoreScope* core = nullptr;
    BufRing* ring = nullptr;
    bool pushed[2][2] = {};
    Log log[1];

    void before() {
        core = new impl::relacy::CoreScope;
        ring = new BufRing(6, (1u << 31) - 4);
        log[0] = Log{};
    }
    void thread(unsigned i) {
        if (i < 2) {
            for (unsigned k = 0; k < 2; ++k) pushed[i][k] = push(*ring, 4 * i + k);
        } else {
            pop(*ring, 1, log[0]);
            pop(*ring, 2, log[0]);
        }
    }
    void after() {
        impl::epoch_quiesce();
        check(*ring, pushed, log, 1);
        {
            EpochGuard g;
            const BufRing::Pointers p = ring->pointers();
            RL_ASSERT(p.read < ring->slots());  // canonical
        }
        delete ring;
        delete core;
    }
};

struct RingAba : rl::test_suite<RingAba, 3> {
    impl::relacy::CoreScope* core = nullptr;
    BufRing* ring = nullptr;
    bool pushed[2][2] = {};
    Log log[2];

    void before() {
        core = new impl::relacy::CoreScope;
        ring = new BufRing(2);
        log[0] = Log{};
        log[1] = Log{};
    }
    void thread(unsigned i) {
        if (i == 0) {
            for (unsigned k = 0; k < 2; ++k) pushed[0][k] = push(*ring, k);
        } else {
            pop(*ring, 1, log[i - 1]);
        }
    }
    void after() {
        impl::epoch_quiesce();
        check(*ring, pushed, log, 2);
        delete ring;
        delete core;
    }
};

}  // namespace

namespace impl::relacy {

// The mutant sweep's check (main.cpp): both suites, at the CI budget, with whatever ring mutant
// is planted (g_ring_mutant).
Verdict check_ring() {
    Verdict v;
    add(v, "ring aba", explore<RingAba>("ring aba", random_sizes(true)));  // the cheaper one first
    if (!v.caught) add(v, "ring mpmc", explore<RingMpmc>("ring mpmc", random_sizes(true)));
    return v;
}

}  // namespace impl::relacy

TEST_CASE("relacy: ring, two producers and a consumer across the pointers' wrap") {
    CHECK(impl::relacy::explore<RingMpmc>("ring mpmc", impl::relacy::random_sizes(false)).ok);
}

TEST_CASE("relacy: ring, a pointer word that repeats (ABA) against two consumers") {
    CHECK(impl::relacy::explore<RingAba>("ring aba", impl::relacy::random_sizes(false)).ok);
}

TEST_CASE("relacy: planted ring bugs are caught") {
    using impl::relacy::RingMutant;
    for (const auto& [m, name] : {std::pair{RingMutant::free_running, "ring-free-running"},
                                  std::pair{RingMutant::pop_unvalidated, "ring-pop-unvalidated"}}) {
        impl::relacy::g_ring_mutant = m;
        const impl::relacy::Verdict v = impl::relacy::check_ring();
        impl::relacy::g_ring_mutant = RingMutant::none;
        MESSAGE(std::string(name) << ": "
                                  << (v.caught ? "caught by " + v.suite : std::string("MISSED"))
                                  << " (" << v.schedules << " schedules, " << v.secs << " s)");
        CHECK(v.caught);
    }
}
