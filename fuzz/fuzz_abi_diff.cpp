// fuzz_abi_diff: a byte string drives ref and impl through the same raw hypercalls and events,
// and any observable difference is a crash. Input format (a missing byte reads as 0):
//
//   byte 0      world: fuzz::kWorlds[b % size]
//   then steps (at most kMaxSteps), each a tag byte t, by t % 16:
//     0-7   batch:    caller byte, count byte (1 + c % 4 ops), then per op a shape byte and
//                     32 raw bytes of struct pv_iommu_op (any subop, reserved bits, orders)
//     8-9   balloon:  domain byte, gfn byte
//     10-11 populate: domain byte, gfn byte
//     12    drain:    target byte, id byte, count byte (255: all)
//     13    destroy:  domain byte
//     14    fault iommu_map: count byte (1 + c % 3)
//     15    domain:   domid byte (d % 8, only if not live), attribute byte (bit 0 iommu_hw,
//                     bits 1-3 ram)
//
// A domain byte names a live domain: itself if it is one, else live[b % n] (the trace parser's
// precondition: data-path calls name live domains and servers). The shape byte folds raw
// fields into the world's small ranges so the fuzzer reaches deep states without losing the
// raw cases: bit 0 subop_id %= 8, bit 1 clear reserved bits and order %= max_order + 2,
// bit 2 bfn %= 64, bit 3 gfn %= 16, bit 4 domid = a domain of the world (or DOMID_SELF),
// bit 5 ioserver %= 8, bit 6 lookup bfn = BFN_INVALID.
//
// After every step both models are compared: every op's 32 bytes after the hypercall (status,
// out fields, untouched fields), a balloon's frame and invalidate counts (and INV-INVALIDATE
// against ref's tuples before it), a populate's frame, drained requests, the canonical dump;
// check_invariants must hold on both. On a difference it prints both sides and the steps so
// far as a trace (replay: `pviommu diff FILE`), then traps.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz/worlds.h"
#include "impl/hypervisor.h"
#include "impl/mutants.h"
#include "ref/hypervisor.h"
#include "spec/ghost.h"
#include "trace/diff.h"
#include "trace/runner.h"
#include "trace/trace.h"

namespace {

using spec::DomId;

constexpr std::size_t kMaxSteps = 64;

class Bytes {
public:
    Bytes(const std::uint8_t* p, std::size_t n) : p_(p), n_(n) {}
    [[nodiscard]] bool empty() const { return n_ == 0; }
    std::uint8_t u8() {
        if (n_ == 0) return 0;
        --n_;
        return *p_++;
    }
    void read(void* dst, std::size_t k) {
        auto* d = static_cast<std::uint8_t*>(dst);
        for (std::size_t i = 0; i < k; ++i) d[i] = u8();
    }

private:
    const std::uint8_t* p_;
    std::size_t n_;
};

const std::vector<trace::Trace>& worlds() {
    static const std::vector<trace::Trace> w = [] {
        std::vector<trace::Trace> out;
        for (const char* text : fuzz::kWorlds) {
            auto r = trace::parse("world.trace", text);
            if (const auto* e = std::get_if<trace::ParseError>(&r)) {
                std::fprintf(stderr, "fuzz_abi_diff: bad world: %s\n", e->text().c_str());
                std::abort();
            }
            out.push_back(std::get<trace::Trace>(std::move(r)));
        }
        return out;
    }();
    return w;
}

class Session {
public:
    explicit Session(const trace::Trace& world)
        : repro_(world), ref_(world.host), impl_(impl::make(world.host)) {
        // The world is control plane only (fuzz/worlds.h): apply it to both directly (the
        // runner would take a snapshot of each after every statement).
        for (const trace::Statement& st : world.statements)
            std::visit([this](const auto& s) { apply_world(s); }, st.stmt);
        compare("world");
    }

