#!/usr/bin/env python3
"""ctest cli:verify-html: `pviommu verify --html` writes one self-contained page that renders.

  html_report.py PVIOMMU WORKDIR [--mutants=on|off]

1. Runs `pviommu verify --html WORKDIR/report.html` at a small budget (a subset of the proof
   obligations at small width, a few concurrent cases): exit 0 and the page is written.
2. The page is self-contained: nothing is fetched (no http(s) URL in a src, href, url() or
   @import; the only URL is SVG's xmlns name) and it carries each section.
3. Headless Chromium opens it: --dump-dom must show the page's script ran (#js-status) and
   recorded no error (#js-errors), and Chromium's log must hold no console error; a screenshot
   must not be blank (at least 16 colours, the most common under 95% of the pixels).
4. The concurrency section draws a planted bug's history: with --mutants=on (the build carries
   impl/mutants.h) a timeline inside <div data-mutant="impl:NAME">, NAME one of impl/mutants.h's,
   that the linearizability property rejected while that mutant was selected; with
   --mutants=off, the reason there is none.
The checks are first shown to fail on planted bad pages (a blank page, a script that throws),
so that a pass means something. Without Chromium (Debian package chromium) it exits 77, which
ctest reports as skipped, with the reason.
"""
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib

SKIP = 77


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(binary, args, page):
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
           "--v=0", "--allow-file-access-from-files"] + args + ["file://" + os.path.abspath(page)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def png_pixels(path):
    """Decodes an 8-bit, non-interlaced RGB or RGBA PNG: (width, height, rows of pixel tuples)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        fail(path + " is not a PNG")
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, ctype, _, _, interlace = ihdr
    if depth != 8 or ctype not in (2, 6) or interlace != 0:
        fail("unexpected PNG format depth=%d type=%d interlace=%d" % (depth, ctype, interlace))
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev, i = [], bytearray(stride), 0
    for _ in range(height):
        ftype = raw[i]
        line = bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 255
            elif ftype == 2:
                line[x] = (line[x] + b) & 255
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def blank_reason(png):
    """None if the screenshot shows something, else why it looks blank."""
    width, height, bpp, rows = png_pixels(png)
    counts = {}
    for y in range(0, height, 2):
        row = rows[y]
        for x in range(0, width * bpp, 2 * bpp):
            px = row[x:x + 3]
            counts[px] = counts.get(px, 0) + 1
    total = sum(counts.values())
    top = max(counts.values())
    if len(counts) < 16:
        return "only %d colours" % len(counts)
    if top > 0.95 * total:
        return "one colour covers %.1f%% of the pixels" % (100.0 * top / total)
    return None


def render_problems(binary, page, work, expect_script=True, size="1280,1800", shot=True):
    """The problems Chromium shows with the page: console errors, script errors, a blank page."""
    problems = []
    r = chromium(binary, ["--dump-dom"], page)
    if r.returncode != 0:
        problems.append("chromium --dump-dom exit %d: %s" % (r.returncode, r.stderr[-2000:]))
        return problems
    for line in r.stderr.splitlines():
        if ":CONSOLE" in line and ("Uncaught" in line or "ERROR" in line or "rror" in line):
            problems.append("console: " + line.strip())
    dom = r.stdout
    if expect_script:
        m = re.search(r'id="js-status"[^>]*>([^<]*)<', dom)
        if not m or not m.group(1).startswith("script ran"):
            problems.append("the page's script did not run to its end (#js-status: %r)" %
                            (m.group(1) if m else None))
        m = re.search(r'id="js-errors"[^>]*>([^<]*)<', dom)
        if m and m.group(1).strip():
            problems.append("script errors: " + m.group(1).strip())
    if not shot:
        return problems
    png = os.path.join(work, os.path.basename(page) + ".png")
    if os.path.exists(png):
        os.remove(png)
    r = chromium(binary, ["--screenshot=" + png, "--window-size=" + size,
                          "--hide-scrollbars"], page)
    if r.returncode != 0 or not os.path.exists(png):
        problems.append("chromium --screenshot exit %d: %s" % (r.returncode, r.stderr[-2000:]))
        return problems
    why = blank_reason(png)
    if why:
        problems.append("the screenshot looks blank: " + why)
    return problems


MUTANTS_H = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "impl",
                         "mutants.cpp")


def mutant_problem(html, mutants):
    """Why the page's planted-bug history is not what the build promises (None: it is)."""
    if not mutants:
        if 'data-mutant="">' not in html or "carries no mutants" not in html:
            return "a build without mutants must say why the page has no planted-bug history"
        return None
    m = re.search(r'<div class="mutant" data-mutant="impl:([a-z0-9-]+)">(.*?)</details></div>',
                  html, re.S)
    if not m:
        return "no planted-bug history (<div class=\"mutant\" data-mutant=\"impl:NAME\">)"
    names = re.findall(r'\{\d+, "([a-z0-9-]+)"', open(MUTANTS_H, encoding="utf-8").read())
    if m.group(1) not in names:
        return "the history names %s, not a mutant of impl/mutants.cpp %s" % (m.group(1), names)
    body = m.group(2)
    if 'aria-label="history timeline"' not in body or 'class="op"' not in body:
        return "the planted bug's section draws no timeline"
    if "rejected this history" not in body:
        return "the planted bug's section does not say the property rejected the history"
    return None


def main():
    pviommu, work = sys.argv[1], sys.argv[2]
    mutants = "--mutants=on" in sys.argv[3:]
    os.makedirs(work, exist_ok=True)
    page = os.path.join(work, "report.html")
    if os.path.exists(page):
        os.remove(page)
    r = subprocess.run([pviommu, "verify", "--html", page, "--prove-only=map_page",
                        "--prove-small", "--parallel-cases=4"],
                       capture_output=True, text=True, timeout=300)
    print(r.stdout)
    if r.returncode != 0:
        fail("pviommu verify --html exit %d\n%s" % (r.returncode, r.stderr[-3000:]))
    if not os.path.exists(page):
        fail("no page written at " + page)
    html = open(page, encoding="utf-8").read()
    for section in ('id="proofs"', 'id="props"', 'id="concurrency"', 'id="bench"',
                    "<table class=\"matrix\"", "aria-label=\"history timeline\""):
        if section not in html:
            fail("the page lacks " + section)
    why = mutant_problem(html, mutants)
    if why:
        fail(why)
    # The check must fail on the page without its planted-bug history.
    stripped = re.sub(r'<div class="mutant".*?</details></div>', "", html, flags=re.S)
    stripped = stripped.replace("carries no mutants", "")
    if mutant_problem(stripped, mutants) is None:
        fail("a page without the planted bug's history was not caught")
    found = re.search(r'data-mutant="(impl:[a-z0-9-]+)"', html)
    print("planted-bug history: " + (found.group(1) if found else "none (no mutants built)"))
    fetched = re.findall(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//|url\(\s*["\']?(?:https?:)?//'
                         r'|@import', html)
    if fetched:
        fail("the page fetches something: %s" % fetched[:3])
    urls = set(re.findall(r"https?://[^\"' )<>]+", html))
    if urls - {"http://www.w3.org/2000/svg"}:
        fail("the page names URLs: %s" % sorted(urls))

    binary = chromium_binary()
    if binary is None:
        print("SKIP: no chromium on PATH (Debian package chromium; ./run.sh installs it): "
              "the page was written and is self-contained, but its rendering is not checked")
        sys.exit(SKIP)

    # The checks must catch planted bad pages first.
    blank = os.path.join(work, "planted-blank.html")
    with open(blank, "w") as f:
        f.write("<!DOCTYPE html><html><body style=\"background:#fff\"></body></html>\n")
    throws = os.path.join(work, "planted-throws.html")
    with open(throws, "w") as f:
        f.write(html.replace("})();", "undefinedFunction();})();", 1))
    p = render_problems(binary, blank, work, expect_script=False, size="400,300")
    if not any("blank" in x for x in p):
        fail("a blank page was not caught: %s" % p)
    p = render_problems(binary, throws, work, shot=False)
    if not any("console" in x or "script" in x for x in p):
        fail("a script error was not caught: %s" % p)
    print("planted bad pages caught (blank page; a script that throws)")

    problems = render_problems(binary, page, work)
    if problems:
        fail("\n  ".join(["the report does not render cleanly:"] + problems))
    print("report renders: %s (screenshot %s.png)" % (page, page))


if __name__ == "__main__":
    main()
