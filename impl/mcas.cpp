#include "impl/mcas.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <functional>
#include <optional>
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
//
// Reclamation of descriptors (issue 15, bug 1): an MCAS descriptor d waits one epoch more
// (freed at e + 3). Reason: unlike a node a caller unlinks, d can be published again after
// its retirement, by a helper that read d's status UNDECIDED before the decision (so it pinned
// at an epoch <= e) and then installs one of d's entries into a word that holds that entry's
// old value again (d failed, or the word went through an ABA), or completes such an install
// to d. A reader pinned at e + 1 can load that publication, and with the ordinary grace
// period d is freed at e + 2 once the helper has left, under the reader. The helper removes
// whatever it published before it unpins (it completes its own install, and its phase 2
// releases d), and while it is pinned the epoch stays <= e + 1: so every thread that can
// reach d after its retirement is pinned at <= e + 1, and none is left at e + 3.
//
// The read check (issue 16, "Read-only words validated" below) keeps this argument: it
// publishes nothing (a check word never receives d or an install of it: only locked entries
// are installed, and phase 2 releases only those), so the set of places d can be loaded from
// is the same as before. What it adds are accesses to another descriptor o loaded from a check
// word: its status and entries are read, and its status CASed READ_CHECK -> FAILED. The
// checker loaded o from a word while pinned, exactly as a helper does from a locked word, so
// o is not freed (or recycled) under it; an abort that reaches o after o decided fails and
// writes nothing.
// =============================================================================================

namespace {

#ifdef PVIOMMU_RELACY
#define PV_MUTANT(m) relacy::Mutant::m
#else
#define PV_MUTANT(m) 0
#endif

#ifdef PVIOMMU_RELACY
// The planted bugs of this Relacy run (relacy::plant), one bit per Mutant; 0: none. Plain:
// Relacy runs one OS thread.
unsigned g_planted = 0;
bool planted(relacy::Mutant m) { return (g_planted >> static_cast<unsigned>(m) & 1U) != 0; }
#else
constexpr bool planted(int) { return false; }
#endif

#ifdef PVIOMMU_RELACY
constexpr int kMaxThreads = relacy::kMaxThreads + 1;  // + the thread running before()/after()
constexpr std::size_t kCollectEvery = 1;              // reclaim as early as the protocol allows
#else
constexpr int kMaxThreads = 1024;
constexpr std::size_t kCollectEvery = 64;
#endif

struct alignas(64) Slot {
    // Guarded by the slot's owner thread; read by advancers. 0: not in a critical section;
    // else the epoch announced at pin.
    Atomic<std::uint64_t> epoch{0};
    // true while a thread owns this slot (claimed by CAS at thread start, released at exit).
    Atomic<bool> in_use{false};
};

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

// The EBR globals, one instance per process (per Relacy iteration in that build).
struct Core {
    Slot slots[kMaxThreads];
    // The highest slot index ever claimed + 1: advancers scan only this prefix.
    Atomic<int> slot_hw{0};
    Atomic<std::uint64_t> epoch{1};
    Atomic<Orphans*> orphans{nullptr};
};

#ifdef PVIOMMU_RELACY
Core* g_core = nullptr;  // set by relacy::CoreScope
Core& core() { return *g_core; }
#else
Core g_core;
Core& core() { return g_core; }
#endif

bool try_advance() {
    Core& k = core();
    // seq_cst: must observe every pin announced before a concurrent retire (step 3).
    const std::uint64_t g = k.epoch.load(std::memory_order_seq_cst);
    // seq_cst, like the raise in ThreadCtx(): a thread that raised the bound and then
    // announced (seq_cst) before this scan must be in the prefix scanned. With acquire/release
    // the load may return an older bound than the raise that precedes the announcement in the
    // total order, and the advance skips a pinned thread (found by Relacy, issue 15: the epoch
    // advanced past a pinned reader and its descriptor was reclaimed under it).
    const int hw =
        k.slot_hw.load(planted(PV_MUTANT(slot_bound_acquire)) ? std::memory_order_acquire
                                                              : std::memory_order_seq_cst);
    for (int i = 0; i < hw; ++i) {
        const std::uint64_t e = k.slots[i].epoch.load(std::memory_order_seq_cst);
        if (e != 0 && e != g) return false;
    }
    std::uint64_t expected = g;
    // seq_cst: the advance is ordered after the scan above in the single total order.
    return k.epoch.compare_exchange_strong(expected, g + 1, std::memory_order_seq_cst);
}

struct ThreadCtx {
    int slot = -1;
    int depth = 0;  // EpochGuard nesting; only the outermost pins
    // Retired objects not yet freed, in retirement order, so their epochs never decrease (each
    // retire reads the monotonic global epoch; a descriptor's entry carries one more, so it may
    // hold the next entry back one epoch, never free it early): limbo[first_live..] are still
    // waiting and a collect frees a prefix. Reason (issue 6): a thread preempted inside its
    // critical section holds the epoch back for a whole time slice; a collect that scanned all of
    // limbo then cost O(limbo) every kCollectEvery retires, quadratic while the epoch was stuck (W2
    // at 4 threads on 2 cores: limbo of 20,000 entries rescanned every 64 retires).
    std::vector<Retired> limbo;
    std::size_t first_live = 0;
    std::size_t since_collect = 0;

