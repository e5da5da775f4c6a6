// spec/faults.h: seeded fault injection (issue 7 part 3). One FaultPlan, set on a Hypervisor
// at a quiescent point (spec::Hypervisor::set_fault_plan), decides every injected fault from
// ONE seed:
//   - sequential faults, which change an outcome and which ref honours too, so that ref and
//     impl given plans with the same seed and rates agree statement by statement:
//       iommu_map  a map_page / map_foreign_page that passed every other check fails with
//                  -EIO at unit U of its 2^k units (impl stages units 0..U-1 first, then must
//                  discard them: all or nothing, F10), changing nothing;
//       ring_full  one invalidate of a balloon is delivered as if the buffered ring had fewer
//                  than 2 free slots: on the synchronous channel (R7: never dropped);
//   - stalls, which change only timing (impl only; names in impl/README.md): a vCPU yields,
//     spins or sleeps at a named step of the concurrency protocol.
// Sequential draws come from one counter-based generator (splitmix64 of seed and a draw
// index), so a seed names the same fault schedule on every run of a sequential scenario. Stall
// draws come from a per-thread generator seeded from the seed and the thread's ordinal: they
// need no cross-thread ordering (a schedule of real threads is not reproducible anyway).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string_view>

namespace spec {

enum class FaultPoint : std::uint8_t {
    // sequential (ref and impl)
    iommu_map,
    ring_full,
    // stalls (impl): MCAS core
    stall_txn_between_reads,  // Txn::read, after reading a word, before the next one
    stall_before_commit,      // an operation has read its words, before its MCAS
    stall_rdcss_phases,       // RDCSS: entry installed, before it is completed
    stall_mcas_phase1,        // between two words of MCAS phase 1 (installing)
    stall_mcas_decide,        // phase 1 done, before the status CAS
    stall_mcas_phase2,        // between two words of MCAS phase 2 (releasing)
    stall_help_other,         // met another MCAS's descriptor, before helping it
    stall_before_retire,      // EBR: before an unreachable object is retired
    // stalls (impl): operations
    stall_balloon_deliveries,  // a balloon, after its commit / between per-server deliveries
    stall_populate_scan,       // populate saw a free frame, before reading it in its Txn
    // stalls (impl): MCAS core, RDCSS windows (issue 15's scripted schedules park threads here)
    stall_rdcss_before_install,  // RDCSS: generation drawn, before the install CAS
    stall_rdcss_loaded,          // RDCSS completion: an install loaded, before its status read
    count_
};
inline constexpr std::size_t kFaultPoints = static_cast<std::size_t>(FaultPoint::count_);

[[nodiscard]] std::string_view fault_point_name(FaultPoint p);
[[nodiscard]] std::span<const FaultPoint> all_fault_points();
[[nodiscard]] bool is_stall(FaultPoint p);

class FaultPlan {
public:
    explicit FaultPlan(std::uint64_t seed) : seed_(seed) {}
    FaultPlan(const FaultPlan&) = delete;
    FaultPlan& operator=(const FaultPlan&) = delete;

    // Fire point p once in `one_in` visits on average (0: never, 1: every visit). Configure
    // before the plan is set on a Hypervisor (the rates are then read without synchronisation).
    FaultPlan& rate(FaultPoint p, std::uint32_t one_in) {
        one_in_[static_cast<std::size_t>(p)] = one_in;
        return *this;
    }
    // Every stall point at once.
    FaultPlan& stalls(std::uint32_t one_in);
    // A test's hook, called by the visiting thread at every visit of every stall point, before
    // any random stall (whatever the rates), e.g. to park a thread in a window while another
    // thread acts. Configure before the plan is set on a Hypervisor.
    FaultPlan& on_stall(std::function<void(FaultPoint)> hook) {
        hook_ = std::move(hook);
        return *this;
    }
    // Longest sleep of a stall, in microseconds (spins and yields are shorter).
    FaultPlan& max_sleep_us(std::uint32_t us) {
        max_sleep_us_ = us;
        return *this;
    }

    // iommu_map: nullopt, or the unit (0..units-1) at which the IOMMU fails. One draw per call
    // (two when it fires), made by both models at the same point of the check order.
    [[nodiscard]] std::optional<std::uint64_t> iommu_map_fails(std::uint64_t units);
    // ring_full: one draw per invalidate delivered, in F8 order.
    [[nodiscard]] bool ring_full();
    // A stall point: maybe yield, spin or sleep. Thread-safe; draws from a per-thread stream.
    void stall(FaultPoint p);

    [[nodiscard]] std::uint64_t seed() const { return seed_; }
    // The unit the last firing iommu_map chose (tests: every unit of a range is reachable).
    [[nodiscard]] std::optional<std::uint64_t> last_unit() const {
        const std::uint64_t u = last_unit_.load(std::memory_order_relaxed);
        return u == 0 ? std::nullopt : std::optional<std::uint64_t>(u - 1);
    }
    // How often p fired (relaxed counters: read at quiescent points).
    [[nodiscard]] std::uint64_t hits(FaultPoint p) const {
        return hits_[static_cast<std::size_t>(p)].load(std::memory_order_relaxed);
    }

private:
    [[nodiscard]] std::uint64_t draw();  // the sequential stream
    [[nodiscard]] bool fires(FaultPoint p, std::uint64_t r) const {
        const std::uint32_t k = one_in_[static_cast<std::size_t>(p)];
        return k != 0 && r % k == 0;
    }
    void hit(FaultPoint p) {
        // relaxed: a statistic, read at quiescent points (thread join orders it).
        hits_[static_cast<std::size_t>(p)].fetch_add(1, std::memory_order_relaxed);
    }

    const std::uint64_t seed_;
    std::array<std::uint32_t, kFaultPoints> one_in_{};  // configured before use, then read-only
    std::uint32_t max_sleep_us_ = 20;                   // likewise
    std::function<void(FaultPoint)> hook_;              // likewise (on_stall)
    // The sequential stream's next index. relaxed: each draw needs a distinct index only; the
    // order of draws is the program order of the (sequential) scenario.
    std::atomic<std::uint64_t> next_{0};
    // Per-thread stall streams get distinct ordinals. relaxed: distinctness only.
    std::atomic<std::uint64_t> threads_{0};
    std::array<std::atomic<std::uint64_t>, kFaultPoints> hits_{};
    // last_unit() + 1, 0: none yet. relaxed: a statistic, read at quiescent points.
    std::atomic<std::uint64_t> last_unit_{0};
};

// splitmix64: the mixing function of both streams.
[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace spec
