"""Development certificates for TLS between services (``hivemesh certs``): a CA, and for each service
a key and a certificate it signed, valid both to serve and to call, for every name the service is
dialled by (its name, its Kubernetes names in a namespace, ``localhost`` and 127.0.0.1).

Keys are ECDSA P-256, written readable by their owner only. In production, certificates with the same
names and usages come from your own CA.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hivemesh.mesh.config import SERVICES

CA_NAME = "hivemesh development CA"
# Issued a little in the past, so a peer whose clock is slightly behind accepts them at once.
_BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """The files written: the CA, its key, and each service's certificate and key."""

    ca: Path
    ca_key: Path
    services: dict[str, tuple[Path, Path]]


def _planned_files(out: Path, services: Sequence[str]) -> Issued:
    return Issued(
        ca=out / "ca.pem",
        ca_key=out / "ca-key.pem",
        services={s: (out / f"{s}.pem", out / f"{s}-key.pem") for s in services},
    )


def dns_names(service: str, namespace: str | None) -> list[str]:
    """The host names a service is reached by: ``tool``, in a namespace ``tool.ns``, ``tool.ns.svc``
    and ``tool.ns.svc.cluster.local``, and ``localhost``."""
    names = [service]
    if namespace:
        names += [
            f"{service}.{namespace}",
            f"{service}.{namespace}.svc",
            f"{service}.{namespace}.svc.cluster.local",
        ]
    return [*names, "localhost"]


def make_certificates(
    out: Path,
    services: Sequence[str] = SERVICES,
    *,
    namespace: str | None = None,
    days: int = 365,
    force: bool = False,
) -> Issued:
    """Write a new CA and one certificate per service into ``out``. Existing files are refused
    (``FileExistsError`` naming them, nothing written) unless ``force``."""
    unknown = [s for s in services if s not in SERVICES]
    if unknown:
        raise ValueError(f"unknown service {unknown[0]!r}; choose from {', '.join(SERVICES)}")
    if not services:
        raise ValueError("name at least one service")
    if days < 1:
        raise ValueError(f"certificates must be valid at least 1 day, got {days}")
    issued = _planned_files(out, services)
    targets = [issued.ca, issued.ca_key, *(p for pair in issued.services.values() for p in pair)]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not force:
        raise FileExistsError(f"not overwriting {', '.join(existing)} (use --force to replace them)")
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key, now, days)
    _write(issued.ca_key, _private_pem(ca_key), private=True)
    _write(issued.ca, ca.public_bytes(serialization.Encoding.PEM), private=False)
    for service, (cert_path, key_path) in issued.services.items():
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _service_certificate(service, namespace, key, ca, ca_key, now, days)
        _write(key_path, _private_pem(key), private=True)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), private=False)
    return issued


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Signatures only: a CA's of certificates and revocation lists, a service's of handshakes."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: dt.datetime, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _service_certificate(
    service: str,
    namespace: str | None,
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    days: int,
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names(service, namespace)]
    names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        # Every service both serves and calls the others.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool) -> None:
    mode = 0o600 if private else 0o644
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        # A file replaced with --force keeps its old mode unless it is set again.
        os.fchmod(file.fileno(), mode)
        file.write(data)
