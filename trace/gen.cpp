#include "trace/gen.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "trace/runner.h"

namespace trace {

namespace {

using spec::Flags;

constexpr std::uint16_t kDomPool = 8;  // domids 0..7: small, so destroyed ids come back (F11)
constexpr std::size_t kKeep = 48;      // how many used bfns and hints each list remembers

// Draws from one engine by modulo: slightly biased, but the same on every standard library.
class Rand {
public:
    explicit Rand(std::uint64_t seed) : e_(seed) {}
    std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : e_() % n; }
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
    bool percent(unsigned p) { return below(100) < p; }
    // An index drawn with the given weights.
    std::size_t weighted(std::initializer_list<unsigned> w) {
        unsigned total = 0;
        for (unsigned x : w) total += x;
        std::uint64_t r = below(total);
        std::size_t i = 0;
        for (unsigned x : w) {
            if (r < x) return i;
            r -= x;
            ++i;
        }
        return w.size() - 1;
    }
    // Requires: c non-empty.
    template <class C>
    auto pick(const C& c) -> const typename C::value_type& {
        auto it = c.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(below(c.size())));
        return *it;
    }

private:
    std::mt19937_64 e_;
};

// What the generator knows of a live domain: enough to aim arguments at existing things.
struct Dom {
    bool hardware = false;
    bool iommu_hw = false;
    std::vector<std::uint64_t> gfns;  // gfns with RAM, as far as the generator can tell
    std::vector<std::uint64_t> xen;   // Xen-backed gfns
    std::vector<spec::Range> rmrr;
    std::uint64_t base = 0;  // about where its first RAM frame lies (frames go out in order)
};

// A map_foreign_page or lookup_foreign_page the trace made (whatever its status): later
// re-maps, unmaps and balloons aim at it.
struct Hint {
    std::uint16_t caller = 0, domid = 0, ioserver = 0;
    std::uint64_t bfn = 0, gfn = 0;
    bool good = false;  // passes every check the generator can judge (a tuple is likely)
};

using Key = std::pair<std::uint16_t, std::uint16_t>;  // (target, id)

