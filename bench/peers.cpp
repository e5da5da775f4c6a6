// bench/peers.cpp: the contenders (see bench/peers.h for the shared semantics).
//
// The table-based peers (tbb, cuckoo, urcu) share one algorithm, TablePeer<Backend>, over three
// concurrent maps: P2M (target, gfn) -> mfn, frames mfn -> FrameRec (count, allocated, tuples
// sorted by (bfn, domid, ioserver)), and IOMMU entries (emulator, bfn) -> Ent.
// Locking protocol (the same for the three backends; the "lock" of a record is the backend's
// per-element exclusion: a TBB accessor, a libcuckoo bucket lock, a node mutex under urcu):
//  1. An operation that changes a frame's tuples or count holds the frame record's lock for the
//     whole change. Reason: the frame is what map, unmap and balloon of it have in common.
//  2. Under the frame lock it may take one IOMMU entry's lock, or erase a P2M entry; never the
//     reverse. Reason: one lock order (frame -> entry, frame -> P2M) cannot deadlock.
//  3. An entry foreign to frame m changes only under m's lock. Reason: unmap reads the entry
//     unlocked to find the frame, then re-reads it under the frame lock and retries if it moved.
//  4. map reads the P2M without the frame lock, then checks `allocated` under it: a balloon
//     that won the race cleared it, so the map reports -ENXIO as if it ran after the balloon.
//
// xen-style: one std::mutex per domain guarding that domain's structures (a target's P2M and its
// frames' M2B tuples in an std::unordered_multimap, an emulator's IOMMU context in an std::map);
// an operation takes the locks of the domains it touches with std::scoped_lock (deadlock-free).
#include "bench/peers.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <deque>
#include <mutex>
#include <span>
#include <tuple>
#include <unordered_map>
#include <utility>

// liburcu needs its flavour header before rculfhash.h: no reordering here.
// clang-format off
#include <libcuckoo/cuckoohash_map.hh>
#include <tbb/concurrent_hash_map.h>
#define URCU_API_MAP  // rcu_*, call_rcu, cds_lfht_new name the QSBR flavour
#include <urcu/urcu-qsbr.h>
#include <urcu/rculfhash.h>
// clang-format on

#include "impl/frame_cell.h"
#include "impl/hypervisor.h"
#include "ref/hypervisor.h"

