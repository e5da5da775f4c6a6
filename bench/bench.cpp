// bench/bench.cpp: the harness of issue 6. Every contender (bench/peers.h) runs every workload
// in the same process, after the machine's floors are measured.
//
// Method
//  - A cell is (workload, table size, threads, contender). Each repetition builds a fresh world,
//    prefills it (untimed), pre-generates every thread's op stream (untimed: the RNG and the Zipf
//    sampler are not measured), then starts the threads together and times the whole run.
//  - ns/op = wall time x threads / ops (the time one thread spends per op); ops/s = ops / wall.
//    The median over repetitions is reported; p99 is over batches of 256 ops of every thread of
//    every repetition (the batch's ns/op), so it shows stalls (preemption, lock convoys).
//  - W1 and W2 run on disjoint domains: thread t works on pair t, the table split among them.
//    W3 and W4 share one pair.
//  - Bytes per live mapping: RSS after the W1 prefill minus RSS before it (after malloc_trim),
//    divided by the mappings the prefill made (one tuple and one IOMMU entry each).
//  - Floors: an uncontended atomic RMW, an L1 hit and a dependent load at a given working set by
//    pointer chasing through a random cyclic permutation of 64-byte lines.
#include "bench/bench.h"

#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <sstream>
#include <string_view>
#include <thread>
#include <type_traits>
#include <vector>

#include "bench/peers.h"
#include "impl/hypervisor.h"

