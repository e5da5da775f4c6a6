#include "props/workers.h"

namespace props {

Workers::Workers(unsigned n) {
    if (n >= kStop) n = kStop - 1;  // k shares the generation word's low byte
    threads_.reserve(n);
    for (unsigned i = 0; i < n; ++i) threads_.emplace_back([this, i] { loop(i); });
}

Workers::~Workers() {
    // relaxed: only the caller writes the word; the workers need nothing else to exit.
    const std::uint64_t g = generation_.load(std::memory_order_relaxed);
    generation_.store(((g >> 8) + 1) << 8 | kStop, std::memory_order_release);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
}

void Workers::run(unsigned k, const std::function<void(unsigned)>& job) {
    if (k > size()) k = size();
    if (k == 0) return;
    job_ = &job;
    // relaxed: published by the release below; no worker touches them between rounds.
    arrived_.store(0, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    // relaxed load: only the caller writes the word. release store: step 1 (job_ and the
    // resets happen before any worker's acquire of the new round).
    const std::uint64_t g = generation_.load(std::memory_order_relaxed);
    generation_.store(((g >> 8) + 1) << 8 | k, std::memory_order_release);
    generation_.notify_all();
    // acquire: step 4 (every job's writes happen before the caller reads them).
    for (unsigned d = done_.load(std::memory_order_acquire); d != k;
         d = done_.load(std::memory_order_acquire))
        done_.wait(d, std::memory_order_acquire);
    ++rounds_;
}

void Workers::loop(unsigned i) {
    std::uint64_t seen = 0;
    for (;;) {
        // acquire: step 2 (sees job_ and the resets as the caller wrote them before the bump).
        generation_.wait(seen, std::memory_order_acquire);
        const std::uint64_t g = generation_.load(std::memory_order_acquire);
        if (g == seen) continue;  // spurious wake-up
        seen = g;
        const auto k = static_cast<unsigned>(g & 0xff);
        if (k == kStop) return;
        if (i >= k) continue;  // not in this round
        // acq_rel / acquire: the start barrier; a spin, yielding now and then.
        arrived_.fetch_add(1, std::memory_order_acq_rel);
        for (unsigned n = 1; arrived_.load(std::memory_order_acquire) != k; ++n)
            if (n % 64 == 0) std::this_thread::yield();
        (*job_)(i);
        // release: step 3 (the job's writes before the caller's acquire of the count).
        if (done_.fetch_add(1, std::memory_order_release) + 1 == k) done_.notify_one();
    }
}

}  // namespace props
