// `pviommu run --explain` and `--dump=FILTER`: the state change of a statement as +/-/~ lines of
// the canonical dump, and ref's ruling (the row of spec/pv-iommu.md section 4 that decided each
// op's status), checked against the spec's tables and against the statuses ref returns.
#include <doctest/doctest.h>

#include <map>
#include <set>
#include <sstream>

#include "ref/hypervisor.h"
#include "trace/gen.h"
#include "trace/runner.h"

using spec::Status;

namespace {

// The status of each row of the tables of spec/pv-iommu.md section 4 (row 0: success), written
// from the spec's text, not from ref.
const std::map<std::string_view, std::vector<Status>> kTables = {
    {"query_caps", {Status::ok}},
    {"map_page",
     {Status::ok, Status::einval, Status::enospc, Status::eperm, Status::enxio, Status::eperm,
      Status::eacces, Status::eexist, Status::eoverflow, Status::enomem, Status::eio}},
    {"unmap_page",
     {Status::ok, Status::einval, Status::enospc, Status::eperm, Status::enoent, Status::eperm,
      Status::ebusy}},
    {"map_foreign_page",
     {Status::ok, Status::einval, Status::enospc, Status::eperm, Status::eperm, Status::enxio,
      Status::eperm, Status::enodev, Status::enxio, Status::eperm, Status::eacces, Status::eexist,
      Status::eoverflow, Status::enomem, Status::eio}},
    {"lookup_foreign_page",
     {Status::ok, Status::einval, Status::enospc, Status::eperm, Status::enxio, Status::eperm,
      Status::enodev, Status::enxio, Status::eperm, Status::einval, Status::eoverflow,
      Status::enomem, Status::enoent}},
    {"unmap_foreign_page", {Status::ok, Status::einval, Status::enospc, Status::enoent}},
};

std::vector<std::string> split_outcome(const std::string& outcome) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos <= outcome.size()) {
        const auto semi = outcome.find("; ", pos);
        const std::string part =
            outcome.substr(pos, semi == std::string::npos ? std::string::npos : semi - pos);
        out.push_back(part.substr(0, part.find(' ')));  // the status word
        if (semi == std::string::npos) break;
        pos = semi + 2;
    }
    return out;
}

trace::Trace parsed(std::string_view text) {
    auto r = trace::parse("x.trace", text);
    REQUIRE(std::holds_alternative<trace::Trace>(r));
    return std::get<trace::Trace>(r);
}

}  // namespace

TEST_CASE("explain_change: new, gone and changed dump lines") {
    const std::string before =
        "host iommu=on mode=inclusive max_order=9 frames=64\n"
        "frame mfn=0x12 state=owned owner=1 count=2 allocated=1\n"
        "m2b mfn=0x12 bfn=0x1000 domid=1 ioserver=0 swap=0\n";
    const std::string after =
        "host iommu=on mode=inclusive max_order=9 frames=64\n"
        "frame mfn=0x12 state=owned owner=1 count=1 allocated=0\n"
        "ioreq 1 id=0 buffered#0 invalidate bfn=0x1000\n";
    const auto lines = trace::explain_change(before, after);
    const std::vector<std::string> want = {"~ frame mfn=0x12 count 2->1 allocated 1->0",
                                           "- m2b mfn=0x12 bfn=0x1000 domid=1 ioserver=0 swap=0",
                                           "+ ioreq 1 id=0 buffered#0 invalidate bfn=0x1000"};
    CHECK(lines == want);
    CHECK(trace::explain_change(after, after).empty());
    // A frame that leaves the dump is free again.
    CHECK(trace::explain_change("frame mfn=0x3 state=owned owner=0 count=1 allocated=0\n", "") ==
          std::vector<std::string>{
              "- frame mfn=0x3 state=owned owner=0 count=1 allocated=0  (freed)"});
    // An orphan flag appearing is a change of the same tuple.
    CHECK(trace::explain_change(
              "m2b mfn=0x5 bfn=0x5 domid=1 ioserver=0 swap=0\n",
              "m2b mfn=0x5 bfn=0x5 domid=1 ioserver=0 swap=0 orphan emulator=0\n") ==
          std::vector<std::string>{"~ m2b mfn=0x5 bfn=0x5 domid=1 ioserver=0 +orphan +emulator=0"});
}

