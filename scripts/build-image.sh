#!/usr/bin/env bash
# Build the hivemesh image and check that every service starts in it and answers gRPC Health.
#
#   scripts/build-image.sh                 build + check (podman, else buildah + podman to run)
#   HIVEMESH_IMAGE=hivemesh:dev            image tag to build (default hivemesh:dev)
#   HIVEMESH_PYTHON_IMAGE=<ref>            base image; default: docker.io/library/python:3.11-slim-bookworm
#                                          when a registry is reachable, otherwise a base built here
#                                          from a debootstrap root filesystem (Debian bookworm, python3.11)
#   HIVEMESH_DEBIAN_MIRROR=<url>           mirror for debootstrap (default http://deb.debian.org/debian)
#   HIVEMESH_BUILD_CA_BUNDLE=<file>         CA bundle pip trusts in the build (default: $PIP_CERT or
#                                          $SSL_CERT_FILE when set), passed as a build secret
#   HIVEMESH_BUILD_ISOLATION=chroot        build RUN steps without an OCI runtime (sandboxes without cgroups)
#
# CI runs this only when HIVEMESH_IMAGE_CHECK=1: it is slow and (for debootstrap) needs root.
# Each service runs with --read-only, a tmpfs on /tmp, uid 10001 and no network but loopback;
# Health is asked from inside the container, then SIGTERM must stop it cleanly within the grace period.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${HIVEMESH_IMAGE:-hivemesh:dev}
DEFAULT_BASE=docker.io/library/python:3.11-slim-bookworm
LOCAL_BASE=localhost/hivemesh-python-base:bookworm
MIRROR=${HIVEMESH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SERVICES=(gateway planner language memory tool)
declare -A PORTS=([gateway]=50051 [planner]=50052 [language]=50053 [memory]=50054 [tool]=50055)

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

command -v podman >/dev/null || die "podman is needed to run the image (apt-get install podman buildah)"

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
  log "no registry reachable: building $LOCAL_BASE from a debootstrap root filesystem ($MIRROR)"
  command -v debootstrap >/dev/null || die "debootstrap is needed to build a base image offline"
  [[ $(id -u) == 0 ]] || die "debootstrap needs root"
  local rootfs
  rootfs=$(mktemp -d /tmp/hivemesh-rootfs.XXXXXX)
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$MIRROR" >&2
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | podman import \
    --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' - "$LOCAL_BASE" >&2
  rm -rf "$rootfs"
  echo "$LOCAL_BASE"
}

BASE=$(base_image)
log "building $IMAGE on $BASE"
# --network=host: the build stage installs dependencies from PyPI.
ISOLATION=${HIVEMESH_BUILD_ISOLATION:-oci}
CA_BUNDLE=${HIVEMESH_BUILD_CA_BUNDLE:-${PIP_CERT:-${SSL_CERT_FILE:-}}}
SECRET=()
[[ -n $CA_BUNDLE && -s $CA_BUNDLE ]] && SECRET=(--secret "id=ca-bundle,src=$CA_BUNDLE")
if command -v buildah >/dev/null && [[ ${HIVEMESH_BUILDER:-podman} == buildah ]]; then
  buildah bud --isolation "$ISOLATION" --network=host --layers "${SECRET[@]}" -f "$ROOT/Containerfile" --build-arg "PYTHON_IMAGE=$BASE" -t "$IMAGE" "$ROOT"
else
  podman build --isolation "$ISOLATION" --network=host "${SECRET[@]}" -f "$ROOT/Containerfile" --build-arg "PYTHON_IMAGE=$BASE" -t "$IMAGE" "$ROOT"
fi

user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
[[ $user == 10001:10001 ]] || die "image user is '$user', expected 10001:10001"

HEALTH_CHECK='
import sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
port, names = sys.argv[1], sys.argv[2:]
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in names:
        status = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=2).status
        if status != health_pb2.HealthCheckResponse.SERVING:
            sys.exit(f"{name!r}: {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")
        print(f"health {name!r}: SERVING")
'

failed=()
for service in "${SERVICES[@]}"; do
  name="hivemesh-check-$service-$$"
  port=${PORTS[$service]}
  log "$service: starting (read-only root, tmpfs /tmp, no network)"
  podman run -d --name "$name" --read-only --tmpfs /tmp:rw,size=64m --network=none \
    --cap-drop=ALL --security-opt=no-new-privileges \
    -e HIVEMESH_GRACE_PERIOD=5s -e HIVEMESH_SHUTDOWN_DELAY=1s "$IMAGE" serve "$service" >/dev/null
  ok=0
  for _ in $(seq 1 30); do
    if podman exec "$name" python3 -c "$HEALTH_CHECK" "$port" "" liveness readiness >/dev/null 2>&1; then
      ok=1; break
    fi
    [[ $(podman inspect --format '{{.State.Running}}' "$name") == true ]] || break
    sleep 1
  done
  if [[ $ok == 1 ]]; then
    podman exec "$name" python3 -c "$HEALTH_CHECK" "$port" "" liveness readiness >&2
    started=$(date +%s)
    podman stop --time 20 "$name" >/dev/null
    code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
    took=$(( $(date +%s) - started ))
    if [[ $code != 0 ]]; then
      log "$service: exited $code after SIGTERM (expected 0)"; failed+=("$service")
    else
      log "$service: OK (answered Health; stopped cleanly on SIGTERM in ${took}s)"
    fi
  else
    log "$service: did not answer Health; its log:"
    podman logs "$name" 2>&1 | tail -n 30 >&2 || true
    failed+=("$service")
  fi
  podman rm -f "$name" >/dev/null 2>&1 || true
done

if (( ${#failed[@]} )); then
  die "services that did not pass: ${failed[*]}"
fi
log "all services start in $IMAGE and answer Health"
