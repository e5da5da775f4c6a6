// Regression tests of issue 15's two MCAS bugs on real threads (the product build, so also
// under ASan, where descriptors are freed instead of recycled, and TSan). The same schedules as
// impl/relacy/mcas_scripted_relacy.cpp, forced by parking threads at stall points
// (spec::FaultPlan::on_stall, no random stall): a Script gate is a mutex and condition
// variable; a thread parks at its k-th visit of a point until another thread opens the gate.
// Epochs are advanced explicitly (impl::epoch_quiesce) where the schedule needs it.
//  - Bug 2 (RDCSS ABA): a completer parked between reading UNDECIDED and its CAS while the
//    word goes 5 -> 6 -> 5 and a stale helper re-installs the same entry: the count must end at
//    5, not the stale 6 (fails with the generation removed from installs).
//  - Bug 1's class (reclamation too early): a stale helper installs a failed, retired
//    descriptor's entry into a word that holds its old value again; a reader pinned in the next
//    epoch loads it and parks; the helper finishes and the epoch advances twice: the descriptor
//    must still be alive (fails with descriptors freed two epochs after retirement: an
//    assertion in status_of, or ASan's heap-use-after-free).
//  - Issue 16 (read-only words validated, not locked): a reader of an MCAS in READ_CHECK helps
//    it; no write skew between MCASs that each read what another writes.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "impl/mcas.h"
#include "spec/faults.h"

using impl::dec;
using impl::enc;
using impl::EpochGuard;
using impl::Txn;
using impl::Word;
using spec::FaultPoint;

namespace {

// Gates and signals of one schedule. Every wait gives up after 10 s (a schedule that went
// another way): the test fails and every gate opens, so that the threads finish.
class Script {
public:
    static constexpr std::size_t kGates = 8;

    void park(std::size_t g) {
        std::unique_lock l(m_);
        arrived_[g] = true;
        cv_.notify_all();
        wait(l, [&] { return go_[g]; });
    }
    void open(std::size_t g) { set(go_, g); }
    void signal(std::size_t g) { set(flag_, g); }
    void wait_arrived(std::size_t g) { wait_any({&arrived_[g]}); }
    void wait_flag(std::size_t g) { wait_any({&flag_[g]}); }
    // Waits for either (a thread that parked, or one that went past without parking).
    void wait_arrived_or_flag(std::size_t g, std::size_t f) { wait_any({&arrived_[g], &flag_[f]}); }
    [[nodiscard]] bool timed_out() const {
        std::lock_guard l(m_);
        return timed_out_;
    }

private:
    template <class P>
    void wait(std::unique_lock<std::mutex>& l, P ready) {
        if (!cv_.wait_for(l, std::chrono::seconds(10), [&] { return ready() || timed_out_; })) {
            timed_out_ = true;
            go_.fill(true);
            cv_.notify_all();
        }
    }
    void wait_any(std::initializer_list<const bool*> fs) {
        std::unique_lock l(m_);
        wait(l, [&] {
            for (const bool* f : fs)
                if (*f) return true;
            return false;
        });
    }
    void set(std::array<bool, kGates>& a, std::size_t g) {
        std::lock_guard l(m_);
        a[g] = true;
        cv_.notify_all();
    }

    mutable std::mutex m_;
    std::condition_variable cv_;
    // Guarded by m_.
    std::array<bool, kGates> arrived_{}, go_{}, flag_{};
    bool timed_out_ = false;
};

// A thread's stall plan: parks at the listed visits; `armed` parks at the next visit of a
// point once the thread arms it (visit 0).
struct Park {
    FaultPoint point;
    int visit;
    std::size_t gate;
};
class Parker {
public:
    Parker(Script& s, std::vector<Park> parks) : plan_(1) {
        plan_.on_stall([&s, parks = std::move(parks), this](FaultPoint p) {
            const int v = ++visits_[static_cast<std::size_t>(p)];
            for (const Park& k : parks) {
                if (k.point != p) continue;
                if (k.visit != 0 ? k.visit != v : !armed_) continue;
                armed_ = false;
                s.park(k.gate);
            }
        });
    }
    spec::FaultPlan* plan() { return &plan_; }
    void arm() { armed_ = true; }

private:
    spec::FaultPlan plan_;
    // Touched by the owning thread only (the hook runs on it).
    std::array<int, spec::kFaultPoints> visits_{};
    bool armed_ = false;
};

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

struct Pair {  // address order: an MCAS installs into x first
    Word x{enc(5)};
    Word y{enc(0)};
};

}  // namespace

