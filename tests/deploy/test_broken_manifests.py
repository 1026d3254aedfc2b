"""A broken copy of the manifests fails with a message that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

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
        "    - name: idempotent\n      match:\n        - uri:\n"
        "            exact: /hivemesh.tool.v1.ToolService/ListTools\n",
        "    - name: idempotent\n      match:\n        - uri:\n"
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
    intent = (
        "    # planner: a task's intent, then its answer (planner/clients.py)\n    - from:\n"
        "        - source:\n            principals:\n"
    )
    _edit(
        broken.root / "istio/authorization.yaml",
        intent + "              - cluster.local/ns/hivemesh/sa/planner\n",
        intent + "              - cluster.local/ns/hivemesh/sa/planner\n"
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


# ------------------------------------------------------------------------------ the mesh credential


def test_a_method_the_code_calls_is_not_admitted(broken: Layout) -> None:
    _edit(
        broken.root / "istio/authorization.yaml",
        "              - /hivemesh.memory.v1.MemoryService/DeleteRecord\n",
        "",
    )
    assert any(
        "tool calls /hivemesh.memory.v1.MemoryService/DeleteRecord (the code calls it) but no ALLOW rule "
        "admits principal cluster.local/ns/hivemesh/sa/tool to it with the mesh credential" in p
        for p in _problems(broken)
    )


def test_a_method_the_code_never_calls_is_admitted(broken: Layout) -> None:
    _edit(
        broken.root / "istio/authorization.yaml",
        "              - /hivemesh.memory.v1.MemoryService/Recall\n",
        "              - /hivemesh.memory.v1.MemoryService/Recall\n"
        "              - /hivemesh.memory.v1.MemoryService/Forget\n",
    )
    assert any(
        "admits planner (ServiceAccount 'planner') to /hivemesh.memory.v1.MemoryService/Forget, which the "
        "planner code never calls" in p
        for p in _problems(broken)
    )


def test_a_path_that_is_no_method(broken: Layout) -> None:
    _edit(broken.root / "istio/authorization.yaml", "ToolService/InvokeTool\n", "ToolService/InvokeTools\n")
    problems = _problems(broken)
    assert any(
        "AuthorizationPolicy/tool" in p and "'/hivemesh.tool.v1.ToolService/InvokeTools' is no method" in p
        for p in problems
    )
    assert any("planner calls /hivemesh.tool.v1.ToolService/InvokeTool" in p for p in problems)


def test_the_gateway_admitted_to_the_planner_again(broken: Layout) -> None:
    _edit(
        broken.root / "istio/authorization.yaml",
        "      app.kubernetes.io/name: planner\n  action: ALLOW\n  rules:\n",
        "      app.kubernetes.io/name: planner\n  action: ALLOW\n  rules:\n"
        "    - from:\n        - source:\n            principals: [cluster.local/ns/hivemesh/sa/gateway]\n"
        "            requestPrincipals: [hivemesh/*]\n"
        "      to:\n        - operation:\n            paths: [/hivemesh.planner.v1.PlannerService/*]\n",
    )
    problems = _problems(broken)
    assert any("planner is internal, its rules name exact methods" in p for p in problems)
    assert any(
        "admits gateway (ServiceAccount 'gateway') to /hivemesh.planner.v1.PlannerService/PlanTask" in p
        for p in problems
    )


def test_principal_and_credential_in_separate_sources(broken: Layout) -> None:
    # Two `from` entries are alternatives: the caller's identity alone, or any credential alone.
    _edit(
        broken.root / "istio/authorization.yaml",
        "              - cluster.local/ns/hivemesh/sa/memory\n            requestPrincipals:",
        "              - cluster.local/ns/hivemesh/sa/memory\n"
        "        - source:\n"
        "            requestPrincipals:",
    )
    problems = _problems(broken)
    assert any(
        "AuthorizationPolicy/language" in p and "without the mesh credential" in p and "Embed" in p
        for p in problems
    )
    assert any("AuthorizationPolicy/language" in p and "admits any workload" in p for p in problems)


def test_request_authentication_drift(broken: Layout) -> None:
    path = broken.root / "istio/mesh-credential.yaml"
    docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(path.read_text())}
    docs["memory-mesh-credential"]["spec"]["jwtRules"][0]["forwardOriginalToken"] = False
    del docs["tool-mesh-credential"]
    path.write_text(yaml.safe_dump_all(docs.values()))
    problems = _problems(broken)
    assert any(
        "RequestAuthentication/memory-mesh-credential" in p and "forwardOriginalToken must be true" in p
        for p in problems
    )
    assert any(
        "RequestAuthentication for tool" in p and "none verifies the mesh credential" in p for p in problems
    )


def test_mesh_credential_header_with_a_prefix(broken: Layout) -> None:
    _edit(
        broken.root / "istio/mesh-credential.yaml",
        "        - name: x-hivemesh-credential\n",
        "        - name: x-hivemesh-credential\n          prefix: 'Bearer '\n",
    )
    assert any(
        "RequestAuthentication/planner-mesh-credential" in p and "without a prefix" in p
        for p in _problems(broken)
    )


def test_signing_key_mounted_outside_the_gateway(broken: Layout) -> None:
    # A Secret volume without items makes a file of every key, the signing key included.
    _edit(
        broken.root / "k8s/base/services/planner.yaml",
        "            items:\n              - key: jwks.json\n                path: jwks.json\n",
        "",
    )
    assert any(
        "Deployment/planner" in p and "projects signing-key.pem" in p and "only the gateway" in p
        for p in _problems(broken)
    )


def test_jwks_path_that_is_not_mounted(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/services/tool.yaml",
        "mountPath: /etc/hivemesh/mesh-jwks",
        "mountPath: /etc/jwks",
    )
    assert any(
        "Deployment/tool" in p and "HIVEMESH_MESH_JWKS=/etc/hivemesh/mesh-jwks/jwks.json must name" in p
        for p in _problems(broken)
    )


def test_a_call_the_code_adds_must_be_admitted(broken: Layout, tmp_path: Path) -> None:
    services = tmp_path / "services"
    (services / "tool").mkdir(parents=True)
    (services / "tool" / "records.py").write_text(
        "from hivemesh.memory.v1.memory_service_pb2_grpc import MemoryServiceStub\n"
        "async def listing(channel, request):\n"
        "    return await MemoryServiceStub(channel).ListRecords(request)\n"
    )
    layout = Layout(root=broken.root, services=services, schemas=broken.schemas)
    assert any(
        "tool calls /hivemesh.memory.v1.MemoryService/ListRecords (the code calls it)" in p
        for p in _problems(layout)
    )


def test_typo_in_a_rollout_step(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/rollouts/rollouts.yaml", "- setWeight: 25", "- setWeigth: 25")
    assert any("Rollout/" in p and "'setWeigth' was unexpected" in p for p in _problems(broken))


def test_analysis_queries_a_metric_the_code_does_not_export(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/rollouts/analysis.yaml",
        "hivemesh_tasks_by_release_total{",
        "hivemesh_task_total{",
    )
    assert any(
        "AnalysisTemplate/hivemesh-task-success" in p
        and "hivemesh_task_total, which hivemesh does not export" in p
        for p in _problems(broken)
    )


def test_analysis_selects_a_label_the_metric_lacks(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/rollouts/analysis.yaml",
        'bucket{grpc_service="{{args.grpc-service}}"',
        'bucket{service="{{args.grpc-service}}"',
    )
    assert any(
        "selects label 'service' of grpc_server_handling_seconds_bucket" in p for p in _problems(broken)
    )


def test_alert_queries_a_metric_the_code_does_not_export(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/monitoring/alerts.yaml", "max(hivemesh_dead_letters)", "max(hivemesh_dead)")
    assert any(
        "PrometheusRule/hivemesh-alerts" in p
        and "'HivemeshDeadLetters'" in p
        and "queries hivemesh_dead, which hivemesh does not export" in p
        for p in _problems(broken)
    )


def test_alert_without_severity_and_required_alert_missing(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/monitoring/alerts.yaml", "alert: HivemeshQueueBacklog", "alert: Backlog")
    _edit(broken.root / "k8s/base/monitoring/alerts.yaml", "severity: critical", "team: core")
    problems = _problems(broken)
    assert any("no alert HivemeshQueueBacklog" in p for p in problems)
    assert any("'HivemeshErrorRateHigh'" in p and "needs a severity label" in p for p in problems)


def test_alert_with_a_bad_duration_and_an_unknown_key(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/monitoring/alerts.yaml", "for: 5m", "for: five minutes\n          fro: 5m")
    problems = _problems(broken)
    assert any(
        "'HivemeshDeadLetters'" in p and "'five minutes' is not a Prometheus duration" in p for p in problems
    )
    assert any("'HivemeshDeadLetters'" in p and "unknown key 'fro'" in p for p in problems)


def test_dashboard_panel_groups_by_a_label_the_metric_lacks(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/monitoring/dashboard.json", "sum by (tool, outcome)", "sum by (tool, result)"
    )
    assert any("ConfigMap/hivemesh-dashboard" in p and "groups by 'result'" in p for p in _problems(broken))


def test_rollout_names_a_subset_the_destination_rule_lacks(broken: Layout) -> None:
    _edit(broken.root / "istio/services/tool.yaml", "    - name: canary\n", "    - name: preview\n")
    problems = _problems(broken)
    assert any(
        "Rollout/tool" in p and "subset 'canary' is not in DestinationRule 'tool'" in p for p in problems
    )


def test_service_without_analysis(broken: Layout) -> None:
    text = (broken.root / "k8s/base/rollouts/rollouts.yaml").read_text()
    head, tail = text.split("  name: memory\n", 1)
    tail = tail.replace(
        "      analysis:\n        startingStep: 4\n", "      x-analysis:\n        startingStep: 4\n", 1
    )
    tail = tail.replace("      x-analysis:", "      analysis-removed:", 1)
    (broken.root / "k8s/base/rollouts/rollouts.yaml").write_text(head + "  name: memory\n" + tail)
    assert any("Rollout/memory" in p and "no background analysis" in p for p in _problems(broken))


def test_deployment_without_a_rollout(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/rollouts/rollouts.yaml",
        "    name: language\n    scaleDown",
        "    name: lang\n    scaleDown",
    )
    assert any("Deployment/language" in p and "no Rollout takes its template" in p for p in _problems(broken))


def test_a_gpu_pool_on_the_default_image(broken: Layout) -> None:
    _edit(broken.root / "k8s/overlays/prod/language-gpu.yaml", "image: hivemesh-gpu\n", "image: hivemesh\n")
    assert any(
        "Deployment/language-gpu" in p and "asks for CUDA but runs the default image" in p
        for p in _problems(broken)
    )


def test_a_gpu_pool_without_gpu_node_placement(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/overlays/prod/language-gpu.yaml",
        "        - key: nvidia.com/gpu\n          operator: Exists\n",
        "        - key: example.com/other\n          operator: Exists\n",
    )
    _edit(
        broken.root / "k8s/overlays/prod/language-gpu.yaml",
        '      nodeSelector:\n        nvidia.com/gpu.present: "true"\n',
        "",
    )
    problems = _problems(broken)
    assert any("Deployment/language-gpu" in p and "tolerates no nvidia.com/gpu taint" in p for p in problems)
    assert any("Deployment/language-gpu" in p and "no nodeSelector for GPU nodes" in p for p in problems)


def test_the_cpu_pool_must_not_select_the_gpu_pods(broken: Layout) -> None:
    # Without its pool selector the language Service would send CPU-pool calls to GPU pods too.
    _edit(
        broken.root / "k8s/overlays/prod/kustomization.yaml",
        "path: /spec/selector/hivemesh.io~1pool",
        "path: /metadata/labels/hivemesh.io~1pool",
    )
    problems = _problems(broken)
    assert any("Service/language" in p and "the cpu pool selects pods that hold a GPU" in p for p in problems)
    assert any("the GPU and CPU language pools share pods" in p for p in problems)


def test_a_model_server_without_a_readiness_probe(broken: Layout) -> None:
    vllm = broken.root / "k8s/overlays/prod/vllm.yaml"
    text = vllm.read_text()
    start = text.index("          readinessProbe:")
    end = text.index("          livenessProbe:")
    vllm.write_text(text[:start] + text[end:])
    problems = _problems(broken)
    assert any("Deployment/vllm" in p and "readiness probe" in p for p in problems)


def test_a_pool_address_that_is_no_service(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/overlays/prod/kustomization.yaml",
        "HIVEMESH_LANGUAGE_GPU_ADDR=language-gpu.hivemesh",
        "HIVEMESH_LANGUAGE_GPU_ADDR=language-gpus.hivemesh",
    )
    assert any(
        "the language gpu pool language-gpus.hivemesh.svc.cluster.local is no Service" in p
        for p in _problems(broken)
    )


def test_a_catch_all_gateway_route_at_the_ingress_would_shadow_the_doors(broken: Layout) -> None:
    _edit(
        broken.root / "istio/services/gateway.yaml",
        "      match:\n        - gateways: [mesh]\n        - uri:\n"
        "            prefix: /hivemesh.gateway.v1.GatewayService/\n",
        "",
    )
    problems = _problems(broken)
    assert any(
        "/v1/chat/completions matches routes of VirtualService/edge, VirtualService/gateway" in p
        for p in problems
    )


def test_a_door_probe_on_a_path_the_edge_does_not_serve(broken: Layout) -> None:
    _edit(broken.root / "k8s/base/services/edge.yaml", "path: /readyz", "path: /ready")
    assert any(
        "Deployment/edge" in p and "readinessProbe asks '/ready'; the edge answers it at /readyz" in p
        for p in _problems(broken)
    )


def test_a_door_retried_after_it_reached_the_edge(broken: Layout) -> None:
    _edit(broken.root / "istio/services/edge.yaml", "retryOn: connect-failure,refused-stream", "retryOn: 5xx")
    assert any(
        "VirtualService/edge route 'doors'" in p and "may repeat a request the edge received" in p
        for p in _problems(broken)
    )


def test_the_doors_admitted_from_another_workload(broken: Layout) -> None:
    _edit(
        broken.root / "istio/authorization.yaml",
        "              - cluster.local/ns/hivemesh/sa/hivemesh-ingress\n      to:\n        - operation:\n"
        '            paths: ["/v1/*"',
        "              - cluster.local/ns/hivemesh/sa/hivemesh-ingress\n"
        "              - cluster.local/ns/hivemesh/sa/tool\n      to:\n        - operation:\n"
        '            paths: ["/v1/*"',
    )
    assert any(
        "AuthorizationPolicy/edge" in p and "admits cluster.local/ns/hivemesh/sa/tool to the doors" in p
        for p in _problems(broken)
    )


def test_a_sticky_route_to_the_other_side(broken: Layout) -> None:
    path = broken.root / "istio/services/tool.yaml"
    head, tail = path.read_text().split("    - name: default-canary\n", 1)
    path.write_text(
        head + "    - name: default-canary\n" + tail.replace("subset: canary", "subset: stable", 1)
    )
    problems = _problems(broken)
    assert any(
        "VirtualService/tool" in p
        and "/hivemesh.tool.v1.ToolService/InvokeTool with x-hivemesh-side: canary goes to ['stable']" in p
        for p in problems
    )
    # GetRelease too: the planner asks each side for its release through the same routes.
    assert any(
        "/hivemesh.release.v1.ReleaseService/GetRelease with x-hivemesh-side: canary" in p for p in problems
    )


def test_planners_that_do_not_name_their_side(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/kustomization.yaml",
        "HIVEMESH_STICKY_SESSIONS=true",
        "HIVEMESH_STICKY_SESSIONS=false",
    )
    assert any("HIVEMESH_STICKY_SESSIONS must be true: language has a canary" in p for p in _problems(broken))


def test_a_rollout_that_shifts_a_sticky_route(broken: Layout) -> None:
    text = (broken.root / "k8s/base/rollouts/rollouts.yaml").read_text()
    head, tail = text.split("  name: tool\n", 1)
    tail = tail.replace(
        "              - default\n", "              - default\n              - default-canary\n", 1
    )
    (broken.root / "k8s/base/rollouts/rollouts.yaml").write_text(head + "  name: tool\n" + tail)
    assert any(
        "Rollout/tool" in p and "shifts the weights of sticky route 'default-canary'" in p
        for p in _problems(broken)
    )


def test_the_edge_without_a_disruption_budget(broken: Layout) -> None:
    path = broken.root / "k8s/base/services/edge.yaml"
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d["kind"] != "PodDisruptionBudget"]
    path.write_text(yaml.safe_dump_all(docs))
    assert any("PodDisruptionBudget for edge: none" in p for p in _problems(broken))


def test_the_a2a_grpc_port_the_edge_binds_is_not_the_container_port(broken: Layout) -> None:
    _edit(
        broken.root / "k8s/base/services/edge.yaml",
        'HIVEMESH_EDGE_A2A_GRPC_PORT\n              value: "50056"',
        'HIVEMESH_EDGE_A2A_GRPC_PORT\n              value: "50057"',
    )
    assert any(
        "Deployment/edge" in p
        and "HIVEMESH_EDGE_A2A_GRPC_PORT is 50057, the container's grpc-a2a port 50056" in p
        for p in _problems(broken)
    )


def test_an_ingress_route_the_canary_does_not_shift(broken: Layout) -> None:
    # The public edge routed by a VirtualService of its own that Argo Rollouts does not know of:
    # clients outside the mesh would stay on the stable gateway through the whole canary.
    (broken.root / "istio/edge.yaml").write_text(
        (broken.root / "istio/edge.yaml").read_text()
        + """---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: gateway-public
