// ref/hypervisor.h: the reference model. Sequential, small, obviously correct: it edits a
// spec::State (plain sorted containers) directly, one function per subop and event, checks in
// the ruled order, each commented with its rule. Not thread-safe: one caller at a time.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spec/hypervisor.h"

namespace ref {

class Hypervisor final : public spec::Hypervisor {
public:
    explicit Hypervisor(const spec::Host& host);
    // Resumes from any state (a snapshot of ref or impl): ref's whole state is a spec::State.
    explicit Hypervisor(spec::State s) : s_(std::move(s)) {}

    [[nodiscard]] bool create_domain(spec::DomId d, spec::DomainRole role, bool iommu_hw,
                                     std::uint64_t ram) override;
    void grant_dm(spec::DomId emulator, spec::DomId target) override;
    void create_ioserver(spec::DomId target, spec::IoServId id, spec::DomId emulator,
                         std::uint32_t ring_slots) override;
    void add_rmrr(spec::DomId d, spec::Bfn first, std::uint64_t count) override;
    [[nodiscard]] bool add_xen_gfn(spec::DomId d, spec::Gfn g) override;
    void arm_iommu_map_fault(std::uint32_t count) override;
    void set_quota(spec::DomId d, std::uint32_t quota) override;
    void destroy(spec::DomId d) override;

    [[nodiscard]] spec::Status query_caps(spec::DomId c, spec::QueryCaps& op) override;
    [[nodiscard]] spec::Status map_page(spec::DomId c, spec::MapPage& op) override;
    [[nodiscard]] spec::Status unmap_page(spec::DomId c, spec::UnmapPage& op) override;
    [[nodiscard]] spec::Status map_foreign_page(spec::DomId c, spec::MapForeignPage& op) override;
    [[nodiscard]] spec::Status lookup_foreign_page(spec::DomId c,
                                                   spec::LookupForeignPage& op) override;
    [[nodiscard]] spec::Status unmap_foreign_page(spec::DomId c,
                                                  spec::UnmapForeignPage& op) override;

    spec::BalloonOutcome balloon(spec::DomId d, spec::Gfn g) override;
    spec::PopulateOutcome populate(spec::DomId d, spec::Gfn g) override;
    std::vector<spec::IoReq> drain(spec::DomId target, spec::IoServId id,
                                   std::uint32_t max) override;

    [[nodiscard]] spec::State snapshot() const override { return s_; }
    [[nodiscard]] std::string name() const override { return "ref"; }
    [[nodiscard]] const spec::State& state() const { return s_; }
    // Incremental invariant checking (spec::FrameLog): from now on record every frame, IOMMU
    // entry (domain, bfn) and whole domain a statement changes, and every bfn a lookup hands
    // out, in the live state's log, so that spec::check_invariants(state()) checks what they
    // touch only (after its first, full check). Off: the log is dropped and every check is full.
    void track_frames(bool on) {
        if (on)
            s_.frame_log.arm();
        else
            s_.frame_log.disarm();
    }

    // Why a subop returned its status, for `pviommu run --explain`: the row of its table in
    // spec/pv-iommu.md section 4 that decided it (row 0: success, `why` says which case).
    struct Ruling {
        std::string_view subop;
        int row = 0;
        spec::Status status = spec::Status::ok;
        std::string_view why;  // the rule and the condition, as the spec's row states it
    };
    // Off by default (nothing is kept). Recording changes nothing else: every subop returns
    // exactly the status it records.
    void record_rulings(bool on) { record_ = on; }
    // The rulings of the subops run since the last take, in order; clears them.
    [[nodiscard]] std::vector<Ruling> take_rulings() { return std::exchange(rulings_, {}); }

private:
    // R3's target rows, in order (shared with R4): domid foreign, live, privileged over,
    // ioserver one of its servers served by c. nullopt: all pass.
    struct Refusal {
        spec::Status status;
        int row;  // in map_foreign_page's table
        std::string_view why;
    };
    [[nodiscard]] std::optional<Refusal> check_target(spec::DomId c, spec::DomId domid,
                                                      spec::IoServId ioserver) const;
    [[nodiscard]] std::optional<spec::Mfn> alloc_frame();  // R8: lowest free frame
    [[nodiscard]] std::uint64_t free_frames() const;
    void get_ref(spec::Mfn m);
    void put_ref(spec::Mfn m);  // R8: frees at 0
    // D20: would `more` new holdings take c above its quota?
    [[nodiscard]] bool over_quota(spec::DomId c, std::uint64_t more) const;
    // D19 then D20 for a lookup that registers one tuple of c on m: the refusing status, if any.
    [[nodiscard]] std::optional<spec::Status> one_more_tuple_refused(spec::DomId c,
                                                                     spec::Mfn m) const;
    // R3/R6 -EIO: an armed trace fault (D10), else the fault plan's iommu_map point.
    [[nodiscard]] bool iommu_unit_fails(std::uint64_t units);
    // Removes tuple t of frame m with its reference.
    void drop_tuple(spec::Mfn m, const spec::Tuple& t);
    // R7, R9: re-point emulator e's foreign entry at b to scratch if no tuple of e uses b.
    void scratch_if_unused(spec::DomId e, spec::Bfn b);

    // Records and returns a ruling (the only way a subop returns).
    spec::Status ruled(std::string_view subop, int row, spec::Status st, std::string_view why);
    // R1/R2's rows 1 and 2, common to every table but query_caps's.
    spec::Status flags_row(std::string_view subop, spec::Status st);

    spec::State s_;
    bool record_ = false;
    std::vector<Ruling> rulings_;  // while record_
    std::uint64_t low_water_ = 0;  // every frame below it is in use: where R8's search starts
};

[[nodiscard]] std::unique_ptr<spec::Hypervisor> make(const spec::Host& host);

}  // namespace ref