class Generator {
public:
    Generator(std::uint64_t seed, std::size_t steps, bool dma_checks)
        : r_(seed),
          limits_(seed ^ 0x5155'4f54'4100'0000ULL),
          v2_(seed ^ 0x7632'0000'0000'0000ULL),
          steps_(steps),
          dma_checks_(dma_checks) {
        t_.file = "random-" + std::to_string(seed);
    }

    Trace run() {
        host();
        world();
        const std::size_t first = t_.statements.size();
        while (t_.statements.size() - first < steps_) step(steps_ - (t_.statements.size() - first));
        return std::move(t_);
    }

private:
    // ---- the world, before the first call
    void host() {
        spec::Host& h = t_.host;
        h.iommu = !r_.percent(8);
        h.mode = static_cast<spec::IommuMode>(r_.weighted({75, 13, 12}));
        h.max_order = static_cast<unsigned>(r_.weighted({35, 30, 20, 8, 7}));
        h.frames = r_.between(64, 512);
        // D19: a tiny max_count in some worlds (from limits_, so r_'s stream, and with it
        // every other choice of a seed, is what it was before the limits existed).
        if (limits_.percent(15)) h.max_count = static_cast<std::uint32_t>(limits_.between(1, 4));
    }

    void world() {
        std::vector<std::uint16_t> ids(kDomPool);
        for (std::uint16_t i = 0; i < kDomPool; ++i) ids[i] = i;
        for (std::size_t i = ids.size(); i > 1; --i) std::swap(ids[i - 1], ids[r_.below(i)]);
        ids.resize(r_.between(2, 5));
        for (std::size_t i = 0; i < kDomPool; ++i)
            if (std::find(ids.begin(), ids.end(), i) == ids.end())
                never_.insert(static_cast<std::uint16_t>(i));
        const bool with_hw = r_.percent(70);
        const std::uint64_t budget = t_.host.frames / 2;
        for (std::size_t i = 0; i < ids.size(); ++i) {
            const bool hw = with_hw && i == 0;
            const std::uint64_t want = hw ? r_.between(4, 32) : r_.between(2, 16);
            add_domain(ids[i], hw, r_.percent(hw ? 90 : 85),
                       std::min(want, budget - std::min(budget, used_)));
        }
        for (std::uint16_t e : ids)
            for (std::uint16_t t : ids)
                if (e != t && !live_[e].hardware && r_.percent(20)) add_dm(e, t);
        for (std::uint16_t t : ids) {
            if (!r_.percent(75)) continue;
            const auto k = r_.between(1, 3);
            for (std::uint64_t j = 0; j < k; ++j) add_server(t);
        }
        if (servers_.empty()) {
            add_server(ids[1]);
        }
        for (std::uint16_t d : ids) {
            Dom& dom = live_[d];
            if (!dom.iommu_hw || !r_.percent(30)) continue;
            const auto k = r_.between(1, 2);
            for (std::uint64_t j = 0; j < k; ++j) {
                RmrrStmt s{DomId{d}, Bfn{}, r_.between(1, 8)};
                s.first = Bfn{dom.hardware && r_.percent(50) ? r_.below(t_.host.frames)
                                                             : 0x1000 + r_.below(64)};
                dom.rmrr.push_back({s.first, s.count});
                emit(s);
            }
        }
        for (std::uint16_t d : ids) {
            Dom& dom = live_[d];
            if (!r_.percent(25)) continue;
            const auto k = r_.between(1, 2);
            for (std::uint64_t j = 0; j < k && used_ < t_.host.frames; ++j) {
                const std::uint64_t g = dom.gfns.size() + r_.below(4);
                if (std::find(dom.xen.begin(), dom.xen.end(), g) != dom.xen.end()) continue;
                dom.xen.push_back(g);
                ++used_;
                emit(XenGfnStmt{DomId{d}, Gfn{g}});
            }
        }
    }

    void add_domain(std::uint16_t d, bool hardware, bool iommu_hw, std::uint64_t ram) {
        Dom dom;
        dom.hardware = hardware;
        dom.iommu_hw = iommu_hw;
        for (std::uint64_t g = 0; g < ram; ++g) dom.gfns.push_back(g);
        dom.base = used_;
        live_[d] = std::move(dom);
        dead_.erase(d);
        never_.erase(d);
        used_ += ram;
        // D20: a small quota for some domains (from limits_, see host()).
        std::optional<std::uint32_t> quota;
        if (limits_.percent(20)) quota = static_cast<std::uint32_t>(limits_.between(0, 4));
        emit(DomainStmt{DomId{d}, hardware ? spec::DomainRole::hardware : spec::DomainRole::guest,
                        iommu_hw, static_cast<std::uint32_t>(ram), quota});
    }

    void add_dm(std::uint16_t e, std::uint16_t t) {
        dm_.insert({e, t});
        emit(DmStmt{DomId{e}, DomId{t}});
    }

    // A server of t with a fresh id, served mostly by a domain with privilege over t (granted
    // first by a `dm` statement when room allows two statements).
    void add_server(std::uint16_t t, std::size_t room = SIZE_MAX) {
        std::uint16_t id = static_cast<std::uint16_t>(r_.percent(80) ? 0 : r_.between(1, 9));
        while (servers_.contains({t, id})) ++id;
        std::vector<std::uint16_t> priv, others;
        for (const auto& [e, dom] : live_) {
            if (e == t) continue;
            others.push_back(e);
            if (dom.hardware || dm_.contains({e, t})) priv.push_back(e);
        }
        std::uint16_t e = t;  // serving itself: every foreign op on it is -EPERM
        if (!others.empty() && !r_.percent(4)) {
            if (priv.empty() && room >= 2 && r_.percent(70)) {  // a stub domain: privilege first
                priv.push_back(r_.pick(others));
                add_dm(priv.back(), t);
            }
            std::vector<std::uint16_t> able;  // privileged and with IOMMU hardware
            for (std::uint16_t x : priv)
                if (live_[x].iommu_hw) able.push_back(x);
            if (!able.empty() && r_.percent(85))
                e = r_.pick(able);
            else
                e = !priv.empty() && r_.percent(92) ? r_.pick(priv) : r_.pick(others);
        }
        std::uint32_t ring = spec::kMaxRingSlots;
        switch (r_.weighted({50, 20, 30})) {
            case 0:
                ring = static_cast<std::uint32_t>(r_.between(0, 9));
                break;
            case 1:
                ring = static_cast<std::uint32_t>(r_.between(10, 64));
                break;
            default:
                break;
        }
        servers_[{t, id}] = e;
        emit(IoServerStmt{DomId{t}, IoServId{id}, DomId{e}, ring});
    }

    // ---- statements after the world; `room` is how many more may be emitted (>= 1)
    void step(std::size_t room) {
        switch (r_.weighted({44, 9, 13, 5, 10, 2, 2, 3, 3, 1, 3})) {
            case 0:
                return call(false);
            case 1:
                return call(true);
            case 2:
                return balloon();
            case 3:
                return populate();
            case 4:
                if (servers_.empty()) return call(false);
                return drain();
            case 5: {
                FaultStmt s;
                s.count = r_.percent(60) ? 1 : static_cast<std::uint32_t>(r_.between(1, 3));
                return emit(s);
            }
            case 6:
                if (live_.size() <= 2) return call(false);
                return destroy(r_.pick(live_).first);
            case 7:
                if (dead_.empty()) return call(false);
                return recreate(r_.pick(dead_), room);
            case 8:
                return add_server(r_.pick(live_).first, room);
            case 9: {
                const std::uint16_t e = r_.pick(live_).first, t = r_.pick(live_).first;
                if (e == t) return call(false);
                return add_dm(e, t);
            }
            default:
                // v2 statements from a stream of their own (see host()): `check dma`, where an
                // oracle settles what it expects.
                if (dma_checks_ && v2_.percent(60)) return check_dma();
                return emit(CheckInvariants{});
        }
    }

    // (v2) check dma: mostly at a bus address the interface handed out to e.
    void check_dma() {
        const std::uint16_t e = pick_caller();
        std::vector<std::uint64_t> handed;
        for (const Hint& h : hints_)
            if (h.caller == e) handed.push_back(h.bfn);
        const std::uint64_t b = !handed.empty() && v2_.percent(75) ? v2_.pick(handed) : bfn(e, 0);
        emit(CheckDma{DomId{e}, Bfn{b}, spec::DmaView{}});
    }

    void destroy(std::uint16_t d) {
        live_.erase(d);
        dead_.insert(d);
        std::erase_if(servers_,
                      [d](const auto& kv) { return kv.first.first == d || kv.second == d; });
        std::erase_if(dm_, [d](const Key& k) { return k.first == d || k.second == d; });
        bfns_.erase(d);
        local_.erase(d);
        // Hints whose target died stay (R9 v2: orphans), so their emulators unmap them later.
        std::erase_if(hints_, [d](const Hint& h) { return h.caller == d; });
        emit(DestroyStmt{DomId{d}});
    }

    // F11: a destroyed domid comes back as a new domain (D8: hardware only if none is alive).
    void recreate(std::uint16_t d, std::size_t room) {
        bool hw_alive = false;
        for (const auto& [id, dom] : live_) hw_alive |= dom.hardware;
        const bool hw = !hw_alive && r_.percent(30);
        const std::uint64_t left = t_.host.frames - std::min(t_.host.frames, used_);
        add_domain(d, hw, r_.percent(80), std::min<std::uint64_t>(r_.between(1, 8), left));
        if (room > 1 && r_.percent(60)) add_server(d, room - 1);
    }

    std::uint16_t pick_caller() {
        if (!servers_.empty() && r_.percent(80)) return r_.pick(servers_).second;
        return r_.pick(live_).first;
    }

    void call(bool batch) {
        CallStmt s;
        s.caller = DomId{pick_caller()};
        s.batch = batch;
        const std::uint64_t n = batch ? r_.between(2, 5) : 1;
        for (std::uint64_t i = 0; i < n; ++i) s.ops.push_back(op(s.caller.v));
        emit(std::move(s));
    }

    void balloon() {
        std::vector<const Hint*> aim, good;
        for (const Hint& h : hints_) {
            if (!live_.contains(h.domid)) continue;
            aim.push_back(&h);
            if (h.good) good.push_back(&h);
        }
        if (!good.empty() && r_.percent(70)) aim = good;
        std::uint16_t d;
        std::uint64_t g;
        if (!aim.empty() && r_.percent(65)) {
            const Hint* h = r_.pick(aim);
            d = h->domid;
            g = h->gfn;
        } else {
            d = r_.pick(live_).first;
            g = gfn(d, 0);
        }
        auto& gfns = live_[d].gfns;
        if (auto it = std::find(gfns.begin(), gfns.end(), g); it != gfns.end()) {
            gfns.erase(it);
            ballooned_.push_back({d, g});
        }
        for (Hint& h : hints_)
            if (h.domid == d && h.gfn == g) h.good = false;
        emit(BalloonStmt{DomId{d}, Gfn{g}});
    }

    void populate() {
        std::vector<std::pair<std::uint16_t, std::uint64_t>> back;
        for (const auto& b : ballooned_)
            if (live_.contains(b.first)) back.push_back(b);
        std::uint16_t d;
        std::uint64_t g;
        if (!back.empty() && r_.percent(60)) {
            std::tie(d, g) = r_.pick(back);
        } else {
            d = r_.pick(live_).first;
            g = live_[d].gfns.size() + r_.below(8);
        }
        std::erase(ballooned_, std::pair{d, g});
        auto& gfns = live_[d].gfns;
        if (std::find(gfns.begin(), gfns.end(), g) == gfns.end()) gfns.push_back(g);
        used_ = std::min(t_.host.frames, used_ + 1);
        emit(PopulateStmt{DomId{d}, Gfn{g}});
    }

    void drain() {
        const Key k = r_.pick(servers_).first;
        DrainStmt s{DomId{k.first}, IoServId{k.second}, std::nullopt};
        if (r_.percent(40)) s.count = static_cast<std::uint32_t>(r_.between(1, 3));
        emit(s);
    }

    // ---- one op for caller c
    spec::Op op(std::uint16_t c) {
        switch (r_.weighted({28, 15, 17, 13, 12, 7, 4})) {
            case 0:
                return map_foreign(c);
            case 1:
                return lookup_foreign(c);
            case 2:
                return unmap_foreign(c);
            case 3: {
                spec::MapPage o;
                const unsigned k = order();
                o.flags = flags(k, 5);
                o.bfn = Bfn{bfn(c, k)};
                o.gfn = Gfn{gfn(c, k)};
                remember(c, o.bfn.v);
                local_[c].push_back(o.bfn.v);
                if (local_[c].size() > kKeep) local_[c].erase(local_[c].begin());
                return o;
            }
            case 4: {
                spec::UnmapPage o;
                const unsigned k = order();
                o.flags = flags(k, 5);
                const auto& mine = local_[c];
                o.bfn = Bfn{!mine.empty() && r_.percent(60) ? r_.pick(mine) : bfn(c, k)};
                if (const Hint* h = hint_of(c); h != nullptr && v2_.percent(25))
                    o.bfn = Bfn{align(h->bfn, k)};  // R6 v2: a bfn a lookup registered
                return o;
            }
            case 5: {
                spec::QueryCaps o;
                if (r_.percent(10)) o.flags = Flags{static_cast<std::uint16_t>(r_.below(0x10000))};
                return o;
            }
            default: {
                spec::UnknownOp o;
                static constexpr std::uint16_t kIds[] = {0, 7, 8, 100, 0xffff};
                o.subop_id = kIds[r_.below(std::size(kIds))];
                if (r_.percent(30)) o.flags = flags(order(), 20);
                return o;
            }
        }
    }

    spec::Op map_foreign(std::uint16_t c) {
        spec::MapForeignPage o;
        const unsigned k = order();
        o.flags = flags(k, 50);
        const Hint* h = hint_of(c);
        if (h != nullptr && r_.percent(30)) {
            // A re-map of the same frame: idempotent, from another server, or at another bfn.
            o.domid = DomId{h->domid};
            o.ioserver = IoServId{h->ioserver};
            o.gfn = Gfn{h->gfn};
            o.bfn = Bfn{h->bfn};
            switch (r_.weighted({40, 35, 25})) {
                case 0:
                    break;
                case 1:
                    o.ioserver = IoServId{other_server(c, h->domid, h->ioserver)};
                    break;
                default:
                    o.bfn = Bfn{bfn(c, k)};
                    break;
            }
        } else {
            target(c, o.domid, o.ioserver);
            o.gfn = Gfn{gfn(o.domid.v, k)};
            o.bfn = Bfn{bfn(c, k)};
        }
        remember(c, o.bfn.v);
        hint({c, o.domid.v, o.ioserver.v, o.bfn.v, o.gfn.v, good(c, o)});
        return o;
    }

    spec::Op lookup_foreign(std::uint16_t c) {
        spec::LookupForeignPage o;  // bfn defaults to BFN_INVALID
        const unsigned k = r_.percent(90) ? 0 : order();
        o.flags = flags(k, 5);
        target(c, o.domid, o.ioserver);
        o.gfn = Gfn{gfn(o.domid.v, 0)};
        if (r_.percent(25)) o.bfn = Bfn{bfn(c, 0)};
        // The answer is the frame itself (no IOMMU, or the 1:1 map): guess it, so that later
        // unmap_page and unmap_foreign_page calls aim at the claim (R6 v2 -EBUSY, orphans).
        std::uint64_t answer = o.bfn.v == spec::kBfnInvalid.v ? 0 : o.bfn.v;
        if (const auto t = live_.find(o.domid.v); t != live_.end())
            answer = t->second.base + o.gfn.v;
        hint({c, o.domid.v, o.ioserver.v, answer, o.gfn.v, false});
        return o;
    }

    spec::Op unmap_foreign(std::uint16_t c) {
        spec::UnmapForeignPage o;
        const unsigned k = r_.percent(85) ? 0 : order();
        o.flags = flags(k, 5);
        const Hint* h = hint_of(c);
        if (h != nullptr && r_.percent(75)) {
            o.bfn = Bfn{h->bfn};
            o.domid = DomId{h->domid};
            o.ioserver = IoServId{h->ioserver};
        } else {
            target(c, o.domid, o.ioserver);
            o.bfn = Bfn{bfn(c, k)};
        }
        return o;
    }

    // (domid, ioserver) for a foreign op of c: mostly one of c's own servers.
    void target(std::uint16_t c, DomId& domid, IoServId& ioserver) {
        std::vector<Key> own;
        for (const auto& [k, e] : servers_)
            if (e == c) own.push_back(k);
        std::vector<std::uint16_t> others;
        for (const auto& [d, dom] : live_)
            if (d != c) others.push_back(d);
        Key k{others.empty() ? c : r_.pick(others), static_cast<std::uint16_t>(r_.below(3))};
        std::vector<Key> foreign;  // servers of other domains (-ENODEV: not c's)
        for (const auto& [key, e] : servers_)
            if (key.first != c) foreign.push_back(key);
        if (!own.empty() && r_.percent(80))
            k = r_.pick(own);
        else if (!foreign.empty() && r_.percent(60))
            k = r_.pick(foreign);
        switch (r_.weighted({86, 3, 3, 3, 3, 2})) {
            case 1:
                k.first = PV_IOMMU_DOMID_SELF;
                break;
            case 2:
                k.first = c;
                break;
            case 3:  // destroyed, or never declared
                if (!dead_.empty() && r_.percent(60))
                    k.first = r_.pick(dead_);
                else
                    k.first = never_.empty() ? kDomPool + 3 : r_.pick(never_);
                break;
            case 4:
                k.first = static_cast<std::uint16_t>(r_.percent(50) ? spec::kDomIdMax : 0x7ff5);
                break;
            case 5:
                k.second = static_cast<std::uint16_t>(r_.between(3, 9));
                break;
            default:
                break;
        }
        domid = DomId{k.first};
        ioserver = IoServId{k.second};
    }

    // Another server of target t served by c (the same frame from several servers), else s.
    std::uint16_t other_server(std::uint16_t c, std::uint16_t t, std::uint16_t s) {
        std::vector<std::uint16_t> ids;
        for (const auto& [k, e] : servers_)
            if (e == c && k.first == t && k.second != s) ids.push_back(k.second);
        return ids.empty() ? s : r_.pick(ids);
    }

    // One of c's hints, mostly one that likely made a tuple.
    const Hint* hint_of(std::uint16_t c) {
        std::vector<const Hint*> mine, good;
        for (const Hint& h : hints_) {
            if (h.caller != c) continue;
            mine.push_back(&h);
            if (h.good) good.push_back(&h);
        }
        if (!good.empty() && r_.percent(80)) return r_.pick(good);
        return mine.empty() ? nullptr : r_.pick(mine);
    }

    // What the generator can judge of R3/R4 for a foreign op of c at order 0 (not -EEXIST, not
    // whether a balloon took the gfn).
    bool good(std::uint16_t c, const spec::MapForeignPage& o) const {
        const auto ci = live_.find(c), ti = live_.find(o.domid.v);
        if (ci == live_.end() || ti == live_.end() || o.domid.v == c) return false;
        const Dom& cd = ci->second;
        const bool usable = t_.host.iommu && cd.iommu_hw &&
                            !(cd.hardware && t_.host.mode == spec::IommuMode::passthrough);
        const auto si = servers_.find({o.domid.v, o.ioserver.v});
        const auto& gfns = ti->second.gfns;
        return usable && (cd.hardware || dm_.contains({c, o.domid.v})) && si != servers_.end() &&
               si->second == c && o.flags.order() == 0 && !o.flags.reserved() &&
               std::find(gfns.begin(), gfns.end(), o.gfn.v) != gfns.end();
    }

    void hint(const Hint& h) {
        hints_.push_back(h);
        if (hints_.size() > kKeep) hints_.erase(hints_.begin());
    }

    void remember(std::uint16_t c, std::uint64_t b) {
        auto& v = bfns_[c];
        v.push_back(b);
        if (v.size() > kKeep) v.erase(v.begin());
    }

    // Mostly 0; otherwise 0..max_order+1 (one above the host's limit: -ENOSPC); rarely 63.
    unsigned order() {
        if (r_.percent(82)) return 0;
        if (r_.percent(3)) return spec::kMaxOrderLimit;
        return static_cast<unsigned>(r_.below(t_.host.max_order + 2));
    }

    // r/w bits, swap_mfn with the given chance, a reserved bit now and then, the order.
    Flags flags(unsigned k, unsigned swap_pct) {
        static constexpr std::uint16_t kPerms[] = {IOMMUOP_readable, IOMMUOP_writeable,
                                                   IOMMUOP_readable | IOMMUOP_writeable, 0};
        std::uint16_t raw = kPerms[r_.weighted({20, 20, 50, 10})];
        if (r_.percent(swap_pct)) raw |= IOMMUOP_swap_mfn;
        if (r_.percent(4))
            raw |= static_cast<std::uint16_t>(1U << (_IOMMUOP_reserved + r_.below(7)));
        return Flags::with_order(k, raw);
    }

    std::uint64_t align(std::uint64_t v, unsigned k) {
        if (k == 0 || k >= 64 || !r_.percent(75)) return v;
        return v & ~((std::uint64_t{1} << k) - 1);
    }

    // A gfn of domain d: mostly one with RAM, sometimes Xen-backed, past the end, or junk.
    std::uint64_t gfn(std::uint16_t d, unsigned k) {
        auto it = live_.find(d);
        if (it == live_.end()) return align(r_.below(32), k);
        const Dom& dom = it->second;
        std::uint64_t g;
        switch (r_.weighted({75, 8, 12, 5})) {
            case 0:
                if (!dom.gfns.empty()) {
                    g = r_.pick(dom.gfns);
                    break;
                }
                [[fallthrough]];
            case 1:
                if (!dom.xen.empty()) {
                    g = r_.pick(dom.xen);
                    break;
                }
                [[fallthrough]];
            case 2:
                g = dom.gfns.size() + r_.below(16);
                break;
            default:
                g = r_.percent(50) ? r_.below(1024) : spec::kBfnInvalid.v - r_.below(4);
                break;
        }
        return align(g, k);
    }

    // A bfn in c's bus space: one c used before, an identity bfn of the hardware domain, an
    // RMRR edge, a fresh one, or junk.
    std::uint64_t bfn(std::uint16_t c, unsigned k) {
        std::uint64_t b = 0x1000 + r_.below(96);
        switch (r_.weighted({35, 15, 10, 30, 5, 5})) {
            case 0:
                if (auto it = bfns_.find(c); it != bfns_.end() && !it->second.empty())
                    b = r_.pick(it->second);
                break;
            case 1:
                b = r_.below(t_.host.frames);
                break;
            case 2: {
                const Dom& dom = live_[c];
                if (dom.rmrr.empty()) break;
                const spec::Range& r = r_.pick(dom.rmrr);
                const std::uint64_t edges[] = {r.first.v - 1, r.first.v, r.first.v + r.count - 1,
                                               r.first.v + r.count};
                b = edges[r_.below(4)];
                break;
            }
            case 3:
                break;
            case 4: {
                static constexpr std::uint64_t kWild[] = {
                    PV_IOMMU_BFN_INVALID, PV_IOMMU_BFN_INVALID - 1, std::uint64_t{1} << 40};
                b = r_.percent(50) ? kWild[r_.below(3)] : t_.host.frames + r_.below(8);
                break;
            }
            default:
                b = 0x2000 + (r_.below(16) << std::min(k, 8U));
                break;
        }
        return align(b, k);
    }

    void emit(Stmt s) { t_.statements.push_back(Statement{0, std::move(s)}); }

    Rand r_;
    Rand limits_;  // D19/D20 choices only: a stream of its own
    Rand v2_;      // v2 choices only (check dma, -EBUSY aims): a stream of its own
    std::size_t steps_;
    bool dma_checks_;
    Trace t_;
    std::map<std::uint16_t, Dom> live_;
    std::set<std::uint16_t> dead_;          // destroyed and not re-created
    std::set<std::uint16_t> never_;         // never declared
    std::set<Key> dm_;                      // (emulator, target) of live `dm` grants
    std::map<Key, std::uint16_t> servers_;  // live servers -> emulator
    std::map<std::uint16_t, std::vector<std::uint64_t>> bfns_;   // bfns each caller mapped at
    std::map<std::uint16_t, std::vector<std::uint64_t>> local_;  // ... with map_page
    std::vector<Hint> hints_;
    std::vector<std::pair<std::uint16_t, std::uint64_t>> ballooned_;  // (domain, gfn)
    // Frames ever handed out (RAM, Xen gfns, populates): a bound on frames in use, so that a
    // domain's ram= never exceeds the free frames (D9).
    std::uint64_t used_ = 0;
};

// parse(print(t)) or an exception: the generator and shrinker only hand out valid traces.
std::optional<Trace> reparse(const Trace& t) {
    auto p = parse(t.file, print(t));
    if (auto* tr = std::get_if<Trace>(&p)) return std::move(*tr);
    return std::nullopt;
}

}  // namespace

Trace random_trace(std::uint64_t seed, std::size_t steps, const ModelFactory& oracle) {
    const Trace t = Generator(seed, steps, static_cast<bool>(oracle)).run();
    auto p = parse(t.file, print(t));
    if (auto* e = std::get_if<ParseError>(&p))
        throw std::logic_error("random_trace: seed " + std::to_string(seed) +
                               " generated an invalid trace: " + e->text());
    Trace out = std::get<Trace>(std::move(p));
    if (oracle) {
        // Each `check dma` expects what the oracle's device would see there (D25).
        auto h = oracle(out.host);
        Runner r(out, *h);
        for (std::size_t i = 0; !r.done(); ++i) {
            if (auto* c = std::get_if<CheckDma>(&out.statements[i].stmt))
                c->view = h->snapshot().dma(c->e, c->bfn);
            if (r.step().fatal) break;
        }
    }
    return out;
}

Trace shrink(const Trace& t, const TracePredicate& still_fails) {
    Trace cur = t;
    // Replaces cur by cand if cand is a valid trace that still fails.
    auto attempt = [&](std::vector<Statement> stmts) {
        Trace cand{cur.file, cur.host, std::move(stmts)};
        auto p = reparse(cand);
        if (!p || !still_fails(*p)) return false;
        cur = std::move(*p);
        return true;
    };
    for (bool progress = true; progress;) {
        progress = false;
        // Chunks of statements, largest first.
        for (std::size_t k = std::max<std::size_t>(1, cur.statements.size() / 2);; k /= 2) {
            for (std::size_t i = 0; i < cur.statements.size();) {
                std::vector<Statement> cand;
                const std::size_t end = std::min(cur.statements.size(), i + k);
                cand.insert(cand.end(), cur.statements.begin(),
                            cur.statements.begin() + static_cast<std::ptrdiff_t>(i));
                cand.insert(cand.end(), cur.statements.begin() + static_cast<std::ptrdiff_t>(end),
                            cur.statements.end());
                if (attempt(std::move(cand)))
                    progress = true;
                else
                    i += k;
            }
            if (k == 1) break;
        }
        // Single ops of batches; a batch of one becomes a call.
        for (std::size_t i = 0; i < cur.statements.size(); ++i) {
            for (std::size_t j = 0;;) {
                const auto* c = std::get_if<CallStmt>(&cur.statements[i].stmt);
                if (c == nullptr || !c->batch || j >= c->ops.size()) break;
                std::vector<Statement> cand = cur.statements;
                auto& cc = std::get<CallStmt>(cand[i].stmt);
                if (cc.ops.size() == 1) {
                    cc.batch = false;
                } else {
                    cc.ops.erase(cc.ops.begin() + static_cast<std::ptrdiff_t>(j));
                    cc.op_lines.clear();
                }
                if (attempt(std::move(cand)))
                    progress = true;
                else
                    ++j;
            }
        }
    }
    return cur;
}

}  // namespace trace
