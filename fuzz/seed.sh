#!/bin/sh
# Fills fuzz/corpus/<target>/ with seed files: every test-lib built by
# build.rs (run `cargo test --no-run` first) and a few small real libraries.
set -e
cd "$(dirname "$0")"
libs=$(ls -d ../target/debug/build/minld-*/out/test-libs 2>/dev/null | head -1)
[ -n "$libs" ] || { echo "build the test-libs first: cargo test --no-run" >&2; exit 1; }
for t in map link bytes; do
    mkdir -p corpus/$t
    find "$libs" -name '*.so' -size -64k -exec cp {} corpus/$t/ \;
    for real in libz.so.1 libmd.so.0 liblzma.so.5; do
        cp /lib/x86_64-linux-gnu/$real corpus/$t/ 2>/dev/null || true
    done
done
# The record target: link records written by loading a few libraries
# with the cache on.
mkdir -p corpus/record
for real in libz.so.1 libsqlite3.so.0 libxml2.so.2; do
    MINLD_CACHE="$PWD/corpus/record" cargo run -q --manifest-path ../Cargo.toml --example dlopen "$real" >/dev/null 2>&1 || true
done
ls corpus/link | wc -l