    ThreadCtx() {
        Core& k = core();
        for (int i = 0; i < kMaxThreads; ++i) {
            bool f = false;
            // acq_rel: claiming the slot orders us after its previous owner's release.
            if (k.slots[i].in_use.compare_exchange_strong(f, true, std::memory_order_acq_rel)) {
                slot = i;
                int hw = k.slot_hw.load(std::memory_order_relaxed);
                // seq_cst: ordered before this thread's first announcement in the total order
                // that try_advance's scan reads (see there).
                const auto mo = planted(PV_MUTANT(slot_bound_acquire)) ? std::memory_order_release
                                                                       : std::memory_order_seq_cst;
                while (hw < i + 1 && !k.slot_hw.compare_exchange_weak(hw, i + 1, mo)) {
                }
                return;
            }
        }
        std::abort();  // more than kMaxThreads live threads use impl/: a configuration error
    }

    ~ThreadCtx() {
        // No deleters run here: they may use other thread_locals (the descriptor pool) that
        // are already destroyed. Everything left goes to the orphans, freed by another thread.
        Core& k = core();
        limbo.erase(limbo.begin(), limbo.begin() + static_cast<std::ptrdiff_t>(first_live));
        if (!limbo.empty()) {
            auto* o = new Orphans{std::exchange(limbo, {}), nullptr};
            Orphans* head = k.orphans.load(std::memory_order_relaxed);
            // release: a collector that takes the stack sees the items.
            do o->next = head;
            while (!k.orphans.compare_exchange_weak(head, o, std::memory_order_release,
                                                    std::memory_order_relaxed));
        }
        k.slots[slot].epoch.store(0, std::memory_order_release);
        // release: the next owner of the slot starts after everything we did.
        k.slots[slot].in_use.store(false, std::memory_order_release);
    }

