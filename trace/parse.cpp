#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "trace/fields.h"
#include "trace/trace.h"

namespace trace {

std::string ParseError::text() const {
    // Line 0: the file as a whole (it cannot be read, or holds no statement).
    if (line == 0) return file + ": " + message;
    return file + ":" + std::to_string(line) + ": " + message;
}

namespace {

using fields::did_you_mean;
using fields::parse_value;
using fields::parse_width;
using fields::quoted;

// The words a slip is measured against ("did you mean").
const std::vector<std::string_view> kKeywords = {
    "host",  "domain", "dm",  "ioserver", "rmrr",     "xen_gfn", "fault",  "destroy", "call",
    "batch", "op",     "end", "balloon",  "populate", "drain",   "expect", "check"};
const std::vector<std::string_view> kChecks = {"frame", "p2m", "m2b",       "iommu",
                                               "ioreq", "dma", "invariants"};
const std::vector<std::string_view> kSubops = {
    spec::QueryCaps::name,      spec::MapPage::name,           spec::UnmapPage::name,
    spec::MapForeignPage::name, spec::LookupForeignPage::name, spec::UnmapForeignPage::name};

// Every status name of the language (section 1 of the trace format), from spec's own table.
std::vector<std::string_view> status_names() {
    std::vector<std::string_view> out;
    for (int v = 0; v >= -255; --v) {
        const auto st = static_cast<spec::Status>(v);
        const std::string_view n = spec::status_name(st);
        if (spec::status_from_name(n) == st) out.push_back(n);
    }
    return out;
}

struct Failure {
    std::string message;
};

// One line split into words, with its key=value arguments (in order, keys unique).
struct Line {
    std::vector<std::string_view> words;  // positional words
    std::vector<std::pair<std::string_view, std::string_view>> args;
};

// True if s is valid UTF-8 (no overlong forms, no surrogates) without NUL or other C0 controls
// but tab and CR.
std::optional<std::string> check_text(std::string_view s) {
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            if (c == 0) return "NUL byte";
            if (c < 0x20 && c != '\t' && c != '\r') return "control character";
            if (c == 0x7f) return "control character";
            ++i;
            continue;
        }
        std::size_t n;
        std::uint32_t cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else
            return "invalid UTF-8";
        for (std::size_t k = 1; k <= n; ++k) {
            if (i + k >= s.size()) return "invalid UTF-8";
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return "invalid UTF-8";
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return "invalid UTF-8";
        i += n + 1;
    }
    return std::nullopt;
}

std::optional<std::string> split(std::string_view text, Line& out) {
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
        if (i == text.size()) break;
        std::size_t j = i;
        while (j < text.size() && text[j] != ' ' && text[j] != '\t' && text[j] != '\r') ++j;
        const std::string_view w = text.substr(i, j - i);
        i = j;
        for (char ch : w)
            if (static_cast<unsigned char>(ch) >= 0x80)
                return "unexpected non-ASCII text " + quoted(w) + " (outside a comment)";
        const auto eq = w.find('=');
        if (eq == std::string_view::npos) {
            out.words.push_back(w);  // positional words may follow keys: `check p2m D gfn=G none`
            continue;
        }
        const std::string_view key = w.substr(0, eq), value = w.substr(eq + 1);
        if (key.empty()) return "missing key before '=' in " + quoted(w);
        if (value.empty()) return "empty value for " + quoted(key);
        for (const auto& [k, v] : out.args)
            if (k == key) return "duplicate argument " + quoted(key);
        out.args.emplace_back(key, value);
    }
    return std::nullopt;
}

// Arguments of one statement: every key must be consumed (unknown keys are malformed).
class Args {
public:
    Args(const Line& l, std::string what) : line_(l), what_(std::move(what)) {}

