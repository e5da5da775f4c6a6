// impl/atomic.h: the one atomic policy of impl/'s lock-free core, so that the real code runs
// under two schedulers:
//   - the product (and TSan) build: impl::Atomic<T> IS std::atomic<T>, and per-thread state is
//     thread_local: no wrapper, no cost;
//   - the Relacy build (-DPVIOMMU_RELACY, impl/relacy/): impl::Atomic<T> wraps rl::atomic<T>,
//     so that Dmitry Vyukov's Relacy explores the interleavings (and relaxed-memory outcomes) of
//     every access, and per-thread state is indexed by Relacy's thread index (its threads are
//     fibers of one OS thread, so thread_local would be shared between them).
// Code written against this header names every memory order (std::memory_order_*); the Relacy
// wrapper maps each to Relacy's. Relacy's atomics must be created inside a simulation, so in
// that build the core's globals live in an object a test creates per iteration (mcas.cpp).
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#ifdef PVIOMMU_RELACY
// Headers whose templates use errno, before relacy.hpp redefines it (and this header removes
// its macro): their bodies are parsed here, with libc's errno.
#include <fstream>
#include <relacy/relacy.hpp>
#include <sstream>
// relacy.hpp redefines the std memory orders, new/delete, malloc/free and assert as macros
// for code written against its own dialect; impl/ is written against std:: and this header
// maps it, so the macros go (allocation stays the C++ runtime's: mcas.cpp's poisoned
// descriptors detect a use after a grace period without Relacy's heap).
#undef memory_order_relaxed
#undef memory_order_consume
#undef memory_order_acquire
#undef memory_order_release
#undef memory_order_acq_rel
#undef memory_order_seq_cst
#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef assert
#undef errno
#include <cassert>
#include <cerrno>
#endif

namespace impl {

// Atomic read-modify-writes (CAS, exchange, fetch_add/sub) this thread has issued through
// impl::Atomic, counted only in a counting build (-DPVIOMMU_COUNT_RMW=ON: the benchmark's RMWs
// per operation, issue 16); 0 otherwise. A successful and a failed CAS both count: both lock
// the cache line.
#ifdef PVIOMMU_COUNT_RMW
inline constexpr bool kCountRmw = true;
inline thread_local std::uint64_t t_rmw_count = 0;  // per thread: no sharing, no atomics
[[nodiscard]] inline std::uint64_t rmw_count() { return t_rmw_count; }
#else
inline constexpr bool kCountRmw = false;
[[nodiscard]] inline std::uint64_t rmw_count() { return 0; }
#endif

#ifndef PVIOMMU_RELACY

#ifndef PVIOMMU_COUNT_RMW
template <class T>
using Atomic = std::atomic<T>;
#else
// std::atomic with every RMW counted in t_rmw_count (loads and stores are not RMWs).
template <class T>
class Atomic : public std::atomic<T> {
    using Base = std::atomic<T>;

public:
    using Base::Base;
    using Base::operator=;
    T exchange(T v, std::memory_order mo = std::memory_order_seq_cst) noexcept {
        ++t_rmw_count;
        return Base::exchange(v, mo);
    }
    T fetch_add(T v, std::memory_order mo = std::memory_order_seq_cst) noexcept {
        ++t_rmw_count;
        return Base::fetch_add(v, mo);
    }
    T fetch_sub(T v, std::memory_order mo = std::memory_order_seq_cst) noexcept {
        ++t_rmw_count;
        return Base::fetch_sub(v, mo);
    }
    bool compare_exchange_strong(T& e, T d,
                                 std::memory_order mo = std::memory_order_seq_cst) noexcept {
        ++t_rmw_count;
        return Base::compare_exchange_strong(e, d, mo);
    }
    bool compare_exchange_strong(T& e, T d, std::memory_order s, std::memory_order f) noexcept {
        ++t_rmw_count;
        return Base::compare_exchange_strong(e, d, s, f);
    }
    bool compare_exchange_weak(T& e, T d,
                               std::memory_order mo = std::memory_order_seq_cst) noexcept {
        ++t_rmw_count;
        return Base::compare_exchange_weak(e, d, mo);
    }
    bool compare_exchange_weak(T& e, T d, std::memory_order s, std::memory_order f) noexcept {
        ++t_rmw_count;
        return Base::compare_exchange_weak(e, d, s, f);
    }
};
#endif

inline constexpr bool kRelacy = false;

inline void fence(std::memory_order mo) { std::atomic_thread_fence(mo); }

// One round of a wait loop for another thread's progress (a flush waiting for a device
// section): lets it run (2 cores shared by more threads).
inline void spin_pause() { std::this_thread::yield(); }

#else

inline constexpr bool kRelacy = true;

[[nodiscard]] inline rl::memory_order rl_order(std::memory_order mo) {
    switch (mo) {
        case std::memory_order_relaxed:
            return rl::mo_relaxed;
        case std::memory_order_consume:
            return rl::mo_consume;
        case std::memory_order_acquire:
            return rl::mo_acquire;
        case std::memory_order_release:
            return rl::mo_release;
        case std::memory_order_acq_rel:
            return rl::mo_acq_rel;
        case std::memory_order_seq_cst:
            break;
    }
    return rl::mo_seq_cst;
}

// The failure order of a CAS given only its success order (as std::atomic derives it).
[[nodiscard]] inline std::memory_order failure_order(std::memory_order mo) {
    if (mo == std::memory_order_acq_rel) return std::memory_order_acquire;
    if (mo == std::memory_order_release) return std::memory_order_relaxed;
    return mo;
}

// std::atomic's interface, as much of it as impl/ uses, over rl::atomic. Every access is one
// Relacy step (a scheduling point) recorded in the failure history.
template <class T>
class Atomic {
public:
    Atomic() : a_(T{}) {}
    // Implicit, as std::atomic's: `Atomic<int> x{0}` and `Word w = enc(5)` read the same.
    // cppcheck-suppress noExplicitConstructor
    explicit(false) Atomic(T v) : a_(v) {}
    Atomic(const Atomic&) = delete;
    Atomic& operator=(const Atomic&) = delete;

