#!/usr/bin/env python3
"""Plot loadbench's JSON as a self-contained SVG (standard library only).

    cargo run --release --example loadbench -- --json /tmp/loadbench.json
    python3 scripts/plot_loadbench.py /tmp/loadbench.json /tmp/loadbench.svg [--mode now|lazy]

Load time (median, microseconds, log scale) against relocation count (log
scale), one series per loader (glibc's dlopen, minld, and minld with its link
cache filled: loadbench's "cached"), each point labelled with its library and
the ratios to glibc. A JSON without cached samples (an older loadbench) is
drawn with the two others only. The bind-now mode is drawn unless --mode says
otherwise.
"""

import json
import math
import sys
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 860, 560
LEFT, RIGHT, TOP, BOTTOM = 90, 40, 60, 70
SERIES = [
    # loader, label, colour, marker
    ("glibc", "glibc dlopen", "#1f77b4", "circle"),
    ("minld", "minld", "#d62728", "square"),
    ("cached", "minld, link cache filled", "#2ca02c", "diamond"),
]


def usage():
    sys.stderr.write(__doc__)
    sys.exit(2)


def decade_range(lo, hi):
    """Powers of ten covering [lo, hi] with a little room either side."""
    a = math.floor(math.log10(lo))
    b = math.ceil(math.log10(hi))
    if b == a:
        b += 1
    return a, b


def fmt_tick(v):
    if v >= 1e6:
        return "%gM" % (v / 1e6)
    if v >= 1e3:
        return "%gk" % (v / 1e3)
    return "%g" % v


def marker(kind, x, y, colour):
    if kind == "diamond":
        # Hollow too, and turned, so that it stays apart from the square.
        return ('<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" '
                'stroke="%s" stroke-width="2"/>'
                % (x, y - 7, x + 7, y, x, y + 7, x - 7, y, colour))
    if kind == "square":
        # Hollow, so that a point of the other loader under it stays visible.
        return ('<rect x="%.1f" y="%.1f" width="11" height="11" fill="none" '
                'stroke="%s" stroke-width="2"/>' % (x - 5.5, y - 5.5, colour))
    return ('<circle cx="%.1f" cy="%.1f" r="5.5" fill="%s" stroke="white" '
            'stroke-width="1"/>' % (x, y, colour))


