#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets from examples/ (and trace/tests/malformed/).

  fuzz/corpus/fuzz_parse/     every example and malformed trace, as is
  fuzz/corpus/fuzz_abi_diff/  the data-path statements of every example in fuzz_abi_diff's
                              byte format (fuzz/fuzz_abi_diff.cpp), one seed per example and
                              world, plus one hand-made session per world

Deterministic: rerunning it rewrites the same files. Usage: fuzz/make_seeds.py [REPO_ROOT]
"""
import hashlib
import pathlib
import shutil
import struct
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent.parent)
OUT = ROOT / "fuzz" / "corpus"
WORLDS = 6  # len(fuzz::kWorlds)

SUBOPS = {"query_caps": 1, "map_page": 2, "unmap_page": 3, "map_foreign_page": 4,
          "lookup_foreign_page": 5, "unmap_foreign_page": 6}


def num(v):
    return int(v, 16) if v.lower().startswith("0x") else int(v, 10)


def flags(v):
    if v[0].isdigit():
        return num(v) & 0xffff
    parts = v.split("+")
    f = {"r": 1, "w": 2, "rw": 3, "-": 0}.get(parts[0], 0)
    for p in parts[1:]:
        if p == "swap":
            f |= 4
        elif p.startswith("order="):
            f |= (int(p[6:]) & 0x3f) << 10
    return f


def raw_op(words):
    """`SUBOP k=v ...` -> 32 bytes of struct pv_iommu_op (status 0)."""
    name, args = words[0], dict(w.split("=", 1) for w in words[1:] if "=" in w)
    sid = SUBOPS.get(name, None)
    if sid is None:
        sid = num(name) & 0xffff
    f = flags(args["flags"]) if "flags" in args else 0
    bfn = num(args.get("bfn", "0xffffffffffffffff" if sid == 5 else "0")) & (2**64 - 1)
    gfn = num(args.get("gfn", "0")) & (2**64 - 1)
    dom = num(args.get("domid", "0")) & 0xffff
    ios = num(args.get("ioserver", "0")) & 0xffff
    if sid in (2,):
        u = struct.pack("<QQ", bfn, gfn)
    elif sid in (4, 5):
        u = struct.pack("<QQHH", bfn, gfn, dom, ios)
    elif sid == 6:
        u = struct.pack("<QHH", bfn, dom, ios)
    elif sid == 3:
        u = struct.pack("<Q", bfn)
    else:
        u = b""
    return struct.pack("<HHi", sid, f, 0) + u.ljust(24, b"\0")


def batch(caller, ops):
    out = b""
    for i in range(0, len(ops), 4):
        chunk = ops[i:i + 4]
        out += bytes([0, caller & 0xff, len(chunk) - 1])
        for op in chunk:
            out += b"\0" + op  # shape 0: the op's bytes as they are
    return out


def encode(text):
    """The data-path statements of a trace (and destroy, fault) in the byte format."""
    out, open_batch = b"", None
    for line in text.splitlines():
        w = line.split("#", 1)[0].split()
        if not w:
            continue
        args = dict(x.split("=", 1) for x in w if "=" in x)
        try:
            if open_batch is not None:
                if w[0] == "op":
                    open_batch[1].append(raw_op(w[1:]))
                elif w[0] == "end":
                    out += batch(*open_batch)
                    open_batch = None
                continue
            if w[0] == "call":
                out += batch(num(w[1]), [raw_op(w[2:])])
            elif w[0] == "batch":
                open_batch = (num(w[1]), [])
            elif w[0] in ("balloon", "populate"):
                out += bytes([8 if w[0] == "balloon" else 10, num(w[1]) & 0xff,
                              num(args["gfn"]) & 0xff])
            elif w[0] == "drain":
                c = num(args["count"]) & 0xff if "count" in args else 255
                out += bytes([12, num(w[1]) & 0xff, num(args["id"]) & 0xff, c])
            elif w[0] == "destroy":
                out += bytes([13, num(w[1]) & 0xff])
            elif w[0] == "fault":
                out += bytes([14, max(num(args.get("count", "1")) - 1, 0) & 0xff])
        except (ValueError, KeyError, IndexError):
            pass  # a seed is a starting point: skip what does not encode
    return out


def write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main():
    for t in ("fuzz_parse", "fuzz_abi_diff"):
        shutil.rmtree(OUT / t, ignore_errors=True)
    examples = sorted((ROOT / "examples").glob("*.trace"))
    for p in examples + sorted((ROOT / "trace" / "tests" / "malformed").glob("*.trace")):
        write(OUT / "fuzz_parse", p.parent.name + "-" + p.name, p.read_bytes())
    for i, p in enumerate(examples):
        body = encode(p.read_text())
        for world in (i % WORLDS, (i + 1) % WORLDS):
            data = bytes([world]) + body
            write(OUT / "fuzz_abi_diff", f"{p.stem}-w{world}", data)
    # One hand-made session per world: caps from every domain, a foreign map by the first
    # emulator with swap, a lookup, a balloon of the mapped gfn, drain all, unmap, populate.
    for world in range(WORLDS):
        s = bytes([world])
        for d in range(4):
            s += batch(d, [raw_op(["query_caps"])])
        s += batch(0, [raw_op(["map_foreign_page", "bfn=0x30", "gfn=1", "domid=1",
                               "ioserver=0", "flags=rw+swap"]),
                       raw_op(["lookup_foreign_page", "gfn=2", "domid=1", "ioserver=0"])])
        s += batch(2, [raw_op(["map_foreign_page", "bfn=0x31", "gfn=1", "domid=1",
                               "ioserver=1", "flags=r"])])
        s += bytes([8, 1, 1, 12, 1, 0, 255])
        s += batch(0, [raw_op(["unmap_foreign_page", "bfn=0x30", "domid=1", "ioserver=0"]),
                       raw_op(["map_page", "bfn=0x3", "gfn=3", "flags=rw"]),
                       raw_op(["unmap_page", "bfn=0x3"])])
        s += bytes([10, 1, 1, 13, 1])
        write(OUT / "fuzz_abi_diff", f"session-w{world}", s)
        # Order-k maps onto the worlds' RMRRs (0x20-0x23 of domain 0 and 0x8-0x9 of domain 2
        # in world 1, 0x4 of domain 0 in world 2): the RMRR row must hold for the whole range.
        s = bytes([world])
        for caller, bfn in ((0, 0x20), (0, 0x22), (2, 0x8), (0, 0x4)):
            for order in (1, 2):
                s += batch(caller, [raw_op(["map_foreign_page", f"bfn={bfn & ~((1 << order) - 1)}",
                                            "gfn=0", "domid=1", f"ioserver={caller // 2}",
                                            f"flags=rw+order={order}"]),
                                    raw_op(["map_page", f"bfn={bfn & ~((1 << order) - 1)}",
                                            "gfn=0", f"flags=rw+order={order}"])])
        write(OUT / "fuzz_abi_diff", f"orders-rmrr-w{world}", s)
    n = {t: len(list((OUT / t).iterdir())) for t in ("fuzz_parse", "fuzz_abi_diff")}
    print(f"seeds: {n}")


if __name__ == "__main__":
    main()
