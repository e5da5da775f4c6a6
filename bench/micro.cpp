// bench/micro.cpp: single-thread ns/op of map_foreign_page, lookup_foreign_page and
// unmap_foreign_page on ref and impl, measured in the same run (median of repetitions; the
// machine is noisy). Usage: pviommu_micro [frames] [reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "impl/hypervisor.h"
#include "ref/hypervisor.h"

using namespace spec;

namespace {

using Factory = std::function<std::unique_ptr<spec::Hypervisor>(const Host&)>;

struct Sample {
    double map, lookup, unmap;
};

Sample run_once(const Factory& make, std::uint32_t n) {
    Host h;
    h.frames = 2 * n + 64;
    auto hv = make(h);
    (void)hv->create_domain(DomId{0}, DomainRole::hardware, true, 16);
    (void)hv->create_domain(DomId{1}, DomainRole::guest, false, n);
    hv->create_ioserver(DomId{1}, IoServId{0}, DomId{0}, 511);
    using clock = std::chrono::steady_clock;
    auto time = [&](auto&& body) {
        const auto t0 = clock::now();
        for (std::uint32_t i = 0; i < n; ++i) body(i);
        return std::chrono::duration<double, std::nano>(clock::now() - t0).count() / n;
    };
    constexpr std::uint64_t kBase = 0x1000000;  // above the 1:1 map
    Sample s{};
    s.map = time([&](std::uint32_t i) {
        MapForeignPage op;
        op.flags = Flags{IOMMUOP_readable | IOMMUOP_writeable};
        op.bfn = Bfn{kBase + i};
        op.gfn = Gfn{i};
        op.domid = DomId{1};
        if (hv->map_foreign_page(DomId{0}, op) != Status::ok) std::abort();
    });
    s.lookup = time([&](std::uint32_t i) {
        LookupForeignPage op;
        op.gfn = Gfn{i};
        op.domid = DomId{1};
        if (hv->lookup_foreign_page(DomId{0}, op) != Status::ok) std::abort();
    });
    s.unmap = time([&](std::uint32_t i) {
        UnmapForeignPage op;
        op.bfn = Bfn{kBase + i};
        op.domid = DomId{1};
        if (hv->unmap_foreign_page(DomId{0}, op) != Status::ok) std::abort();
    });
    return s;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
    const std::uint32_t n = argc > 1 ? static_cast<std::uint32_t>(std::atoi(argv[1])) : 4096;
    const int reps = argc > 2 ? std::atoi(argv[2]) : 9;
    const std::pair<const char*, Factory> models[] = {
        {"ref", [](const Host& h) { return ref::make(h); }},
        {"impl", [](const Host& h) { return impl::make(h); }},
    };
    std::printf("single thread, %u frames, median of %d runs (ns/op)\n", n, reps);
    std::printf("%-6s %12s %12s %12s\n", "model", "map_foreign", "lookup", "unmap_foreign");
    for (const auto& [name, make] : models) {
        std::vector<double> m, l, u;
        for (int r = 0; r < reps; ++r) {
            const Sample s = run_once(make, n);
            m.push_back(s.map);
            l.push_back(s.lookup);
            u.push_back(s.unmap);
        }
        std::printf("%-6s %12.0f %12.0f %12.0f\n", name, median(m), median(l), median(u));
    }
}
