// proofs/parallel.h: f(0) .. f(n-1) on `jobs` threads, for the proof files of this folder (the
// obligations of check_obligations, the Z3 samples of the explicit BMC). Each call of f must be
// independent of the others (each builds its own Z3 context).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace proofs {

// Runs f on indices handed out in order; the calling thread is one of the workers. The first
// exception stops handing out work and is rethrown once every worker has stopped.
inline void parallel_for(std::size_t n, unsigned jobs, const std::function<void(std::size_t)>& f) {
    // The next index to take: relaxed, since it only hands out indices (what f publishes is
    // ordered by the caller's own synchronisation, or by the joins below).
    std::atomic<std::size_t> next{0};
    std::mutex mu;  // guards `error`
    std::exception_ptr error;
    auto work = [&] {
        for (std::size_t k; (k = next.fetch_add(1, std::memory_order_relaxed)) < n;) {
            try {
                f(k);
            } catch (...) {
                const std::lock_guard<std::mutex> lk(mu);
                if (!error) error = std::current_exception();
                next.store(n, std::memory_order_relaxed);  // stop handing out work
            }
        }
    };
    std::vector<std::thread> pool;
    const std::size_t nt = std::max<std::size_t>(1, std::min<std::size_t>(jobs, n));
    for (std::size_t j = 1; j < nt; ++j) pool.emplace_back(work);
    work();
    for (std::thread& th : pool) th.join();
    if (error) std::rethrow_exception(error);
}

}  // namespace proofs
