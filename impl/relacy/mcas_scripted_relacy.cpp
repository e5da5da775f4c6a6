// impl/relacy/mcas_scripted_relacy.cpp: scripted Relacy schedules for issue 15's two MCAS bugs
// (regression tests), and readers against MCASs (lookup's read path).
//
// Bugs 1 and 2 need a helper parked in a narrow window while other threads run two later
// MCASs: random schedules and a bounded search do not get there (measured: 400,000 random
// schedules miss both). A Script parks thread t at its k-th visit of a stall point (impl/mcas.h
// stall(): in this build a hook) until a later step of another thread releases it; every other
// step is still interleaved by Relacy's random scheduler, with relaxed memory. Each suite states
// its schedule as a numbered list of steps; the gates force that order and nothing else.
//
// The suites (each fails on the code before issue 15's fixes; see README.md for the mutants):
//  - StaleCompleter (bug 2, RDCSS ABA): a completer parked between reading UNDECIDED and its
//    CAS; the word goes 5 -> 6 -> 5 and a stale installer re-installs the same entry; without
//    generations the completer's CAS succeeds and phase 2 writes the stale 6.
//  - StaleInstaller (bug 1's class): a helper parked before its install, while the MCAS fails
//    and is retired; the word holds the entry's old value again and the install lands after
//    the retirement; a reader pinned in the next epoch loads it and must not see the
//    descriptor reclaimed (grace period of descriptors, mcas.cpp "Reclamation of descriptors").
//  - StaleCompletion (bug 1): a helper's install left in the word across the decision, then
//    completed by a completer that read UNDECIDED (phase 2's cleanup removes it first).
//  - Reads: a reader reads two words that writers always change together, in address order,
//    while two writers MCAS them: a later read never returns an older value (no torn or
//    undone state), and a lookup-style double read (impl/hypervisor.cpp lookup_registered)
//    that validates sees both words at one instant.
//  - ReadOfReadCheck (issue 16, v2 step 2a): a reader of a word held by an MCAS in READ_CHECK
//    helps it (planted read-returns-old-rc).
#include <doctest/doctest.h>

#include <array>
#include <string>

#include "impl/mcas.h"
#include "impl/relacy/harness.h"

namespace {

using impl::dec;
using impl::enc;
using impl::EpochGuard;
using impl::Txn;
using impl::Word;
using spec::FaultPoint;

// ---------------------------------------------------------------------------------------------
// Scripts

struct Park {
    unsigned thread = 0;
    FaultPoint point = FaultPoint::count_;
    int visit = 0;  // the thread's visit of `point` that parks (1: its first); 0: when armed
    int gate = 0;
};

// One iteration's script. The atomics are Relacy's (created in the suite's before()); the
// visit counters are plain: each is touched by one Relacy thread only.
struct Script {
    static constexpr int kGates = 8;
    static constexpr unsigned kThreads = impl::relacy::kMaxThreads + 1;
    std::array<Park, kGates> parks{};
    int nparks = 0;
    std::array<std::array<int, spec::kFaultPoints>, kThreads> visits{};
    std::array<bool, kGates> armed{};
    // seq_cst (default) everywhere: test handshakes, not under test.
    std::array<impl::Atomic<int>, kGates> arrived{};  // a thread parked at the gate
    std::array<impl::Atomic<int>, kGates> go{};       // the gate is open
    std::array<impl::Atomic<int>, kGates> flag{};     // "thread t finished step s" signals