    void run(Bytes& in) {
        for (std::size_t step = 0; step < kMaxSteps && !in.empty(); ++step) {
            const std::uint8_t tag = in.u8() % 16;
            if (tag < 8)
                batch(in);
            else if (tag < 10)
                balloon(in);
            else if (tag < 12)
                populate(in);
            else if (tag == 12)
                drain(in);
            else if (tag == 13)
                destroy(in);
            else if (tag == 14)
                fault(in);
            else
                create(in);
        }
    }

private:
    template <class T>
    void apply_world(const T& s) {
        bool ok = true;
        for (spec::Hypervisor* h : {static_cast<spec::Hypervisor*>(&ref_), impl_.get()}) {
            if constexpr (std::is_same_v<T, trace::DomainStmt>)
                ok = ok && h->create_domain(s.d, s.role, s.iommu_hw, s.ram);
            else if constexpr (std::is_same_v<T, trace::DmStmt>)
                h->grant_dm(s.emulator, s.target);
            else if constexpr (std::is_same_v<T, trace::IoServerStmt>)
                h->create_ioserver(s.target, s.id, s.emulator, s.ring);
            else if constexpr (std::is_same_v<T, trace::RmrrStmt>)
                h->add_rmrr(s.d, s.first, s.count);
            else if constexpr (std::is_same_v<T, trace::XenGfnStmt>)
                ok = ok && h->add_xen_gfn(s.d, s.gfn);
            else
                ok = false;  // not a world statement
        }
        if (!ok) {
            std::fprintf(stderr, "fuzz_abi_diff: bad world statement: %s\n",
                         trace::statement_text(s).c_str());
            std::abort();
        }
    }

    const spec::State& st() const { return ref_.state(); }

    std::vector<DomId> live() const {
        std::vector<DomId> out;
        for (const auto& kv : st().domains) out.push_back(kv.first);
        return out;
    }
    // A live domain named by b: b itself if live, else live[b % n]. nullopt: none is live.
    std::optional<DomId> pick_domain(std::uint8_t b) const {
        const auto l = live();
        if (l.empty()) return std::nullopt;
        if (st().domains.contains(DomId{b})) return DomId{b};
        return l[b % l.size()];
    }

    void push(trace::Stmt s) { repro_.statements.push_back({0, std::move(s)}); }

    void batch(Bytes& in) {
        const std::uint8_t cb = in.u8();
        const std::size_t count = 1 + in.u8() % 4;
        const auto caller = pick_domain(cb);
        std::vector<pv_iommu_op> ops(count);
        std::vector<std::uint8_t> shapes(count);
        for (std::size_t i = 0; i < count; ++i) {
            shapes[i] = in.u8();
            in.read(&ops[i], sizeof(pv_iommu_op));
        }
        if (!caller) return;
        for (std::size_t i = 0; i < count; ++i) shape(ops[i], shapes[i], *caller);
        trace::CallStmt call{*caller, true, {}, {}};
        for (const auto& raw : ops) call.ops.push_back(spec::decode(raw));
        push(call);
        std::vector<pv_iommu_op> a = ops, b = ops;
        const spec::State before = ref_.state();  // D23: H's unmap rule reads it
        const long ra = ref_.iommu_op(*caller, a), rb = impl_->iommu_op(*caller, b);
        std::vector<spec::OpResult> results;
        for (const auto& raw : a)
            results.push_back({static_cast<spec::Status>(raw.status), spec::decode(raw)});
        spec::record_handed(handed_, &before, ref_.state(), *caller, results);
        std::string why;
        if (ra != 0 || rb != 0) why = "the hypercall did not return 0 (R10)";
        for (std::size_t i = 0; i < count && why.empty(); ++i)
            if (std::memcmp(&a[i], &b[i], sizeof(pv_iommu_op)) != 0)
                why = "op " + std::to_string(i) + " differs";
        if (!why.empty()) {
            std::string detail;
            for (std::size_t i = 0; i < count; ++i)
                detail += "  op " + std::to_string(i) + ": ref " + outcome(a[i]) + " / impl " +
                          outcome(b[i]) + "\n";
            fail(why, detail);
        }
        compare("batch");
    }

    static std::string outcome(const pv_iommu_op& raw) {
        return trace::op_outcome({static_cast<spec::Status>(raw.status), spec::decode(raw)});
    }

