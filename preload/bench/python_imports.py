#!/usr/bin/env python3
"""Ten Python extension imports, glibc against minld's drop-in.

    python3 preload/bench/python_imports.py target/release/libminld_preload.so [ROUNDS]

Each run is a fresh `/usr/bin/python3.11`, the three setups alternating
(glibc; LD_PRELOAD of the preload; the preload with MINLD_CACHE, its
records written by an untimed first run). Two measures, medians:
- the whole process (`-c 'import …'` less `-c pass`): wall time from here,
  CPU time (user + system) from wait4;
- Python's own clock around each of the ten imports (`-X importtime`,
  self time): the dlopen, the module's init, nothing else of the process.
"""
import os
import shutil
import statistics
import subprocess
import sys
import time

PRE = os.path.abspath(sys.argv[1])
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 41
PY = "/usr/bin/python3.11"
MODS = ["_sqlite3", "_ssl", "_ctypes", "_bz2", "_lzma", "_decimal", "_json", "_hashlib", "_asyncio", "_uuid"]
CODE = "import " + ", ".join(MODS)
CACHE = "/tmp/minld-preload-bench-cache"
shutil.rmtree(CACHE, ignore_errors=True)
BASE = {k: v for k, v in os.environ.items() if not k.startswith("MINLD_") and k != "LD_PRELOAD"}
SETUPS = {
    "glibc": {},
    "minld": {"LD_PRELOAD": PRE},
    "minld cached": {"LD_PRELOAD": PRE, "MINLD_CACHE": CACHE},
}


def process(env, code):
    """Wall and CPU milliseconds of one python process."""
    t = time.perf_counter()
    p = subprocess.Popen([PY, "-c", code], env={**BASE, **env})
    _, status, ru = os.wait4(p.pid, 0)
    assert status == 0, status
    return (time.perf_counter() - t) * 1000, (ru.ru_utime + ru.ru_stime) * 1000


def importtime(env):
    """Python's self time of the ten imports, in milliseconds."""
    err = subprocess.run([PY, "-X", "importtime", "-c", CODE], env={**BASE, **env},
                         capture_output=True, text=True, check=True).stderr
    total = 0
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:"):].split("|")]
            if parts[2] in MODS:
                total += int(parts[0])
    return total / 1000


for env in SETUPS.values():
    process(env, CODE)
res = {k: {"pass": [], "imports": [], "self": []} for k in SETUPS}
for _ in range(ROUNDS):
    for k, env in SETUPS.items():
        res[k]["pass"].append(process(env, "pass"))
        res[k]["imports"].append(process(env, CODE))
        res[k]["self"].append(importtime(env))

med = statistics.median
print("| | imports − `-c pass`, wall | imports − `-c pass`, CPU | the ten imports' self time | /glibc |")
print("|---|---:|---:|---:|---:|")
g = med(res["glibc"]["self"])
for k, r in res.items():
    wall = med(x[0] for x in r["imports"]) - med(x[0] for x in r["pass"])
    cpu = med(x[1] for x in r["imports"]) - med(x[1] for x in r["pass"])
    s = med(r["self"])
    print(f"| {k} | {wall:.1f} ms | {cpu:.1f} ms | {s:.2f} ms | {s / g:.2f} |")
