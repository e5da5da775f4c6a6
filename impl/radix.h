// impl/radix.h: a 64-bit-keyed radix tree whose leaves are MCAS Words, shaped like an IOMMU or
// P2M page table: 8 levels of 256 slots. Used for each domain's P2M (gfn -> mfn) and IOMMU
// context (bfn -> entry). A key lives in the tree for its number of significant bytes, which
// starts at the level where its first non-zero byte is (keys below 2^24, every frame number a
// host can have, D6, and so every gfn and bfn that names one 1:1, in a tree of the last 3
// levels; a 4-byte key in one of 4): as many dependent loads as the key has bytes, not 8 (issue
// 6: the depth was the first cost of a lookup named in RESULTS.md; issue 16: a bus address
// above 2^24 frames paid 8 loads per walk, twice per map and per unmap).
//
// Reads never allocate (issue 15: lookups used to create the path of every key they read, so
// 20,000 map_page calls on absent gfns grew memory by 200 MiB): find() and read() only follow
// existing nodes; get(), which creates the path, is for writes only.
//
// Concurrency: interior slots (and the roots) are MCAS Words holding a node pointer or 0.
// A node is installed once, by a CAS from 0, and never removed while the tree lives, so a
// reader that loaded a child pointer can use it for as long as the tree exists; a thread that
// loses the install race deletes its own unpublished node. Leaves are changed only through MCAS
// (impl/mcas.h). The tree is destroyed only at a quiescent point (domain teardown on the control
// plane, or the Hypervisor's destructor). Why slots are Words: read() of an absent key puts the
// empty slot where its path ends into the caller's Txn, so the commit validates the absence (a
// writer that creates the path changes that slot first, and the commit fails). A Txn may
// therefore have a descriptor installed on a slot for a moment: every load of a slot goes
// through mcas_read (the caller holds an EpochGuard), and an install CASes only from a 0 it read.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

#include "impl/mcas.h"

namespace impl {

class RadixMap {
public:
    RadixMap() = default;
    RadixMap(const RadixMap&) = delete;
    RadixMap& operator=(const RadixMap&) = delete;
    ~RadixMap() {
        for (int s = 0; s <= kLowStart; ++s)
            free_node(roots_[s].load(std::memory_order_relaxed), s);
    }

    // The leaf word of key, creating its path if needed (lock-free; allocates up to one node per
    // level). For writes only: a Txn that writes a leaf gets it here and reads it before writing.
    [[nodiscard]] Word& get(std::uint64_t key) const {
        const int start = start_level(key);
        Word* slot = &roots_[start];
        for (int level = start; level < kLevels; ++level) {
            std::uint64_t n = mcas_read(*slot);
            if (n == 0) n = install(*slot, level);
            if (level == kLevels - 1) return as_leaf(n)->w[index(key, level)];
            slot = &as_interior(n)->child[index(key, level)];
        }
        __builtin_unreachable();
    }

    // The leaf word of key if its path exists, else nullptr (then the leaf is 0). Never
    // allocates: device walks (impl/iotlb.h) and reads outside a Txn.
    [[nodiscard]] Word* find(std::uint64_t key) const {
        const Walk wk = walk_to(key);
        return wk.leaf ? wk.slot : nullptr;
    }

    // key's leaf as Txn t reads it: value 0 if its path is absent, and then t has read the empty
    // slot where the path ends, so t's commit fails if a writer creates the path meanwhile (the
    // absence is validated like a leaf). Never allocates. leaf: the leaf word, or nullptr.
    struct Read {
        Word* leaf = nullptr;
        std::uint64_t value = 0;
    };
    [[nodiscard]] Read read(Txn& t, std::uint64_t key) const {
        for (;;) {
            const Walk wk = walk_to(key);
            const std::uint64_t v = t.read(*wk.slot);
            if (wk.leaf) return Read{wk.slot, v};
            // A slot, read 0 by the walk: 0 in t too, or a node installed since (t then holds a
            // slot that never changes again; walk again through the new node).
            if (v == 0) return Read{};
        }
    }

