// trace/fields.h: reading and writing one value of each vocabulary type, and the Hana-driven
// walk over an op struct's field list. Private to trace/ (and to generators that print ops).
#pragma once

#include <boost/hana/accessors.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/string.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "spec/ops.h"

namespace trace::fields {

// A number below 2^64: decimal (leading zeros allowed, still decimal) or 0x hex. Returns an
// error message, or nullopt on success.
[[nodiscard]] std::optional<std::string> parse_u64(std::string_view s, std::uint64_t& out);
// parse_u64 then a width check: "value 70000 does not fit 16 bits".
[[nodiscard]] std::optional<std::string> parse_width(std::string_view s, unsigned bits,
                                                     std::uint64_t& out);

[[nodiscard]] std::optional<std::string> parse_value(std::string_view s, spec::Bfn& v);
[[nodiscard]] std::optional<std::string> parse_value(std::string_view s, spec::Gfn& v);
[[nodiscard]] std::optional<std::string> parse_value(std::string_view s, spec::Mfn& v);
[[nodiscard]] std::optional<std::string> parse_value(std::string_view s, spec::DomId& v);
[[nodiscard]] std::optional<std::string> parse_value(std::string_view s, spec::IoServId& v);
// `r`, `w`, `rw`, `-`, optionally `+swap`, optionally `+order=K`, or a raw 16-bit number.
[[nodiscard]] std::optional<std::string> parse_value(std::string_view s, spec::Flags& v);

[[nodiscard]] std::string value_text(spec::Bfn v);
[[nodiscard]] std::string value_text(spec::Gfn v);
[[nodiscard]] std::string value_text(spec::Mfn v);
[[nodiscard]] std::string value_text(spec::DomId v);
[[nodiscard]] std::string value_text(spec::IoServId v);
[[nodiscard]] std::string value_text(spec::Flags v);

// A word of the input as a message shows it: quoted, and cut to its first kQuotedMax characters
// when longer (`'aaaa...' (5000 characters)`), so a runaway word cannot flood a message.
inline constexpr std::size_t kQuotedMax = 40;
[[nodiscard]] std::string quoted(std::string_view w);
// ` (did you mean 'x'?)` for the candidate nearest to w by edit distance (case folded) when it
// is near enough to be a slip (at most 1 edit for words up to 4 characters, 2 up to 8, else 3),
// else "". Ties go to the earlier candidate.
[[nodiscard]] std::string did_you_mean(std::string_view w,
                                       const std::vector<std::string_view>& candidates);

// Calls f(name, member) for every field of a Hana-described op struct, in declaration order.
template <class T, class F>
void for_each_field(T& op, F&& f) {
    boost::hana::for_each(boost::hana::accessors<std::remove_const_t<T>>(), [&](auto pair) {
        const std::string_view name = boost::hana::to<const char*>(boost::hana::first(pair));
        f(name, boost::hana::second(pair)(op));
    });
}

}  // namespace trace::fields
