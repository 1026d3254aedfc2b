"""The rendered overlays are valid and agree with the code (tools/validate_deploy.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from hivemesh.edge.app import DOOR_PATHS, READINESS_PATH
from hivemesh.mesh.config import SERVICES
from hivemesh.mesh.contracts import CONTRACTS, retryable_methods
from hivemesh.mesh.metrics import Metrics
from tools.validate_deploy import (
    A2A_GRPC_PATH,
    ROOT,
    Doc,
    Layout,
    all_callers,
    callers_in_code,
    check_authorization,
    check_connection_pools,
    check_doors,
    check_grace_periods,
    check_istio_schemas,
    check_kubernetes_schemas,
    check_probes,
    check_retries,
    check_service_ports,
    ingress_route,
    of_kind,
    settings_from,
    validate,
)


def test_every_overlay_passes_the_validator(layout: Layout) -> None:
    results = validate(layout)
    assert set(results) == {"dev", "prod"}
    assert results == {"dev": [], "prod": []}


def test_kubernetes_objects_match_the_strict_schemas(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_kubernetes_schemas(rendered)] == []


def test_istio_objects_match_the_strict_schemas(rendered: list[Doc], layout: Layout) -> None:
    kinds = {d["kind"] for d in rendered if "istio.io" in d["apiVersion"]}
    assert {"PeerAuthentication", "DestinationRule", "VirtualService", "AuthorizationPolicy"} <= kinds
    assert {"RequestAuthentication", "Gateway", "Telemetry", "Sidecar", "ServiceEntry"} <= kinds
    assert [str(p) for p in check_istio_schemas(rendered, layout.schemas)] == []


def test_service_ports_are_grpc_named_with_app_protocol(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_service_ports(rendered)] == []
    for service in SERVICES:
        (svc,) = [s for s in of_kind(rendered, "Service") if s["metadata"]["name"] == service]
        grpc = [p for p in svc["spec"]["ports"] if p["name"] == "grpc"]
        assert grpc == [
            {"name": "grpc", "port": grpc[0]["port"], "targetPort": "grpc", "appProtocol": "grpc"}
        ]


def test_probes_target_registered_health_names(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_probes(rendered)] == []


def test_authorization_admits_exactly_the_callers(rendered: list[Doc], layout: Layout) -> None:
    assert [str(p) for p in check_authorization(rendered, all_callers(layout.services))] == []


def test_retried_methods_are_exactly_the_idempotent_ones(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_retries(rendered, settings_from(rendered))] == []
    retried = set()
    # The gRPC services' routes (the edge's doors are HTTP paths, checked by check_doors).
    for vs in [v for v in of_kind(rendered, "VirtualService") if v["metadata"]["name"] in SERVICES]:
        for route in vs["spec"]["http"]:
            if route.get("retries", {}).get("attempts", 0) > 0:
                retried |= {m["uri"]["exact"] for m in route["match"]}
    declared = {f"/{c.full_name}/{m}" for c in CONTRACTS.values() for m in retryable_methods(c.descriptor)}
    assert retried == declared


def test_connection_pools_equal_server_limits(rendered: list[Doc]) -> None:
    settings = settings_from(rendered)
    assert settings.in_mesh
    assert settings.server.host == "0.0.0.0"
    assert [str(p) for p in check_connection_pools(rendered, settings)] == []


def test_grace_periods_are_ordered(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_grace_periods(rendered, settings_from(rendered))] == []


def test_addresses_point_at_the_services(rendered: list[Doc]) -> None:
    settings = settings_from(rendered)
    services = {s["metadata"]["name"]: s for s in of_kind(rendered, "Service")}
    for name in SERVICES:
        host, port = settings.addresses[name].rsplit(":", 1)
        namespace = services[name]["metadata"]["namespace"]
        assert host == f"{name}.{namespace}.svc.cluster.local"
        assert int(port) == settings.ports[name]
        assert [p["port"] for p in services[name]["spec"]["ports"] if p["name"] == "grpc"] == [int(port)]


def test_caller_scan_finds_channel_calls(tmp_path: Path) -> None:
    (tmp_path / "planner").mkdir()
    (tmp_path / "planner" / "clients.py").write_text(
        'a = self._channels.channel("memory")\n'
        'b = channels.channel( "tool" )\n'
        'c = channels.channel("planner")\n'
    )
    found = callers_in_code(tmp_path)
    assert found["memory"] == {"planner"}
    assert found["tool"] == {"planner"}
    assert found["planner"] == set()


def test_telemetry_provider_is_configured_with_grpc_status() -> None:
    (operator,) = yaml.safe_load_all((ROOT / "istio" / "install" / "istio-mesh.yaml").read_text())
    providers = {p["name"]: p for p in operator["spec"]["meshConfig"]["extensionProviders"]}
    telemetry = yaml.safe_load((ROOT / "istio" / "telemetry.yaml").read_text())
    for logging in telemetry["spec"]["accessLogging"]:
        for provider in logging["providers"]:
            labels = providers[provider["name"]]["envoyFileAccessLog"]["logFormat"]["labels"]
            assert "%GRPC_STATUS" in labels["grpc_status"]


def _exported() -> set[str]:
    """The series names a process's registry exports (read from the registry, not the source)."""
    exported: set[str] = set()
    registry: CollectorRegistry = Metrics().registry
    for family in registry.collect():
        exported |= {sample.name for sample in family.samples}
        exported |= {f"{family.name}{suffix}" for suffix in ("", "_bucket", "_total", "_sum", "_count")}
    return exported


