"""The container image, run for real with podman: only with HIVEMESH_IMAGE_CHECK=1 (it builds the
image with scripts/build-image.sh, needs podman, root and a few minutes).

Every service starts alone from the image as Kubernetes runs it (read-only root, a tmpfs on /tmp,
uid 10001, no capabilities, no network but loopback), answers Health from inside its container and
exits 0 on SIGTERM within its grace period. Then the five run together in one pod (one network
namespace, as in a Kubernetes pod, with no way out of it) sharing a data volume, with the mesh keys
mounted as the Secret is, and a request in words goes through all five.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from hivemesh.mesh.config import DEFAULT_PORTS, SERVICES
from hivemesh.mesh.contracts import CONTRACTS
from hivemesh.mesh.credentials import JWKS_FILE, SIGNING_KEY_FILE, ensure_keys
from tools.validate_deploy import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("HIVEMESH_IMAGE_CHECK") != "1",
        reason="builds and runs the container image: set HIVEMESH_IMAGE_CHECK=1 (needs podman and root)",
    ),
]

IMAGE = os.environ.get("HIVEMESH_IMAGE", "localhost/hivemesh:dev")
UID = 10001
GRACE_S = 5.0
SHUTDOWN_DELAY_S = 1.0
# What SIGTERM may take: the shutdown delay, the drain, and the interpreter's exit.
STOP_WITHIN_S = SHUTDOWN_DELAY_S + GRACE_S + 5.0
# Kubernetes' restricted pod security, as k8s/ sets it.
LOCKED_DOWN = (
    "--read-only",
    "--tmpfs",
    "/tmp:rw,size=64m,mode=1777",
    "--user",
    f"{UID}:{UID}",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)
SETTINGS = {
    "HIVEMESH_GRACE_PERIOD": f"{GRACE_S}s",
    "HIVEMESH_SHUTDOWN_DELAY": f"{SHUTDOWN_DELAY_S}s",
    "HIVEMESH_METRICS_PORT": "off",
    "HIVEMESH_LOG_JSON": "false",
}

# Run inside a container by its own interpreter: asks Health for each name given and prints the
# statuses and the response headers as JSON.
HEALTH_CHECK = """
import json, sys, grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
port, names = sys.argv[1], sys.argv[2:]
with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    statuses, headers = {}, {}
    for name in names:
        answer, call = stub.Check.with_call(health_pb2.HealthCheckRequest(service=name), timeout=2)
        statuses[name] = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
        headers.update(call.initial_metadata())
