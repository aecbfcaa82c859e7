#!/usr/bin/env bash
# The Lua module as a rock: `luarocks make` of a copy of the source tree into a scratch tree (--tree), then
# require "ohm" from that tree, and the module's warnings on Lua's warning channel (silent unless warn is on).
#   luarocks_test.sh <source dir> <scratch dir>
set -euo pipefail
src=$1 work=$2
rm -rf "$work"
mkdir -p "$work/src"
# A copy: luarocks builds in the rockspec's directory (build.luarocks/), which must not be the checkout that
# other builds use at the same time.
tar -C "$src" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$work/src" -xf -
cd "$work/src"
luarocks --lua-version 5.4 make --tree "$work/tree" >"$work/make.log" 2>&1 || { cat "$work/make.log"; exit 1; }
eval "$(luarocks --lua-version 5.4 --tree "$work/tree" path)"

out=$(lua5.4 -e 'local ohm = require "ohm"; local b <close> = ohm.create(8); b:writeu32(0, 7); print(package.searchpath("ohm", package.cpath), b:readu32(0))')
echo "$out"
[[ "$out" == "$work/tree/lib/lua/5.4/ohm.so	7" ]] || { echo "unexpected: $out"; exit 1; }

# A buffer dropped without release: the core's report reaches warn(), never stderr directly.
leak='local ohm = require "ohm"; for i = 1, 300 do ohm.create(8) end; collectgarbage(); collectgarbage()'
quiet=$(lua5.4 -e "$leak" 2>&1)
[[ -z "$quiet" ]] || { echo "the module wrote with warnings off: $quiet"; exit 1; }
loud=$(lua5.4 -W -e "$leak" 2>&1)
[[ "$loud" == *"Lua warning: ohm"* ]] || { echo "no warning with warn on: $loud"; exit 1; }
echo "ok: luarocks make, require from the tree, warnings on Lua's channel"
