#!/usr/bin/env bash
# Install, with apt-get, every Debian package that keel's build, tests and
# benchmarks need, and only those that are missing. Quick and silent when
# everything is already there.
set -euo pipefail

packages=(
  # build
  gcc clang make cmake ninja-build pkg-config
  # libraries
  liburing-dev libxxhash-dev libaio-dev libmicrohttpd-dev
  # sanitizer runtimes for clang (gcc's come with gcc); clang-14's libFuzzer
  # (-fsanitize=fuzzer, for make fuzz) is in libclang-rt-14-dev
  libclang-rt-dev libclang-rt-14-dev
  # house style
  clang-format
  # tools used by tests and benchmarks
  python3 valgrind
  # real peers of the server's tests and benchmarks, and the README's examples
  memcached netcat-openbsd curl libmemcached-tools python3-pymemcache nutcracker linux-perf
  # the device baseline of bench/disk-vs-fio.sh
  fio
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Debian starts memcached (on 127.0.0.1:11211, keeld's port) and nutcracker as
# services when they are installed; keel's tests start their own on free
# ports, so keep the packages from starting theirs (policy-rc.d, for this
# install only, unless the machine already has one).
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod 755 "$policy"
  added_policy=1
fi
trap '[ -n "$added_policy" ] && $sudo rm -f "$policy"' EXIT
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
