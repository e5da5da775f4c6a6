// spec/state.h: the abstract state of the world (spec/pv-iommu.md section 2), as plain sorted
// containers.
// ref/ runs on it directly; impl/ produces it as a snapshot. The canonical dump and the state
// invariants are defined once, on this type (spec/state.cpp), so the two
// models are compared and checked by the same code.
//
// Only what differs from a fresh host is stored: a frame absent from `frames` is free with
// count 0 and not allocated; the hardware domain's 1:1 map is a rule (D18), not entries.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "spec/types.h"

namespace spec {

enum class IommuMode : std::uint8_t { inclusive, strict, passthrough };

struct Host {
    bool iommu = true;
    IommuMode mode = IommuMode::inclusive;
    unsigned max_order = 9;
    std::uint64_t frames = 4096;
    // D19: no reference may take a frame's count above this (1..kMaxCountLimit).
    std::uint32_t max_count = kMaxCountLimit;
    bool operator==(const Host&) const = default;
};

enum class FrameState : std::uint8_t { free, xen, owned };

struct Frame {
    FrameState state = FrameState::free;
    DomId owner{};            // meaningful when state == owned
    std::uint32_t count = 0;  // references: allocated + tuples + local entries (INV-COUNT)
    bool allocated = false;   // the owner's allocation reference (PGC_allocated)
    bool operator==(const Frame&) const = default;
    [[nodiscard]] bool fresh() const { return *this == Frame{}; }
};

enum class EntryKind : std::uint8_t { identity, local, foreign, scratch };

// One IOMMU PTE of a context: bfn -> (mfn, perms, kind). A scratch entry has no mfn (D7).
struct Entry {
    Mfn mfn{};
    std::uint8_t perms = 0;  // IOMMUOP_readable | IOMMUOP_writeable
    EntryKind kind = EntryKind::local;
    bool operator==(const Entry&) const = default;
};

struct Range {
    Bfn first{};
    std::uint64_t count = 0;
    [[nodiscard]] bool meets(Bfn b, std::uint64_t n) const {
        // [first, first+count) intersects [b, b+n); callers guarantee no overflow (D16, R2).
        return b.v <= first.v + (count - 1) && first.v <= b.v + (n - 1);
    }
    auto operator<=>(const Range&) const = default;
};

struct Domain {
    bool hardware = false;
    bool iommu_hw = false;
    std::map<Gfn, Mfn> p2m;
    std::vector<Range> rmrr;
    std::set<DomId> dm_over;         // `dm self over T`: privilege over T
    std::map<Bfn, Entry> iommu;      // explicit entries of this domain's IOMMU context
    std::set<Bfn> removed_identity;  // identity bfns removed by unmap_page (D18)
    // D20: at most this many holdings (tuples it serves + local entries); nullopt: no limit.
    std::optional<std::uint32_t> quota;
    bool operator==(const Domain&) const = default;
};

// An M2B tuple: mfn -> (bfn, domid, ioserver). The bfn is in the address space of the emulator
// that serves (domid, ioserver).
struct Tuple {
    Bfn bfn{};
    DomId domid{};
    IoServId ioserver{};
    auto operator<=>(const Tuple&) const = default;
};
struct TupleInfo {
    bool swap = false;    // swap_mfn of the map_foreign_page that made it (R3)
    DomId emulator{};     // D22: whose bus address space bfn is in (its server's, when made)
    bool orphan = false;  // D22, R9 v2: its server went with its target; kept until E unmaps
    bool operator==(const TupleInfo&) const = default;
};

struct IoReq {
    std::uint8_t type = PV_IOMMU_IOREQ_TYPE_INVALIDATE;
    Bfn bfn{};
    bool operator==(const IoReq&) const = default;
};

// D25, F13: a device's view of a bus address: a fault, its context's scratch page, or a frame.
struct DmaView {
    enum class Kind : std::uint8_t { fault, scratch, frame };
    Kind kind = Kind::fault;
    Mfn mfn{};  // Kind::frame only
    bool operator==(const DmaView&) const = default;
};
[[nodiscard]] std::string dma_text(const DmaView& v);  // `fault`, `scratch`, `mfn=0x12`

// INV-DEVICE-SAFE's ghost set H (D23): (E, bfn, domid, ioserver) -> the frame E was handed.
struct HandedKey {
    DomId emulator{};
    Bfn bfn{};
    DomId domid{};
    IoServId ioserver{};
    auto operator<=>(const HandedKey&) const = default;
};
using Handed = std::map<HandedKey, Mfn>;

using ServerKey = std::pair<DomId, IoServId>;  // (target domid, id)

struct IoServer {
    DomId emulator{};
    std::uint32_t ring_slots = kMaxRingSlots;
    std::deque<IoReq> buffered;  // each takes 2 slots of the ring (R7)
    std::deque<IoReq> sync;      // the synchronous channel: unbounded, nothing dropped
    bool operator==(const IoServer&) const = default;
    [[nodiscard]] bool ring_has_room() const { return ring_slots - 2 * buffered.size() >= 2; }
};

// What a model changed since the invariants were last checked on this very State object: the
// frames, the IOMMU entries (domain, bfn) and the whole domains, for incremental checking (D15
// at the cost of what a statement touches, not the size of the world). Only ref records
// (ref::Hypervisor::track_frames), and only on its own live state. Not part of the state's value:
// equality ignores it, and a copy or a moved-to State starts unarmed, so a snapshot is always
// checked in full. check_invariants(const State&) checks an armed log's state incrementally once
// it has checked it in full (its first check), then forgets what it checked.
class FrameLog {
public:
    FrameLog();
    FrameLog(const FrameLog& other);
    FrameLog(FrameLog&& other) noexcept;
    FrameLog& operator=(const FrameLog& other);
    FrameLog& operator=(FrameLog&& other) noexcept;
    ~FrameLog();
    bool operator==(const FrameLog& /*other*/) const { return true; }