spec:
  hosts: [api.example.com]
  gateways: [hivemesh-ingress]
  http:
    - name: public
      route:
        - destination:
            host: gateway.hivemesh.svc.cluster.local
            subset: stable
            port:
              number: 50051
      timeout: 60s
      retries:
        attempts: 0
"""
    )
    assert any(
        "VirtualService/gateway-public" in p
        and "through hivemesh-ingress to gateway.hivemesh.svc.cluster.local" in p
        and "Rollout gateway does not shift its weights" in p
        for p in _problems(broken)
    )


def test_an_eval_step_that_never_reaches_the_canary(broken: Layout) -> None:
    text = (broken.root / "k8s/base/rollouts/rollouts.yaml").read_text()
    head, tail = text.split("  name: tool\n", 1)
    tail = tail.replace("              - name: side\n                value: canary\n", "", 1)
    text = head + "  name: tool\n" + tail
    text = text.replace(
        "                value: gateway-canary.hivemesh.svc.cluster.local:50051",
        "                value: gateway.hivemesh.svc.cluster.local:50051",
    )
    (broken.root / "k8s/base/rollouts/rollouts.yaml").write_text(text)
    problems = _problems(broken)
    assert any(
        "Rollout/tool" in p and "no eval step judges the tool canary (--side canary against" in p
        for p in problems
    )
    assert any(
        "Rollout/gateway" in p and "no eval step judges the gateway canary (--target its canaryService" in p
        for p in problems
    )
    assert not any("Rollout/language" in p for p in problems)


def _without_eval_step(rollouts: Path, service: str) -> None:
    """Drop the eval step (and the one-pod step before it) from ``service``'s Rollout."""
    head, tail = rollouts.read_text().split(f"  name: {service}\n", 1)
    start = tail.index("        - setCanaryScale: {replicas: 1}\n")
    end = tail.index("        - setCanaryScale: {matchTrafficWeight: true}\n")
    rollouts.write_text(head + f"  name: {service}\n" + tail[:start] + tail[end:])


