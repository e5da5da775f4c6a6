// The linearizability checker on hand-built histories: linearizable ones (relaxations (a) and
// (b) included) are accepted, non-linearizable ones are rejected with a timeline.
#include "props/linearizability.h"

#include <doctest/doctest.h>

#include "props/tests/worlds.h"
#include "ref/hypervisor.h"
#include "trace/runner.h"

using namespace spec;
using props::Event;
using props::History;
using props::Verdict;

namespace {

// Prefix: domain 3 maps gfn 0 of domain 1 at bfn 0x1000 through server (1,1), and domain 0
// maps it at bfn 0x1000 through server (1,0): frame 4 has two tuples.
using props::test::kWorld;
constexpr const char* kTwoTuples =
    R"(call 3 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=rw
call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=0 flags=rw
)";

trace::Trace parse(const std::string& text) {
    auto r = trace::parse("test", text);
    REQUIRE(std::holds_alternative<trace::Trace>(r));
    return std::get<trace::Trace>(r);
}

State run_ref(const trace::Trace& t) {
    ref::Hypervisor h(t.host);
    trace::Runner run(t, h);
    while (!run.done()) {
        const auto rec = run.step();
        REQUIRE(rec.failures.empty());
    }
    return h.state();
}

History world(const std::string& prefix = "") {
    History h;
    h.initial = run_ref(parse(std::string(kWorld) + prefix));
    return h;
}

// One statement parsed in the context of the world.
props::DataOp stmt(const std::string& line) {
    const trace::Trace t = parse(std::string(kWorld) + line + "\n");
    return t.statements.back().stmt;
}

void add(History& h, unsigned thread, const std::string& line, std::uint64_t inv,
         std::uint64_t resp, props::Outcome out) {
    Event e;
    e.thread = thread;
    e.index = 0;
    for (const Event& o : h.events)
        if (o.thread == thread) ++e.index;
    e.op = stmt(line);
    e.invoked = inv;
    e.responded = resp;
    e.outcome = std::move(out);
    h.events.push_back(std::move(e));
}

std::vector<OpResult> ok_bfn(const std::string& line, std::uint64_t bfn) {
    auto call = std::get<trace::CallStmt>(stmt(line));
    std::visit(
        [bfn](auto& o) {
            using T = std::decay_t<decltype(o)>;
            if constexpr (has_out_bfn<T>) o.bfn = Bfn{bfn};
        },
        call.ops[0]);
    return {OpResult{Status::ok, call.ops[0]}};
}
std::vector<OpResult> failed(const std::string& line, Status st) {
    auto call = std::get<trace::CallStmt>(stmt(line));
    return {OpResult{st, call.ops[0]}};
}
std::vector<IoReq> reqs(std::initializer_list<std::uint64_t> bfns) {
    std::vector<IoReq> v;
    for (auto b : bfns) v.push_back(IoReq{PV_IOMMU_IOREQ_TYPE_INVALIDATE, Bfn{b}});
    return v;
}

props::CheckResult check(const History& h) {
    props::CheckOptions o;
    o.check_final_state = h.final_state.has_value();
    return props::check_linearizable(h, o);
}

const std::string kMap3 = "call 3 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=rw";
const std::string kLookup0 = "call 3 lookup_foreign_page gfn=0 domid=1 ioserver=1";
const std::string kLookup1 = "call 3 lookup_foreign_page gfn=1 domid=1 ioserver=1";

}  // namespace

TEST_CASE("linearizability: a map racing a balloon and a drain inside the balloon is accepted") {
    History h = world();
    add(h, 0, kMap3, 0, 3, ok_bfn(kMap3, 0x1000));
    add(h, 1, "balloon 1 gfn=0", 1, 6, BalloonOutcome{Mfn{4}, 1, 0});
    add(h, 2, "drain 1 id=1", 4, 5, reqs({0x1000}));
    const auto r = check(h);
    CHECK_MESSAGE(r.verdict == Verdict::linearizable, r.report);
    // The same drain seeing nothing is fine too (delivery after it).
    h.events[2].outcome = reqs({});
    CHECK(check(h).verdict == Verdict::linearizable);
}

