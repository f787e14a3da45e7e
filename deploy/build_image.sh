#!/usr/bin/env bash
# Build the rnncast image and run it: `rnncast demo` and one `rnncast schedule-run` inside the
# container as the non-root user. Prints the image size and the wall time of each step.
#
#   deploy/build_image.sh                       # base: BASE_IMAGE if pullable, else Debian
#   BASE_IMAGE=python:3.11-slim deploy/build_image.sh
#
# Needs: docker (a running dockerd), python3.11 with pip on the host (builds the wheelhouse);
# debootstrap and root when no registry is reachable and the base is made from Debian packages.
# Environment: BASE_IMAGE, DEBIAN_MIRROR (default: the first bookworm URI apt uses here),
# ROOTFS (default /var/tmp/rnncast-rootfs), HOST_PYTHON (default python3.11),
# WORK (default: a new folder under /var/tmp; the demo's output is written there).
set -euo pipefail

cd "$(dirname "$0")/.."
HOST_PYTHON=${HOST_PYTHON:-python3.11}
VERSION=$("$HOST_PYTHON" -c 'import re,pathlib; print(re.search(r"__version__ = \"(.+?)\"", pathlib.Path("rnncast/__init__.py").read_text()).group(1))')
TAG="rnncast:${VERSION}"
ROOTFS=${ROOTFS:-/var/tmp/rnncast-rootfs}
WORK=${WORK:-$(mktemp -d /var/tmp/rnncast-image-run.XXXXXX)}
DEBIAN_BASE=rnncast-base:bookworm

now() { date +%s.%N; }
since() { "$HOST_PYTHON" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

# (a) The base. A registry image if it can be pulled, else Debian bookworm (whose python3 is
# 3.11) from the Debian mirror apt already reaches, imported as a one-layer image.
base_from_debian() {
    if ! docker image inspect "$DEBIAN_BASE" > /dev/null 2>&1; then
        local mirror=${DEBIAN_MIRROR:-$(grep -rhoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list* | head -n 1)}
        if [ ! -x "$ROOTFS/usr/bin/python3.11" ]; then
            rm -rf "$ROOTFS"
            debootstrap --variant=minbase --include=python3.11,python3-venv,ca-certificates \
                bookworm "$ROOTFS" "${mirror:-http://deb.debian.org/debian}"
        fi
        # apt's package cache is not needed at run time.
        rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
        tar -C "$ROOTFS" -c . | docker import - "$DEBIAN_BASE"
    fi
    BASE_IMAGE=$DEBIAN_BASE
}
t=$(now)
if [ -n "${BASE_IMAGE:-}" ] && { docker image inspect "$BASE_IMAGE" > /dev/null 2>&1 \
    || docker pull "$BASE_IMAGE" > /dev/null 2>&1; }; then
    echo "base: $BASE_IMAGE (registry)"
else
    [ -n "${BASE_IMAGE:-}" ] && echo "base: $BASE_IMAGE cannot be pulled; building one from Debian"
    base_from_debian
    echo "base: $BASE_IMAGE (debootstrap, bookworm)"
fi
echo "time base_s=$(since "$t")"

# (b) The wheelhouse: rnncast and every dependency as wheels for CPython 3.11 on x86_64 Linux,
# built on the host (also Python 3.11) so that `docker build` needs no network. Wheels already
# in dist/wheels are reused; rnncast's own wheel is rebuilt so it matches the checkout.
t=$(now)
rm -f dist/wheels/rnncast-*.whl
"$HOST_PYTHON" -m pip wheel --quiet --find-links dist/wheels . -w dist/wheels
echo "time wheels_s=$(since "$t") wheelhouse=$(du -sh dist/wheels | cut -f1)"

# (c) The image.
t=$(now)
DOCKER_BUILDKIT=0 docker build --quiet -f deploy/Dockerfile \
    --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$TAG" . > /dev/null
echo "time build_s=$(since "$t")"
SIZE=$(docker image inspect -f '{{.Size}}' "$TAG")
echo "image $TAG size_bytes=$SIZE size_mb=$((SIZE / 1000000))"

# (d) Run it as the image's non-root user (USER 10001), never overridden here.
uid=$(docker run --rm --entrypoint id "$TAG" -u)
echo "container uid=$uid"
[ "$uid" != 0 ] || { echo "the container runs as root" >&2; exit 1; }

# The demo writes to a mounted folder the container's user may write to.
mkdir -p "$WORK/out"
chmod 0777 "$WORK/out"
t=$(now)
docker run --rm -v "$WORK/out:/out" "$TAG" demo --output /out/demo > "$WORK/demo.log" 2>&1 \
    || { tail -n 30 "$WORK/demo.log" >&2; exit 1; }
echo "time demo_s=$(since "$t")"

# One scheduled period on the demo's export and the data embedded in the package.
DATA=$(docker run --rm --entrypoint python "$TAG" \
    -c 'import rnncast.pipeline as p; print(p.embedded_data_path())')
t=$(now)
docker run --rm -v "$WORK/out:/out" "$TAG" schedule-run --model /out/demo/model/export \
    --input "$DATA" --root /out/scheduled --run-date 2016-01-01 > "$WORK/schedule.log" 2>&1 \
    || { tail -n 30 "$WORK/schedule.log" >&2; exit 1; }
echo "time schedule_run_s=$(since "$t")"
echo "schedule-run LATEST=$(cat "$WORK/out/scheduled/LATEST")"
echo "ok: $TAG ($WORK)"
