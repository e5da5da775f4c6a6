// impl/relacy/iotlb_relacy.cpp: R11's deferred put under Relacy. The real impl/iotlb.cpp (its
// read sections, generation-tagged seqlock slots and flush) and impl/mcas.cpp (the words) run
// under Relacy's scheduler; the hypervisor's side of the protocol (impl/hypervisor.cpp steps
// 5-7, not built here) is restated in a few lines: one MCAS removes the mapping and moves the
// frame's reference to its deferred field, then the flush, then the deferred put (one MCAS
// that frees the frame at count 0 and deferred 0, which then scrubs it for its next owner).
//
// A device thread runs two read sections on the context: each translates the bus address
// through the IOTLB (a hit of its own generation, or a walk of the IOMMU leaf that it caches)
// and DMAs into the frame (a write of a Relacy rl::var). Checked: no DMA into a freed frame
// (the frame's word, read inside the section, is not free), and Relacy's data-race detector
// on the frame's contents: the DMA and the scrub after the free must be ordered by
// happens-before (exit's release, the flusher's acquire, the put's MCAS).
#include <doctest/doctest.h>

#include <string>

#include "impl/iotlb.h"
#include "impl/mcas.h"
#include "impl/relacy/harness.h"

namespace {

using impl::dec;
using impl::enc;
using impl::EpochGuard;
using impl::Txn;
using impl::Word;
using impl::relacy::IotlbMutant;

// A frame word: its count, its deferred references and whether it is free.
struct Frame {
    std::uint64_t count = 0, deferred = 0;
    bool free = false;
};
std::uint64_t pack(Frame f) { return enc(f.count | f.deferred << 8 | std::uint64_t{f.free} << 16); }
Frame unpack(std::uint64_t v) {
    const std::uint64_t p = dec(v);
    return {p & 0xff, (p >> 8) & 0xff, ((p >> 16) & 1) != 0};
}

constexpr std::uint64_t kBfn = 3, kMfn = 7;

struct DeferredPut : rl::test_suite<DeferredPut, 2> {
    impl::relacy::CoreScope* core = nullptr;
    impl::Iotlb* tlb = nullptr;
    Word* leaf = nullptr;          // the IOMMU entry at kBfn: enc(kMfn), or 0 once unmapped
    Word* frame = nullptr;         // kMfn's frame word
    rl::var<int>* data = nullptr;  // kMfn's contents: DMA writes, the scrub after a free
    int reader = -1;
    void before() {
        core = new impl::relacy::CoreScope;
        tlb = new impl::Iotlb;
        leaf = new Word(enc(kMfn));
        frame = new Word(pack({1, 0, false}));  // the mapping's reference
        data = new rl::var<int>(0);
        reader = tlb->attach();
    }

    // Device: two read sections, each translate + DMA (I1, I2).
    void device() {
        for (int k = 0; k < 2; ++k) {
            const std::uint64_t g = tlb->enter(reader);
            std::uint64_t l = 0;
            if (!tlb->lookup(g, kBfn, l)) {
                EpochGuard eg;
                l = impl::mcas_read(*leaf);  // the walk
                if (l != 0) tlb->fill(g, kBfn, l);
            }
            if (l != 0) {
                RL_ASSERT(dec(l) == kMfn);
                {
                    EpochGuard eg;
                    RL_ASSERT(!unpack(impl::mcas_read(*frame)).free);  // no DMA into a freed frame
                }
                (*data)($) = 1;  // the DMA
            }
            tlb->exit(reader);
        }
    }

    // The deferred put (step 7): the frame loses its deferred reference, freed at 0 and 0.
    void put() {
        bool freed = false;
        for (;;) {
            EpochGuard eg;
            Txn t;
            Frame f = unpack(t.read(*frame));
            RL_ASSERT(f.deferred == 1);
            f.deferred = 0;
            freed = f.count == 0;
            f.free = freed;
            t.write(*frame, pack(f));
            if (t.commit()) break;
        }
        if (freed) (*data)($) = 0;  // scrubbed for its next owner (a populate)
    }

    // Hypervisor: unmap (step 5: one MCAS), flush (step 6), deferred put (step 7).
    void unmap() {
        for (;;) {
            EpochGuard eg;
            Txn t;
            RL_ASSERT(t.read(*leaf) == enc(kMfn));
            Frame f = unpack(t.read(*frame));
            --f.count;
            ++f.deferred;
            t.write(*leaf, 0);
            t.write(*frame, pack(f));
            if (t.commit()) break;
        }
        const bool early = impl::relacy::iotlb_planted(IotlbMutant::put_before_flush);
        if (early) put();
        tlb->flush();
        if (!early) put();
    }

    void thread(unsigned i) {
        if (i == 0)
            device();
        else
            unmap();
    }

    void after() {
        impl::epoch_quiesce();
        RL_ASSERT(leaf->load(std::memory_order_relaxed) == 0);
        const Frame f = unpack(frame->load(std::memory_order_relaxed));
        RL_ASSERT(f.free && f.count == 0 && f.deferred == 0);
        tlb->detach(reader);
        delete data;
        delete frame;
        delete leaf;
        delete tlb;
        delete core;
    }
};

rl::iteration_t iotlb_schedules() { return impl::relacy::full_budget() ? 2000000 : 200000; }

}  // namespace

namespace impl::relacy {

Verdict check_iotlb() {
    Exploration x;
    x.random = env_or("PVIOMMU_RELACY_MUTANT_RANDOM", 200000);
    x.print_failure = false;
    x.env_overrides = false;
    Verdict v;
    add(v, "iotlb deferred put", explore<DeferredPut>("iotlb deferred put", x));
    return v;
}

}  // namespace impl::relacy

TEST_CASE("relacy: R11 deferred put: no device DMA into a freed frame (real Iotlb, flush, MCAS)") {
    impl::relacy::Exploration x;
    x.random = iotlb_schedules();
    CHECK(impl::relacy::explore<DeferredPut>("iotlb deferred put", x).ok);
}
