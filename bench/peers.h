// bench/peers.h: the contenders of the benchmark behind one adapter interface.
//
// Each contender runs the same world: P pairs of domains, pair p being an emulator E_p (a guest
// domain with its own IOMMU context and `dm E_p over T_p`) and a target T_p with `frames` RAM
// frames and `servers` ioreq servers served by E_p. The host runs in strict IOMMU mode (no 1:1
// entries), so lookup_foreign_page only reads. Over that world every contender implements the
// same semantics for the four data-path operations (spec/pv-iommu.md R3, R4, R5, R7):
//   map_foreign    : a tuple (bfn, domid, ioserver) per map, one reference per tuple, C's entry
//                    at bfn foreign to the frame; -ENXIO without a P2M entry, -EEXIST when bfn is
//                    C's for another frame (or scratch);
//   lookup_foreign : the lowest bfn of a tuple of (domid, ioserver) on the frame, or -ENOENT;
//   unmap_foreign  : drops the tuple and its reference, and C's entry with the last user of bfn;
//                    a scratch entry is removed; else -ENOENT;
//   balloon        : the P2M entry goes, one invalidate per tuple in (bfn, domid, ioserver)
//                    order (buffered while the ring has 2 free slots, else synchronous),
//                    swap-flagged tuples go at once with their references and their bfns turn
//                    scratch when unused, the allocation reference is dropped; a frame is freed
//                    when its count reaches 0.
// bench/tests/peers_test.cpp checks every contender against ref on the same op sequence: the
// verdicts, the frames (observe) and every server's queues after each balloon (observe_servers).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "impl/atomic.h"
#include "spec/hypervisor.h"

namespace bench {

// Synchronisation counted per operation (issue 16: "atomic RMWs per operation, by op"), only in
// the counting build (-DPVIOMMU_COUNT_RMW=ON, a PUBLIC definition of pviommu_impl, so it reaches
// this library too): impl counts its atomic RMWs in impl::rmw_count(); the lock-based peers
// count their mutex acquisitions here. Both are per thread, so reading them around one call
// measures that call. In a normal build nothing is counted and the bench says so.
inline constexpr bool kCountSync = impl::kCountRmw;
inline thread_local std::uint64_t t_lock_count = 0;  // per thread: no sharing, no atomics
[[nodiscard]] inline std::uint64_t lock_count() { return t_lock_count; }
// A peer calls this where it acquires n mutexes (a no-op in a normal build).
inline void count_locks(std::uint64_t n) {
    if constexpr (kCountSync) t_lock_count += n;
}
// This thread's synchronisation events so far: impl's RMWs plus the peers' lock acquisitions
// (a contender has one or the other, never both; see Contender::unit).
[[nodiscard]] inline std::uint64_t sync_count() { return impl::rmw_count() + lock_count(); }

// What a contender's sync count measures.
enum class SyncUnit : std::uint8_t {
    rmw,    // impl: atomic RMWs issued through impl::Atomic (CAS, exchange, fetch_add/sub)
    locks,  // mutex acquisitions, all of them (ref+mutex, xen-style, urcu's node mutexes)
    none,   // not countable honestly: tbb and libcuckoo lock inside the library
};

struct WorldSpec {
    std::uint32_t pairs = 1;        // (emulator, target) pairs
    std::uint64_t frames = 1024;    // RAM frames per target
    std::uint16_t servers = 4;      // ioreq servers per target, all served by its emulator
    std::uint32_t ring_slots = 64;  // buffered ring slots per server (an invalidate takes 2)
};

// Names of the world, derived from WorldSpec the same way by every contender.
[[nodiscard]] inline spec::DomId emulator_of_pair(std::uint32_t p) {
    return spec::DomId{static_cast<std::uint16_t>(1 + 2 * p)};
}
[[nodiscard]] inline spec::DomId target_of_pair(std::uint32_t p) {
    return spec::DomId{static_cast<std::uint16_t>(2 + 2 * p)};
}
// Frames are given out lowest first at domain creation: target p's gfn g is mfn base + g.
[[nodiscard]] inline spec::Mfn mfn_of(const WorldSpec& w, std::uint32_t p, spec::Gfn g) {
    return spec::Mfn{p * w.frames + g.v};
}
[[nodiscard]] inline spec::Host host_of(const WorldSpec& w) {
    spec::Host h;
    h.mode = spec::IommuMode::strict;
    h.frames = w.pairs * w.frames + 64;
    return h;
}

// What a frame holds, observed at a quiescent point.
struct FrameObs {
    std::uint32_t count = 0;
    std::uint32_t tuples = 0;
    bool operator==(const FrameObs&) const = default;
};

// What an ioreq server's queues hold, observed at a quiescent point: the bfns of its invalidates
// in delivery order, those in the buffered ring and those sent synchronously (R7). Nothing in the
// bench drains them, so they hold every invalidate since setup.
struct ServerObs {
    std::vector<std::uint64_t> buffered, sync;
    bool operator==(const ServerObs&) const = default;
};
// A server's name: (target domid, ioserver id).
using ServerName = std::pair<std::uint16_t, std::uint16_t>;

// The adapter interface. Data-path calls may run concurrently from threads that called
// thread_begin(); setup and observation run at quiescent points.
class Adapter {
public:
    virtual ~Adapter() = default;
    [[nodiscard]] virtual std::string name() const = 0;
    // Creates the world (quiescent).
    virtual void setup(const WorldSpec& w) = 0;

