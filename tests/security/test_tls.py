"""TLS between services: real servers on port 0, certificates made by ``hivemesh certs``.

The tool and memory services run in one process with local calls off, so the tool's calls to memory
go over a TLS channel too; callers outside need a certificate from the mesh's CA, except at the
gateway, whose callers show API keys or JWTs instead.
"""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from google.protobuf import struct_pb2

from hivemesh.cli import main
from hivemesh.client import HivemeshClient
from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.mesh import tls as transport
from hivemesh.mesh.certs import Issued, make_certificates
from hivemesh.mesh.config import SERVICES, TLS_FILES, ConfigError, Settings, TlsConfig
from hivemesh.mesh.launch import LocalMesh
from hivemesh.tool.v1 import tool_service_pb2 as pb
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub
from tests.support import credential_metadata, make_settings, rpc_error

Metadata = tuple[tuple[str, str], ...]

SCOPE = Scope(tenant_id="acme", user_id="ada", session_id="s1")


@dataclass
class Mesh:
    """Tool and memory served with TLS, and the certificates they were given."""

    running: LocalMesh
    certs: Issued

    @property
    def address(self) -> str:
        return self.running.address("tool")

    @property
    def credential(self) -> Metadata:
        """The mesh credential a task of SCOPE's user carries (TLS and the credential both apply)."""
        return credential_metadata(self.running.settings, SCOPE.tenant_id, SCOPE.user_id)

    @property
    def planner(self) -> TlsConfig:
        """A caller of the mesh: the planner's certificate and key."""
        return tls_config(self.certs, "planner")


def tls_config(certs: Issued, service: str) -> TlsConfig:
    cert, key = certs.services[service]
    return TlsConfig(ca=certs.ca, cert=cert, key=key)


def secure(address: str, config: TlsConfig) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(
        address,
        transport.channel_credentials(config, require_identity=False),
        options=transport.channel_options(config),
    )


def call(tool: str, **values: str | list[str]) -> pb.InvokeToolRequest:
    arguments = struct_pb2.Struct()
    arguments.update(values)
    return pb.InvokeToolRequest(tool_name=tool, arguments=arguments, scope=SCOPE, task_id="task-1")


async def list_tools(channel: grpc.aio.Channel, metadata: Metadata = ()) -> pb.ListToolsResponse:
    async with channel:
        response: pb.ListToolsResponse = await ToolServiceStub(channel).ListTools(
            pb.ListToolsRequest(), timeout=10, metadata=metadata
        )
        return response


@pytest.fixture
def certs(tmp_path: Path) -> Issued:
    return make_certificates(tmp_path / "certs")


@pytest.fixture
async def mesh(tmp_path: Path, certs: Issued) -> AsyncIterator[Mesh]:
    settings = replace(make_settings(tmp_path / "data"), local_calls=False, tls=tls_config(certs, "tool"))
    running = LocalMesh(settings, ["memory", "tool"])
    await running.start()
    try:
        yield Mesh(running, certs)
    finally:
        await running.stop()


async def test_a_caller_with_a_certificate_of_the_mesh_is_served_and_services_call_over_tls(
    mesh: Mesh,
) -> None:
    assert not mesh.running.channels.is_local("memory")
    async with secure(mesh.address, mesh.planner) as channel:
        stub = ToolServiceStub(channel)
        # The lists live in the memory service: the tool reaches it through its own TLS channel.
        metadata = mesh.credential
        await stub.InvokeTool(
            call("list_add", list="shopping", items=["milk"]), timeout=10, metadata=metadata
        )
        shown = await stub.InvokeTool(call("list_show", list="shopping"), timeout=10, metadata=metadata)
    assert "milk" in shown.display


async def test_a_plaintext_caller_is_refused(mesh: Mesh) -> None:
    status = await rpc_error(list_tools(grpc.aio.insecure_channel(mesh.address)))
    assert status.code == grpc.StatusCode.UNAVAILABLE


async def test_a_tls_caller_without_a_client_certificate_is_refused(mesh: Mesh) -> None:
    status = await rpc_error(list_tools(secure(mesh.address, TlsConfig(ca=mesh.certs.ca))))
    assert status.code == grpc.StatusCode.UNAVAILABLE


