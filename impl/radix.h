// impl/radix.h: a 64-bit-keyed radix tree whose leaves are MCAS Words, shaped like an IOMMU or
// P2M page table: 8 levels of 256 slots. Used for each domain's P2M (gfn -> mfn) and IOMMU
// context (bfn -> entry). Keys below 2^24 (every frame number a host can have, D6, and so every
// gfn and bfn that names one 1:1) live in a second tree of the last 3 levels only: 3 dependent
// loads instead of 8 (issue 6: the depth was the first cost of a lookup named in RESULTS.md).
//
// Concurrency: interior nodes are installed once with a CAS (nullptr -> node) and never removed
// while the tree lives, so a reader that loaded a child pointer can use it for as long as the
// tree exists; a thread that loses the install race deletes its own unpublished node. Leaves
// are changed only through MCAS (impl/mcas.h). The tree is destroyed only at a quiescent point
// (domain teardown on the control plane, or the Hypervisor's destructor).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "impl/mcas.h"

namespace impl {

class RadixMap {
public:
    RadixMap() = default;
    RadixMap(const RadixMap&) = delete;
    RadixMap& operator=(const RadixMap&) = delete;
    ~RadixMap() {
        free_node(root_.load(std::memory_order_relaxed), 0);
        free_node(low_root_.load(std::memory_order_relaxed), kLowStart);
    }

    // The leaf word of key, creating its path if needed (lock-free). A Txn must read a leaf it
    // decides on through this, so that a concurrent writer of the same key conflicts with it.
    [[nodiscard]] Word& get(std::uint64_t key) const {
        const bool low = key < kLowLimit;
        std::atomic<void*>* slot = low ? &low_root_ : &root_;
        for (int level = low ? kLowStart : 0; level < kLevels; ++level) {
            // acquire: pairs with the release install below, so the node's zeroed slots are seen.
            void* n = slot->load(std::memory_order_acquire);
            if (n == nullptr) n = install(*slot, level);
            if (level == kLevels - 1) return static_cast<Leaf*>(n)->w[index(key, level)];
            slot = &static_cast<Interior*>(n)->child[index(key, level)];
        }
        __builtin_unreachable();
    }

    // The leaf word of key if its path exists, else nullptr (then the leaf is 0): a lookup
    // that never allocates, for device walks (impl/iotlb.h) that must not grow the tree.
    [[nodiscard]] Word* find(std::uint64_t key) const {
        const bool low = key < kLowLimit;
        const std::atomic<void*>* slot = low ? &low_root_ : &root_;
        for (int level = low ? kLowStart : 0; level < kLevels; ++level) {
            // acquire: pairs with the release install, as in get().
            void* n = slot->load(std::memory_order_acquire);
            if (n == nullptr) return nullptr;
            if (level == kLevels - 1) return &static_cast<Leaf*>(n)->w[index(key, level)];
            slot = &static_cast<Interior*>(n)->child[index(key, level)];
        }
        __builtin_unreachable();
    }

    // Calls f(key, value) for every leaf whose value is not 0, in key order. Quiescent only.
    template <class F>
    void for_each(F&& f) const {
        // The low tree holds exactly the keys below 2^24, the full one only keys above.
        walk(low_root_.load(std::memory_order_acquire), kLowStart, 0, f);
        walk(root_.load(std::memory_order_acquire), 0, 0, f);
    }

private:
    static constexpr int kBits = 8, kLevels = 8, kFan = 1 << kBits;
    // The low tree starts at this level: its keys have only the last (kLevels - kLowStart)
    // bytes.
    static constexpr int kLowStart = 5;
    static constexpr std::uint64_t kLowLimit = std::uint64_t{1} << (kBits * (kLevels - kLowStart));
    struct Interior {
        std::array<std::atomic<void*>, kFan> child{};
    };
    struct Leaf {
        std::array<Word, kFan> w{};
    };

    static unsigned index(std::uint64_t key, int level) {
        return static_cast<unsigned>(key >> (kBits * (kLevels - 1 - level))) & (kFan - 1);
    }

    static void* install(std::atomic<void*>& slot, int level) {
        void* fresh =
            level == kLevels - 1 ? static_cast<void*>(new Leaf) : static_cast<void*>(new Interior);
        void* expected = nullptr;
        // release: the node's zero-initialised contents happen before any reader that finds it.
        // acquire on failure: we use the winner's node.
        if (slot.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel,
                                         std::memory_order_acquire))
            return fresh;
        if (level == kLevels - 1)
            delete static_cast<Leaf*>(fresh);
        else
            delete static_cast<Interior*>(fresh);
        return expected;
    }

    static void free_node(void* n, int level) {
        if (n == nullptr) return;
        if (level == kLevels - 1) {
            delete static_cast<Leaf*>(n);
            return;
        }
        auto* in = static_cast<Interior*>(n);
        for (auto& c : in->child) free_node(c.load(std::memory_order_relaxed), level + 1);
        delete in;
    }

    template <class F>
    static void walk(void* n, int level, std::uint64_t prefix, F& f) {
        if (n == nullptr) return;
        if (level == kLevels - 1) {
            auto* leaf = static_cast<Leaf*>(n);
            for (int i = 0; i < kFan; ++i) {
                const std::uint64_t v = mcas_read(leaf->w[i]);
                if (v != 0) f((prefix << kBits) | static_cast<std::uint64_t>(i), v);
            }
            return;
        }
        auto* in = static_cast<Interior*>(n);
        for (int i = 0; i < kFan; ++i)
            walk(in->child[i].load(std::memory_order_acquire), level + 1,
                 (prefix << kBits) | static_cast<std::uint64_t>(i), f);
    }

    // Guarded by their own CAS protocol (see the file comment).
    mutable std::atomic<void*> root_{nullptr};  // keys >= 2^24; get() on a const map may grow it
    mutable std::atomic<void*> low_root_{nullptr};  // keys < 2^24, from level kLowStart
};

}  // namespace impl
