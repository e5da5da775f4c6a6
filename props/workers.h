// props/workers.h: persistent worker threads for the concurrent histories (issue 15 item 2).
//
// A Workers pool starts its threads once and runs round after round on them, so that what impl
// keeps per thread (EBR slots, descriptor pools, thread-local contexts, stall streams) is
// recycled across histories the way a hypervisor's vCPUs recycle theirs, instead of being made
// fresh for every history.
//
// One round (run()):
//  1. the caller publishes the job and the number of workers k taking part, resets the arrival
//     and completion counters, then bumps the generation (release) and wakes the idle workers;
//  2. each worker i < k sees the new generation (acquire: it then sees the job), counts itself
//     in, and SPINS until all k have arrived (the start barrier: a spin on an atomic, no sleep,
//     so that the k workers are on CPUs together when the first operation starts; it yields
//     every 64 spins, for machines with fewer CPUs than workers);
//  3. each runs job(i), then counts itself done (release: the caller sees what the job wrote);
//  4. the caller waits for k completions (acquire) and returns.
// Between rounds the workers block in std::atomic::wait (a futex): an idle pool costs no CPU
// while the caller checks the history it just recorded.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace props {

class Workers {
public:
    // Starts n threads, idle until run().
    explicit Workers(unsigned n);
    // Stops and joins the threads. Requires no round in progress.
    ~Workers();
    Workers(const Workers&) = delete;
    Workers& operator=(const Workers&) = delete;

    [[nodiscard]] unsigned size() const { return static_cast<unsigned>(threads_.size()); }
    // Runs job(i) on worker i for every i < k (k <= size()), released together by the start
    // barrier; returns when every job has returned. Not reentrant; one caller at a time.
    void run(unsigned k, const std::function<void(unsigned)>& job);
    // Rounds run so far.
    [[nodiscard]] std::uint64_t rounds() const { return rounds_; }

private:
    void loop(unsigned i);

    std::vector<std::thread> threads_;
    static constexpr std::uint64_t kStop = 0xff;  // the k of the last round: stop

    // Written by the caller before it bumps generation_ (release), read only by the workers of
    // that round after they see it (acquire); the caller waits for them before writing again.
    const std::function<void(unsigned)>* job_ = nullptr;
    // (round << 8) | k: k, the workers taking part (kStop: exit), travels in the same word as
    // the round, so that a worker woken late reads a consistent pair. Bumped by the caller
    // (release: publishes job_ and the counter resets), waited on by the workers (acquire).
    std::atomic<std::uint64_t> generation_{0};
    // Workers of this round that reached the start barrier. acq_rel increments, acquire spins:
    // the barrier orders nothing but itself; reset by the caller before the release.
    std::atomic<unsigned> arrived_{0};
    // Workers of this round whose job returned. release on increment (the job's writes), the
    // caller's acquire load sees them.
    std::atomic<unsigned> done_{0};
    std::uint64_t rounds_ = 0;  // the caller's only
};

}  // namespace props