    void park(unsigned thread, FaultPoint p, int visit, int gate) {
        parks[static_cast<std::size_t>(nparks++)] = Park{thread, p, visit, gate};
    }
};

Script* g_script = nullptr;  // the running iteration's; plain (one OS thread)

// seq_cst: a test handshake (it orders every step before it with every step after it).
void wait_for(const impl::Atomic<int>& f) {
    while (f.load(std::memory_order_seq_cst) == 0) impl::spin_pause();
}
void set(impl::Atomic<int>& f) { f.store(1, std::memory_order_seq_cst); }

void stall_hook(FaultPoint p) {
    Script& s = *g_script;
    const unsigned t = rl::thread_index();
    const int v = ++s.visits[t][static_cast<std::size_t>(p)];
    for (int i = 0; i < s.nparks; ++i) {
        const Park& k = s.parks[static_cast<std::size_t>(i)];
        const auto g = static_cast<std::size_t>(k.gate);
        if (k.thread != t || k.point != p) continue;
        if (k.visit != 0 ? k.visit != v : !s.armed[g]) continue;
        s.armed[g] = false;
        set(s.arrived[g]);
        wait_for(s.go[g]);
    }
}

// Runs a scripted suite with the hook installed (and removed after, whatever the outcome).
// The schedule is forced only at the gates: the random scheduler explores the rest; spinning
// at a gate costs steps, so the depth limit is raised.
template <class Suite>
impl::relacy::Explored run_scripted(const std::string& name, rl::iteration_t random,
                                    bool print_failure) {
    impl::relacy::g_stall_hook = stall_hook;
    impl::relacy::Exploration x;
    x.random = random;
    x.depth_limit = 200000;
    x.print_failure = print_failure;
    x.env_overrides = print_failure;
    const impl::relacy::Explored e = impl::relacy::explore<Suite>(name, x);
    impl::relacy::g_stall_hook = nullptr;
    return e;
}

// One attempt of a Txn writing w := w + delta: one word, by default a real MCAS (the full
// protocol: the stale suites park its owner in RDCSS windows, and its retirement moves the
// epoch), else commit()'s one-word CAS (the product's path).
bool add_once(Word& w, std::int64_t delta, bool full_protocol = true) {
    EpochGuard g;
    Txn t;
    if (full_protocol) t.use_full_protocol();  // the owner passes every RDCSS window
    const std::uint64_t v = t.read(w);
    t.write(w, enc(dec(v) + static_cast<std::uint64_t>(delta)));
    return t.commit();
}

std::uint64_t read(Word& w) {
    EpochGuard g;
    return dec(impl::mcas_read(w));
}

// Two words in address order (an MCAS installs into x first).
struct Pair {
    Word x{enc(5)};
    Word y{enc(0)};
};

// One attempt of d = {x: 5 -> 6, y: 0 -> 1}.
bool both_once(Pair& p) {
    EpochGuard g;
    Txn t;  // the product's commit: the owner installs x directly, y by RDCSS
    const std::uint64_t x = t.read(p.x), y = t.read(p.y);
    t.write(p.x, enc(dec(x) + 1));
    t.write(p.y, enc(dec(y) + 1));
    return t.commit();
}

// ---------------------------------------------------------------------------------------------
// Bug 2: the RDCSS ABA. Word a = 5; d (T0's) writes 6.
//  1. T0 installs d's entry (R1) and, completing it, reads UNDECIDED; parks before its CAS.
//  2. T2 reads a: completes R1 -> d, helps d: draws a generation, parks before installing.
//  3. T1 reads a: helps d to SUCCEEDED (a = 6), then its own MCAS writes 5.
//  4. T2 installs d's entry again (R2: a held 5) and parks before completing it.
//  5. T0's stale CAS R1 -> d: with generations R2 != R1 and it fails; phase 2 completes R2
//     (d decided: back to 5). Without them R2 == R1: d is installed again and phase 2 writes 6.
//  6. T2 completes (nothing left). Final a = 5 (+1 -1).
struct StaleCompleter : rl::test_suite<StaleCompleter, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Word* a = nullptr;
    Script* s = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        a = new Word(enc(5));
        s = g_script = new Script;
        s->park(0, FaultPoint::stall_rdcss_phases, 2, 0);          // step 1
        s->park(2, FaultPoint::stall_rdcss_before_install, 1, 1);  // step 2
        s->park(2, FaultPoint::stall_rdcss_phases, 2, 2);          // step 4
    }
    void thread(unsigned i) {
        if (i == 0) {
            RL_ASSERT(add_once(*a, +1));  // steps 1, 5
            set(s->go[2]);                // step 6
        } else if (i == 2) {
            wait_for(s->arrived[0]);
            (void)read(*a);  // steps 2, 4, 6
        } else {
            wait_for(s->arrived[1]);
            RL_ASSERT(read(*a) == 6);     // step 3
            RL_ASSERT(add_once(*a, -1));  // step 3
            set(s->go[1]);
            wait_for(s->arrived[2]);
            set(s->go[0]);  // step 5
        }
    }
    void after() {
        impl::epoch_quiesce();
        const std::uint64_t v = a->load(std::memory_order_relaxed);
        RL_ASSERT((v & 3) == 0);  // no descriptor or install left
        RL_ASSERT(dec(v) == 5);   // not the stale 6
        delete a;
        delete s;
        g_script = nullptr;
        delete core;
    }
};

