#!/usr/bin/env bash
# Runs Netty's own buffer tests, unmodified, against ohm's allocator: fetches Debian's netty source package
# (fetch-netty-tests.sh, cached in WORKDIR), compiles AbstractByteBufTest, AbstractByteBufAllocatorTest and
# ByteBufAllocatorTest with our subclasses (netty/tests/suite), and runs them with JUnit 4 (RunNettyTests)
# minus the tests the exclusions file lists.
#
#   run-netty-tests.sh WORKDIR JAVAC JAVA CLASSPATH EXCLUSIONS [JVM_OPTION...]
#
# CLASSPATH holds ohm.jar, ohm-netty.jar, netty-buffer and netty-common, junit4, hamcrest and our compiled test
# classes (RunNettyTests). Exits 77 (ctest: skipped) when the source package cannot be fetched (no network, no
# deb-src) -- or 1 when OHM_NETTY_TESTS_REQUIRED=1, as CI sets it, so a fetch failure can never pass for a
# run -- and 1 when a test fails.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
workdir=${1:?usage: run-netty-tests.sh WORKDIR JAVAC JAVA CLASSPATH EXCLUSIONS [JVM_OPTION...]}
javac=$2 java=$3 classpath=$4 exclusions=$5
shift 5

if ! tree=$("$here/fetch-netty-tests.sh" "$workdir/netty-src" | tail -1); then
    if [[ ${OHM_NETTY_TESTS_REQUIRED:-0} == 1 ]]; then
        echo "run-netty-tests.sh: could not fetch Debian's netty source package (OHM_NETTY_TESTS_REQUIRED=1)" >&2
        exit 1
    fi
    echo "run-netty-tests.sh: could not fetch Debian's netty source package; Netty's tests are skipped" >&2
    exit 77
fi
netty_tests=$tree/buffer/src/test/java/io/netty/buffer
classes=$workdir/suite-classes
sources=("$netty_tests/AbstractByteBufTest.java" "$netty_tests/AbstractByteBufAllocatorTest.java"
         "$netty_tests/ByteBufAllocatorTest.java" "$here"/suite/org/ohm/netty/suite/*.java)
# Compiled again only when a source or a jar of the classpath is newer than the last compilation.
IFS=: read -r -a jars <<< "$classpath"
stale=yes
if [[ -f $classes/.stamp ]] && [[ -z $(find "${sources[@]}" "${jars[@]}" -newer "$classes/.stamp" -print -quit) ]]; then
    stale=no
fi
if [[ $stale == yes ]]; then
    rm -rf "$classes"
    mkdir -p "$classes"
    # -nowarn: Netty's tests use deprecated API (order(), assertThat) on purpose.
    "$javac" --release 17 -encoding UTF-8 -nowarn -cp "$classpath" -d "$classes" "${sources[@]}"
    touch "$classes/.stamp"
fi

exec "$java" "$@" -cp "$classes:$classpath" org.ohm.netty.test.RunNettyTests "$exclusions" \
    org.ohm.netty.suite.BigEndianOhmDirectByteBufTest org.ohm.netty.suite.LittleEndianOhmDirectByteBufTest \
    org.ohm.netty.suite.OhmByteBufAllocatorTest