// Steps as impl/relacy/mcas_scripted_relacy.cpp, StaleCompleter.
TEST_CASE(
    "mcas regression (issue 15 bug 2): a stale RDCSS completer cannot re-install d "
    "after 5 -> 6 -> 5") {
    impl::epoch_quiesce();
    Script s;
    Word a{enc(5)};
    bool ok0 = false, ok1 = false;
    std::uint64_t seen1 = 0;
    std::thread t0([&] {
        Parker p(s, {{FaultPoint::stall_rdcss_phases, 2, 0}});
        impl::FaultScope scope(p.plan());
        ok0 = add_once(a, +1);  // parks as the stale completer, then its CAS
        s.open(2);
    });
    std::thread t2([&] {
        Parker p(s, {{FaultPoint::stall_rdcss_before_install, 1, 1},
                     {FaultPoint::stall_rdcss_phases, 2, 2}});
        impl::FaultScope scope(p.plan());
        s.wait_arrived(0);
        (void)read(a);  // completes T0's install, helps: parks before, then after, installing
    });
    std::thread t1([&] {
        s.wait_arrived(1);
        seen1 = read(a);        // helps d to SUCCEEDED: 6
        ok1 = add_once(a, -1);  // 5 again
        s.open(1);              // T2 re-installs d's entry
        s.wait_arrived(2);
        s.open(0);  // T0's stale CAS
    });
    t0.join();
    t1.join();
    t2.join();
    CHECK_FALSE(s.timed_out());
    CHECK(ok0);
    CHECK(ok1);
    CHECK(seen1 == 6);
    const std::uint64_t v = a.load(std::memory_order_relaxed);  // relaxed: threads joined
    CHECK((v & 3) == 0);
    CHECK(dec(v) == 5);  // +1 -1: not the stale 6
    impl::epoch_quiesce();
}

// Steps as impl/relacy/mcas_scripted_relacy.cpp, StaleInstaller, with the epoch advanced by
// epoch_quiesce (the product collects only every 64 retires).
TEST_CASE(
    "mcas regression (issue 15 bug 1): a retired descriptor installed by a stale helper "
    "is not freed under a reader of the next epoch") {
    impl::epoch_quiesce();
    Script s;
    Pair p;
    bool failed0 = false, ok_up = false, ok_down = false;
    std::uint64_t seen1 = 0, seen2 = 0;
    std::thread t0([&] {
        Parker k(s, {{FaultPoint::stall_mcas_phase1, 1, 0}});
        {
            impl::FaultScope scope(k.plan());
            EpochGuard g;
            Txn t;  // the product's commit: the owner installs x directly, y by RDCSS
            const std::uint64_t x = t.read(p.x), y = t.read(p.y);
            t.write(p.x, enc(dec(x) + 1));
            t.write(p.y, enc(dec(y) + 1));
            failed0 = !t.commit();  // installs d in x, parks; then y = 1: d fails, is retired
        }
        impl::epoch_quiesce();  // epoch + 1: T2 pinned at the retirement epoch allows one
        s.signal(0);
        s.wait_arrived(3);  // T1 holds T2's install
        s.open(2);          // T2 completes and finishes
        s.wait_flag(2);
        impl::epoch_quiesce();  // epoch + 1 again (T1 announced it): two past the retirement
        s.open(3);
        s.wait_flag(3);  // alive until T1 is done: its exit would free its descriptor pool
    });
    std::thread t1([&] {
        Parker k(s, {{FaultPoint::stall_rdcss_loaded, 0, 3}});
        impl::FaultScope scope(k.plan());
        s.wait_arrived(0);
        ok_up = add_once(p.y, +1);
        impl::epoch_quiesce();  // T0 pinned: at most one advance, before T2 pins
        s.signal(1);
        s.wait_arrived(1);
        s.open(0);  // T0 meets y = 1
        s.wait_flag(0);
        ok_down = add_once(p.y, -1);
        EpochGuard g;  // pinned one epoch after the retirement
        s.open(1);     // T2 installs d's entry into y
        s.wait_arrived(2);
        k.arm();
        seen1 = dec(impl::mcas_read(p.y));  // loads the install, parks, then reads its status
        s.signal(3);
    });
    std::thread t2([&] {
        Parker k(s, {{FaultPoint::stall_rdcss_before_install, 2, 1},
                     {FaultPoint::stall_rdcss_phases, 1, 2}});
        impl::FaultScope scope(k.plan());
        s.wait_flag(1);
        seen2 = read(p.x);  // helps d: parks before installing into y, then after
        s.signal(2);
    });
    t0.join();
    t1.join();
    t2.join();
    CHECK_FALSE(s.timed_out());
    CHECK(failed0);
    CHECK(ok_up);
    CHECK(ok_down);
    CHECK(seen1 == 0);
    CHECK(seen2 == 5);
    CHECK(p.x.load(std::memory_order_relaxed) == enc(5));  // relaxed: threads joined
    CHECK(p.y.load(std::memory_order_relaxed) == enc(0));
    impl::epoch_quiesce();
}