// ---------------------------------------------------------------------------------------------
// Bug 1's class: a stale installer publishes a retired descriptor. Pair {x 5, y 0}; d (T0's)
// = {x: 5 -> 6, y: 0 -> 1}. Epochs: g at the start.
//  1. T0 installs d in x, parks (after x, before y).
//  2. T1: y := 1 (its collect advances the epoch to g+1: T0 announced g).
//  3. T2 pins at g+1, reads x (d), helps d: passes x, parks before installing into y.
//  4. T0: y holds 1, d FAILS; phase 2 restores x; T0 retires d at epoch g+1 and its collect
//     advances to g+2 (T2 announced g+1).
//  5. T1: y := 0, pins at g+2 (step 7's reader).
//  6. T2 installs d's entry into y (it holds 0 again: after d's retirement), parks.
//  7. T1 reads y: loads the install, parks before reading its owner's status.
//  8. T2 completes (d FAILED: y = 0), finishes, unpins.
//  9. T0: epoch_quiesce advances to g+3 (T1 announced g+2): a descriptor freed two epochs after
//     its retirement (g+1) is reclaimed here, under T1.
// 10. T1 reads d's status: must not be reclaimed (descriptors wait one epoch more).
struct StaleInstaller : rl::test_suite<StaleInstaller, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Pair* p = nullptr;
    Script* s = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        p = new Pair;
        s = g_script = new Script;
        s->park(0, FaultPoint::stall_mcas_phase1, 1, 0);           // step 1
        s->park(2, FaultPoint::stall_rdcss_before_install, 2, 1);  // step 3 (x's was first)
        s->park(2, FaultPoint::stall_rdcss_phases, 1, 2);          // step 6
        s->park(1, FaultPoint::stall_rdcss_loaded, 0, 3);          // step 7 (armed)
    }
    void thread(unsigned i) {
        if (i == 0) {
            RL_ASSERT(!both_once(*p));  // steps 1, 4
            set(s->flag[0]);
            wait_for(s->arrived[3]);
            set(s->go[2]);  // step 8
            wait_for(s->flag[2]);
            impl::epoch_quiesce();  // step 9
            set(s->go[3]);
        } else if (i == 1) {
            wait_for(s->arrived[0]);
            RL_ASSERT(add_once(p->y, +1));  // step 2
            set(s->flag[1]);
            wait_for(s->arrived[1]);
            set(s->go[0]);  // step 4
            wait_for(s->flag[0]);
            RL_ASSERT(add_once(p->y, -1));  // step 5
            EpochGuard g;
            set(s->go[1]);  // step 6
            wait_for(s->arrived[2]);
            s->armed[3] = true;
            RL_ASSERT(dec(impl::mcas_read(p->y)) == 0);  // steps 7, 10
        } else {
            wait_for(s->flag[1]);
            RL_ASSERT(read(p->x) == 5);  // steps 3, 6, 8
            set(s->flag[2]);
        }
    }
    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(p->x.load(std::memory_order_relaxed) == enc(5));
        RL_ASSERT(p->y.load(std::memory_order_relaxed) == enc(0));
        delete p;
        delete s;
        g_script = nullptr;
        delete core;
    }
};

