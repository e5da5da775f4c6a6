// proofs/tests/proofs_test.cpp: every obligation proved (one test case per transition), every
// planted bug caught with the invariant it breaks, every hypothesis set satisfiable
// (non-vacuity). A timeout or `unknown` fails.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <variant>

#include "proofs/explore.h"
#include "proofs/prove.h"
#include "ref/hypervisor.h"
#include "trace/trace.h"

namespace {

// PVIOMMU_BUDGET=ci (default) | full, as the props tests. Both prove the inductive obligations
// at full width (v2, 291 obligations: about 40 s of CPU in all); full also runs 5,000
// conformance samples and the symbolic BMC from 6 worlds instead of 3 (v2: at depth 3 with
// R11's steps among the transitions some worlds' queries time out at 60 s, so depth 3 would
// fail as unknown; the explicit BMC below goes deeper).
bool full_budget() {
    const char* b = std::getenv("PVIOMMU_BUDGET");
    return b != nullptr && std::string(b) == "full";
}

proofs::Options opts() {
    proofs::Options o;
    o.timeout_ms = 20000u;
    o.small = false;
    return o;
}

bool is_open(const std::string& name) {
    const auto& open = proofs::open_obligations();
    return std::find(open.begin(), open.end(), name) != open.end();
}

// Every obligation whose name starts with `prefix`, but the open ones (not proved yet: listed
// in proofs::open_obligations, run and failed by `pviommu prove`).
void expect_all(const std::string& prefix) {
    std::size_t n = 0;
    for (const auto& name : proofs::obligation_names()) {
        if (name.rfind(prefix, 0) != 0) continue;
        if (is_open(name)) {  // open at full width: named, not run (none is, today)
            MESSAGE("open, not run: " << name);
            continue;
        }
        ++n;
        const proofs::Result r = proofs::check_obligation(name, opts());
        INFO(name << ": " << r.result << " in " << r.seconds << " s\n" << r.detail);
        CHECK(r.pass);
    }
    CHECK(n > 0);
}

void expect_caught(const std::string& mutant, const std::string& invariant) {
    const proofs::MutantResult r = proofs::check_mutant(mutant, opts());
    INFO(mutant << " (" << r.transition << "): " << r.detail);
    CHECK(r.expected == invariant);
    CHECK(r.caught);
}

}  // namespace