@pytest.mark.parametrize("service", ["planner", "memory"])
def test_a_planner_or_memory_canary_without_its_eval_step(broken: Layout, service: str) -> None:
    _without_eval_step(broken.root / "k8s/base/rollouts/rollouts.yaml", service)
    problems = _problems(broken)
    assert any(
        f"Rollout/{service}" in p
        and f"no eval step judges the {service} canary (--side canary against --baseline-side stable)" in p
        for p in problems
    )
    assert not any("Rollout/tool" in p or "Rollout/language" in p for p in problems)


def test_memory_calls_that_name_a_side_weighted_again(broken: Layout) -> None:
    path = broken.root / "istio/services/memory.yaml"
    head, tail = path.read_text().split("    - name: default-canary\n", 1)
    path.write_text(head + "    - name: default-canary\n" + tail.replace("exact: canary", "exact: canry", 1))
    assert any(
        "VirtualService/memory" in p
        and "/hivemesh.memory.v1.MemoryService/PutRecord with x-hivemesh-side: canary goes to ['stable']" in p
        for p in _problems(broken)
    )


def test_a_planner_whose_sides_cannot_be_told_apart(broken: Layout) -> None:
    path = broken.root / "istio/services/planner.yaml"
    head, tail = path.read_text().split("    - name: default-canary\n", 1)
    path.write_text(
        head + "    - name: default-canary\n" + tail.replace("subset: canary", "subset: stable", 1)
    )
    assert any(
        "VirtualService/planner" in p
        and "/hivemesh.release.v1.ReleaseService/GetRelease with x-hivemesh-side: canary goes to ['stable']"
        in p
        for p in _problems(broken)
    )


