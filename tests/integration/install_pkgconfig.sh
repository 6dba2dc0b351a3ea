#!/usr/bin/env bash
# Install keel into a temporary prefix with `cmake --install`, then build an
# outside program against it through keel.pc, linked both shared and static,
# and run both. Usage: install_pkgconfig.sh BUILD_DIR CC
set -euo pipefail
build=$1
cc=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pcdir=$(dirname "$(find "$tmp/prefix" -name keel.pc)")
for f in include/keel/list.h include/keel/clock.h; do
  [ -f "$tmp/prefix/$f" ] || { echo "missing $f"; exit 1; }
done
ls "$tmp"/prefix/lib*/libkeel.a "$tmp"/prefix/lib*/libkeel.so >/dev/null

cat > "$tmp/prog.c" <<'C'
#include <keel/clock.h>
#include <keel/crc32c.h>
#include <keel/list.h>
#include <stdio.h>
int main(void)
{
    struct kl_list l;
    struct kl_list_node n = KL_LIST_NODE_INIT;
    kl_list_init(&l);
    kl_list_push_back(&l, &n);
    uint64_t t = kl_now();
    printf("ok %zu %08x %d\n", kl_list_len(&l), kl_crc32c(0, "123456789", 9), t > 0);
    return 0;
}
C
export PKG_CONFIG_PATH="$pcdir"
# shared
"$cc" -o "$tmp/prog_shared" "$tmp/prog.c" $(pkg-config --cflags --libs keel)
out=$(LD_LIBRARY_PATH="$(dirname "$pcdir")" "$tmp/prog_shared")
[ "$out" = "ok 1 e3069283 1" ] || { echo "shared: unexpected output '$out'"; exit 1; }
# static
"$cc" -o "$tmp/prog_static" "$tmp/prog.c" $(pkg-config --cflags keel) \
  "$(dirname "$pcdir")/libkeel.a" $(pkg-config --libs --static liburing libxxhash) -lpthread
out=$("$tmp/prog_static")
[ "$out" = "ok 1 e3069283 1" ] || { echo "static: unexpected output '$out'"; exit 1; }
echo "install + pkg-config: shared and static programs built and ran"