print(json.dumps({"statuses": statuses, "headers": headers}))
"""
HEALTH_NAMES = ("", "liveness", "readiness")


# podman's settings, the same as scripts/build-image.sh's (runc, explicit ulimits).
PODMAN_ENV = {
    **os.environ,
    "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(ROOT / "scripts" / "containers.conf")),
}


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("podman")
    if executable is None:
        pytest.fail("podman is not installed (apt-get install podman runc)")
    result = subprocess.run(
        [executable, *args], env=PODMAN_ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"podman {' '.join(args[:3])}... exited {result.returncode}: {result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def image() -> str:
    """The image, built from this checkout (podman's layer cache makes an unchanged rebuild quick)."""
    if os.geteuid() != 0:
        pytest.fail(
            "the image check runs rootful podman (and debootstrap when no base image can be pulled): "
            "run it as root"
        )
    built = subprocess.run(
        [str(ROOT / "scripts" / "build-image.sh")],
        env={**PODMAN_ENV, "HIVEMESH_IMAGE": IMAGE},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    user = podman("image", "inspect", "--format", "{{.Config.User}}", IMAGE).stdout.strip()
    assert user == f"{UID}:{UID}"
    return IMAGE


def env_flags(env: dict[str, str]) -> list[str]:
    return [flag for name, value in env.items() for flag in ("--env", f"{name}={value}")]


def health_inside(container: str, service: str, *, timeout_s: float = 60) -> dict[str, dict[str, str]]:
    """Health as seen from inside ``container``, once every name answers SERVING."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        running = podman("inspect", "--format", "{{.State.Running}}", container).stdout.strip()
        if running != "true":
            pytest.fail(f"{container} stopped: {podman('logs', container, check=False).stderr[-3000:]}")
        asked = podman(
            "exec",
            container,
            "python3",
            "-c",
            HEALTH_CHECK,
            str(DEFAULT_PORTS[service]),
            *HEALTH_NAMES,
            CONTRACTS[service].full_name,
            check=False,
        )
        if asked.returncode == 0:
            answer: dict[str, dict[str, str]] = json.loads(asked.stdout)
            if set(answer["statuses"].values()) == {"SERVING"}:
                return answer
        last = asked.stderr[-1000:] or asked.stdout
        time.sleep(0.5)
    pytest.fail(f"{service} did not answer SERVING within {timeout_s}s: {last}")


def stop_with_sigterm(containers: Sequence[str]) -> dict[str, tuple[int, float]]:
    """SIGTERM to every container at once; each one's exit code and the seconds it took."""
    started = time.monotonic()
    for container in containers:
        podman("kill", "--signal", "TERM", container)
    stopped = {}
    for container in containers:
        code = podman("wait", container, timeout=STOP_WITHIN_S + 30).stdout.strip()
        # Waited one after the other: an upper bound of each container's own time.
        stopped[container] = (int(code), time.monotonic() - started)
    return stopped


@pytest.mark.timeout(1800)
@pytest.mark.parametrize("service", SERVICES)
def test_each_service_answers_health_inside_and_exits_0_on_sigterm(image: str, service: str) -> None:
    name = f"hivemesh-check-{service}-{uuid.uuid4().hex[:8]}"
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "none",
        *LOCKED_DOWN,
        *env_flags(SETTINGS),
        image,
        "serve",
        service,
    )
    try:
        answer = health_inside(name, service)
        if service == "language":
            # The language replica says what it computes on in every Health answer.
            assert answer["headers"]["hivemesh-device"] == "cpu"
            assert int(answer["headers"]["hivemesh-batch-capacity"]) > 0
            assert "lexical" in answer["headers"]["hivemesh-models"].split(",")
        else:
            assert "hivemesh-device" not in answer["headers"]
        code, took = stop_with_sigterm([name])[name]
        assert code == 0, podman("logs", name, check=False).stderr[-3000:]
        assert took < STOP_WITHIN_S
    finally:
        podman("rm", "--force", name, check=False)


@dataclass
class Pod:
    name: str
    containers: dict[str, str]
    data: Path


@pytest.fixture
def pod(image: str, tmp_path: Path) -> Iterator[Pod]:
    """The five services in one pod: one network namespace with loopback only, a shared data
    directory (the task queue and event log in SQLite, which gateway and planner share), and the
    mesh keys mounted read-only as Kubernetes mounts the Secret (the signing key for the gateway alone)."""
    data = tmp_path / "data"
    (data / "traces").mkdir(parents=True)
    keys = ensure_keys(tmp_path / "keys").jwks.parent
    for path in (data, data / "traces", keys, keys / JWKS_FILE, keys / SIGNING_KEY_FILE):
        os.chown(path, UID, UID)
    tag = uuid.uuid4().hex[:8]
    name = f"hivemesh-pod-{tag}"
    podman("pod", "create", "--name", name, "--network", "none")
    containers = {service: f"{name}-{service}" for service in SERVICES}
    try:
        for service, container in containers.items():
            mounts = [
                "--volume",
                f"{data}:/data",
                "--volume",
                f"{keys / JWKS_FILE}:/etc/hivemesh/jwks.json:ro",
            ]
            env = {
                **SETTINGS,
                "HIVEMESH_DATA_DIR": "/data",
                "HIVEMESH_TRACE_FILE": f"/data/traces/{service}.jsonl",
                "HIVEMESH_MESH_JWKS": "/etc/hivemesh/jwks.json",
                # One process per service: every call between them goes through gRPC on loopback.
                "HIVEMESH_LOCAL_CALLS": "false",
            }
            if service == "gateway":
                mounts += ["--volume", f"{keys / SIGNING_KEY_FILE}:/etc/hivemesh/signing-key.pem:ro"]
                env |= {"HIVEMESH_MESH_SIGNING_KEY": "/etc/hivemesh/signing-key.pem", "HIVEMESH_AUTH": "none"}
            podman(
                "run",
                "--detach",
                "--pod",
                name,
                "--name",
                container,
                *LOCKED_DOWN,
                *mounts,
                *env_flags(env),
                image,
                "serve",
                service,
            )
        yield Pod(name, containers, data)
    finally:
        podman("pod", "rm", "--force", name, check=False, timeout=120)


@pytest.mark.timeout(1800)
def test_a_request_goes_through_the_five_services_in_one_pod(pod: Pod) -> None:
    for service, container in pod.containers.items():
        health_inside(container, service)
    asked = podman(
        "run",
        "--rm",
        "--pod",
        pod.name,
        *LOCKED_DOWN,
        IMAGE,
        "run",
        "what is 12 * (3 + 4)?",
        timeout=120,
    )
    assert asked.stdout.strip() == "84", asked.stderr
    task_id = asked.stderr.split("task ", 1)[1].split()[0]

    # Each container wrote its own spans: the task's trace reaches all five.
    def services_in_trace() -> set[str]:
        spans = [
            json.loads(line)
            for path in (pod.data / "traces").glob("*.jsonl")
            for line in path.read_text().splitlines()
            if line.strip()
        ]
        ids = {s["trace_id"] for s in spans if s["attributes"].get("hivemesh.task.id") == task_id}
        return {s["service"] for s in spans if s["trace_id"] in ids}

    deadline = time.monotonic() + 15  # spans are exported in batches
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < len(SERVICES):
        seen = services_in_trace()
        time.sleep(0.5)
    assert seen == {f"hivemesh-{service}" for service in SERVICES}

    stopped = stop_with_sigterm(list(pod.containers.values()))
    for container, (code, took) in stopped.items():
        print(f"{container}: exit {code} within {took:.1f}s of SIGTERM")  # shown with pytest -rP
        assert code == 0, f"{container}: {podman('logs', container, check=False).stderr[-3000:]}"
        assert took < STOP_WITHIN_S, f"{container} took {took:.1f}s to stop"