TEST_CASE("inductive: map_foreign_page preserves every invariant") {
    expect_all("map_foreign_page/");
}
TEST_CASE("inductive: unmap_foreign_page preserves every invariant") {
    expect_all("unmap_foreign_page/");
}
TEST_CASE("inductive: lookup_foreign_page preserves every invariant") {
    expect_all("lookup_foreign_page/");
}
TEST_CASE("inductive: map_page preserves every invariant") { expect_all("map_page/"); }
TEST_CASE("inductive: unmap_page preserves every invariant") { expect_all("unmap_page/"); }
TEST_CASE("inductive: balloon preserves every invariant") { expect_all("balloon/"); }
TEST_CASE("inductive: populate preserves every invariant") { expect_all("populate/"); }
TEST_CASE("inductive: query_caps, drain and deliver preserve every invariant") {
    expect_all("query_caps/");
    expect_all("drain/");
    expect_all("deliver/");
}
TEST_CASE("inductive: destroy's teardown steps (R9 v2) preserve every invariant") {
    expect_all("destroy_begin/");
    expect_all("destroy_drop_tuple/");
    expect_all("destroy_drop_local/");
    expect_all("destroy_finish/");
}
// Issue 17, item 4: the control-plane statements as transitions.
TEST_CASE("inductive: the control-plane statements preserve every invariant") {
    for (const char* t : {"create_domain/", "dm/", "ioserver/", "rmrr/", "xen_gfn/", "fault/"})
        expect_all(t);
}
TEST_CASE("mutant: `domain` accepts DOMID_SELF") { expect_caught("create_domain_self", "AUX-WF"); }
TEST_CASE("mutant: `dm E over T` replaces E's privileges instead of adding one") {
    expect_caught("dm_replaces_privileges", "INV-PRIV");
}
TEST_CASE("mutant: `ioserver` replaces an existing server") {
    expect_caught("ioserver_over_existing", "INV-PRIV");
}
TEST_CASE("mutant: `rmrr` after the first call, over a mapped bfn") {
    expect_caught("rmrr_over_mapped_entry", "INV-NO-XEN");
}
TEST_CASE("mutant: `xen_gfn` takes a frame in use, not the lowest free one") {
    expect_caught("xen_gfn_takes_used_frame", "INV-NO-XEN");
}
TEST_CASE("mutant: `fault iommu_map count=N` arms N - 1 faults") {
    expect_caught("fault_count_off_by_one", "AUX-WF");
}
TEST_CASE("inductive: R11's IOTLB fill, flush and deferred put preserve every invariant") {
    expect_all("tlb_fill/");
    expect_all("flush/");
    expect_all("put/");
}
TEST_CASE("inductive: INV-DEVICE-SAFE and INV-NO-FREE-WHILE-CACHED hold for every transition") {
    // (Also among the per-transition cases above; named here as v2's headline obligations.)
    std::size_t n = 0;
    for (const auto& name : proofs::obligation_names())  // per transition: not init/ (base)
        n += !name.starts_with("init/") &&
             (name.find("/INV-DEVICE-SAFE") != std::string::npos ||
              name.find("/INV-NO-FREE-WHILE-CACHED") != std::string::npos);
    CHECK(n == 2 * 23);
}
// Issue 17, item 5: INV-INVALIDATE is an invariant of every transition (what a balloon owes is
// owed, on a ring, on a synchronous channel, until drained), and a balloon owes one per tuple.
TEST_CASE("INV-INVALIDATE: a balloon owes one invalidation per tuple, none is ever dropped") {
    expect_all("INV-INVALIDATE/");
    std::size_t n = 0;
    for (const auto& name : proofs::obligation_names())
        if (name.ends_with("/INV-INVALIDATE") && !name.starts_with("init/")) {
            ++n;
            CHECK(proofs::obligation_kind(name) ==
                  (name.starts_with("query_caps/") ? "identity" : "inductive"));
        }
    CHECK(n == 23);
    CHECK(proofs::obligation_kind("drain/INV-INVALIDATE") == "inductive");
    CHECK(proofs::obligation_kind("query_caps/INV-INVALIDATE") == "identity");
}
TEST_CASE("mutant: a delivery into a full ring drops the invalidation (R7)") {
    expect_caught("ring_full_drop_encoding", "INV-INVALIDATE");
}
// Issue 17, item 4 (D20): INV-QUOTA is an invariant of every transition; a map that skips
// the -ENOMEM check breaks it on a state ref reached.
TEST_CASE("INV-QUOTA: no domain's holdings pass its quota") {
    std::size_t n = 0;
    for (const auto& name : proofs::obligation_names()) {
        if (!name.ends_with("/INV-QUOTA")) continue;
        ++n;
        const proofs::Result r = proofs::check_obligation(name, opts());
        INFO(name << ": " << r.result << " in " << r.seconds << " s\n" << r.detail);
        CHECK(r.pass);
    }
    CHECK(n == 23 + 1);  // each transition, and init
}
TEST_CASE("mutant: map_page skips the quota check (D20)") {
    expect_caught("map_page_skips_quota", "INV-QUOTA");
}
TEST_CASE("mutant: map_foreign_page skips the quota check (D20)") {
    expect_caught("map_foreign_skips_quota", "INV-QUOTA");
}
TEST_CASE("lemma: LEMMA-HOLDERS follows from the invariants") { expect_all("lemma/"); }
TEST_CASE("base: the initial state (what the control plane leaves) satisfies every invariant") {
    expect_all("init/");
}
TEST_CASE("coverage: each transition's cases cover it, and each case equals its next") {
    // The inductive obligations read the cases; conformance and the BMCs read `next`.
    expect_all("coverage/");
}
TEST_CASE("mutant: a bug planted in unmap_foreign_page's next only is caught by coverage") {
    expect_caught("next-only:unmap_foreign_keeps_tuple", "COVERAGE");
}
TEST_CASE("non-vacuity: Inv and init, and Inv and each transition's ok, are satisfiable") {
    expect_all("non-vacuity/");
}