    T load(std::memory_order mo = std::memory_order_seq_cst) const {
        return a_($).load(rl_order(mo));
    }
    void store(T v, std::memory_order mo = std::memory_order_seq_cst) {
        a_($).store(v, rl_order(mo));
    }
    T exchange(T v, std::memory_order mo = std::memory_order_seq_cst) {
        return a_($).exchange(v, rl_order(mo));
    }
    T fetch_add(T v, std::memory_order mo = std::memory_order_seq_cst) {
        return a_($).fetch_add(v, rl_order(mo));
    }
    T fetch_sub(T v, std::memory_order mo = std::memory_order_seq_cst) {
        return a_($).fetch_sub(v, rl_order(mo));
    }
    bool compare_exchange_strong(T& expected, T desired,
                                 std::memory_order mo = std::memory_order_seq_cst) {
        return a_($).compare_exchange_strong(expected, desired, rl_order(mo),
                                             rl_order(failure_order(mo)));
    }
    bool compare_exchange_strong(T& expected, T desired, std::memory_order success,
                                 std::memory_order failure) {
        return a_($).compare_exchange_strong(expected, desired, rl_order(success),
                                             rl_order(failure));
    }
    bool compare_exchange_weak(T& expected, T desired,
                               std::memory_order mo = std::memory_order_seq_cst) {
        return a_($).compare_exchange_weak(expected, desired, rl_order(mo),
                                           rl_order(failure_order(mo)));
    }
    bool compare_exchange_weak(T& expected, T desired, std::memory_order success,
                               std::memory_order failure) {
        return a_($).compare_exchange_weak(expected, desired, rl_order(success), rl_order(failure));
    }

private:
    mutable rl::atomic<T> a_;
};

// A fence is one Relacy step too (and relaxed-memory semantics: Relacy models fences).
inline void fence(std::memory_order mo) { rl::atomic_thread_fence(rl_order(mo), $); }

// Tells Relacy the thread spins waiting for another (a wait loop of only loads otherwise
// looks like a livelock to its fair schedulers).
inline void spin_pause() { rl::yield(1, $); }

#endif

}  // namespace impl