namespace bench {

using namespace spec;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint64_t kBase = 0x10000000;   // bfns of the main tuples
constexpr std::uint64_t kBase2 = 0x20000000;  // bfns of W1's churned tuples
constexpr int kBatch = 256;
constexpr std::uint64_t kRefMaxSize = 1000;  // ref+mutex runs up to this size only
// W4-hot64 has no target and touches 64 frames whatever the size: above this size a run of it
// is the prefill's cost, so it runs there only when --workloads names it.
constexpr std::uint64_t kHot64MaxSize = 100000;

double now_ns() {
    return std::chrono::duration<double, std::nano>(Clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}
double pct(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

double thread_cpu_ns() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

long rss_bytes() {
    std::ifstream f("/proc/self/statm");
    long pages = 0, resident = 0;
    f >> pages >> resident;
    return resident * 4096;
}

// ---------------------------------------------------------------------------------------------
// Floors.

double floor_atomic_rmw(std::uint64_t n) {
    std::atomic<std::uint64_t> x{0};
    const double t0 = now_ns();
    for (std::uint64_t i = 0; i < n; ++i) x.fetch_add(1, std::memory_order_seq_cst);
    return (now_ns() - t0) / static_cast<double>(n) + 0 * static_cast<double>(x.load());
}

// ns per uncontended std::mutex lock + unlock (what one lock of a peer costs when no one else
// wants it: the lock ceiling's unit).
// Measured on a second thread: glibc takes a cheaper path while a process has one thread, and
// every contender runs with several.
double floor_mutex_pair(std::uint64_t n) {
    double ns = 0;
    std::thread th([&] {
        std::mutex m;
        const double t0 = now_ns();
        for (std::uint64_t i = 0; i < n; ++i) {
            m.lock();
            m.unlock();
        }
        ns = (now_ns() - t0) / static_cast<double>(n);
    });
    th.join();
    return ns;
}

// ns per dependent load over a working set of `bytes` (random cyclic permutation of lines).
double floor_chase(std::uint64_t bytes, std::uint64_t steps, std::mt19937_64& rng) {
    struct alignas(64) Line {
        std::uint64_t next;
        char pad[56];
    };
    const std::uint64_t n = std::max<std::uint64_t>(bytes / sizeof(Line), 16);
    std::vector<Line> v(n);
    std::vector<std::uint64_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin() + 1, perm.end(), rng);
    for (std::uint64_t i = 0; i < n; ++i) v[perm[i]].next = perm[(i + 1) % n];
    std::uint64_t p = 0;
    for (std::uint64_t i = 0; i < n; ++i) p = v[p].next;  // warm
    const double t0 = now_ns();
    for (std::uint64_t i = 0; i < steps; ++i) p = v[p].next;
    const double t = (now_ns() - t0) / static_cast<double>(steps);
    volatile std::uint64_t sink = p;
    (void)sink;
    return t;
}

// ---------------------------------------------------------------------------------------------
// Workloads.

enum class Wl { w1u, w1z, w2, w3, w4h1, w4h64 };
const char* wl_name(Wl w) {
    switch (w) {
        case Wl::w1u:
            return "W1-uniform";
        case Wl::w1z:
            return "W1-zipf0.99";
        case Wl::w2:
            return "W2-churn";
        case Wl::w3:
            return "W3-balloon";
        case Wl::w4h1:
            return "W4-hot1";
        case Wl::w4h64:
            return "W4-hot64";
    }
    return "?";
}
bool disjoint(Wl w) { return w == Wl::w1u || w == Wl::w1z || w == Wl::w2; }

// One op of a pre-generated stream.
enum : std::uint8_t { kLookup, kToggle, kMapSwap, kBalloon };
// What the sync counts are kept by (issue 16: RMWs per operation, by op).
enum CountKind : std::uint8_t { ckLookup, ckMap, ckUnmap, ckMapSwap, ckBalloon, kKinds };
constexpr std::array<const char*, kKinds> kKindName = {"lookup", "map", "unmap", "map-swap",
                                                       "balloon"};
constexpr std::array<const char*, kKinds> kKindOp = {"lookup_foreign_page", "map_foreign_page",
                                                     "unmap_foreign_page", "map_foreign_page(swap)",
                                                     "balloon"};
using KindCounts = std::array<std::uint64_t, kKinds>;

struct Op {
    std::uint32_t g;
    std::uint8_t kind;
    std::uint8_t server;
    std::uint8_t base2;  // bfn = (base2 ? kBase2 : kBase) + g
};

// YCSB's Zipfian generator (Gray et al. 1994), ranks scrambled over [0, n).
class Zipf {
public:
    Zipf(std::uint64_t n, double theta) : n_(n), theta_(theta) {
        for (std::uint64_t i = 1; i <= n; ++i)
            zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
        const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
        alpha_ = 1.0 / (1.0 - theta);
        eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
    }
    std::uint64_t operator()(std::mt19937_64& rng) {
        const double u = std::uniform_real_distribution<double>(0, 1)(rng);
        const double uz = u * zetan_;
        std::uint64_t r;
        if (uz < 1.0)
            r = 0;
        else if (uz < 1.0 + std::pow(0.5, theta_))
            r = 1;
        else
            r = static_cast<std::uint64_t>(static_cast<double>(n_) *
                                           std::pow(eta_ * u - eta_ + 1, alpha_));
        r = std::min(r, n_ - 1);
        return (r * 0x9E3779B97F4A7C15ULL >> 7) % n_;  // scramble: hot ranks spread over the table
    }

private:
    std::uint64_t n_;
    double theta_, zetan_ = 0, alpha_ = 0, eta_ = 0;
};

struct Plan {
    WorldSpec world;
    std::vector<std::vector<Op>> ops;  // per thread
    std::vector<std::uint32_t> pair;   // per thread
};

Plan make_plan(Wl w, std::uint64_t size, unsigned threads, std::uint64_t k, std::mt19937_64& rng) {
    Plan p;
    p.world.servers = 5;
    p.world.ring_slots = 64;
    p.world.pairs = disjoint(w) ? threads : 1;
    p.world.frames = std::max<std::uint64_t>(size / p.world.pairs, 64);
    const std::uint64_t n = p.world.frames;
    p.ops.resize(threads);
    p.pair.resize(threads);
    std::unique_ptr<Zipf> zipf;
    if (w == Wl::w1z) zipf = std::make_unique<Zipf>(n, 0.99);
    for (unsigned t = 0; t < threads; ++t) {
        p.pair[t] = disjoint(w) ? t : 0;
        auto& v = p.ops[t];
        auto uni = [&](std::uint64_t m) { return static_cast<std::uint32_t>(rng() % m); };
        switch (w) {
            case Wl::w1u:
            case Wl::w1z:
                for (std::uint64_t i = 0; i < k; ++i) {
                    const auto g = static_cast<std::uint32_t>(zipf ? (*zipf)(rng) : uni(n));
                    if (rng() % 100 < 95)
                        v.push_back({g, kLookup, 0, 0});
                    else
                        v.push_back({g, kToggle, 1, 1});
                }
                break;
            case Wl::w2:
                for (std::uint64_t i = 0; i < k; ++i) {
                    const std::uint32_t g = uni(n);
                    const auto j = static_cast<std::uint8_t>(uni(1 + g % 4));  // 1-4 tuples/frame
                    v.push_back({g, kToggle, j, 0});
                }
                break;
            case Wl::w3:
                // One thread balloons every frame in order; the others map them in the same order
                // (swap-flagged, each from its own server) and race it. One thread alone
                // interleaves: two maps, the balloon, a map that must fail.
                for (std::uint64_t g = 0; g < n; ++g) {
                    const auto gg = static_cast<std::uint32_t>(g);
                    if (threads == 1) {
                        v.push_back({gg, kMapSwap, 0, 0});
                        v.push_back({gg, kMapSwap, 1, 0});
                        v.push_back({gg, kBalloon, 0, 0});
                        v.push_back({gg, kMapSwap, 2, 0});
                    } else if (t == 0) {
                        v.push_back({gg, kBalloon, 0, 0});
                    } else {
                        v.push_back({gg, kMapSwap, static_cast<std::uint8_t>(t % 5), 0});
                    }
                }
                break;
            case Wl::w4h1:
            case Wl::w4h64: {
                const std::uint64_t hot = w == Wl::w4h1 ? 1 : 64;
                for (std::uint64_t i = 0; i < k; ++i) {
                    const std::uint32_t g = uni(hot);
                    if (rng() % 2)
                        v.push_back({g, kLookup, 0, 0});
                    else
                        v.push_back({g, kToggle, static_cast<std::uint8_t>(1 + t), 0});
                }
                break;
            }
        }
    }
    return p;
}

struct RepResult {
    double wall_ns = 0;
    double cpu_ns = 0;  // CPU time of the worker threads, summed (excludes time preempted)
    std::uint64_t ops = 0;
    std::vector<double> batches;  // ns/op of each batch
    double bytes_per_mapping = -1;
    std::uint64_t unexpected = 0;  // statuses a workload does not allow
    std::string check_error;       // W3's after-check
    KindCounts kops{}, ksync{};    // counting runs: ops and sync events per op kind
};

// Runs one repetition of a plan on a fresh adapter.
// count: diff sync_count() around every call, by op kind (the counting build; tests).
RepResult run_rep(const Contender& c, Wl w, const Plan& plan, bool measure_rss, double deadline_ns,
                  bool count) {
    RepResult r;
    auto a = c.make();
    const unsigned threads = static_cast<unsigned>(plan.ops.size());
    const WorldSpec& world = plan.world;
    a->thread_begin();
    a->setup(world);
    // Prefill; toggle state per thread: bit (g * 8 + server) set when the tuple exists.
    std::vector<std::vector<std::uint8_t>> have(threads,
                                                std::vector<std::uint8_t>(world.frames * 8, 0));
    malloc_trim(0);
    const long rss0 = rss_bytes();
    std::uint64_t mappings = 0;
    for (std::uint32_t p = 0; p < world.pairs; ++p) {
        const DomId e = emulator_of_pair(p), t = target_of_pair(p);
        for (std::uint64_t g = 0; g < world.frames; ++g) {
            Bfn out;
            if (w == Wl::w3) break;
            if (w == Wl::w2) {
                for (std::uint64_t j = 0; j < 1 + g % 4; ++j)
                    if ((g + j) % 2 == 0) {
                        if (a->map_foreign(e, t, IoServId{static_cast<std::uint16_t>(j)},
                                           Bfn{kBase + g}, Gfn{g}, false, out) != Status::ok)
                            ++r.unexpected;
                        have[p][g * 8 + j] = 1;
                        ++mappings;
                    }
            } else {
                if (a->map_foreign(e, t, IoServId{0}, Bfn{kBase + g}, Gfn{g}, false, out) !=
                    Status::ok)
                    ++r.unexpected;
                ++mappings;
            }
        }
    }
    if (measure_rss && mappings > 0)
        r.bytes_per_mapping =
            static_cast<double>(rss_bytes() - rss0) / static_cast<double>(mappings);
    a->thread_end();

    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::vector<double>> batches(threads);
    std::vector<std::uint64_t> bad(threads, 0), done(threads, 0);
    std::vector<KindCounts> kops(threads), ksync(threads);
    std::vector<double> cpu(threads, 0);
    std::atomic<bool> stop{false};  // the repetition's time budget ran out (W1, W2, W4 only)
    double t0 = 0;
    std::vector<std::thread> ts;
    // The worker, instantiated with and without counting so that a timing run pays nothing.
    const auto body = [&](unsigned th, auto count_tag) {
        constexpr bool kCount = decltype(count_tag)::value;
        {
            a->thread_begin();
            const DomId e = emulator_of_pair(plan.pair[th]), t = target_of_pair(plan.pair[th]);
            auto& hv = have[disjoint(w) ? th : 0];
            // W4: every thread toggles its own server's tuples, so hv is per thread there.
            std::vector<std::uint8_t> own;
            if (!disjoint(w)) own.assign(world.frames * 8, 0);
            auto& bits = disjoint(w) ? hv : own;
            const auto& ops = plan.ops[th];
            auto& bt = batches[th];
            bt.reserve(ops.size() / kBatch + 1);
            ready.fetch_add(1);
            while (!go.load(std::memory_order_acquire)) {
            }
            const double c0 = thread_cpu_ns();
            double tb = now_ns();
            std::uint64_t nbad = 0;  // thread-local: no false sharing while timed
            KindCounts my_ops{}, my_sync{};
            std::size_t i = 0;
            for (; i < ops.size(); ++i) {
                const Op& o = ops[i];
                const Gfn g{o.g};
                const IoServId s{o.server};
                const Bfn b{(o.base2 ? kBase2 : kBase) + o.g};
                Bfn out;
                Status st = Status::ok;
                std::uint64_t s0 = 0;
                if constexpr (kCount) s0 = sync_count();
                CountKind kind = ckLookup;
                switch (o.kind) {
                    case kLookup:
                        st = a->lookup_foreign(e, t, s, g, out);
                        break;
                    case kToggle: {
                        auto& bit = bits[std::size_t{o.g} * 8 + o.server];
                        kind = bit ? ckUnmap : ckMap;
                        st = bit ? a->unmap_foreign(e, t, s, b)
                                 : a->map_foreign(e, t, s, b, g, false, out);
                        bit ^= 1;
                        break;
                    }
                    case kMapSwap:
                        kind = ckMapSwap;
                        st = a->map_foreign(e, t, s, b, g, true, out);
                        if (st == Status::enxio) st = Status::ok;  // the balloon won the race
                        break;
                    case kBalloon:
                        kind = ckBalloon;
                        (void)a->balloon(t, g);
                        break;
                }
                if constexpr (kCount) {
                    my_sync[kind] += sync_count() - s0;
                    ++my_ops[kind];
                }
                nbad += st != Status::ok;
                if ((i + 1) % kBatch == 0) {
                    const double tn = now_ns();
                    bt.push_back((tn - tb) / kBatch);
                    tb = tn;
                    a->quiescent();
                    if (w != Wl::w3 &&
                        (stop.load(std::memory_order_relaxed) || tn - t0 > deadline_ns)) {
                        stop.store(true, std::memory_order_relaxed);
                        ++i;
                        break;
                    }
                }
            }
            cpu[th] = thread_cpu_ns() - c0;
            done[th] = i;
            bad[th] = nbad;
            kops[th] = my_ops;
            ksync[th] = my_sync;
            a->thread_end();
        }
    };
    for (unsigned th = 0; th < threads; ++th)
        ts.emplace_back([&, th] {
            if (count)
                body(th, std::true_type{});
            else
                body(th, std::false_type{});
        });
    while (ready.load() < threads) std::this_thread::yield();
    t0 = now_ns();
    go.store(true, std::memory_order_release);
    for (auto& t : ts) t.join();
    r.wall_ns = now_ns() - t0;
    for (unsigned th = 0; th < threads; ++th) {
        r.ops += done[th];
        r.cpu_ns += cpu[th];
        r.unexpected += bad[th];
        r.batches.insert(r.batches.end(), batches[th].begin(), batches[th].end());
        for (int k = 0; k < kKinds; ++k) {
            r.kops[k] += kops[th][k];
            r.ksync[k] += ksync[th][k];
        }
    }
    if (w == Wl::w3) {  // every frame freed exactly once, no tuple survived
        a->thread_begin();
        const auto obs = a->observe();
        a->thread_end();
        const std::uint64_t n = world.frames;
        for (std::uint64_t g = 0; g < n && r.check_error.empty(); ++g) {
            const Mfn m = mfn_of(world, 0, Gfn{g});
            if (obs.contains(m.v))
                r.check_error = "frame " + std::to_string(m.v) + " not freed (count " +
                                std::to_string(obs.at(m.v).count) + ", tuples " +
                                std::to_string(obs.at(m.v).tuples) + ")";
            else if (auto f = a->times_freed(m); f && *f != 1)
                r.check_error =
                    "frame " + std::to_string(m.v) + " freed " + std::to_string(*f) + " times";
        }
    }
    return r;
}

struct Cell {
    Wl w;
    std::uint64_t size;
    unsigned threads;
    std::string contender;
    double ns_med = 0, ns_p99 = 0, ops_s = 0, bytes_map = -1, cpu_med = 0;
    bool counted = false;        // sync counted (counting build, a countable contender)
    KindCounts kops{}, ksync{};  // summed over repetitions and threads
    // Sync events per op of one kind, or per op over all kinds (k = kKinds); < 0: no such op.
    [[nodiscard]] double sync_per_op(int k) const {
        std::uint64_t n = 0, x = 0;
        for (int i = 0; i < kKinds; ++i)
            if (k == kKinds || k == i) n += kops[i], x += ksync[i];
        return n == 0 ? -1 : static_cast<double>(x) / static_cast<double>(n);
    }
};

// The non-empty items of a comma-separated option ("W1,W3", "impl,tbb").
std::vector<std::string> split_list(const std::string& list) {
    std::vector<std::string> items;
    std::istringstream in(list);
    for (std::string p; std::getline(in, p, ',');)
        if (!p.empty()) items.push_back(p);
    return items;
}

std::string fmt(double v, int prec = 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", prec, v);
    return buf;
}

// ---------------------------------------------------------------------------------------------
// SVG: one panel per (workload, threads), ns/op against table size, log-log, a line per
// contender.

void write_svg(const std::string& path, const std::vector<Cell>& cells, const std::vector<Wl>& wls,
               const std::vector<unsigned>& threads, const std::vector<std::string>& names,
               const std::string& caption) {
    const int pw = 360, ph = 240, cols = static_cast<int>(threads.size());
    const int rows = static_cast<int>(wls.size());
    const int W = cols * pw + 160, H = rows * ph + 60;
    const char* colors[] = {"#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
    std::ofstream f(path);
    f << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
         "fill=\"white\"/>\n";
    f << "<text x=\"10\" y=\"20\" font-size=\"14\">pviommu bench: median ns/op vs table size "
         "(frames), log-log. "
      << caption << "</text>\n";
    for (std::size_t i = 0; i < names.size(); ++i)
        f << "<text x=\"" << cols * pw + 20 << "\" y=\"" << 60 + 18 * i << "\" fill=\""
          << colors[i % 6] << "\">&#9632; " << names[i] << "</text>\n";
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
            const int x0 = c * pw + 60, y0 = r * ph + 50, w = pw - 80, h = ph - 60;
            std::vector<const Cell*> mine;
            for (const Cell& x : cells)
                if (x.w == wls[r] && x.threads == threads[c] && x.ns_med > 0) mine.push_back(&x);
            if (mine.empty()) {  // a frame that says so, not an empty space
                f << "<rect x=\"" << x0 << "\" y=\"" << y0 << "\" width=\"" << w << "\" height=\""
                  << h << "\" fill=\"none\" stroke=\"#888\"/>\n<text x=\"" << x0 + w / 2
                  << "\" y=\"" << y0 + h / 2 << "\" text-anchor=\"middle\">" << wl_name(wls[r])
                  << ", " << threads[c] << " thread(s): no data</text>\n";
                continue;
            }
            double xmin = 1e300, xmax = 0, ymin = 1e300, ymax = 0;
            for (const Cell* x : mine) {
                xmin = std::min(xmin, double(x->size)), xmax = std::max(xmax, double(x->size));
                ymin = std::min(ymin, x->ns_med), ymax = std::max(ymax, x->ns_med);
            }
            // One size only (a --max-size=1000 run): centre it in a decade, so that its markers
            // are inside the panel (issue 18: a one-point polyline draws nothing).
            const double lx0 = xmin == xmax ? std::log10(xmin) - 0.5 : std::log10(xmin);
            const double lx1 = std::max(std::log10(xmax), lx0 + 1);
            const double ly0 = std::floor(std::log10(ymin)),
                         ly1 = std::max(std::ceil(std::log10(ymax)), ly0 + 1);
            auto X = [&](double v) { return x0 + (std::log10(v) - lx0) / (lx1 - lx0) * w; };
            auto Y = [&](double v) { return y0 + h - (std::log10(v) - ly0) / (ly1 - ly0) * h; };
            f << "<rect x=\"" << x0 << "\" y=\"" << y0 << "\" width=\"" << w << "\" height=\"" << h
              << "\" fill=\"none\" stroke=\"#888\"/>\n";
            f << "<text x=\"" << x0 << "\" y=\"" << y0 - 6 << "\">" << wl_name(wls[r]) << ", "
              << threads[c] << " thread(s)</text>\n";
            for (double d = ly0; d <= ly1; d += 1)
                f << "<text x=\"" << x0 - 4 << "\" y=\"" << Y(std::pow(10, d)) + 4
                  << "\" text-anchor=\"end\">" << fmt(std::pow(10, d)) << "</text>\n";
            for (double d = std::ceil(lx0); d <= lx1; d += 1)
                f << "<text x=\"" << X(std::pow(10, d)) << "\" y=\"" << y0 + h + 14
                  << "\" text-anchor=\"middle\">1e" << d << "</text>\n";
            for (std::size_t i = 0; i < names.size(); ++i) {
                std::vector<const Cell*> line;
                for (const Cell* x : mine)
                    if (x->contender == names[i]) line.push_back(x);
                std::sort(line.begin(), line.end(),
                          [](auto a, auto b) { return a->size < b->size; });
                if (line.empty()) continue;
                f << "<polyline fill=\"none\" stroke-width=\"2\" stroke=\"" << colors[i % 6]
                  << "\" points=\"";
                for (const Cell* x : line) f << X(double(x->size)) << "," << Y(x->ns_med) << " ";
                f << "\"/>\n";
                for (const Cell* x : line)  // a marker per measured cell, lines or not
                    f << "<circle cx=\"" << X(double(x->size)) << "\" cy=\"" << Y(x->ns_med)
                      << "\" r=\"3\" fill=\"" << colors[i % 6] << "\"/>\n";
            }
        }
    f << "</svg>\n";
}

// ---------------------------------------------------------------------------------------------
// impl's atomic RMWs per hypercall (issue 16), one thread, no contention: every data-path call
// the workloads make, and those they do not (map_page, unmap_page, populate, drain), each n
// times on a fresh world. Only meaningful in the counting build.

struct ProfileRow {
    std::string op;
    std::uint64_t n = 0, sum = 0, min = ~std::uint64_t{0}, max = 0, not_ok = 0;
    void add(std::uint64_t x, bool ok) {
        ++n;
        sum += x;
        min = std::min(min, x);
        max = std::max(max, x);
        not_ok += !ok;
    }
    [[nodiscard]] double mean() const { return n ? static_cast<double>(sum) / double(n) : 0; }
};

std::vector<ProfileRow> hypercall_profile(std::uint64_t n) {
    const DomId e{1}, t{2};
    constexpr std::uint64_t kOwnBase = 0x30000000;  // E's own bfns (map_page)
    Host h;
    h.mode = IommuMode::strict;
    h.frames = 3 * n + 64;  // E's, T's, and n free for populate
    auto hv = impl::make(h);
    if (!hv->create_domain(e, DomainRole::guest, true, n) ||
        !hv->create_domain(t, DomainRole::guest, false, n))
        std::abort();
    hv->grant_dm(e, t);
    for (std::uint16_t s = 0; s < 2; ++s) hv->create_ioserver(t, IoServId{s}, e, 64);
    std::vector<ProfileRow> rows;
    const auto row = [&](const char* name) -> ProfileRow& {
        for (auto& r : rows)
            if (r.op == name) return r;
        rows.push_back(ProfileRow{name});
        return rows.back();
    };
    const auto measure = [&](const char* name, auto&& call) {
        const std::uint64_t r0 = impl::rmw_count();
        const bool ok = call();
        row(name).add(impl::rmw_count() - r0, ok);
    };
    const Flags rw{static_cast<std::uint16_t>(IOMMUOP_readable | IOMMUOP_writeable)};
    const auto foreign = [&](std::uint64_t bfn, std::uint64_t g, std::uint16_t s) {
        MapForeignPage m;
        m.flags = rw;
        m.bfn = Bfn{bfn};
        m.gfn = Gfn{g};
        m.domid = t;
        m.ioserver = IoServId{s};
        return m;
    };
    const auto unmap_foreign = [&](std::uint64_t bfn, std::uint16_t s) {
        UnmapForeignPage u;
        u.bfn = Bfn{bfn};
        u.domid = t;
        u.ioserver = IoServId{s};
        return u;
    };
    for (std::uint64_t g = 0; g < n; ++g) {
        MapPage mp;
        mp.flags = rw;
        mp.bfn = Bfn{kOwnBase + g};
        mp.gfn = Gfn{g};
        measure("map_page", [&] { return hv->map_page(e, mp) == Status::ok; });
        MapForeignPage m1 = foreign(kBase + g, g, 0);
        measure("map_foreign_page (1st tuple)",
                [&] { return hv->map_foreign_page(e, m1) == Status::ok; });
        MapForeignPage m2 = foreign(kBase2 + g, g, 1);
        measure("map_foreign_page (2nd tuple)",
                [&] { return hv->map_foreign_page(e, m2) == Status::ok; });
        LookupForeignPage lk;
        lk.gfn = Gfn{g};
        lk.domid = t;
        lk.ioserver = IoServId{0};
        measure("lookup_foreign_page",
                [&] { return hv->lookup_foreign_page(e, lk) == Status::ok; });
        UnmapForeignPage u2 = unmap_foreign(kBase2 + g, 1);
        measure("unmap_foreign_page", [&] { return hv->unmap_foreign_page(e, u2) == Status::ok; });
        UnmapPage up;
        up.bfn = Bfn{kOwnBase + g};
        measure("unmap_page", [&] { return hv->unmap_page(e, up) == Status::ok; });
    }
    for (std::uint64_t g = 0; g < n; ++g) {
        if (g % 2 == 0) {  // the frame keeps its tuple: one invalidate, then drained
            measure("balloon (1 tuple)", [&] { return hv->balloon(t, Gfn{g}).invalidates == 1; });
            measure("drain (1 request)", [&] { return hv->drain(t, IoServId{0}, 4).size() == 1; });
        } else {
            UnmapForeignPage u1 = unmap_foreign(kBase + g, 0);
            measure("unmap_foreign_page",
                    [&] { return hv->unmap_foreign_page(e, u1) == Status::ok; });
            measure("balloon (0 tuples)", [&] {
                const auto o = hv->balloon(t, Gfn{g});
                return o.mfn.has_value() && o.invalidates == 0;
            });
        }
    }
    for (std::uint64_t g = 0; g < n; ++g)
        measure("populate", [&] { return hv->populate(t, Gfn{g}).mfn.has_value(); });
    return rows;
}

const char* unit_name(SyncUnit u) {
    switch (u) {
        case SyncUnit::rmw:
            return "atomic_rmw";
        case SyncUnit::locks:
            return "lock_acquisitions";
        case SyncUnit::none:
            return "n/a";
    }
    return "?";
}

// The budget of a mode (printed by the run; bench/RESULTS.md quotes it).
struct Budget {
    std::vector<std::uint64_t> sizes;
    std::vector<unsigned> threads;
    std::uint64_t k;     // ops per thread (W1, W2, W4)
    int reps;            // repetitions per cell; the median is reported
    double deadline_ns;  // a repetition of W1, W2, W4 stops after this (W3 runs to its end)
};
Budget budget_of(const BenchOptions& opt) {
    Budget b;
    if (opt.smoke)
        b = {{1000}, {1, 2}, 2000, 1, 2e8};
    else if (opt.quick)
        b = {{1000, 10000, 100000}, {1, 2, 4}, 50000, 3, 1.5e8};
    else
        b = {{1000, 10000, 100000, 1000000}, {1, 2, 4}, 100000, 3, 2.5e8};
    if (opt.reps > 0) b.reps = opt.reps;
    if (opt.budget_ms > 0) b.deadline_ns = opt.budget_ms * 1e6;
    if (opt.max_size > 0) {
        std::erase_if(b.sizes, [&](std::uint64_t s) { return s > opt.max_size; });
        if (opt.max_size >= 10000000 && !opt.quick && !opt.smoke) b.sizes.push_back(10000000);
    }
    return b;
}

std::string size_name(std::uint64_t s) {
    int e = 0;
    std::uint64_t x = s;
    while (x >= 10 && x % 10 == 0) x /= 10, ++e;
    return x == 1 ? "1e" + std::to_string(e) : std::to_string(s);
}

}  // namespace

std::vector<OpCount> count_cell(const Contender& c, const std::string& workload, std::uint64_t size,
                                unsigned threads, std::uint64_t ops, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Wl w = Wl::w1u;
    for (Wl x : {Wl::w1u, Wl::w1z, Wl::w2, Wl::w3, Wl::w4h1, Wl::w4h64})
        if (workload == wl_name(x)) w = x;
    const RepResult r = run_rep(c, w, make_plan(w, size, threads, ops, rng), false, 1e12, true);
    std::vector<OpCount> out;
    for (int k = 0; k < kKinds; ++k)
        if (r.kops[k] > 0) out.push_back({kKindName[k], r.kops[k], r.ksync[k]});
    return out;
}

int run_bench(const BenchOptions& opt, std::ostream& out) {
    const double start_ns = now_ns();
    std::mt19937_64 rng(opt.seed);
    const Budget bud = budget_of(opt);
    const std::vector<std::uint64_t>& sizes = bud.sizes;
    const std::vector<unsigned>& threads = bud.threads;
    const std::uint64_t k = bud.k;
    const int reps = bud.reps;
    const double deadline_ns = bud.deadline_ns;
    std::vector<Wl> wls = {Wl::w1u, Wl::w1z, Wl::w2, Wl::w3, Wl::w4h1, Wl::w4h64};
    if (!opt.workloads.empty()) {
        const auto prefixes = split_list(opt.workloads);
        std::erase_if(wls, [&](Wl w) {
            return std::none_of(prefixes.begin(), prefixes.end(), [&](const std::string& p) {
                return std::string_view(wl_name(w)).starts_with(p);
            });
        });
    }
    auto cs = contenders();
    if (!opt.contenders.empty()) {
        const auto keep = split_list(opt.contenders);
        std::erase_if(cs, [&](const Contender& c) {
            return c.name != "impl" && std::find(keep.begin(), keep.end(), c.name) == keep.end();
        });
    }
    std::vector<std::string> names;
    for (const auto& c : cs) names.push_back(c.name);
    const bool hot64_named = opt.workloads.find("W4-hot64") != std::string::npos;
    const auto runs = [&](Wl w, std::uint64_t size) {  // is this (workload, size) measured?
        return !(w == Wl::w4h64 && size > kHot64MaxSize && !hot64_named);
    };
    const auto unit_of = [&](const std::string& n) {
        for (const auto& c : cs)
            if (c.name == n) return c.unit;
        return SyncUnit::none;
    };

    out << "pviommu bench (issues 6, 16): seed " << opt.seed << ", "
        << (opt.smoke   ? "smoke"
            : opt.quick ? "quick"
                        : "full")
        << ", " << std::thread::hardware_concurrency() << " hardware threads\n"
        << "budget: sizes";
    for (auto s : sizes) out << ' ' << size_name(s);
    out << "; threads";
    for (auto t : threads) out << ' ' << t;
    out << "; " << reps << " repetition(s) per cell, medians reported; W1, W2, W4: " << k
        << " ops/thread, a repetition stops after " << fmt(deadline_ns / 1e6) << " ms; W3: one op "
        << "per frame per thread, to the end; ref+mutex only up to " << size_name(kRefMaxSize)
        << " frames" << (hot64_named ? "" : "; W4-hot64 only up to " + size_name(kHot64MaxSize))
        << "\n";
    if (kCountSync)
        out << "COUNTING BUILD (-DPVIOMMU_COUNT_RMW=ON): every atomic RMW of impl and every mutex "
               "acquisition of the peers is counted, which slows them; take ns/op from a normal "
               "build\n";

    // Floors.
    const std::uint64_t fsteps = opt.smoke ? 200000 : opt.quick ? 1000000 : 4000000;
    const double f_rmw = floor_atomic_rmw(fsteps * 4);
    const double f_mutex = floor_mutex_pair(fsteps * 4);
    const double f_l1 = floor_chase(16 << 10, fsteps, rng);
    const double f_dram =
        floor_chase(opt.smoke || opt.quick ? (64ULL << 20) : (512ULL << 20), fsteps / 4, rng);
    std::map<std::uint64_t, double> f_size;  // dependent load at the working set of a size
    for (std::uint64_t s : sizes)
        f_size[s] = floor_chase(std::max<std::uint64_t>(s * 192, 16 << 10), fsteps / 4, rng);
    out << "floors: atomic RMW " << fmt(f_rmw, 1) << " ns, uncontended mutex lock+unlock "
        << fmt(f_mutex, 1) << " ns, L1 hit " << fmt(f_l1, 1) << " ns, DRAM dependent load "
        << fmt(f_dram, 1) << " ns\n";
    out << "dependent load at a table's working set (size x 192 B):";
    for (auto [s, v] : f_size) out << " " << s << ": " << fmt(v, 1) << " ns;";
    out << "\n" << std::flush;

    const double floors_s = (now_ns() - start_ns) / 1e9;
    std::map<std::string, double> spent_by_contender, spent_by_workload;  // s, for the budget
    std::vector<Cell> cells;
    int failures = 0;
    for (Wl w : wls)
        for (std::uint64_t size : sizes)
            for (unsigned th : threads) {
                if (!runs(w, size)) continue;
                std::vector<Plan> plans;
                for (int rep = 0; rep < reps; ++rep)
                    plans.push_back(make_plan(w, size, th, k, rng));
                for (const auto& c : cs) {
                    const double cell_t0 = now_ns();
                    // ref's claimed() scans every M2B set (it is written to be obviously right,
                    // not fast): its prefill is quadratic (1e4 frames cost 2/3 of a quick run's
                    // time), so it runs at 1e3 only. It is never the best peer.
                    if (c.name == "ref+mutex" && size > kRefMaxSize) continue;
                    // v2-core's records hold at most 4 tuples (impl::v2::kMaxHolders): W4 gives
                    // each frame one tuple per thread plus the prefill's.
                    if (c.name == "v2-core" && (w == Wl::w4h1 || w == Wl::w4h64) && th >= 4)
                        continue;
                    std::vector<double> ns, opss, batches, cpus;
                    Cell cell{w, size, th, c.name};
                    cell.counted = kCountSync && c.unit != SyncUnit::none;
                    for (int rep = 0; rep < reps; ++rep) {
                        RepResult r =
                            run_rep(c, w, plans[rep], rep == 0 && (w == Wl::w1u) && th == 1,
                                    deadline_ns, cell.counted);
                        if (r.unexpected > 0 || !r.check_error.empty()) {
                            ++failures;
                            out << "CHECK FAILED: " << wl_name(w) << " size " << size << " threads "
                                << th << " " << c.name << ": " << r.unexpected
                                << " unexpected statuses " << r.check_error << "\n";
                        }
                        ns.push_back(r.wall_ns * th / static_cast<double>(r.ops));
                        cpus.push_back(r.cpu_ns / static_cast<double>(r.ops));
                        opss.push_back(static_cast<double>(r.ops) / r.wall_ns * 1e9);
                        batches.insert(batches.end(), r.batches.begin(), r.batches.end());
                        if (r.bytes_per_mapping >= 0) cell.bytes_map = r.bytes_per_mapping;
                        for (int x = 0; x < kKinds; ++x) {
                            cell.kops[x] += r.kops[x];
                            cell.ksync[x] += r.ksync[x];
                        }
                    }
                    cell.ns_med = median(ns);
                    cell.cpu_med = median(cpus);
                    cell.ns_p99 = pct(batches, 0.99);
                    cell.ops_s = median(opss);
                    cells.push_back(cell);
                    const double cell_s = (now_ns() - cell_t0) / 1e9;
                    spent_by_contender[c.name] += cell_s;
                    spent_by_workload[wl_name(w)] += cell_s;
                }
            }

    // Table. A peer is every contender but impl and v2-core (the bare lock-free core, a bound
    // on impl's design: compared with the peers, never one of them).
    const auto is_peer = [](const std::string& n) { return n != "impl" && n != "v2-core"; };
    auto find = [&](Wl w, std::uint64_t s, unsigned t, const std::string& n) -> const Cell* {
        for (const Cell& c : cells)
            if (c.w == w && c.size == s && c.threads == t && c.contender == n) return &c;
        return nullptr;
    };
    auto best_peer = [&](Wl w, std::uint64_t s, unsigned t) {
        double best = 1e300;
        std::string who;
        for (const auto& n : names)
            if (is_peer(n))
                if (const Cell* c = find(w, s, t, n); c && c->ns_med < best)
                    best = c->ns_med, who = n;
        return std::pair{best, who};
    };
    // impl's RMWs per op over all its ops in a cell, as the table and the CSV print it.
    const std::string kNotCounted = "needs -DPVIOMMU_COUNT_RMW=ON";
    auto rmw_text = [&](const Cell* c, int kind, int prec) -> std::string {
        if (!kCountSync) return "n/c";
        if (c == nullptr || !c->counted) return "n/a";
        const double v = c->sync_per_op(kind);
        return v < 0 ? "-" : fmt(v, prec);
    };
    out << "\nmedian wall ns/op (p99 of 256-op batches) median CPU ns/op; speedup = best peer "
           "ns/op / impl ns/op (>1: impl faster); impl RMW/op: atomic RMWs per op, all ops of "
           "the cell"
        << (kCountSync ? " (counted)\n" : " (n/c: not counted, " + kNotCounted + ")\n");
    char line[512];
    std::snprintf(line, sizeof line, "%-12s %8s %2s", "workload", "frames", "th");
    out << line;
    for (const auto& n : names) {
        std::snprintf(line, sizeof line, " %22s", n.c_str());
        out << line;
    }
    out << "  speedup  best-peer  cpu-speedup  impl Mops/s  impl RMW/op\n";
    for (Wl w : wls)
        for (std::uint64_t s : sizes)
            for (unsigned t : threads) {
                if (!runs(w, s)) continue;
                std::snprintf(line, sizeof line, "%-12s %8llu %2u", wl_name(w),
                              static_cast<unsigned long long>(s), t);
                out << line;
                for (const auto& n : names) {
                    const Cell* c = find(w, s, t, n);
                    const std::string v =
                        c ? fmt(c->ns_med) + " (" + fmt(c->ns_p99) + ") " + fmt(c->cpu_med) : "-";
                    std::snprintf(line, sizeof line, " %22s", v.c_str());
                    out << line;
                }
                const auto [best, who] = best_peer(w, s, t);
                const Cell* im = find(w, s, t, "impl");
                double best_cpu = 1e300;
                for (const auto& n : names)
                    if (const Cell* c = find(w, s, t, n); c && is_peer(n))
                        best_cpu = std::min(best_cpu, c->cpu_med);
                if (who.empty())  // --contenders=impl: no peer to compare with
                    std::snprintf(line, sizeof line, "  %7s  %-10s %10s %8.2f  %11s\n", "-", "-",
                                  "-", im->ops_s / 1e6, rmw_text(im, kKinds, 1).c_str());
                else
                    std::snprintf(line, sizeof line, "  %6.2fx  %-10s %9.2fx %8.2f     %11s\n",
                                  best / im->ns_med, who.c_str(), best_cpu / im->cpu_med,
                                  im->ops_s / 1e6, rmw_text(im, kKinds, 1).c_str());
                out << line;
            }

    // Synchronisation per op, by op kind (issue 16).
    out << "\natomic RMWs per op by op (impl) and lock acquisitions per op (peers), issue 16:\n";
    if (!kCountSync) {
        out << "  not counted in this build: " << kNotCounted
            << " (cmake -B build-rmw -DPVIOMMU_COUNT_RMW=ON, then run the same command there)\n";
    } else {
        out << "  counted around every call of every repetition and thread (so contention's "
               "failed CAS and helping are in); impl: RMWs through impl::Atomic (CAS, exchange, "
               "fetch_add/sub; fences are not RMWs and not counted); ref+mutex, xen-style, urcu: "
               "mutex acquisitions (urcu: liburcu's own CAS not counted); tbb, cuckoo: n/a (their "
               "locks are inside the library)\n  op kinds:";
        for (int x = 0; x < kKinds; ++x) out << ' ' << kKindName[x] << " = " << kKindOp[x] << ';';
        out << "\n";
        std::snprintf(line, sizeof line, "  %-12s %8s %2s |", "workload", "frames", "th");
        out << line;
        for (int x = 0; x < kKinds; ++x) {
            std::snprintf(line, sizeof line, " %8s", kKindName[x]);
            out << line;
        }
        out << "  impl all |";
        for (const auto& n : names)
            if (n != "impl") {
                std::snprintf(line, sizeof line, " %10s", n.c_str());
                out << line;
            }
        out << "  (peers: locks/op, all ops)\n";
        for (Wl w : wls)
            for (std::uint64_t s : sizes)
                for (unsigned t : threads) {
                    if (!runs(w, s)) continue;
                    const Cell* im = find(w, s, t, "impl");
                    std::snprintf(line, sizeof line, "  %-12s %8llu %2u |", wl_name(w),
                                  static_cast<unsigned long long>(s), t);
                    out << line;
                    for (int x = 0; x < kKinds; ++x) {
                        std::snprintf(line, sizeof line, " %8s", rmw_text(im, x, 2).c_str());
                        out << line;
                    }
                    std::snprintf(line, sizeof line, "  %8s |", rmw_text(im, kKinds, 2).c_str());
                    out << line;
                    for (const auto& n : names)
                        if (n != "impl") {
                            const Cell* c = find(w, s, t, n);
                            std::snprintf(line, sizeof line, " %10s",
                                          c ? rmw_text(c, kKinds, 2).c_str() : "-");
                            out << line;
                        }
                    out << "\n";
                }
    }
    std::vector<ProfileRow> profile;
    if (kCountSync) {
        profile = hypercall_profile(opt.smoke ? 256 : 2048);
        out << "\nimpl atomic RMWs per hypercall, one thread, no contention (n calls each on a "
               "fresh world):\n";
        for (const auto& r : profile) {
            std::snprintf(
                line, sizeof line, "  %-30s %8.2f RMW/op  (min %llu, max %llu, n %llu)%s\n",
                r.op.c_str(), r.mean(), static_cast<unsigned long long>(r.min),
                static_cast<unsigned long long>(r.max), static_cast<unsigned long long>(r.n),
                r.not_ok ? "  (some calls did not succeed: see bench.cpp)" : "");
            out << line;
        }
    }

    out << "\nbytes per live mapping (RSS delta / mappings after the W1 prefill, 1 thread):\n";
    for (std::uint64_t s : sizes) {
        out << "  " << s << " frames:";
        for (const auto& n : names)
            if (const Cell* c = find(Wl::w1u, s, 1, n))
                out << " " << n << " " << fmt(c->bytes_map, 0);
        out << "\n";
    }

    // 2-thread scaling on disjoint domains, every contender, every size (issue 16).
    const bool have12 = std::find(threads.begin(), threads.end(), 1u) != threads.end() &&
                        std::find(threads.begin(), threads.end(), 2u) != threads.end();
    auto scaling = [&](Wl w, std::uint64_t s, const std::string& n) {
        const Cell* a = find(w, s, 1, n);
        const Cell* b = find(w, s, 2, n);
        return a && b ? b->ops_s / a->ops_s : -1.0;
    };
    if (have12) {
        out << "\n2-thread / 1-thread throughput, disjoint domains (W1, W2: thread t on pair t), "
               "ratio of the medians of "
            << reps
            << " repetitions measured in this run; this VM's vCPUs are shared, so a low figure "
               "may be preemption: in brackets, 1-thread CPU ns/op / 2-thread CPU ns/op (1.00: "
               "no per-op cost added by the second thread)\n";
        std::snprintf(line, sizeof line, "  %-12s %8s", "workload", "frames");
        out << line;
        for (const auto& n : names) {
            std::snprintf(line, sizeof line, " %16s", n.c_str());
            out << line;
        }
        out << "\n";
        for (Wl w : wls) {
            if (!disjoint(w)) continue;
            for (std::uint64_t s : sizes) {
                std::snprintf(line, sizeof line, "  %-12s %8llu", wl_name(w),
                              static_cast<unsigned long long>(s));
                out << line;
                for (const auto& n : names) {
                    const double sc = scaling(w, s, n);
                    const Cell* a = find(w, s, 1, n);
                    const Cell* b = find(w, s, 2, n);
                    const std::string v =
                        sc < 0 ? "-" : fmt(sc, 2) + "x (" + fmt(a->cpu_med / b->cpu_med, 2) + ")";
                    std::snprintf(line, sizeof line, " %16s", v.c_str());
                    out << line;
                }
                out << "\n";
            }
        }
    }

    // Lock ceiling (issue 16): what the per-domain locks cost xen-style and xen-flat at one
    // thread. The same code runs with mutexes that do nothing (unlocked_twins), locked and
    // unlocked alternating on the same plans so that drift hits both. locked / unlocked is the
    // most ANY synchronisation scheme, lock-free or not, can gain over that peer's own work at
    // one thread. A lock-free design still needs an atomic RMW per word an op changes (a map or
    // unmap changes two: the frame's tuple set and the IOMMU entry; a balloon the frame and the
    // P2M entry), so over the same work it takes at least unlocked + k x (one RMW), k the
    // workload's RMW-writes per op: bound = locked / (unlocked + k x RMW floor).
    struct Ceiling {
        std::string peer;
        Wl w;
        std::uint64_t size;
        double locked, unlocked;  // ns/op, medians
        double ceiling;           // median over the pairs of locked / unlocked
        double bound;             // locked / (unlocked + k x RMW floor)
    };
    // Words a lock-free op must change with an RMW, per op of the workload's mix.
    const auto rmw_writes = [](Wl w) {
        return w == Wl::w1u || w == Wl::w1z      ? 0.1  // 5% toggles x 2
               : w == Wl::w4h1 || w == Wl::w4h64 ? 1.0  // 50% toggles x 2
                                                 : 2.0;
    };
    std::vector<Ceiling> ceilings;
    const bool have1 = std::find(threads.begin(), threads.end(), 1u) != threads.end();
    for (const Contender& nolock : unlocked_twins()) {
        const Contender* peer = nullptr;
        for (const auto& c : cs)
            if (c.name == nolock.name) peer = &c;
        if (peer == nullptr || !have1) continue;
        // More pairs than the table's repetitions: the ratio of two close figures is what is
        // wanted, and one preempted repetition moves it a lot on this shared machine.
        const int ceiling_reps = std::max(reps, 7);
        for (Wl w : wls)
            for (std::uint64_t size : sizes) {
                if (!runs(w, size)) continue;
                std::vector<double> ns[2], ratio;
                for (int rep = 0; rep < ceiling_reps; ++rep) {
                    const Plan plan = make_plan(w, size, 1, k, rng);
                    for (int u = 0; u < 2; ++u) {
                        const RepResult r =
                            run_rep(u ? nolock : *peer, w, plan, false, deadline_ns, false);
                        if (r.unexpected > 0 || !r.check_error.empty()) {
                            ++failures;
                            out << "CHECK FAILED: lock ceiling " << wl_name(w) << " size " << size
                                << " " << peer->name << (u ? " unlocked" : "") << ": "
                                << r.unexpected << " unexpected statuses " << r.check_error << "\n";
                        }
                        ns[u].push_back(r.wall_ns / static_cast<double>(r.ops));
                    }
                    ratio.push_back(ns[0].back() / ns[1].back());
                }
                const double lo = median(ns[0]), un = median(ns[1]);
                ceilings.push_back({peer->name, w, size, lo, un, median(ratio),
                                    lo / (un + rmw_writes(w) * f_rmw)});
            }
    }
    if (!ceilings.empty()) {
        out << "\nlock ceiling, 1 thread: a peer's ns/op with its mutexes and with mutexes that do "
               "nothing (same code, same plans, alternating, medians of "
            << std::max(reps, 7)
            << " pairs); ceiling = median over the pairs of locked / unlocked, the most any "
               "synchronisation scheme (lock-free included) can gain over that peer's work at "
               "one thread; lf-bound = locked / (unlocked + k x "
            << fmt(f_rmw, 1)
            << " ns), k = RMW-written words per op (W1 0.1, W2 2, W3 2, W4 1): the most a "
               "lock-free design doing the same work can gain; impl/peer and v2-core/peer "
               "from the table above (>1: faster than the peer)\n";
        std::snprintf(line, sizeof line, "  %-10s %-12s %8s %9s %9s %7s %8s %8s %9s %9s\n", "peer",
                      "workload", "frames", "locked", "unlocked", "locks%", "ceiling", "lf-bound",
                      "impl/peer", "core/peer");
        out << line;
        for (const Ceiling& c : ceilings) {
            const Cell* pc = find(c.w, c.size, 1, c.peer);
            const Cell* im = find(c.w, c.size, 1, "impl");
            const Cell* core = find(c.w, c.size, 1, "v2-core");
            const auto ratio = [&](const Cell* x) {
                return x && pc ? fmt(pc->ns_med / x->ns_med, 2) + "x" : std::string("-");
            };
            std::snprintf(line, sizeof line,
                          "  %-10s %-12s %8llu %9s %9s %6s%% %7sx %7sx %9s %9s\n", c.peer.c_str(),
                          wl_name(c.w), static_cast<unsigned long long>(c.size),
                          fmt(c.locked, 1).c_str(), fmt(c.unlocked, 1).c_str(),
                          fmt(100.0 * (1 - 1 / c.ceiling), 0).c_str(), fmt(c.ceiling, 2).c_str(),
                          fmt(c.bound, 2).c_str(), ratio(im).c_str(), ratio(core).c_str());
            out << line;
        }
    }

    // Lock-freedom with the layout held equal (issue 16): v2-core (the bare lock-free core) over
    // xen-flat (the same flat arrays under xen-style's per-domain mutexes), every cell both ran.
    if (std::find(names.begin(), names.end(), "v2-core") != names.end() &&
        std::find(names.begin(), names.end(), "xen-flat") != names.end()) {
        out << "\nlock-free gain with the data layout held equal: xen-flat ns/op / v2-core ns/op "
               "(wall, medians; >1: the lock-free core faster), at";
        for (unsigned t : threads) out << ' ' << t;
        out << " threads\n";
        for (Wl w : wls)
            for (std::uint64_t s : sizes) {
                if (!runs(w, s)) continue;
                std::snprintf(line, sizeof line, "  %-12s %8llu ", wl_name(w),
                              static_cast<unsigned long long>(s));
                out << line;
                for (std::size_t i = 0; i < threads.size(); ++i) {
                    const Cell* core = find(w, s, threads[i], "v2-core");
                    const Cell* flat = find(w, s, threads[i], "xen-flat");
                    out << (i ? " / " : "")
                        << (core && flat ? fmt(flat->ns_med / core->ns_med, 2) : std::string("-"));
                }
                out << "\n";
            }
    }

    // The targets of issue 16, as a table of impl / best peer (the RESULTS.md table).
    const auto print_targets = [&] {
        if (!opt.workloads.empty() || !opt.contenders.empty()) {
            out << "\ntargets (issue 16): not evaluated on a --workloads or --contenders subset\n";
            return;
        }
        out << "\ntargets (issue 16): impl / best peer (best peer's ns/op / impl's; >1: impl "
               "faster), medians of "
            << reps << ", at ";
        for (std::size_t i = 0; i < threads.size(); ++i) out << (i ? " / " : "") << threads[i];
        out << " threads\n";
        const auto header = [&] {
            out << "\n| workload |";
            for (auto s : sizes) out << ' ' << size_name(s) << " |";
            out << " target | verdict |\n|---|";
            for (std::size_t i = 0; i < sizes.size(); ++i) out << "---|";
            out << "---|---|\n";
        };
        // One row per workload: wall-clock ratios (the targets), or CPU-time ratios (cpu).
        const auto ratio_rows = [&](bool cpu, const std::string& who) {
            for (Wl w : wls) {
                const double tgt = w == Wl::w2 || w == Wl::w3     ? 2.0
                                   : w == Wl::w1u || w == Wl::w1z ? 1.2
                                   : w == Wl::w4h1                ? 1.0
                                                                  : 0.0;
                out << "| " << wl_name(w) << " |";
                double mn = 1e300;
                std::string at;
                for (auto s : sizes) {
                    if (!runs(w, s)) {
                        out << " not run |";
                        continue;
                    }
                    out << ' ';
                    for (std::size_t i = 0; i < threads.size(); ++i) {
                        double best_cpu = 1e300;
                        for (const auto& n : names)
                            if (const Cell* c = find(w, s, threads[i], n); c && is_peer(n))
                                best_cpu = std::min(best_cpu, c->cpu_med);
                        const Cell* im = find(w, s, threads[i], who);
                        if (im == nullptr) {  // v2-core where it does not apply
                            out << (i ? " / " : "") << "-";
                            continue;
                        }
                        const double r = cpu ? best_cpu / im->cpu_med
                                             : best_peer(w, s, threads[i]).first / im->ns_med;
                        out << (i ? " / " : "") << fmt(r, 2);
                        if (r < mn) {
                            mn = r;
                            at = size_name(s) + ", " + std::to_string(threads[i]) + " thr";
                        }
                    }
                    out << " |";
                }
                if (tgt > 0)
                    out << " >= " << fmt(tgt, 1) << "x | " << (mn >= tgt ? "met" : "MISSED")
                        << " (min " << fmt(mn, 2) << "x at " << at << ") |\n";
                else
                    out << " (none) | min " << fmt(mn, 2) << "x |\n";
            }
        };
        header();
        ratio_rows(false, "impl");
        double worst = -1;
        out << "| bytes per live mapping (impl, W1 prefill, 1 thread; judged at >= 1e4) |";
        for (std::uint64_t s : sizes) {
            const double b = find(Wl::w1u, s, 1, "impl")->bytes_map;
            out << ' ' << fmt(b, 0) << " |";
            if (s >= 10000) worst = std::max(worst, b);
        }
        out << " <= 64 B | "
            << (worst < 0     ? std::string("not judged (no size >= 1e4)")
                : worst <= 64 ? "met (max " + fmt(worst, 0) + " B)"
                              : "MISSED (max " + fmt(worst, 0) + " B)")
            << " |\n";
        if (have12) {
            for (Wl w : {Wl::w1u, Wl::w2}) {
                out << "| " << wl_name(w) << " 2-thread / 1-thread throughput (impl) |";
                double mn = 1e300;
                for (auto s : sizes) {
                    const double sc = scaling(w, s, "impl");
                    mn = std::min(mn, sc);
                    out << ' ' << fmt(sc, 2) << " |";
                }
                out << " >= 1.7x | " << (mn >= 1.7 ? "met" : "MISSED") << " (min " << fmt(mn, 2)
                    << "x) |\n";
            }
        }
        out << "\nThe same by CPU time (best peer's CPU ns/op / impl's; less disturbed by other "
               "processes on shared vCPUs, but it flatters the lock-based peers under contention: "
               "a thread asleep on a mutex uses no CPU). Not the target; for reading the noise.\n";
        header();
        ratio_rows(true, "impl");
        if (std::find(names.begin(), names.end(), "v2-core") != names.end()) {
            out << "\nThe same for v2-core / best peer, wall clock: the bare frame-cell core "
                   "(impl/frame_cell.h: 3 atomic RMWs per map or unmap, flat arrays, no fault "
                   "points, quotas or IOTLB flushes), a BOUND on what the lock-free design can "
                   "reach when wired into impl, not a product.\n";
            header();
            ratio_rows(false, "v2-core");
        }
        out << "\nother figures (issue 6):\n";
        // Single-thread lookup vs the floor of its unavoidable misses: 3 dependent loads (P2M
        // leaf, then frame/M2B word, then the tuple set) at the table's working set.
        const std::uint64_t smax = sizes.back(), smin = sizes.front();
        out << "  single-thread W1-uniform impl ns/op as a multiple of its floor (3 dependent "
               "loads at the working set):";
        for (std::uint64_t s : sizes)
            out << " " << s << ": " << fmt(find(Wl::w1u, s, 1, "impl")->ns_med / (3 * f_size[s]), 2)
                << "x;";
        out << "\n  impl ns/op as a multiple of the floors at " << smax
            << " frames, W1-uniform 1 thread: "
            << fmt(find(Wl::w1u, smax, 1, "impl")->ns_med / f_rmw, 1) << "x atomic RMW, "
            << fmt(find(Wl::w1u, smax, 1, "impl")->ns_med / f_dram, 2) << "x DRAM load\n";
        if (smax > smin) {
            const double g =
                find(Wl::w1u, smax, 1, "impl")->ns_med / find(Wl::w1u, smin, 1, "impl")->ns_med;
            const double gf = f_size[smax] / f_size[smin];
            out << "  W1-uniform impl growth " << smin << " -> " << smax << " frames: " << fmt(g, 2)
                << "x, floor growth " << fmt(gf, 2) << "x, beyond the floor " << fmt(g / gf, 2)
                << "x\n";
        }
    };
    print_targets();

    if (!opt.csv.empty()) {
        std::ofstream f(opt.csv);
        f << "workload,frames,threads,contender,ns_op_median,ns_op_p99,ops_per_s,bytes_per_mapping,"
             "impl_speedup_vs_best_peer,floor_ns_working_set,ns_over_floor,cpu_ns_op_median,"
             "scaling_2t_over_1t,sync_unit,sync_per_op_all";
        for (int x = 0; x < kKinds; ++x) f << ",sync_per_op_" << kKindName[x];
        f << "\n";
        for (const Cell& c : cells) {
            const auto [best, who] = best_peer(c.w, c.size, c.threads);
            const double sc = disjoint(c.w) ? scaling(c.w, c.size, c.contender) : -1;
            const std::string unit = !kCountSync ? kNotCounted : unit_name(unit_of(c.contender));
            f << wl_name(c.w) << "," << c.size << "," << c.threads << "," << c.contender << ","
              << fmt(c.ns_med, 1) << "," << fmt(c.ns_p99, 1) << "," << fmt(c.ops_s, 0) << ","
              << fmt(c.bytes_map, 1) << ","
              << (c.contender == "impl" && !who.empty() ? fmt(best / c.ns_med, 3) : "") << ","
              << fmt(f_size[c.size], 2) << "," << fmt(c.ns_med / f_size[c.size], 2) << ","
              << fmt(c.cpu_med, 1) << "," << (sc >= 0 ? fmt(sc, 3) : "") << "," << unit;
            f << "," << (c.counted ? rmw_text(&c, kKinds, 3) : "");
            for (int x = 0; x < kKinds; ++x)
                f << "," << (c.counted && c.sync_per_op(x) >= 0 ? fmt(c.sync_per_op(x), 3) : "");
            f << "\n";
        }
        f << "# floors: atomic_rmw_ns=" << fmt(f_rmw, 2) << " l1_ns=" << fmt(f_l1, 2)
          << " dram_ns=" << fmt(f_dram, 2) << "\n";
        for (const auto& r : profile)
            f << "# impl_rmw_per_call: " << r.op << "=" << fmt(r.mean(), 3) << " (min " << r.min
              << " max " << r.max << " n " << r.n << ")\n";
    }
    if (!opt.json.empty()) {
        // Hand-written (the bench library does not depend on a JSON library): cells and the
        // per-call profile, enough to regenerate the tables.
        std::ofstream f(opt.json);
        f << "{\"seed\": " << opt.seed << ", \"mode\": \""
          << (opt.smoke   ? "smoke"
              : opt.quick ? "quick"
                          : "full")
          << "\", \"reps\": " << reps << ", \"rmw_counted\": " << (kCountSync ? "true" : "false")
          << ", \"floors\": {\"atomic_rmw_ns\": " << fmt(f_rmw, 2)
          << ", \"mutex_pair_ns\": " << fmt(f_mutex, 2) << ", \"l1_ns\": " << fmt(f_l1, 2)
          << ", \"dram_ns\": " << fmt(f_dram, 2) << "},\n \"cells\": [";
        bool first = true;
        for (const Cell& c : cells) {
            const auto [best, who] = best_peer(c.w, c.size, c.threads);
            const double sc = disjoint(c.w) ? scaling(c.w, c.size, c.contender) : -1;
            f << (first ? "\n  " : ",\n  ") << "{\"workload\": \"" << wl_name(c.w)
              << "\", \"frames\": " << c.size << ", \"threads\": " << c.threads
              << ", \"contender\": \"" << c.contender << "\", \"ns_op\": " << fmt(c.ns_med, 1)
              << ", \"ns_op_p99\": " << fmt(c.ns_p99, 1) << ", \"cpu_ns_op\": " << fmt(c.cpu_med, 1)
              << ", \"ops_per_s\": " << fmt(c.ops_s, 0);
            if (c.bytes_map >= 0) f << ", \"bytes_per_mapping\": " << fmt(c.bytes_map, 1);
            if (c.contender == "impl" && !who.empty())
                f << ", \"impl_speedup\": " << fmt(best / c.ns_med, 3) << ", \"best_peer\": \""
                  << who << "\"";
            if (sc >= 0) f << ", \"scaling_2t_over_1t\": " << fmt(sc, 3);
            f << ", \"sync_unit\": \""
              << (!kCountSync ? "not counted: " + kNotCounted : unit_name(unit_of(c.contender)))
              << "\"";
            if (c.counted) {
                f << ", \"sync_per_op\": {\"all\": " << fmt(c.sync_per_op(kKinds), 3);
                for (int x = 0; x < kKinds; ++x)
                    if (c.sync_per_op(x) >= 0)
                        f << ", \"" << kKindName[x] << "\": " << fmt(c.sync_per_op(x), 3);
                f << "}";
            }
            f << "}";
            first = false;
        }
        f << "\n ],\n \"impl_rmw_per_call\": {";
        first = true;
        for (const auto& r : profile) {
            f << (first ? "" : ", ") << "\"" << r.op << "\": " << fmt(r.mean(), 3);
            first = false;
        }
        f << "},\n \"lock_ceiling\": [";
        first = true;
        for (const Ceiling& c : ceilings) {
            f << (first ? "\n  " : ",\n  ") << "{\"peer\": \"" << c.peer << "\", \"workload\": \""
              << wl_name(c.w) << "\", \"frames\": " << c.size
              << ", \"locked_ns_op\": " << fmt(c.locked, 1)
              << ", \"unlocked_ns_op\": " << fmt(c.unlocked, 1)
              << ", \"ceiling\": " << fmt(c.ceiling, 3)
              << ", \"lock_free_bound\": " << fmt(c.bound, 3) << "}";
            first = false;
        }
        f << "\n ]}\n";
    }
    if (!opt.svg.empty())
        write_svg(opt.svg, cells, wls, threads, names,
                  "floors: RMW " + fmt(f_rmw, 1) + " ns, L1 " + fmt(f_l1, 1) + " ns, DRAM " +
                      fmt(f_dram, 1) + " ns");
    if (failures > 0) out << failures << " check(s) FAILED\n";
    out << "\nbench took " << fmt((now_ns() - start_ns) / 1e9, 0) << " s: floors "
        << fmt(floors_s, 1) << " s; by contender";
    for (const auto& [n, t] : spent_by_contender) out << " " << n << " " << fmt(t, 1);
    out << "; by workload";
    for (const auto& [n, t] : spent_by_workload) out << " " << n << " " << fmt(t, 1);
    out << " (s; world setup and prefill included)\n";
    return failures > 0 ? 1 : 0;
}

}  // namespace bench
