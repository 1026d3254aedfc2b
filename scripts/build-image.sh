#!/usr/bin/env bash
# Build the hivemesh image with podman. `HIVEMESH_IMAGE_CHECK=1 pytest tests/deploy/test_image.py`
# runs this, then starts every service of the image and one task through all five.
#
#   scripts/build-image.sh
#
#   HIVEMESH_IMAGE=<tag>              image to build (default localhost/hivemesh:dev)
#   HIVEMESH_IMAGE_EXTRAS=<extras>    the package's extras installed (default distributed,edge; the GPU
#                                     pool's image adds minilm: torch with CUDA and the MiniLM encoder)
#   HIVEMESH_PYTHON_IMAGE=<ref>       base image of both stages (Debian-based, python3.11 + venv).
#                                     Unset: docker.io/library/python:3.11-slim-bookworm when it can be
#                                     pulled, else localhost/hivemesh-python-base:bookworm, built here
#                                     once from a Debian root filesystem (debootstrap, needs root)
#   HIVEMESH_DEBIAN_MIRROR=<url>      debootstrap's mirror (default http://deb.debian.org/debian)
#   CONTAINERS_CONF=<file>            podman's settings (default scripts/containers.conf: runc, and
#                                     explicit ulimits within a restricted host's hard limits)
#   HIVEMESH_BUILD_CA_BUNDLE=<file>   CA bundle pip trusts in the build (default $PIP_CERT, $SSL_CERT_FILE,
#                                     else the host's /etc/ssl/certs/ca-certificates.crt), passed as a build
#                                     secret: it is never stored in a layer
#
# Needs podman and Debian's runc (`apt-get install podman runc`); see scripts/containers.conf for why.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${HIVEMESH_IMAGE:-localhost/hivemesh:dev}
DEFAULT_BASE=docker.io/library/python:3.11-slim-bookworm
LOCAL_BASE=localhost/hivemesh-python-base:bookworm
MIRROR=${HIVEMESH_DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

command -v podman >/dev/null || die "podman is needed (apt-get install podman runc)"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$ROOT/scripts/containers.conf}

base_image() {
  if [[ -n ${HIVEMESH_PYTHON_IMAGE:-} ]]; then
    echo "$HIVEMESH_PYTHON_IMAGE"; return
  fi
  if podman image exists "$DEFAULT_BASE" || podman pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    echo "$DEFAULT_BASE"; return
  fi
  if podman image exists "$LOCAL_BASE"; then
    echo "$LOCAL_BASE"; return
  fi
  # No container registry reachable: Debian bookworm's own python3 is 3.11, so a minimal Debian
  # root filesystem with python3, venv and the CA certificates is an equivalent base, made from
  # the same Debian packages the official image's OS layer comes from.
  log "$DEFAULT_BASE cannot be pulled: building $LOCAL_BASE from a Debian root filesystem ($MIRROR)"
  command -v debootstrap >/dev/null || die "debootstrap is needed to build a base image (apt-get install debootstrap)"
  [[ $(id -u) == 0 ]] || die "debootstrap needs root"
  local rootfs
  rootfs=$(mktemp -d /tmp/hivemesh-rootfs.XXXXXX)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >&2
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
  tar -C "$rootfs" --numeric-owner -c . | podman import \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$LOCAL_BASE" >&2
  rm -rf "$rootfs"
  echo "$LOCAL_BASE"
}

BASE=$(base_image)
CA_BUNDLE=${HIVEMESH_BUILD_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
SECRET=()
[[ -s $CA_BUNDLE ]] && SECRET=(--secret "id=ca-bundle,src=$CA_BUNDLE")
log "building $IMAGE on $BASE (podman settings: $CONTAINERS_CONF)"
# --network=host: the build stage installs the dependencies from PyPI.
podman build --network=host "${SECRET[@]}" \
  --build-arg "PYTHON_IMAGE=$BASE" --build-arg "HIVEMESH_EXTRAS=${HIVEMESH_IMAGE_EXTRAS:-distributed,edge}" -f "$ROOT/Containerfile" -t "$IMAGE" "$ROOT"
log "built $IMAGE"
