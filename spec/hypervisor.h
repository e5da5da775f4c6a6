// spec/hypervisor.h: the one interface that ref/ and impl/ implement, so that trace/, props/
// and bench/ are written once. Control-plane calls run only at quiescent points (spec/pv-iommu.md,
// concurrency contract); data-path calls may run concurrently in implementations that say so.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "spec/faults.h"
#include "spec/ops.h"
#include "spec/state.h"

namespace spec {

enum class DomainRole : std::uint8_t { hardware, guest };

// What a balloon did: the frame it released (if any) and the invalidates it delivered, so that
// INV-INVALIDATE (k tuples -> k invalidates) can be checked by the caller.
struct BalloonOutcome {
    std::optional<Mfn> mfn;         // the RAM frame that left the P2M; nullopt: nothing happened
    std::uint32_t invalidates = 0;  // delivered, buffered or synchronous
    std::uint32_t synchronous = 0;  // of which on the synchronous channel (ring full)
};

struct PopulateOutcome {
    std::optional<Mfn> mfn;  // the frame now at gfn; nullopt: gfn had one, or none was free
};

class Hypervisor {
public:
    virtual ~Hypervisor() = default;
    Hypervisor() = default;
    Hypervisor(const Hypervisor&) = delete;
    Hypervisor& operator=(const Hypervisor&) = delete;

    // --- Control plane (quiescent points only). Callers have validated names (the trace
    //     parser does): live domains, new ids, frames in range.
    // Creates domain d with `ram` frames at gfns 0..ram-1 (lowest free frames, in order).
    // Returns false, changing nothing, if fewer than `ram` frames are free (D9).
    [[nodiscard]] virtual bool create_domain(DomId d, DomainRole role, bool iommu_hw,
                                             std::uint64_t ram) = 0;
    virtual void grant_dm(DomId emulator, DomId target) = 0;
    virtual void create_ioserver(DomId target, IoServId id, DomId emulator,
                                 std::uint32_t ring_slots) = 0;
    virtual void add_rmrr(DomId d, Bfn first, std::uint64_t count) = 0;
    // gfn g of d is backed by the lowest free frame, which becomes Xen's. False: none free.
    [[nodiscard]] virtual bool add_xen_gfn(DomId d, Gfn g) = 0;
    virtual void arm_iommu_map_fault(std::uint32_t count) = 0;  // D10
    // D20: d may hold at most `quota` tuples and local entries (State::holdings). Right after
    // create_domain, while d holds nothing.
    virtual void set_quota(DomId d, std::uint32_t quota) = 0;
    // Injected faults (spec/faults.h); nullptr: none. Both models honour the sequential ones
    // (iommu_map, ring_full) at the same points, so equal plans keep them in step; impl also
    // stalls at the named points. The plan must outlive every later data-path operation.
    void set_fault_plan(std::shared_ptr<FaultPlan> plan) { faults_ = std::move(plan); }
    [[nodiscard]] FaultPlan* fault_plan() const { return faults_.get(); }
    virtual void destroy(DomId d) = 0;  // R9

    // --- Data path.
    // The hypercall (R10): runs ops in order, each with its own status; returns 0.
    long iommu_op(DomId caller, std::span<pv_iommu_op> ops);

    // One subop each. On success they write their out fields into op (D2).
    [[nodiscard]] virtual Status query_caps(DomId c, QueryCaps& op) = 0;
    [[nodiscard]] virtual Status map_page(DomId c, MapPage& op) = 0;
    [[nodiscard]] virtual Status unmap_page(DomId c, UnmapPage& op) = 0;
    [[nodiscard]] virtual Status map_foreign_page(DomId c, MapForeignPage& op) = 0;
    [[nodiscard]] virtual Status lookup_foreign_page(DomId c, LookupForeignPage& op) = 0;
    [[nodiscard]] virtual Status unmap_foreign_page(DomId c, UnmapForeignPage& op) = 0;

    virtual BalloonOutcome balloon(DomId d, Gfn g) = 0;    // R7
    virtual PopulateOutcome populate(DomId d, Gfn g) = 0;  // R8
    // Consumes up to max requests of server (target, id), buffered first (D11).
    virtual std::vector<IoReq> drain(DomId target, IoServId id, std::uint32_t max) = 0;

    // --- Observation (quiescent points only).
    [[nodiscard]] virtual State snapshot() const = 0;
    [[nodiscard]] virtual std::string name() const = 0;

protected:
    // Written at quiescent points only; read by the data path without synchronisation (the
    // quiescence that the control plane guarantees orders the write before every reader).
    std::shared_ptr<FaultPlan> faults_;
};

// Runs one op through the hypercall, returning it with its status and out fields written.
struct OpResult {
    Status status = Status::ok;
    Op op;  // the op as the model left it (out fields on success)
};
[[nodiscard]] OpResult run_op(Hypervisor& h, DomId caller, const Op& op);

}  // namespace spec
