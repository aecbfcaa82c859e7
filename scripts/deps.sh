#!/usr/bin/env bash
# Makes sure the Debian packages a job needs are installed. Does nothing (and touches no network) when they all
# are; otherwise installs the missing ones with apt-get when run as root, or prints the exact command (with sudo,
# and with su for a machine without sudo) and exits 1 when not.
#   scripts/deps.sh [GROUP...]     no group: all of them; `scripts/deps.sh --list` shows the groups
# scripts/run-main installs `build` (a C stress run needs no JDK, no Lua, no clang); scripts/run-tests all.
set -euo pipefail

declare -A group=(
    # compilers, cmake, and what the core, the binding layer (libffi) and the C tests (zlib, called through it) use
    [build]="build-essential cmake pkg-config libffi-dev zlib1g-dev"
    # the Java library, its JUnit tests, and ohm-netty.jar (compiled against Debian's Netty)
    [java]="openjdk-17-jdk-headless junit5 libnetty-java"
    # Maven and the plugins scripts/install-maven.sh and its test use offline: install, and compiler, resources and
    # exec for the user project that takes ohm by coordinates
    [maven]="maven libmaven-install-plugin-java libmaven-compiler-plugin-java libmaven-resources-plugin-java"
    # the Lua module and its tests; luarocks for the rockspec and its test, busted for the leak-scope spec
    [lua]="liblua5.4-dev lua5.4 luarocks lua-busted"
    # clang's sanitizer and libFuzzer runtimes (gcc's ASan/UBSan/TSan come with build-essential)
    [sanitize]="clang libclang-rt-14-dev"
    # the peers ohm-bench compares with: jemalloc, mimalloc, gperftools tcmalloc
    [bench]="libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev"
    # Netty's own buffer tests (netty/tests): JUnit 4, Hamcrest, and dpkg-source to unpack Debian's netty source
    [netty-tests]="junit4 libhamcrest-java dpkg-dev"
    # scripts/check-format
    [format]="clang-format"
)
group[maven]+=" libexec-maven-plugin-java"
order=(build java maven lua sanitize bench netty-tests format)

if [[ "${1:-}" == --list ]]; then
    for g in "${order[@]}"; do printf '%-12s %s\n' "$g" "${group[$g]}"; done
    exit 0
fi
wanted=("$@")
((${#wanted[@]})) || wanted=("${order[@]}")

packages=()
for g in "${wanted[@]}"; do
    [[ -n "${group[$g]:-}" ]] || { echo "deps.sh: unknown group '$g' (groups: ${order[*]})" >&2; exit 2; }
    read -ra ps <<<"${group[$g]}"
    packages+=("${ps[@]}")
done

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0

install="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
if [[ "$(id -u)" -ne 0 ]]; then
    echo "ohm needs these Debian packages (${wanted[*]}): ${missing[*]}" >&2
    echo "Install them as root, with sudo or (without sudo) su:" >&2
    echo "  sudo sh -c '$install'" >&2
    echo "  su -c '$install'" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
sh -c "$install"
