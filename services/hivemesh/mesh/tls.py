"""Transport security without a service mesh: gRPC credentials from the PEM files ``HIVEMESH_TLS_*``
name.

The files are read once, when a server or channel is built, and checked as they are read: a missing
file, a file that is not PEM, an encrypted key, a key that is not the certificate's or an expired
certificate fails at start with a ``ConfigError`` naming the variable, instead of as a failed
handshake deep inside gRPC on the first call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from hivemesh.mesh.config import ConfigError, TlsConfig


@dataclass(frozen=True)
class Identity:
    """A certificate chain and its private key, as gRPC takes them."""

    certificate_chain: bytes
    private_key: bytes = field(repr=False)


@dataclass(frozen=True)
class Material:
    """The PEM bytes of a ``TlsConfig``, checked."""

    root_certificates: bytes
    identity: Identity | None
    server_name: str | None


def read(config: TlsConfig) -> Material:
    roots = _read("HIVEMESH_TLS_CA", config.ca)
    _certificates("HIVEMESH_TLS_CA", config.ca, roots)
    identity = None
    if config.cert is not None and config.key is not None:
        chain = _read("HIVEMESH_TLS_CERT", config.cert)
        leaf = _certificates("HIVEMESH_TLS_CERT", config.cert, chain)[0]
        key = _read("HIVEMESH_TLS_KEY", config.key)
        _check_key(key, leaf, config)
        if leaf.not_valid_after_utc < datetime.now(UTC):
            raise ConfigError(
                f"HIVEMESH_TLS_CERT: the certificate in {config.cert} expired on "
                f"{leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
            )
        identity = Identity(chain, key)
    return Material(roots, identity, config.server_name)


def server_credentials(config: TlsConfig, *, require_client_auth: bool) -> grpc.ServerCredentials:
    """A listener's credentials: this service's certificate; callers are verified against the CA
    and, with ``require_client_auth``, must show a certificate it signed."""
    material = read(config)
    identity = _required(material)
    return grpc.ssl_server_credentials(
        [(identity.private_key, identity.certificate_chain)],
        root_certificates=material.root_certificates,
        require_client_auth=require_client_auth,
    )


def channel_credentials(config: TlsConfig, *, require_identity: bool) -> grpc.ChannelCredentials:
    """A channel's credentials: servers are verified against the CA; this process's certificate is
    shown when it has one (a service always does, ``require_identity``)."""
    material = read(config)
    identity = _required(material) if require_identity else material.identity
    return grpc.ssl_channel_credentials(
        root_certificates=material.root_certificates,
        private_key=None if identity is None else identity.private_key,
        certificate_chain=None if identity is None else identity.certificate_chain,
    )


def channel_options(config: TlsConfig) -> list[tuple[str, object]]:
    """Channel arguments for TLS: the name to expect in servers' certificates, when overridden."""
    if config.server_name is None:
        return []
    return [("grpc.ssl_target_name_override", config.server_name)]


def _required(material: Material) -> Identity:
    if material.identity is None:
        raise ConfigError(
            "HIVEMESH_TLS_CA is set but HIVEMESH_TLS_CERT and HIVEMESH_TLS_KEY are not: a service "
            "needs its own certificate and key to serve and call with TLS"
        )
    return material.identity


def _read(variable: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from None


def _certificates(variable: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(f"{variable}: {path} holds no PEM certificate") from None


def _check_key(data: bytes, leaf: x509.Certificate, config: TlsConfig) -> None:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"HIVEMESH_TLS_KEY: the key in {config.key} is encrypted; give it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"HIVEMESH_TLS_KEY: {config.key} holds no PEM private key") from None
    if _public(key.public_key()) != _public(leaf.public_key()):
        raise ConfigError(
            f"HIVEMESH_TLS_KEY: the key in {config.key} does not belong to the certificate in {config.cert}"
        )


def _public(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
