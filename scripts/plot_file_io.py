#!/usr/bin/env python3
"""Plot file_io's JSON as a self-contained SVG (standard library only).

    cargo run --release --example file_io -- --sizes 4K,64K,1M,16M,256M --json > /tmp/file_io.json
    python3 scripts/plot_file_io.py /tmp/file_io.json docs/file_io.svg

Two panels: the whole file read once in order (read() into a buffer against
mmap and touching every page), and the random 4 KiB accesses (pread against
mmap). In each, time (log scale) against file size (log scale), one line per
method and cache state: read()/pread blue, mmap red; cold solid with filled
markers, warm dashed with hollow ones. Only the generated files of the sweep
are drawn (a file named on the command line is a single size).
"""

import json
import math
import sys
from xml.sax.saxutils import escape

PANEL_W, PANEL_H = 430, 380
LEFT, RIGHT, TOP, BOTTOM, GAP = 80, 20, 92, 96, 70
WIDTH = LEFT + 2 * PANEL_W + GAP + RIGHT
HEIGHT = TOP + PANEL_H + BOTTOM
PANELS = [
    ("sequential", "whole file once, in order", [("read", "read()"), ("mmap", "mmap")]),
    ("random", "random 4 KiB accesses", [("pread", "pread()"), ("mmap", "mmap")]),
]
COLOURS = {"read": "#1f77b4", "pread": "#1f77b4", "mmap": "#d62728"}


def usage():
    sys.stderr.write(__doc__)
    sys.exit(2)


def decade_range(lo, hi):
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    if b == a:
        b += 1
    return a, b


def fmt_size(v):
    for unit, n in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if v >= n:
            return "%g%s" % (v / n, unit)
    return "%d" % v


def fmt_time(v):
    if v >= 1e6:
        return "%g s" % (v / 1e6)
    if v >= 1e3:
        return "%g ms" % (v / 1e3)
    return "%g µs" % v


def marker(x, y, colour, hollow):
    fill = "white" if hollow else colour
    return ('<circle cx="%.1f" cy="%.1f" r="4.5" fill="%s" stroke="%s" stroke-width="1.8"/>'
            % (x, y, fill, colour))


def panel(out, x0, pattern, title, methods, series, ya, yb, xa, xb):
    pw, ph = PANEL_W, PANEL_H

    def sx(v):
        return x0 + (math.log2(v) - xa) / (xb - xa) * pw

    def sy(v):
        return TOP + ph - (math.log10(v) - ya) / (yb - ya) * ph

    out.append('<text x="%.1f" y="%d" font-size="14" text-anchor="middle" font-weight="bold">%s</text>'
               % (x0 + pw / 2, TOP - 10, escape(title)))
    for e in range(ya, yb + 1):
        for m in range(1, 10):
            v = m * 10.0 ** e
            if math.log10(v) > yb + 1e-9:
                break
            y = sy(v)
            out.append('<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>'
                       % (x0, y, x0 + pw, y, "#bbb" if m == 1 else "#eee"))
            if m == 1:
                out.append('<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>'
                           % (x0 - 6, y + 4, fmt_time(v)))
    for e in range(int(xa), int(xb) + 1, 2):
        x = sx(2 ** e)
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>' % (x, TOP, x, TOP + ph))
        out.append('<text x="%.1f" y="%d" font-size="11" text-anchor="middle">%s</text>'
                   % (x, TOP + ph + 16, fmt_size(2 ** e)))
    out.append('<rect x="%.1f" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (x0, TOP, pw, ph))
    out.append('<text x="%.1f" y="%d" font-size="12" text-anchor="middle">file size (bytes, log scale)</text>'
               % (x0 + pw / 2, TOP + ph + 34))
    for method, label in methods:
        for cache in ("cold", "warm"):
            pts = sorted(series.get((pattern, method, cache), []))
            if not pts:
                continue
            colour = COLOURS[method]
            dash = '' if cache == "cold" else ' stroke-dasharray="6,4"'
            path = " ".join("%.1f,%.1f" % (sx(s), sy(t)) for s, t, _ in pts)
            out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>'
                       % (path, colour, dash))
            for s, t, r in pts:
                tip = "%s, %s cache, %s: %s; %d minor, %d major faults, %d system calls" % (
                    label, cache, fmt_size(s), fmt_time(t), r["minflt"], r["majflt"],
                    r["syscalls"]["total"])
                out.append('<g>%s<title>%s</title></g>'
                           % (marker(sx(s), sy(t), colour, cache == "warm"), escape(tip)))


def main(argv):
    if len(argv) != 3:
        usage()
    with open(argv[1]) as f:
        data = json.load(f)
    series = {}
    for r in data.get("runs", []):
        if not r.get("generated") or r["size"] <= 0:
            continue
        key = (r["pattern"], r["method"], r["cache"])
        series.setdefault(key, []).append((r["size"], max(r["time_us"], 0.01), r))
    pts = [p for ps in series.values() for p in ps]
    if not pts:
        sys.exit("plot_file_io: no generated files in %s" % argv[1])
    ya, yb = decade_range(min(p[1] for p in pts), max(p[1] for p in pts))
    xa = math.floor(math.log2(min(p[0] for p in pts)))
    xb = math.ceil(math.log2(max(p[0] for p in pts)))
    if xb == xa:
        xb += 1
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">' % (WIDTH, HEIGHT, WIDTH, HEIGHT),
           '<rect width="100%" height="100%" fill="white"/>']
    title = "read() against mmap on a regular file (median of %s samples)" % data.get("samples", "?")
    out.append('<text x="%d" y="24" font-size="17" text-anchor="middle" font-weight="bold">%s</text>'
               % (WIDTH // 2, escape(title)))
    sub = "random: %s accesses × %s repeats; read() buffer %s" % (
        data.get("accesses", "?"), data.get("repeat", "?"), fmt_size(data.get("buffer", 0)))
    out.append('<text x="%d" y="42" font-size="11" text-anchor="middle" fill="#555">%s</text>'
               % (WIDTH // 2, escape(sub)))
    if data.get("host"):
        out.append('<text x="%d" y="57" font-size="11" text-anchor="middle" fill="#555">%s</text>'
                   % (WIDTH // 2, escape(data["host"])))
    out.append('<text x="18" y="%.1f" font-size="12" text-anchor="middle" transform="rotate(-90 18 %.1f)">'
               'time (log scale)</text>' % (TOP + PANEL_H / 2, TOP + PANEL_H / 2))
    for i, (pattern, title, methods) in enumerate(PANELS):
        panel(out, LEFT + i * (PANEL_W + GAP), pattern, title, methods, series, ya, yb, xa, xb)
    # Legend under the panels.
    ly = TOP + PANEL_H + 62
    items = [("read() / pread()", "#1f77b4"), ("mmap", "#d62728")]
    x = LEFT
    for label, colour in items:
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"/>'
                   % (x, ly, x + 28, ly, colour))
        out.append('<text x="%d" y="%d" font-size="12">%s</text>' % (x + 34, ly + 4, escape(label)))
        x += 170
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2"/>' % (x, ly, x + 28, ly))
    out.append(marker(x + 14, ly, "#333", False))
    out.append('<text x="%d" y="%d" font-size="12">cold cache</text>' % (x + 34, ly + 4))
    x += 130
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2" '
               'stroke-dasharray="6,4"/>' % (x, ly, x + 28, ly))
    out.append(marker(x + 14, ly, "#333", True))
    out.append('<text x="%d" y="%d" font-size="12">warm cache</text>' % (x + 34, ly + 4))
    out.append('</svg>')
    with open(argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv)
