"""The mesh credential in the manifests: who may call which method, with which credential, and
where its keys are (istio/authorization.yaml, istio/mesh-credential.yaml, k8s/base/services/)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from grpc_health.v1 import health_pb2
from jwt.algorithms import ECAlgorithm

from hivemesh.mesh.config import SERVICES
from hivemesh.mesh.contracts import CONTRACTS
from tools import mesh_jwks
from tools.validate_deploy import (
    GET_RELEASE,
    Doc,
    Layout,
    callers_in_code,
    calls_in_code,
    check_mesh_keys,
    check_rendered,
    of_kind,
    release_askers,
    render,
)

INTERNAL = ("planner", "language", "memory", "tool")
HEALTH = {
    f"/{m.containing_service.full_name}/{m.name}"
    for m in health_pb2.DESCRIPTOR.services_by_name["Health"].methods
}


def _selecting(docs: list[Doc], kind: str, service: str) -> list[Doc]:
    return [
        d
        for d in of_kind(docs, kind)
        if d["spec"].get("selector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") == service
    ]


def _account(docs: list[Doc], service: str) -> str:
    (deployment,) = [d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == service]
    return f"cluster.local/ns/hivemesh/sa/{deployment['spec']['template']['spec']['serviceAccountName']}"


def _jwks(tmp_path: Path, *, private: bool = False) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key if private else key.public_key()))
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk | {"kid": "mesh-1", "use": "sig", "alg": "ES256"}]}))
    return path


# ------------------------------------------------------------------------------ RequestAuthentication


def test_every_internal_service_verifies_the_credential(rendered: list[Doc]) -> None:
    for service in INTERNAL:
        rules = [
            r for ra in _selecting(rendered, "RequestAuthentication", service) for r in ra["spec"]["jwtRules"]
        ]
        assert len(rules) == 1, service
        (rule,) = rules
        assert rule["issuer"] == "hivemesh"
        assert rule["audiences"] == ["hivemesh-mesh"]
        assert rule["fromHeaders"] == [{"name": "x-hivemesh-credential"}]
        assert rule["forwardOriginalToken"] is True
        # Committed without keys: fails closed until tools/mesh_jwks.py puts the real ones in.
        assert json.loads(rule["jwks"]) == {"keys": []}
    # Nothing else accepts it: not the gateway, not the ingress (a leaked credential is no way in).
    for ra in of_kind(rendered, "RequestAuthentication"):
        if any(r["issuer"] == "hivemesh" for r in ra["spec"]["jwtRules"]):
            assert ra["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] in INTERNAL


# ------------------------------------------------------------------------------ AuthorizationPolicy


def test_every_policy_path_is_a_method_of_the_selected_service(rendered: list[Doc]) -> None:
    seen = 0
    for service in SERVICES:
        contract = CONTRACTS[service]
        methods = {f"/{contract.full_name}/{m.name}" for m in contract.descriptor.methods}
        for policy in _selecting(rendered, "AuthorizationPolicy", service):
            for rule in policy["spec"]["rules"]:
                for operation in rule["to"]:
                    for path in operation["operation"]["paths"]:
                        seen += 1
                        if service == "gateway" and path == f"/{contract.full_name}/*":
                            continue  # the public edge: every GatewayService method
                        assert path in methods | HEALTH | {GET_RELEASE}, (
                            f"{policy['metadata']['name']}: {path}"
                        )
    assert seen > 20


def test_the_gateway_may_ask_the_planner_nothing_but_health_and_its_release(rendered: list[Doc]) -> None:
    """The gateway reaches no PlannerService method: it only asks each side of the planner's canary
    which release it runs (sticky sessions)."""
    gateway = _account(rendered, "gateway")
    (policy,) = _selecting(rendered, "AuthorizationPolicy", "planner")
    asked = False
    for rule in policy["spec"]["rules"]:
        sources = [f["source"] for f in rule.get("from", [])] or [{}]
        if any("principals" not in s or gateway in s["principals"] for s in sources):
            paths = {p for op in rule["to"] for p in op["operation"]["paths"]}
            assert paths <= HEALTH | {GET_RELEASE}, rule
            asked = asked or GET_RELEASE in paths
    assert asked


def test_the_code_calls_what_the_design_says(layout: Layout) -> None:
    calls = calls_in_code(layout.services)
    assert calls["planner"] == {}
    assert calls["gateway"] == {}
    assert calls["language"] == {"planner": {"Understand", "Generate"}, "memory": {"Embed"}}
    assert {"GetContext", "AppendTurns", "Recall"} <= calls["memory"]["planner"]
    assert {"GetRecord", "PutRecord"} <= calls["memory"]["tool"]
    assert {"ListTools", "InvokeTool"} <= calls["tool"]["planner"]
    # Stub calls and channels name the same callers.
    channels = callers_in_code(layout.services)
    assert {callee: set(callers) for callee, callers in calls.items()} == channels


def test_every_rpc_the_code_calls_is_admitted_with_the_credential(
    rendered: list[Doc], layout: Layout
) -> None:
    calls = calls_in_code(layout.services)
    for callee, by_caller in calls.items():
        policies = _selecting(rendered, "AuthorizationPolicy", callee)
        for caller, names in by_caller.items():
            account = _account(rendered, caller)
            for name in names:
                path = f"/{CONTRACTS[callee].full_name}/{name}"
                assert any(
                    path in [p for op in rule["to"] for p in op["operation"]["paths"]]
                    and account in source.get("principals", [])
                    and source.get("requestPrincipals") == ["hivemesh/*"]
                    for policy in policies
                    for rule in policy["spec"]["rules"]
                    for source in [f["source"] for f in rule.get("from", [])]
                ), f"{caller} -> {path}"


def test_internal_services_admit_only_what_the_code_calls(rendered: list[Doc], layout: Layout) -> None:
    calls = calls_in_code(layout.services)
    callers = {_account(rendered, s): s for s in SERVICES}
    for service in INTERNAL:
        for policy in _selecting(rendered, "AuthorizationPolicy", service):
            for rule in policy["spec"]["rules"]:
                paths = {p for op in rule["to"] for p in op["operation"]["paths"]}
                if paths <= HEALTH:
                    assert "from" not in rule or all(
                        "requestPrincipals" not in f["source"] for f in rule["from"]
                    )
                    continue
                if paths == {GET_RELEASE}:
                    # Asked outside any task: by principal alone, exactly by the services that ask.
                    principals = {p for f in rule["from"] for p in f["source"]["principals"]}
                    assert all("requestPrincipals" not in f["source"] for f in rule["from"])
                    assert {callers[p] for p in principals} == release_askers()[service]
                    continue
                for entry in rule["from"]:
                    assert entry["source"]["requestPrincipals"] == ["hivemesh/*"]
                    for principal in entry["source"]["principals"]:
                        called = {
                            f"/{CONTRACTS[service].full_name}/{m}"
                            for m in calls[service].get(callers[principal], set())
                        }
                        assert paths <= called, (service, principal, paths - called)


def test_call_scan_reads_stub_calls_of_imported_contracts(tmp_path: Path) -> None:
    (tmp_path / "planner").mkdir()
    (tmp_path / "planner" / "clients.py").write_text(
        "from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub\n"
        "from hivemesh.memory.v1 import memory_service_pb2_grpc\n"
        "async def run(stub, other):\n"
        "    await stub.InvokeToolStream(request)\n"
        "    await memory_service_pb2_grpc.MemoryServiceStub(channel).Forget(request)\n"
        "    await other.Embed(request)\n"  # the language stubs are not imported here
        "    await other.RunTask(request)\n"  # the planner's own contract
    )
    (tmp_path / "planner" / "plain.py").write_text("async def run(x):\n    await x.ListTools()\n")
    found = calls_in_code(tmp_path)
    assert found["tool"] == {"planner": {"InvokeToolStream"}}
    assert found["memory"] == {"planner": {"Forget"}}
    assert found["language"] == {}
    assert found["planner"] == {}


# ------------------------------------------------------------------------------ keys in the pods


def test_signing_key_is_mounted_into_the_gateway_only(rendered: list[Doc]) -> None:
    assert [str(p) for p in check_mesh_keys(rendered)] == []
    for deployment in of_kind(rendered, "Deployment") + of_kind(rendered, "StatefulSet"):
        pod = deployment["spec"]["template"]["spec"]
        keys = {
            item["key"]
            for volume in pod.get("volumes", [])
            if volume.get("secret", {}).get("secretName") == "hivemesh-mesh-keys"
            for item in volume["secret"]["items"]
        }
        # The service the pods run (a service may run as several Deployments: language-gpu).
        name = deployment["spec"]["template"]["metadata"].get("labels", {}).get("app.kubernetes.io/name")
        if name == "gateway":
            assert keys == {"jwks.json", "signing-key.pem"}
        elif name in SERVICES:
            assert keys == {"jwks.json"}
        else:
            assert keys == set(), name
        for container in pod["containers"]:
            for mount in container.get("volumeMounts", []):
                if mount["name"].startswith("mesh-"):
                    assert mount["readOnly"] is True


# ------------------------------------------------------------------------------ tools/mesh_jwks.py


def test_jwks_overlay_puts_the_keys_into_the_mesh_request_authentications(
    tmp_path: Path, layout: Layout
) -> None:
    jwks = _jwks(tmp_path)
    site = tmp_path / "site"
    code = mesh_jwks.main(
        ["--jwks", str(jwks), "--overlay", str(layout.root / "k8s" / "overlays" / "dev"), "--out", str(site)]
    )
    assert code == 0
    docs = render(site)
    placed = {
        ra["metadata"]["name"]: json.loads(rule["jwks"])
        for ra in of_kind(docs, "RequestAuthentication")
        for rule in ra["spec"]["jwtRules"]
        if rule["issuer"] == "hivemesh"
    }
    assert placed == {f"{s}-mesh-credential": json.loads(jwks.read_text()) for s in INTERNAL}
    (edge,) = [
        ra for ra in of_kind(docs, "RequestAuthentication") if ra["metadata"]["name"] == "hivemesh-ingress"
    ]
    assert "jwks" not in edge["spec"]["jwtRules"][0]
    assert [str(p) for p in check_rendered(docs, layout)] == []
    # Written again (rotation): the tool replaces its own file.
    assert (
        mesh_jwks.main(
            ["--jwks", str(jwks), "--overlay", str(layout.root / "k8s/overlays/dev"), "--out", str(site)]
        )
        == 0
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda k: k, "private key"),
        (lambda k: k | {"crv": "P-384"}, "ES256 needs EC P-256"),
        (lambda k: {n: v for n, v in k.items() if n != "kid"}, "no kid"),
        (lambda k: k | {"x": k["y"]}, "not on the curve"),
    ],
)
def test_jwks_that_cannot_go_into_the_mesh_is_refused(
    tmp_path: Path, edit: Callable[[dict[str, Any]], dict[str, Any]], message: str
) -> None:
    path = _jwks(tmp_path, private=message == "private key")
    jwks = json.loads(path.read_text())
    path.write_text(json.dumps({"keys": [edit(jwks["keys"][0])]}))
    with pytest.raises(mesh_jwks.JwksError, match=message):
        mesh_jwks.read_jwks(path)


def test_jwks_tool_does_not_overwrite_a_kustomization_it_did_not_write(
    tmp_path: Path, layout: Layout, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "kustomization.yaml").write_text("resources: []\n")
    overlay = layout.root / "k8s" / "overlays" / "prod"
    code = mesh_jwks.main(
        ["--jwks", str(_jwks(tmp_path)), "--overlay", str(overlay), "--out", str(tmp_path / "site")]
    )
    assert code == 1
    assert "was not written by this tool" in capsys.readouterr().err
    assert (tmp_path / "site" / "kustomization.yaml").read_text() == "resources: []\n"
