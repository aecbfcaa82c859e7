#!/usr/bin/env bash
# Runs every code snippet of the README files as the complete program it must be. The marker is the fence's
# language: a ```lua block runs with lua5.4 and the built module, a ```c block is compiled against ohm.h and
# libohm.a and run, a ```java block is compiled with javac (-Werror) against ohm.jar, ohm-netty.jar and Netty
# and run: its main, or, for a JUnit 5 test class, its tests through the console launcher. ```xml blocks (build
# files) must be well-formed. ```sh blocks (commands) and ```text blocks are not programs and are left alone.
# Any other language tag, or none, fails, so a new snippet cannot go untested.
#   run_snippets.sh <source dir> <build dir> <scratch dir> <cc> [cflags...]
# OHM_SNIPPET_LUA_PRELOAD: the sanitizer runtime lua5.4 needs in LD_PRELOAD to load a sanitized module.
# OHM_SNIPPET_JAVA, OHM_SNIPPET_JAVAC: the JDK's java and javac; OHM_SNIPPET_JAVA_CP: ohm.jar and, when built,
# ohm-netty.jar and Netty's jars; OHM_SNIPPET_JUNIT: JUnit 5's console launcher; OHM_SNIPPET_JAVA_ENV: VAR=value
# words for the JVM's environment (the sanitizer runtime); OHM_SNIPPET_JAVA_SKIP: why Java snippets cannot run
# in this build (then they are reported skipped).
set -euo pipefail
src=$1 build=$2 work=$3 cc=$4
shift 4
cflags=("$@")
rm -rf "$work"
mkdir -p "$work"

# The README files of the root and of each top-level directory (lua/, jni/, netty/, bindings/, ...).
mapfile -t files < <(cd "$src" && find . -maxdepth 2 -name 'README*.md' -printf '%P\n' | sort)
: >"$work/index"
for f in "${files[@]}"; do
    # Each snippet to WORK/<file with / as _>-<line of its fence>.<lang>; the index to WORK/index. A fence
    # without a language is "untagged", which fails: plain text says so with ```text.
    awk -v out="$work" -v name="${f//\//_}" -v file="$f" '
        /^```/ && !inside { inside = 1; lang = substr($0, 4); gsub(/[ \t].*/, "", lang)
                            if (lang == "") lang = "untagged"
                            path = out "/" name "-" NR "." lang
                            print file ":" NR " " lang " " path >> (out "/index"); next }
        /^```/ && inside  { inside = 0; close(path); next }
        inside { print > path }
    ' "$src/$f"
done

# A ```java snippet: compiled as its public class's file, then run. Prints what went wrong; returns non-zero.
run_java() {
    local where=$1 path=$2
    local class
    class=$(sed -nE 's/^public (final )?class ([A-Za-z_][A-Za-z0-9_]*).*/\2/p' "$path" | head -n 1)
    if [[ -z "$class" ]]; then
        echo "FAILED: $where: a Java snippet must be a complete program (imports and a public class)"; return 1
    fi
    local dir="${path%.java}.d" cp="$OHM_SNIPPET_JAVA_CP"
    mkdir -p "$dir/classes"
    cp "$path" "$dir/$class.java"
    if grep -q 'org\.junit\.jupiter' "$path"; then cp="$cp:$OHM_SNIPPET_JUNIT"; fi
    if ! "$OHM_SNIPPET_JAVAC" --release 17 -encoding UTF-8 -Xlint:all,-options -Werror -cp "$cp" \
        -d "$dir/classes" "$dir/$class.java" >"$dir/javac.log" 2>&1; then
        echo "FAILED to compile: $where"; sed 's/^/    /' "$dir/javac.log"; return 1
    fi
    local cmd
    # -Xcheck:jni: a JNI warning of libohm_jni fails the snippet, as in the Java tests.
    # shellcheck disable=SC2206 # VAR=value words, split on purpose
    local jenv=(env ${OHM_SNIPPET_JAVA_ENV:-})
    if grep -q '^ *@Test' "$path"; then
        cmd=("${jenv[@]}" "$OHM_SNIPPET_JAVA" -Xcheck:jni -jar "$OHM_SNIPPET_JUNIT" --disable-banner
             --details=summary --fail-if-no-tests -cp "$cp:$dir/classes" --select-class "$class")
    elif grep -q 'public static void main(' "$path"; then
        cmd=("${jenv[@]}" "$OHM_SNIPPET_JAVA" -Xcheck:jni -cp "$cp:$dir/classes" "$class")
    else
        echo "FAILED: $where: class $class has neither a main nor JUnit 5 @Test methods"; return 1
    fi
    if (cd "$dir" && "${cmd[@]}") >"$path.out" 2>&1 && ! grep -q 'in native method' "$path.out"; then
        echo "ok: $where"
    else
        echo "FAILED: $where"; sed 's/^/    /' "$path.out"; return 1
    fi
}

failed=0 ran=0 skipped=0
while read -r where lang path; do
    case "$lang" in
    sh | text) continue ;;
    java)
        if [[ -n "${OHM_SNIPPET_JAVA_SKIP:-}" ]]; then
            echo "skipped ($OHM_SNIPPET_JAVA_SKIP): $where"; skipped=$((skipped + 1)); continue
        fi
        if grep -q '^import io\.netty\.' "$path" && [[ "$OHM_SNIPPET_JAVA_CP" != *ohm-netty.jar* ]]; then
            echo "skipped (no ohm-netty.jar in this build): $where"; skipped=$((skipped + 1)); continue
        fi
        ran=$((ran + 1))
        run_java "$where" "$path" || failed=$((failed + 1))
        continue ;;
    xml)
        if ! command -v python3 >/dev/null; then
            echo "skipped (no python3): $where"; skipped=$((skipped + 1)); continue
        fi
        ran=$((ran + 1))
        if python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$path" >"$path.out" 2>&1; then
            echo "ok (well-formed XML): $where"
        else
            echo "FAILED: $where"; sed 's/^/    /' "$path.out"; failed=$((failed + 1))
        fi
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
        echo "FAILED: $where: a \`\`\`$lang snippet (known: c, lua, java, xml; sh and text are not programs)"
        failed=$((failed + 1))
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
echo "$ran snippets run, $failed failed, $skipped skipped"
((failed == 0 && ran > 0))