// ---------------------------------------------------------------------------------------------
// Bug 1: a stale completion after the decision. Pair {x 5, y 0}; d (T0's) = {x: 5 -> 6,
// y: 0 -> 1}.
//  1. T0 installs d in x, parks (after x, before y).
//  2. T1: y := 1 (its collect advances the epoch to g+1).
//  3. T2 pins at g+1, reads x (d), helps d: passes x, parks before installing into y.
//  4. T0 reads y = 1: d will FAIL; parks before deciding.
//  5. T1: y := 0. T2 installs d's entry into y, reads UNDECIDED, parks before its CAS.
//  6. T0 decides FAILED; phase 2 restores x and completes T2's pending install of y (back to
//     0); retires d at g+1; its collect advances to g+2.
//  7. T1 pins at g+2. T2's CAS (install -> d) finds y = 0 and fails. (Without phase 2's
//     cleanup it succeeds: d, retired, is in y again.) T2 parks before its decide.
//  8. T1 reads y: 0 (without the cleanup: d, and T1 parks before helping it).
//  9. T2 finishes (its phase 2 releases y), unpins; T0's epoch_quiesce advances to g+3.
// 10. T1 (if parked) helps d: d must not be reclaimed.
struct StaleCompletion : rl::test_suite<StaleCompletion, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Pair* p = nullptr;
    Script* s = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        p = new Pair;
        s = g_script = new Script;
        s->park(0, FaultPoint::stall_mcas_phase1, 1, 0);           // step 1
        s->park(2, FaultPoint::stall_rdcss_before_install, 2, 1);  // step 3
        s->park(0, FaultPoint::stall_mcas_decide, 1, 2);           // step 4
        s->park(2, FaultPoint::stall_rdcss_phases, 2, 3);          // step 5
        s->park(2, FaultPoint::stall_mcas_decide, 1, 4);           // step 7
        s->park(1, FaultPoint::stall_help_other, 0, 5);            // step 8 (armed)
    }
    void thread(unsigned i) {
        if (i == 0) {
            RL_ASSERT(!both_once(*p));  // steps 1, 4, 6
            set(s->flag[0]);
            // seq_cst: a test handshake. T1 parked (the stale completion) or read past.
            while (s->arrived[5].load(std::memory_order_seq_cst) == 0 &&
                   s->flag[3].load(std::memory_order_seq_cst) == 0)
                impl::spin_pause();
            set(s->go[4]);  // step 9
            wait_for(s->flag[2]);
            impl::epoch_quiesce();
            set(s->go[5]);  // step 10
        } else if (i == 1) {
            wait_for(s->arrived[0]);
            RL_ASSERT(add_once(p->y, +1));  // step 2
            set(s->flag[1]);
            wait_for(s->arrived[1]);
            set(s->go[0]);  // step 4
            wait_for(s->arrived[2]);
            RL_ASSERT(add_once(p->y, -1));  // step 5
            set(s->go[1]);
            wait_for(s->arrived[3]);
            set(s->go[2]);  // step 6
            wait_for(s->flag[0]);
            EpochGuard g;  // step 7
            set(s->go[3]);
            wait_for(s->arrived[4]);
            s->armed[5] = true;
            RL_ASSERT(dec(impl::mcas_read(p->y)) == 0);  // steps 8, 10
            set(s->flag[3]);
        } else {
            wait_for(s->flag[1]);
            RL_ASSERT(read(p->x) == 5);  // steps 3, 5, 7, 9
            set(s->flag[2]);
        }
    }
    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(p->x.load(std::memory_order_relaxed) == enc(5));
        RL_ASSERT(p->y.load(std::memory_order_relaxed) == enc(0));
        delete p;
        delete s;
        g_script = nullptr;
        delete core;
    }
};

// ---------------------------------------------------------------------------------------------
// Readers against MCASs (lookup's read path: mcas_read, and the double read of
// lookup_registered). Writers T0 and T1 each raise both words by one, twice, in one MCAS each
// time (so x == y at every instant). Reader T2 reads x then y, three times: y >= x every time
// (y was read later), neither ever goes back, and a validated double read (x, y, x, y: the
// re-reads equal the reads) saw x == y.
struct Reads : rl::test_suite<Reads, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Pair* p = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        p = new Pair;
        p->x.store(enc(0), std::memory_order_relaxed);
    }
    void thread(unsigned i) {
        if (i < 2) {
            for (int k = 0; k < 2; ++k)
                while (![&] {
                    EpochGuard g;
                    Txn t;
                    const std::uint64_t x = t.read(p->x), y = t.read(p->y);
                    t.write(p->x, enc(dec(x) + 1));
                    t.write(p->y, enc(dec(y) + 1));
                    return t.commit();
                }()) {
                }
            return;
        }
        std::uint64_t last_x = 0, last_y = 0;
        for (int k = 0; k < 3; ++k) {
            EpochGuard g;
            const std::uint64_t x = dec(impl::mcas_read(p->x));
            const std::uint64_t y = dec(impl::mcas_read(p->y));
            RL_ASSERT(y >= x);                      // y read after x: never older
            RL_ASSERT(x >= last_x && y >= last_y);  // monotone per word
            const std::uint64_t x2 = dec(impl::mcas_read(p->x));
            const std::uint64_t y2 = dec(impl::mcas_read(p->y));
            if (x2 == x && y2 == y) RL_ASSERT(x == y);  // validated: one instant
            last_x = x2;
            last_y = y2;
        }
    }
    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(p->x.load(std::memory_order_relaxed) == enc(4));
        RL_ASSERT(p->y.load(std::memory_order_relaxed) == enc(4));
        delete p;
        delete core;
    }
};

