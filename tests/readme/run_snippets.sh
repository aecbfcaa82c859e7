#!/usr/bin/env bash
# Runs every code snippet of the README files as the complete program it must be. The marker is the fence's
# language: a ```lua block runs with lua5.4 and the built module, a ```c block is compiled against ohm.h and
# libohm.a and run; ```sh blocks are commands, not programs, and are left alone. ```java blocks are listed in
# WORK/java-snippets.txt and not run (yet). Any other language tag fails, so a new snippet cannot go untested.
#   run_snippets.sh <source dir> <build dir> <scratch dir> <cc> [cflags...]
# OHM_SNIPPET_LUA_PRELOAD: the sanitizer runtime lua5.4 needs in LD_PRELOAD to load a sanitized module.
set -euo pipefail
src=$1 build=$2 work=$3 cc=$4
shift 4
cflags=("$@")
rm -rf "$work"
mkdir -p "$work"

files=(README.md lua/README.md jni/README.md bindings/README.md)
for f in "${files[@]}"; do
    [[ -f "$src/$f" ]] || continue
    # Each snippet to WORK/<file with / as _>-<line of its fence>.<lang>; the index to WORK/index.
    awk -v out="$work" -v name="${f//\//_}" -v file="$f" '
        /^```/ && !inside { inside = 1; lang = substr($0, 4); gsub(/[ \t].*/, "", lang); start = NR
                            path = out "/" name "-" NR "." lang; if (lang != "") print file ":" NR " " lang " " path >> (out "/index"); next }
        /^```/ && inside  { inside = 0; if (lang != "") close(path); next }
        inside && lang != "" { print > path }
    ' "$src/$f"
done

failed=0 ran=0
: >"$work/java-snippets.txt"
while read -r where lang path; do
    case "$lang" in
    sh) continue ;;
    java)
        echo "$where" >>"$work/java-snippets.txt"
        echo "listed (Java, not run): $where"
        continue ;;
    lua)
        if [[ ! -f "$build/lua/ohm.so" ]]; then echo "skipped (no build/lua/ohm.so): $where"; continue; fi
        cmd=(env "LD_PRELOAD=${OHM_SNIPPET_LUA_PRELOAD:-}" lua5.4 "$path") ;;
    c)
        exe="${path%.c}"
        if ! "$cc" "${cflags[@]}" -I"$src/core/include" -o "$exe" "$path" "$build/libohm.a" -pthread -lm \
            >"$exe.log" 2>&1; then
            echo "FAILED to compile: $where"; cat "$exe.log"; failed=$((failed + 1)); continue
        fi
        cmd=("$exe") ;;
    *)
        echo "FAILED: $where: a \`\`\`$lang snippet (only c, lua, java and sh are known)"; failed=$((failed + 1))
        continue ;;
    esac
    ran=$((ran + 1))
    # From the scratch directory, so a snippet that writes files writes them there.
    if (cd "$work" && LUA_CPATH="$build/lua/?.so;;" "${cmd[@]}") >"$path.out" 2>&1; then
        echo "ok: $where"
    else
        echo "FAILED: $where"; sed 's/^/    /' "$path.out"; failed=$((failed + 1))
    fi
done <"$work/index"
echo "$ran snippets run, $failed failed; Java snippets (not run) in $work/java-snippets.txt"
((failed == 0 && ran > 0))