    // Calls f(key, value) for every leaf whose value is not 0, in key order. Quiescent only
    // (and under an EpochGuard).
    template <class F>
    void for_each(F&& f) const {
        // Tree s holds exactly the keys of 8 - s significant bytes (the last one those of 3 or
        // fewer), so the trees from the last to the first hold ascending key ranges.
        for (int s = kLowStart; s >= 0; --s) walk(mcas_read(roots_[s]), s, 0, f);
    }

private:
    static constexpr int kBits = 8, kLevels = 8, kFan = 1 << kBits;
    // The shallowest tree starts at this level: its keys have only the last (kLevels -
    // kLowStart) bytes.
    static constexpr int kLowStart = 5;
    // The level key's tree starts at: where its first non-zero byte is, at most kLowStart.
    static int start_level(std::uint64_t key) {
        const int bytes = (static_cast<int>(std::bit_width(key)) + kBits - 1) / kBits;  // 0-8
        return std::min(kLevels - bytes, kLowStart);
    }
    struct alignas(8) Interior {
        std::array<Word, kFan> child{};  // node pointers or 0 (see the file comment)
    };
    struct alignas(8) Leaf {
        std::array<Word, kFan> w{};
    };
    static Interior* as_interior(std::uint64_t v) { return reinterpret_cast<Interior*>(v); }
    static Leaf* as_leaf(std::uint64_t v) { return reinterpret_cast<Leaf*>(v); }

    static unsigned index(std::uint64_t key, int level) {
        return static_cast<unsigned>(key >> (kBits * (kLevels - 1 - level))) & (kFan - 1);
    }

    // Where key's walk ends: its leaf word (leaf), or the first empty slot of its path.
    struct Walk {
        Word* slot;
        bool leaf;
    };
    [[nodiscard]] Walk walk_to(std::uint64_t key) const {
        // One walk per tree, unrolled at compile time (constant levels and shifts).
        switch (start_level(key)) {
            case 0:
                return walk_at<0>(&roots_[0], key);
            case 1:
                return walk_at<1>(&roots_[1], key);
            case 2:
                return walk_at<2>(&roots_[2], key);
            case 3:
                return walk_at<3>(&roots_[3], key);
            case 4:
                return walk_at<4>(&roots_[4], key);  // 4-byte bus addresses
            default:
                static_assert(kLowStart == 5);
                return walk_at<5>(&roots_[5], key);  // frame numbers
        }
    }
    // key's walk from level kLevel's slot on, one level per instantiation.
    template <int kLevel>
    [[nodiscard]] [[gnu::always_inline]] static Walk walk_at(Word* slot, std::uint64_t key) {
        // mcas_read (seq_cst): pairs with the install CAS, so the node's zeroed slots are
        // seen; it also completes a Txn's descriptor met on the slot (file comment).
        const std::uint64_t n = mcas_read(*slot);
        if (n == 0) return Walk{slot, false};
        if constexpr (kLevel == kLevels - 1)
            return Walk{&as_leaf(n)->w[index(key, kLevel)], true};
        else
            return walk_at<kLevel + 1>(&as_interior(n)->child[index(key, kLevel)], key);
    }

    static std::uint64_t install(Word& slot, int level) {
        const std::uint64_t fresh = level == kLevels - 1
                                        ? reinterpret_cast<std::uint64_t>(new Leaf)
                                        : reinterpret_cast<std::uint64_t>(new Interior);
        for (;;) {
            std::uint64_t expected = 0;
            // seq_cst, as the MCAS core's CASes (impl/mcas.h): the node's zero-initialised
            // contents happen before any reader that finds it; on failure we use the winner's.
            if (slot.compare_exchange_strong(expected, fresh, std::memory_order_seq_cst))
                return fresh;
            // A node (use it), or a Txn's descriptor on the empty slot: complete it and look
            // again.
            const std::uint64_t now = mcas_read(slot);
            if (now != 0) {
                if (level == kLevels - 1)
                    delete as_leaf(fresh);
                else
                    delete as_interior(fresh);
                return now;
            }
        }
    }

    static void free_node(std::uint64_t n, int level) {
        if (n == 0) return;
        if (level == kLevels - 1) {
            delete as_leaf(n);
            return;
        }
        auto* in = as_interior(n);
        for (auto& c : in->child) free_node(c.load(std::memory_order_relaxed), level + 1);
        delete in;
    }

    template <class F>
    static void walk(std::uint64_t n, int level, std::uint64_t prefix, F& f) {
        if (n == 0) return;
        if (level == kLevels - 1) {
            auto* leaf = as_leaf(n);
            for (int i = 0; i < kFan; ++i) {
                const std::uint64_t v = mcas_read(leaf->w[i]);
                if (v != 0) f((prefix << kBits) | static_cast<std::uint64_t>(i), v);
            }
            return;
        }
        auto* in = as_interior(n);
        for (int i = 0; i < kFan; ++i)
            walk(mcas_read(in->child[i]), level + 1,
                 (prefix << kBits) | static_cast<std::uint64_t>(i), f);
    }

    // Guarded by their own CAS protocol (see the file comment). mutable: get() on a const map
    // may grow it (a write through a const DomainRec's map).
    // roots_[s]: the tree of the keys whose walk starts at level s (start_level).
    mutable std::array<Word, kLowStart + 1> roots_{};
};

}  // namespace impl