async def test_a_client_certificate_from_another_ca_is_refused(mesh: Mesh, tmp_path: Path) -> None:
    other = make_certificates(tmp_path / "other", ["planner"])
    cert, key = other.services["planner"]
    # The caller trusts the mesh's CA, so only its own certificate can be what is refused.
    status = await rpc_error(
        list_tools(secure(mesh.address, TlsConfig(ca=mesh.certs.ca, cert=cert, key=key)))
    )
    assert status.code == grpc.StatusCode.UNAVAILABLE


async def test_a_server_certificate_from_another_ca_is_refused_by_the_caller(
    mesh: Mesh, tmp_path: Path
) -> None:
    other = make_certificates(tmp_path / "other", ["planner"])
    cert, key = mesh.certs.services["planner"]
    status = await rpc_error(list_tools(secure(mesh.address, TlsConfig(ca=other.ca, cert=cert, key=key))))
    assert status.code == grpc.StatusCode.UNAVAILABLE


async def test_the_server_name_override_is_the_name_checked(mesh: Mesh) -> None:
    # Every development certificate names its service, so "tool" matches and "gateway.example" does not.
    named = secure(mesh.address, replace(mesh.planner, server_name="tool"))
    assert (await list_tools(named, mesh.credential)).tools
    status = await rpc_error(
        list_tools(secure(mesh.address, replace(mesh.planner, server_name="gateway.example")))
    )
    assert status.code == grpc.StatusCode.UNAVAILABLE


async def test_the_gateway_serves_tls_to_clients_without_a_certificate(tmp_path: Path, certs: Issued) -> None:
    settings = replace(make_settings(tmp_path / "data"), tls=tls_config(certs, "gateway"))
    running = LocalMesh(settings, ["gateway"])
    await running.start()
    try:
        # A client outside the mesh has the CA only, as `hivemesh run` with just HIVEMESH_TLS_CA.
        async with HivemeshClient(
            running.address("gateway"), tls=TlsConfig(ca=certs.ca), timeout_s=10
        ) as client:
            tasks, _ = await client.list()
        assert tasks == []
        async with HivemeshClient(running.address("gateway"), timeout_s=10) as plaintext:
            status = await rpc_error(plaintext.list())
        assert status.code == grpc.StatusCode.UNAVAILABLE
    finally:
        await running.stop()


# ---- configuration -------------------------------------------------------------------------------


def env_for(certs: Issued, *variables: str) -> dict[str, str]:
    cert, key = certs.services["tool"]
    paths = {"HIVEMESH_TLS_CERT": cert, "HIVEMESH_TLS_KEY": key, "HIVEMESH_TLS_CA": certs.ca}
    return {name: str(paths[name]) for name in variables}


