#!/usr/bin/env bash
# Installs ohm's jars into a local Maven repository, so that a Maven or Gradle project depends on them by
# coordinates: org.ohm:ohm (ohm.jar, with libohm_jni.so for linux-x86_64 inside) and, when it is built,
# org.ohm:ohm-netty (ohm-netty.jar); each with its pom, -sources.jar and -javadoc.jar.
#   scripts/install-maven.sh [--build DIR] [--repo DIR] [--offline] [-- MVN-ARGS...]
#     --build DIR   the build tree holding jni/ohm.jar (default: build/ at the top of the source tree); build it
#                   first with scripts/run-tests, or cmake -S . -B build && cmake --build build
#     --repo DIR    the local repository (default: Maven's own, ~/.m2/repository)
#     --offline     no network: Maven's install plugin comes from Debian's /usr/share/maven-repo
#                   (scripts/deps.sh maven installs it), through scripts/maven-debian-settings.xml
# Needs mvn (Debian's maven). Paths are taken from the caller's directory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { sed -n '5,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2; exit 2; }
build="$(dirname "$here")/build"
mvn_args=(-B -Dstyle.color=never)
while (($#)); do
    case "$1" in
        --build) (($# >= 2)) || usage; build="$2"; shift 2 ;;
        --repo) (($# >= 2)) || usage; mvn_args+=("-Dmaven.repo.local=$(realpath -m "$2")"); shift 2 ;;
        --offline) mvn_args+=(-o -Daether.offline.protocols=file -s "$here/maven-debian-settings.xml"); shift ;;
        --) shift; mvn_args+=("$@"); break ;;
        *) usage ;;
    esac
done
command -v mvn >/dev/null || { echo "install-maven.sh: mvn not found (Debian package maven: scripts/deps.sh maven)" >&2; exit 1; }
jars="$build/jni"
[[ -f "$jars/ohm.jar" ]] || {
    echo "install-maven.sh: no $jars/ohm.jar; build it first (scripts/run-tests, or cmake --build $build)" >&2
    exit 1
}

for artifact in ohm ohm-netty; do
    if [[ ! -f "$jars/$artifact.jar" ]]; then
        echo "install-maven.sh: $artifact.jar is not built, not installed" >&2
        continue
    fi
    extras=()
    for kind in sources javadoc; do
        if [[ -f "$jars/$artifact-$kind.jar" ]]; then
            extras+=("-D$kind=$jars/$artifact-$kind.jar")
        else
            echo "install-maven.sh: $artifact-$kind.jar is not built, installed without it" >&2
        fi
    done
    mvn "${mvn_args[@]}" install:install-file -Dfile="$jars/$artifact.jar" -DpomFile="$jars/$artifact.pom" "${extras[@]}"
done