    [[nodiscard]] std::optional<std::string_view> take(std::string_view key) {
        asked_.push_back(key);
        for (std::size_t i = 0; i < line_.args.size(); ++i) {
            if (line_.args[i].first == key) {
                used_.insert(i);
                return line_.args[i].second;
            }
        }
        return std::nullopt;
    }
    template <class T>
    void req(std::string_view key, T& out) {
        const auto v = take(key);
        if (!v) throw Failure{std::string(what_) + ": missing " + std::string(key) + "="};
        set(key, *v, out);
    }
    template <class T>
    void opt(std::string_view key, std::optional<T>& out) {
        if (const auto v = take(key)) {
            T x{};
            set(key, *v, x);
            out = x;
        }
    }
    template <class T>
    void opt_value(std::string_view key, T& out) {
        if (const auto v = take(key)) set(key, *v, out);
    }
    void done() const {
        for (std::size_t i = 0; i < line_.args.size(); ++i)
            if (!used_.contains(i))
                throw Failure{"unknown argument " + quoted(line_.args[i].first) + " for " +
                              std::string(what_) + did_you_mean(line_.args[i].first, asked_)};
    }

    template <class T>
    static void set(std::string_view key, std::string_view v, T& out) {
        std::optional<std::string> err;
        if constexpr (std::is_same_v<T, std::uint32_t> || std::is_same_v<T, std::uint64_t> ||
                      std::is_same_v<T, unsigned>) {
            std::uint64_t x = 0;
            err = parse_width(v, std::is_same_v<T, std::uint64_t> ? 64 : 32, x);
            out = static_cast<T>(x);
        } else if constexpr (std::is_same_v<T, bool>) {
            if (v == "0")
                out = false;
            else if (v == "1")
                out = true;
            else
                err = quoted(v) + " is not 0 or 1";
        } else {
            err = parse_value(v, out);
        }
        if (err) throw Failure{std::string(key) + "=: " + *err};
    }

private:
    const Line& line_;
    std::string what_;  // owned: callers pass temporaries
    std::set<std::size_t> used_;
    std::vector<std::string_view> asked_;  // every key this statement takes (for did_you_mean)
};

template <class T>
T word(std::string_view w, std::string_view what) {
    T v{};
    if (auto err = parse_value(w, v)) throw Failure{std::string(what) + ": " + *err};
    return v;
}

void expect_words(const Line& l, std::size_t n, std::string_view usage) {
    if (l.words.size() != n) throw Failure{"usage: " + std::string(usage)};
}

// The control plane as far as names go: which domains and servers exist at each line, so that
// naming one that does not exist (or no longer does) is malformed, before anything runs.
class World {
public:
    explicit World(const spec::Host& h) : host_(h) {}

    void domain_exists(DomId d) const {
        if (!domains_.contains(d))
            throw Failure{"domain " + std::to_string(d.v) + " does not exist"};
    }
    void server_exists(DomId t, IoServId id) const {
        if (!servers_.contains({t, id}))
            throw Failure{"ioreq server " + std::to_string(t.v) + " id=" + std::to_string(id.v) +
                          " does not exist"};
    }
    void frame_exists(Mfn m) const {
        if (m.v >= host_.frames)
            throw Failure{"frame " + spec::hex(m.v) +
                          " does not exist (frames=" + std::to_string(host_.frames) + ")"};
    }
    void add_domain(const DomainStmt& s) {
        if (s.d.v > spec::kDomIdMax)
            throw Failure{"domid " + std::to_string(s.d.v) + " is above 0x7fef"};
        if (domains_.contains(s.d))
            throw Failure{"domain " + std::to_string(s.d.v) + " already exists"};
        if (s.role == spec::DomainRole::hardware) {
            for (const auto& [id, hw] : domains_)
                if (hw)
                    throw Failure{"domain " + std::to_string(id.v) +
                                  " is already the hardware domain (D8)"};
        }
        domains_[s.d] = s.role == spec::DomainRole::hardware;
        ram_[s.d] = s.ram;  // gfns 0..ram-1: a count, not a set (ram= may be up to 2^32-1)
    }
    void add_server(const IoServerStmt& s) {
        domain_exists(s.target);
        domain_exists(s.emulator);
        if (servers_.contains({s.target, s.id}))
            throw Failure{"ioreq server " + std::to_string(s.target.v) +
                          " id=" + std::to_string(s.id.v) + " already exists"};
        if (s.ring > spec::kMaxRingSlots)
            throw Failure{"ring=" + std::to_string(s.ring) + " is above 511 slots (D5)"};
        servers_[{s.target, s.id}] = s.emulator;
    }
    void add_xen_gfn(DomId d, Gfn g) {
        domain_exists(d);
        if (g.v < ram_[d] || !xen_gfns_[d].insert(g).second)
            throw Failure{"gfn " + spec::hex(g.v) + " of domain " + std::to_string(d.v) +
                          " already has a frame (D9)"};
    }
    void destroy(DomId d) {
        domain_exists(d);
        domains_.erase(d);
        ram_.erase(d);
        xen_gfns_.erase(d);
        std::erase_if(servers_,
                      [d](const auto& kv) { return kv.first.first == d || kv.second == d; });
    }
    // rmrr and xen_gfn only before the first call or event.
    bool started = false;

private:
    spec::Host host_;
    std::map<DomId, bool> domains_;  // -> is hardware
    std::map<std::pair<DomId, IoServId>, DomId> servers_;
    // The static P2M before the first call (D9): gfns 0..ram-1, then the xen_gfn ones.
    std::map<DomId, std::uint64_t> ram_;
    std::map<DomId, std::set<Gfn>> xen_gfns_;
};