_QUERIED = re.compile(r"\b(?:hivemesh|grpc_server|gen_ai_client)_[a-z_]+")


def test_dashboard_queries_metrics_the_services_export() -> None:
    dashboard = json.loads((ROOT / "k8s" / "base" / "monitoring" / "dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for name in _QUERIED.findall(target["expr"])
    }
    assert {"grpc_server_handled_total", "grpc_server_handling_seconds_bucket"} <= queried
    assert {"hivemesh_queue_depth", "hivemesh_dead_letters"} <= queried
    # The task, tool and token panels.
    assert {"hivemesh_tasks_total", "hivemesh_task_duration_seconds_bucket"} <= queried
    assert {"hivemesh_tool_calls_total", "hivemesh_tool_duration_seconds_bucket"} <= queried
    assert {"gen_ai_client_token_usage_sum", "gen_ai_client_operation_duration_seconds_bucket"} <= queried
    assert queried <= _exported()


def test_alerts_cover_errors_latency_queue_and_dead_letters() -> None:
    (rule,) = yaml.safe_load_all((ROOT / "k8s" / "base" / "monitoring" / "alerts.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    alerts = {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}
    assert "grpc_server_handled_total" in alerts["HivemeshErrorRateHigh"]
    assert "grpc_server_handling_seconds_bucket" in alerts["HivemeshLatencyP99High"]
    assert "hivemesh_queue_depth" in alerts["HivemeshQueueBacklog"]
    assert "hivemesh_dead_letters" in alerts["HivemeshDeadLetters"]
    queried = {name for expr in alerts.values() for name in _QUERIED.findall(expr)}
    assert queried <= _exported()


def test_containerfile_runs_one_unprivileged_exec_form_process() -> None:
    text = (ROOT / "Containerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) == 2
    assert re.search(r"^USER 10001:10001$", text, re.MULTILINE)
    entrypoint = re.search(r"^ENTRYPOINT (.+)$", text, re.MULTILINE)
    assert entrypoint is not None
    assert json.loads(entrypoint.group(1))[-1].endswith("hivemesh")
    assert json.loads(re.search(r"^CMD (.+)$", text, re.MULTILINE).group(1))[0] == "serve"  # type: ignore[union-attr]


def test_the_http_doors_are_deployed_routed_and_admitted(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_doors(rendered, settings_from(rendered))] == []
    (deployment,) = [d for d in of_kind(rendered, "Deployment") if d["metadata"]["name"] == "edge"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["serve", "edge"]
    assert container["readinessProbe"]["httpGet"] == {"path": READINESS_PATH, "port": "http"}
    assert {p["metadata"]["name"] for p in of_kind(rendered, "PodDisruptionBudget")} >= {"edge"}
    # At the ingress every door's path reaches the edge, every gateway method the gateway.
    for path in (*DOOR_PATHS, A2A_GRPC_PATH):
        taken = [
            vs["metadata"]["name"] for vs in of_kind(rendered, "VirtualService") if ingress_route(vs, path)
        ]
        assert taken == ["edge"], path
    (gateway,) = [vs for vs in of_kind(rendered, "VirtualService") if vs["metadata"]["name"] == "gateway"]
    assert ingress_route(gateway, "/hivemesh.gateway.v1.GatewayService/SubmitTask") is not None


def test_the_edge_is_a_documented_caller_of_the_gateway_only(rendered: list[Doc], layout: Layout) -> None:
    assert [str(p) for p in check_authorization(rendered, all_callers(layout.services))] == []
    admitted = {
        policy["metadata"]["name"]
        for policy in of_kind(rendered, "AuthorizationPolicy")
        for rule in policy["spec"].get("rules", [])
        for source in rule.get("from", [])
        if "cluster.local/ns/hivemesh/sa/edge" in source["source"].get("principals", [])
    }
    assert admitted == {"gateway"}
