#!/bin/sh
# keeld against memcached side by side (see bench/vs_memcached.py for what is
# measured and how). Usage: bench/vs-memcached.sh [--rounds N] [--seconds S] [--hit-warmup S] [--quick]
# Run from the repository after `make` (it uses build/tools/...).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
exec /usr/bin/python3 "$top/bench/vs_memcached.py" --keeld "$build/tools/keeld/keeld" \
    --keel-bench "$build/tools/keel-bench/keel-bench" "$@"