spec::Host parse_host(const Line& l) {
    if (l.words.size() != 1)
        throw Failure{"usage: host iommu=on|off mode=... max_order=K frames=N [max_count=N]"};
    Args a(l, "host");
    spec::Host h;
    if (const auto v = a.take("iommu")) {
        if (*v == "on")
            h.iommu = true;
        else if (*v == "off")
            h.iommu = false;
        else
            throw Failure{"iommu=: want on or off, got " + quoted(*v) +
                          did_you_mean(*v, {"on", "off"})};
    }
    if (const auto v = a.take("mode")) {
        if (*v == "inclusive")
            h.mode = spec::IommuMode::inclusive;
        else if (*v == "strict")
            h.mode = spec::IommuMode::strict;
        else if (*v == "passthrough")
            h.mode = spec::IommuMode::passthrough;
        else
            throw Failure{"mode=: want inclusive, strict or passthrough, got " + quoted(*v) +
                          did_you_mean(*v, {"inclusive", "strict", "passthrough"})};
    }
    a.opt_value("max_order", h.max_order);
    if (h.max_order > spec::kMaxOrderLimit) throw Failure{"max_order=: above 63 (D6)"};
    std::uint32_t frames = static_cast<std::uint32_t>(h.frames);
    a.opt_value("frames", frames);
    if (frames == 0 || frames > spec::kMaxFrames) throw Failure{"frames=: want 1..16777216 (D6)"};
    h.frames = frames;
    a.opt_value("max_count", h.max_count);  // D19 extension; 32 bits by the count width
    if (h.max_count == 0) throw Failure{"max_count=: want 1..4294967295 (D19)"};
    a.done();
    return h;
}

template <class T>
spec::Op parse_op_fields(const Line& l, std::size_t first_arg_word, std::string_view name) {
    if (l.words.size() != first_arg_word)
        throw Failure{"unexpected word " + quoted(l.words[first_arg_word]) + " after " +
                      std::string(name)};
    T op;
    std::vector<std::string_view> names;
    fields::for_each_field(op, [&](std::string_view fname, auto&) { names.push_back(fname); });
    for (const auto& arg : l.args) {
        const std::string_view key = arg.first, value = arg.second;  // clang 14: no lambda
        bool found = false;                                          // capture of bindings
        fields::for_each_field(op, [&](std::string_view fname, auto& member) {
            if (fname != key) return;
            found = true;
            if (auto err = parse_value(value, member))
                throw Failure{std::string(key) + "=: " + *err};
        });
        if (!found)
            throw Failure{"unknown field " + quoted(key) + " for " + std::string(name) +
                          did_you_mean(key, names)};
    }
    return op;
}

