// bench/tests/count_test.cpp: issue 16's measurement side. The sync counts per op kind are the
// counter's difference around each call, attributed to the call's kind; a normal build says it
// did not count instead of printing 0; the SVG marks single-size cells (issue 18).
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "bench/bench.h"
#include "bench/peers.h"

namespace {

using namespace spec;

// Costs a known number of "locks" per op kind, on this thread's counter; every op succeeds.
constexpr std::uint64_t kLookupCost = 1, kMapCost = 3, kUnmapCost = 5, kBalloonCost = 7;
class Fake final : public bench::Adapter {
public:
    std::string name() const override { return "fake"; }
    void setup(const bench::WorldSpec&) override {}
    Status map_foreign(DomId, DomId, IoServId, Bfn b, Gfn, bool, Bfn& out) override {
        bench::t_lock_count += kMapCost;
        out = b;
        return Status::ok;
    }
    Status lookup_foreign(DomId, DomId, IoServId, Gfn, Bfn& out) override {
        bench::t_lock_count += kLookupCost;
        out = Bfn{0};
        return Status::ok;
    }
    Status unmap_foreign(DomId, DomId, IoServId, Bfn) override {
        bench::t_lock_count += kUnmapCost;
        return Status::ok;
    }
    BalloonOutcome balloon(DomId, Gfn) override {
        bench::t_lock_count += kBalloonCost;
        return {};
    }
    std::map<std::uint64_t, bench::FrameObs> observe() override { return {}; }  // all freed
};

bench::Contender fake() {
    return {"fake", [] { return std::make_unique<Fake>(); }, bench::SyncUnit::locks};
}

std::uint64_t cost_of(const std::string& kind) {
    if (kind == "lookup") return kLookupCost;
    if (kind == "map" || kind == "map-swap") return kMapCost;
    if (kind == "unmap") return kUnmapCost;
    if (kind == "balloon") return kBalloonCost;
    return 0;
}

}  // namespace

TEST_CASE("counts: each op kind gets exactly its own calls' sync events, on every thread") {
    for (const char* wl : {"W1-uniform", "W2-churn", "W3-balloon", "W4-hot1"})
        for (unsigned threads : {1u, 2u}) {
            CAPTURE(wl);
            CAPTURE(threads);
            const auto counts = bench::count_cell(fake(), wl, 512, threads, 3000, 7);
            REQUIRE_FALSE(counts.empty());
            std::uint64_t ops = 0;
            for (const auto& c : counts) {
                CAPTURE(c.kind);
                CHECK(c.ops > 0);
                CHECK(c.sync == c.ops * cost_of(c.kind));
                ops += c.ops;
            }
            // Every op of every thread is counted once (W3: 4 ops per frame on one thread, one
            // per frame per thread on two).
            const std::string w = wl;
            const std::uint64_t frames = w == "W3-balloon" ? 512 : 0;
            const std::uint64_t want =
                w == "W3-balloon" ? (threads == 1 ? 4 * frames : threads * frames) : threads * 3000;
            CHECK(ops == want);
        }
}

TEST_CASE("counts: impl's RMWs are counted in the counting build, and only there") {
    bench::Contender impl_c;
    for (auto& c : bench::contenders())
        if (c.name == "impl") impl_c = c;
    REQUIRE(impl_c.unit == bench::SyncUnit::rmw);
    const auto counts = bench::count_cell(impl_c, "W2-churn", 1000, 1, 2000, 1);
    std::uint64_t map = 0, unmap = 0;
    for (const auto& c : counts) {
        if (c.kind == "map") map = c.sync;
        if (c.kind == "unmap") unmap = c.sync;
    }
    if (bench::kCountSync) {
        CHECK(map > 0);  // a map changes shared words: at least one RMW
        CHECK(unmap > 0);
    } else {
        CHECK(map == 0);  // nothing counted, so the bench must not print it as a measurement
        CHECK(unmap == 0);
    }
}

TEST_CASE(
    "report: a normal build says the RMW count needs the counting build and the SVG has markers") {
    bench::BenchOptions o;
    o.smoke = true;  // one size (1e3), threads 1 and 2
    o.workloads = "W2";
    o.contenders = "xen-style";
    o.svg = "count_test.svg";
    std::ostringstream out;
    REQUIRE(bench::run_bench(o, out) == 0);
    const std::string s = out.str();
    if (bench::kCountSync) {
        CHECK(s.find("(counted)") != std::string::npos);
        CHECK(s.find("did not succeed") == std::string::npos);  // the per-call profile's calls
    } else {
        CHECK(s.find("needs -DPVIOMMU_COUNT_RMW=ON") != std::string::npos);
        CHECK(s.find(" n/c\n") != std::string::npos);  // the impl RMW/op column of the table
    }
    // One size only: no line can be drawn, so each (panel, contender) needs its marker: 2
    // panels (1 and 2 threads) x 2 contenders (impl, xen-style).
    std::ifstream f(o.svg);
    const std::string svg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::size_t circles = 0;
    for (std::size_t p = svg.find("<circle"); p != std::string::npos;
         p = svg.find("<circle", p + 1))
        ++circles;
    CHECK(circles == 4);
    CHECK(svg.find("no data") == std::string::npos);
}
