#!/usr/bin/env bash
# Benchmark figures belong in docs/BENCHMARKS.md, where they are dated and
# re-measured; a figure in a source comment goes stale unseen. Fails on a
# comment in src/ or include/ that reports a measured time ("measured ...
# 11.4 ns", "63 -> 74 ns"). Design parameters (a 10 ms calibration, 1 ms
# ticks) are not measurements and pass. Usage: comment_figures.sh SOURCE_DIR
set -euo pipefail
cd "$1"
unit='[0-9]+(\.[0-9]+)? ?(ns|us|ms|cycles)\b'
found=$(grep -rnE "measured[^/]*$unit|[0-9.]+ ?-> ?$unit" src include || true)
if [ -n "$found" ]; then
  echo "benchmark figures in comments (point to docs/BENCHMARKS.md instead):"
  echo "$found"
  exit 1
fi
echo "no benchmark figures in source comments"