// `SUBOP field=value ...` where words[at] is the subop.
spec::Op parse_op(const Line& l, std::size_t at) {
    if (l.words.size() <= at) throw Failure{"missing subop"};
    const std::string_view s = l.words[at];
    std::uint16_t id = 0;
    if (s == spec::QueryCaps::name)
        id = IOMMUOP_query_caps;
    else if (s == spec::MapPage::name)
        id = IOMMUOP_map_page;
    else if (s == spec::UnmapPage::name)
        id = IOMMUOP_unmap_page;
    else if (s == spec::MapForeignPage::name)
        id = IOMMUOP_map_foreign_page;
    else if (s == spec::LookupForeignPage::name)
        id = IOMMUOP_lookup_foreign_page;
    else if (s == spec::UnmapForeignPage::name)
        id = IOMMUOP_unmap_foreign_page;
    else if (!s.empty() && s[0] >= '0' && s[0] <= '9') {
        std::uint64_t x = 0;
        if (auto err = parse_width(s, 16, x)) throw Failure{"subop: " + *err};
        id = static_cast<std::uint16_t>(x);
    } else {
        throw Failure{"unknown subop " + quoted(s) + did_you_mean(s, kSubops)};
    }
    const std::size_t next = at + 1;
    switch (id) {
        case IOMMUOP_query_caps:
            return parse_op_fields<spec::QueryCaps>(l, next, s);
        case IOMMUOP_map_page:
            return parse_op_fields<spec::MapPage>(l, next, s);
        case IOMMUOP_unmap_page:
            return parse_op_fields<spec::UnmapPage>(l, next, s);
        case IOMMUOP_map_foreign_page:
            return parse_op_fields<spec::MapForeignPage>(l, next, s);
        case IOMMUOP_lookup_foreign_page:
            return parse_op_fields<spec::LookupForeignPage>(l, next, s);
        case IOMMUOP_unmap_foreign_page:
            return parse_op_fields<spec::UnmapForeignPage>(l, next, s);
        default: {
            // D4: an unknown subop takes flags= only.
            if (l.words.size() != next) throw Failure{"unexpected word after subop"};
            spec::UnknownOp op;
            op.subop_id = id;
            Args a(l, "unknown subop " + std::to_string(id) + " (D4: only flags=)");
            a.opt_value("flags", op.flags);
            a.done();
            return op;
        }
    }
}

spec::Status parse_status(std::string_view v) {
    const auto st = spec::status_from_name(v);
    if (!st) {
        static const std::vector<std::string_view> names = status_names();
        throw Failure{"unknown error name " + quoted(v) + did_you_mean(v, names)};
    }
    return *st;
}

class Parser {
public:
    Parser(std::string_view file) : file_(file) {}