// Issue 16, v2 step 2a (read-only words validated, not locked): steps as
// impl/relacy/mcas_scripted_relacy.cpp, ReadOfReadCheck. d (T0) reads x (its check word) and
// writes y; it parks after its read check passed, before its decision. T1 moves x; T2, after
// T1 returned, reads y: it must help d (whose check now fails), not read y's old value under a
// d that then succeeds.
TEST_CASE("mcas regression (issue 16): a read of a word held by an MCAS in READ_CHECK helps it") {
    Pair p;
    Script s;
    bool ok_d = true, ok_x = false;
    std::uint64_t seen = 99;
    std::thread t0([&] {
        Parker k(s, {{FaultPoint::stall_mcas_decide, 2, 0}});  // the decision after the check
        impl::FaultScope scope(k.plan());
        EpochGuard g;
        Txn t;
        (void)t.read(p.x);
        (void)t.read(p.y);
        t.write(p.y, enc(1));
        ok_d = t.commit();
    });
    std::thread t1([&] {
        s.wait_arrived(0);
        while (!(ok_x = add_once(p.x, +1, false))) {  // the product's one-word CAS
        }
        s.signal(0);
    });
    std::thread t2([&] {
        s.wait_flag(0);
        seen = read(p.y);
        s.open(0);
    });
    t0.join();
    t1.join();
    t2.join();
    CHECK_FALSE(s.timed_out());
    CHECK_FALSE(ok_d);  // x moved after d's check, before its decision: T2's help failed d
    CHECK(ok_x);
    CHECK(seen == 0);
    CHECK(p.x.load(std::memory_order_relaxed) == enc(6));  // relaxed: threads joined
    CHECK(p.y.load(std::memory_order_relaxed) == enc(0));
    impl::epoch_quiesce();
}

// Write skew on real threads (also under TSan): in each round thread i sets word i to 1 if
// word i+1 (mod n) is 0, reading only those two (one read-only word: the MCAS's check word).
// Serializable: never all n set. n = 2 is the classic write skew; n = 3 a cycle of three
// READ_CHECKs that the address order must break.
TEST_CASE("mcas regression (issue 16): no write skew between read-checked MCASs (2, 3 threads)") {
    for (const std::size_t n : {std::size_t{2}, std::size_t{3}}) {
        for (int round = 0; round < 300; ++round) {
            std::array<Word, 3> w{};
            for (Word& x : w) x.store(0, std::memory_order_relaxed);  // before the threads start
            std::atomic<std::size_t> ready{0};
            std::vector<std::thread> ts;
            for (std::size_t i = 0; i < n; ++i) {
                ts.emplace_back([&, i] {
                    // seq_cst: a start line, so that the threads race (test handshake).
                    ready.fetch_add(1, std::memory_order_seq_cst);
                    while (ready.load(std::memory_order_seq_cst) < n) std::this_thread::yield();
                    for (;;) {
                        EpochGuard g;
                        Txn t;
                        const std::uint64_t next = t.read(w[(i + 1) % n]);
                        const std::uint64_t own = t.read(w[i]);
                        if (next == 0 && own == 0) t.write(w[i], enc(1));
                        if (t.commit()) break;
                    }
                });
            }
            for (std::thread& t : ts) t.join();
            std::size_t set = 0;
            for (std::size_t i = 0; i < n; ++i)
                set += w[i].load(std::memory_order_relaxed) == enc(1) ? 1 : 0;  // joined
            REQUIRE(set >= 1);
            REQUIRE(set < n);
        }
    }
    impl::epoch_quiesce();
}
