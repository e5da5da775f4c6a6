// trace/trace.h: the scenario language of spec/trace-format.md (version 2): the parsed
// form of a trace, the parser (malformed input -> `FILE:LINE: message`, nothing executed), and
// the printer (the same text back, so generated and shrunk traces can be replayed).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "spec/hypervisor.h"

namespace trace {

using spec::Bfn;
using spec::DomId;
using spec::Gfn;
using spec::IoServId;
using spec::Mfn;

// World statements (control plane).
struct DomainStmt {
    DomId d;
    spec::DomainRole role = spec::DomainRole::guest;
    bool iommu_hw = false;
    std::uint32_t ram = 0;
    std::optional<std::uint32_t> quota;  // D20 extension: `quota=N`, holdings at most N
};
struct DmStmt {
    DomId emulator, target;
};
struct IoServerStmt {
    DomId target;
    IoServId id;
    DomId emulator;
    std::uint32_t ring = spec::kMaxRingSlots;
};
struct RmrrStmt {
    DomId d;
    Bfn first;
    std::uint64_t count = 0;
};
struct XenGfnStmt {
    DomId d;
    Gfn gfn;
};
struct FaultStmt {
    std::uint32_t count = 1;
};
struct DestroyStmt {
    DomId d;
};

// Calls: `call` is a batch of one (D1).
struct CallStmt {
    DomId caller;
    bool batch = false;
    std::vector<spec::Op> ops;
    std::vector<int> op_lines;  // source line of each op (batch) or of the call
};

// Events (data path).
struct BalloonStmt {
    DomId d;
    Gfn gfn;
};
struct PopulateStmt {
    DomId d;
    Gfn gfn;
};
struct DrainStmt {
    DomId target;
    IoServId id;
    std::optional<std::uint32_t> count;
};

// Expectations.
struct ExpectStmt {
    std::optional<std::uint32_t> op;  // op=I of the last batch
    spec::Status status = spec::Status::ok;
    std::optional<Bfn> bfn;
    std::optional<std::uint16_t> flags;  // bits 0-9
    std::optional<unsigned> order;       // bits 10-15
};
struct CheckFrame {
    Mfn mfn;
    std::optional<spec::FrameState> state;
    std::optional<DomId> owner;
    std::optional<std::uint32_t> count;
    std::optional<bool> allocated;
};
struct CheckP2m {
    DomId d;
    Gfn gfn;
    std::optional<Mfn> mfn;
};  // nullopt: `none`
struct CheckM2bCount {
    Mfn mfn;
    std::uint32_t tuples = 0;
};
struct CheckM2bTuple {
    Mfn mfn;
    spec::Tuple tuple;
    bool has = true;
};
struct CheckIommu {
    DomId c;
    Bfn bfn;
    bool none = false;
    std::optional<Mfn> mfn;
    std::optional<spec::EntryKind> kind;
};
struct CheckIoreqCount {
    DomId target;
    IoServId id;
    std::optional<std::uint32_t> buffered, sync;
};
struct CheckIoreqNext {
    DomId target;
    IoServId id;
    std::optional<Bfn> bfn;
};                 // nullopt: none
struct CheckDma {  // (v2) D25, F13: where a DMA by a device of emulator e to bfn lands now
    DomId e;
    Bfn bfn;
    spec::DmaView view;
};
struct CheckInvariants {};

using Stmt = std::variant<DomainStmt, DmStmt, IoServerStmt, RmrrStmt, XenGfnStmt, FaultStmt,
                          DestroyStmt, CallStmt, BalloonStmt, PopulateStmt, DrainStmt, ExpectStmt,
                          CheckFrame, CheckP2m, CheckM2bCount, CheckM2bTuple, CheckIommu,
                          CheckIoreqCount, CheckIoreqNext, CheckDma, CheckInvariants>;

struct Statement {
    int line = 0;
    Stmt stmt;
};

struct Trace {
    std::string file;
    spec::Host host;
    std::vector<Statement> statements;
};

// `FILE:LINE: message`; line 0 is the file as a whole (`FILE: message`: it cannot be read, or it
// holds no statement). parse() always names a line >= 1.
struct ParseError {
    std::string file;
    int line = 0;
    std::string message;
    [[nodiscard]] std::string text() const;
};

using ParseResult = std::variant<Trace, ParseError>;

// Parses a whole trace. Besides syntax it checks what the trace format calls malformed: a `host`
// line after any other statement, `op` outside batch...end, `expect` without a call or with a
// bad op index, names of domains, ioreq servers and frames that do not exist (or no longer
// do), values that do not fit their field, and the D-rulings' limits (spec/decisions.md).
[[nodiscard]] ParseResult parse(std::string_view file, std::string_view text);
// Reads and parses a file: "-" is standard input (named <stdin>). A directory or an unreadable
// file is a ParseError at line 0 with the operating system's reason (`cannot read: Is a
// directory`), and so is a file without any statement (`no statements (empty trace)`).
[[nodiscard]] ParseResult parse_file(const std::string& path);

// Trace text for one op (`map_foreign_page bfn=0x10 gfn=0x2 domid=1 ioserver=0 flags=rw`),
// derived from the op's Hana field list; fields equal to their default are left out.
[[nodiscard]] std::string op_text(const spec::Op& op);
// Trace text for one statement (a batch prints as several lines).
[[nodiscard]] std::string statement_text(const Stmt& s);
// A whole trace, `host` line first; parse(print(t)) is t with renumbered lines.
[[nodiscard]] std::string print(const Trace& t);

}  // namespace trace
