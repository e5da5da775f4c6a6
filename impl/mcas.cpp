#include "impl/mcas.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <utility>

namespace impl {

constinit thread_local spec::FaultPlan* t_faults = nullptr;

using spec::FaultPoint;

// =============================================================================================
// Epoch-based reclamation
//
// Protocol (Fraser 2004, three epochs):
//  1. A thread entering a critical section announces the global epoch it read (pin). Reason: an
//     advancer must see it before declaring that epoch over.
//  2. An object is retired after it is unreachable, tagged with the epoch current at retirement.
//  3. The global epoch advances from g to g+1 only when every pinned thread announced g.
//  4. An object retired in epoch e is freed once the global epoch is >= e + 2: every thread that
//     could have reached it was pinned at an epoch <= e, and such a thread blocks step 3 at e+1.
// =============================================================================================

namespace {

constexpr int kMaxThreads = 1024;
constexpr std::size_t kCollectEvery = 64;

struct alignas(64) Slot {
    // Guarded by the slot's owner thread; read by advancers. 0: not in a critical section;
    // else the epoch announced at pin.
    std::atomic<std::uint64_t> epoch{0};
    // true while a thread owns this slot (claimed by CAS at thread start, released at exit).
    std::atomic<bool> in_use{false};
};

Slot g_slots[kMaxThreads];
// The highest slot index ever claimed + 1: advancers scan only this prefix.
std::atomic<int> g_slot_hw{0};
std::atomic<std::uint64_t> g_epoch{1};

struct Retired {
    std::uint64_t epoch;
    void* p;
    void (*deleter)(void*);
};

// Retired objects of threads that exited before their grace period ended: a lock-free stack,
// adopted by any collecting thread.
struct Orphans {
    std::vector<Retired> items;
    Orphans* next = nullptr;
};
std::atomic<Orphans*> g_orphans{nullptr};

bool try_advance() {
    // seq_cst: must observe every pin announced before a concurrent retire (step 3).
    const std::uint64_t g = g_epoch.load(std::memory_order_seq_cst);
    const int hw = g_slot_hw.load(std::memory_order_acquire);
    for (int i = 0; i < hw; ++i) {
        const std::uint64_t e = g_slots[i].epoch.load(std::memory_order_seq_cst);
        if (e != 0 && e != g) return false;
    }
    std::uint64_t expected = g;
    // seq_cst: the advance is ordered after the scan above in the single total order.
    return g_epoch.compare_exchange_strong(expected, g + 1, std::memory_order_seq_cst);
}

struct ThreadCtx {
    int slot = -1;
    int depth = 0;  // EpochGuard nesting; only the outermost pins
    // Retired objects not yet freed, in retirement order, so their epochs never decrease (each
    // retire reads the monotonic global epoch): limbo[first_live..] are still waiting and a collect
    // frees a prefix. Reason (issue 6): a thread preempted inside its critical section holds
    // the epoch back for a whole time slice; a collect that scanned all of limbo then cost
    // O(limbo) every kCollectEvery retires, quadratic while the epoch was stuck (W2 at 4
    // threads on 2 cores: limbo of 20,000 entries rescanned every 64 retires).
    std::vector<Retired> limbo;
    std::size_t first_live = 0;
    std::size_t since_collect = 0;

    ThreadCtx() {
        for (int i = 0; i < kMaxThreads; ++i) {
            bool f = false;
            // acq_rel: claiming the slot orders us after its previous owner's release.
            if (g_slots[i].in_use.compare_exchange_strong(f, true, std::memory_order_acq_rel)) {
                slot = i;
                int hw = g_slot_hw.load(std::memory_order_relaxed);
                // release: advancers that see the larger bound see the claimed slot.
                while (hw < i + 1 &&
                       !g_slot_hw.compare_exchange_weak(hw, i + 1, std::memory_order_release)) {
                }
                return;
            }
        }
        std::abort();  // more than kMaxThreads live threads use impl/: a configuration error
    }

    ~ThreadCtx() {
        // No deleters run here: they may use other thread_locals (the descriptor pool) that
        // are already destroyed. Everything left goes to the orphans, freed by another thread.
        limbo.erase(limbo.begin(), limbo.begin() + static_cast<std::ptrdiff_t>(first_live));
        if (!limbo.empty()) {
            auto* o = new Orphans{std::exchange(limbo, {}), nullptr};
            Orphans* head = g_orphans.load(std::memory_order_relaxed);
            // release: a collector that takes the stack sees the items.
            do o->next = head;
            while (!g_orphans.compare_exchange_weak(head, o, std::memory_order_release,
                                                    std::memory_order_relaxed));
        }
        g_slots[slot].epoch.store(0, std::memory_order_release);
        // release: the next owner of the slot starts after everything we did.
        g_slots[slot].in_use.store(false, std::memory_order_release);
    }