def test_all_three_variables_turn_tls_on_and_none_leaves_it_off(certs: Issued) -> None:
    assert Settings.from_env({}).tls is None
    settings = Settings.from_env({**env_for(certs, *TLS_FILES), "HIVEMESH_TLS_SERVER_NAME": "tool"})
    assert settings.tls == replace(tls_config(certs, "tool"), server_name="tool")


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        (["HIVEMESH_TLS_CERT"], ["HIVEMESH_TLS_KEY", "HIVEMESH_TLS_CA"]),
        (["HIVEMESH_TLS_KEY"], ["HIVEMESH_TLS_CERT", "HIVEMESH_TLS_CA"]),
        (["HIVEMESH_TLS_CERT", "HIVEMESH_TLS_KEY"], ["HIVEMESH_TLS_CA"]),
        (["HIVEMESH_TLS_CERT", "HIVEMESH_TLS_CA"], ["HIVEMESH_TLS_KEY"]),
        (["HIVEMESH_TLS_KEY", "HIVEMESH_TLS_CA"], ["HIVEMESH_TLS_CERT"]),
    ],
)
def test_a_partial_configuration_names_what_is_missing(
    certs: Issued, given: list[str], missing: list[str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env_for(certs, *given))
    assert raised.value.args[0].endswith(
        f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not"
    )


def test_a_server_name_without_tls_is_refused() -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_TLS_SERVER_NAME"):
        Settings.from_env({"HIVEMESH_TLS_SERVER_NAME": "tool"})


async def test_a_service_given_the_ca_alone_does_not_start(tmp_path: Path, certs: Issued) -> None:
    alone = Settings.from_env(env_for(certs, "HIVEMESH_TLS_CA")).tls
    assert alone == TlsConfig(ca=certs.ca)  # a client's configuration: verify servers, show nothing
    settings = replace(make_settings(tmp_path / "data"), tls=alone)
    with pytest.raises(ConfigError, match="HIVEMESH_TLS_CERT and HIVEMESH_TLS_KEY are not"):
        LocalMesh(settings, ["tool"])


def test_the_cli_reports_a_partial_configuration_without_a_traceback(
    certs: Issued, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in env_for(certs, "HIVEMESH_TLS_CERT").items():
        monkeypatch.setenv(name, value)
    assert main(["task", "list"]) == 2
    assert "configuration error: TLS needs" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("variable", "spoil", "message"),
    [
        ("HIVEMESH_TLS_CA", "missing", "HIVEMESH_TLS_CA: cannot read"),
        ("HIVEMESH_TLS_CA", "garbage", "holds no PEM certificate"),
        ("HIVEMESH_TLS_CERT", "garbage", "HIVEMESH_TLS_CERT: .* holds no PEM certificate"),
        ("HIVEMESH_TLS_KEY", "garbage", "HIVEMESH_TLS_KEY: .* holds no PEM private key"),
        ("HIVEMESH_TLS_KEY", "another key", "does not belong to the certificate"),
    ],
)
def test_a_bad_file_is_named_when_read(
    tmp_path: Path, certs: Issued, variable: str, spoil: str, message: str
) -> None:
    config = tls_config(certs, "tool")
    bad = tmp_path / "bad.pem"
    if spoil == "garbage":
        bad.write_text("-----BEGIN NOTHING-----\nnot base64\n-----END NOTHING-----\n")
    elif spoil == "another key":
        bad = certs.services["memory"][1]
    spoiled = {
        "HIVEMESH_TLS_CA": replace(config, ca=bad),
        "HIVEMESH_TLS_CERT": replace(config, cert=bad),
        "HIVEMESH_TLS_KEY": replace(config, key=bad),
    }[variable]
    with pytest.raises(ConfigError, match=message):
        transport.server_credentials(spoiled, require_client_auth=True)


# ---- hivemesh certs ------------------------------------------------------------------------------


def test_certs_writes_a_ca_and_a_key_pair_per_service_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "certs"
    assert main(["certs", "--out", str(out), "--services", "tool,memory", "--namespace", "agents"]) == 0
    printed = capsys.readouterr().out
    names = ["ca.pem", "ca-key.pem", "memory.pem", "memory-key.pem", "tool.pem", "tool-key.pem"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        mode = stat.S_IMODE((out / name).stat().st_mode)
        assert mode == (0o600 if name.endswith("-key.pem") else 0o644), name
    for variable in TLS_FILES:
        assert f"export {variable}=" in printed
    # Names and usages: read back the way a peer would.
    material = transport.read(TlsConfig(ca=out / "ca.pem", cert=out / "tool.pem", key=out / "tool-key.pem"))
    assert material.identity is not None
    leaf = x509.load_pem_x509_certificate(material.identity.certificate_chain)
    names_in = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names_in.get_values_for_type(x509.DNSName) == [
        "tool",
        "tool.agents",
        "tool.agents.svc",
        "tool.agents.svc.cluster.local",
        "localhost",
    ]
    assert [str(ip) for ip in names_in.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {u.dotted_string for u in usages} == {"1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"}

    before = {name: (out / name).read_bytes() for name in names}
    assert main(["certs", "--out", str(out), "--services", "tool"]) == 2
    assert "not overwriting" in capsys.readouterr().err
    assert {name: (out / name).read_bytes() for name in names} == before
    assert main(["certs", "--out", str(out), "--services", "tool", "--force"]) == 0
    assert (out / "tool.pem").read_bytes() != before["tool.pem"]
    assert stat.S_IMODE((out / "tool-key.pem").stat().st_mode) == 0o600


def test_certs_refuses_an_unknown_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certs", "--out", str(tmp_path), "--services", "tool,nope"]) == 2
    assert "unknown service 'nope'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_certs_default_to_every_service(certs: Issued) -> None:
    assert sorted(certs.services) == sorted(SERVICES)