TEST_CASE("mutant: balloon frees the frame while tuples remain") {
    expect_caught("balloon_frees_with_tuples", "INV-NO-FREE-WHILE-MAPPED");
}
TEST_CASE("mutant: swap keeps the tuple but drops the reference") {
    expect_caught("swap_keeps_tuple_drops_ref", "INV-COUNT");
}
TEST_CASE("mutant: lookup on an identity entry adds a tuple without a reference") {
    expect_caught("lookup_identity_no_ref", "INV-COUNT");
}
TEST_CASE("mutant: unmap_foreign_page leaves a foreign entry pointing at a freed frame") {
    expect_caught("unmap_foreign_keeps_entry", "INV-NO-FREE-WHILE-MAPPED");
}
TEST_CASE("mutant: map skips the RMRR check") { expect_caught("map_skips_rmrr", "INV-NO-XEN"); }
TEST_CASE("mutant: map_page skips the max_count check (D19)") {
    expect_caught("map_skips_max_count", "INV-MAX-COUNT");
}
TEST_CASE(
    "mutant: destroy leaves a surviving emulator's foreign entry on a dropped tuple's frame") {
    expect_caught("destroy_leaves_foreign_entry", "INV-NO-FREE-WHILE-MAPPED");
}
TEST_CASE("mutant: teardown-v1, destroy drops the tuples R9 v2 keeps as orphans") {
    expect_caught("teardown-v1", "INV-DEVICE-SAFE");
}
TEST_CASE("mutant: put-before-flush, a deferred put does not wait for the IOTLB flush (R11)") {
    expect_caught("put-before-flush", "INV-NO-FREE-WHILE-CACHED");
}

TEST_CASE("inductive: every obligation holds at small width too") {
    proofs::Options o;
    o.timeout_ms = 20000u;
    o.small = true;
    const auto results = proofs::check_obligations(proofs::obligation_names(), o, 1);
    CHECK(results.size() == proofs::obligation_names().size());
    for (const auto& r : results) {
        INFO(r.name << ": " << r.result << "\n" << r.detail);
        CHECK(r.pass);
    }
}

TEST_CASE("every open obligation is a real obligation name") {
    const auto names = proofs::obligation_names();
    for (const auto& o : proofs::open_obligations())
        CHECK(std::find(names.begin(), names.end(), o) != names.end());
}

TEST_CASE("every obligation and mutant has a name the CLI can select") {
    // 23 transitions (17 and the 6 control-plane statements, issue 17 item 4) x 19
    // invariants (INV-QUOTA, D20, the 19th), Init => each of the 19 invariants, coverage of
    // each transition, LEMMA-HOLDERS, INV-INVALIDATE/balloon, non-vacuity of init and of each
    // transition.
    CHECK(proofs::obligation_names().size() == 23 * 19 + 19 + 23 + 1 + 1 + 24);
    CHECK(proofs::mutant_names().size() == 19);
}

TEST_CASE("conformance: the encoded transitions agree with ref on random concrete states") {
    const bool full = full_budget();
    proofs::Options o;
    o.timeout_ms = 20000u;
    // Seed 4: its 1,000 samples reach every row below (rows after many checks, -EEXIST, R6
    // v2's -EBUSY and D19's -EOVERFLOW, take a few per thousand) and make orphans.
    const proofs::ConformanceResult r = proofs::conformance(4, full ? 5000 : 1000, o);
    MESSAGE("conformance: " << r.samples << " samples (seed " << r.seed << ") in " << r.seconds
                            << " s");
    for (const auto& [op, n] : r.per_op) MESSAGE("  " << op << ": " << n);
    INFO(r.detail);
    CHECK(r.divergences == 0);
    // Every encoded transition (destroy's teardown steps, R11's flushes and puts and R7's
    // deliveries by their chains, the control-plane statements, issue 17 item 4), and destroy.
    CHECK(r.per_op.size() == 24);
    // R9 v2 step 2 left orphans, and their chains still end where ref's destroy does.
    CHECK(r.orphans > 0);
    // The rows the encoding must get right are reached: D19's -EOVERFLOW, D20's -ENOMEM and
    // R6 v2's -EBUSY among them.
    for (const unsigned st : {0u, 1u, 2u, 5u, 6u, 12u, 16u, 17u, 19u, 22u, 75u}) {
        INFO("status -" << st);
        CHECK(r.per_status.count(st) == 1);
    }
}

