// Every subop x every error row of spec/pv-iommu.md on ref, including check order: a call that
// breaks two rules gets the first one's status. Each row runs on a fresh copy of one world.
#include <doctest/doctest.h>

#include <string>

#include "ref/hypervisor.h"
#include "trace/runner.h"

using spec::Status;

namespace {

// mfns: dom0 0x0-0xf, dom1 0x10-0x17, dom2 0x18-0x1b, dom3 0x1c-0x1f, Xen gfn 100 of dom1 0x20,
// Xen gfn 50 of dom2 0x21.
constexpr std::string_view kWorld = R"(
host
domain 0 hardware iommu_hw ram=16
domain 1 guest ram=8
domain 2 guest iommu_hw ram=4
domain 3 guest ram=4
domain 4 guest ram=2
dm 2 over 1
dm 3 over 1
ioserver 1 id=0 emulator=0
ioserver 1 id=1 emulator=2
ioserver 1 id=2 emulator=3
xen_gfn 1 gfn=100
xen_gfn 2 gfn=50
rmrr 0 bfn=0x100 count=4
rmrr 2 bfn=0x100 count=4
)";

// Runs kWorld, then `setup` (which must hold every expectation), then `call`; returns the last
// op's result.
spec::OpResult outcome(std::string_view setup, std::string_view call,
                       std::string_view world = kWorld) {
    const std::string text =
        std::string(world) + std::string(setup) + "\n" + std::string(call) + "\n";
    auto parsed = trace::parse("rows", text);
    if (auto* e = std::get_if<trace::ParseError>(&parsed)) FAIL(e->text());
    auto t = std::get<trace::Trace>(std::move(parsed));
    const auto last = std::get<trace::CallStmt>(t.statements.back().stmt);
    t.statements.pop_back();
    auto h = ref::make(t.host);
    trace::Runner r(t, *h);
    while (!r.done()) {
        const auto rec = r.step();
        for (const auto& f : rec.failures) FAIL(f);
    }
    return spec::run_op(*h, last.caller, last.ops.at(0));
}

struct Row {
    const char* rule;
    const char* setup;
    const char* call;
    Status want;
};

void check_rows(std::initializer_list<Row> rows, std::string_view world = kWorld) {
    for (const Row& row : rows) {
        const std::string rule = row.rule, call = row.call;
        CAPTURE(rule);
        CAPTURE(call);
        CHECK(outcome(row.setup, row.call, world).status == row.want);
    }
}

constexpr const char* kMapOk =
    "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=0 flags=rw";

}  // namespace

TEST_CASE("R1: unknown subop -> -EOPNOTSUPP before any other check") {
    check_rows({
        {"R1", "", "call 0 9", Status::eopnotsupp},
        {"R1 before reserved bits", "", "call 0 7 flags=0x3f8", Status::eopnotsupp},
        {"R1 from any caller", "", "call 4 0", Status::eopnotsupp},
        {"R1 id 65535", "", "call 1 65535 flags=0xffff", Status::eopnotsupp},
    });
}

TEST_CASE("query_caps: always 0; map_cap and max_order exactly when usable") {
    auto r = outcome("", "call 0 query_caps flags=0x3f8");  // reserved bits ignored as input
    CHECK(r.status == Status::ok);
    CHECK(std::get<spec::QueryCaps>(r.op).flags == spec::Flags::with_order(9, IOMMU_QUERY_map_cap));
    r = outcome("", "call 1 query_caps");
    CHECK(r.status == Status::ok);
    CHECK(std::get<spec::QueryCaps>(r.op).flags.raw == 0);
    r = outcome("", "call 2 query_caps flags=rw+order=12");
    CHECK(std::get<spec::QueryCaps>(r.op).flags == spec::Flags::with_order(9, IOMMU_QUERY_map_cap));
}

