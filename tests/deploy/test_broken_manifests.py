"""A broken copy of the manifests fails with a message that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.validate_deploy import Layout, main, validate


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _problems(layout: Layout) -> list[str]:
    results = validate(layout)
    return [str(p) for problems in results.values() for p in problems]


def test_typo_in_an_istio_field(broken: Layout) -> None:
    _edit(broken.root / "istio/services/tool.yaml", "consecutiveGatewayErrors:", "consecutiveGatewayError:")
    problems = _problems(broken)
    assert problems
    assert all("DestinationRule/tool" in p for p in problems)
    assert any("'consecutiveGatewayError' was unexpected" in p for p in problems)


def test_wrong_type_in_an_istio_field(broken: Layout) -> None:
    _edit(broken.root / "istio/services/language.yaml", "baseEjectionTime: 30s", "baseEjectionTime: 30")
    assert any("DestinationRule/language" in p and "baseEjectionTime" in p for p in _problems(broken))


def test_grpc_port_without_the_grpc_name(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/services/memory.yaml",
        "    - name: grpc\n      port: 50054",
        "    - name: rpc\n      port: 50054",
    )
    problems = _problems(broken)
    assert any("Service/memory" in p and "named 'rpc'" in p and "appProtocol: grpc" in p for p in problems)


def test_grpc_port_without_app_protocol(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/services/planner.yaml", "      appProtocol: grpc\n", "")
    assert any("Service/planner" in p and "appProtocol None" in p for p in _problems(broken))


def test_retry_on_a_side_effecting_method(broken: Layout) -> None:
    _edit(
        broken.root / "istio/services/tool.yaml",
        "            exact: /hivemesh.tool.v1.ToolService/ListTools\n",
        "            exact: /hivemesh.tool.v1.ToolService/ListTools\n"
        "        - uri:\n            exact: /hivemesh.tool.v1.ToolService/InvokeTool\n",
    )
    problems = _problems(broken)
    assert any(
        "VirtualService/tool route 'idempotent'" in p
        and "retries /hivemesh.tool.v1.ToolService/InvokeTool" in p
        and "does not declare it IDEMPOTENT" in p
        for p in problems
    )


def test_missing_retries_block_means_istio_default_retries(broken: Layout) -> None:
    path = broken.root / "istio/services/memory.yaml"
    text = path.read_text()
    head, tail = text.split("    - name: default\n")
    path.write_text(
        head + "    - name: default\n" + tail.replace("      retries:\n        attempts: 0\n", "")
    )
    assert any(
        "retries /hivemesh.memory.v1.MemoryService/PutRecord (no retries block" in p
        for p in _problems(broken)
    )


def test_idempotent_method_not_retried(broken: Layout) -> None:
    _edit(broken.root / "istio/services/planner.yaml", "        attempts: 3\n", "        attempts: 0\n")
    assert any("does not retry /hivemesh.planner.v1.PlannerService/PlanTask" in p for p in _problems(broken))


def test_principal_of_an_unknown_service_account(broken: Layout) -> None:
    _edit(broken.root / "istio/authorization.yaml", "ns/hivemesh/sa/tool\n", "ns/hivemesh/sa/tools\n")
    problems = _problems(broken)
    assert any("ServiceAccount 'tools'" in p and "do not define" in p for p in problems)
    assert any("tool calls memory" in p and "no ALLOW rule" in p for p in problems)


def test_a_caller_the_code_has_must_be_allowed(broken: Layout, tmp_path: Path) -> None:
    services = tmp_path / "services"
    (services / "language").mkdir(parents=True)
    (services / "language" / "clients.py").write_text('channel = self._channels.channel("tool")\n')
    layout = Layout(root=broken.root, services=services, schemas=broken.schemas)
    problems = _problems(layout)
    assert any("language calls tool (the code calls it)" in p for p in problems)
    assert any("NetworkPolicy for tool" in p and "language calls tool" in p for p in problems)


def test_a_caller_that_is_not_one(broken: Layout) -> None:
    _edit(
        broken.root / "istio/authorization.yaml",
        "              - cluster.local/ns/hivemesh/sa/planner\n",
        "              - cluster.local/ns/hivemesh/sa/planner\n"
        "              - cluster.local/ns/hivemesh/sa/gateway\n",
    )
    assert any(
        "admits ServiceAccount 'gateway', which is not a caller of language" in p for p in _problems(broken)
    )


def test_connection_pool_differs_from_the_server_limit(broken: Layout) -> None:
    _edit(broken.root / "istio/services/gateway.yaml", "http2MaxRequests: 256", "http2MaxRequests: 1000")
    assert any(
        "DestinationRule/gateway" in p and "HIVEMESH_MAX_CONCURRENT_RPCS=256" in p for p in _problems(broken)
    )


def test_grace_periods_out_of_order(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/services/planner.yaml",
        "terminationGracePeriodSeconds: 45",
        "terminationGracePeriodSeconds: 20",
    )
    assert any("Deployment/planner" in p and "shutdown out of order" in p for p in _problems(broken))


def test_probe_on_a_name_the_server_does_not_register(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/services/gateway.yaml", "service: readiness", "service: ready")
    assert any(
        "Deployment/gateway" in p and "readinessProbe asks health service 'ready'" in p
        for p in _problems(broken)
    )


def test_kubernetes_field_typo(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/services/tool.yaml", "maxUnavailable: 0", "maxUnavailble: 0")
    assert any("Deployment/tool" in p and "'maxUnavailble' was unexpected" in p for p in _problems(broken))


def test_the_script_prints_problems_and_fails(broken: Layout, capsys: pytest.CaptureFixture[str]) -> None:
    _edit(broken.root / "istio/services/tool.yaml", "consecutiveGatewayErrors:", "consecutiveGatewayError:")
    code = main(["--root", str(broken.root), "--schemas", str(broken.schemas)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL dev" in out
    assert "FAIL prod" in out
    assert "'consecutiveGatewayError' was unexpected" in out