    void shape(pv_iommu_op& op, std::uint8_t s, DomId caller) const {
        if (s & 1) op.subop_id %= 8;
        if (s & 2) {
            const unsigned order = IOMMU_get_page_order(op.flags) % (st().host.max_order + 2);
            op.flags = IOMMU_set_page_order(op.flags & ~IOMMUOP_reserved, order);
        }
        // bfn is the first member of every union arm; gfn the second of those that have one.
        if (s & 4) op.u.map_page.bfn %= 64;
        if (s & 8) op.u.map_page.gfn %= 16;
        std::uint16_t* domid = nullptr;
        std::uint16_t* ioserver = nullptr;
        if (op.subop_id == IOMMUOP_unmap_foreign_page) {
            domid = &op.u.unmap_foreign_page.domid;
            ioserver = &op.u.unmap_foreign_page.ioserver;
        } else {
            domid = &op.u.map_foreign_page.domid;
            ioserver = &op.u.map_foreign_page.ioserver;
        }
        if (s & 16) {
            const auto l = live();
            const std::size_t k = *domid % (l.size() + 2);
            *domid = k < l.size() ? l[k].v : k == l.size() ? PV_IOMMU_DOMID_SELF : caller.v;
        }
        if (s & 32) *ioserver %= 8;
        if ((s & 64) && op.subop_id == IOMMUOP_lookup_foreign_page)
            op.u.lookup_foreign_page.bfn = PV_IOMMU_BFN_INVALID;
    }

    void balloon(Bytes& in) {
        const auto d = pick_domain(in.u8());
        const spec::Gfn g{in.u8()};
        if (!d) return;
        push(trace::BalloonStmt{*d, g});
        // INV-INVALIDATE: a balloon of a frame with k tuples delivers k invalidates.
        std::uint32_t k = 0;
        if (const auto m = st().p2m(*d, g); m && st().frame(*m).state != spec::FrameState::xen)
            if (const auto it = st().m2b.find(*m); it != st().m2b.end())
                for (const auto& [t, info] : it->second) k += !info.orphan;  // R9 v2
        const auto a = ref_.balloon(*d, g), b = impl_->balloon(*d, g);
        if (a.mfn != b.mfn || a.invalidates != b.invalidates || a.synchronous != b.synchronous ||
            a.invalidates != k)
            fail("balloon outcomes differ (or INV-INVALIDATE)",
                 "  ref: " + text(a) + "\n  impl: " + text(b) +
                     "\n  tuples before: " + std::to_string(k) + "\n");
        compare("balloon");
    }
    static std::string text(const spec::BalloonOutcome& o) {
        return (o.mfn ? "mfn=" + spec::hex(o.mfn->v) : std::string("nothing")) +
               " invalidates=" + std::to_string(o.invalidates) +
               " synchronous=" + std::to_string(o.synchronous);
    }

    void populate(Bytes& in) {
        const auto d = pick_domain(in.u8());
        const spec::Gfn g{in.u8()};
        if (!d) return;
        push(trace::PopulateStmt{*d, g});
        const auto a = ref_.populate(*d, g), b = impl_->populate(*d, g);
        if (a.mfn != b.mfn)
            fail("populate outcomes differ",
                 "  ref: " + (a.mfn ? spec::hex(a.mfn->v) : "nothing") +
                     "\n  impl: " + (b.mfn ? spec::hex(b.mfn->v) : "nothing") + "\n");
        compare("populate");
    }

    void drain(Bytes& in) {
        const std::uint8_t tb = in.u8(), ib = in.u8(), cb = in.u8();
        if (st().servers.empty()) return;
        auto it = st().servers.find({DomId{tb}, spec::IoServId{ib}});
        if (it == st().servers.end()) {
            it = st().servers.begin();
            std::advance(it, (tb + ib) % st().servers.size());
        }
        const spec::ServerKey key = it->first;
        std::optional<std::uint32_t> count;
        if (cb != 255) count = cb % 4;
        push(trace::DrainStmt{key.first, key.second, count});
        const std::uint32_t max = count.value_or(UINT32_MAX);
        const auto a = ref_.drain(key.first, key.second, max);
        const auto b = impl_->drain(key.first, key.second, max);
        if (a != b)
            fail("drained requests differ", "  ref: " + std::to_string(a.size()) +
                                                " requests\n  impl: " + std::to_string(b.size()) +
                                                " requests\n");
        compare("drain");
    }

