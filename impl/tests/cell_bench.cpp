// impl/tests/cell_bench.cpp: a micro-benchmark of the v2 frame-cell core (impl/frame_cell.h)
// against v1 (impl::Hypervisor, one MCAS per op) on the same churn: thread t, on its own
// (emulator, target) pair, maps a foreign page and unmaps it again (v2: and puts the deferred
// reference; v1 does its put inside unmap_foreign_page), cycling over the target's frames; then
// lookups of registered tuples. Not the bench harness (bench/, `pviommu bench`): the v2 core
// has none of v1's control-plane checks, fault points or IOTLB flushes, so this bounds what
// the protocol costs, not what a wired-in v2 Hypervisor will.
//   impl_cell_bench [frames per pair (1000)] [ops per thread (200000)] [repetitions (3)]
// Prints ns/op (wall x threads / ops, median of the repetitions) and atomic RMWs per op.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "impl/frame_cell.h"
#include "impl/hypervisor.h"

namespace {

using namespace spec;
using Clock = std::chrono::steady_clock;
constexpr std::uint8_t kRw = IOMMUOP_readable | IOMMUOP_writeable;

struct Figures {
    double ns_per_op;      // wall x threads / ops
    double cpu_ns_per_op;  // the threads' CPU time / ops: less sensitive to a loaded machine
    double rmw_per_op;
};

double thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// v2: RMWs counted by the core itself (every build); v1: by impl::Atomic (a counting build).
template <class Body>
Figures run(unsigned threads, std::uint64_t ops, bool v2, Body body) {
    const auto count = [v2] { return v2 ? impl::v2::CellCore::writes() : impl::rmw_count(); };
    std::vector<std::thread> ts;
    ts.reserve(threads);
    std::vector<std::uint64_t> rmw(threads, 0);
    std::vector<double> cpu(threads, 0);
    const auto t0 = Clock::now();
    for (unsigned t = 0; t < threads; ++t)
        ts.emplace_back([&, t] {
            const std::uint64_t r0 = count();
            const double c0 = thread_cpu_ns();
            body(t, ops);
            cpu[t] = thread_cpu_ns() - c0;
            rmw[t] = count() - r0;
        });
    for (auto& th : ts) th.join();
    const double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    std::uint64_t total = 0;
    for (auto r : rmw) total += r;
    double cpu_total = 0;
    for (double c : cpu) cpu_total += c;
    const auto all = static_cast<double>(ops * threads);
    return {ns * threads / all, cpu_total / all, static_cast<double>(total) / all};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const std::uint64_t n = argc > 1 ? std::stoull(argv[1]) : 1000;
    const std::uint64_t ops = argc > 2 ? std::stoull(argv[2]) : 200000;
    const int reps = argc > 3 ? std::stoi(argv[3]) : 3;
    std::printf(
        "frames/pair %llu, ops/thread %llu, median of %d; RMWs counted only in a "
        "-DPVIOMMU_COUNT_RMW=ON build for v1 (v2 counts its own)\n",
        static_cast<unsigned long long>(n), static_cast<unsigned long long>(ops), reps);
    std::printf("%-8s %-7s %10s %10s %10s %10s %10s %10s\n", "op", "threads", "v1 ns/op",
                "v2 ns/op", "v1 cpu-ns", "v2 cpu-ns", "v1 RMW/op", "v2 RMW/op");
    for (const bool churn : {true, false}) {
        for (const unsigned threads : {1u, 2u, 4u}) {
            std::vector<double> v1ns, v2ns, v1cpu, v2cpu;
            double v1r = 0, v2r = 0;
            for (int rep = 0; rep < reps; ++rep) {
                // v1: pair t = emulator 2t+1 (usable), target 2t+2 with n frames.
                Host h;
                h.frames = n * threads + 64;
                impl::Hypervisor hv(h);
                for (unsigned t = 0; t < threads; ++t) {
                    const DomId e{static_cast<std::uint16_t>(2 * t + 1)};
                    const DomId tg{static_cast<std::uint16_t>(2 * t + 2)};
                    if (!hv.create_domain(e, DomainRole::guest, true, 0) ||
                        !hv.create_domain(tg, DomainRole::guest, false, n))
                        return 1;
                    hv.grant_dm(e, tg);
                    hv.create_ioserver(tg, IoServId{0}, e, 511);
                }
                // v2: the same pairs in one core.
                impl::v2::CellConfig cfg;
                cfg.frames = static_cast<std::uint32_t>(n * threads);
                cfg.doms = 2 * threads + 1;
                cfg.gfns = static_cast<std::uint32_t>(n);
                cfg.bfns = static_cast<std::uint32_t>(n);
                cfg.records = cfg.frames + 16 * threads + 2;
                cfg.descs = 8 * threads + 2;
                impl::v2::CellCore core(cfg);
                for (unsigned t = 0; t < threads; ++t)
                    for (std::uint64_t g = 0; g < n; ++g)
                        core.seed(static_cast<std::uint32_t>(t * n + g),
                                  static_cast<std::uint16_t>(2 * t + 2), g);
                if (!churn) {  // lookups need registered tuples
                    for (unsigned t = 0; t < threads; ++t) {
                        const auto e = static_cast<std::uint16_t>(2 * t + 1);
                        const auto tg = static_cast<std::uint16_t>(2 * t + 2);
                        for (std::uint64_t g = 0; g < n; ++g) {
                            MapForeignPage m;
                            m.bfn = Bfn{g};
                            m.gfn = Gfn{g};
                            m.domid = DomId{tg};
                            m.ioserver = IoServId{0};
                            m.flags = Flags::with_order(0, kRw);
                            if (hv.map_foreign_page(DomId{e}, m) != Status::ok) return 2;
                            if (core.map_foreign(e, g, tg, 0, g, kRw, false) != impl::v2::St::ok)
                                return 3;
                        }
                    }
                }
                const auto v1 = run(threads, ops, false, [&](unsigned t, std::uint64_t k) {
                    const DomId e{static_cast<std::uint16_t>(2 * t + 1)};
                    const auto tg = static_cast<std::uint16_t>(2 * t + 2);
                    for (std::uint64_t i = 0; i < k; ++i) {
                        const std::uint64_t g = (i / 2) % n;
                        if (!churn) {
                            LookupForeignPage l;
                            l.gfn = Gfn{g};
                            l.domid = DomId{tg};
                            l.ioserver = IoServId{0};
                            l.flags = Flags::with_order(0, 0);
                            (void)hv.lookup_foreign_page(e, l);
                        } else if (i % 2 == 0) {
                            MapForeignPage m;
                            m.bfn = Bfn{g};
                            m.gfn = Gfn{g};
                            m.domid = DomId{tg};
                            m.ioserver = IoServId{0};
                            m.flags = Flags::with_order(0, kRw);
                            (void)hv.map_foreign_page(e, m);
                        } else {
                            UnmapForeignPage u;
                            u.bfn = Bfn{g};
                            u.domid = DomId{tg};
                            u.ioserver = IoServId{0};
                            (void)hv.unmap_foreign_page(e, u);
                        }
                    }
                });
                const auto v2 = run(threads, ops, true, [&](unsigned t, std::uint64_t k) {
                    const auto e = static_cast<std::uint16_t>(2 * t + 1);
                    const auto tg = static_cast<std::uint16_t>(2 * t + 2);
                    for (std::uint64_t i = 0; i < k; ++i) {
                        const std::uint64_t g = (i / 2) % n;
                        if (!churn) {
                            std::uint64_t b = 0;
                            (void)core.lookup(tg, 0, g, &b);
                        } else if (i % 2 == 0) {
                            (void)core.map_foreign(e, g, tg, 0, g, kRw, false);
                        } else {
                            std::uint32_t m = 0;
                            if (core.unmap_foreign(e, g, tg, 0, &m) == impl::v2::St::ok)
                                (void)core.put_deferred(m, 1);
                        }
                    }
                });
                v1ns.push_back(v1.ns_per_op);
                v2ns.push_back(v2.ns_per_op);
                v1cpu.push_back(v1.cpu_ns_per_op);
                v2cpu.push_back(v2.cpu_ns_per_op);
                v1r = v1.rmw_per_op;
                v2r = v2.rmw_per_op;
            }
            std::printf("%-8s %-7u %10.1f %10.1f %10.1f %10.1f %10.2f %10.2f\n",
                        churn ? "churn" : "lookup", threads, median(v1ns), median(v2ns),
                        median(v1cpu), median(v2cpu), v1r, v2r);
        }
    }
    return 0;
}
