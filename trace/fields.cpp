#include "trace/fields.h"

#include <algorithm>
#include <limits>

namespace trace::fields {

std::string quoted(std::string_view w) {
    if (w.size() <= kQuotedMax) return "'" + std::string(w) + "'";
    return "'" + std::string(w.substr(0, kQuotedMax)) + "...' (" + std::to_string(w.size()) +
           " characters)";
}

namespace {
char fold(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// Edit distance with adjacent transpositions (optimal string alignment: `gnf` is one edit from
// `gfn`), case folded. Both words are at most 64 characters (did_you_mean's bound).
std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
    for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
    for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i)
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = fold(a[i - 1]) != fold(b[j - 1]);
            d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
            if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
                fold(a[i - 2]) == fold(b[j - 1]))
                d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
        }
    return d[a.size()][b.size()];
}
}  // namespace

std::string did_you_mean(std::string_view w, const std::vector<std::string_view>& candidates) {
    // Words far longer than any candidate are not slips (and are not worth the quadratic walk).
    if (w.empty() || w.size() > 64) return "";
    const std::size_t limit = w.size() <= 4 ? 1 : w.size() <= 8 ? 2 : 3;
    std::size_t best = limit + 1;
    std::string_view pick;
    for (std::string_view c : candidates) {
        if (c.size() > 64) continue;
        const std::size_t d = edit_distance(w, c);
        if (d < best) {
            best = d;
            pick = c;
        }
    }
    if (best > limit || pick == w) return "";
    return " (did you mean '" + std::string(pick) + "'?)";
}

std::optional<std::string> parse_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty()) return "empty number";
    unsigned base = 10;
    std::string_view digits = s;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        digits = s.substr(2);
    }
    std::uint64_t v = 0;
    for (char ch : digits) {
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = static_cast<unsigned>(ch - '0');
        else if (base == 16 && ch >= 'a' && ch <= 'f')
            d = static_cast<unsigned>(ch - 'a' + 10);
        else if (base == 16 && ch >= 'A' && ch <= 'F')
            d = static_cast<unsigned>(ch - 'A' + 10);
        else
            return quoted(s) + " is not a number";
        if (v > (std::numeric_limits<std::uint64_t>::max() - d) / base)
            return "number " + quoted(s) + " does not fit 64 bits";
        v = v * base + d;
    }
    out = v;
    return std::nullopt;
}

std::optional<std::string> parse_width(std::string_view s, unsigned bits, std::uint64_t& out) {
    if (auto err = parse_u64(s, out)) return err;
    if (bits < 64 && out >> bits != 0)
        return "value " + quoted(s) + " does not fit " + std::to_string(bits) + " bits";
    return std::nullopt;
}

namespace {
template <class T>
std::optional<std::string> parse_strong(std::string_view s, T& v) {
    std::uint64_t x = 0;
    if (auto err = parse_width(s, sizeof(typename T::rep) * 8, x)) return err;
    v = T{static_cast<typename T::rep>(x)};
    return std::nullopt;
}
}  // namespace

std::optional<std::string> parse_value(std::string_view s, spec::Bfn& v) {
    return parse_strong(s, v);
}
std::optional<std::string> parse_value(std::string_view s, spec::Gfn& v) {
    return parse_strong(s, v);
}
std::optional<std::string> parse_value(std::string_view s, spec::Mfn& v) {
    return parse_strong(s, v);
}
std::optional<std::string> parse_value(std::string_view s, spec::DomId& v) {
    return parse_strong(s, v);
}
std::optional<std::string> parse_value(std::string_view s, spec::IoServId& v) {
    return parse_strong(s, v);
}

std::optional<std::string> parse_value(std::string_view s, spec::Flags& v) {
    if (s.empty()) return "empty flags";
    if (s[0] >= '0' && s[0] <= '9') {
        std::uint64_t x = 0;
        if (auto err = parse_width(s, 16, x)) return err;
        v = spec::Flags{static_cast<std::uint16_t>(x)};
        return std::nullopt;
    }
    const std::string bad =
        "bad flags " + quoted(s) + " (want r, w, rw or -, then +swap, +order=K, or a number)";
    std::uint16_t raw = 0;
    std::string_view rest = s;
    const auto plus = rest.find('+');
    const std::string_view perms = rest.substr(0, plus);
    if (perms == "r")
        raw = IOMMUOP_readable;
    else if (perms == "w")
        raw = IOMMUOP_writeable;
    else if (perms == "rw")
        raw = IOMMUOP_readable | IOMMUOP_writeable;
    else if (perms != "-")
        return bad;
    rest = plus == std::string_view::npos ? std::string_view{} : rest.substr(plus + 1);
    bool swap_seen = false, order_seen = false;
    while (!rest.empty()) {
        const auto next = rest.find('+');
        const std::string_view part = rest.substr(0, next);
        rest = next == std::string_view::npos ? std::string_view{} : rest.substr(next + 1);
        if (part == "swap" && !swap_seen && !order_seen) {
            raw |= IOMMUOP_swap_mfn;
            swap_seen = true;
        } else if (part.substr(0, 6) == "order=" && !order_seen) {
            std::uint64_t k = 0;
            if (auto err = parse_u64(part.substr(6), k)) return bad;
            if (k > spec::kMaxOrderLimit)
                return "page order " + std::to_string(k) + " does not fit 6 bits";
            raw = IOMMU_set_page_order(raw, k);
            order_seen = true;
        } else {
            return bad;
        }
        if (next == std::string_view::npos) break;
        if (rest.empty()) return bad;  // trailing '+'
    }
    if (plus != std::string_view::npos && !swap_seen && !order_seen) return bad;
    v = spec::Flags{raw};
    return std::nullopt;
}

std::string value_text(spec::Bfn v) { return spec::hex(v.v); }
std::string value_text(spec::Gfn v) { return spec::hex(v.v); }
std::string value_text(spec::Mfn v) { return spec::hex(v.v); }
std::string value_text(spec::DomId v) { return std::to_string(v.v); }
std::string value_text(spec::IoServId v) { return std::to_string(v.v); }
std::string value_text(spec::Flags v) { return spec::flags_text(v); }

}  // namespace trace::fields