def test_the_questions_about_sides_must_be_admitted(broken: Layout) -> None:
    path = broken.root / "istio/authorization.yaml"
    account = "              - cluster.local/ns/hivemesh/sa/{}\n"
    asks = (
        "      to:\n        - operation:\n"
        '            paths: ["/hivemesh.release.v1.ReleaseService/GetRelease"]\n'
    )
    # The planner's policy: the gateway no longer admitted to GetRelease, the tool service admitted.
    _edit(
        path, account.format("gateway") + account.format("planner") + asks, account.format("planner") + asks
    )
    _edit(path, account.format("planner") + asks, account.format("planner") + account.format("tool") + asks)
    problems = _problems(broken)
    assert any(
        "AuthorizationPolicy for planner" in p
        and "gateway asks planner which release each side runs" in p
        and "sa/gateway to /hivemesh.release.v1.ReleaseService/GetRelease" in p
        for p in problems
    )
    assert any(
        "AuthorizationPolicy for planner" in p
        and "admits ServiceAccount 'tool' to /hivemesh.release.v1.ReleaseService/GetRelease" in p
        and "which it never asks" in p
        for p in problems
    )


def test_a_service_that_rolls_where_no_eval_can_reach(broken: Layout) -> None:
    """A Rollout for a workload no task can name the side of (here a copy of the planner's under
    another name) cannot have an eval gate: the validator says so rather than let it roll unjudged."""
    path = broken.root / "k8s/base/rollouts/rollouts.yaml"
    text = path.read_text()
    start = text.index("apiVersion: argoproj.io/v1alpha1\nkind: Rollout\nmetadata:\n  name: memory\n")
    end = text.index("---", start)
    copy = (
        text[start:end]
        .replace("name: memory\n", "name: recall\n", 1)
        .replace("    name: memory\n    scaleDown", "    name: recall\n    scaleDown", 1)
    )
    path.write_text(text + "\n---\n" + copy)
    assert any(
        "Rollout/recall" in p and "recall rolls, but no eval can reach its canary" in p
        for p in _problems(broken)
    )