// Issue 17: random samples rarely reach the success rows that matter; the explorer's edges
// reach every row of its worlds. stubdom and inclusive at depth 4 reach every case of every
// transition but the ones proofs::unreached_cases names (with why); the full budget adds xengt
// and depth 5.
TEST_CASE("conformance on the explicit BMC's edges: no divergence, every reachable case reached") {
    const bool full = full_budget();
    proofs::Options o;
    o.timeout_ms = 20000u;
    std::map<std::string, std::set<std::size_t>> hit;
    for (const std::string w : {"stubdom", "inclusive", "xengt"}) {
        if (!full && w == std::string("xengt")) continue;
        const proofs::EdgeConformanceResult r =
            proofs::conformance_on_edges(w, full ? 5 : 4, 1, "", o);
        MESSAGE("edge conformance " << w << ": " << r.edges << " edges, " << r.buckets
                                    << " buckets, " << r.steps << " steps compared, " << r.seconds
                                    << " s");
        INFO(r.detail);
        CHECK(r.divergences == 0);
        CHECK_FALSE(r.unknown);
        CHECK(r.compared > 50);
        for (const auto& [t, ks] : r.cases_hit) hit[t].insert(ks.begin(), ks.end());
    }
    const auto unreached = proofs::unreached_cases();
    for (const auto& [t, n] : proofs::case_counts())
        for (std::size_t k = 0; k < n; ++k) {
            const auto ut = unreached.find(t);
            const bool excused = ut != unreached.end() && ut->second.contains(k);
            INFO(t << " case " << k);
            CHECK(hit[t].contains(k) != excused);  // reached, or named as unreachable
        }
}

// Issue 17, item 7: every decided query can be exported as SMT-LIB 2 (pviommu prove --smt2) and
// checked by cvc5 (pviommu prove --solver=cvc5). cvc5 (Debian package cvc5) is optional: without
// it, the cvc5 half is skipped with a message.
TEST_CASE("second solver: queries exported as SMT-LIB 2, and cvc5 never disagrees with Z3") {
    const std::filesystem::path dir =
        std::filesystem::temp_directory_path() / "pviommu-proofs-test-smt2";
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    proofs::Options o;
    o.smt2_dir = dir.string();
    std::vector<std::pair<std::string, std::string>> files;
    for (const char* name : {"coverage/map_page", "init/INV-COUNT", "lemma/LEMMA-HOLDERS"}) {
        const proofs::Result r = proofs::check_obligation(name, o);
        INFO(name << ": " << r.detail);
        CHECK(r.pass);
        CHECK_FALSE(r.exported.empty());
        files.insert(files.end(), r.exported.begin(), r.exported.end());
    }
    for (const auto& [f, v] : files) {
        CHECK(std::filesystem::exists(f));
        CHECK(v == "unsat");  // every exported query of a proved obligation is a refutation
    }
    const std::string ver = proofs::cvc5_version();
    if (ver.empty()) {
        MESSAGE("SKIPPED the cvc5 half: no cvc5 on PATH (Debian: apt-get install cvc5)");
        return;
    }
    std::size_t agree = 0, disagree = 0;
    for (const auto& [f, v] : files) {
        const std::string c = proofs::cvc5_verdict(f, 10000);
        INFO(f << ": cvc5 " << c << ", Z3 " << v);
        agree += c == v;
        disagree += (c == "sat" || c == "unsat") && c != v;
    }
    MESSAGE(ver << ": agrees on " << agree << " of " << files.size() << " queries");
    CHECK(disagree == 0);
    CHECK(agree > 0);
    std::filesystem::remove_all(dir);
}

TEST_CASE("planted ref bugs are caught by the conformance on the BMC's edges") {
    // A ref that leaves the foreign entry after unmap_foreign_page; a ref that drops the
    // invalidations that go to the synchronous channel when the ring is full.
    for (const std::string& n : proofs::ref_mutant_names()) {
        const proofs::MutantResult r = proofs::check_ref_mutant(n);
        INFO(n << ": " << r.detail);
        CHECK(r.caught);
    }
    CHECK(proofs::ref_mutant_names().size() == 2);
}

TEST_CASE("bmc: no INV-* fails within 2 steps from 3 small worlds (6 with the full budget)") {
    proofs::Options o;
    o.timeout_ms = 60000u;
    const proofs::BmcResult r = proofs::bmc(1, 2, full_budget() ? 6 : 3, o);
    MESSAGE("bmc depth " << r.depth << ", " << r.worlds << " worlds in " << r.seconds << " s");
    INFO(r.trace << r.detail);
    CHECK(r.worlds > 0);
    CHECK_FALSE(r.violation);
    CHECK_FALSE(r.unknown);
}

