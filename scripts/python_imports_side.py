#!/usr/bin/env python3
"""The ten Python imports of preload/bench/python_imports.py, glibc against
two builds of the preload side by side:

    python3 scripts/python_imports_side.py ROUNDS before=OLD.so after=NEW.so

Each round runs a fresh /usr/bin/python3.11 -X importtime per setup, the
setups alternating (glibc first); prints each setup's median self time of
the ten imports (the dlopen and the module's init) with its quartiles, and
the ratio to glibc's median.
"""
import os, statistics, subprocess, sys
PY = "/usr/bin/python3.11"
MODS = ["_sqlite3", "_ssl", "_ctypes", "_bz2", "_lzma", "_decimal", "_json", "_hashlib", "_asyncio", "_uuid"]
CODE = "import " + ", ".join(MODS)
ROUNDS = int(sys.argv[1])
SETUPS = {"glibc": None}
for a in sys.argv[2:]:
    name, path = a.split("=", 1)
    SETUPS[name] = path
BASE = {k: v for k, v in os.environ.items() if not k.startswith("MINLD_") and k != "LD_PRELOAD"}
def selftime(pre):
    env = dict(BASE)
    if pre:
        env["LD_PRELOAD"] = pre
    err = subprocess.run([PY, "-X", "importtime", "-c", CODE], env=env, capture_output=True, text=True, check=True).stderr
    t = 0
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            p = [x.strip() for x in line[len("import time:"):].split("|")]
            if p[2] in MODS:
                t += int(p[0])
    return t / 1000
for pre in SETUPS.values():
    selftime(pre)
res = {k: [] for k in SETUPS}
for _ in range(ROUNDS):
    for k, pre in SETUPS.items():
        res[k].append(selftime(pre))
g = statistics.median(res["glibc"])
for k, v in res.items():
    q = statistics.quantiles(v, n=4)
    print(f"{k}: median {statistics.median(v):.2f} ms ({q[0]:.2f}-{q[2]:.2f}), {statistics.median(v)/g:.2f}x glibc")
