// impl/mcas.h: lock-free multi-word compare-and-swap (Harris, Fraser and Pratt, "A Practical
// Multi-Word Compare-and-Swap Operation", DISC 2002) with epoch-based reclamation, and Txn, a
// read-set/write-set builder on top of it. Every data-path operation of impl/ is one Txn: it
// reads the words it decides on, then commits one MCAS that checks every word it read still
// holds what it read and writes what it changes. The MCAS's status decision is the operation's
// linearization point.
//
// Words
//   A Word is a std::atomic<uint64_t> (impl/atomic.h). Its two low bits are reserved: 0b01
//   marks an installed MCAS descriptor, 0b10 an installed RDCSS entry. Values stored by users
//   therefore have their two low bits clear: use enc()/dec() for small integers, or store
//   8-byte-aligned pointers. An installed RDCSS entry also carries, in bits 48-63, the
//   generation of that install (issue 15: see mcas.cpp, "Generations").
//
// Read-only words (issue 16, v2 step 2a)
//   One word per MCAS that the Txn only read is validated in a read check (Fraser's OSTM)
//   instead of locked: the MCAS installs its descriptor into the other words, goes READ_CHECK,
//   checks that word, then decides (mcas.cpp, "Read-only words validated, not locked").
//
// Shortcuts (issue 16, v2 step 2b)
//   A commit that wrote one word and read nothing else is one CAS; every other commit's owner
//   installs its first locked word directly (d is unpublished, so undecided), the rest by
//   RDCSS (mcas.cpp, "Txn"; impl/README.md "v2 step 2b"). Txn::use_full_protocol() turns both
//   off (scripted tests of the owner's RDCSS windows).
//
// Memory ordering
//   Every CAS and load in the MCAS/RDCSS core is seq_cst. The algorithm's correctness argument
//   (and its linearization point, the status CAS) assumes one total order of these steps; on
//   x86-64 a seq_cst RMW costs the same as acq_rel, and seq_cst loads are plain MOVs. The
//   descriptor's fields are written before the descriptor is published by a CAS and read only
//   after a helper loads the tagged pointer, so publication orders them (release/acquire is
//   implied by seq_cst).
//
// Reclamation
//   Descriptors, and any node a caller retires, are freed only after every thread that might
//   hold a pointer to them has left its critical section (three-epoch EBR, Fraser 2004). All
//   MCAS calls and all reads of words must run inside an EpochGuard. MCAS descriptors wait one
//   epoch more than other objects: a stale helper can publish one again after its retirement
//   (mcas.cpp, "Reclamation of descriptors").
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "impl/atomic.h"
#include "spec/faults.h"

