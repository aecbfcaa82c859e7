#!/usr/bin/env bash
# Makes sure the Debian packages ohm needs are installed. Does nothing (and touches no network) when they all
# are; otherwise installs the missing ones with apt-get when run as root, or prints the exact command and
# exits 1 when not.
set -euo pipefail

packages=(
    # build: compilers, cmake, clang's sanitizer and fuzzer runtimes, the C style check
    build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
    # benchmark peers: jemalloc, mimalloc, gperftools tcmalloc
    libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev
    # the Lua module, the libffi bridge, the JNI library and its Java tests, Netty as a peer
    liblua5.4-dev lua5.4 libffi-dev zlib1g-dev openjdk-17-jdk-headless junit5 libnetty-java
    # the Lua leak-scope spec (tests/lua/spec)
    lua-busted
    # Netty's own buffer tests (netty/tests): JUnit 4, Hamcrest, and dpkg-source to unpack Debian's netty source
    junit4 libhamcrest-java dpkg-dev
)

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

if [[ "$(id -u)" -ne 0 ]]; then
    echo "ohm needs these Debian packages: ${missing[*]}" >&2
    echo "Install them with:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
