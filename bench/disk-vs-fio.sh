#!/bin/sh
# keeld's disk engine against fio on the same file system (see
# bench/disk_vs_fio.py for what is measured and how).
# Usage: bench/disk-vs-fio.sh [--rounds N] [--seconds S] [--data-mb MB] [--dir DIR]
#                             [--restart-keys N] [--crash-cycles N] [--quick] [--keep]
# Run from the repository after `make` (it uses build/tools/...); `make
# bench-disk` runs it with DISK_BENCH_ARGS from the environment (e.g.
# DISK_BENCH_ARGS=--quick). The data sets go to build/disk-bench unless --dir.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
# shellcheck disable=SC2086 # DISK_BENCH_ARGS is a list of flags
exec /usr/bin/python3 "$top/bench/disk_vs_fio.py" --keeld "$build/tools/keeld/keeld" \
    --keel-bench "$build/tools/keel-bench/keel-bench" \
    --keel-mkdata "${KEEL_MKDATA:-$build/tools/keel-mkdata/keel-mkdata}" \
    --dir "$build/disk-bench" ${DISK_BENCH_ARGS:-} "$@"
