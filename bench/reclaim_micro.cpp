// bench/reclaim_micro.cpp: what a reader pays per operation for each way of protecting the
// shared objects it reads (issue 16 asked for liburcu's QSBR flavour instead of impl's epochs
// unless something better is measured). Usage: pviommu_reclaim_micro [reps]
//
// Each variant runs 4M operations of one dependent load in a 16 KiB table (an L1-resident
// pointer chase, so the protection's cost is not hidden behind a miss) and reports the median
// ns/op over the repetitions:
//  - bare: the load alone;
//  - impl EBR: impl::EpochGuard around the load (the pin every impl operation takes: a
//    seq_cst load of the global epoch and a seq_cst store of the thread's announcement,
//    a release store to unpin);
//  - EBR, fence-free pin: the same announcement as a release store, which is what a reader
//    pays when the advancer issues an asymmetric fence (membarrier) instead;
//  - QSBR quiescent state: urcu_qsbr_quiescent_state() after each operation, the thread
//    staying online between operations (Xen's RCU: a quiescent state at hypercall exit);
//  - QSBR online/offline: the thread online only during each operation, so that an idle
//    vCPU thread never holds a grace period back.
// and then the price of the fence-free pin on the other side: one membarrier
// (MEMBARRIER_CMD_PRIVATE_EXPEDITED, what an advancer must issue before it scans the
// announcements) with no other thread of the process running and with one spinning.
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <urcu/urcu-qsbr.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "impl/mcas.h"

namespace {

constexpr std::size_t kTable = std::size_t{1} << 12;  // 4096 x 4 B = 16 KiB
constexpr std::size_t kOps = std::size_t{1} << 22;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// The fence-free pin's shared words. Single-threaded here: only the reader's cost is measured.
std::atomic<std::uint64_t> g_epoch{2};  // relaxed: no advancer runs in this program
std::atomic<std::uint64_t> g_slot{0};   // release on pin and unpin, as the variant describes

long membarrier(int cmd) { return syscall(__NR_membarrier, cmd, 0, 0); }

// ns per expedited membarrier while `spinners` other threads of this process run; < 0 if the
// kernel does not offer it.
double membarrier_ns(int spinners) {
    if (membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) return -1;
    std::atomic<bool> stop{false};  // relaxed: a flag polled by the spinners, nothing published
    std::vector<std::thread> spin;
    for (int i = 0; i < spinners; ++i)
        spin.emplace_back([&stop] {
            while (!stop.load(std::memory_order_relaxed)) {
            }
        });
    constexpr int kCalls = 4000;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kCalls; ++i) (void)membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    const auto t1 = std::chrono::steady_clock::now();
    stop.store(true, std::memory_order_relaxed);
    for (auto& t : spin) t.join();
    return std::chrono::duration<double, std::nano>(t1 - t0).count() / kCalls;
}

}  // namespace

int main(int argc, char** argv) {
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 9;
    std::vector<std::uint32_t> next(kTable);
    for (std::size_t i = 0; i < kTable; ++i) next[i] = static_cast<std::uint32_t>(i);
    std::shuffle(next.begin(), next.end(), std::mt19937(1));

    std::uint32_t sink = 0;
    auto run = [&](auto&& body) {
        std::uint32_t x = 0;
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t k = 0; k < kOps; ++k) x = body(x);
        const auto t1 = std::chrono::steady_clock::now();
        sink += x;
        return std::chrono::duration<double, std::nano>(t1 - t0).count() /
               static_cast<double>(kOps);
    };

    urcu_qsbr_register_thread();
    std::vector<double> bare, ebr, ebr_nofence, qsbr_qs, qsbr_onoff;
    for (int r = 0; r < reps; ++r) {
        bare.push_back(run([&](std::uint32_t x) { return next[x]; }));
        ebr.push_back(run([&](std::uint32_t x) {
            const impl::EpochGuard pin;
            return next[x];
        }));
        ebr_nofence.push_back(run([&](std::uint32_t x) {
            g_slot.store(g_epoch.load(std::memory_order_relaxed), std::memory_order_release);
            const std::uint32_t y = next[x];
            g_slot.store(0, std::memory_order_release);
            return y;
        }));
        qsbr_qs.push_back(run([&](std::uint32_t x) {
            const std::uint32_t y = next[x];
            urcu_qsbr_quiescent_state();
            return y;
        }));
        qsbr_onoff.push_back(run([&](std::uint32_t x) {
            urcu_qsbr_thread_online();
            const std::uint32_t y = next[x];
            urcu_qsbr_thread_offline();
            return y;
        }));
    }
    urcu_qsbr_unregister_thread();

    std::printf("reader cost per operation, one thread, median of %d x %zu ops (checksum %u)\n",
                reps, kOps, sink);
    std::printf("  %-44s %6.1f ns\n", "bare dependent load (16 KiB table)", median(bare));
    std::printf("  %-44s %6.1f ns\n", "impl EBR pin/unpin (impl::EpochGuard)", median(ebr));
    std::printf("  %-44s %6.1f ns\n", "EBR pin, release store (membarrier advancer)",
                median(ebr_nofence));
    std::printf("  %-44s %6.1f ns\n", "QSBR quiescent state at op exit", median(qsbr_qs));
    std::printf("  %-44s %6.1f ns\n", "QSBR online + offline per op", median(qsbr_onoff));
    std::printf("advancer cost of the fence-free pin (expedited membarrier, median of %d):\n",
                reps);
    for (int spinners : {0, 1}) {
        std::vector<double> m;
        for (int r = 0; r < reps; ++r) m.push_back(membarrier_ns(spinners));
        if (median(m) < 0) {
            std::printf("  membarrier unavailable on this kernel\n");
            break;
        }
        std::printf("  %-44s %6.0f ns\n",
                    spinners == 0 ? "membarrier, no other thread running"
                                  : "membarrier, one other thread running",
                    median(m));
    }
}
