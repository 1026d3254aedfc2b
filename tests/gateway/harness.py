"""A gateway built with an explicit GatewayConfig, served on port 0, plus credentials to call it."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from hivemesh.gateway.app import build_app
from hivemesh.gateway.config import GatewayConfig
from hivemesh.gateway.keys import ApiKeyStore
from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceStub
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer

if TYPE_CHECKING:
    from hivemesh.gateway.v1.gateway_service_pb2_grpc import GatewayServiceAsyncStub


@dataclass
class Issuer:
    """Signs JWTs with an RSA and an EC key published in a JWKS file."""

    jwks_path: Path
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, directory: Path) -> Issuer:
        rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        rsa_jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(rsa_key.public_key()))
        ec_jwk: dict[str, Any] = json.loads(ECAlgorithm.to_jwk(ec_key.public_key()))
        rsa_jwk.update(kid="rsa-1", use="sig", alg="RS256")
        ec_jwk.update(kid="ec-1", use="sig", alg="ES256")
        path = directory / "jwks.json"
        path.write_text(json.dumps({"keys": [rsa_jwk, ec_jwk]}))
        return cls(path, rsa_key, ec_key)

    def token(
        self,
        tenant: str | None,
        *,
        algorithm: str = "RS256",
        expires_in_s: float = 300,
        key: Any = None,
        kid: str | None = None,
        role: str | None = None,
    ) -> str:
        claims: dict[str, Any] = {"sub": "user-1", "exp": int(time.time() + expires_in_s), "iss": "test-idp"}
        if role is not None:
            claims["hivemesh_role"] = role
        if tenant is not None:
            claims["tenant_id"] = tenant
        signing = key if key is not None else (self.rsa_key if algorithm == "RS256" else self.ec_key)
        header = {"kid": kid or ("rsa-1" if algorithm == "RS256" else "ec-1")}
        return jwt.encode(claims, signing, algorithm=algorithm, headers=header)


@dataclass
class ServedGateway:
    server: MeshServer
    channel: grpc.aio.Channel
    stub: GatewayServiceAsyncStub


@contextlib.asynccontextmanager
async def serve_gateway(
    settings: Settings, config: GatewayConfig, keys: ApiKeyStore | None = None
) -> AsyncIterator[ServedGateway]:
    server = MeshServer(build_app(settings, config, keys=keys), settings.server, 0, Metrics())
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield ServedGateway(server, channel, GatewayServiceStub(channel))
    finally:
        await channel.close(None)
        await server.stop(0.5)


def api_key(key: str) -> tuple[tuple[str, str], ...]:
    return (("x-api-key", key),)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def request_id() -> str:
    return uuid.uuid4().hex
