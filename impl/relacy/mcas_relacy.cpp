// impl/relacy/mcas_relacy.cpp: impl's MCAS core (impl/mcas.cpp, the real file, built with
// -DPVIOMMU_RELACY) under Relacy's scheduler: every interleaving of 2-3 threads up to a
// context bound, then random schedules beyond it. Each test asserts what the core promises:
// no lost or phantom update (every committed transaction's effect, and only those, in the
// final words), no tagged value left in a word, no descriptor used after its grace period
// (mcas.cpp's status_of asserts it), every read value one some instant held.
//
// A failure prints Relacy's schedule (the history of every atomic step of every thread) and
// the iteration's state; PVIOMMU_RELACY_REPLAY=<state> reruns exactly that schedule.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "impl/mcas.h"
#include "impl/relacy/harness.h"

namespace {

using impl::dec;
using impl::enc;
using impl::EpochGuard;
using impl::Txn;
using impl::Word;

// One atomic read-modify-write of `w` by delta that also validates `other` (a two-word MCAS),
// retried until it commits. Returns what w held before it.
std::uint64_t add(Word& w, Word& other, std::int64_t delta) {
    for (;;) {
        EpochGuard g;
        Txn t;
        const std::uint64_t v = t.read(w);
        (void)t.read(other);
        t.write(w, enc(dec(v) + static_cast<std::uint64_t>(delta)));
        if (t.commit()) return dec(v);
    }
}

// Two words moved together: a transfer keeps a + b constant (atomicity of multi-word commits).
void transfer(Word& a, Word& b, std::int64_t delta) {
    for (;;) {
        EpochGuard g;
        Txn t;
        const std::uint64_t x = t.read(a), y = t.read(b);
        t.write(a, enc(dec(x) + static_cast<std::uint64_t>(delta)));
        t.write(b, enc(dec(y) - static_cast<std::uint64_t>(delta)));
        if (t.commit()) return;
    }
}

// Two words in one allocation, so that their address order (an MCAS's install order) is the
// same in every iteration.
struct Words {
    Word a{0};
    Word b{0};
};

// The world of a two-word suite, made afresh in each iteration's before(): the core's globals
// and two words in one allocation (a below b whatever the heap holds, so schedules replay
// exactly and an MCAS installs a first).
struct TwoWords {
    impl::relacy::CoreScope* core = nullptr;
    Words* words = nullptr;
    Word* a = nullptr;
    Word* b = nullptr;
    void make(std::uint64_t va, std::uint64_t vb) {
        core = new impl::relacy::CoreScope;
        words = new Words;
        a = &words->a;
        b = &words->b;
        a->store(enc(va), std::memory_order_relaxed);
        b->store(enc(vb), std::memory_order_relaxed);
    }
    void destroy() {
        delete words;
        delete core;
    }
};

std::uint64_t read(Word& w) {
    EpochGuard g;
    return dec(impl::mcas_read(w));
}

// ABA on the RDCSS install (issue 15, bug 2) and reclamation (bug 1): a counter driven up and
// back down through the same values by three threads, so that stale helpers meet a word that
// holds their entry's old value again. Final value = sum of deltas.
// Relacy stops an iteration at a failed assertion without running after(): each iteration
// therefore starts from fresh objects and leaks a failed iteration's (their atomics belong to
// the dead iteration and must not be touched again).
struct UpDown : rl::test_suite<UpDown, 3>, TwoWords {
    void before() { make(5, 0); }
    void thread(unsigned i) {
        if (i < 2) {  // two threads drive a up and back down
            (void)add(*a, *b, +1);
            (void)add(*a, *b, -1);
        } else {
            const std::uint64_t v = read(*a);
            RL_ASSERT(v >= 5 && v <= 7);
            (void)add(*b, *a, +1);
        }
    }
    void after() {
        impl::epoch_quiesce();
        const std::uint64_t va = a->load(std::memory_order_relaxed);
        const std::uint64_t vb = b->load(std::memory_order_relaxed);
        RL_ASSERT((va & 3) == 0 && (vb & 3) == 0);  // no descriptor or install left
        RL_ASSERT(dec(va) == 5);                    // +1 -1 +1 -1: back to 5
        RL_ASSERT(dec(vb) == 1);
        destroy();
    }
};

// Atomicity of a two-word commit against readers and writers: a + b stays 10 at every read
// of both (in one Txn), whatever the interleaving.
struct Transfer : rl::test_suite<Transfer, 3>, TwoWords {
    void before() { make(4, 6); }
    void thread(unsigned i) {
        if (i < 2) {
            transfer(*a, *b, i == 0 ? 1 : -2);
        } else {
            for (;;) {
                EpochGuard g;
                Txn t;
                const std::uint64_t x = dec(t.read(*a)), y = dec(t.read(*b));
                if (!t.commit()) continue;  // a read-only Txn validates its reads
                RL_ASSERT(x + y == 10);
                break;
            }
        }
    }
    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(dec(a->load(std::memory_order_relaxed)) == 3);
        RL_ASSERT(dec(b->load(std::memory_order_relaxed)) == 7);
        destroy();
    }
};