    void collect() {
        (void)try_advance();
        // Adopt orphans: acquire pairs with the release push above.
        if (Orphans* o = core().orphans.exchange(nullptr, std::memory_order_acquire)) {
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
        const std::uint64_t g = core().epoch.load(std::memory_order_seq_cst);
        // Planted grace-period-short: freed one epoch early.
        const std::uint64_t grace = planted(PV_MUTANT(grace_period_short)) ? 1 : 2;
        while (first_live < limbo.size() && limbo[first_live].epoch + grace <= g) {
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

// Descriptors are recycled through a per-thread pool once their grace period ends.
struct Mcas;
struct Pool {
    std::vector<Mcas*> free;
    ~Pool();
};

#ifdef PVIOMMU_RELACY
// Per Relacy thread (its threads are fibers of one OS thread: thread_local would be shared).
struct PerThread {
    std::optional<ThreadCtx> ctx;
    Pool pool;
};
PerThread* g_threads = nullptr;  // [kMaxThreads], set by relacy::CoreScope
ThreadCtx& ctx() {
    auto& c = g_threads[rl::thread_index()].ctx;
    if (!c) c.emplace();
    return *c;
}
Pool& pool() { return g_threads[rl::thread_index()].pool; }
#else
ThreadCtx& ctx() {
    thread_local ThreadCtx c;
    return c;
}
Pool& pool() {
    thread_local Pool p;
    return p;
}
#endif

}  // namespace

EpochGuard::EpochGuard() {
    ThreadCtx& c = ctx();
    if (c.depth++ == 0) {
        // seq_cst store: the announcement and the advancer's scan are totally ordered (step 1).
        Core& k = core();
        k.slots[c.slot].epoch.store(k.epoch.load(std::memory_order_seq_cst),
                                    std::memory_order_seq_cst);
    }
}

EpochGuard::~EpochGuard() {
    ThreadCtx& c = ctx();
    if (--c.depth == 0) {
        // release: our reads of shared objects happen before an advancer that sees 0.
        core().slots[c.slot].epoch.store(0, std::memory_order_release);
        if (c.since_collect >= kCollectEvery) {
            c.since_collect = 0;
            c.collect();
        }
    }
}

namespace {
// retire() for an object that waits `extra` epochs more than the protocol's two (the limbo's
// epochs then decrease by at most `extra` from one entry to the next: a prefix collect holds
// a later entry back at most that long, never frees early).
void retire_late(void* p, void (*deleter)(void*), std::uint64_t extra) {
    stall(FaultPoint::stall_before_retire);
    ThreadCtx& c = ctx();
    assert(c.depth > 0);
    c.limbo.push_back({core().epoch.load(std::memory_order_seq_cst) + extra, p, deleter});  // 2
    ++c.since_collect;
}
}  // namespace

void retire(void* p, void (*deleter)(void*)) { retire_late(p, deleter, 0); }

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
//
// Read-only words validated, not locked (issue 16, v2 step 2a; Fraser 2004, OSTM's read phase).
// An entry with old == new (a word the Txn only read) costs 4 RMWs when it is locked like a
// written one. ONE read-only entry per MCAS, the check entry (the first read-only one in
// address order), is not installed; the others are locked as before. Steps 1-3 become:
//  1. Phase 1 installs d into the locked entries only, in address order (as above).
//  2a. If d has a check entry and phase 1 installed every locked entry: CAS d.status
//     UNDECIDED -> READ_CHECK (else UNDECIDED -> SUCCEEDED or FAILED, as before). From here on
//     every locked word holds d until phase 2, so their logical values are their old values.
//  2b. Read check (any helper may run it): load the check word w.
//     - a plain value: it must equal the entry's old value.
//     - an RDCSS install: complete it, load again.
//     - another MCAS o, UNDECIDED: w's logical value is o's old value for w (o is still
//       acquiring: it decides only after this instant, so it linearizes after it).
//     - o in READ_CHECK: a total order breaks cycles (two MCASs each reading what the other
//       writes): the lower descriptor address wins. o lower: help o to its decision; o higher:
//       abort it (CAS o.status READ_CHECK -> FAILED). Then load again. Without this, two such
//       MCASs would each take the other's word at its old value and both succeed (write
//       skew).
//     - o decided: load w again; if it still holds o, its logical value is o's new value
//       (SUCCEEDED) or old value (FAILED), as phase 2 will write it; else start over.
//  2c. Decide: CAS d.status READ_CHECK -> SUCCEEDED (the check passed) or FAILED.
//  3. Phase 2 releases the locked entries (as above).
// Linearization point of a successful MCAS with a check entry: the instant at which the
// helper whose decision CAS won loaded (or, for an UNDECIDED owner, read the status of) the
// check word. At that instant d was in READ_CHECK, so every locked word held d (logical value:
// its old value) and the check word's logical value was its expected value. Nobody can observe
// d's writes as not yet done after that instant and before the decision: a reader of a locked
// word helps d to its decision (mcas_read); another MCAS that reads a locked word of d finds d
// in READ_CHECK (helps or aborts it: an abort makes d fail, so the instant does not matter);
// one that writes it must install over d, after phase 2. Failed MCASs have no effect.
// Why only ONE word is validated: words here hold values that recur (a count 5 -> 6 -> 5; a P2M
// leaf after a balloon and a populate of the same frame), unlike OSTM's object pointers. Two
// read-only words checked at two instants need not have held their values together: with A
// checked at t1 and B at t2, another MCAS can move (A, B) from (0, 1) to (1, 0) between them
// and d succeeds on (0, 0), which never held during its commit (the Relacy suite "mcas
// read-only ABA" has this schedule; mutant validate-all-reads). One check word and every other
// word locked give the single instant above.
// =============================================================================================

namespace {

// kReclaimed: a descriptor whose grace period ended (Relacy build: poisoned, never reused).
// kReadCheck: phase 1 done, the check entry being validated (step 2b).
enum : int { kUndecided = 0, kSucceeded = 1, kFailed = 2, kReclaimed = 3, kReadCheck = 4 };
constexpr std::uint64_t kMcasTag = 1, kRdcssTag = 2, kTagMask = 3;
static_assert(kTagMask == 3);  // mcas_read's inline test in mcas.h
// An RDCSS install: the entry's address in bits 2-47, its generation in bits 48-63.
constexpr unsigned kGenShift = 48;
constexpr std::uint64_t kAddrMask = ((std::uint64_t{1} << kGenShift) - 1) & ~kTagMask;

struct Mcas;
struct RdcssEntry {
    Word* addr;
    std::uint64_t old, nw;
    Mcas* owner;
    bool check;  // validated in the read check (step 2b), never installed
};
struct Mcas {
    Atomic<int> status{kUndecided};
#ifdef PVIOMMU_RELACY
    unsigned creator = 0;  // the Relacy thread that commits it (planted helper_skips_word)
#endif
    // Generations of this descriptor's RDCSS installs. Never reset, also across recycling:
    // every install of every incarnation has its own tag (see "Generations").
    Atomic<std::uint32_t> installs{0};
    std::vector<RdcssEntry> entries;  // sorted by addr; written before publication
    bool has_check = false;           // some entry is a check entry; written before publication
};

Pool::~Pool() {
    for (Mcas* d : free) delete d;
}

// Reads d's status. A reclaimed descriptor read by anyone is a use after its grace period:
// the reclamation bug this guards against lets a stale helper re-install a pointer to a
// retired descriptor (issue 15, bug 1).
int status_of(const Mcas* d) {
    // seq_cst throughout the core (see mcas.h, Memory ordering).
    const int st = d->status.load(std::memory_order_seq_cst);
#ifdef PVIOMMU_RELACY
    RL_ASSERT(st != kReclaimed);
#else
    assert(st != kReclaimed);
#endif
    return st;
}

Mcas* new_mcas() {
    Pool& p = pool();
    if (p.free.empty() || kRelacy) return new Mcas;  // Relacy: parked ones stay poisoned
    Mcas* d = p.free.back();
    p.free.pop_back();
    // relaxed: d is private to this thread until published by a CAS in phase 1.
    d->status.store(kUndecided, std::memory_order_relaxed);
    d->entries.clear();
    d->has_check = false;
    return d;
}

// Runs when d's grace period has ended. Under AddressSanitizer descriptors are freed, not
// recycled (see kAddressSanitizer); under Relacy they are poisoned and kept (CoreScope frees).
void recycle_mcas(void* p) {
    auto* d = static_cast<Mcas*>(p);
    // relaxed: nobody may read it any more (status_of checks exactly that).
    d->status.store(kReclaimed, std::memory_order_relaxed);
    // Under Relacy parked, never handed out again (new_mcas).
    if constexpr (kRelacy || !kAddressSanitizer)
        pool().free.push_back(d);
    else
        delete d;
}

std::uint64_t tag(const void* p, std::uint64_t t) { return reinterpret_cast<std::uint64_t>(p) | t; }
Mcas* untag_mcas(std::uint64_t v) { return reinterpret_cast<Mcas*>(v & ~kTagMask); }
RdcssEntry* untag_rdcss(std::uint64_t v) { return reinterpret_cast<RdcssEntry*>(v & kAddrMask); }

// Completes the RDCSS install `installed` (an entry's address, generation and tag) found in
// its word: replaces it by the owner's descriptor if the owner is still undecided, else by the
// entry's old value. Generations make a stale completer harmless: it can only replace its own
// install, never a later install of the same entry (issue 15, bug 2: without them a completer
// that read UNDECIDED long ago could turn a later install back into the descriptor of an MCAS
// that has since succeeded, whose phase 2 then writes a stale value).
void rdcss_complete(std::uint64_t installed) {
    stall(FaultPoint::stall_rdcss_loaded);  // holds an install it loaded: its owner must live
    RdcssEntry* r = untag_rdcss(installed);
    std::uint64_t expected = installed;
    // Only UNDECIDED installs d: READ_CHECK and later mean phase 1 is over (every locked word
    // already holds d, so an install found now is a stale one and goes back to the old value).
    const std::uint64_t repl = status_of(r->owner) == kUndecided ? tag(r->owner, kMcasTag) : r->old;
    stall(FaultPoint::stall_rdcss_phases);  // the window a stale completer sits in
    r->addr->compare_exchange_strong(expected, repl, std::memory_order_seq_cst);
}

// Installs r's MCAS into r->addr if it holds r->old and the MCAS is undecided; returns the value
// the word held (r->old on success).
std::uint64_t rdcss(RdcssEntry* r) {
    for (;;) {
        std::uint64_t v = r->old;
        // seq_cst: see Memory ordering. The generation only has to differ from every other
        // install of this descriptor's entries that a completer may still hold (16 bits: a
        // completer would have to sleep through 65,536 installs of one descriptor).
        const std::uint64_t gen =
            planted(PV_MUTANT(rdcss_no_generation))
                ? 0
                : r->owner->installs.fetch_add(1, std::memory_order_relaxed) & 0xffffU;
        const std::uint64_t mine = tag(r, kRdcssTag) | (gen << kGenShift);
        stall(FaultPoint::stall_rdcss_before_install);  // a stale installer's window
        if (r->addr->compare_exchange_strong(v, mine, std::memory_order_seq_cst)) {
            stall(FaultPoint::stall_rdcss_phases);  // others meet the entry and complete it
            rdcss_complete(mine);
            return r->old;
        }
        if ((v & kTagMask) == kRdcssTag) {
            rdcss_complete(v);
            continue;
        }
        return v;
    }
}

#ifdef PVIOMMU_RELACY
bool is_owner(const Mcas* d) { return d->creator == rl::thread_index(); }
#else
constexpr bool is_owner(const Mcas*) { return true; }
#endif

void help(Mcas* d, const RdcssEntry* owner_installed = nullptr);

// o's old value for w (o holds w: w is one of its locked entries).
std::uint64_t old_of(const Mcas* o, const Word* w) {
    for (const RdcssEntry& e : o->entries)
        if (e.addr == w) return e.old;
    assert(false && "a descriptor in a word that is none of its entries");
    return 0;
}

// o's new value for w.
std::uint64_t new_of(const Mcas* o, const Word* w) {
    for (const RdcssEntry& e : o->entries)
        if (e.addr == w) return e.nw;
    assert(false && "a descriptor in a word that is none of its entries");
    return 0;
}

// Step 2b for d (in READ_CHECK): true if every check entry's word held its expected value at
// one instant of the check (see the protocol). Requires an EpochGuard: descriptors loaded from
// a check word are protected like those a helper loads from a locked word (see "Reclamation of
// descriptors": a check word never holds d itself, so the read check publishes nothing).
bool read_check(Mcas* d) {
    if (planted(PV_MUTANT(read_check_skipped))) return true;
    for (RdcssEntry& e : d->entries) {
        if (!e.check) continue;
        // seq_cst: the check load, the status loads and every status CAS below are in the one
        // total order the linearization argument uses ("o UNDECIDED when its status is read,
        // so w held o then"; "d in READ_CHECK at the check instant").
        std::uint64_t v = e.addr->load(std::memory_order_seq_cst);
        for (;;) {
            if ((v & kTagMask) == 0) {
                if (v != e.old) return false;
                break;
            }
            if ((v & kTagMask) == kRdcssTag) {
                rdcss_complete(v);
                v = e.addr->load(std::memory_order_seq_cst);  // seq_cst: as above
                continue;
            }
            Mcas* o = untag_mcas(v);
            assert(o != d);  // d never installs into its check words
            const int st = status_of(o);
            // o still acquiring (its status read after v was loaded: o held w throughout):
            // w's logical value is o's old one, and o decides after this instant.
            // Planted rc-cycle-not-broken: an o in READ_CHECK is taken at its old value too.
            if (st == kUndecided || (st == kReadCheck && planted(PV_MUTANT(rc_cycle_not_broken)))) {
                if (old_of(o, e.addr) != e.old) return false;
                break;
            }
            if (st == kReadCheck) {
                stall(FaultPoint::stall_help_other);
                if (std::less<const Mcas*>{}(o, d)) {
                    help(o);  // lower: o wins; its own read check aborts d if d is in its way
                } else {
                    int rc = kReadCheck;
                    // seq_cst: a status CAS of the core (see Memory ordering in mcas.h).
                    // Fails harmlessly if o decided meanwhile.
                    o->status.compare_exchange_strong(rc, kFailed, std::memory_order_seq_cst);
                }
                // d itself may have been aborted by o's read check: its decision is taken.
                if (status_of(d) != kReadCheck) return false;
                v = e.addr->load(std::memory_order_seq_cst);  // seq_cst: as above
                continue;
            }
            // o decided: w's logical value is what o's phase 2 writes, if w still holds o.
            const std::uint64_t again = e.addr->load(std::memory_order_seq_cst);  // as above
            if (again == v) {
                if ((st == kSucceeded ? new_of(o, e.addr) : old_of(o, e.addr)) != e.old)
                    return false;
                break;
            }
            v = again;
        }
    }
    return true;
}

// e is the last entry of d in address order that phase 1 installs (planted helper-skips-word).
bool is_last_locked(const Mcas* d, const RdcssEntry* e) {
    const RdcssEntry* last = nullptr;
    for (const RdcssEntry& x : d->entries)
        if (!x.check) last = &x;
    return e == last;
}

// Runs d's protocol from wherever it stands to the end of phase 2. Any thread may call it
// (the owner, a helper that met d in a word, a read check that helps a lower d).
// owner_installed: an entry the owner has already installed d into (Txn::commit's first
// install), skipped.
void help(Mcas* d, const RdcssEntry* owner_installed) {
    if (status_of(d) == kUndecided) {
        // The status phase 1 leads to when every locked entry is installed: READ_CHECK if a
        // check entry waits for its read check (step 2a), else SUCCEEDED (step 2).
        const int installed = d->has_check ? kReadCheck : kSucceeded;
        int desired = installed;
        for (RdcssEntry& e : d->entries) {        // phase 1
            if (e.check) continue;                // validated in step 2b, never installed
            if (&e == owner_installed) continue;  // the owner's first install (Txn::commit)
            // Planted helper-skips-word: a helper (not the owner) skips the last locked word.
            if (planted(PV_MUTANT(helper_skips_word)) && !is_owner(d) && is_last_locked(d, &e))
                continue;
            bool next = false;
            while (!next) {
                const std::uint64_t v = rdcss(&e);
                if ((v & kTagMask) == kMcasTag) {
                    Mcas* other = untag_mcas(v);
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
        // seq_cst: the decision (or the start of the read check) is a step of the one total
        // order (mcas.h, Memory ordering).
        d->status.compare_exchange_strong(und, desired, std::memory_order_seq_cst);  // decide
    }
    if (status_of(d) == kReadCheck) {  // step 2b, 2c
        const int verdict = read_check(d) ? kSucceeded : kFailed;
        stall(FaultPoint::stall_mcas_decide);  // checked, not yet decided: d in READ_CHECK
        int rc = kReadCheck;
        // seq_cst: as the decision above. Fails if another helper decided, or an MCAS whose
        // read check met d aborted it.
        d->status.compare_exchange_strong(rc, verdict, std::memory_order_seq_cst);
    }
    const bool ok = status_of(d) == kSucceeded;
    for (RdcssEntry& e : d->entries) {  // phase 2
        if (e.check) continue;          // never installed
        // Releases d from the word; an RDCSS install of this entry still there (a helper
        // installed it before the decision and has not completed it) is completed first: d is
        // decided, so it goes back to the old value. Reason (issue 15, bug 1): left there, its
        // completer, having read UNDECIDED before the decision, would install d after d's
        // owner retired it; once no word holds d or one of its installs when the owner's phase
        // 2 ends, only threads pinned before the retirement can still reach d (and readers of
        // what a stale installer among them publishes: see "Reclamation of descriptors").
        std::uint64_t v = e.addr->load(std::memory_order_seq_cst);
        for (;;) {
            if ((v & kTagMask) == kRdcssTag && untag_rdcss(v) == &e &&
                !planted(PV_MUTANT(phase2_no_cleanup))) {
                rdcss_complete(v);
                v = e.addr->load(std::memory_order_seq_cst);
                continue;
            }
            if (v != tag(d, kMcasTag)) break;
            if (e.addr->compare_exchange_strong(v, ok ? e.nw : e.old, std::memory_order_seq_cst))
                break;
        }
        stall(FaultPoint::stall_mcas_phase2);
    }
}

}  // namespace

// cppcheck-suppress constParameter ; the product's Word::load is non-const-callable only in
// the Relacy configuration cppcheck also checks; helping writes through w's descriptors
std::uint64_t mcas_read_slow(Word& w, std::uint64_t v) {
    for (;; v = w.load(std::memory_order_seq_cst)) {  // seq_cst: as mcas_read
        if ((v & kTagMask) == kRdcssTag) {
            rdcss_complete(v);
        } else if ((v & kTagMask) == kMcasTag) {
#ifdef PVIOMMU_RELACY
            if (planted(PV_MUTANT(read_skips_help))) {  // the value d replaced, d unhelped
                for (const RdcssEntry& e : untag_mcas(v)->entries)
                    if (e.addr == &w) return e.old;
            }
            if (planted(PV_MUTANT(read_returns_old_rc)) &&
                status_of(untag_mcas(v)) == kReadCheck)  // d's old value while it read-checks
                return old_of(untag_mcas(v), &w);
#endif
            // A descriptor in READ_CHECK is helped too, not read at its old value: its
            // linearization point may already lie behind (the instant its check word was
            // checked), so a reader now must see its writes (mcas.cpp, "Read-only words").
            stall(FaultPoint::stall_help_other);
            help(untag_mcas(v));
        } else {
            return v;
        }
    }
}

#ifdef PVIOMMU_RELACY
namespace relacy {

StallHook g_stall_hook = nullptr;

const std::vector<MutantInfo>& mutants() {
    static const std::vector<MutantInfo> m = {
        {Mutant::grace_period_short, "grace-period-short",
         "EBR frees an object retired in epoch e at e+1 instead of e+2"},
        {Mutant::rdcss_no_generation, "rdcss-no-generation",
         "RDCSS installs carry no generation: a stale completer succeeds after an ABA"},
        {Mutant::phase2_no_cleanup, "phase2-no-cleanup",
         "phase 2 leaves a helper's pending install of a decided MCAS in the word"},
        {Mutant::descriptor_grace_two, "descriptor-grace-two",
         "MCAS descriptors freed two epochs after retirement, as other objects, not three"},
        {Mutant::read_skips_help, "read-skips-help",
         "mcas_read returns the value a descriptor replaced, without helping it"},
        {Mutant::slot_bound_acquire, "slot-bound-acquire",
         "the EBR slot bound is raised with release and read with acquire, not seq_cst"},
        {Mutant::helper_skips_word, "helper-skips-word",
         "a helper's phase 1 skips the last word of the descriptor"},
        {Mutant::read_check_skipped, "read-check-skipped",
         "the read-only check word of an MCAS is never validated"},
        {Mutant::rc_cycle_not_broken, "rc-cycle-not-broken",
         "a read check takes a READ_CHECK descriptor at its old value (write skew)"},
        {Mutant::validate_all_reads, "validate-all-reads",
         "every read-only word validated at its own instant, not one (ABA)"},
        {Mutant::one_word_cas_blind, "one-word-cas-blind",
         "the one-word commit's CAS writes over a descriptor or install it meets"},
        {Mutant::direct_install_all, "direct-install-all",
         "the owner installs every locked word directly (no RDCSS), not only the first"},
        {Mutant::read_returns_old_rc, "read-returns-old-rc",
         "mcas_read returns the old value under a READ_CHECK descriptor, without helping"},
    };
    return m;
}

void plant(Mutant m) {
    if (m == Mutant::none)
        g_planted = 0;
    else
        g_planted |= 1U << static_cast<unsigned>(m);
}

CoreScope::CoreScope() {
    g_core = new Core;
    g_threads = new PerThread[kMaxThreads];
}

CoreScope::~CoreScope() {
    for (int i = 0; i < kMaxThreads; ++i) {  // the limbo of every thread, then the pools
        if (auto& c = g_threads[i].ctx) {
            for (std::size_t j = c->first_live; j < c->limbo.size(); ++j)
                c->limbo[j].deleter(c->limbo[j].p);
            c->limbo.clear();
            c->first_live = 0;
        }
    }
    delete[] g_threads;  // ThreadCtx destructors release their slots; pools free descriptors
    g_threads = nullptr;
    while (Orphans* o = g_core->orphans.load(std::memory_order_relaxed)) {
        g_core->orphans.store(o->next, std::memory_order_relaxed);
        delete o;
    }
    delete g_core;
    g_core = nullptr;
}

}  // namespace relacy
#endif

// =============================================================================================
// Txn

namespace {
// The MCAS of one word that the Txn wrote and nothing else: one CAS (Harris, Fraser and Pratt
// 2002 allow a plain CAS on a word that holds a value). Issue 16: a deferred put (one frame's
// cell) was a full MCAS, 5 RMWs (generation, install, completion, status, release) and a
// descriptor to retire, for what one CAS does. Linearization point: the successful CAS. Why
// it composes with the MCAS protocol: (1) an MCAS that installs into w expects w's old value,
// so either this CAS lands first (the install then finds another value and that MCAS fails)
// or the install does (this CAS then finds a tagged word and helps, below); (2) a read check
// that validated w earlier linearizes its MCAS at that instant, before this CAS, exactly as
// when another MCAS writes its check word later; (3) a completion (RDCSS or phase 2) CASes
// only from a tagged value, which no plain value equals. A word holding a descriptor or an
// install is helped off first (mcas_read_slow), then the CAS is tried again if w's logical
// value is still the old one: lock-free as MCAS is (a retry follows someone's completion).
bool cas_word(Word& w, std::uint64_t old, std::uint64_t nw) {
    assert(ctx().depth > 0);  // helping needs the pin (the MCAS path asserts it in retire)
    std::uint64_t v = old;
    // seq_cst: a step of the core's one total order, like phase 1's installs (mcas.h, Memory
    // ordering).
    while (!w.compare_exchange_strong(v, nw, std::memory_order_seq_cst)) {
        if ((v & kTagMask) == 0) return false;         // another value: the operation runs again
        if (planted(PV_MUTANT(one_word_cas_blind))) {  // over the descriptor: its write lost
            w.store(nw, std::memory_order_seq_cst);
            return true;
        }
        if (mcas_read_slow(w, v) != old) return false;  // helped off: moved meanwhile
        v = old;
    }
    return true;
}
}  // namespace

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
    if (entries_.size() == 1) {
        const Entry& e = entries_[0];
        if (e.old == e.nw) return mcas_read(*e.w) == e.old;       // one read: still there?
        if (!full_protocol_) return cas_word(*e.w, e.old, e.nw);  // one write, nothing read
    }
    Mcas* d = new_mcas();
#ifdef PVIOMMU_RELACY
    d->creator = rl::thread_index();
#endif
    d->entries.reserve(entries_.size());
    for (const Entry& e : entries_) d->entries.push_back({e.w, e.old, e.nw, d, false});
    // Address order (phase 1). An order-0 Txn has a handful of words: an insertion sort (what
    // std::sort ends in anyway, without its set-up); order-k and teardown Txns have thousands.
    const auto by_addr = [](const RdcssEntry& a, const RdcssEntry& b) { return a.addr < b.addr; };
    if (d->entries.size() > 16)
        std::sort(d->entries.begin(), d->entries.end(), by_addr);
    else
        for (std::size_t i = 1; i < d->entries.size(); ++i)
            for (std::size_t j = i; j > 0 && by_addr(d->entries[j], d->entries[j - 1]); --j)
                std::swap(d->entries[j], d->entries[j - 1]);
    // The check entry: the first read-only one (see "Read-only words validated"). Planted
    // validate-all-reads: every read-only entry is validated (OSTM's read phase on words whose
    // values recur).
    for (RdcssEntry& e : d->entries) {
        if (e.old != e.nw) continue;
        e.check = true;
        d->has_check = true;
        if (!planted(PV_MUTANT(validate_all_reads))) break;
    }
    // The owner's first install needs no RDCSS (issue 16): until d is in some word no other
    // thread knows d, so d is UNDECIDED and RDCSS's "install only if undecided" holds without
    // its entry, generation and completion (3 RMWs -> 1). Only the first: once d is published a
    // helper may decide it, and a later direct install could then land after phase 2. A CAS
    // that fails (another value, a descriptor, an install) changes nothing: help()'s phase 1
    // meets the word as it would have.
    const RdcssEntry* installed = nullptr;
    for (RdcssEntry& e : d->entries) {
        if (e.check) continue;
        std::uint64_t v = e.old;
        // seq_cst: phase 1's installs are steps of the one total order (mcas.h).
        if (!full_protocol_ &&
            e.addr->compare_exchange_strong(v, tag(d, kMcasTag), std::memory_order_seq_cst)) {
            installed = &e;
            stall(FaultPoint::stall_mcas_phase1);  // d published in one word: helpers may run
        }
        if (!planted(PV_MUTANT(direct_install_all))) break;  // planted: each word directly
    }
    help(d, installed);
    const bool ok = status_of(d) == kSucceeded;
    // One epoch more than other objects (see "Reclamation of descriptors").
    retire_late(d, recycle_mcas, planted(PV_MUTANT(descriptor_grace_two)) ? 0 : 1);
    return ok;
}

}  // namespace impl