namespace bench {

using namespace spec;

namespace {

constexpr std::uint8_t kRw = IOMMUOP_readable | IOMMUOP_writeable;

inline std::uint64_t mix(std::uint64_t k) {  // splitmix64 finaliser
    k ^= k >> 30;
    k *= 0xbf58476d1ce4e5b9ULL;
    k ^= k >> 27;
    k *= 0x94d049bb133111ebULL;
    return k ^ (k >> 31);
}
inline std::uint64_t key(DomId d, std::uint64_t n) { return std::uint64_t{d.v} << 48 | n; }

// ---------------------------------------------------------------------------------------------
// ref and impl through spec::Hypervisor.

template <bool Locked>
class SpecAdapter final : public Adapter {
public:
    using Make = std::unique_ptr<spec::Hypervisor> (*)(const Host&);
    SpecAdapter(std::string name, Make make) : name_(std::move(name)), make_(make) {}
    std::string name() const override { return name_; }
    void setup(const WorldSpec& w) override {
        hv_ = make_(host_of(w));
        for (std::uint32_t p = 0; p < w.pairs; ++p) {
            const DomId e = emulator_of_pair(p), t = target_of_pair(p);
            if (!hv_->create_domain(e, DomainRole::guest, true, 0) ||
                !hv_->create_domain(t, DomainRole::guest, false, w.frames))
                std::abort();
            hv_->grant_dm(e, t);
            for (std::uint16_t s = 0; s < w.servers; ++s)
                hv_->create_ioserver(t, IoServId{s}, e, w.ring_slots);
        }
    }
    Status map_foreign(DomId c, DomId t, IoServId s, Bfn b, Gfn g, bool swap, Bfn& out) override {
        MapForeignPage op;
        op.flags = Flags{static_cast<std::uint16_t>(kRw | (swap ? IOMMUOP_swap_mfn : 0))};
        op.bfn = b;
        op.gfn = g;
        op.domid = t;
        op.ioserver = s;
        const Status st = locked([&] { return hv_->map_foreign_page(c, op); });
        if (st == Status::ok) out = op.bfn;
        return st;
    }
    Status lookup_foreign(DomId c, DomId t, IoServId s, Gfn g, Bfn& out) override {
        LookupForeignPage op;
        op.gfn = g;
        op.domid = t;
        op.ioserver = s;
        const Status st = locked([&] { return hv_->lookup_foreign_page(c, op); });
        if (st == Status::ok) out = op.bfn;
        return st;
    }
    Status unmap_foreign(DomId c, DomId t, IoServId s, Bfn b) override {
        UnmapForeignPage op;
        op.bfn = b;
        op.domid = t;
        op.ioserver = s;
        return locked([&] { return hv_->unmap_foreign_page(c, op); });
    }
    BalloonOutcome balloon(DomId t, Gfn g) override {
        return locked([&] { return hv_->balloon(t, g); });
    }
    std::map<std::uint64_t, FrameObs> observe() override {
        const State s = hv_->snapshot();
        std::map<std::uint64_t, FrameObs> out;
        for (const auto& [m, f] : s.frames) out[m.v].count = f.count;
        for (const auto& [m, ts] : s.m2b) out[m.v].tuples = static_cast<std::uint32_t>(ts.size());
        return out;
    }
    // spec's State keeps both channels per server (IoServer::buffered, IoServer::sync), and the
    // bench never drains, so the snapshot holds every invalidate since setup in delivery order.
    std::map<ServerName, ServerObs> observe_servers() override {
        const State s = hv_->snapshot();
        std::map<ServerName, ServerObs> out;
        for (const auto& [k, srv] : s.servers) {
            ServerObs& o = out[{k.first.v, k.second.v}];
            for (const IoReq& r : srv.buffered) o.buffered.push_back(r.bfn.v);
            for (const IoReq& r : srv.sync) o.sync.push_back(r.bfn.v);
        }
        return out;
    }

private:
    template <class F>
    auto locked(F&& f) {
        if constexpr (Locked) {
            std::lock_guard g(mu_);
            count_locks(1);
            return f();
        } else {
            return f();
        }
    }
    std::string name_;
    Make make_;
    std::unique_ptr<spec::Hypervisor> hv_;
    std::mutex mu_;  // Locked: the one global lock around every call
};

// ---------------------------------------------------------------------------------------------
// The control plane of the peers: fixed after setup, read without synchronisation.

struct Srv {
    DomId emulator;
    std::uint32_t slots = 0;
    std::mutex mu;  // guards the queues
    std::deque<Bfn> buffered, sync;
};

struct TupleRec {
    std::uint64_t bfn;
    std::uint16_t domid, ioserver;
    bool swap;
    [[nodiscard]] auto k() const { return std::tie(bfn, domid, ioserver); }
};
// F8's order of a frame's tuples: (bfn, domid, ioserver).
void sort_f8(std::span<TupleRec> ts) {
    std::sort(ts.begin(), ts.end(),
              [](const TupleRec& x, const TupleRec& y) { return x.k() < y.k(); });
}

class PeerBase : public Adapter {
public:
    void setup(const WorldSpec& w) override {
        w_ = w;
        srv_.clear();
        for (std::uint32_t p = 0; p < w.pairs; ++p)
            for (std::uint16_t s = 0; s < w.servers; ++s) {
                auto srv = std::make_unique<Srv>();
                srv->emulator = emulator_of_pair(p);
                srv->slots = w.ring_slots;
                srv_.push_back(std::move(srv));
            }
        const std::uint64_t n = host_of(w).frames;
        freed_ = std::make_unique<std::atomic<std::uint32_t>[]>(n);
        for (std::uint64_t i = 0; i < n; ++i) freed_[i].store(0, std::memory_order_relaxed);
    }
    std::optional<std::uint32_t> times_freed(Mfn m) const override {
        return freed_[m.v].load(std::memory_order_relaxed);
    }
    // The Srv queues, read at a quiescent point (no data-path call runs: no lock needed).
    std::map<ServerName, ServerObs> observe_servers() override {
        std::map<ServerName, ServerObs> out;
        for (std::uint32_t p = 0; p < w_.pairs; ++p)
            for (std::uint16_t s = 0; s < w_.servers; ++s) {
                const Srv& srv = *srv_[p * w_.servers + s];
                ServerObs& o = out[{target_of_pair(p).v, s}];
                for (Bfn b : srv.buffered) o.buffered.push_back(b.v);
                for (Bfn b : srv.sync) o.sync.push_back(b.v);
            }
        return out;
    }

protected:
    [[nodiscard]] bool live(DomId d) const { return d.v >= 1 && d.v <= 2 * w_.pairs; }
    [[nodiscard]] bool is_target(DomId d) const { return live(d) && d.v % 2 == 0; }
    [[nodiscard]] std::uint32_t pair_of(DomId d) const { return (d.v - 1) / 2; }
    // usable(C): the emulators have iommu_hw, the targets do not.
    [[nodiscard]] bool usable(DomId c) const { return live(c) && c.v % 2 == 1; }
    [[nodiscard]] Srv* server(DomId t, IoServId s) const {
        if (!is_target(t) || s.v >= w_.servers) return nullptr;
        return srv_[pair_of(t) * w_.servers + s.v].get();
    }
    [[nodiscard]] DomId emulator_of(DomId t, IoServId s) const { return server(t, s)->emulator; }
    // R3's control-plane checks of a foreign op in ruled order; nullopt: they pass.
    [[nodiscard]] std::optional<Status> check_foreign(DomId c, DomId t, IoServId s) const {
        if (t == kDomIdSelf || t == c) return Status::eperm;  // foreign only
        if (!live(t)) return Status::enxio;                   // live domid
        if (!(is_target(t) && emulator_of_pair(pair_of(t)) == c)) return Status::eperm;  // dm
        const Srv* srv = server(t, s);
        if (srv == nullptr || srv->emulator != c) return Status::enodev;  // C's server
        return std::nullopt;
    }
    [[nodiscard]] std::optional<Gfn> gfn_range_ok(DomId t, Gfn g) const {
        if (!is_target(t) || g.v >= w_.frames) return std::nullopt;
        return g;
    }
    // R7: one invalidate to server (t, s); true if it went synchronous.
    bool deliver(DomId t, IoServId s, Bfn b) {
        Srv& srv = *server(t, s);
        std::unique_lock g(srv.mu, std::defer_lock);
        if (lock_servers_) {
            g.lock();
            count_locks(1);
        }
        if (srv.slots - 2 * srv.buffered.size() >= 2) {
            srv.buffered.push_back(b);
            return false;
        }
        srv.sync.push_back(b);
        return true;
    }
    // R7: a balloon's invalidates, one per tuple of its frame, given in F8 order (sort_f8),
    // counted into out.
    void announce(std::span<const TupleRec> ts, BalloonOutcome& out) {
        for (const TupleRec& r : ts) {
            if (deliver(DomId{r.domid}, IoServId{r.ioserver}, Bfn{r.bfn})) ++out.synchronous;
            ++out.invalidates;
        }
    }
    void freed(std::uint64_t m) { freed_[m].fetch_add(1, std::memory_order_relaxed); }

    WorldSpec w_;
    bool lock_servers_ = true;  // false only in xen-style-nolock (one thread: the lock ceiling)
    std::vector<std::unique_ptr<Srv>> srv_;
    std::unique_ptr<std::atomic<std::uint32_t>[]> freed_;  // per mfn: times freed (W3 check)
};

struct FrameRec {
    std::uint32_t count = 0;
    bool allocated = false;
    std::vector<TupleRec> t;  // sorted by (bfn, domid, ioserver): F8
};
enum : std::uint8_t { kNone = 0, kForeign = 1, kScratch = 2 };
struct Ent {
    std::uint8_t kind = kNone;
    std::uint8_t perms = 0;
    std::uint64_t mfn = 0;
};

// ---------------------------------------------------------------------------------------------
// TablePeer: the shared algorithm over a Backend's three maps (protocol at the top).

template <class Backend>
class TablePeer final : public PeerBase {
public:
    explicit TablePeer(std::string name) : name_(std::move(name)) {}
    std::string name() const override { return name_; }
    void thread_begin() override { Backend::thread_begin(); }
    void thread_end() override { Backend::thread_end(); }
    void quiescent() override { Backend::quiescent(); }

    void setup(const WorldSpec& w) override {
        PeerBase::setup(w);
        b_ = std::make_unique<Backend>(w.pairs * w.frames);
        for (std::uint32_t p = 0; p < w.pairs; ++p)
            for (std::uint64_t g = 0; g < w.frames; ++g) {
                const Mfn m = mfn_of(w, p, Gfn{g});
                b_->p2m_insert(key(target_of_pair(p), g), m.v);
                b_->frame_insert(m.v, FrameRec{1, true, {}});
            }
    }

