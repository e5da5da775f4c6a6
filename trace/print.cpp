#include <sstream>

#include "trace/fields.h"
#include "trace/trace.h"

namespace trace {

namespace {
std::string d(DomId v) { return std::to_string(v.v); }
std::string h(std::uint64_t v) { return spec::hex(v); }
}  // namespace

std::string op_text(const spec::Op& op) {
    return std::visit(
        [](const auto& o) {
            using T = std::decay_t<decltype(o)>;
            std::string s;
            if constexpr (std::is_same_v<T, spec::UnknownOp>) {
                s = std::to_string(o.subop_id);
                if (o.flags.raw != 0) s += " flags=" + fields::value_text(o.flags);
            } else {
                s = std::string(T::name);
                const T defaults{};
                fields::for_each_field(o, [&](std::string_view name, const auto& member) {
                    bool is_default = true;
                    fields::for_each_field(defaults, [&](std::string_view n2, const auto& m2) {
                        if constexpr (std::is_same_v<std::decay_t<decltype(member)>,
                                                     std::decay_t<decltype(m2)>>)
                            if (n2 == name) is_default = member == m2;
                    });
                    if (!is_default)
                        s += " " + std::string(name) + "=" + fields::value_text(member);
                });
            }
            return s;
        },
        op);
}

std::string statement_text(const Stmt& stmt) {
    std::ostringstream os;
    std::visit(
        [&os](const auto& s) {
            using T = std::decay_t<decltype(s)>;
            if constexpr (std::is_same_v<T, DomainStmt>) {
                os << "domain " << d(s.d)
                   << (s.role == spec::DomainRole::hardware ? " hardware" : " guest")
                   << (s.iommu_hw ? " iommu_hw" : "");
                if (s.ram != 0) os << " ram=" << s.ram;
                if (s.quota) os << " quota=" << *s.quota;
            } else if constexpr (std::is_same_v<T, DmStmt>) {
                os << "dm " << d(s.emulator) << " over " << d(s.target);
            } else if constexpr (std::is_same_v<T, IoServerStmt>) {
                os << "ioserver " << d(s.target) << " id=" << s.id.v
                   << " emulator=" << d(s.emulator);
                if (s.ring != spec::kMaxRingSlots) os << " ring=" << s.ring;
            } else if constexpr (std::is_same_v<T, RmrrStmt>) {
                os << "rmrr " << d(s.d) << " bfn=" << h(s.first.v) << " count=" << s.count;
            } else if constexpr (std::is_same_v<T, XenGfnStmt>) {
                os << "xen_gfn " << d(s.d) << " gfn=" << h(s.gfn.v);
            } else if constexpr (std::is_same_v<T, FaultStmt>) {
                os << "fault iommu_map count=" << s.count;
            } else if constexpr (std::is_same_v<T, DestroyStmt>) {
                os << "destroy " << d(s.d);
            } else if constexpr (std::is_same_v<T, CallStmt>) {
                if (!s.batch) {
                    os << "call " << d(s.caller) << " " << op_text(s.ops.at(0));
                } else {
                    os << "batch " << d(s.caller) << "\n";
                    for (const auto& op : s.ops) os << "op " << op_text(op) << "\n";
                    os << "end";
                }
            } else if constexpr (std::is_same_v<T, BalloonStmt>) {
                os << "balloon " << d(s.d) << " gfn=" << h(s.gfn.v);
            } else if constexpr (std::is_same_v<T, PopulateStmt>) {
                os << "populate " << d(s.d) << " gfn=" << h(s.gfn.v);
            } else if constexpr (std::is_same_v<T, DrainStmt>) {
                os << "drain " << d(s.target) << " id=" << s.id.v;
                if (s.count) os << " count=" << *s.count;
            } else if constexpr (std::is_same_v<T, ExpectStmt>) {
                os << "expect";
                if (s.op) os << " op=" << *s.op;
                os << " status=" << spec::status_name(s.status);
                if (s.bfn) os << " bfn=" << h(s.bfn->v);
                if (s.flags) os << " flags=" << h(*s.flags);
                if (s.order) os << " order=" << *s.order;
            } else if constexpr (std::is_same_v<T, CheckFrame>) {
                os << "check frame mfn=" << h(s.mfn.v);
                if (s.state) os << " state=" << spec::state_name(*s.state);
                if (s.owner) os << " owner=" << d(*s.owner);
                if (s.count) os << " count=" << *s.count;
                if (s.allocated) os << " allocated=" << (*s.allocated ? 1 : 0);
            } else if constexpr (std::is_same_v<T, CheckP2m>) {
                os << "check p2m " << d(s.d) << " gfn=" << h(s.gfn.v);
                if (s.mfn)
                    os << " mfn=" << h(s.mfn->v);
                else
                    os << " none";
            } else if constexpr (std::is_same_v<T, CheckM2bCount>) {
                os << "check m2b mfn=" << h(s.mfn.v) << " tuples=" << s.tuples;
            } else if constexpr (std::is_same_v<T, CheckM2bTuple>) {
                os << "check m2b mfn=" << h(s.mfn.v) << (s.has ? " has" : " lacks")
                   << " bfn=" << h(s.tuple.bfn.v) << " domid=" << d(s.tuple.domid)
                   << " ioserver=" << s.tuple.ioserver.v;
            } else if constexpr (std::is_same_v<T, CheckIommu>) {
                os << "check iommu " << d(s.c) << " bfn=" << h(s.bfn.v);
                if (s.none) os << " none";
                if (s.mfn) os << " mfn=" << h(s.mfn->v);
                if (s.kind) os << " kind=" << spec::kind_name(*s.kind);
            } else if constexpr (std::is_same_v<T, CheckIoreqCount>) {
                os << "check ioreq " << d(s.target) << " id=" << s.id.v;
                if (s.buffered) os << " buffered=" << *s.buffered;
                if (s.sync) os << " sync=" << *s.sync;
            } else if constexpr (std::is_same_v<T, CheckIoreqNext>) {
                os << "check ioreq " << d(s.target) << " id=" << s.id.v;
                if (s.bfn)
                    os << " next=invalidate bfn=" << h(s.bfn->v);
                else
                    os << " next=none";
            } else if constexpr (std::is_same_v<T, CheckDma>) {
                os << "check dma " << d(s.e) << " bfn=" << h(s.bfn.v);
                if (s.view.kind == spec::DmaView::Kind::frame)
                    os << " mfn=" << h(s.view.mfn.v);
                else
                    os << ' ' << spec::dma_text(s.view);
            } else {
                static_assert(std::is_same_v<T, CheckInvariants>);
                os << "check invariants";
            }
        },
        stmt);
    return os.str();
}

std::string print(const Trace& t) {
    std::ostringstream os;
    os << "host iommu=" << (t.host.iommu ? "on" : "off") << " mode=" << spec::mode_name(t.host.mode)
       << " max_order=" << t.host.max_order << " frames=" << t.host.frames;
    if (t.host.max_count != spec::kMaxCountLimit) os << " max_count=" << t.host.max_count;
    os << "\n";
    for (const Statement& s : t.statements) os << statement_text(s.stmt) << "\n";
    return os.str();
}

}  // namespace trace