    // The owner will record every change to a frame (its Frame, its tuples, the local entries
    // that reference it), to an IOMMU entry and to a whole domain from now on; the next check
    // is a full one.
    void arm();
    void disarm();
    void touch(Mfn m);
    // Domain c's IOMMU entry at b was made, removed or re-pointed (an identity entry removed
    // included): the entry, the tuples of c at b and what c was handed at b are checked again.
    void touch_entry(DomId c, Bfn b);
    // Domain d was created or destroyed, or something every tuple and entry of d depends on
    // changed (its privileges, servers, RMRRs): everything naming d is checked again.
    void touch_domain(DomId d);
    [[nodiscard]] bool armed() const;
    // A full check has been made since arm(): the next one may cover only what was touched.
    [[nodiscard]] bool incremental() const;
    [[nodiscard]] const std::set<Mfn>& touched() const;
    [[nodiscard]] const std::set<std::pair<DomId, Bfn>>& touched_entries() const;
    [[nodiscard]] const std::set<DomId>& touched_domains() const;
    // After a check of the state: forget what it covered. Changes nothing when unarmed (so
    // checking an unarmed State from several threads is safe).
    void checked() const;

    // The log's records and the checks' indexes of the state (which tuples claim a bfn, which
    // entries name a frame), kept up to date from the records: defined and used only by the
    // checks in spec/state.cpp. Null while unarmed.
    struct Data;
    [[nodiscard]] Data* data() const { return d_.get(); }

private:
    // Null while unarmed (the usual case: a snapshot, a state built by hand). The log's own
    // bookkeeping, not the state's value: a check (a const reader of the State) updates it.
    // One thread at a time, like the model that owns the state.
    std::unique_ptr<Data> d_;
};

struct State {
    Host host;
    std::map<Mfn, Frame> frames;  // non-fresh frames only
    std::map<DomId, Domain> domains;
    std::map<ServerKey, IoServer> servers;
    std::map<Mfn, std::map<Tuple, TupleInfo>> m2b;  // no empty inner maps
    std::uint32_t fault_iommu_map = 0;              // pending injected -EIO (D10)
    FrameLog frame_log;                             // not part of the value (see FrameLog)
    bool operator==(const State&) const = default;