    Status map_foreign(DomId c, DomId t, IoServId s, Bfn b, Gfn g, bool swap, Bfn& out) override {
        if (!usable(c)) return Status::eperm;              // R3: usable(C)
        if (auto st = check_foreign(c, t, s)) return *st;  // R3: control
        std::uint64_t m = 0;
        if (!b_->p2m_find(key(t, g.v), m)) return Status::enxio;  // R3: gfn
        const std::uint8_t perms = kRw;
        Status st = Status::enxio;  // the frame went (freed) after the P2M read: ballooned
        b_->frame_fn(m, [&](FrameRec& f) {
            if (!f.allocated) return false;  // ballooned: -ENXIO
            bool mine = false;               // F3: -EEXIST?
            const bool inserted =
                b_->entry_upsert(key(c, b.v), Ent{kForeign, perms, m}, [&](Ent& e) {
                    if (e.kind == kForeign && e.mfn == m) {
                        e.perms = perms;  // D3: last perms
                        mine = true;
                    }
                    return false;
                });
            if (!inserted && !mine) {
                st = Status::eexist;
                return false;
            }
            const TupleRec r{b.v, t.v, s.v, swap};
            auto it = std::lower_bound(
                f.t.begin(), f.t.end(), r,
                [](const TupleRec& x, const TupleRec& y) { return x.k() < y.k(); });
            if (it == f.t.end() || it->k() != r.k()) {  // new tuple: one ref
                f.t.insert(it, r);
                ++f.count;
            }
            st = Status::ok;
            return false;
        });
        if (st == Status::ok) out = b;
        return st;
    }

    Status lookup_foreign(DomId c, DomId t, IoServId s, Gfn g, Bfn& out) override {
        if (auto st = check_foreign(c, t, s)) return *st;  // R4(R3)
        std::uint64_t m = 0;
        if (!b_->p2m_find(key(t, g.v), m)) return Status::enxio;
        Status st = Status::enxio;
        b_->frame_fn(m, [&](FrameRec& f) {
            if (!f.allocated) return false;
            st = Status::enoent;
            for (const TupleRec& r : f.t)  // R4: lowest bfn
                if (r.domid == t.v && r.ioserver == s.v) {
                    out = Bfn{r.bfn};
                    st = Status::ok;
                    break;
                }
            return false;
        });
        return st;
    }

    Status unmap_foreign(DomId c, DomId t, IoServId s, Bfn b) override {
        const Srv* srv = server(t, s);
        const bool own = srv != nullptr && srv->emulator == c;  // F5: C's own tuple
        const std::uint64_t ek = key(c, b.v);
        for (;;) {
            const std::optional<Ent> e = b_->entry_find(ek);
            if (!e) return Status::enoent;
            if (e->kind == kScratch) {  // R5, F5: scratch
                bool gone = false;
                b_->entry_fn(ek, [&](Ent& x) { return gone = x.kind == kScratch; });
                if (gone) return Status::ok;
                continue;
            }
            if (!own) return Status::enoent;
            enum { kRetry, kOk, kNoTuple } res = kNoTuple;
            const bool found = b_->frame_fn(e->mfn, [&](FrameRec& f) {
                const std::optional<Ent> now = b_->entry_find(ek);  // protocol step 3
                if (!now || now->kind != kForeign || now->mfn != e->mfn) {
                    res = kRetry;
                    return false;
                }
                auto it = std::find_if(f.t.begin(), f.t.end(), [&](const TupleRec& r) {
                    return r.bfn == b.v && r.domid == t.v && r.ioserver == s.v;
                });
                if (it == f.t.end()) return false;  // F5: -ENOENT
                f.t.erase(it);                      // R5: tuple and ref
                res = kOk;
                const bool last = std::none_of(f.t.begin(), f.t.end(), [&](const TupleRec& r) {
                    return r.bfn == b.v && emulator_of(DomId{r.domid}, IoServId{r.ioserver}) == c;
                });
                if (last) b_->entry_fn(ek, [](Ent&) { return true; });  // R5: last user
                if (--f.count == 0) {                                   // R8: freed at 0
                    freed(e->mfn);
                    return true;
                }
                return false;
            });
            if (!found || res == kRetry) continue;
            return res == kOk ? Status::ok : Status::enoent;
        }
    }

    BalloonOutcome balloon(DomId t, Gfn g) override {
        std::uint64_t m = 0;
        if (!b_->p2m_find(key(t, g.v), m)) return {};  // R7: nothing
        BalloonOutcome out;
        b_->frame_fn(m, [&](FrameRec& f) {
            if (!f.allocated) return false;  // lost the race
            b_->p2m_erase(key(t, g.v));      // R7: P2M entry goes
            out.mfn = Mfn{m};
            announce(f.t, out);                                    // R7: f.t is kept in F8 order
            std::vector<std::pair<DomId, std::uint64_t>> swapped;  // R7, D13
            std::erase_if(f.t, [&](const TupleRec& r) {
                const DomId e = emulator_of(DomId{r.domid}, IoServId{r.ioserver});
                if (!r.swap || !usable(e)) return false;
                const auto ent = b_->entry_find(key(e, r.bfn));
                if (!ent || ent->kind != kForeign) return false;
                swapped.emplace_back(e, r.bfn);
                --f.count;
                return true;
            });
            for (const auto& [e, bfn] : swapped) {  // scratch if unused
                const bool used = std::any_of(f.t.begin(), f.t.end(), [&](const TupleRec& r) {
                    return r.bfn == bfn && emulator_of(DomId{r.domid}, IoServId{r.ioserver}) == e;
                });
                if (!used)
                    b_->entry_fn(key(e, bfn), [](Ent& x) {
                        if (x.kind == kForeign) x = Ent{kScratch, x.perms, 0};
                        return false;
                    });
            }
            f.allocated = false;  // allocation ref
            if (--f.count == 0) {
                freed(m);
                return true;
            }
            return false;
        });
        return out;
    }