// Epoch-based reclamation of an ordinary node (two epochs of grace): T0 unlinks the node a
// word points to and retires it, then retires two more (each collect tries to advance the
// epoch and frees what is due); T1, a thread whose EBR slot is claimed only now (it may be
// the highest, past the scan bound an advancer read), reads the word and the node's payload;
// T2 retires one more. T1 holds what it read until T0 is done. The payload is a Relacy rl::var and
// the "free" scrubs it: Relacy's data-race detector fails any schedule in which the reader's access
// and the free are not ordered by happens-before (the guarantee EBR gives: every reader that could
// reach the node has unpinned, release, before the advance that the free follows, acquire).
struct Node {
    rl::var<int> payload{7};
};
// The deleter: scrubs, and leaves the memory to after() (a failing schedule must not crash).
void scrub(void* p) { static_cast<Node*>(p)->payload($) = 0; }

struct Ebr : rl::test_suite<Ebr, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Word* link = nullptr;
    impl::Atomic<int>* done = nullptr;    // T0 finished
    std::vector<Node*>* nodes = nullptr;  // every node of the iteration; deleted in after()
    Node* fresh() {
        nodes->push_back(new Node);
        return nodes->back();
    }
    void before() {
        core = new impl::relacy::CoreScope;
        nodes = new std::vector<Node*>;
        nodes->reserve(8);
        link = new Word(reinterpret_cast<std::uint64_t>(fresh()));  // 8-aligned: no tag bits
        done = new impl::Atomic<int>(0);
    }
    void thread(unsigned i) {
        if (i == 0) {
            {
                EpochGuard g;
                // seq_cst, as the core's stores. A plain unlink, not an MCAS: its descriptor,
                // retired first and one epoch later (mcas.cpp), would hold the node back.
                const std::uint64_t v = link->exchange(0, std::memory_order_seq_cst);
                impl::retire(reinterpret_cast<Node*>(v), scrub);
            }
            for (int k = 0; k < 2; ++k) {
                EpochGuard g;
                impl::retire(fresh(), scrub);
            }
            done->store(1, std::memory_order_seq_cst);  // seq_cst: a test handshake
        } else if (i == 1) {
            EpochGuard g;
            const std::uint64_t v = impl::mcas_read(*link);
            // Holds the node across T0's whole run (the random scheduler rarely preempts one
            // thread for that long): a node freed under it then reads scrubbed.
            while (done->load(std::memory_order_seq_cst) == 0) impl::spin_pause();  // as above
            if (v != 0) RL_ASSERT(reinterpret_cast<Node*>(v)->payload($) == 7);
        } else {
            EpochGuard g;
            impl::retire(fresh(), scrub);
        }
    }
    void after() {
        impl::epoch_quiesce();
        for (Node* n : *nodes) delete n;
        delete nodes;
        delete done;
        delete link;
        delete core;
    }
};

// ---------------------------------------------------------------------------------------------
// Read-only words validated, not locked (issue 16, v2 step 2a; impl/mcas.cpp "Read-only words
// validated"): an MCAS installs itself into the words it writes (and all but one word it only
// read), then checks the remaining read-only word in a read check.

// Three words in one allocation: address order a < b < c in every iteration, so that the
// check entry (the first read-only word in address order) is the same in every schedule.
struct Words3 {
    Word a{0};
    Word b{0};
    Word c{0};
};