TEST_CASE("map_foreign_page: every error row in R3 order") {
    check_rows({
        {"R1 reserved", "", "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=0 flags=0x8",
         Status::einval},
        {"R1 before R2", "",
         "call 0 map_foreign_page bfn=0x1001 gfn=0 domid=1 ioserver=0 flags=0x2808",
         Status::einval},
        {"R2 order > max", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=0 flags=rw+order=10",
         Status::enospc},
        {"R2 bfn misaligned", "",
         "call 0 map_foreign_page bfn=0x1001 gfn=0 domid=1 ioserver=0 flags=rw+order=1",
         Status::enospc},
        {"R2 gfn misaligned", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=1 domid=1 ioserver=0 flags=rw+order=1",
         Status::enospc},
        {"R2 before usable (F1)", "",
         "call 1 map_foreign_page bfn=0x1000 gfn=0 domid=2 ioserver=0 flags=rw+order=10",
         Status::enospc},
        {"R3 not usable", "",
         "call 1 map_foreign_page bfn=0x1000 gfn=0 domid=2 ioserver=0 flags=rw", Status::eperm},
        {"R3 not usable before dead domid", "",
         "call 3 map_foreign_page bfn=0x1000 gfn=0 domid=99 ioserver=0", Status::eperm},
        {"R3 DOMID_SELF", "", "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=0x7ff0 ioserver=0",
         Status::eperm},
        {"R3 domid == caller", "", "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=2 ioserver=1",
         Status::eperm},
        {"R3 dead domid", "", "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=99 ioserver=0",
         Status::enxio},
        {"R3 no privilege", "", "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=3 ioserver=0",
         Status::eperm},
        {"R3 privilege before ioserver", "",
         "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=4 ioserver=9", Status::eperm},
        {"R3 ioserver unknown", "", "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=9",
         Status::enodev},
        {"R3 ioserver served by another", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1", Status::enodev},
        {"R3 ioserver of another domid", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=4 ioserver=0", Status::enodev},
        {"R3 ioserver before gfn", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=99 domid=1 ioserver=9", Status::enodev},
        {"R3 gfn not in P2M", "", "call 0 map_foreign_page bfn=0x1000 gfn=99 domid=1 ioserver=0",
         Status::enxio},
        {"R2 gfn misaligned for order 2", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=6 domid=1 ioserver=0 flags=rw+order=2",
         Status::enospc},
        {"F2 range past the P2M (aligned)", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=8 domid=1 ioserver=0 flags=rw+order=1",
         Status::enxio},
        {"R3 Xen frame", "", "call 0 map_foreign_page bfn=0x1000 gfn=100 domid=1 ioserver=0",
         Status::eperm},
        {"F2 gfn check over the range before Xen", "",
         "call 0 map_foreign_page bfn=0x1000 gfn=100 domid=1 ioserver=0 flags=rw+order=1",
         Status::enxio},
        {"R3 Xen before RMRR", "", "call 0 map_foreign_page bfn=0x100 gfn=100 domid=1 ioserver=0",
         Status::eperm},
        {"R3 RMRR", "", "call 0 map_foreign_page bfn=0x102 gfn=0 domid=1 ioserver=0",
         Status::eacces},
        {"R3 RMRR just above the range is not met", "",
         "call 2 map_foreign_page bfn=0xfe gfn=2 domid=1 ioserver=1 flags=rw+order=1", Status::ok},
        {"R2 misaligned before RMRR", "",
         "call 0 map_foreign_page bfn=0xfc gfn=4 domid=1 ioserver=0 flags=rw+order=3",
         Status::enospc},
        {"R3 RMRR inside an order-3 range", "",
         "call 0 map_foreign_page bfn=0x100 gfn=0 domid=1 ioserver=0 flags=rw+order=3",
         Status::eacces},
        {"R3 RMRR before EEXIST", "", "call 0 map_foreign_page bfn=0x100 gfn=0 domid=1 ioserver=0",
         Status::eacces},
        {"F3 identity entry, other frame", "",
         "call 0 map_foreign_page bfn=0x5 gfn=0 domid=1 ioserver=0", Status::eexist},
        {"F3 identity entry, same frame", "",
         "call 0 map_foreign_page bfn=0x10 gfn=0 domid=1 ioserver=0", Status::eexist},
        {"R3 foreign entry to another frame", kMapOk,
         "call 0 map_foreign_page bfn=0x1000 gfn=1 domid=1 ioserver=0", Status::eexist},
        {"R3 local entry", "call 0 map_page bfn=0x2000 gfn=3 flags=rw\nexpect status=0",
         "call 0 map_foreign_page bfn=0x2000 gfn=0 domid=1 ioserver=0", Status::eexist},
        // v2: a claim always sits on its frame's entry (unmap_page of a claimed 1:1 bfn is
        // -EBUSY), so R3's "claimed for another frame" clause is reached through that entry.
        {"R3 claimed 1:1 bfn, another frame",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10",
         "call 0 map_foreign_page bfn=0x10 gfn=1 domid=1 ioserver=0", Status::eexist},
        {"F3 claimed 1:1 bfn, the same frame: still another kind",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10",
         "call 0 map_foreign_page bfn=0x10 gfn=0 domid=1 ioserver=0", Status::eexist},
        {"R3 EEXIST before EIO", "fault iommu_map",
         "call 0 map_foreign_page bfn=0x5 gfn=0 domid=1 ioserver=0", Status::eexist},
        {"R3 IOMMU unit failure", "fault iommu_map", kMapOk, Status::eio},
        {"F9 idempotent re-map takes the fault too",
         std::string(kMapOk).append("\nexpect status=0\nfault iommu_map").c_str(), kMapOk,
         Status::eio},
        {"R3 success", "", kMapOk, Status::ok},
        {"R3 idempotent", std::string(kMapOk).append("\nexpect status=0").c_str(), kMapOk,
         Status::ok},
        {"stub domain with dm", "",
         "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=r", Status::ok},
    });
}

TEST_CASE("map_foreign_page: success effects (R3, F3, D3)") {
    const auto r =
        outcome("", "call 0 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=0 flags=rw");
    CHECK(std::get<spec::MapForeignPage>(r.op).bfn == spec::Bfn{0x1000});  // F3: OUT bfn
}

TEST_CASE("lookup_foreign_page: every error row in R4 order") {
    check_rows({
        {"R1 reserved", "", "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0 flags=0x200",
         Status::einval},
        {"R2 order > 0", "", "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0 flags=r+order=1",
         Status::enospc},
        {"R2 order > max", "",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0 flags=r+order=12", Status::enospc},
        {"R4 DOMID_SELF", "", "call 0 lookup_foreign_page gfn=0 domid=0x7ff0 ioserver=0",
         Status::eperm},
        {"R4 domid == caller", "", "call 0 lookup_foreign_page gfn=0 domid=0 ioserver=0",
         Status::eperm},
        {"R4 no usable check: not-usable caller reaches ENXIO", "",
         "call 3 lookup_foreign_page gfn=0 domid=99 ioserver=2", Status::enxio},
        {"R4 no privilege", "", "call 2 lookup_foreign_page gfn=0 domid=3 ioserver=0",
         Status::eperm},
        {"R4 ioserver", "", "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=2", Status::enodev},
        {"R4 gfn", "", "call 0 lookup_foreign_page gfn=8 domid=1 ioserver=0", Status::enxio},
        {"R4 Xen frame", "", "call 0 lookup_foreign_page gfn=100 domid=1 ioserver=0",
         Status::eperm},
        {"F4 bfn input when not usable comes last", "",
         "call 3 lookup_foreign_page bfn=5 gfn=100 domid=1 ioserver=2", Status::eperm},
        {"F4 bfn input when not usable", "",
         "call 3 lookup_foreign_page bfn=5 gfn=0 domid=1 ioserver=2", Status::einval},
        {"R4 not usable: bfn = mfn", "", "call 3 lookup_foreign_page gfn=0 domid=1 ioserver=2",
         Status::ok},
        {"R4 usable, no tuple, no identity", "",
         "call 2 lookup_foreign_page gfn=0 domid=1 ioserver=1", Status::enoent},
        {"R4 usable: input bfn ignored", "",
         "call 0 lookup_foreign_page bfn=7 gfn=0 domid=1 ioserver=0", Status::ok},
        {"R4 identity removed -> ENOENT", "call 0 unmap_page bfn=0x10\nexpect status=0",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0", Status::enoent},
        {"R4 tuple from map_foreign",
         "call 2 map_foreign_page bfn=0x3000 gfn=0 domid=1 ioserver=1 flags=rw\nexpect status=0",
         "call 2 lookup_foreign_page gfn=0 domid=1 ioserver=1", Status::ok},
    });
    auto r = outcome("", "call 3 lookup_foreign_page gfn=2 domid=1 ioserver=2");
    CHECK(std::get<spec::LookupForeignPage>(r.op).bfn == spec::Bfn{0x12});  // no IOMMU: bfn = mfn
    r = outcome(
        "call 2 map_foreign_page bfn=0x3001 gfn=0 domid=1 ioserver=1\nexpect status=0\n"
        "call 2 map_foreign_page bfn=0x3000 gfn=0 domid=1 ioserver=1\nexpect status=0",
        "call 2 lookup_foreign_page gfn=0 domid=1 ioserver=1");
    CHECK(std::get<spec::LookupForeignPage>(r.op).bfn == spec::Bfn{0x3000});  // R4: the lowest
}

TEST_CASE("unmap_foreign_page: every error row (R5, F5)") {
    check_rows({
        {"R1 reserved", "", "call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=0 flags=0x10",
         Status::einval},
        {"R2 order", "", "call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=0 flags=-+order=1",
         Status::enospc},
        {"F5 nothing there", "", "call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=0",
         Status::enoent},
        {"F5 identity entry", "", "call 0 unmap_foreign_page bfn=0x10 domid=1 ioserver=0",
         Status::enoent},
        {"F5 local entry", "call 0 map_page bfn=0x2000 gfn=3 flags=rw\nexpect status=0",
         "call 0 unmap_foreign_page bfn=0x2000 domid=1 ioserver=0", Status::enoent},
        {"F5 another server's tuple", kMapOk,
         "call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=1", Status::enoent},
        {"F5 another emulator's tuple",
         "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1\nexpect status=0",
         "call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=1", Status::enoent},
        {"R5 own tuple", kMapOk, "call 0 unmap_foreign_page bfn=0x1000 domid=1 ioserver=0",
         Status::ok},
        {"F5 no domid check", kMapOk,
         "call 0 unmap_foreign_page bfn=0x1000 domid=0x7ff0 ioserver=0", Status::enoent},
        {"R5 not usable caller",
         "call 3 lookup_foreign_page gfn=0 domid=1 ioserver=2\nexpect status=0 bfn=0x10",
         "call 3 unmap_foreign_page bfn=0x10 domid=1 ioserver=2", Status::ok},
        {"F5 scratch after the target died",
         "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1\nexpect status=0\ndestroy 1",
         "call 2 unmap_foreign_page bfn=0x1000 domid=77 ioserver=5", Status::ok},
    });
}

TEST_CASE("map_page: every error row in F6/R6 order") {
    check_rows({
        {"R1 reserved", "", "call 0 map_page bfn=0x2000 gfn=0 flags=0x40", Status::einval},
        {"R2 order", "", "call 0 map_page bfn=0x2000 gfn=0 flags=rw+order=10", Status::enospc},
        {"R2 bfn", "", "call 0 map_page bfn=0x2001 gfn=0 flags=rw+order=1", Status::enospc},
        {"R2 gfn", "", "call 0 map_page bfn=0x2000 gfn=1 flags=rw+order=1", Status::enospc},
        {"F6 R2 before usable", "", "call 1 map_page bfn=0x2001 gfn=0 flags=rw+order=1",
         Status::enospc},
        {"R6 not usable", "", "call 1 map_page bfn=0x2000 gfn=0 flags=rw", Status::eperm},
        {"R6 not usable before gfn", "", "call 1 map_page bfn=0x2000 gfn=99 flags=rw",
         Status::eperm},
        {"R6 gfn", "", "call 2 map_page bfn=0x2000 gfn=9 flags=rw", Status::enxio},
        {"R6 Xen frame", "", "call 2 map_page bfn=0x2000 gfn=50 flags=rw", Status::eperm},
        {"R6 Xen before RMRR", "", "call 2 map_page bfn=0x100 gfn=50 flags=rw", Status::eperm},
        {"R6 RMRR", "", "call 2 map_page bfn=0x103 gfn=0 flags=rw", Status::eacces},
        {"R6 RMRR before EEXIST", "", "call 0 map_page bfn=0x101 gfn=0 flags=rw", Status::eacces},
        {"R6 identity occupied", "", "call 0 map_page bfn=0x3 gfn=3 flags=rw", Status::eexist},
        {"R6 local occupied (no idempotent map_page)",
         "call 2 map_page bfn=0x2000 gfn=0\nexpect status=0",
         "call 2 map_page bfn=0x2000 gfn=0 flags=rw", Status::eexist},
        {"R6 foreign occupied", kMapOk, "call 0 map_page bfn=0x1000 gfn=0 flags=rw",
         Status::eexist},
        {"R6 claimed 1:1 bfn",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10",
         "call 0 map_page bfn=0x10 gfn=0 flags=rw", Status::eexist},
        {"R6 EEXIST before EIO", "fault iommu_map", "call 0 map_page bfn=0x3 gfn=3 flags=rw",
         Status::eexist},
        {"R6 unit failure", "fault iommu_map", "call 2 map_page bfn=0x2000 gfn=0 flags=rw",
         Status::eio},
        {"R6 success", "", "call 2 map_page bfn=0x2000 gfn=0 flags=rw", Status::ok},
        {"R6 order-2 success", "", "call 2 map_page bfn=0x2000 gfn=0 flags=rw+order=2", Status::ok},
    });
}

TEST_CASE("unmap_page: every error row in F6/F10 order") {
    check_rows({
        {"R1 reserved", "", "call 0 unmap_page bfn=0x3 flags=0x100", Status::einval},
        {"R2 order", "", "call 0 unmap_page bfn=0x0 flags=-+order=10", Status::enospc},
        {"R2 bfn", "", "call 0 unmap_page bfn=0x3 flags=-+order=1", Status::enospc},
        {"F6 not usable", "", "call 1 unmap_page bfn=0x3", Status::eperm},
        {"F10 nothing there", "", "call 2 unmap_page bfn=0x3", Status::enoent},
        {"F10 ENOENT over the range before EPERM", kMapOk,
         "call 0 unmap_page bfn=0x1000 flags=-+order=1", Status::enoent},
        {"R6 foreign", kMapOk, "call 0 unmap_page bfn=0x1000", Status::eperm},
        {"F10 a foreign entry inside an identity range",
         "call 0 unmap_page bfn=0x9\nexpect status=0\ncall 0 map_foreign_page bfn=0x9 gfn=0 "
         "domid=1 ioserver=0\nexpect status=0",
         "call 0 unmap_page bfn=0x8 flags=-+order=2", Status::eperm},
        {"F10 ENOENT anywhere in the range wins over EPERM",
         "call 0 unmap_page bfn=0xb\nexpect status=0\ncall 0 unmap_page bfn=0x9\nexpect "
         "status=0\ncall 0 map_foreign_page bfn=0x9 gfn=0 domid=1 ioserver=0\nexpect status=0",
         "call 0 unmap_page bfn=0x8 flags=-+order=2", Status::enoent},
        {"R6 scratch",
         "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1\nexpect status=0\ndestroy 1",
         "call 2 unmap_page bfn=0x1000", Status::eperm},
        {"R6 v2 claimed 1:1 bfn -> EBUSY",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10",
         "call 0 unmap_page bfn=0x10", Status::ebusy},
        {"F10 EBUSY anywhere in the range",
         "call 0 lookup_foreign_page gfn=1 domid=1 ioserver=0\nexpect status=0 bfn=0x11",
         "call 0 unmap_page bfn=0x10 flags=-+order=2", Status::ebusy},
        {"F10 EPERM over the range before EBUSY",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10\n"
         "call 0 unmap_page bfn=0x13\nexpect status=0\ncall 0 map_foreign_page bfn=0x13 gfn=3 "
         "domid=1 ioserver=0\nexpect status=0",
         "call 0 unmap_page bfn=0x10 flags=-+order=2", Status::eperm},
        {"F10 ENOENT over the range before EBUSY",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10\n"
         "call 0 unmap_page bfn=0x13\nexpect status=0",
         "call 0 unmap_page bfn=0x10 flags=-+order=2", Status::enoent},
        {"R6 v2 unclaimed again after unmap_foreign_page",
         "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0\nexpect status=0 bfn=0x10\n"
         "call 0 unmap_foreign_page bfn=0x10 domid=1 ioserver=0\nexpect status=0",
         "call 0 unmap_page bfn=0x10", Status::ok},
        {"R6 identity", "", "call 0 unmap_page bfn=0x3", Status::ok},
        {"R6 identity twice", "call 0 unmap_page bfn=0x3\nexpect status=0",
         "call 0 unmap_page bfn=0x3", Status::enoent},
        {"R6 identity order 9 (whole 1:1 block)", "", "call 0 unmap_page bfn=0x0 flags=-+order=5",
         Status::ok},
        {"R6 local", "call 2 map_page bfn=0x2000 gfn=0\nexpect status=0",
         "call 2 unmap_page bfn=0x2000", Status::ok},
    });
}

// D19/D20 rows. mfns: dom0 0x0-0xf, dom1 0x10-0x17, dom2 0x18-0x1b, dom3 0x1c.
constexpr std::string_view kLimitsWorld = R"(
host max_count=3
domain 0 hardware iommu_hw ram=16
domain 1 guest ram=8
domain 2 guest iommu_hw ram=4 quota=2
domain 3 guest ram=1 quota=0
dm 2 over 1
dm 3 over 1
ioserver 1 id=0 emulator=0
ioserver 1 id=1 emulator=2
ioserver 1 id=2 emulator=3
ioserver 1 id=3 emulator=0
)";
// mfn 0x10 at count 3 (allocation + two tuples); domain 2 holds 2 (its quota).
constexpr const char* kFull =
    "call 0 map_foreign_page bfn=0x10000 gfn=0 domid=1 ioserver=0 flags=rw\n"
    "call 2 map_foreign_page bfn=0x1000 gfn=0 domid=1 ioserver=1 flags=rw\n"
    "call 2 map_page bfn=0x50 gfn=0 flags=rw";

TEST_CASE("D19, D20: -EOVERFLOW and -ENOMEM rows in check order") {
    check_rows(
        {
            {"D19 map_foreign_page", kFull,
             "call 0 map_foreign_page bfn=0x10001 gfn=0 domid=1 ioserver=0 flags=rw",
             Status::eoverflow},
            {"R3 -EEXIST before D19", kFull,
             "call 0 map_foreign_page bfn=0x5 gfn=0 domid=1 ioserver=0 flags=rw", Status::eexist},
            {"D19 idempotent re-map takes nothing", kFull,
             "call 0 map_foreign_page bfn=0x10000 gfn=0 domid=1 ioserver=0 flags=r", Status::ok},
            {"D19 before D20", kFull,
             "call 2 map_foreign_page bfn=0x2000 gfn=0 domid=1 ioserver=1 flags=rw",
             Status::eoverflow},
            {"D20 map_foreign_page", kFull,
             "call 2 map_foreign_page bfn=0x2000 gfn=1 domid=1 ioserver=1 flags=rw",
             Status::enomem},
            {"D20 map_page", kFull, "call 2 map_page bfn=0x51 gfn=1 flags=rw", Status::enomem},
            {"R6 -EEXIST before D20", kFull, "call 2 map_page bfn=0x50 gfn=1 flags=rw",
             Status::eexist},
            {"D19 map_page",
             "call 0 map_page bfn=0x30000 gfn=0 flags=rw\ncall 0 map_page bfn=0x30001 gfn=0 "
             "flags=rw",
             "call 0 map_page bfn=0x30002 gfn=0 flags=rw", Status::eoverflow},
            {"D19 order-1 map_page, one full unit",
             "call 0 map_page bfn=0x30000 gfn=0 flags=rw\ncall 0 map_page bfn=0x30001 gfn=0 "
             "flags=rw",
             "call 0 map_page bfn=0x30004 gfn=0 flags=rw+order=1", Status::eoverflow},
            {"F4 -EINVAL before D20", "",
             "call 3 lookup_foreign_page gfn=1 bfn=0x5 domid=1 ioserver=2", Status::einval},
            {"D20 lookup, not usable", "", "call 3 lookup_foreign_page gfn=1 domid=1 ioserver=2",
             Status::enomem},
            {"D19 lookup before D20", kFull, "call 3 lookup_foreign_page gfn=0 domid=1 ioserver=2",
             Status::eoverflow},
            {"D19 lookup on the 1:1 path", kFull,
             "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=3", Status::eoverflow},
            {"lookup finding its tuple takes nothing", kFull,
             "call 0 lookup_foreign_page gfn=0 domid=1 ioserver=0", Status::ok},
            {"R4 -ENOENT: no tuple added, no limit", kFull,
             "call 2 lookup_foreign_page gfn=2 domid=1 ioserver=1", Status::enoent},
        },
        kLimitsWorld);
}

TEST_CASE("D20 before -EIO; -EIO after both limits") {
    const std::string full = std::string(kFull) + "\nfault iommu_map";
    check_rows(
        {
            {"D20 before the armed fault", full.c_str(), "call 2 map_page bfn=0x51 gfn=1 flags=rw",
             Status::enomem},
            {"D19 before the armed fault", full.c_str(),
             "call 0 map_foreign_page bfn=0x10001 gfn=0 domid=1 ioserver=0 flags=rw",
             Status::eoverflow},
            {"-EIO when both pass", full.c_str(),
             "call 0 map_foreign_page bfn=0x10002 gfn=1 domid=1 ioserver=0 flags=rw", Status::eio},
        },
        kLimitsWorld);
}

// v2's motivating trace (spec/pv-iommu.md): a lookup by a device-model domain without an IOMMU (bus
// address = machine frame 4) and a lookup registered on dom0's 1:1 entry 5; then the target
// dies and a new guest is created.
TEST_CASE("INV-DEVICE-SAFE: holds under R9 v2, fails under v1's teardown (frames 4, 5 reused)") {
    const std::string head = R"(host iommu=on mode=inclusive max_order=0 frames=16
domain 0 hardware iommu_hw ram=4
domain 1 guest ram=4
domain 2 guest ram=1
dm 2 over 1
ioserver 1 id=0 emulator=2
ioserver 1 id=1 emulator=0
call 2 lookup_foreign_page gfn=0 domid=1 ioserver=0
expect status=0 bfn=0x4
call 0 lookup_foreign_page gfn=1 domid=1 ioserver=1
expect status=0 bfn=0x5
destroy 1
)";
    // v2: both tuples stay as orphans, so the new guest gets frames 6 and 7.
    auto parsed = trace::parse("issue", head +
                                            "domain 3 guest ram=2\ncheck invariants\n"
                                            "check p2m 3 gfn=0 mfn=0x6\ncheck dma 2 bfn=0x4 "
                                            "mfn=0x4\ncheck dma 0 bfn=0x5 mfn=0x5\n");
    REQUIRE(std::holds_alternative<trace::Trace>(parsed));
    const auto& t = std::get<trace::Trace>(parsed);
    auto h = ref::make(t.host);
    trace::Runner r(t, *h);
    while (!r.done()) {
        const auto rec = r.step();
        for (const auto& f : rec.failures) FAIL(f);
    }
    CHECK(r.handed().size() == 2);

    // v1: the same world up to the destroy, then v1's rule by hand: every tuple of a server
    // of the dead target goes with its reference (frames 4 and 5 are freed), and the new guest
    // takes them while both devices still DMA there.
    auto p1 = trace::parse("issue", head);
    const auto& t1 = std::get<trace::Trace>(p1);
    auto h1 = ref::make(t1.host);
    trace::Runner r1(t1, *h1);
    while (!r1.done()) (void)r1.step();
    spec::State s = h1->snapshot();
    for (auto& [m, tuples] : s.m2b) {
        auto& f = s.frames.at(m);
        f.count -= static_cast<std::uint32_t>(tuples.size());
        if (f.count == 0) s.frames.erase(m);
    }
    s.m2b.clear();
    // v1's state is consistent at the data level (INV-NO-FREE-WHILE-MAPPED included: no tuple
    // or entry names frames 4 and 5 any more), but both devices now reach free frames.
    CHECK(spec::check_invariants(s).empty());
    const auto v = spec::check_device_safe(s, r1.handed());
    REQUIRE(v.size() == 2);
    CHECK(v[0].invariant == "INV-DEVICE-SAFE");
    CHECK(v[1].invariant == "INV-DEVICE-SAFE");
    // The new guest then takes them while both devices still DMA there (the runner, checking
    // after every statement, stops at the destroy).
    ref::Hypervisor v1(s);
    REQUIRE(v1.create_domain(spec::DomId{3}, spec::DomainRole::guest, false, 2));
    CHECK(v1.state().p2m(spec::DomId{3}, spec::Gfn{0}) == spec::Mfn{4});
    CHECK(v1.state().p2m(spec::DomId{3}, spec::Gfn{1}) == spec::Mfn{5});
    MESSAGE(v[0].detail << "\n" << v[1].detail);
}