    std::map<std::uint64_t, FrameObs> observe() override {
        std::map<std::uint64_t, FrameObs> out;
        const std::uint64_t n = w_.pairs * w_.frames;
        for (std::uint64_t m = 0; m < n; ++m)
            b_->frame_fn(m, [&](FrameRec& f) {
                out[m] = FrameObs{f.count, static_cast<std::uint32_t>(f.t.size())};
                return false;
            });
        return out;
    }

private:
    std::string name_;
    std::unique_ptr<Backend> b_;
};

// ---------------------------------------------------------------------------------------------
// Backends.

struct TbbHash {
    static std::size_t hash(std::uint64_t k) { return mix(k); }
    static bool equal(std::uint64_t a, std::uint64_t b) { return a == b; }
};

struct TbbBackend {
    template <class V>
    using Map = tbb::concurrent_hash_map<std::uint64_t, V, TbbHash>;
    Map<std::uint64_t> p2m;
    Map<FrameRec> frames;
    Map<Ent> iommu;
    explicit TbbBackend(std::uint64_t n) : p2m(n), frames(n), iommu(n) {}
    static void thread_begin() {}
    static void thread_end() {}
    static void quiescent() {}
    void p2m_insert(std::uint64_t k, std::uint64_t m) { p2m.insert({k, m}); }
    void frame_insert(std::uint64_t m, FrameRec f) { frames.insert({m, std::move(f)}); }
    bool p2m_find(std::uint64_t k, std::uint64_t& out) {
        typename Map<std::uint64_t>::const_accessor a;
        if (!p2m.find(a, k)) return false;
        out = a->second;
        return true;
    }
    void p2m_erase(std::uint64_t k) { p2m.erase(k); }
    template <class F>
    bool frame_fn(std::uint64_t m, F&& fn) {
        typename Map<FrameRec>::accessor a;
        if (!frames.find(a, m)) return false;
        if (fn(a->second)) frames.erase(a);
        return true;
    }
    template <class F>
    bool entry_upsert(std::uint64_t k, const Ent& desired, F&& fn) {
        typename Map<Ent>::accessor a;
        if (iommu.insert(a, k)) {
            a->second = desired;
            return true;
        }
        if (fn(a->second)) iommu.erase(a);
        return false;
    }
    template <class F>
    bool entry_fn(std::uint64_t k, F&& fn) {
        typename Map<Ent>::accessor a;
        if (!iommu.find(a, k)) return false;
        if (fn(a->second)) iommu.erase(a);
        return true;
    }
    std::optional<Ent> entry_find(std::uint64_t k) {
        typename Map<Ent>::const_accessor a;
        if (!iommu.find(a, k)) return std::nullopt;
        return a->second;
    }
};

struct MixHash {
    std::size_t operator()(std::uint64_t k) const { return mix(k); }
};

struct CuckooBackend {
    template <class V>
    using Map = libcuckoo::cuckoohash_map<std::uint64_t, V, MixHash>;
    Map<std::uint64_t> p2m;
    Map<FrameRec> frames;
    Map<Ent> iommu;
    explicit CuckooBackend(std::uint64_t n) : p2m(n), frames(n), iommu(n) {}
    static void thread_begin() {}
    static void thread_end() {}
    static void quiescent() {}
    void p2m_insert(std::uint64_t k, std::uint64_t m) { p2m.insert(k, m); }
    void frame_insert(std::uint64_t m, FrameRec f) { frames.insert(m, std::move(f)); }
    bool p2m_find(std::uint64_t k, std::uint64_t& out) { return p2m.find(k, out); }
    void p2m_erase(std::uint64_t k) { p2m.erase(k); }
    template <class F>
    bool frame_fn(std::uint64_t m, F&& fn) {
        return frames.erase_fn(m, [&](FrameRec& f) { return fn(f); });
    }
    template <class F>
    bool entry_upsert(std::uint64_t k, const Ent& desired, F&& fn) {
        return iommu.uprase_fn(
            k, [&](Ent& e) { return fn(e); }, desired);
    }
    template <class F>
    bool entry_fn(std::uint64_t k, F&& fn) {
        return iommu.erase_fn(k, [&](Ent& e) { return fn(e); });
    }
    std::optional<Ent> entry_find(std::uint64_t k) {
        Ent e;
        if (!iommu.find(k, e)) return std::nullopt;
        return e;
    }
};

// liburcu QSBR: a cds_lfht of nodes, each with its own mutex guarding its value. A node is
// removed (cds_lfht_del) under its mutex with `dead` set, and freed by call_rcu after a grace
// period; a thread that locks a dead node looks it up again.
template <class V>
class LfMap {
public:
    explicit LfMap(std::uint64_t n) {
        unsigned long init = 1;
        while (init < n && init < (1UL << 22)) init <<= 1;
        // Never below the size hint (as tbb and libcuckoo are sized): without it, the teardown's
        // deletes shrink the table step by step, which cost most of a full run's urcu time.
        ht_ = cds_lfht_new(init, init, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, nullptr);
    }
    ~LfMap() {  // quiescent; the calling thread is not registered
        rcu_register_thread();
        cds_lfht_iter it;
        cds_lfht_node* n;
        std::vector<Node*> all;
        cds_lfht_for_each(ht_, &it, n) {
            if (cds_lfht_del(ht_, n) == 0) all.push_back(caa_container_of(n, Node, n));
        }
        rcu_unregister_thread();
        for (Node* x : all) delete x;
        rcu_barrier();  // pending call_rcu frees
        cds_lfht_destroy(ht_, nullptr);
    }
    LfMap(const LfMap&) = delete;
    LfMap& operator=(const LfMap&) = delete;