TEST_CASE("linearizability: the final state must be one a linearization reaches") {
    History h = world();
    add(h, 0, kMap3, 0, 3, ok_bfn(kMap3, 0x1000));
    add(h, 1, kMap3, 1, 2, ok_bfn(kMap3, 0x1000));
    State good = run_ref(parse(std::string(kWorld) + kMap3 + "\n"));
    h.final_state = good;
    const auto r = check(h);
    CHECK_MESSAGE(r.verdict == Verdict::linearizable, r.report);
    // Two maps of the same new tuple both taking a reference: count 3, not 2.
    State bad = good;
    REQUIRE(bad.frames.at(Mfn{4}).count == 2);
    bad.frames.at(Mfn{4}).count = 3;
    h.final_state = bad;
    const auto r2 = check(h);
    CHECK(r2.verdict == Verdict::violation);
    CHECK(r2.report.find("final state") != std::string::npos);
    MESSAGE(r2.report);
}

TEST_CASE("linearizability: relaxation (a): one server told, another not yet, inside the balloon") {
    History h = world(kTwoTuples);
    // F8 order: (bfn 0x1000, domid 1, ioserver 0) before (0x1000, 1, 1).
    add(h, 0, "balloon 1 gfn=0", 10, 20, BalloonOutcome{Mfn{4}, 2, 0});
    add(h, 1, "drain 1 id=0", 11, 12, reqs({0x1000}));
    add(h, 1, "drain 1 id=1", 13, 14, reqs({}));
    const auto r = check(h);
    CHECK_MESSAGE(r.verdict == Verdict::linearizable, r.report);
    // Against F8 order: server (1,1) told before (1,0).
    History bad = world(kTwoTuples);
    add(bad, 0, "balloon 1 gfn=0", 10, 20, BalloonOutcome{Mfn{4}, 2, 0});
    add(bad, 1, "drain 1 id=1", 11, 12, reqs({0x1000}));
    add(bad, 1, "drain 1 id=0", 13, 14, reqs({}));
    const auto r2 = check(bad);
    CHECK(r2.verdict == Verdict::violation);
    MESSAGE(r2.report);
    // Not all delivered by the balloon's return.
    History late = world(kTwoTuples);
    add(late, 0, "balloon 1 gfn=0", 10, 12, BalloonOutcome{Mfn{4}, 2, 0});
    add(late, 1, "drain 1 id=1", 13, 14, reqs({}));
    CHECK(check(late).verdict == Verdict::violation);
}

TEST_CASE("linearizability: the synchronous count is decided per delivery") {
    // Ring of 3 slots: room for one invalidate. Two balloons of frames with a tuple each for
    // server (1,1): the second goes synchronous unless a drain empties the ring between.
    const std::string prefix =
        "call 3 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=rw\n"
        "call 3 map_foreign_page bfn=0x1001 gfn=1 domid=1 ioserver=1 flags=rw\n";
    History h;
    h.initial = run_ref(parse(std::string(kWorld) + prefix));
    h.initial.servers.at({DomId{1}, IoServId{1}}).ring_slots = 3;
    add(h, 0, "balloon 1 gfn=0", 0, 1, BalloonOutcome{Mfn{4}, 1, 0});
    add(h, 1, "balloon 1 gfn=1", 2, 7, BalloonOutcome{Mfn{5}, 1, 0});
    add(h, 2, "drain 1 id=1 count=1", 3, 4, reqs({0x1000}));
    CHECK(check(h).verdict == Verdict::linearizable);
    h.events[1].outcome =
        BalloonOutcome{Mfn{5}, 1, 1};  // also possible: delivered before the drain
    CHECK(check(h).verdict == Verdict::linearizable);
    h.events[2].invoked = 8;  // drain after both: the second must have gone synchronous
    h.events[2].responded = 9;
    h.events[1].outcome = BalloonOutcome{Mfn{5}, 1, 0};
    CHECK(check(h).verdict == Verdict::violation);
}