// ---------------------------------------------------------------------------------------------
// A reader of a word whose MCAS is in READ_CHECK (issue 16, v2 step 2a; planted
// read-returns-old-rc). Words {x 5, y 0}; d (T0's) reads x (its check word) and writes y 0 -> 1.
//  1. T0 installs d in y, goes READ_CHECK, checks x (5: passes), parks before its decision.
//  2. T1: x := 6 (x is not locked: d only checked it). T1 returns.
//  3. T2 (after T1 returned) reads y: it holds d, in READ_CHECK. It must help d: d's read
//     check now sees x = 6, d FAILS, y reads 0. Returning d's old value without helping also
//     reads 0, but then:
//  4. T0 decides SUCCEEDED on its check of step 1: y = 1. d then linearized before T1 (x = 5)
//     and so before T2, which read the y of before d: not linearizable.
struct ReadOfReadCheck : rl::test_suite<ReadOfReadCheck, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Pair* p = nullptr;
    Script* s = nullptr;
    impl::Atomic<int>* d_ok = nullptr;  // seq_cst: results; 1: d committed
    impl::Atomic<int>* saw = nullptr;   // T2's y + 1
    void before() {
        core = new impl::relacy::CoreScope;
        p = new Pair;
        s = g_script = new Script;
        d_ok = new impl::Atomic<int>(0);
        saw = new impl::Atomic<int>(0);
        s->park(0, FaultPoint::stall_mcas_decide, 2, 0);  // step 1: the second decision point
    }
    void thread(unsigned i) {
        if (i == 0) {
            EpochGuard g;
            Txn t;
            RL_ASSERT(dec(t.read(p->x)) == 5);
            (void)t.read(p->y);
            t.write(p->y, enc(1));
            d_ok->store(t.commit() ? 1 : 2, std::memory_order_seq_cst);  // steps 1, 4
        } else if (i == 1) {
            wait_for(s->arrived[0]);
            while (!add_once(p->x, +1, false)) {  // step 2 (a one-word CAS, the product's)
            }
            set(s->flag[0]);
        } else {
            wait_for(s->flag[0]);
            saw->store(static_cast<int>(read(p->y)) + 1, std::memory_order_seq_cst);  // step 3
            set(s->go[0]);                                                            // step 4
        }
    }
    void after() {
        impl::epoch_quiesce();
        const int ok = d_ok->load(std::memory_order_relaxed);
        const int y = saw->load(std::memory_order_relaxed) - 1;
        RL_ASSERT(ok == 2);  // x moved before d decided: d fails (its helper T2 decided it)
        RL_ASSERT(y == 0);
        RL_ASSERT(dec(p->x.load(std::memory_order_relaxed)) == 6);
        RL_ASSERT(dec(p->y.load(std::memory_order_relaxed)) == 0);
        delete saw;
        delete d_ok;
        delete p;
        delete s;
        g_script = nullptr;
        delete core;
    }
};

// ---------------------------------------------------------------------------------------------
// The owner's direct install (issue 16, v2 step 2b; planted direct-install-all). Words {x 5,
// y 0}; d (T0's, Txn::commit's shortcuts on) writes x 5 -> 6 and y 0 -> 1.
//  1. T0 installs d into x directly (no RDCSS) and parks (stall.mcas_phase1).
//  2. T1 reads x: it helps d, installs y by RDCSS, decides SUCCEEDED, releases: x 6, y 1.
//     Then y := 0 by a one-word commit: y holds d's old value again.
//  3. T0 goes on. d is decided: it must not install anything more. An owner that installed
//     every word directly (the bug) would CAS y 0 -> d and its phase 2 would write y = 1 a
//     second time: T1's update lost.
struct DirectInstall : rl::test_suite<DirectInstall, 2> {
    impl::relacy::CoreScope* core = nullptr;
    Pair* p = nullptr;
    Script* s = nullptr;
    impl::Atomic<int>* d_ok = nullptr;  // seq_cst: results; 1: d committed
    void before() {
        core = new impl::relacy::CoreScope;
        p = new Pair;
        s = g_script = new Script;
        d_ok = new impl::Atomic<int>(0);
        s->park(0, FaultPoint::stall_mcas_phase1, 1, 0);  // step 1
    }
    void thread(unsigned i) {
        if (i == 0) {
            EpochGuard g;
            Txn t;  // the product's commit: shortcuts on
            const std::uint64_t x = t.read(p->x), y = t.read(p->y);
            t.write(p->x, enc(dec(x) + 1));
            t.write(p->y, enc(dec(y) + 1));
            d_ok->store(t.commit() ? 1 : 2, std::memory_order_seq_cst);  // steps 1, 3
        } else {
            wait_for(s->arrived[0]);
            RL_ASSERT(read(p->x) == 6);  // step 2: helped d to its end
            for (;;) {                   // y := y - 1, one word
                EpochGuard g;
                Txn t;
                const std::uint64_t y = t.read(p->y);
                t.write(p->y, enc(dec(y) - 1));
                if (t.commit()) break;
            }
            set(s->go[0]);  // step 3
        }
    }
    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(d_ok->load(std::memory_order_relaxed) == 1);
        RL_ASSERT(p->x.load(std::memory_order_relaxed) == enc(6));
        RL_ASSERT(p->y.load(std::memory_order_relaxed) == enc(0));  // +1 by d, -1 by T1, once
        delete d_ok;
        delete p;
        delete s;
        g_script = nullptr;
        delete core;
    }
};