// Write skew: thread i reads both words and, if both are 0, sets its own to 1; retried until
// its Txn commits (a retry that sees the other's 1 commits a read-only Txn). Each commit of a
// write has ONE read-only word, the other thread's: the check entry. Serializable outcomes:
// exactly one word is 1. Both 1: two MCASs each took the word the other writes at its old
// value (planted rc-cycle-not-broken; read-check-skipped). A third thread reads both words in
// one validated Txn: never both 1 either (at most one writer succeeded, at every instant).
struct WriteSkew : rl::test_suite<WriteSkew, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Words* words = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        words = new Words;
    }
    void thread(unsigned i) {
        Word& mine = i == 0 ? words->a : words->b;
        for (;;) {
            EpochGuard g;
            Txn t;
            const std::uint64_t x = dec(t.read(words->a)), y = dec(t.read(words->b));
            if (i < 2 && x == 0 && y == 0) t.write(mine, enc(1));
            if (!t.commit()) continue;
            RL_ASSERT(x + y <= 1);  // a validated snapshot: never both set
            break;
        }
    }
    void after() {
        impl::epoch_quiesce();
        const std::uint64_t a = dec(words->a.load(std::memory_order_relaxed));
        const std::uint64_t b = dec(words->b.load(std::memory_order_relaxed));
        RL_ASSERT(a + b == 1);  // exactly one of the two writes: serializable
        delete words;
        delete core;
    }
};

// Write skew around a ring of three: thread i sets word i to 1 if word i+1 (mod 3) is 0, reading
// only those two. Three MCASs can each be in READ_CHECK on the word the next one writes: the
// address order must break the cycle (help the lower, abort the higher). Serializable: not
// all three set (the last in any serial order sees its successor's 1).
struct SkewRing : rl::test_suite<SkewRing, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Words3* words = nullptr;
    Word* w[3] = {};
    void before() {
        core = new impl::relacy::CoreScope;
        words = new Words3;
        w[0] = &words->a;
        w[1] = &words->b;
        w[2] = &words->c;
    }
    void thread(unsigned i) {
        for (;;) {
            EpochGuard g;
            Txn t;
            const std::uint64_t next = dec(t.read(*w[(i + 1) % 3]));
            const std::uint64_t own = dec(t.read(*w[i]));
            if (next == 0 && own == 0) t.write(*w[i], enc(1));
            if (t.commit()) break;
        }
    }
    void after() {
        impl::epoch_quiesce();
        std::uint64_t set = 0;
        for (Word* x : w) {
            const std::uint64_t v = x->load(std::memory_order_relaxed);
            RL_ASSERT((v & 3) == 0);  // no descriptor or install left
            set += dec(v);
        }
        RL_ASSERT(set >= 1 && set <= 2);
        delete words;
        delete core;
    }
};

// Why ONE read-only word is validated, not all (planted validate-all-reads): T reads a, b, c = 0
// and writes c := 1, its a and b read-only. Then V sets b := 1 (after T's reads, before T's
// commit: so T's MCAS, invoked after V returned, needs a = b = 0 at an instant after V).
// U, after V, moves (a, b) from (0, 1) to (1, 0). After V, (a, b) is (0, 1) then (1, 0): never
// (0, 0). T must fail. Validating a at one instant and b at a later one, with U in between,
// sees 0 and 0 (b went 0 -> 1 -> 0: ABA). With one check word (a) and b locked, T can install
// into b only once b is 0 again, when a is already 1.
struct ReadOnlyAba : rl::test_suite<ReadOnlyAba, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Words3* words = nullptr;
    impl::Atomic<int>* stage = nullptr;  // 1: T has read; 2: V is done
    void before() {
        core = new impl::relacy::CoreScope;
        words = new Words3;
        stage = new impl::Atomic<int>(0);
    }
    // seq_cst: test handshakes.
    void wait_for(int s) {
        while (stage->load(std::memory_order_seq_cst) < s) impl::spin_pause();
    }
    void thread(unsigned i) {
        if (i == 0) {  // T
            EpochGuard g;
            Txn t;
            const std::uint64_t a = t.read(words->a), b = t.read(words->b);
            const std::uint64_t c = t.read(words->c);
            RL_ASSERT(a == 0 && b == 0 && c == 0);
            stage->store(1, std::memory_order_seq_cst);
            wait_for(2);
            t.write(words->c, enc(1));
            RL_ASSERT(!t.commit());  // no instant after V had a = b = 0
        } else if (i == 1) {         // V
            wait_for(1);
            for (;;) {
                EpochGuard g;
                Txn t;
                (void)t.read(words->b);
                t.write(words->b, enc(1));
                if (t.commit()) break;
            }
            stage->store(2, std::memory_order_seq_cst);
        } else {  // U
            wait_for(2);
            for (;;) {
                EpochGuard g;
                Txn t;
                (void)t.read(words->a);
                const std::uint64_t b = dec(t.read(words->b));
                RL_ASSERT(b == 1);  // V is done, and only U clears b
                t.write(words->a, enc(1));
                t.write(words->b, enc(0));
                if (t.commit()) break;
            }
        }
    }
    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(dec(words->a.load(std::memory_order_relaxed)) == 1);
        RL_ASSERT(dec(words->b.load(std::memory_order_relaxed)) == 0);
        RL_ASSERT(dec(words->c.load(std::memory_order_relaxed)) == 0);
        delete stage;
        delete words;
        delete core;
    }
};