    void insert(std::uint64_t k, V v) {
        Node* x = new Node(k, std::move(v));
        if (cds_lfht_add_unique(ht_, mix(k), match, &x->key, &x->n) != &x->n) delete x;
    }
    template <class F>
    bool fn(std::uint64_t k, F&& f) {
        Node* x = find_locked(k);
        if (x == nullptr) return false;
        finish(x, f(x->v));
        return true;
    }
    template <class F>
    bool upsert(std::uint64_t k, const V& desired, F&& f) {
        for (;;) {
            if (Node* x = find_locked(k)) {
                finish(x, f(x->v));
                return false;
            }
            Node* y = new Node(k, desired);
            if (cds_lfht_add_unique(ht_, mix(k), match, &y->key, &y->n) == &y->n) return true;
            delete y;  // lost a race with another insert: use its node
        }
    }
    std::optional<V> find(std::uint64_t k) {
        Node* x = find_locked(k);
        if (x == nullptr) return std::nullopt;
        V v = x->v;
        x->mu.unlock();
        return v;
    }
    bool erase(std::uint64_t k) {
        return fn(k, [](V&) { return true; });
    }

private:
    struct Node {
        Node(std::uint64_t k, V val) : key(k), v(std::move(val)) { cds_lfht_node_init(&n); }
        cds_lfht_node n;
        rcu_head rh;
        std::uint64_t key;
        std::mutex mu;      // guards dead and v
        bool dead = false;  // removed from the table
        V v;
    };
    static int match(cds_lfht_node* n, const void* k) {
        return caa_container_of(n, Node, n)->key == *static_cast<const std::uint64_t*>(k);
    }
    // The live node of k, locked; nullptr if none. Requires a registered, online thread.
    Node* find_locked(std::uint64_t k) {
        for (;;) {
            cds_lfht_iter it;
            rcu_read_lock();
            cds_lfht_lookup(ht_, mix(k), match, &k, &it);
            cds_lfht_node* n = cds_lfht_iter_get_node(&it);
            rcu_read_unlock();  // QSBR: a no-op; the node stays valid until our next quiescent
                                // state
            if (n == nullptr) return nullptr;
            Node* x = caa_container_of(n, Node, n);
            x->mu.lock();
            count_locks(1);
            if (!x->dead) return x;
            x->mu.unlock();
        }
    }
    void finish(Node* x, bool erase) {
        if (erase) {
            x->dead = true;
            (void)cds_lfht_del(ht_, &x->n);
            x->mu.unlock();
            call_rcu(&x->rh, [](rcu_head* h) { delete caa_container_of(h, Node, rh); });
        } else {
            x->mu.unlock();
        }
    }
    cds_lfht* ht_;
};

struct UrcuBackend {
    LfMap<std::uint64_t> p2m;
    LfMap<FrameRec> frames;
    LfMap<Ent> iommu;
    explicit UrcuBackend(std::uint64_t n) : p2m(n), frames(n), iommu(n) {}
    static void thread_begin() { rcu_register_thread(); }
    static void thread_end() { rcu_unregister_thread(); }
    static void quiescent() { rcu_quiescent_state(); }
    void p2m_insert(std::uint64_t k, std::uint64_t m) { p2m.insert(k, m); }
    void frame_insert(std::uint64_t m, FrameRec f) { frames.insert(m, std::move(f)); }
    bool p2m_find(std::uint64_t k, std::uint64_t& out) {
        const auto v = p2m.find(k);
        if (v) out = *v;
        return v.has_value();
    }
    void p2m_erase(std::uint64_t k) { (void)p2m.erase(k); }
    template <class F>
    bool frame_fn(std::uint64_t m, F&& fn) {
        return frames.fn(m, fn);
    }
    template <class F>
    bool entry_upsert(std::uint64_t k, const Ent& desired, F&& fn) {
        return iommu.upsert(k, desired, fn);
    }
    template <class F>
    bool entry_fn(std::uint64_t k, F&& fn) {
        return iommu.fn(k, fn);
    }
    std::optional<Ent> entry_find(std::uint64_t k) { return iommu.find(k); }
};

// ---------------------------------------------------------------------------------------------
// xen-style: one lock per domain.

// unmap_foreign_page's locks in xen-style and xen-flat: the emulator's, and the target's too when
// the op may drop a tuple (t: the target's mutex when C serves the server, else null). Both at
// once with std::lock (deadlock-free against map's std::scoped_lock of the same two).
template <class Mutex>
std::pair<std::unique_lock<Mutex>, std::unique_lock<Mutex>> unmap_locks(Mutex& e, Mutex* t) {
    std::unique_lock<Mutex> le(e, std::defer_lock), lt;
    if (t != nullptr) {
        lt = std::unique_lock<Mutex>(*t, std::defer_lock);
        std::lock(le, lt);
        count_locks(2);
    } else {
        le.lock();
        count_locks(1);
    }
    return {std::move(le), std::move(lt)};
}

// A mutex that does nothing: xen-style's code without its synchronisation, for the lock
// ceiling (bench.cpp, "lock ceiling"): one thread only, never a peer.
struct NoMutex {
    void lock() {}
    void unlock() {}
    bool try_lock() { return true; }
};

template <class Mutex>
class XenStyle final : public PeerBase {
public:
    static constexpr bool kLocked = !std::is_same_v<Mutex, NoMutex>;
    std::string name() const override { return kLocked ? "xen-style" : "xen-style-nolock"; }
    void setup(const WorldSpec& w) override {
        PeerBase::setup(w);
        lock_servers_ = kLocked;
        doms_.clear();
        for (std::uint32_t d = 0; d <= 2 * w.pairs; ++d) doms_.push_back(std::make_unique<Dom>());
        frames_.assign(host_of(w).frames, XFrame{});
        for (std::uint32_t p = 0; p < w.pairs; ++p) {
            Dom& t = *doms_[target_of_pair(p).v];
            t.p2m.resize(w.frames);
            for (std::uint64_t g = 0; g < w.frames; ++g) {
                const Mfn m = mfn_of(w, p, Gfn{g});
                t.p2m[g] = m.v + 1;
                frames_[m.v] = XFrame{1, true};
            }
        }
    }
    Status map_foreign(DomId c, DomId t, IoServId s, Bfn b, Gfn g, bool swap, Bfn& out) override {
        if (!usable(c)) return Status::eperm;
        if (auto st = check_foreign(c, t, s)) return *st;
        Dom &E = *doms_[c.v], &T = *doms_[t.v];
        std::scoped_lock lk(E.mu, T.mu);
        count_locks(2);
        if (g.v >= T.p2m.size() || T.p2m[g.v] == 0) return Status::enxio;
        const std::uint64_t m = T.p2m[g.v] - 1;
        auto [it, fresh] = E.iommu.try_emplace(b.v, Ent{kForeign, kRw, m});
        if (!fresh) {
            if (!(it->second.kind == kForeign && it->second.mfn == m)) return Status::eexist;
            it->second.perms = kRw;
        }
        auto [lo, hi] = T.m2b.equal_range(m);
        const bool have = std::any_of(lo, hi, [&](const auto& kv) {
            return kv.second.bfn == b.v && kv.second.domid == t.v && kv.second.ioserver == s.v;
        });
        if (!have) {
            T.m2b.emplace(m, TupleRec{b.v, t.v, s.v, swap});
            ++frames_[m].count;
        }
        out = b;
        return Status::ok;
    }
    Status lookup_foreign(DomId c, DomId t, IoServId s, Gfn g, Bfn& out) override {
        if (auto st = check_foreign(c, t, s)) return *st;
        Dom& T = *doms_[t.v];
        std::lock_guard lk(T.mu);
        count_locks(1);
        if (g.v >= T.p2m.size() || T.p2m[g.v] == 0) return Status::enxio;
        const std::uint64_t m = T.p2m[g.v] - 1;
        std::optional<std::uint64_t> best;
        auto [lo, hi] = T.m2b.equal_range(m);
        for (auto it = lo; it != hi; ++it)
            if (it->second.domid == t.v && it->second.ioserver == s.v &&
                (!best || it->second.bfn < *best))
                best = it->second.bfn;
        if (!best) return Status::enoent;
        out = Bfn{*best};
        return Status::ok;
    }
    Status unmap_foreign(DomId c, DomId t, IoServId s, Bfn b) override {
        const Srv* srv = server(t, s);
        const bool own = srv != nullptr && srv->emulator == c;
        if (!live(c)) return Status::enoent;
        Dom& E = *doms_[c.v];
        const auto locks = unmap_locks(E.mu, own ? &doms_[t.v]->mu : nullptr);
        auto e = E.iommu.find(b.v);
        if (e == E.iommu.end()) return Status::enoent;
        if (e->second.kind == kScratch) {
            E.iommu.erase(e);
            return Status::ok;
        }
        if (!own) return Status::enoent;
        Dom& T = *doms_[t.v];
        const std::uint64_t m = e->second.mfn;
        auto [lo, hi] = T.m2b.equal_range(m);
        auto it = std::find_if(lo, hi, [&](const auto& kv) {
            return kv.second.bfn == b.v && kv.second.domid == t.v && kv.second.ioserver == s.v;
        });
        if (it == hi) return Status::enoent;
        T.m2b.erase(it);
        auto [lo2, hi2] = T.m2b.equal_range(m);
        const bool last = std::none_of(lo2, hi2, [&](const auto& kv) {
            return kv.second.bfn == b.v &&
                   emulator_of(DomId{kv.second.domid}, IoServId{kv.second.ioserver}) == c;
        });
        if (last) E.iommu.erase(e);
        put(m);
        return Status::ok;
    }
    BalloonOutcome balloon(DomId t, Gfn g) override {
        if (!is_target(t)) return {};
        Dom &T = *doms_[t.v], &E = *doms_[emulator_of_pair(pair_of(t)).v];  // T's servers' emulator
        std::scoped_lock lk(E.mu, T.mu);
        count_locks(2);
        if (g.v >= T.p2m.size() || T.p2m[g.v] == 0) return {};
        const std::uint64_t m = T.p2m[g.v] - 1;
        T.p2m[g.v] = 0;
        BalloonOutcome out;
        out.mfn = Mfn{m};
        auto [lo, hi] = T.m2b.equal_range(m);
        std::vector<TupleRec> ts;
        for (auto it = lo; it != hi; ++it) ts.push_back(it->second);
        sort_f8(ts);
        announce(ts, out);
        std::vector<std::uint64_t> swapped;
        for (auto it = lo; it != hi;) {
            const TupleRec& r = it->second;
            auto ent = E.iommu.find(r.bfn);
            if (r.swap && ent != E.iommu.end() && ent->second.kind == kForeign) {
                swapped.push_back(r.bfn);
                it = T.m2b.erase(it);
                put(m);
            } else {
                ++it;
            }
        }
        for (std::uint64_t bfn : swapped) {
            auto [l, h] = T.m2b.equal_range(m);
            const bool used =
                std::any_of(l, h, [&](const auto& kv) { return kv.second.bfn == bfn; });
            auto ent = E.iommu.find(bfn);
            if (!used && ent != E.iommu.end() && ent->second.kind == kForeign)
                ent->second = Ent{kScratch, ent->second.perms, 0};
        }
        frames_[m].allocated = false;
        put(m);
        return out;
    }
    std::map<std::uint64_t, FrameObs> observe() override {
        std::map<std::uint64_t, FrameObs> out;
        for (std::uint64_t m = 0; m < frames_.size(); ++m)
            if (frames_[m].count != 0) out[m].count = frames_[m].count;
        for (const auto& d : doms_)
            for (const auto& [m, r] : d->m2b) ++out[m].tuples;
        return out;
    }

private:
    struct XFrame {
        std::uint32_t count = 0;  // guarded by the owner's lock
        bool allocated = false;
    };
    struct Dom {
        Mutex mu;
        std::vector<std::uint64_t> p2m;                        // target: gfn -> mfn + 1, 0 none
        std::unordered_multimap<std::uint64_t, TupleRec> m2b;  // target: its frames' tuples
        std::map<std::uint64_t, Ent> iommu;                    // emulator: bfn -> entry
    };
    void put(std::uint64_t m) {  // caller holds the owner's lock
        if (--frames_[m].count == 0) freed(m);
    }
    std::vector<std::unique_ptr<Dom>> doms_;  // index: domid
    std::vector<XFrame> frames_;
};

// ---------------------------------------------------------------------------------------------
// Flat layouts (v2-core, xen-flat): an IOMMU context is an array indexed by a bus-address slot.
// The slots cover the bench's windows (bench.cpp kBase and kBase2, one slot per frame each) and
// peers_test's (0x10000 + 0..63); any other bus address is a bench bug.
struct BfnWindows {
    static constexpr std::uint64_t kWin1 = 0x10000000, kWin2 = 0x20000000, kWinTest = 0x10000;
    static constexpr std::uint64_t kTestWindow = 64;
    std::uint64_t frames;  // per target (WorldSpec::frames)
    [[nodiscard]] std::uint64_t slots() const { return 2 * frames + kTestWindow; }
    [[nodiscard]] std::uint64_t slot(Bfn b) const {
        if (b.v >= kWin2 && b.v - kWin2 < frames) return frames + (b.v - kWin2);
        if (b.v >= kWin1 && b.v - kWin1 < frames) return b.v - kWin1;
        if (b.v >= kWinTest && b.v - kWinTest < kTestWindow) return 2 * frames + (b.v - kWinTest);
        std::abort();  // outside every window: a bench bug, not a status
    }
    [[nodiscard]] Bfn bfn(std::uint64_t i) const {
        return Bfn{i < frames       ? kWin1 + i
                   : i < 2 * frames ? kWin2 + i - frames
                                    : kWinTest + i - 2 * frames};
    }
};

// ---------------------------------------------------------------------------------------------
// xen-flat: xen-style's locking (a std::mutex per domain, std::scoped_lock over the domains an op
// touches) over v2-core's layout: a frame's count, allocation and tuples in one array slot
// indexed by mfn (the tuples in a small vector), an emulator's IOMMU context as an array indexed
// by bus-address slot (BfnWindows), the P2M as xen-style's. The lock-based twin of v2-core:
// v2-core / xen-flat is what lock-freedom alone buys with the data layout held equal. A peer
// like the others (checked against ref by peers_test on its random sequence).
template <class Mutex>
class XenFlat final : public PeerBase {
public:
    static constexpr bool kLocked = !std::is_same_v<Mutex, NoMutex>;
    std::string name() const override { return kLocked ? "xen-flat" : "xen-flat-nolock"; }
    void setup(const WorldSpec& w) override {
        PeerBase::setup(w);
        lock_servers_ = kLocked;
        doms_.clear();
        for (std::uint32_t d = 0; d <= 2 * w.pairs; ++d) doms_.push_back(std::make_unique<Dom>());
        frames_.assign(host_of(w).frames, FFrame{});
        for (std::uint32_t p = 0; p < w.pairs; ++p) {
            doms_[emulator_of_pair(p).v]->iommu.assign(BfnWindows{w.frames}.slots(), Ent{});
            Dom& t = *doms_[target_of_pair(p).v];
            t.p2m.resize(w.frames);
            for (std::uint64_t g = 0; g < w.frames; ++g) {
                const Mfn m = mfn_of(w, p, Gfn{g});
                t.p2m[g] = m.v + 1;
                frames_[m.v].count = 1;
                frames_[m.v].allocated = true;
            }
        }
    }
    Status map_foreign(DomId c, DomId t, IoServId s, Bfn b, Gfn g, bool swap, Bfn& out) override {
        if (!usable(c)) return Status::eperm;
        if (auto st = check_foreign(c, t, s)) return *st;
        Dom &E = *doms_[c.v], &T = *doms_[t.v];
        std::scoped_lock lk(E.mu, T.mu);
        count_locks(2);
        if (g.v >= T.p2m.size() || T.p2m[g.v] == 0) return Status::enxio;
        const std::uint64_t m = T.p2m[g.v] - 1;
        Ent& e = E.iommu[slot(b)];
        if (e.kind == kNone)
            e = Ent{kForeign, kRw, m};
        else if (e.kind == kForeign && e.mfn == m)
            e.perms = kRw;
        else
            return Status::eexist;
        FFrame& f = frames_[m];
        if (find(f, b.v, t.v, s.v) == f.t.end()) {
            f.t.push_back(TupleRec{b.v, t.v, s.v, swap});
            ++f.count;
        }
        out = b;
        return Status::ok;
    }
    Status lookup_foreign(DomId c, DomId t, IoServId s, Gfn g, Bfn& out) override {
        if (auto st = check_foreign(c, t, s)) return *st;
        Dom& T = *doms_[t.v];
        std::lock_guard lk(T.mu);
        count_locks(1);
        if (g.v >= T.p2m.size() || T.p2m[g.v] == 0) return Status::enxio;
        std::optional<std::uint64_t> best;
        for (const TupleRec& r : frames_[T.p2m[g.v] - 1].t)
            if (r.domid == t.v && r.ioserver == s.v && (!best || r.bfn < *best)) best = r.bfn;
        if (!best) return Status::enoent;
        out = Bfn{*best};
        return Status::ok;
    }
    Status unmap_foreign(DomId c, DomId t, IoServId s, Bfn b) override {
        const Srv* srv = server(t, s);
        const bool own = srv != nullptr && srv->emulator == c;
        if (!live(c)) return Status::enoent;
        Dom& E = *doms_[c.v];
        const auto locks = unmap_locks(E.mu, own ? &doms_[t.v]->mu : nullptr);
        if (E.iommu.empty()) return Status::enoent;  // not an emulator: no context here
        Ent& e = E.iommu[slot(b)];
        if (e.kind == kNone) return Status::enoent;
        if (e.kind == kScratch) {
            e = Ent{};
            return Status::ok;
        }
        if (!own) return Status::enoent;
        FFrame& f = frames_[e.mfn];
        auto it = find(f, b.v, t.v, s.v);
        if (it == f.t.end()) return Status::enoent;
        f.t.erase(it);
        const bool last = std::none_of(f.t.begin(), f.t.end(), [&](const TupleRec& r) {
            return r.bfn == b.v && emulator_of(DomId{r.domid}, IoServId{r.ioserver}) == c;
        });
        const std::uint64_t m = e.mfn;
        if (last) e = Ent{};
        put(m);
        return Status::ok;
    }
    BalloonOutcome balloon(DomId t, Gfn g) override {
        if (!is_target(t)) return {};
        Dom &T = *doms_[t.v], &E = *doms_[emulator_of_pair(pair_of(t)).v];  // T's servers' emulator
        std::scoped_lock lk(E.mu, T.mu);
        count_locks(2);
        if (g.v >= T.p2m.size() || T.p2m[g.v] == 0) return {};
        const std::uint64_t m = T.p2m[g.v] - 1;
        T.p2m[g.v] = 0;
        BalloonOutcome out;
        out.mfn = Mfn{m};
        FFrame& f = frames_[m];
        sort_f8(f.t);
        announce(f.t, out);
        std::vector<std::uint64_t> swapped;
        std::erase_if(f.t, [&](const TupleRec& r) {
            if (!(r.swap && E.iommu[slot(Bfn{r.bfn})].kind == kForeign)) return false;
            swapped.push_back(r.bfn);
            return true;
        });
        f.count -= static_cast<std::uint32_t>(swapped.size());  // the swapped tuples' references
        for (std::uint64_t bfn : swapped) {
            Ent& e = E.iommu[slot(Bfn{bfn})];
            const bool used = std::any_of(f.t.begin(), f.t.end(),
                                          [&](const TupleRec& r) { return r.bfn == bfn; });
            if (!used && e.kind == kForeign) e = Ent{kScratch, e.perms, 0};
        }
        f.allocated = false;
        put(m);  // the allocation reference
        return out;
    }
    std::map<std::uint64_t, FrameObs> observe() override {
        std::map<std::uint64_t, FrameObs> out;
        for (std::uint64_t m = 0; m < frames_.size(); ++m) {
            if (frames_[m].count != 0) out[m].count = frames_[m].count;
            if (!frames_[m].t.empty())
                out[m].tuples = static_cast<std::uint32_t>(frames_[m].t.size());
        }
        return out;
    }

private:
    struct FFrame {
        std::uint32_t count = 0;  // guarded by the owner's lock, as the rest of the slot
        bool allocated = false;
        std::vector<TupleRec> t;
    };
    struct Dom {
        Mutex mu;
        std::vector<std::uint64_t> p2m;  // target: gfn -> mfn + 1, 0 none
        std::vector<Ent> iommu;          // emulator: by bus-address slot (BfnWindows)
    };
    [[nodiscard]] std::uint64_t slot(Bfn b) const { return BfnWindows{w_.frames}.slot(b); }
    static std::vector<TupleRec>::iterator find(FFrame& f, std::uint64_t b, std::uint16_t t,
                                                std::uint16_t s) {
        return std::find_if(f.t.begin(), f.t.end(), [&](const TupleRec& r) {
            return r.bfn == b && r.domid == t && r.ioserver == s;
        });
    }
    void put(std::uint64_t m) {  // caller holds the owner's lock
        if (--frames_[m].count == 0) freed(m);
    }
    std::vector<std::unique_ptr<Dom>> doms_;  // index: domid
    std::vector<FFrame> frames_;              // index: mfn; guarded by the owner's lock
};

// ---------------------------------------------------------------------------------------------
// v2-core: the bare frame-cell core of impl/frame_cell.h (issue 16's lock-free design, 3 atomic
// RMWs per map or unmap, model-checked under Relacy) behind the bench's four operations. It is a
// BOUND, not a product: the control-plane checks are PeerBase's (as every table peer's), the
// IOMMU and P2M are flat arrays (no radix), there are no fault points, quotas, IOTLB flushes or
// R12 scratch removal, and a frame holds at most kMaxHolders = 4 tuples. Bus addresses must lie
// in the bench's windows (bfn_slot). It answers one question in the same run as the peers: how
// fast the best lock-free design of this project is where it applies (W1, W2, W3, W4), so the
// ratio a wired-in v2 could reach has a measured ceiling. bench/tests/peers_test.cpp checks it
// against ref on the bench's op shapes.
class CellPeer final : public PeerBase {
public:
    std::string name() const override { return "v2-core"; }
    void setup(const WorldSpec& w) override {
        PeerBase::setup(w);
        impl::v2::CellConfig cfg;
        cfg.frames = static_cast<std::uint32_t>(host_of(w).frames);
        cfg.doms = 2 * w.pairs + 1;
        cfg.gfns = static_cast<std::uint32_t>(w.frames);
        cfg.bfns = static_cast<std::uint32_t>(BfnWindows{w.frames}.slots());
        // Every frame's record, and magazines and in-flight ones for up to 64 threads.
        cfg.records = cfg.frames + 64 * 16 + 16;
        cfg.descs = 64 * 8 + 16;
        core_ = std::make_unique<impl::v2::CellCore>(cfg);
        for (std::uint32_t p = 0; p < w.pairs; ++p)
            for (std::uint64_t g = 0; g < w.frames; ++g)
                core_->seed(static_cast<std::uint32_t>(mfn_of(w, p, Gfn{g}).v), target_of_pair(p).v,
                            g);
    }
    Status map_foreign(DomId c, DomId t, IoServId s, Bfn b, Gfn g, bool swap, Bfn& out) override {
        if (!usable(c)) return Status::eperm;
        if (auto st = check_foreign(c, t, s)) return *st;
        if (!gfn_range_ok(t, g)) return Status::enxio;
        const Status st = status(core_->map_foreign(c.v, bfn_slot(b), t.v, s.v, g.v, kRw, swap));
        if (st == Status::ok) out = b;
        return st;
    }
    Status lookup_foreign(DomId c, DomId t, IoServId s, Gfn g, Bfn& out) override {
        if (auto st = check_foreign(c, t, s)) return *st;
        if (!gfn_range_ok(t, g)) return Status::enxio;
        std::uint64_t slot = 0;
        const Status st = status(core_->lookup(t.v, s.v, g.v, &slot));
        if (st == Status::ok) out = slot_bfn(slot);
        return st;
    }
    Status unmap_foreign(DomId c, DomId t, IoServId s, Bfn b) override {
        const Srv* srv = server(t, s);
        if (!live(c) || srv == nullptr || srv->emulator != c) return Status::enoent;
        std::uint32_t m = 0;
        const Status st = status(core_->unmap_foreign(c.v, bfn_slot(b), t.v, s.v, &m));
        if (st == Status::ok) put(m, 1);  // R11: no device here, so no flush before the put
        return st;
    }
    BalloonOutcome balloon(DomId t, Gfn g) override {
        if (!is_target(t) || !gfn_range_ok(t, g)) return {};
        std::uint32_t m = 0, refs = 0, n = 0;
        std::uint64_t hb[impl::v2::kMaxHolders], hw[impl::v2::kMaxHolders];
        if (core_->balloon(t.v, g.v, &m, &refs, hb, hw, &n) != impl::v2::St::ok) return {};
        BalloonOutcome out;
        out.mfn = Mfn{m};
        std::array<TupleRec, impl::v2::kMaxHolders> ts{};
        for (std::uint32_t i = 0; i < n; ++i)
            ts[i] = TupleRec{slot_bfn(hb[i]).v, impl::v2::holder_domid(hw[i]),
                             impl::v2::holder_ioserver(hw[i]), false};
        sort_f8(std::span(ts).first(n));
        announce(std::span(ts).first(n), out);
        put(m, refs);
        return out;
    }
    std::map<std::uint64_t, FrameObs> observe() override {
        std::map<std::uint64_t, FrameObs> out;
        for (std::uint32_t m = 0; m < core_->config().frames; ++m) {
            const impl::v2::Snap s = core_->snap(m);
            // A deferred reference (R11: its holder is gone, its put waits for a flush) still
            // holds the frame: it is part of the count ref reports.
            if (s.free() || s.h.count + s.h.deferred == 0) continue;
            out[m].count = s.h.count + s.h.deferred;
            for (std::uint32_t i = 0; i < s.n; ++i)
                out[m].tuples += (s.hw[i] & impl::v2::kHolderLocal) == 0 ? 1 : 0;
        }
        return out;
    }

private:
    [[nodiscard]] std::uint64_t bfn_slot(Bfn b) const { return BfnWindows{w_.frames}.slot(b); }
    [[nodiscard]] Bfn slot_bfn(std::uint64_t i) const { return BfnWindows{w_.frames}.bfn(i); }
    static Status status(impl::v2::St st) {
        switch (st) {
            case impl::v2::St::ok:
                return Status::ok;
            case impl::v2::St::enxio:
            case impl::v2::St::none:
                return Status::enxio;
            case impl::v2::St::eexist:
                return Status::eexist;
            case impl::v2::St::enoent:
                return Status::enoent;
            case impl::v2::St::eperm:
                return Status::eperm;
        }
        return Status::einval;
    }
    // R11 step 7: the deferred references go; count the free if this put freed the frame.
    // A balloon with no tuple frees its frame in its own cell CAS (k == 0): read from the cell
    // (the bench populates nothing, so a free cell is that balloon's).
    void put(std::uint32_t m, std::uint32_t k) {
        bool frees = false;
        if (k != 0) {
            const bool ok = core_->put_deferred(m, k, &frees);
            assert(ok);
            (void)ok;
        } else {
            frees = core_->snap(m).free();
        }
        if (frees) freed(m);
    }
    std::unique_ptr<impl::v2::CellCore> core_;
};

}  // namespace

std::vector<Contender> contenders() {
    return {
        {"impl", [] { return std::make_unique<SpecAdapter<false>>("impl", &impl::make); },
         SyncUnit::rmw},
        {"ref+mutex", [] { return std::make_unique<SpecAdapter<true>>("ref+mutex", &ref::make); },
         SyncUnit::locks},
        {"xen-style", [] { return std::make_unique<XenStyle<std::mutex>>(); }, SyncUnit::locks},
        // tbb and libcuckoo take bucket and element locks inside the library: not counted.
        {"tbb", [] { return std::make_unique<TablePeer<TbbBackend>>("tbb"); }, SyncUnit::none},
        // urcu: the node mutexes and the servers' queue mutexes; liburcu's own CAS is not counted.
        {"urcu", [] { return std::make_unique<TablePeer<UrcuBackend>>("urcu"); }, SyncUnit::locks},
        {"cuckoo", [] { return std::make_unique<TablePeer<CuckooBackend>>("cuckoo"); },
         SyncUnit::none},
        {"xen-flat", [] { return std::make_unique<XenFlat<std::mutex>>(); }, SyncUnit::locks},
        // Not a peer: the bare lock-free core, a bound on impl's design (bench.cpp is_peer).
        {"v2-core", [] { return make_v2_core(); }, SyncUnit::rmw},
    };
}

std::unique_ptr<Adapter> make_v2_core() { return std::make_unique<CellPeer>(); }

std::vector<Contender> unlocked_twins() {
    return {{"xen-style", [] { return std::make_unique<XenStyle<NoMutex>>(); }, SyncUnit::none},
            {"xen-flat", [] { return std::make_unique<XenFlat<NoMutex>>(); }, SyncUnit::none}};
}

std::unique_ptr<Adapter> make_ref_unlocked() {
    return std::make_unique<SpecAdapter<false>>("ref", &ref::make);
}

}  // namespace bench