    void destroy(Bytes& in) {
        const auto d = pick_domain(in.u8());
        if (!d) return;
        push(trace::DestroyStmt{*d});
        ref_.destroy(*d);
        impl_->destroy(*d);
        spec::forget_emulator(handed_, *d);
        compare("destroy");
    }

    void fault(Bytes& in) {
        const std::uint32_t n = 1 + in.u8() % 3;
        push(trace::FaultStmt{n});
        ref_.arm_iommu_map_fault(n);
        impl_->arm_iommu_map_fault(n);
        compare("fault");
    }

    void create(Bytes& in) {
        const DomId d{static_cast<std::uint16_t>(in.u8() % 8)};
        const std::uint8_t attr = in.u8();
        if (st().domains.contains(d)) return;
        const bool hw = (attr & 1) != 0;
        const std::uint32_t ram = (attr >> 1) & 7;
        // Bit 4: a D20 quota of (attr >> 5) holdings.
        const std::optional<std::uint32_t> quota =
            (attr & 0x10) != 0 ? std::optional<std::uint32_t>{attr >> 5u} : std::nullopt;
        push(trace::DomainStmt{d, spec::DomainRole::guest, hw, ram, quota});
        const bool a = ref_.create_domain(d, spec::DomainRole::guest, hw, ram);
        const bool b = impl_->create_domain(d, spec::DomainRole::guest, hw, ram);
        if (a != b) fail("create_domain results differ", "");
        if (!a) {
            // D9: the run would stop here; both agree, so end this input (the world keeps its
            // state; nothing was created).
            repro_.statements.pop_back();
            return;
        }
        if (quota) {
            ref_.set_quota(d, *quota);
            impl_->set_quota(d, *quota);
        }
        compare("domain");
    }

    void compare(const char* what) {
        const spec::State& a = ref_.state();
        const spec::State b = impl_->snapshot();
        if (a != b) {
            const std::string da = spec::dump(a), db = spec::dump(b);
            if (da != db) {
                std::string detail;
                for (const auto& l : trace::line_diff(da, db)) detail += "  " + l + "\n";
                fail(std::string("dumps differ after ") + what + " (-ref +impl)", detail);
            }
        }
        for (const auto* s : {&a, &b}) {
            const auto v = spec::check_invariants(*s, handed_);  // INV-DEVICE-SAFE too
            if (!v.empty())
                fail(std::string("invariant broken on ") + (s == &a ? "ref" : "impl") + " after " +
                         what,
                     "  " + v.front().invariant + ": " + v.front().detail + "\n");
        }
    }

    [[noreturn]] void fail(const std::string& why, const std::string& detail) const {
        std::fprintf(stderr,
                     "fuzz_abi_diff: %s\n%s--- reproducer (pviommu diff FILE), the last "
                     "statement diverges:\n%s",
                     why.c_str(), detail.c_str(), trace::print(repro_).c_str());
        __builtin_trap();
    }

    trace::Trace repro_;
    ref::Hypervisor ref_;
    std::unique_ptr<spec::Hypervisor> impl_;
    spec::Handed handed_;  // INV-DEVICE-SAFE's ghost set H (D23), from ref's outcomes
};

}  // namespace

// PVIOMMU_FUZZ_MUTANT=k selects planted bug k of impl/mutants.h (a build configured with
// -DPVIOMMU_MUTANTS=ON), to check that this target finds it.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
    if (const char* k = std::getenv("PVIOMMU_FUZZ_MUTANT")) {
        if (!impl::select_mutant(std::atoi(k))) {
            std::fprintf(stderr, "fuzz_abi_diff: no mutant %s in this build\n", k);
            std::exit(2);
        }
        std::fprintf(stderr, "fuzz_abi_diff: mutant %s selected\n", k);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Bytes in(data, size);
    const auto& w = worlds();
    Session s(w[in.u8() % w.size()]);
    s.run(in);
    return 0;
}
