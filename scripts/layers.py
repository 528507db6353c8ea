#!/usr/bin/env python3
"""Checks that each folder of loader/ uses only the folders below it.

The layers, lowest first, are listed in LAYERS (the README's "How it is
built" explains them). A file in layer L may name `crate::M::...` only for a
module M of a layer below L or of L itself; `lib.rs` may name anything.
Prints every reference that goes up and exits 1 if there is one.
"""
import os
import re
import sys

LAYERS = ["base", "os", "elf", "process", "model", "pipeline", "api", "plugin"]
# What lib.rs re-exports, by the layer it comes from.
ROOT = {
    "Error": "base", "RelocKind": "base",
    "LoadBias": "model", "Protection": "model", "Segment": "model",
    "Policy": "pipeline", "policy": "pipeline",
    "Library": "api", "Loader": "api", "MappedObject": "api", "Prepared": "api",
    "Symbol": "api", "addr_info": "api", "AddrInfo": "api",
    "Namespace": "plugin", "NamespaceBuilder": "plugin", "sandbox": "plugin",
}
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "loader")


def code(text):
    """The text without comments and string literals, and without tests."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text)
    m = re.search(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text)
    return text[: m.start()] if m else text


bad = 0
for d, _, files in os.walk(root):
    for f in sorted(files):
        if not f.endswith(".rs"):
            continue
        path = os.path.join(d, f)
        rel = os.path.relpath(path, root)
        top = rel.split(os.sep)[0]
        if top not in LAYERS:
            continue
        mine = LAYERS.index(top)
        for n, line in enumerate(code(open(path).read()).split("\n"), 1):
            names = re.findall(r"\bcrate::(\w+)", line)
            for g in re.findall(r"\bcrate::\{([^}]*)\}", line):
                names += [x.strip().split("::")[0] for x in g.split(",")]
            for name in names:
                name = ROOT.get(name, name)
                if name in LAYERS and LAYERS.index(name) > mine:
                    print(f"loader/{rel}:{n}: {top} uses {name}: {line.strip()}")
                    bad += 1
print(f"{bad} reference(s) up the layers")
sys.exit(1 if bad else 0)