// A read-only word against a writer and a reader (planted read-returns-old-rc): D reads a and b
// and writes b := 1, a its check word; U sets a := 1; R, after U returned, reads b. If D
// succeeded on a = 0 it linearized before U, and R (after U) must see b = 1. A
// reader that takes b at its old value while D is in READ_CHECK (D's check already done, its
// decision not yet) returns 0 for a D that then succeeds.
struct CheckVsWriter : rl::test_suite<CheckVsWriter, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Words* words = nullptr;
    impl::Atomic<int>* u_done = nullptr;
    impl::Atomic<int>* d_ok = nullptr;   // 1: D committed on a = 0
    impl::Atomic<int>* r_saw = nullptr;  // what R read, + 1
    void before() {
        core = new impl::relacy::CoreScope;
        words = new Words;
        u_done = new impl::Atomic<int>(0);
        d_ok = new impl::Atomic<int>(0);
        r_saw = new impl::Atomic<int>(0);
    }
    void thread(unsigned i) {
        // seq_cst throughout: test handshakes and results.
        if (i == 0) {  // D: commits once
            EpochGuard g;
            Txn t;
            const std::uint64_t a = t.read(words->a);
            (void)t.read(words->b);
            t.write(words->b, enc(1));
            // 1: committed on a = 0 (before U); 2: failed, or committed after U (a = 1).
            d_ok->store(t.commit() && a == 0 ? 1 : 2, std::memory_order_seq_cst);
        } else if (i == 1) {  // U
            for (;;) {
                EpochGuard g;
                Txn t;
                (void)t.read(words->a);
                t.write(words->a, enc(1));
                if (t.commit()) break;
            }
            u_done->store(1, std::memory_order_seq_cst);
        } else {  // R
            while (u_done->load(std::memory_order_seq_cst) == 0) impl::spin_pause();
            r_saw->store(static_cast<int>(read(words->b)) + 1, std::memory_order_seq_cst);
        }
    }
    void after() {
        impl::epoch_quiesce();
        const int ok = d_ok->load(std::memory_order_relaxed);
        const int saw = r_saw->load(std::memory_order_relaxed) - 1;
        if (ok == 1) RL_ASSERT(saw == 1);  // D before U before R
        delete r_saw;
        delete d_ok;
        delete u_done;
        delete words;
        delete core;
    }
};

// One attempt of a Txn writing w := w + delta and reading nothing else: commit()'s one-word
// CAS (issue 16, v2 step 2b), retried until it lands.
void add_alone(Word& w, std::int64_t delta) {
    for (;;) {
        EpochGuard g;
        Txn t;
        const std::uint64_t v = t.read(w);
        t.write(w, enc(dec(v) + static_cast<std::uint64_t>(delta)));
        if (t.commit()) return;
    }
}