    void collect() {
        (void)try_advance();
        // Adopt orphans: acquire pairs with the release push above.
        if (Orphans* o = g_orphans.exchange(nullptr, std::memory_order_acquire)) {
            while (o != nullptr) {
                limbo.insert(limbo.end(), o->items.begin(), o->items.end());
                Orphans* n = o->next;
                delete o;
                o = n;
            }
            // Adopted items break the epoch order; restore it (rare: once per exited thread).
            std::stable_sort(limbo.begin() + static_cast<std::ptrdiff_t>(first_live), limbo.end(),
                             [](const Retired& a, const Retired& b) { return a.epoch < b.epoch; });
        }
        const std::uint64_t g = g_epoch.load(std::memory_order_seq_cst);
        while (first_live < limbo.size() && limbo[first_live].epoch + 2 <= g) {
            limbo[first_live].deleter(limbo[first_live].p);  // step 4
            ++first_live;
        }
        // Drop the freed prefix once it is at least half of the vector: amortised O(1) per item.
        if (first_live * 2 >= limbo.size()) {
            limbo.erase(limbo.begin(), limbo.begin() + static_cast<std::ptrdiff_t>(first_live));
            first_live = 0;
        }
    }
};

ThreadCtx& ctx() {
    thread_local ThreadCtx c;
    return c;
}

}  // namespace

EpochGuard::EpochGuard() {
    ThreadCtx& c = ctx();
    if (c.depth++ == 0) {
        // seq_cst store: the announcement and the advancer's scan are totally ordered (step 1).
        g_slots[c.slot].epoch.store(g_epoch.load(std::memory_order_seq_cst),
                                    std::memory_order_seq_cst);
    }
}

EpochGuard::~EpochGuard() {
    ThreadCtx& c = ctx();
    if (--c.depth == 0) {
        // release: our reads of shared objects happen before an advancer that sees 0.
        g_slots[c.slot].epoch.store(0, std::memory_order_release);
        if (c.since_collect >= kCollectEvery) {
            c.since_collect = 0;
            c.collect();
        }
    }
}

void retire(void* p, void (*deleter)(void*)) {
    stall(FaultPoint::stall_before_retire);
    ThreadCtx& c = ctx();
    assert(c.depth > 0);
    c.limbo.push_back({g_epoch.load(std::memory_order_seq_cst), p, deleter});  // step 2
    ++c.since_collect;
}

void epoch_quiesce() {
    ThreadCtx& c = ctx();
    assert(c.depth == 0);
    for (int i = 0; i < 4; ++i) c.collect();
}

// =============================================================================================
// MCAS (Harris, Fraser, Pratt 2002)
//
// Protocol for MCAS(d) over entries sorted by word address:
//  1. Phase 1: for each entry in address order, RDCSS installs d (tagged 0b01) into the word if
//     the word holds the entry's old value AND d is still UNDECIDED. Finding another MCAS's
//     descriptor: help it finish, then retry the entry. Finding any other value: d will FAIL.
//     Reason for the order: two MCASs meet on their lowest common word, so one always wins
//     (lock-freedom, no livelock).
//  2. Decide: CAS d.status UNDECIDED -> SUCCEEDED (all installed) or FAILED. This is the
//     linearization point; any thread may do it.
//  3. Phase 2: for each entry, CAS d's tagged pointer -> new value (SUCCEEDED) or old (FAILED).
//  RDCSS (step 1) makes "install only if still UNDECIDED" atomic: it first installs the entry
//  (tagged 0b10), then re-checks the status and replaces the entry by d or by the old value.
// =============================================================================================

namespace {

enum : int { kUndecided = 0, kSucceeded = 1, kFailed = 2 };
constexpr std::uint64_t kMcasTag = 1, kRdcssTag = 2, kTagMask = 3;
static_assert(kTagMask == 3);  // mcas_read's inline test in mcas.h

struct Mcas;
struct RdcssEntry {
    Word* addr;
    std::uint64_t old, nw;
    Mcas* owner;
};
struct Mcas {
    std::atomic<int> status{kUndecided};
    std::vector<RdcssEntry> entries;  // sorted by addr; written before publication
};

// Descriptors are recycled through a per-thread pool once their grace period ends.
struct Pool {
    std::vector<Mcas*> free;
    ~Pool() {
        for (Mcas* d : free) delete d;
    }
};
Pool& pool() {
    thread_local Pool p;
    return p;
}

Mcas* new_mcas() {
    Pool& p = pool();
    if (p.free.empty()) return new Mcas;
    Mcas* d = p.free.back();
    p.free.pop_back();
    // relaxed: d is private to this thread until published by a CAS in phase 1.
    d->status.store(kUndecided, std::memory_order_relaxed);
    d->entries.clear();
    return d;
}

// Under AddressSanitizer descriptors are freed, not recycled (see kAddressSanitizer).
void recycle_mcas(void* p) {
    if constexpr (!kAddressSanitizer)
        pool().free.push_back(static_cast<Mcas*>(p));
    else
        delete static_cast<Mcas*>(p);
}

std::uint64_t tag(const void* p, std::uint64_t t) { return reinterpret_cast<std::uint64_t>(p) | t; }
template <class T>
T* untag(std::uint64_t v) {
    return reinterpret_cast<T*>(v & ~kTagMask);
}

void rdcss_complete(RdcssEntry* r) {
    std::uint64_t expected = tag(r, kRdcssTag);
    // seq_cst throughout the core (see mcas.h, Memory ordering).
    const std::uint64_t repl = r->owner->status.load(std::memory_order_seq_cst) == kUndecided
                                   ? tag(r->owner, kMcasTag)
                                   : r->old;
    r->addr->compare_exchange_strong(expected, repl, std::memory_order_seq_cst);
}

// Installs r's MCAS into r->addr if it holds r->old and the MCAS is undecided; returns the value
// the word held (r->old on success).
std::uint64_t rdcss(RdcssEntry* r) {
    for (;;) {
        std::uint64_t v = r->old;
        if (r->addr->compare_exchange_strong(v, tag(r, kRdcssTag), std::memory_order_seq_cst)) {
            stall(FaultPoint::stall_rdcss_phases);  // others meet the entry and complete it
            rdcss_complete(r);
            return r->old;
        }
        if ((v & kTagMask) == kRdcssTag) {
            rdcss_complete(untag<RdcssEntry>(v));
            continue;
        }
        return v;
    }
}

void help(Mcas* d) {
    if (d->status.load(std::memory_order_seq_cst) == kUndecided) {
        int desired = kSucceeded;
        for (RdcssEntry& e : d->entries) {  // phase 1
            bool next = false;
            while (!next) {
                const std::uint64_t v = rdcss(&e);
                if ((v & kTagMask) == kMcasTag) {
                    Mcas* other = untag<Mcas>(v);
                    if (other == d) break;
                    stall(FaultPoint::stall_help_other);
                    help(other);
                    continue;
                }
                if (v != e.old) desired = kFailed;
                next = true;
            }
            if (desired == kFailed) break;
            stall(FaultPoint::stall_mcas_phase1);
        }
        stall(FaultPoint::stall_mcas_decide);
        int und = kUndecided;
        d->status.compare_exchange_strong(und, desired, std::memory_order_seq_cst);  // decide
    }
    const bool ok = d->status.load(std::memory_order_seq_cst) == kSucceeded;
    for (RdcssEntry& e : d->entries) {  // phase 2
        std::uint64_t expected = tag(d, kMcasTag);
        e.addr->compare_exchange_strong(expected, ok ? e.nw : e.old, std::memory_order_seq_cst);
        stall(FaultPoint::stall_mcas_phase2);
    }
}

}  // namespace

std::uint64_t mcas_read_slow(Word& w, std::uint64_t v) {
    for (;; v = w.load(std::memory_order_seq_cst)) {  // seq_cst: as mcas_read
        if ((v & kTagMask) == kRdcssTag) {
            rdcss_complete(untag<RdcssEntry>(v));
        } else if ((v & kTagMask) == kMcasTag) {
            stall(FaultPoint::stall_help_other);
            help(untag<Mcas>(v));
        } else {
            return v;
        }
    }
}

// =============================================================================================
// Txn

std::uint64_t Txn::read(Word& w) {
    for (const Entry& e : entries_)
        if (e.w == &w) return e.nw;  // what this Txn has read or will write
    const std::uint64_t v = mcas_read(w);
    entries_.push_back({&w, v, v});
    stall(FaultPoint::stall_txn_between_reads);  // the next read may see a later instant
    return v;
}

void Txn::write(Word& w, std::uint64_t value) {
    assert((value & kTagMask) == 0);
    for (Entry& e : entries_) {
        if (e.w == &w) {
            e.nw = value;
            return;
        }
    }
    assert(false && "Txn::write of a word not read first");
}

bool Txn::commit() {
    if (entries_.empty()) return true;
    if (entries_.size() == 1 && entries_[0].old == entries_[0].nw)
        return mcas_read(*entries_[0].w) == entries_[0].old;  // one read: still there?
    Mcas* d = new_mcas();
    d->entries.reserve(entries_.size());
    for (const Entry& e : entries_) d->entries.push_back({e.w, e.old, e.nw, d});
    std::sort(d->entries.begin(), d->entries.end(),
              [](const RdcssEntry& a, const RdcssEntry& b) { return a.addr < b.addr; });
    help(d);
    const bool ok = d->status.load(std::memory_order_seq_cst) == kSucceeded;
    retire(d, recycle_mcas);
    return ok;
}

}  // namespace impl
