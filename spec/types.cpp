#include "spec/types.h"

#include <array>
#include <utility>

namespace spec {
namespace {

constexpr std::array<std::pair<Status, std::string_view>, 14> kStatusNames{{
    {Status::ok, "0"},
    {Status::eperm, "-EPERM"},
    {Status::enoent, "-ENOENT"},
    {Status::eio, "-EIO"},
    {Status::enxio, "-ENXIO"},
    {Status::enomem, "-ENOMEM"},
    {Status::eacces, "-EACCES"},
    {Status::ebusy, "-EBUSY"},
    {Status::eexist, "-EEXIST"},
    {Status::enodev, "-ENODEV"},
    {Status::einval, "-EINVAL"},
    {Status::enospc, "-ENOSPC"},
    {Status::eoverflow, "-EOVERFLOW"},
    {Status::eopnotsupp, "-EOPNOTSUPP"},
}};

}  // namespace

std::string_view status_name(Status s) {
    for (const auto& [st, name] : kStatusNames)
        if (st == s) return name;
    return "?";
}

std::optional<Status> status_from_name(std::string_view name) {
    for (const auto& [st, n] : kStatusNames)
        if (n == name) return st;
    return std::nullopt;
}

std::string_view perms_text(std::uint8_t perms) {
    switch (perms & (IOMMUOP_readable | IOMMUOP_writeable)) {
        case IOMMUOP_readable:
            return "r";
        case IOMMUOP_writeable:
            return "w";
        case IOMMUOP_readable | IOMMUOP_writeable:
            return "rw";
        default:
            return "-";
    }
}

std::string flags_text(Flags f) {
    if (f.reserved()) {
        static constexpr char digits[] = "0123456789abcdef";
        std::string s = "0x";
        bool started = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned d = (f.raw >> shift) & 0xfU;
            if (d != 0 || started || shift == 0) {
                s += digits[d];
                started = true;
            }
        }
        return s;
    }
    std::string s(perms_text(f.perms()));
    if (f.swap_mfn()) s += "+swap";
    if (f.order() != 0) s += "+order=" + std::to_string(f.order());
    return s;
}

}  // namespace spec