    // Queries that both models and the checks use: one definition of each rule.
    [[nodiscard]] Frame frame(Mfn m) const;
    [[nodiscard]] const Domain* domain(DomId d) const;
    [[nodiscard]] const IoServer* server(DomId target, IoServId id) const;
    [[nodiscard]] std::optional<DomId> hardware_domain() const;
    // usable(C) := IOMMU present AND C.iommu_hw AND NOT (C hardware AND passthrough).
    [[nodiscard]] bool usable(DomId c) const;
    // The hardware domain has privilege over every domain; `dm E over T` gives E over T.
    [[nodiscard]] bool privileged(DomId e, DomId t) const;
    // C's entry at bfn: explicit, or the computed identity entry (D18), or none.
    [[nodiscard]] std::optional<Entry> entry(DomId c, Bfn b) const;
    [[nodiscard]] std::optional<Mfn> p2m(DomId d, Gfn g) const;
    // Does a tuple of emulator c (orphans included, F12) use bfn b, for another frame than
    // `except` if given? (R3, R6 -EEXIST and -EBUSY, R7/R9 re-pointing.)
    [[nodiscard]] bool claimed(DomId c, Bfn b, std::optional<Mfn> except = std::nullopt) const;
    // D25, F13: where a DMA by a device of emulator e to bus address b lands now.
    [[nodiscard]] DmaView dma(DomId e, Bfn b) const;
    // D20: what counts against e's quota: the tuples whose emulator is e (orphans included,
    // D22) plus the local entries of e's IOMMU context (one reference each, held on e's behalf).
    [[nodiscard]] std::uint64_t holdings(DomId e) const;
};

// A violated invariant: its INV-* name and what offends it (a frame, a tuple, an entry).
struct Violation {
    std::string invariant;
    std::string detail;
    bool operator==(const Violation&) const = default;
};

// Every state invariant of spec/pv-iommu.md (all but INV-INVALIDATE, which is per balloon) but
// INV-DEVICE-SAFE, which needs the ghost set H. Empty = holds.
// Incremental when s.frame_log is armed and has had its full check: then it checks only what the
// log recorded since the last check: the single-frame invariants (INV-FREE-ZERO, INV-MAX-COUNT,
// INV-COUNT) of the touched frames and of the frames the touched entries name (before and after);
// the tuples on those frames and the tuples of each touched entry's domain at its bfn; the
// entries naming those frames and the touched entries; the quotas of the domains whose holdings
// those change; and everything that names a touched domain. Exact when the owner records every
// change (ref does; ref's tests compare it with the full check after every statement of random
// traces and plant violations at touched places).
[[nodiscard]] std::vector<Violation> check_invariants(const State& s);
// Always the full check, whatever the log says (and the log then starts over from it).
[[nodiscard]] std::vector<Violation> check_all_invariants(const State& s);
// INV-DEVICE-SAFE: for every (E, bfn, ...) -> mfn in h, E's device view of bfn is E's scratch
// page, or frame mfn and mfn is not free.
[[nodiscard]] std::vector<Violation> check_device_safe(const State& s, const Handed& h);
// Both: what `check invariants` and the runner check after every statement. Incremental like
// check_invariants(s); INV-DEVICE-SAFE then covers the entries of h at a touched entry (E, bfn),
// of a touched domain E, or whose frame or bfn (as a frame: the identity rule, no translation)
// the log recorded.
[[nodiscard]] std::vector<Violation> check_invariants(const State& s, const Handed& h);
// Both, always in full (INV-DEVICE-SAFE over all of h): what a run checks after its last
// statement, so that nothing an incremental check could miss goes unseen.
[[nodiscard]] std::vector<Violation> check_all_invariants(const State& s, const Handed& h);

// The canonical dump: sorted, stable text, one fact per line, only what differs from a fresh
// host (TRACE-FORMAT "Output").
[[nodiscard]] std::string dump(const State& s);

[[nodiscard]] std::string_view mode_name(IommuMode m);
[[nodiscard]] std::string_view kind_name(EntryKind k);
[[nodiscard]] std::string_view state_name(FrameState s);

}  // namespace spec
