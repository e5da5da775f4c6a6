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
struct UpDown : rl::test_suite<UpDown, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Words* words = nullptr;
    Word* a = nullptr;
    Word* b = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        words = new Words;  // a below b whatever the heap holds: schedules replay exactly
        a = &words->a;
        b = &words->b;
        a->store(enc(5), std::memory_order_relaxed);
    }
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
        delete words;
        delete core;
    }
};

// Atomicity of a two-word commit against readers and writers: a + b stays 10 at every read
// of both (in one Txn), whatever the interleaving.
struct Transfer : rl::test_suite<Transfer, 3> {
    impl::relacy::CoreScope* core = nullptr;
    Words* words = nullptr;
    Word* a = nullptr;
    Word* b = nullptr;
    void before() {
        core = new impl::relacy::CoreScope;
        words = new Words;
        a = &words->a;
        b = &words->b;
        a->store(enc(4), std::memory_order_relaxed);
        b->store(enc(6), std::memory_order_relaxed);
    }
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
        delete words;
        delete core;
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