def main(argv):
    args = [a for a in argv[1:]]
    mode = "now"
    if "--mode" in args:
        i = args.index("--mode")
        if i + 1 >= len(args):
            usage()
        mode = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        usage()
    src, dst = args
    with open(src) as f:
        data = json.load(f)

    # points[loader] = [(relocations, microseconds, library name)]
    points = {loader: [] for loader, _, _, _ in SERIES}
    skipped = []
    for lib in data.get("libraries", []):
        relocs = lib.get("relocations")
        m = lib.get("modes", {}).get(mode)
        if not relocs or m is None:
            skipped.append(lib.get("name", "?"))
            continue
        for loader in points:
            if loader == "cached" and "cached" not in m:
                continue  # an older loadbench: no such loader
            ns = (m.get(loader) or {}).get("median_ns")
            if ns is None:
                skipped.append("%s (%s)" % (lib["name"], loader))
                continue
            points[loader].append((relocs, ns / 1000.0, lib["name"]))
    allpts = [p for ps in points.values() for p in ps]
    if not allpts:
        sys.exit("plot_loadbench: no %r-mode medians in %s" % (mode, src))

    xa, xb = decade_range(min(p[0] for p in allpts), max(p[0] for p in allpts))
    ya, yb = decade_range(min(p[1] for p in allpts), max(p[1] for p in allpts))
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(v):
        return LEFT + (math.log10(v) - xa) / (xb - xa) * pw

    def sy(v):
        return TOP + ph - (math.log10(v) - ya) / (yb - ya) * ph

    out = []
    out.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
               'viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
               % (WIDTH, HEIGHT, WIDTH, HEIGHT))
    out.append('<rect width="100%" height="100%" fill="white"/>')
    title = "Load time in a fresh process, %s (median of %s runs)" % (
        "bind now" if mode == "now" else "lazy", data.get("runs", "?"))
    out.append('<text x="%d" y="28" font-size="17" text-anchor="middle" '
               'font-weight="bold">%s</text>' % (WIDTH // 2, escape(title)))
    host = data.get("host")
    if host:
        out.append('<text x="%d" y="46" font-size="11" text-anchor="middle" '
                   'fill="#555">%s</text>' % (WIDTH // 2, escape(host)))

    # Grid and ticks: a labelled line per decade, light ones at 2..9.
    out.append('<g stroke-width="1">')
    for axis, (a, b) in (("x", (xa, xb)), ("y", (ya, yb))):
        for e in range(a, b + 1):
            for m in range(1, 10):
                v = m * 10.0 ** e
                if math.log10(v) > b + 1e-9:
                    break
                major = m == 1
                colour = "#bbb" if major else "#eee"
                if axis == "x":
                    x = sx(v)
                    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>'
                               % (x, TOP, x, TOP + ph, colour))
                    out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>'
                               % (x, TOP + ph, x, TOP + ph + (6 if major else 3)))
                    if major:
                        out.append('<text x="%.1f" y="%d" font-size="12" '
                                   'text-anchor="middle">%s</text>'
                                   % (x, TOP + ph + 20, fmt_tick(v)))
                else:
                    y = sy(v)
                    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>'
                               % (LEFT, y, LEFT + pw, y, colour))
                    out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>'
                               % (LEFT - (6 if major else 3), y, LEFT, y))
                    if major:
                        out.append('<text x="%d" y="%.1f" font-size="12" '
                                   'text-anchor="end">%s</text>'
                                   % (LEFT - 9, y + 4, fmt_tick(v)))
    out.append('</g>')
    out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>'
               % (LEFT, TOP, pw, ph))
    out.append('<text x="%.1f" y="%d" font-size="13" text-anchor="middle">'
               'relocations (log scale)</text>' % (LEFT + pw / 2, HEIGHT - 22))
    out.append('<text x="22" y="%.1f" font-size="13" text-anchor="middle" '
               'transform="rotate(-90 22 %.1f)">load time, µs (log scale)</text>'
               % (TOP + ph / 2, TOP + ph / 2))

    # Series: markers only (relocations are not the only cost, so no line
    # joins libraries), each with a tooltip.
    for loader, _, colour, kind in SERIES:
        ps = sorted(points[loader])
        for x, y, name in ps:
            out.append('<g>%s<title>%s, %s: %.1f µs, %d relocations</title></g>'
                       % (marker(kind, sx(x), sy(y), colour), escape(name), loader, y, x))

    # Labels: one per library with the ratio, above its points or below
    # them, wherever it does not cover another label or a marker.
    by_lib = {}
    for loader in points:
        for x, y, name in points[loader]:
            by_lib.setdefault(name, {})[loader] = (x, y)
    taken = [(sx(x) - 7, sy(y) - 7, sx(x) + 7, sy(y) + 7) for x, y, _ in allpts]
    taken.append((LEFT, TOP, LEFT + 250, TOP + 14 + 22 * len(SERIES) + 44))  # legend

    def free(box):
        return all(box[2] < t[0] or box[0] > t[2] or box[3] < t[1] or box[1] > t[3]
                   for t in taken)

    for name, d in sorted(by_lib.items(), key=lambda kv: next(iter(kv[1].values()))[0]):
        x = next(iter(d.values()))[0]
        ytop = sy(max(v[1] for v in d.values()))
        ybot = sy(min(v[1] for v in d.values()))
        label = name
        if "glibc" in d and d["glibc"][1] > 0:
            ratios = ["%s%.2f" % (prefix, d[loader][1] / d["glibc"][1])
                      for loader, prefix in (("minld", "×"), ("cached", "cached ×"))
                      if loader in d]
            if ratios:
                label += " (%s)" % ", ".join(ratios)
        w = 6.6 * len(label)
        px = sx(x)
        if px - w / 2 < LEFT + 4:
            x0 = LEFT + 4
        elif px + w / 2 > LEFT + pw - 4:
            x0 = LEFT + pw - 4 - w
        else:
            x0 = px - w / 2
        choice = None
        for k in range(8):
            for base in (ytop - 12 - 15 * k, ybot + 20 + 15 * k):
                box = (x0, base - 11, x0 + w, base + 3)
                if TOP + 12 < base < TOP + ph - 4 and free(box):
                    choice = base
                    break
            if choice is not None:
                break
        if choice is None:
            choice = ytop - 12
        taken.append((x0, choice - 11, x0 + w, choice + 3))
        out.append('<text x="%.1f" y="%.1f" font-size="11.5" fill="#222">%s</text>'
                   % (x0, choice, escape(label)))

    # Legend, top left inside the plot.
    # Only the loaders the JSON has samples of.
    shown = [s for s in SERIES if points[s[0]]]
    lx, ly = LEFT + 14, TOP + 14
    out.append('<rect x="%d" y="%d" width="220" height="%d" fill="white" '
               'fill-opacity="0.9" stroke="#999"/>' % (lx, ly, 22 * len(shown) + 30))
    for i, (loader, label, colour, kind) in enumerate(shown):
        y = ly + 18 + 22 * i
        out.append(marker(kind, lx + 16, y, colour))
        out.append('<text x="%d" y="%d" font-size="13">%s</text>' % (lx + 30, y + 4, escape(label)))
    out.append('<text x="%d" y="%d" font-size="11" fill="#555">(×n: minld or cached / glibc)</text>'
               % (lx + 12, ly + 22 * len(shown) + 20))
    if skipped:
        out.append('<text x="%d" y="%d" font-size="11" fill="#a00">not plotted: %s</text>'
                   % (LEFT, HEIGHT - 6, escape(", ".join(skipped))))
    out.append('</svg>')
    with open(dst, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv)
