#include "impl/iotlb.h"

#include <cassert>

namespace impl {

namespace {
#ifdef PVIOMMU_RELACY
int g_planted = 0;  // relacy::IotlbMutant; plain: Relacy runs one OS thread
bool planted(relacy::IotlbMutant m) { return g_planted == static_cast<int>(m); }
#define PV_IOTLB_MUTANT(m) relacy::IotlbMutant::m
#else
constexpr bool planted(int) { return false; }
#define PV_IOTLB_MUTANT(m) 0
#endif
}  // namespace

#ifdef PVIOMMU_RELACY
void relacy::plant_iotlb(IotlbMutant m) { g_planted = static_cast<int>(m); }
bool relacy::iotlb_planted(IotlbMutant m) { return planted(m); }
#endif

int Iotlb::attach() {
    for (unsigned i = 0; i < kReaders; ++i) {
        bool f = false;
        // acq_rel: claiming orders this device after the previous owner's detach (release).
        if (claimed_[i].compare_exchange_strong(f, true, std::memory_order_acq_rel))
            return static_cast<int>(i);
    }
    return -1;
}

void Iotlb::detach(int reader) {
    // relaxed: the slot is already 0 (exit() published it); the release below orders it.
    assert(readers_[reader].load(std::memory_order_relaxed) == 0);
    // release: the next owner's attach (acq_rel) starts after everything this device did.
    claimed_[reader].store(false, std::memory_order_release);
}

bool Iotlb::any_attached() const {
    for (const auto& c : claimed_)
        if (c.load(std::memory_order_acquire)) return true;  // acquire: pairs with detach
    return false;
}

std::uint64_t Iotlb::enter(int reader) {
    auto& slot = readers_[reader];
    // seq_cst (all three): the store-load pattern of I1/I3 (see the file comment of iotlb.h).
    std::uint64_t g = gen_.load(std::memory_order_seq_cst);
    for (;;) {
        slot.store(g, std::memory_order_seq_cst);
        if (planted(PV_IOTLB_MUTANT(enter_no_recheck))) return g;
        const std::uint64_t again = gen_.load(std::memory_order_seq_cst);
        if (again == g) return g;
        g = again;  // a flush started meanwhile: announce its generation instead
    }
}

void Iotlb::exit(int reader) {
    // release: the section's walk and DMA happen before a flusher that reads 0 (I3, I4).
    readers_[reader].store(0, planted(PV_IOTLB_MUTANT(exit_relaxed)) ? std::memory_order_relaxed
                                                                     : std::memory_order_release);
}

bool Iotlb::read_slot(const Slot& s, std::uint64_t& bfn, std::uint64_t& gen, std::uint64_t& leaf) {
    // acquire: pairs with the fill's release store of the even sequence.
    const std::uint64_t s1 = s.seq.load(std::memory_order_acquire);
    if ((s1 & 1) != 0) return false;  // a fill is writing it
    // relaxed: the seqlock's fields; validated by the re-read of seq below.
    bfn = s.bfn.load(std::memory_order_relaxed);
    gen = s.gen.load(std::memory_order_relaxed);
    leaf = s.leaf.load(std::memory_order_relaxed);
    // acquire fence: if a field load saw a later fill's store, the re-load below sees that
    // fill's odd sequence (it pairs with the fill's release fence).
    fence(std::memory_order_acquire);
    return s.seq.load(std::memory_order_relaxed) == s1;  // relaxed: ordered by the fence
}

bool Iotlb::lookup(std::uint64_t gen, std::uint64_t bfn, std::uint64_t& leaf) const {
    const Slot& s = slots_[bfn % kSlots];
    std::uint64_t b = 0, g = 0, l = 0;
    if (!read_slot(s, b, g, l) || b != bfn || g != gen) return false;  // I2: own gen only
    leaf = l;
    return true;
}

void Iotlb::fill(std::uint64_t gen, std::uint64_t bfn, std::uint64_t leaf) {
    Slot& s = slots_[bfn % kSlots];
    // relaxed: only the CAS's atomicity matters for the claim; the fence below orders it
    // before the field stores.
    std::uint64_t seq = s.seq.load(std::memory_order_relaxed);
    if ((seq & 1) != 0) return;  // another fill holds it: skip, it is only a cache
    if (!s.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_relaxed)) return;
    // release fence: a reader whose field load sees a store below then sees the odd sequence
    // (or a later one) on its re-load, and discards the read.
    fence(std::memory_order_release);
    // relaxed: guarded by the odd sequence.
    s.bfn.store(bfn, std::memory_order_relaxed);
    s.gen.store(gen, std::memory_order_relaxed);
    s.leaf.store(leaf, std::memory_order_relaxed);
    // release: a reader that loads the even sequence (acquire) sees the fields.
    s.seq.store(seq + 2, std::memory_order_release);
}

void Iotlb::flush() {
    // seq_cst RMW: I3's increment, ordered after the removal's MCAS (program order; the MCAS
    // is seq_cst) and before the scan below in the single total order (store-load, see I1).
    const std::uint64_t g = gen_.fetch_add(1, std::memory_order_seq_cst) + 1;
    for (auto& r : readers_) {
        // seq_cst: the other half of I1's store-load pattern; it is also an acquire, so a 0
        // (exit's release store) orders that section's DMA before our caller's deferred put.
        for (std::uint64_t v = r.load(std::memory_order_seq_cst); v != 0 && v < g;
             v = r.load(std::memory_order_seq_cst))
            spin_pause();  // a device section is short; let it run (2 cores)
    }
}

}  // namespace impl
