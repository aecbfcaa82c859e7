#!/usr/bin/env bash
# java_maven_install: scripts/install-maven.sh --offline puts ohm's jars into a scratch Maven repository, then two
# user projects take them from there by coordinates, compile, and run with Maven's class path: ohm-app
# (org.ohm:ohm) and, when ohm-netty.jar is built, ohm-netty-app (org.ohm:ohm-netty alone, which brings ohm and
# Netty). No network: Maven's plugins and Netty come from Debian's /usr/share/maven-repo.
#   maven_test.sh SOURCE_DIR BUILD_DIR WORK_DIR JAVA VERSION
# Exits 77 (skipped) when there is no mvn.
set -euo pipefail
src=$1 build=$2 work=$3 java=$4 version=$5

command -v mvn >/dev/null || { echo "mvn not found (Debian package maven: scripts/deps.sh maven): skipped"; exit 77; }
rm -rf "$work"
mkdir -p "$work"
repo="$work/repo"
"$src/scripts/install-maven.sh" --build "$build" --repo "$repo" --offline -- -q

installed="$repo/org/ohm/ohm/$version"
for f in "ohm-$version.jar" "ohm-$version.pom" "ohm-$version-sources.jar" "ohm-$version-javadoc.jar"; do
    [[ -s "$installed/$f" ]] || { echo "FAIL: $installed/$f was not installed" >&2; exit 1; }
done

# run_app NAME MAIN EXPECTED: copies tests/maven/NAME, compiles and runs it, and looks for EXPECTED in its output.
run_app() {
    local name=$1 main=$2 expected=$3
    cp -r "$src/tests/maven/$name" "$work/$name"
    local out
    out=$(cd "$work/$name" && mvn -B -q -Dstyle.color=never -o -Daether.offline.protocols=file -s "$src/scripts/maven-debian-settings.xml" \
        -Dmaven.repo.local="$repo" -Dohm.version="$version" compile org.codehaus.mojo:exec-maven-plugin:3.1.0:exec -Dexec.executable="$java" \
        "-Dexec.args=-Xcheck:jni -cp %classpath $main" 2>&1) || { echo "$out" >&2; echo "FAIL: $name" >&2; exit 1; }
    echo "$out"
    grep -q "$expected" <<<"$out" || { echo "FAIL: $name did not print '$expected'" >&2; exit 1; }
}
run_app ohm-app com.example.App "ohm-app: read 42 from a 64-byte buffer"
if [[ -f "$build/jni/ohm-netty.jar" ]]; then
    run_app ohm-netty-app com.example.NettyApp "ohm-netty-app: read 42 from"
else
    echo "ohm-netty.jar is not built: ohm-netty-app not run"
fi
echo "PASS: org.ohm:ohm${version:+ $version} installed with its pom, sources and javadoc, and used by coordinates"
