#include "spec/faults.h"

#include <chrono>
#include <thread>

namespace spec {

namespace {

constexpr std::array<std::string_view, kFaultPoints> kNames{
    "iommu_map",
    "ring_full",
    "stall.txn_between_reads",
    "stall.before_commit",
    "stall.rdcss_phases",
    "stall.mcas_phase1",
    "stall.mcas_decide",
    "stall.mcas_phase2",
    "stall.help_other",
    "stall.before_retire",
    "stall.balloon_deliveries",
    "stall.populate_scan",
    "stall.rdcss_before_install",
    "stall.rdcss_loaded",
};

constexpr auto kAll = [] {
    std::array<FaultPoint, kFaultPoints> a{};
    for (std::size_t i = 0; i < kFaultPoints; ++i) a[i] = static_cast<FaultPoint>(i);
    return a;
}();

// One thread's stall stream: which plan it belongs to (a new plan restarts it) and its state.
struct StallStream {
    const FaultPlan* plan = nullptr;
    std::uint64_t state = 0;
};
thread_local StallStream t_stream;

}  // namespace

std::string_view fault_point_name(FaultPoint p) { return kNames[static_cast<std::size_t>(p)]; }
std::span<const FaultPoint> all_fault_points() { return kAll; }
bool is_stall(FaultPoint p) { return p >= FaultPoint::stall_txn_between_reads; }

FaultPlan& FaultPlan::stalls(std::uint32_t one_in) {
    for (FaultPoint p : kAll)
        if (is_stall(p)) rate(p, one_in);
    return *this;
}

std::uint64_t FaultPlan::draw() {
    return splitmix64(seed_ ^ splitmix64(next_.fetch_add(1, std::memory_order_relaxed)));
}

std::optional<std::uint64_t> FaultPlan::iommu_map_fails(std::uint64_t units) {
    if (one_in_[static_cast<std::size_t>(FaultPoint::iommu_map)] == 0) return std::nullopt;
    if (!fires(FaultPoint::iommu_map, draw())) return std::nullopt;
    hit(FaultPoint::iommu_map);
    const std::uint64_t u = draw() % units;
    last_unit_.store(u + 1, std::memory_order_relaxed);
    return u;
}

bool FaultPlan::ring_full() {
    if (one_in_[static_cast<std::size_t>(FaultPoint::ring_full)] == 0) return false;
    if (!fires(FaultPoint::ring_full, draw())) return false;
    hit(FaultPoint::ring_full);
    return true;
}

void FaultPlan::stall(FaultPoint p) {
    if (hook_) hook_(p);
    if (one_in_[static_cast<std::size_t>(p)] == 0) return;
    StallStream& s = t_stream;
    if (s.plan != this) {
        s.plan = this;
        s.state = splitmix64(seed_ ^ (threads_.fetch_add(1, std::memory_order_relaxed) << 32));
    }
    s.state = splitmix64(s.state);
    const std::uint64_t r = s.state;
    if (!fires(p, r)) return;
    hit(p);
    switch ((r >> 32) % 3) {
        case 0:
            std::this_thread::yield();
            break;
        case 1: {
            const std::uint64_t spins = (r >> 40) % 4096;
            for (std::uint64_t i = 0; i < spins; ++i) {
                // An empty loop the compiler keeps: a signal fence orders nothing across
                // threads, it only stops the loop from being removed.
                std::atomic_signal_fence(std::memory_order_seq_cst);
            }
            break;
        }
        default:
            std::this_thread::sleep_for(
                std::chrono::microseconds(max_sleep_us_ == 0 ? 0 : (r >> 40) % max_sleep_us_));
    }
}

}  // namespace spec