    [[nodiscard]] virtual spec::Status map_foreign(spec::DomId c, spec::DomId t, spec::IoServId s,
                                                   spec::Bfn b, spec::Gfn g, bool swap,
                                                   spec::Bfn& out) = 0;
    [[nodiscard]] virtual spec::Status lookup_foreign(spec::DomId c, spec::DomId t,
                                                      spec::IoServId s, spec::Gfn g,
                                                      spec::Bfn& out) = 0;
    [[nodiscard]] virtual spec::Status unmap_foreign(spec::DomId c, spec::DomId t, spec::IoServId s,
                                                     spec::Bfn b) = 0;
    virtual spec::BalloonOutcome balloon(spec::DomId t, spec::Gfn g) = 0;

    // Every thread that calls the data path brackets its calls with these (liburcu QSBR
    // registration); quiescent() is called between operations now and then.
    virtual void thread_begin() {}
    virtual void thread_end() {}
    virtual void quiescent() {}

    // Quiescent, from a thread between thread_begin and thread_end: the frames that are not free,
    // with their counts and tuples.
    [[nodiscard]] virtual std::map<std::uint64_t, FrameObs> observe() = 0;
    // Quiescent: every ioreq server of the world with its queues (R7, F8: which invalidates each
    // server received, and in what order), so that peers_test catches a peer that delivers out of
    // F8 order or to the wrong server. The default (no servers) is for test fakes; against ref,
    // which lists every server, it fails peers_test.
    [[nodiscard]] virtual std::map<ServerName, ServerObs> observe_servers() { return {}; }
    // Quiescent: how many times frame m was freed, where the contender counts it.
    [[nodiscard]] virtual std::optional<std::uint32_t> times_freed(spec::Mfn) const {
        return std::nullopt;
    }
};

struct Contender {
    std::string name;
    std::function<std::unique_ptr<Adapter>()> make;
    SyncUnit unit = SyncUnit::none;
};

// impl, ref under a global mutex, xen-style, tbb, urcu, cuckoo, and v2-core (the bare frame-cell
// core: a bound on impl's lock-free design, never counted as a peer), in that order.
[[nodiscard]] std::vector<Contender> contenders();
// xen-style's and xen-flat's code with mutexes that do nothing: ONE thread only (a data race
// otherwise). Not peers: the lock ceiling (bench.cpp) compares each with its locked twin to
// measure what the locks cost. Each Contender is named after its locked peer; its adapter's
// name() is that name + "-nolock".
[[nodiscard]] std::vector<Contender> unlocked_twins();
// The bare v2 frame-cell core (impl/frame_cell.h) behind the bench's operations: a bound on the
// project's lock-free design, not a product (see peers.cpp, "v2-core"; bus addresses only in
// the bench's windows, at most 4 tuples per frame, no scratch removal).
[[nodiscard]] std::unique_ptr<Adapter> make_v2_core();
// ref without a lock: the oracle of the diff test.
[[nodiscard]] std::unique_ptr<Adapter> make_ref_unlocked();

}  // namespace bench