namespace impl {

// ---------------------------------------------------------------------------------------------
// Stall injection (spec/faults.h, issue 7). The fault plan of the data-path operation this
// thread is running, or nullptr. Thread-local, so it needs no synchronisation; set for the
// length of an operation by FaultScope. With no plan, a stall point costs one thread-local load
// and a never-taken branch.
extern constinit thread_local spec::FaultPlan* t_faults;

#ifdef PVIOMMU_RELACY
namespace relacy {
// Relacy's scheduler explores the interleavings itself; a scripted test (impl/relacy/) may set
// a hook that parks a thread at a named window until other threads have run (issue 15: the
// schedules that reach a stale helper need it parked across two later MCASs). Plain pointer:
// Relacy runs one OS thread; set between simulations.
using StallHook = void (*)(spec::FaultPoint);
extern StallHook g_stall_hook;
}  // namespace relacy
#endif

inline void stall(spec::FaultPoint p) {
#ifdef PVIOMMU_RELACY
    if (relacy::g_stall_hook != nullptr) relacy::g_stall_hook(p);
#else
    if (t_faults != nullptr) [[unlikely]]
        t_faults->stall(p);
#endif
}

// Installs plan as this thread's t_faults for its lifetime (nesting restores the outer one).
class FaultScope {
public:
    explicit FaultScope(spec::FaultPlan* plan) : saved_(t_faults) { t_faults = plan; }
    ~FaultScope() { t_faults = saved_; }
    FaultScope(const FaultScope&) = delete;
    FaultScope& operator=(const FaultScope&) = delete;

private:
    spec::FaultPlan* saved_;
};

// True under AddressSanitizer (GCC defines __SANITIZE_ADDRESS__, Clang has the feature): impl's
// pools (descriptors, tuple sets) then free instead of recycling, so that a use after a grace
// period is caught as a use after free instead of reading a recycled block.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

using Word = Atomic<std::uint64_t>;

[[nodiscard]] constexpr std::uint64_t enc(std::uint64_t payload) { return payload << 2; }
[[nodiscard]] constexpr std::uint64_t dec(std::uint64_t value) { return value >> 2; }

// ---------------------------------------------------------------------------------------------
// Epoch-based reclamation.

// Pins the calling thread's epoch for its lifetime: no object retired after the guard was
// taken is freed before it is released. Nesting is allowed (only the outermost guard counts).
class EpochGuard {
public:
    EpochGuard();
    ~EpochGuard();
    EpochGuard(const EpochGuard&) = delete;
    EpochGuard& operator=(const EpochGuard&) = delete;
};

// Frees p with deleter(p) once no pinned thread can still see it. Requires an EpochGuard.
void retire(void* p, void (*deleter)(void*));

template <class T>
void retire(T* p) {
    retire(static_cast<void*>(p), [](void* q) { delete static_cast<T*>(q); });
}

// Frees everything retired so far whose grace period has passed; for tests and shutdown.
void epoch_quiesce();

#ifdef PVIOMMU_RELACY
namespace relacy {
// The core's globals (EBR slots and epoch, per-thread contexts, descriptor pools) for one
// Relacy iteration: construct one in the test's before(), destroy it in after(). Descriptors
// are never recycled in this build: a reclaimed one is poisoned and kept until the scope ends,
// so that any use after its grace period trips an assertion in the failing schedule.
class CoreScope {
public:
    CoreScope();
    ~CoreScope();
    CoreScope(const CoreScope&) = delete;
    CoreScope& operator=(const CoreScope&) = delete;
};
inline constexpr int kMaxThreads = 4;  // Relacy threads a test may run

// Planted bugs of the core, one per protocol argument (issue 15): each must make some Relacy
// test of impl/relacy/ fail. Compiled into the Relacy build only.
enum class Mutant : int {
    none = 0,
    grace_period_short,    // EBR frees one epoch early (bug 1's class: reclamation too early)
    rdcss_no_generation,   // RDCSS installs without a generation (bug 2's class: ABA)
    phase2_no_cleanup,     // phase 2 leaves a helper's pending install of a decided MCAS (bug 1)
    slot_bound_acquire,    // the slot bound raised/read with release/acquire, not seq_cst
    helper_skips_word,     // a helper's phase 1 skips the last word
    descriptor_grace_two,  // descriptors freed after two epochs, not three (bug 1's class)
    read_skips_help,       // mcas_read returns a descriptor's old value without helping
    // Read-only words validated, not locked (issue 16, v2 step 2a; mcas.cpp):
    read_check_skipped,   // the check entry is never validated (read-only words not re-checked)
    rc_cycle_not_broken,  // a read check takes a READ_CHECK owner at its old value (no order)
    validate_all_reads,   // every read-only word validated, not one (ABA across two checks)
    read_returns_old_rc,  // mcas_read returns the old value under a READ_CHECK descriptor
    // Txn::commit's shortcuts (issue 16, v2 step 2b; mcas.cpp):
    one_word_cas_blind,  // the one-word CAS writes over a descriptor or install it meets
    direct_install_all,  // the owner installs every locked word directly, not only the first
};
struct MutantInfo {
    Mutant m;
    const char* name;
    const char* what;
};
[[nodiscard]] const std::vector<MutantInfo>& mutants();
// Adds m to the planted bugs of every later iteration; Mutant::none: the real code again.
void plant(Mutant m);
}  // namespace relacy
#endif

// ---------------------------------------------------------------------------------------------
// MCAS.

// The slow path of mcas_read: v, just loaded from w, is a descriptor to help first.
[[nodiscard]] std::uint64_t mcas_read_slow(Word& w, std::uint64_t v);

// Reads a word, helping any in-progress MCAS on it to completion; the value returned was the
// word's logical value at some instant during the call. Requires an EpochGuard. Always inline
// (GCC otherwise emits a call at some sites): a word with no descriptor in it (nearly always)
// costs one load and a test (issue 6: the call was 9% of a lookup).
[[nodiscard]] [[gnu::always_inline]] inline std::uint64_t mcas_read(Word& w) {
    // seq_cst: the MCAS core's loads are all seq_cst (see Memory ordering); a plain MOV on x86.
    const std::uint64_t v = w.load(std::memory_order_seq_cst);
    if ((v & 3) == 0) [[likely]]
        return v;
    return mcas_read_slow(w, v);
}

// One transaction: reads through it are remembered (a second read of a word returns the first
// value), writes are buffered; commit() runs one MCAS over every word read or written (read-only
// words are compared and left as they are). Not shared between threads.
class Txn {
public:
    [[nodiscard]] std::uint64_t read(Word& w);
    // w must have been read in this Txn (its expected value is what was read).
    void write(Word& w, std::uint64_t value);
    // True: every word read still held its value and every write took effect, atomically
    // (one read-only word is validated by a read check, the others locked: mcas.cpp).
    // False: something changed; nothing was written; call reset() and run the operation again.
    // A Txn that read or wrote nothing commits trivially.
    [[nodiscard]] bool commit();
    // Turns every staged write back into a read (the Txn then only validates what it read).
    void drop_writes() {
        for (Entry& e : entries_) e.nw = e.old;
    }
    void reset() { entries_.clear(); }
    // Commits of this Txn run the whole protocol on every word, as a helper does: no one-word
    // CAS and no direct first install (commit()'s shortcuts, issue 16). For the scripted tests
    // of the RDCSS windows (impl/tests/mcas_regression_test.cpp,
    // impl/relacy/mcas_scripted_relacy.cpp), whose owner must pass the stall points there.
    void use_full_protocol() { full_protocol_ = true; }
    [[nodiscard]] std::size_t size() const { return entries_.size(); }

private:
    struct Entry {
        Word* w;
        std::uint64_t old, nw;
    };
    std::vector<Entry> entries_;
    bool full_protocol_ = false;
};

}  // namespace impl