TEST_CASE("dump filters: dom=D, mfn=M, mfn=LO-HI, both; bad filters are refused") {
    const std::string dump =
        "host iommu=on mode=inclusive max_order=9 frames=64\n"
        "domain 0 hardware iommu_hw\n"
        "domain 1 guest\n"
        "dm 2 over 1\n"
        "p2m 1 gfn=0x0 mfn=0x10\n"
        "frame mfn=0x3 state=owned owner=0 count=1 allocated=1\n"
        "frame mfn=0x10 state=owned owner=1 count=1 allocated=1\n"
        "iommu 0 bfn=0x1000 mfn=0x10 kind=foreign perms=rw\n"
        "m2b mfn=0x10 bfn=0x1000 domid=1 ioserver=0 swap=0\n"
        "ioserver 1 id=0 emulator=0 ring=511\n";
    trace::DumpFilter f;
    REQUIRE_FALSE(trace::parse_dump_filter("dom=1", f));
    CHECK(trace::filter_dump(dump, f) ==
          "host iommu=on mode=inclusive max_order=9 frames=64\n"
          "domain 1 guest\n"
          "dm 2 over 1\n"
          "p2m 1 gfn=0x0 mfn=0x10\n"
          "frame mfn=0x10 state=owned owner=1 count=1 allocated=1\n"
          "m2b mfn=0x10 bfn=0x1000 domid=1 ioserver=0 swap=0\n"
          "ioserver 1 id=0 emulator=0 ring=511\n");
    REQUIRE_FALSE(trace::parse_dump_filter("mfn=0x0-0x5", f));
    CHECK(trace::filter_dump(dump, f) ==
          "host iommu=on mode=inclusive max_order=9 frames=64\n"
          "frame mfn=0x3 state=owned owner=0 count=1 allocated=1\n");
    REQUIRE_FALSE(trace::parse_dump_filter("dom=0,mfn=0x10", f));
    CHECK(trace::filter_dump(dump, f) ==
          "host iommu=on mode=inclusive max_order=9 frames=64\n"
          "iommu 0 bfn=0x1000 mfn=0x10 kind=foreign perms=rw\n");
    REQUIRE_FALSE(trace::parse_dump_filter("", f));
    CHECK(trace::filter_dump(dump, f) == dump);
    CHECK(trace::parse_dump_filter("domain=1", f).has_value());
    CHECK(trace::parse_dump_filter("mfn=0x9-0x2", f).has_value());
    CHECK(trace::parse_dump_filter("dom=70000", f).has_value());
}

TEST_CASE("run --explain: each call's ruling and each statement's state change") {
    const auto t = parsed(R"(host frames=64
domain 0 hardware iommu_hw ram=16
domain 1 guest ram=4
ioserver 1 id=0 emulator=0
call 0 map_foreign_page bfn=0x1000 gfn=2 domid=1 ioserver=0 flags=rw
call 0 map_foreign_page bfn=0x1000 gfn=3 domid=1 ioserver=0 flags=rw
call 0 9
balloon 1 gfn=2
call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=0
)");
    ref::Hypervisor h(t.host);
    h.record_rulings(true);
    trace::RunOptions opt;
    opt.explain = true;
    opt.hooks.live = &h.state();
    opt.hooks.take_rulings = [&h]() {
        std::vector<std::string> out;
        for (const auto& r : h.take_rulings())
            out.push_back(std::string(spec::status_name(r.status)) + " row " +
                          std::to_string(r.row));
        return out;
    };
    std::ostringstream out;
    const auto sum = trace::run(t, h, opt, out);
    CHECK(sum.exit_code() == 0);
    const std::string text = out.str();
    CAPTURE(text);
    for (const char* want :
         {"    0 row 0\n", "    ~ frame mfn=0x12 count 1->2\n",
          "    + m2b mfn=0x12 bfn=0x1000 domid=1 ioserver=0 swap=0\n", "    -EEXIST row 11\n",
          "    -EOPNOTSUPP: R1, an unknown subop id, before any other check\n",
          "    - p2m 1 gfn=0x2 mfn=0x12\n", "    ~ frame mfn=0x12 count 2->1 allocated 1->0\n",
          "    + ioreq 1 id=0 buffered#0 invalidate bfn=0x1000\n",
          "    - frame mfn=0x12 state=owned owner=1 count=1 allocated=0  (freed)\n"})
        CHECK(text.find(want) != std::string::npos);
}

TEST_CASE("ref's rulings: the spec table's status for the row, and the status ref returned") {
    std::map<std::pair<std::string, int>, std::size_t> reached;
    std::size_t checked = 0;
    for (std::uint64_t seed = 1; seed <= 150; ++seed) {
        const trace::Trace t = trace::random_trace(seed, 100, ref::make);
        ref::Hypervisor h(t.host);
        h.record_rulings(true);
        std::vector<ref::Hypervisor::Ruling> got;
        trace::ModelHooks hooks;
        hooks.live = &h.state();
        hooks.take_rulings = [&]() {
            got = h.take_rulings();
            return std::vector<std::string>(got.size(), "");
        };
        trace::Runner r(t, h, hooks);
        for (std::size_t i = 0; !r.done(); ++i) {
            got.clear();
            const trace::StepRecord rec = r.step();
            const auto* call = std::get_if<trace::CallStmt>(&t.statements[i].stmt);
            if (call == nullptr) continue;
            const auto statuses = split_outcome(rec.outcome);
            REQUIRE(statuses.size() == call->ops.size());
            std::size_t k = 0;
            for (std::size_t j = 0; j < call->ops.size(); ++j) {
                if (std::holds_alternative<spec::UnknownOp>(call->ops[j])) continue;
                REQUIRE(k < got.size());
                const auto& w = got[k++];
                CAPTURE(w.subop);
                CAPTURE(w.row);
                CHECK(spec::status_name(w.status) == statuses[j]);  // what ref returned
                const auto& table = kTables.at(w.subop);
                REQUIRE(w.row >= 0);
                REQUIRE(static_cast<std::size_t>(w.row) < table.size());
                CHECK(table[static_cast<std::size_t>(w.row)] == w.status);  // the spec's row
                ++reached[{std::string(w.subop), w.row}];
                ++checked;
            }
            CHECK(k == got.size());
        }
    }
    MESSAGE(checked << " ops, " << reached.size() << " (subop, row) pairs reached");
    CHECK(checked > 1000);
    CHECK(reached.size() >= 30);  // most rows, not only successes
}
