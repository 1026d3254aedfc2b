"""Bearer JWTs verified against a JWKS served over HTTP (HIVEMESH_JWT_JWKS as a URL).

A small HTTP server on 127.0.0.1 (port 0, in a thread) serves the key set; tests change what it
serves, make it fail or stall, and watch what the gateway answers and how often it fetches.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from grpc_health.v1 import health_pb2, health_pb2_grpc
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.gateway import jwt_auth
from hivemesh.gateway.config import AuthMode, GatewayConfig
from hivemesh.gateway.v1 import gateway_service_pb2 as pb
from hivemesh.mesh.config import Settings
from hivemesh.mesh.status import StatusDetails
from tests.gateway.harness import bearer, request_id, serve_gateway
from tests.support import rpc_error

# Not the default claim, so a tenant found proves the configured claim was read.
TENANT_CLAIM = "org"
ISSUER = "test-idp"
# How long a test waits for the JWKS server to see a request (a hang guard, not a measurement).
SEEN_WITHIN_S = 30.0


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        if isinstance(self.private, rsa.RSAPrivateKey):
            public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            public = json.loads(ECAlgorithm.to_jwk(self.private.public_key()))
        public.update(kid=self.kid, use="sig", alg=self.algorithm)
        return public

    def token(self, tenant: str, *, claim: str = TENANT_CLAIM, kid: str | None = None) -> str:
        claims = {"sub": "user-1", "iss": ISSUER, "exp": int(time.time() + 300), claim: tenant}
        return jwt.encode(claims, self.private, algorithm=self.algorithm, headers={"kid": kid or self.kid})


class JwksServer:
    """Serves ``{"keys": [...]}`` at ``/jwks.json``; a test may change the keys, answer with an
    error status or a broken body, stall requests until released, or close the socket."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.status = 200
        self.body: bytes | None = None  # sent instead of the key set when set
        self.stall = False
        self.requested = threading.Event()  # a request arrived (set on every request)
        self.release = threading.Event()  # stalled requests answer once set
        self._fetches = 0
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="jwks-server")
        self._thread.start()
        self._up = True

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/jwks.json"

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    def close(self) -> None:
        """Stop answering: the port refuses connections from now on."""
        if not self._up:
            return
        self._up = False
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def _respond(self) -> tuple[int, bytes]:
        with self._lock:
            self._fetches += 1
        self.requested.set()
        if self.stall:
            self.release.wait()
        if self.body is not None:
            return self.status, self.body
        return self.status, json.dumps({"keys": [key.jwk() for key in self.keys]}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        served = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = served._respond()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a stalled request leaves a broken pipe behind: not news.
        pass


@pytest.fixture
def old_key() -> SigningKey:
    return SigningKey.rsa("old-rsa")


@pytest.fixture
def jwks(old_key: SigningKey) -> Iterator[JwksServer]:
    server = JwksServer(old_key)
    try:
        yield server
    finally:
        server.close()


def url_config(server: JwksServer) -> GatewayConfig:
    return GatewayConfig(
        auth=AuthMode.REQUIRED,
        jwt_jwks=server.url,
        jwt_issuer=ISSUER,
        jwt_tenant_claim=TENANT_CLAIM,
        rate_limit_per_s=0.0,
    )


def submit() -> pb.SubmitTaskRequest:
    return pb.SubmitTaskRequest(
        request_id=request_id(), text="what is 2 + 2?", scope=Scope(user_id="ana", session_id="s")
    )


def assert_status(status: StatusDetails, code: grpc.StatusCode, reason: str) -> None:
    assert status.code == code, status
    assert status.reason == reason, status
    assert status.domain == "hivemesh.gateway"


async def test_a_token_signed_by_a_served_key_names_the_tenant_from_the_configured_claim(
    settings: Settings, jwks: JwksServer, old_key: SigningKey
) -> None:
    es_key = SigningKey.ec("ec-1")
    jwks.keys.append(es_key)
    async with serve_gateway(settings, url_config(jwks)) as gw:
        for key, tenant in ((old_key, "initech"), (es_key, "globex")):
            done: pb.SubmitTaskResponse = await gw.stub.SubmitTask(
                submit(), metadata=bearer(key.token(tenant))
            )
            assert done.task.scope.tenant_id == tenant
        # The default claim name means nothing when another is configured.
        status = await rpc_error(
            gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme", claim="tenant_id")))
        )
        assert_status(status, grpc.StatusCode.UNAUTHENTICATED, "TENANT_CLAIM_MISSING")
        assert status.metadata["claim"] == TENANT_CLAIM
    assert jwks.fetches == 1  # fetched once, then served from the cache


async def test_a_token_signed_by_an_unknown_key_is_unauthenticated(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_auth, "JWKS_REFETCH_COOLDOWN_S", 3600.0)
    stranger = SigningKey.rsa("stranger")
    async with serve_gateway(settings, url_config(jwks)) as gw:
        forged = stranger.token("acme", kid=old_key.kid)  # a served kid, the wrong key
        assert_status(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(forged))),
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_INVALID",
        )
        # Unknown key ids: refused, and they cannot make the gateway hammer the JWKS endpoint.
        for n in range(5):
            token = stranger.token("acme", kid=f"made-up-{n}")
            assert_status(
                await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(token))),
                grpc.StatusCode.UNAUTHENTICATED,
                "TOKEN_INVALID",
            )
    assert jwks.fetches == 1