def test_a_gateway_call_that_names_a_side_weighted_again(broken: Layout) -> None:
    path = broken.root / "istio/services/gateway.yaml"
    head, tail = path.read_text().split("    - name: idempotent-canary\n", 1)
    # The canary's sticky routes answer to a misspelt side: calls naming the canary are weighted.
    path.write_text(head + "    - name: idempotent-canary\n" + tail.replace("exact: canary", "exact: canry"))
    assert any(
        "VirtualService/gateway" in p
        and "/hivemesh.gateway.v1.GatewayService/ExecuteTask with x-hivemesh-side: canary goes to ['stable']"
        in p
        for p in _problems(broken)
    )


def test_a_stream_that_falls_to_a_route_with_a_timeout(broken: Layout) -> None:
    """A streaming method left out of a sticky streams route falls to the side's default route,
    whose timeout would cut the stream."""
    path = broken.root / "istio/services/gateway.yaml"
    text = path.read_text()
    watch = (
        "        - uri:\n            exact: /hivemesh.gateway.v1.GatewayService/WatchTasks\n"
        "          headers:\n            x-hivemesh-side:\n              exact: canary\n"
    )
    assert watch in text
    path.write_text(text.replace(watch, "", 1))
    assert any(
        "VirtualService/gateway route 'default-canary'" in p
        and "route timeout '60s' for /hivemesh.gateway.v1.GatewayService/WatchTasks, which streams" in p
        for p in _problems(broken)
    )