// Txn::commit's shortcuts against the full protocol (issue 16, v2 step 2b): T0 moves 1 from b
// to a in a two-word MCAS (the owner installs a directly, b by RDCSS); T1 reads a (helping T0's
// MCAS if it meets it), then adds 1 to b by a one-word CAS, so b may hold T0's old value again
// (6) while T0 is still in its commit; T2 adds 10 to a by a one-word CAS, which may meet T0's
// descriptor. Every update must land exactly once and no descriptor may be left:
// a = 4 + 1 + 10, b = 6 - 1 + 1. (The schedule in which T0 stops between its direct install and
// the rest while T1 helps and moves b back is rare at random: mcas_scripted_relacy.cpp forces
// it, "DirectInstall".)
struct Mixed : rl::test_suite<Mixed, 3>, TwoWords {
    void before() { make(4, 6); }  // a below b: T0's MCAS installs a first (directly)
    void thread(unsigned i) {
        if (i == 0) {
            transfer(*a, *b, +1);
        } else if (i == 1) {
            (void)read(*a);
            add_alone(*b, +1);
        } else {
            add_alone(*a, +10);
        }
    }
    void after() {
        impl::epoch_quiesce();
        const std::uint64_t va = a->load(std::memory_order_relaxed);
        const std::uint64_t vb = b->load(std::memory_order_relaxed);
        RL_ASSERT((va & 3) == 0 && (vb & 3) == 0);  // no descriptor or install left
        RL_ASSERT(dec(va) == 15);
        RL_ASSERT(dec(vb) == 6);
        destroy();
    }
};

}  // namespace

namespace impl::relacy {

namespace {
Exploration mutant_exploration() {
    Exploration x;
    x.random = env_or("PVIOMMU_RELACY_MUTANT_RANDOM", 200000);
    x.print_failure = false;
    x.env_overrides = false;
    return x;
}
}  // namespace

Verdict check_ebr() {
    Verdict v;
    add(v, "ebr", explore<Ebr>("ebr", mutant_exploration()));
    return v;
}

Verdict check_mcas_read_only() {
    const Exploration x = mutant_exploration();
    Verdict v;
    add(v, "mcas write skew", explore<WriteSkew>("mcas write skew", x));
    if (!v.caught) add(v, "mcas skew ring", explore<SkewRing>("mcas skew ring", x));
    if (!v.caught)
        add(v, "mcas check vs writer", explore<CheckVsWriter>("mcas check vs writer", x));
    return v;
}

Verdict check_mcas_read_only_aba() {
    Verdict v;
    add(v, "mcas read-only aba", explore<ReadOnlyAba>("mcas read-only aba", mutant_exploration()));
    return v;
}

Verdict check_mcas_mixed() {
    Verdict v;
    add(v, "mcas mixed", explore<Mixed>("mcas mixed", mutant_exploration()));
    return v;
}

Verdict check_mcas_random() {
    const Exploration x = mutant_exploration();
    Verdict v;
    add(v, "mcas up/down", explore<UpDown>("mcas up/down", x));
    if (!v.caught) add(v, "mcas transfer", explore<Transfer>("mcas transfer", x));
    return v;
}

}  // namespace impl::relacy

TEST_CASE("relacy: MCAS up/down counter (no lost update under ABA, no use after reclamation)") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 2000000 : 200000;
    CHECK(impl::relacy::explore<UpDown>("mcas up/down", x).ok);
}

TEST_CASE(
    "relacy: MCAS one-word CASes and the owner's direct install against a two-word MCAS (no lost "
    "or doubled update)") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 2000000 : 200000;
    CHECK(impl::relacy::explore<Mixed>("mcas mixed", x).ok);
}

TEST_CASE("relacy: EBR: no node freed under a reader, also one whose slot is claimed late") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 2000000 : 200000;
    CHECK(impl::relacy::explore<Ebr>("ebr", x).ok);
}

TEST_CASE("relacy: MCAS two-word transfer is atomic against readers") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 2000000 : 200000;
    CHECK(impl::relacy::explore<Transfer>("mcas transfer", x).ok);
}

TEST_CASE("relacy: MCAS read-only words: no write skew between two") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 1000000 : 100000;
    CHECK(impl::relacy::explore<WriteSkew>("mcas write skew", x).ok);
}

TEST_CASE("relacy: MCAS read-only words: no write skew around a ring of three") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 1000000 : 100000;
    CHECK(impl::relacy::explore<SkewRing>("mcas skew ring", x).ok);
}

TEST_CASE("relacy: MCAS read-only words: validated at one instant (ABA)") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 1000000 : 100000;
    CHECK(impl::relacy::explore<ReadOnlyAba>("mcas read-only aba", x).ok);
}

TEST_CASE("relacy: MCAS read-only words: a reader after a writer sees a read-checked commit") {
    impl::relacy::Exploration x;
    x.random = impl::relacy::full_budget() ? 1000000 : 100000;
    CHECK(impl::relacy::explore<CheckVsWriter>("mcas check vs writer", x).ok);
}
