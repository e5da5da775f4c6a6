// fuzz_parse: any bytes -> the trace parser. A malformed input must come back as a ParseError
// (`FILE:LINE: message`, the line within the input); never a crash, hang or leak. A trace that
// parses must print and parse back to the same text (print is a fixpoint after one round),
// and, when its world is small, run on ref and impl in lockstep (trace::diff) without a
// divergence. The bounds below keep one input's run short: the parser accepts frames up to
// 2^24 and orders up to 63, which a fuzzer must not execute.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

#include "impl/hypervisor.h"
#include "ref/hypervisor.h"
#include "trace/diff.h"
#include "trace/trace.h"

namespace {

constexpr std::uint64_t kRunMaxFrames = 256;
constexpr unsigned kRunMaxOrder = 6;
constexpr std::size_t kRunMaxStatements = 200;

[[noreturn]] void fail(const char* what, const std::string& detail) {
    std::fprintf(stderr, "fuzz_parse: %s\n%s\n", what, detail.c_str());
    __builtin_trap();
}

std::size_t lines_of(std::string_view text) {
    std::size_t n = 1;
    for (char c : text) n += c == '\n';
    return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const auto r = trace::parse("fuzz.trace", text);
    if (const auto* e = std::get_if<trace::ParseError>(&r)) {
        // FILE:LINE: message, with LINE a line of the input.
        if (e->line < 1 || static_cast<std::size_t>(e->line) > lines_of(text) || e->message.empty())
            fail("bad error position or empty message", e->text());
        if (e->text().rfind("fuzz.trace:" + std::to_string(e->line) + ": ", 0) != 0)
            fail("error text is not FILE:LINE: message", e->text());
        return 0;
    }
    const trace::Trace& t = std::get<trace::Trace>(r);
    const std::string printed = trace::print(t);
    const auto r2 = trace::parse("printed.trace", printed);
    if (const auto* e = std::get_if<trace::ParseError>(&r2))
        fail("the printed trace does not parse", e->text() + "\n--- printed:\n" + printed);
    const trace::Trace& t2 = std::get<trace::Trace>(r2);
    if (t2.host != t.host || t2.statements.size() != t.statements.size() ||
        trace::print(t2) != printed)
        fail("print/parse round trip differs", printed + "\n--- reprinted:\n" + trace::print(t2));

    if (t.host.frames > kRunMaxFrames || t.host.max_order > kRunMaxOrder ||
        t.statements.size() > kRunMaxStatements)
        return 0;
    const auto res = trace::diff(
        t, [](const spec::Host& h) { return ref::make(h); },
        [](const spec::Host& h) { return impl::make(h); });
    if (res.divergence) {
        const auto& d = *res.divergence;
        std::string detail = "line " + std::to_string(d.line) + ": " + d.statement +
                             "\n  ref:  " + d.outcome_a + "\n  impl: " + d.outcome_b + "\n";
        for (const auto& l : d.dump_diff) detail += "  " + l + "\n";
        fail("ref and impl diverge", detail + "--- trace:\n" + printed);
    }
    return 0;
}