    ParseResult run(std::string_view text) {
        Trace t;
        t.file = std::string(file_);
        std::size_t pos = 0;
        int lineno = 0;
        bool any_statement = false;
        std::optional<World> world;
        CallStmt* open_batch = nullptr;
        int batch_line = 0;
        // The last call: for `expect` (which op types, how many).
        std::optional<std::size_t> last_call;
        try {
            while (pos <= text.size()) {
                const auto nl = text.find('\n', pos);
                std::string_view raw = text.substr(
                    pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
                pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
                ++lineno;
                line_ = lineno;
                if (auto err = check_text(raw)) throw Failure{*err};
                const auto hash = raw.find('#');
                const std::string_view body = raw.substr(0, hash);
                Line l;
                if (auto err = split(body, l)) throw Failure{*err};
                if (l.words.empty()) {
                    if (!l.args.empty()) throw Failure{"missing keyword"};
                    continue;
                }
                const std::string_view kw = l.words[0];
                if (kw == "host") {
                    if (any_statement) throw Failure{"host must come before any other statement"};
                    t.host = parse_host(l);
                    any_statement = true;
                    world.emplace(t.host);
                    continue;
                }
                if (!world) world.emplace(t.host);
                any_statement = true;
                if (open_batch != nullptr) {
                    if (kw == "op") {
                        open_batch->ops.push_back(parse_op(l, 1));
                        open_batch->op_lines.push_back(lineno);
                        continue;
                    }
                    if (kw == "end") {
                        expect_words(l, 1, "end");
                        if (!l.args.empty()) throw Failure{"end takes no arguments"};
                        open_batch = nullptr;
                        continue;
                    }
                    throw Failure{quoted(kw) + " inside batch (only op and end until end)"};
                }
                if (kw == "op") throw Failure{"op outside batch ... end"};
                if (kw == "end") throw Failure{"end without batch"};
                Statement st{lineno, parse_statement(l, *world, last_call, t)};
                if (std::holds_alternative<CallStmt>(st.stmt)) last_call = t.statements.size();
                t.statements.push_back(std::move(st));
                if (auto* c = std::get_if<CallStmt>(&t.statements.back().stmt); c && c->batch) {
                    open_batch = c;
                    batch_line = lineno;
                }
            }
            if (open_batch != nullptr) {
                line_ = batch_line;
                throw Failure{"batch without end"};
            }
        } catch (const Failure& f) {
            return ParseError{std::string(file_), line_, f.message};
        }
        return t;
    }

private:
    Stmt parse_statement(const Line& l, World& w, std::optional<std::size_t> last_call, Trace& t) {
        const std::string_view kw = l.words[0];
        if (kw == "domain") {
            if (l.words.size() < 3 || l.words.size() > 4)
                throw Failure{"usage: domain D hardware|guest [iommu_hw] [ram=N] [quota=N]"};
            DomainStmt s;
            s.d = word<DomId>(l.words[1], "domain");
            if (l.words[2] == "hardware")
                s.role = spec::DomainRole::hardware;
            else if (l.words[2] != "guest")
                throw Failure{"domain: want hardware or guest, got " + quoted(l.words[2]) +
                              did_you_mean(l.words[2], {"hardware", "guest"})};
            if (l.words.size() == 4) {
                if (l.words[3] != "iommu_hw")
                    throw Failure{"domain: unknown word " + quoted(l.words[3]) +
                                  did_you_mean(l.words[3], {"iommu_hw"})};
                s.iommu_hw = true;
            }
            Args a(l, "domain");
            a.opt_value("ram", s.ram);
            a.opt("quota", s.quota);  // D20 extension: 0..2^32-1
            a.done();
            w.add_domain(s);
            return s;
        }
        if (kw == "dm") {
            if (l.words.size() != 4 || l.words[2] != "over") throw Failure{"usage: dm E over T"};
            Args(l, "dm").done();
            DmStmt s{word<DomId>(l.words[1], "dm"), word<DomId>(l.words[3], "dm")};
            w.domain_exists(s.emulator);
            w.domain_exists(s.target);
            return s;
        }
        if (kw == "ioserver") {
            expect_words(l, 2, "ioserver T id=S emulator=E [ring=SLOTS]");
            IoServerStmt s;
            s.target = word<DomId>(l.words[1], "ioserver");
            Args a(l, "ioserver");
            a.req("id", s.id);
            a.req("emulator", s.emulator);
            a.opt_value("ring", s.ring);
            a.done();
            w.add_server(s);
            return s;
        }
        if (kw == "rmrr") {
            expect_words(l, 2, "rmrr D bfn=B count=N");
            if (w.started) throw Failure{"rmrr only before the first call or event"};
            RmrrStmt s;
            s.d = word<DomId>(l.words[1], "rmrr");
            Args a(l, "rmrr");
            a.req("bfn", s.first);
            a.req("count", s.count);
            a.done();
            w.domain_exists(s.d);
            if (s.count == 0 || s.first.v + (s.count - 1) < s.first.v)
                throw Failure{"rmrr: count must be >= 1 and the range below 2^64 (D16)"};
            return s;
        }
        if (kw == "xen_gfn") {
            expect_words(l, 2, "xen_gfn D gfn=G");
            if (w.started) throw Failure{"xen_gfn only before the first call or event"};
            XenGfnStmt s;
            s.d = word<DomId>(l.words[1], "xen_gfn");
            Args a(l, "xen_gfn");
            a.req("gfn", s.gfn);
            a.done();
            w.add_xen_gfn(s.d, s.gfn);
            return s;
        }
        if (kw == "fault") {
            if (l.words.size() != 2 || l.words[1] != "iommu_map")
                throw Failure{"usage: fault iommu_map [count=N]"};
            FaultStmt s;
            Args a(l, "fault");
            a.opt_value("count", s.count);
            a.done();
            return s;
        }
        if (kw == "destroy") {
            expect_words(l, 2, "destroy D");
            Args(l, "destroy").done();
            DestroyStmt s{word<DomId>(l.words[1], "destroy")};
            w.destroy(s.d);
            return s;
        }
        if (kw == "call") {
            if (l.words.size() < 3) throw Failure{"usage: call C SUBOP field=value ..."};
            CallStmt s;
            s.caller = word<DomId>(l.words[1], "call");
            w.domain_exists(s.caller);
            s.ops.push_back(parse_op(l, 2));
            s.op_lines.push_back(line_);
            w.started = true;
            return s;
        }
        if (kw == "batch") {
            expect_words(l, 2, "batch C");
            Args(l, "batch").done();
            CallStmt s;
            s.caller = word<DomId>(l.words[1], "batch");
            s.batch = true;
            w.domain_exists(s.caller);
            w.started = true;
            return s;
        }
        if (kw == "balloon" || kw == "populate") {
            expect_words(l, 2, std::string(kw) + " D gfn=G");
            const DomId d = word<DomId>(l.words[1], kw);
            Gfn g;
            Args a(l, std::string(kw));
            a.req("gfn", g);
            a.done();
            w.domain_exists(d);
            w.started = true;
            if (kw == "balloon") return BalloonStmt{d, g};
            return PopulateStmt{d, g};
        }
        if (kw == "drain") {
            expect_words(l, 2, "drain T id=S [count=N]");
            DrainStmt s;
            s.target = word<DomId>(l.words[1], "drain");
            Args a(l, "drain");
            a.req("id", s.id);
            a.opt("count", s.count);
            a.done();
            w.server_exists(s.target, s.id);
            w.started = true;
            return s;
        }
        if (kw == "expect") return parse_expect(l, last_call, t);
        if (kw == "check") return parse_check(l, w);
        throw Failure{"unknown keyword " + quoted(kw) + did_you_mean(kw, kKeywords)};
    }

    Stmt parse_expect(const Line& l, std::optional<std::size_t> last_call, const Trace& t) {
        expect_words(l, 1, "expect [op=I] status=E [bfn=B] [flags=F] [order=K]");
        if (!last_call) throw Failure{"expect before any call"};
        const auto& call = std::get<CallStmt>(t.statements[*last_call].stmt);
        ExpectStmt s;
        Args a(l, "expect");
        a.opt("op", s.op);
        if (call.batch && !s.op) throw Failure{"expect after a batch needs op=I"};
        if (!call.batch && s.op) throw Failure{"expect op=I after a call (not a batch)"};
        if (s.op && *s.op >= call.ops.size())
            throw Failure{"op=" + std::to_string(*s.op) + " is out of range (the batch has " +
                          std::to_string(call.ops.size()) + " ops)"};
        const spec::Op& op = call.ops[s.op.value_or(0)];
        const auto st = a.take("status");
        if (!st) throw Failure{"expect: missing status="};
        s.status = parse_status(*st);
        a.opt("bfn", s.bfn);
        spec::Flags f;
        if (const auto v = a.take("flags")) {
            Args::set("flags", *v, f);
            s.flags = f.raw;
        }
        a.opt("order", s.order);
        a.done();
        const bool out_bfn = std::holds_alternative<spec::MapForeignPage>(op) ||
                             std::holds_alternative<spec::LookupForeignPage>(op);
        const bool out_flags = std::holds_alternative<spec::QueryCaps>(op);
        const std::string name(std::visit([](const auto& o) { return o.name; }, op));
        if (s.bfn && !out_bfn) throw Failure{"expect bfn=: " + name + " has no out bfn (D2)"};
        if ((s.flags || s.order) && !out_flags)
            throw Failure{"expect flags=/order=: " + name + " has no out flags (D2)"};
        if (s.order && *s.order > spec::kMaxOrderLimit) throw Failure{"order=: above 63"};
        if (s.flags && (*s.flags & IOMMU_page_order))
            throw Failure{"flags=: compares bits 0-9; use order= for bits 10-15"};
        return s;
    }

    Stmt parse_check(const Line& l, World& w) {
        if (l.words.size() < 2)
            throw Failure{"usage: check frame|p2m|m2b|iommu|ioreq|invariants ..."};
        const std::string_view what = l.words[1];
        if (what == "invariants") {
            expect_words(l, 2, "check invariants");
            Args(l, "check invariants").done();
            return CheckInvariants{};
        }
        if (what == "frame") {
            expect_words(l, 2, "check frame mfn=M [state=..] [owner=D] [count=N] [allocated=0|1]");
            CheckFrame s;
            Args a(l, "check frame");
            a.req("mfn", s.mfn);
            if (const auto v = a.take("state")) {
                if (*v == "free")
                    s.state = spec::FrameState::free;
                else if (*v == "xen")
                    s.state = spec::FrameState::xen;
                else if (*v == "owned")
                    s.state = spec::FrameState::owned;
                else
                    throw Failure{"state=: want free, xen or owned, got " + quoted(*v) +
                                  did_you_mean(*v, {"free", "xen", "owned"})};
            }
            a.opt("owner", s.owner);
            a.opt("count", s.count);
            a.opt("allocated", s.allocated);
            a.done();
            w.frame_exists(s.mfn);
            return s;
        }
        if (what == "p2m") {
            if (l.words.size() != 3 && !(l.words.size() == 4 && l.words[3] == "none"))
                throw Failure{"usage: check p2m D gfn=G mfn=M | check p2m D gfn=G none"};
            CheckP2m s;
            s.d = word<DomId>(l.words[2], "check p2m");
            Args a(l, "check p2m");
            a.req("gfn", s.gfn);
            if (l.words.size() == 4) {
                a.done();
            } else {
                Mfn m;
                a.req("mfn", m);
                s.mfn = m;
                a.done();
                w.frame_exists(m);
            }
            w.domain_exists(s.d);
            return s;
        }
        if (what == "m2b") {
            Args a(l, "check m2b");
            Mfn m;
            a.req("mfn", m);
            w.frame_exists(m);
            if (l.words.size() == 2) {
                CheckM2bCount s{m, 0};
                a.req("tuples", s.tuples);
                a.done();
                return s;
            }
            if (l.words.size() == 3 && (l.words[2] == "has" || l.words[2] == "lacks")) {
                CheckM2bTuple s;
                s.mfn = m;
                s.has = l.words[2] == "has";
                a.req("bfn", s.tuple.bfn);
                a.req("domid", s.tuple.domid);
                a.req("ioserver", s.tuple.ioserver);
                a.done();
                return s;
            }
            throw Failure{
                "usage: check m2b mfn=M tuples=N | check m2b mfn=M has|lacks bfn=B domid=D "
                "ioserver=S"};
        }
        if (what == "iommu") {
            if (l.words.size() != 3 && !(l.words.size() == 4 && l.words[3] == "none"))
                throw Failure{
                    "usage: check iommu C bfn=B [mfn=M] [kind=K] | check iommu C bfn=B none"};
            CheckIommu s;
            s.c = word<DomId>(l.words[2], "check iommu");
            Args a(l, "check iommu");
            a.req("bfn", s.bfn);
            s.none = l.words.size() == 4;
            if (!s.none) {
                a.opt("mfn", s.mfn);
                if (const auto v = a.take("kind")) {
                    if (*v == "identity")
                        s.kind = spec::EntryKind::identity;
                    else if (*v == "local")
                        s.kind = spec::EntryKind::local;
                    else if (*v == "foreign")
                        s.kind = spec::EntryKind::foreign;
                    else if (*v == "scratch")
                        s.kind = spec::EntryKind::scratch;
                    else
                        throw Failure{
                            "kind=: want identity, local, foreign or scratch, got " + quoted(*v) +
                            did_you_mean(*v, {"identity", "local", "foreign", "scratch"})};
                }
            }
            a.done();
            w.domain_exists(s.c);
            if (s.mfn) w.frame_exists(*s.mfn);
            return s;
        }
        if (what == "dma") {
            if (l.words.size() != 3 &&
                !(l.words.size() == 4 && (l.words[3] == "scratch" || l.words[3] == "fault")))
                throw Failure{
                    "usage: check dma E bfn=B mfn=M | check dma E bfn=B scratch | "
                    "check dma E bfn=B fault"};
            CheckDma s;
            s.e = word<DomId>(l.words[2], "check dma");
            Args a(l, "check dma");
            a.req("bfn", s.bfn);
            if (l.words.size() == 4) {
                s.view.kind = l.words[3] == "scratch" ? spec::DmaView::Kind::scratch
                                                      : spec::DmaView::Kind::fault;
            } else {
                s.view.kind = spec::DmaView::Kind::frame;
                a.req("mfn", s.view.mfn);
                w.frame_exists(s.view.mfn);
            }
            a.done();
            w.domain_exists(s.e);
            return s;
        }
        if (what == "ioreq") {
            expect_words(
                l, 3,
                "check ioreq T id=S buffered=N sync=N | check ioreq T id=S next=invalidate bfn=B");
            const DomId tgt = word<DomId>(l.words[2], "check ioreq");
            Args a(l, "check ioreq");
            IoServId id;
            a.req("id", id);
            w.server_exists(tgt, id);
            if (const auto next = a.take("next")) {
                CheckIoreqNext s{tgt, id, std::nullopt};
                if (*next == "invalidate") {
                    Bfn b;
                    a.req("bfn", b);
                    s.bfn = b;
                } else if (*next != "none") {
                    throw Failure{"next=: want invalidate or none, got " + quoted(*next) +
                                  did_you_mean(*next, {"invalidate", "none"})};
                }
                a.done();
                return s;
            }
            CheckIoreqCount s{tgt, id, std::nullopt, std::nullopt};
            a.opt("buffered", s.buffered);
            a.opt("sync", s.sync);
            a.done();
            if (!s.buffered && !s.sync)
                throw Failure{"check ioreq: want buffered=, sync= or next="};
            return s;
        }
        throw Failure{"unknown check " + quoted(what) + did_you_mean(what, kChecks)};
    }

    std::string_view file_;
    int line_ = 0;
};

}  // namespace

