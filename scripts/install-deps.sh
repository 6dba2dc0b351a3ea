#!/usr/bin/env bash
# Install, with apt-get, every Debian package that keel's build, tests and
# benchmarks need, and only those that are missing. Quick and silent when
# everything is already there.
set -euo pipefail

packages=(
  # build
  gcc clang make cmake ninja-build pkg-config
  # libraries
  liburing-dev libxxhash-dev libaio-dev
  # sanitizer runtimes for clang (gcc's come with gcc); clang-14's libFuzzer
  # (-fsanitize=fuzzer, for make fuzz) is in libclang-rt-14-dev
  libclang-rt-dev libclang-rt-14-dev
  # house style
  clang-format
  # tools used by tests and benchmarks
  python3 valgrind
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
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
