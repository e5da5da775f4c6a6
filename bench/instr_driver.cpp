// bench/instr_driver.cpp: one contender's data-path calls in a loop, for instruction counts per
// call under callgrind (bench/instr.sh), which the noisy wall clock of this VM cannot give.
//   pviommu_instr_driver FRAMES REPS CONTENDER MODE
// One pair, FRAMES frames. Unless NOPREFILL is set, server 0 first maps a tuple on every frame
// (W1's prefill). MODE pair: REPS times, server 1 maps a tuple on a random frame and unmaps it
// (W1's toggle; with NOPREFILL, a fresh tuple on a frame with none). MODE lookup: 2 x REPS
// lookups of server 0's tuples (needs the prefill). MODE balloon: W3's one-thread pattern on
// frames 0..REPS-1 (REPS <= FRAMES; no prefill): servers 0 and 1 map a swap-flagged tuple, the
// frame is ballooned out, server 2's map then fails with -ENXIO. Exit 1 if any call has another
// outcome.
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "bench/peers.h"

int main(int argc, char** argv) {
    using namespace spec;
    if (argc != 5) {
        std::fprintf(stderr,
                     "usage: pviommu_instr_driver FRAMES REPS CONTENDER pair|lookup|balloon\n");
        return 2;
    }
    const std::uint64_t frames = std::strtoull(argv[1], nullptr, 10);
    const long reps = std::strtol(argv[2], nullptr, 10);
    const std::string who = argv[3], mode = argv[4];
    std::unique_ptr<bench::Adapter> a;
    for (const auto& c : bench::contenders())
        if (c.name == who) a = c.make();
    if (!a && who == "v2-core") a = bench::make_v2_core();  // a bound, not a peer (peers.h)
    if (!a || frames == 0 || reps <= 0 ||
        (mode != "pair" && mode != "lookup" && mode != "balloon") ||
        (mode == "balloon" && static_cast<std::uint64_t>(reps) > frames)) {
        std::fprintf(stderr, "pviommu_instr_driver: bad arguments\n");
        return 2;
    }
    bench::WorldSpec w;
    w.frames = frames;
    w.servers = 5;
    a->setup(w);
    a->thread_begin();
    const DomId e = bench::emulator_of_pair(0), t = bench::target_of_pair(0);
    constexpr std::uint64_t kBase = 0x10000000, kBase2 = 0x20000000;  // as bench.cpp's
    Bfn out{};
    long bad = 0;
    if (std::getenv("NOPREFILL") == nullptr && mode != "balloon")
        for (std::uint64_t g = 0; g < frames; ++g)
            bad +=
                a->map_foreign(e, t, IoServId{0}, Bfn{kBase + g}, Gfn{g}, false, out) != Status::ok;
    std::mt19937_64 rng(1);
    if (mode == "pair") {
        for (long i = 0; i < reps; ++i) {
            const std::uint64_t g = rng() % frames;
            bad += a->map_foreign(e, t, IoServId{1}, Bfn{kBase2 + g}, Gfn{g}, false, out) !=
                   Status::ok;
            bad += a->unmap_foreign(e, t, IoServId{1}, Bfn{kBase2 + g}) != Status::ok;
        }
    } else if (mode == "balloon") {
        for (std::uint64_t g = 0; g < static_cast<std::uint64_t>(reps); ++g) {
            for (std::uint16_t s = 0; s < 2; ++s)
                bad += a->map_foreign(e, t, IoServId{s}, Bfn{kBase + g}, Gfn{g}, true, out) !=
                       Status::ok;
            (void)a->balloon(t, Gfn{g});
            bad += a->map_foreign(e, t, IoServId{2}, Bfn{kBase + g}, Gfn{g}, true, out) !=
                   Status::enxio;
        }
    } else {
        for (long i = 0; i < 2 * reps; ++i)
            bad += a->lookup_foreign(e, t, IoServId{0}, Gfn{rng() % frames}, out) != Status::ok;
    }
    a->thread_end();
    if (bad != 0) std::fprintf(stderr, "pviommu_instr_driver: %ld calls failed\n", bad);
    return bad != 0 ? 1 : 0;
}
