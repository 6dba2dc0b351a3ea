#!/usr/bin/env bash
# libkeel.so exports exactly its public API: every defined dynamic symbol is
# a kl_* name that is not a kl_*__ internal. The -finstrument-functions hooks
# (__cyg_profile_func_enter/exit) are defined in the trace build only.
# Usage: exports.sh LIBKEEL_SO TRACE(ON|OFF)
set -euo pipefail
lib=$1
trace=$2
# Defined dynamic symbols, less the version node (an absolute symbol, KEEL_*).
names=$(nm -D --defined-only "$lib" | awk '$2 != "A" { print $3 }' | sed 's/@.*//' | sort -u)
[ -n "$names" ] || { echo "no symbols exported from $lib"; exit 1; }
hooks='^__cyg_profile_func_(enter|exit)$'
bad=$( (printf '%s\n' "$names" | grep -Ev "$hooks" | grep -Ev '^kl_'
        printf '%s\n' "$names" | grep -E '^kl_.*__') || true)
status=0
if [ -n "$bad" ]; then
  echo "exported but not public API:"
  printf '  %s\n' $bad
  status=1
fi
nhooks=$(printf '%s\n' "$names" | grep -Ec "$hooks" || true)
case "$trace" in
  ON|on|1|TRUE|true) [ "$nhooks" = 2 ] || { echo "trace build: hooks not exported"; status=1; } ;;
  *) [ "$nhooks" = 0 ] || { echo "the trace hooks are defined outside the trace build"; status=1; } ;;
esac
[ "$status" = 0 ] || exit 1
echo "exports: $(printf '%s\n' "$names" | wc -l) names, all public API (trace hooks: $nhooks)"