ParseResult parse(std::string_view file, std::string_view text) { return Parser(file).run(text); }

namespace {
// A file with no statement at all (empty, or only blank and comment lines) checks nothing: it is
// an error rather than a silent pass (trace format section 8), most likely a truncated file or a
// wrong name. A trace holding only `host` is a statement and runs.
ParseResult parse_text_file(const std::string& name, const std::string& text) {
    ParseResult r = parse(name, text);
    if (const auto* t = std::get_if<Trace>(&r); t != nullptr && t->statements.empty()) {
        bool any = false;
        for (std::size_t pos = 0; pos < text.size() && !any;) {
            const auto nl = text.find('\n', pos);
            std::string_view l(text.data() + pos,
                               (nl == std::string::npos ? text.size() : nl) - pos);
            l = l.substr(0, l.find('#'));
            any = l.find_first_not_of(" \t\r") != std::string_view::npos;
            pos = nl == std::string::npos ? text.size() : nl + 1;
        }
        if (!any) return ParseError{name, 0, "no statements (empty trace)"};
    }
    return r;
}
}  // namespace

ParseResult parse_file(const std::string& path) {
    // "-" is standard input, named <stdin> in messages.
    if (path == "-") {
        std::ostringstream ss;
        ss << std::cin.rdbuf();
        if (std::cin.bad()) return ParseError{"<stdin>", 0, "cannot read: read error"};
        return parse_text_file("<stdin>", ss.str());
    }
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec))
        return ParseError{path, 0, "cannot read: " + std::string(std::strerror(EISDIR))};
    // stdio for errno: the operating system's reason (no such file, permission denied, ...).
    errno = 0;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        const int err = errno;
        return ParseError{path, 0,
                          "cannot read: " + std::string(err != 0 ? std::strerror(err) : "unknown")};
    }
    std::string text;
    char buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    const bool failed = std::ferror(f) != 0;
    const int err = errno;
    std::fclose(f);
    if (failed)
        return ParseError{path, 0,
                          "cannot read: " + std::string(err != 0 ? std::strerror(err) : "unknown")};
    return parse_text_file(path, text);
}

}  // namespace trace