// The explicit-state BMC (proofs/explore.h): every sequence of statements over each fixed
// world's universe, on ref, with ref's invariants on every state and Z3's encoded ones on a
// sample. CI: depth 6, Z3 on every 100th state; the full budget: depth 8, every 500th (v2:
// with H, the IOTLBs and the deferred puts a state costs Z3 about 80 ms, one step from it (16
// transitions) about 0.5 s; measured at depth 6 on this 2-core machine without Z3: 3.0 s for
// xengt, 0.6 s for stubdom, 3.2 s for order1).
TEST_CASE(
    "bmc explicit: every sequence of 6 statements (8 with the full budget) breaks no invariant") {
    for (const std::string& w : proofs::explore_world_names()) {
        proofs::ExploreOptions o;
        o.depth = full_budget() ? 8 : 6;
        o.z3_every = full_budget() ? 500 : 100;
        o.step_every = full_budget() ? 10000 : 5000;
        o.z3.timeout_ms = 20000u;
        const proofs::ExploreResult r = proofs::explore(w, o);
        MESSAGE("explicit bmc " << w << ": depth " << r.depth << ", " << r.states << " states, "
                                << r.edges << " statements, Z3 on " << r.z3_checked
                                << " states and " << r.z3_steps << " steps, " << r.seconds << " s");
        INFO(r.trace << r.detail);
        CHECK_FALSE(r.violation);
        CHECK_FALSE(r.unknown);
        CHECK(r.depth == o.depth);
        CHECK(r.z3_checked > 0);
        CHECK(r.z3_steps > 0);
        // Every depth adds states: the universe is not exhausted early (which would make the
        // depth claim empty).
        for (std::size_t n : r.per_level) CHECK(n > 0);
    }
}

TEST_CASE("planted bugs in the explicit BMC's step are caught, with traces pviommu run parses") {
    const auto names = proofs::explore_mutant_names();
    CHECK(names.size() == 4);
    for (const std::string& n : names) {
        const proofs::MutantResult r = proofs::check_explore_mutant(n);
        INFO(n << ": " << r.detail);
        CHECK(r.caught);
        const trace::ParseResult p = trace::parse("bmc-trace", r.detail);
        const auto* e = std::get_if<trace::ParseError>(&p);
        INFO((e != nullptr ? e->text() : std::string()));
        CHECK(e == nullptr);
    }
}

TEST_CASE("the encoded invariants fail, naming the clause, on a state that breaks one") {
    spec::Host h;
    h.mode = spec::IommuMode::strict;
    h.max_order = 0;
    h.frames = 6;
    ref::Hypervisor hv(h);
    REQUIRE(hv.create_domain(spec::DomId{0}, spec::DomainRole::hardware, true, 1));
    REQUIRE(hv.create_domain(spec::DomId{1}, spec::DomainRole::guest, true, 2));
    hv.create_ioserver(spec::DomId{1}, spec::IoServId{0}, spec::DomId{0}, 4);
    spec::MapForeignPage op;
    op.flags = spec::Flags{0x3};
    op.domid = spec::DomId{1};
    REQUIRE(hv.map_foreign_page(spec::DomId{0}, op) == spec::Status::ok);
    proofs::Options o;
    o.timeout_ms = 20000u;
    CHECK(proofs::encoded_invariants_on(hv.state(), {}, o).empty());
    spec::State bad = hv.state();
    const spec::Mfn m = bad.m2b.begin()->first;
    bad.frames[m].state = spec::FrameState::free;  // a mapped frame freed
    const std::string e = proofs::encoded_invariants_on(bad, {}, o);
    INFO(e);
    CHECK(e.rfind("INV-", 0) == 0);
    CHECK(proofs::encoded_step_from(hv.state(), {}, o).empty());
    // INV-DEVICE-SAFE (D23): H says emulator 0 was handed bfn 0 for another frame than the one
    // its entry there reaches.
    spec::Handed handed;
    handed[{spec::DomId{0}, spec::Bfn{0}, spec::DomId{1}, spec::IoServId{0}}] = m;
    CHECK(proofs::encoded_invariants_on(hv.state(), handed, o).empty());
    spec::Mfn other = m;
    for (const auto& [f, fr] : hv.state().frames)
        if (f != m && fr.state == spec::FrameState::owned) other = f;
    REQUIRE(other != m);
    handed[{spec::DomId{0}, spec::Bfn{0}, spec::DomId{1}, spec::IoServId{0}}] = other;
    const std::string d = proofs::encoded_invariants_on(hv.state(), handed, o);
    INFO(d);
    CHECK(d.rfind("INV-DEVICE-SAFE", 0) == 0);
}
