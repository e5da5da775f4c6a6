// The radix tree of P2M and IOMMU contexts (impl/radix.h): one tree per number of significant
// bytes of a key (issue 16: a bus address above 2^24 frames walked 8 levels). Checked against
// std::map: keys at every byte boundary and around it land where get() put them, find() and
// Txn reads see exactly the keys written, absent keys read 0 (that reads create no path is
// impl/tests/alloc_test.cpp's), and
// for_each visits every key once, in ascending order across the trees.
#include "impl/radix.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <vector>

namespace {

// Keys around every byte boundary of the 64-bit space, 0 and the largest key included.
std::vector<std::uint64_t> boundary_keys() {
    std::vector<std::uint64_t> keys{0, 1, 255, 256, ~std::uint64_t{0}, ~std::uint64_t{0} - 1};
    for (int bits = 8; bits < 64; bits += 8) {
        const std::uint64_t b = std::uint64_t{1} << bits;
        for (const std::uint64_t k : {b - 2, b - 1, b, b + 1, b + 255, b + 256, 2 * b - 1})
            keys.push_back(k);
    }
    return keys;
}

}  // namespace

TEST_CASE("radix: keys of every width land in their tree, are found, and are visited in order") {
    impl::EpochGuard g;
    impl::RadixMap map;
    std::map<std::uint64_t, std::uint64_t> model;
    std::uint64_t n = 0;
    for (const std::uint64_t k : boundary_keys()) {
        const std::uint64_t v = impl::enc(++n);
        map.get(k).store(v);
        model[k] = v;
    }
    for (const auto& [k, v] : model) {
        impl::Word* leaf = map.find(k);
        REQUIRE(leaf != nullptr);
        CHECK(leaf == &map.get(k));  // one leaf per key, whichever call reaches it
        CHECK(impl::mcas_read(*leaf) == v);
        impl::Txn t;
        CHECK(map.read(t, k).value == v);
        CHECK(map.read(t, k).leaf == leaf);
    }
    // Keys next to written ones but never written read 0.
    std::size_t absent = 0;
    for (const std::uint64_t k : boundary_keys()) {
        for (const std::uint64_t probe : {k ^ 0x80, k ^ (std::uint64_t{1} << 40)}) {
            if (model.contains(probe)) continue;
            ++absent;
            impl::Txn t;
            CHECK(map.read(t, probe).value == 0);
            impl::Word* leaf = map.find(probe);
            CHECK((leaf == nullptr || impl::mcas_read(*leaf) == 0));
        }
    }
    CHECK(absent > 50);
    std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
    map.for_each([&](std::uint64_t k, std::uint64_t v) { seen.emplace_back(k, v); });
    const std::vector<std::pair<std::uint64_t, std::uint64_t>> want(model.begin(), model.end());
    CHECK(seen == want);  // every key once, ascending
}