async def test_a_rotated_key_is_accepted_once_the_gateway_refetches(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_auth, "JWKS_REFETCH_COOLDOWN_S", 0.0)
    new_key = SigningKey.ec("new-ec")
    async with serve_gateway(settings, url_config(jwks)) as gw:
        done: pb.SubmitTaskResponse = await gw.stub.SubmitTask(
            submit(), metadata=bearer(old_key.token("acme"))
        )
        assert done.task.scope.tenant_id == "acme"
        # The identity provider rotates: the new key is published, the old one retired.
        jwks.keys = [new_key]
        done = await gw.stub.SubmitTask(submit(), metadata=bearer(new_key.token("acme")))
        assert done.task.scope.tenant_id == "acme"
        assert jwks.fetches == 2  # the unknown kid made the gateway fetch again
        assert_status(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme")))),
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_INVALID",
        )


async def test_a_retired_key_stops_working_when_the_cache_expires(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_auth, "JWKS_REFETCH_COOLDOWN_S", 0.0)
    monkeypatch.setattr(jwt_auth, "JWKS_REFRESH_S", 0.0)
    async with serve_gateway(settings, url_config(jwks)) as gw:
        await gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme")))
        jwks.keys = [SigningKey.rsa("new-rsa")]
        # The kid is still in the cache, but the cache is stale: the refetch drops the key.
        assert_status(
            await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme")))),
            grpc.StatusCode.UNAUTHENTICATED,
            "TOKEN_INVALID",
        )
    assert jwks.fetches == 2


def break_jwks(server: JwksServer, how: str) -> None:
    if how == "refused":
        server.close()
    elif how == "http-503":
        server.status = 503
        server.body = b"down for maintenance"
    elif how == "not-json":
        server.body = b"<html>login</html>"
    elif how == "not-a-key-set":
        server.body = b'["keys"]'
    elif how == "no-usable-keys":
        server.body = b'{"keys": [{"kty": "nope"}]}'
    else:
        raise AssertionError(how)


OUTAGES = ["refused", "http-503", "not-json", "not-a-key-set", "no-usable-keys"]


@pytest.mark.parametrize("how", OUTAGES)
async def test_no_keys_to_verify_with_is_unavailable_not_a_refusal(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, how: str
) -> None:
    config = url_config(jwks)
    break_jwks(jwks, how)
    async with serve_gateway(settings, config) as gw:
        status = await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme"))))
        # The token may be fine: the caller should retry, not give up on its credentials.
        assert_status(status, grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")


async def test_an_outage_after_keys_were_loaded_keeps_the_cached_keys(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_auth, "JWKS_REFETCH_COOLDOWN_S", 0.0)
    monkeypatch.setattr(jwt_auth, "JWKS_REFRESH_S", 0.0)
    new_key = SigningKey.ec("new-ec")
    async with serve_gateway(settings, url_config(jwks)) as gw:
        await gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme")))
        break_jwks(jwks, "http-503")
        # The cached key still verifies (every call retries the fetch here, and it fails).
        done: pb.SubmitTaskResponse = await gw.stub.SubmitTask(
            submit(), metadata=bearer(old_key.token("acme"))
        )
        assert done.task.scope.tenant_id == "acme"
        # A key id it has never seen cannot be judged during the outage: retry, not refusal.
        status = await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(new_key.token("acme"))))
        assert_status(status, grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")
        # The endpoint recovers, now serving the new key.
        jwks.status, jwks.body, jwks.keys = 200, None, [new_key]
        done = await gw.stub.SubmitTask(submit(), metadata=bearer(new_key.token("acme")))
        assert done.task.scope.tenant_id == "acme"


async def test_a_failed_fetch_is_not_retried_on_every_call(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_auth, "JWKS_REFETCH_COOLDOWN_S", 3600.0)
    break_jwks(jwks, "http-503")
    async with serve_gateway(settings, url_config(jwks)) as gw:
        for _ in range(3):
            status = await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme"))))
            assert_status(status, grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")
    assert jwks.fetches == 1


async def test_a_stalled_jwks_endpoint_blocks_neither_the_server_nor_the_call_for_ever(
    settings: Settings, jwks: JwksServer, old_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwt_auth, "JWKS_FETCH_TIMEOUT_S", 0.5)
    jwks.stall = True
    async with serve_gateway(settings, url_config(jwks)) as gw:
        call = asyncio.ensure_future(gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme"))))
        try:
            assert await asyncio.to_thread(jwks.requested.wait, SEEN_WITHIN_S)
            # While the fetch hangs, the gateway's event loop still serves other calls.
            health = health_pb2_grpc.HealthStub(gw.channel)
            reply = await health.Check(
                health_pb2.HealthCheckRequest(service="readiness"), timeout=SEEN_WITHIN_S
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # The fetch gives up: the call fails as retryable instead of waiting on the endpoint.
            assert_status(await rpc_error(call), grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")
        finally:
            jwks.release.set()
            await asyncio.gather(call, return_exceptions=True)


async def test_a_jwks_file_that_is_not_a_key_set_is_unavailable_not_internal(
    settings: Settings, old_key: SigningKey, tmp_path: Path
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text("[]")
    config = GatewayConfig(
        auth=AuthMode.REQUIRED,
        jwt_jwks=str(path),
        jwt_issuer=ISSUER,
        jwt_tenant_claim=TENANT_CLAIM,
        rate_limit_per_s=0.0,
    )
    async with serve_gateway(settings, config) as gw:
        status = await rpc_error(gw.stub.SubmitTask(submit(), metadata=bearer(old_key.token("acme"))))
        assert_status(status, grpc.StatusCode.UNAVAILABLE, "JWKS_UNAVAILABLE")