TEST_CASE("linearizability: relaxation (b): populate racing a free may skip the freed frame") {
    // Frame 4 (gfn 0 of domain 1, no tuples) is freed by the balloon, whose linearization point
    // the lookup pins before 2; the populate invoked at 3 still took frame 10.
    History h = world();
    add(h, 0, "balloon 1 gfn=0", 0, 6, BalloonOutcome{Mfn{4}, 0, 0});
    add(h, 1, kLookup0, 1, 2, failed(kLookup0, Status::enxio));
    add(h, 2, "populate 1 gfn=9", 3, 10, PopulateOutcome{Mfn{10}});
    const auto r = check(h);
    CHECK_MESSAGE(r.verdict == Verdict::linearizable, r.report);
    // ... and may take the freed frame.
    h.events[2].outcome = PopulateOutcome{Mfn{4}};
    CHECK(check(h).verdict == Verdict::linearizable);
    // But not a frame that was never free, nor one above another free frame.
    h.events[2].outcome = PopulateOutcome{Mfn{9}};
    CHECK(check(h).verdict == Verdict::violation);
    h.events[2].outcome = PopulateOutcome{Mfn{11}};
    CHECK(check(h).verdict == Verdict::violation);
    // Without a concurrent free it is the lowest: the balloon returned before the populate.
    History seq = world();
    add(seq, 0, "balloon 1 gfn=0", 0, 2, BalloonOutcome{Mfn{4}, 0, 0});
    add(seq, 1, "populate 1 gfn=9", 3, 10, PopulateOutcome{Mfn{10}});
    const auto r2 = check(seq);
    CHECK(r2.verdict == Verdict::violation);
    MESSAGE(r2.report);
    seq.events[1].outcome = PopulateOutcome{Mfn{4}};
    CHECK(check(seq).verdict == Verdict::linearizable);
}

TEST_CASE("linearizability: a lookup finding a frame ballooned before it was invoked is rejected") {
    History h = world(kTwoTuples);
    add(h, 0, "balloon 1 gfn=0", 0, 1, BalloonOutcome{Mfn{4}, 2, 0});
    add(h, 1, kLookup0, 2, 3, ok_bfn(kLookup0, 0x1000));
    const auto r = check(h);
    CHECK(r.verdict == Verdict::violation);
    CHECK(r.report.find("lookup_foreign_page") != std::string::npos);
    MESSAGE(r.report);
    // Overlapping, it linearizes before the balloon.
    h.events[1].invoked = 0;
    h.events[0].invoked = 1;
    h.events[0].responded = 4;
    CHECK(check(h).verdict == Verdict::linearizable);
}

TEST_CASE(
    "linearizability: a drain seeing an invalidate of a balloon not yet invoked is rejected") {
    History h = world(kTwoTuples);
    add(h, 0, "drain 1 id=1", 0, 1, reqs({0x1000}));
    add(h, 1, "balloon 1 gfn=0", 2, 5, BalloonOutcome{Mfn{4}, 2, 0});
    const auto r = check(h);
    CHECK(r.verdict == Verdict::violation);
    MESSAGE(r.report);
}

TEST_CASE("linearizability: half an order-1 map seen by another thread is rejected") {
    const std::string map1 =
        "call 3 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=rw+order=1";
    History h = world();
    add(h, 0, map1, 0, 10, ok_bfn(map1, 0x1000));
    add(h, 1, kLookup0, 1, 2, ok_bfn(kLookup0, 0x1000));
    add(h, 1, kLookup1, 3, 4, failed(kLookup1, Status::enoent));
    const auto r = check(h);
    CHECK(r.verdict == Verdict::violation);
    MESSAGE(r.report);
    h.events[2].outcome = ok_bfn(kLookup1, 0x1001);
    CHECK(check(h).verdict == Verdict::linearizable);
}

TEST_CASE("linearizability: batch ops take effect in order inside the batch's interval") {
    const std::string batch =
        "batch 3\nop map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=rw\n"
        "op unmap_foreign_page bfn=0x1000 domid=1 ioserver=1\nend";
    History h = world();
    auto call = std::get<trace::CallStmt>(stmt(batch));
    std::vector<OpResult> rs{OpResult{Status::ok, call.ops[0]}, OpResult{Status::ok, call.ops[1]}};
    add(h, 0, batch, 0, 10, rs);
    // Another thread sees the tuple between the batch's two ops: fine (a batch is not atomic).
    add(h, 1, kLookup0, 1, 2, ok_bfn(kLookup0, 0x1000));
    CHECK(check(h).verdict == Verdict::linearizable);
    // A lookup after the batch returned cannot see it.
    h.events[1].invoked = 11;
    h.events[1].responded = 12;
    CHECK(check(h).verdict == Verdict::violation);
}