// Scripted schedules are forced at their gates; random schedules vary the rest (and the
// relaxed-memory outcomes). A few hundred suffice: each one reaches the window.
rl::iteration_t scripted_schedules() { return impl::relacy::full_budget() ? 20000 : 500; }
rl::iteration_t read_schedules() { return impl::relacy::full_budget() ? 1000000 : 100000; }

}  // namespace

namespace impl::relacy {

Verdict check_mcas_scripted() {
    Verdict v;
    const rl::iteration_t n = scripted_schedules();
    add(v, "mcas stale completer", run_scripted<StaleCompleter>("mcas stale completer", n, false));
    if (!v.caught)
        add(v, "mcas stale installer",
            run_scripted<StaleInstaller>("mcas stale installer", n, false));
    if (!v.caught)
        add(v, "mcas stale completion",
            run_scripted<StaleCompletion>("mcas stale completion", n, false));
    return v;
}

Verdict check_mcas_direct_scripted() {
    Verdict v;
    add(v, "mcas direct install",
        run_scripted<DirectInstall>("mcas direct install", scripted_schedules(), false));
    return v;
}

Verdict check_mcas_rc_scripted() {
    Verdict v;
    add(v, "mcas read of a read check",
        run_scripted<ReadOfReadCheck>("mcas read of a read check", scripted_schedules(), false));
    return v;
}

Verdict check_mcas_reads() {
    Verdict v;
    impl::relacy::Exploration x;
    x.random = env_or("PVIOMMU_RELACY_MUTANT_RANDOM", 200000);
    x.print_failure = false;
    x.env_overrides = false;
    add(v, "mcas reads", explore<Reads>("mcas reads", x));
    return v;
}

}  // namespace impl::relacy

TEST_CASE("relacy: issue 15 bug 2, RDCSS ABA: a stale completer cannot re-install d (scripted)") {
    CHECK(run_scripted<StaleCompleter>("mcas stale completer", scripted_schedules(), true).ok);
}

TEST_CASE(
    "relacy: issue 15 bug 1, a stale installer's late install of a retired descriptor is "
    "read safely (scripted)") {
    CHECK(run_scripted<StaleInstaller>("mcas stale installer", scripted_schedules(), true).ok);
}

TEST_CASE(
    "relacy: the owner's direct first install: a decided MCAS installs nothing more (scripted)") {
    CHECK(run_scripted<DirectInstall>("mcas direct install", scripted_schedules(), true).ok);
}

TEST_CASE("relacy: issue 15 bug 1, a stale completion after the decision (scripted)") {
    CHECK(run_scripted<StaleCompletion>("mcas stale completion", scripted_schedules(), true).ok);
}

TEST_CASE("relacy: readers against MCASs never see a torn or undone state (lookup's read path)") {
    impl::relacy::Exploration x;
    x.random = read_schedules();
    CHECK(impl::relacy::explore<Reads>("mcas reads", x).ok);
}

TEST_CASE("relacy: a reader helps an MCAS in READ_CHECK, never reads its old value (scripted)") {
    CHECK(
        run_scripted<ReadOfReadCheck>("mcas read of a read check", scripted_schedules(), true).ok);
}
