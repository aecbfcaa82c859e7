#!/usr/bin/env bash
# Fetches Debian's `netty` source package (the Netty release libnetty-java was built from) into DEST, through a
# private apt configuration: deb-src lines derived from the machine's own Debian sources, lists and cache in a
# temporary directory. Nothing under /etc/apt is written, and nothing of Netty's source enters our repository.
# A tree already extracted in DEST is reused, so reruns do not touch the network.
#
#   fetch-netty-tests.sh DEST      prints the extracted source tree's path on its last line
set -euo pipefail

dest=${1:?usage: fetch-netty-tests.sh DEST}
# apt and dpkg are not ours to instrument: a sanitizer runtime preloaded for the JVM tests (ASan builds) made
# apt-get hang.
unset LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
stamp=$dest/.extracted

if [[ -f $stamp ]] && [[ -d $(cat "$stamp") ]]; then
    cat "$stamp"
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/sources.list.d" "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/src"
: > "$tmp/sources.list"

# deb822 sources (Debian 12's default) become deb-src entries; one-line sources.list entries likewise.
found=0
for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    sed -E 's/^Types:.*$/Types: deb-src/' "$f" > "$tmp/sources.list.d/$(basename "$f")"
    found=1
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    sed -nE 's/^[[:space:]]*deb[[:space:]]+/deb-src /p' "$f" >> "$tmp/sources.list"
    found=1
done
((found)) || { echo "fetch-netty-tests.sh: no apt sources found under /etc/apt" >&2; exit 1; }

apt_opts=(-o "Dir::Etc::sourcelist=$tmp/sources.list" -o "Dir::Etc::sourceparts=$tmp/sources.list.d"
          -o "Dir::State::lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o "Debug::NoLocking=1"
          -o "APT::Sandbox::User=$(id -un)" -o "Acquire::http::Timeout=30" -o "Acquire::https::Timeout=30")
apt-get "${apt_opts[@]}" -qq update >&2
# The source package of the installed libnetty-java: the tests must match the jars they run against.
version=$(dpkg-query -W -f='${source:Version}' libnetty-java 2>/dev/null || true)
pkg=netty
[[ -n $version ]] && pkg="netty=$version"
(cd "$tmp/src" && apt-get "${apt_opts[@]}" -qq source "$pkg" >&2)

tree=$(find "$tmp/src" -mindepth 1 -maxdepth 1 -type d -name 'netty-*' | head -1)
[[ -n $tree ]] || { echo "fetch-netty-tests.sh: apt-get source gave no netty-* tree" >&2; exit 1; }
rm -rf "$dest/$(basename "$tree")"
mv "$tree" "$dest/"
echo "$dest/$(basename "$tree")" > "$stamp"
cat "$stamp"
