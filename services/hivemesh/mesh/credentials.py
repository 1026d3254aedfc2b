"""The internal credential: who a call inside the mesh acts for, signed by the gateway.

After authenticating a caller, the gateway mints a short-lived JWT for each task (``Minter``): ES256,
``iss`` hivemesh, ``aud`` hivemesh-mesh, the tenant in ``tenant``, the end user in ``sub``, the task in
``task``. It is stored with the task, so the planner worker that takes the task from the queue acts
with it, and it travels on every internal call in the ``x-hivemesh-credential`` metadata header.

Planner, language, memory and tool hold only the public keys (a JWKS file) and check it on every
call to their own service (``CredentialGuard``, run by the call pipeline): missing or invalid is
UNAUTHENTICATED; a ``scope`` in the request that names another tenant or user is PERMISSION_DENIED;
an empty tenant or user in the scope is filled in from the credential, so the scope a servicer sees
always comes from the credential. Health and reflection stay open.

A service that calls another while handling a call, or while running a task, forwards the
credential it acts with (``acting_as``; the client interceptors attach it), so a tool that reads
memory reads the memory of the task's user and nobody else's.

Keys: ``HIVEMESH_MESH_SIGNING_KEY`` (a PEM EC P-256 private key; the gateway's, and an operator's for
``hivemesh token``) and ``HIVEMESH_MESH_JWKS`` (the public keys, every service; several during a
rotation). When neither is set, both live under the data directory and are made on first use
(``ensure_keys``), which is what ``hivemesh up`` and several processes sharing one data directory need.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import Message

from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.contracts import CONTRACTS
from hivemesh.mesh.errors import PermissionDenied, Unauthenticated

_log = logging.getLogger(__name__)

CREDENTIAL_HEADER = "x-hivemesh-credential"
ISSUER = "hivemesh"
AUDIENCE = "hivemesh-mesh"
ALGORITHM = "ES256"
DEFAULT_TTL_S = 3600.0
# Clock skew tolerated between the minting and the verifying host.
LEEWAY_S = 30.0
# Verified credentials are remembered (until they expire) so the calls of one task verify once.
CACHE_SIZE = 4096
# A credential signed by a key id the JWKS lacks makes the file be read again, at most this often.
RELOAD_COOLDOWN_S = 5.0
KEY_DIRECTORY = "mesh"
SCOPE_TYPE = "hivemesh.common.v1.Scope"
SIGNING_KEY_FILE = "signing-key.pem"
JWKS_FILE = "jwks.json"


_acting: contextvars.ContextVar[str] = contextvars.ContextVar("hivemesh_credential", default="")


def current_credential() -> str:
    """The credential this call or task acts with ("" when none)."""
    return _acting.get()


def begin_acting(credential: str) -> contextvars.Token[str]:
    """From now on outbound calls carry ``credential``; ``end_acting`` with the token undoes it."""
    return _acting.set(credential)


def end_acting(token: contextvars.Token[str]) -> None:
    _acting.reset(token)


@contextlib.contextmanager
def acting_as(credential: str) -> Iterator[None]:
    """Outbound calls made inside (and from tasks started inside) carry ``credential``."""
    token = _acting.set(credential)
    try:
        yield
    finally:
        _acting.reset(token)


@dataclass(frozen=True)
class Claims:
    """What a verified credential says."""

    tenant_id: str
    user_id: str
    task_id: str
    expires_at: float


@dataclass(frozen=True)
class KeyPaths:
    signing_key: Path
    jwks: Path


def key_paths(data_dir: Path, signing_key: Path | None, jwks: Path | None) -> KeyPaths:
    """Where the keys are: the configured files, or the data directory's."""
    default = data_dir / KEY_DIRECTORY
    return KeyPaths(signing_key or default / SIGNING_KEY_FILE, jwks or default / JWKS_FILE)


def ensure_keys(data_dir: Path) -> KeyPaths:
    """The data directory's key pair, made if missing. The pair appears at once (a directory
    renamed into place), so processes starting together on one data directory agree on it."""
    paths = key_paths(data_dir, None, None)
    if paths.jwks.exists():
        return paths
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mesh-keys-", dir=data_dir))
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        write_key_pair(key, staging / SIGNING_KEY_FILE, staging / JWKS_FILE)
        try:
            staging.rename(paths.jwks.parent)
        except OSError:
            if not paths.jwks.exists():  # not a lost race: a real failure
                raise
    finally:
        if staging.exists():
            for child in staging.iterdir():
                child.unlink()
            staging.rmdir()
    return paths


def write_key_pair(key: ec.EllipticCurvePrivateKey, signing_key: Path, jwks: Path) -> None:
    """Write ``key`` as a PEM private key (mode 0600) and its public half as a one-key JWKS."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(signing_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    jwks.write_text(json.dumps({"keys": [public_jwk(key.public_key())]}, indent=2) + "\n")


def public_jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    jwk = {"crv": "P-256", "kty": "EC", "x": _b64(numbers.x), "y": _b64(numbers.y)}
    return {**jwk, "kid": thumbprint(jwk), "use": "sig", "alg": ALGORITHM}


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The RFC 7638 thumbprint of an EC public key: the key id, the same wherever it is computed."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _b64(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()


class Minter:
    """Signs credentials with the mesh's private key."""

    def __init__(
        self, signing_key: Path, *, ttl_s: float = DEFAULT_TTL_S, verifier: Verifier | None = None
    ) -> None:
        try:
            loaded = serialization.load_pem_private_key(signing_key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"cannot read the mesh signing key {signing_key}: {exc}") from exc
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp256r1":
            raise ValueError(f"the mesh signing key {signing_key} must be an EC P-256 private key")
        self._key = loaded
        self.key_id = public_jwk(loaded.public_key())["kid"]
        self.ttl_s = ttl_s
        # The verifier of the services in this process: what is signed here it need not check again
        # (a signature check costs some 300 us, about what the rest of an in-process call costs).
        self._verifier = verifier

    def mint(self, tenant_id: str, user_id: str, task_id: str = "", *, ttl_s: float | None = None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": user_id,
            "tenant": tenant_id,
            "iat": now,
            "exp": now + int(self.ttl_s if ttl_s is None else ttl_s),
        }
        if task_id:
            claims["task"] = task_id
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.key_id})
        if self._verifier is not None:
            signed = Claims(tenant_id, user_id, task_id, float(claims["exp"]))
            self._verifier.vouch(self.key_id, token, signed)
        return token


class Verifier:
    """Checks credentials against the public keys of a JWKS file.

    The file is read when first needed and again when a credential names a key id it lacks (at most
    every ``RELOAD_COOLDOWN_S``), so a key added for a rotation is picked up without a restart.
    Verified credentials are cached until they expire: a task's calls pay for one signature check."""

    def __init__(self, jwks: Path) -> None:
        self._path = jwks
        self._keys: dict[str, jwt.PyJWK] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Claims] = OrderedDict()

    def _key(self, kid: str) -> jwt.PyJWK | None:
        with self._lock:
            now = time.monotonic()
            if kid not in self._keys and (self._read_at is None or now - self._read_at >= RELOAD_COOLDOWN_S):
                self._read_at = now
                try:
                    document = json.loads(self._path.read_text())
                    keyset = jwt.PyJWKSet.from_dict(document)
                    self._keys = {str(k.key_id or ""): k for k in keyset.keys}
                except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                    _log.warning("cannot read the mesh JWKS %s: %s", self._path, exc)
            return self._keys.get(kid)

    def vouch(self, kid: str, token: str, claims: Claims) -> None:
        """Take ``claims`` of a credential this process has just signed with key ``kid`` without
        checking its signature, provided the key set trusts ``kid`` (a signing key the JWKS does not
        hold gets no shortcut: its credentials fail here as they fail in every other process)."""
        if self._key(kid) is not None:
            self._remember(token, claims)

    def _remember(self, token: str, claims: Claims) -> None:
        self._cache[token] = claims
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def verify(self, token: str) -> Claims:
        """The claims of a valid credential; Unauthenticated (with a reason) otherwise."""
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + LEEWAY_S > time.time():
                return cached
            self._cache.pop(token, None)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the mesh credential is not a JWT", reason="CREDENTIAL_INVALID") from exc
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(
                f"the mesh credential must be signed with {ALGORITHM}", reason="CREDENTIAL_INVALID"
            )
        key = self._key(str(header.get("kid") or ""))
        if key is None:
            raise Unauthenticated(
                "the mesh credential was signed by a key this service does not know",
                reason="CREDENTIAL_UNKNOWN_KEY",
            )
        try:
            found = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iat", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the mesh credential has expired", reason="CREDENTIAL_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(
                f"the mesh credential is not valid: {exc}", reason="CREDENTIAL_INVALID"
            ) from exc
        tenant = found.get("tenant")
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated("the mesh credential names no tenant", reason="CREDENTIAL_INVALID")
        user, task = str(found.get("sub") or ""), str(found.get("task") or "")
        claims = Claims(tenant, user, task, float(found["exp"]))
        self._remember(token, claims)
        return claims


class CredentialGuard:
    """The check every call to an internal service passes (see the module's docstring)."""

    def __init__(self, service: str, verifier: Verifier) -> None:
        self._prefix = f"/{service}/"
        self._verifier = verifier

    def admit(self, method: str, metadata: Mapping[str, Any]) -> tuple[str, Claims] | None:
        """The credential of a call to this service and its claims; None for an open method."""
        if not method.startswith(self._prefix):
            return None
        token = metadata.get(CREDENTIAL_HEADER)
        if not isinstance(token, str) or not token.strip():
            raise Unauthenticated(
                f"calls to this service need the mesh credential in the '{CREDENTIAL_HEADER}' "
                "metadata header (an operator can mint one with 'hivemesh token')",
                reason="CREDENTIAL_MISSING",
            )
        token = token.strip()
        return token, self._verifier.verify(token)

    @staticmethod
    def confine(request: Message, claims: Claims) -> None:
        """Check the request's scope against the credential and fill in what it left empty."""
        field = request.DESCRIPTOR.fields_by_name.get("scope")
        if field is None or field.message_type is None or field.message_type.full_name != SCOPE_TYPE:
            return
        scope = request.scope  # type: ignore[attr-defined]  # the descriptor says it is there
        for name, granted in (("tenant_id", claims.tenant_id), ("user_id", claims.user_id)):
            given = getattr(scope, name)
            if not granted:
                continue
            if given and given != granted:
                raise PermissionDenied(
                    f"scope.{name} names another {name.removesuffix('_id')} than the mesh credential",
                    reason="SCOPE_MISMATCH",
                    metadata={"field": f"scope.{name}"},
                )
            if not given:
                setattr(scope, name, granted)


_verifiers: dict[Path, Verifier] = {}


def _resolved(settings: Settings) -> KeyPaths:
    if settings.mesh_jwks is None and settings.mesh_signing_key is None:
        return ensure_keys(settings.data_dir)
    paths = key_paths(settings.data_dir, settings.mesh_signing_key, settings.mesh_jwks)
    if settings.mesh_jwks is None:
        raise ConfigError(
            "HIVEMESH_MESH_JWKS must be set with HIVEMESH_MESH_SIGNING_KEY (the public keys that "
            "verify what the signing key signs)"
        )
    if not paths.jwks.is_file():
        raise ConfigError(f"HIVEMESH_MESH_JWKS: {paths.jwks} is not a readable file")
    return paths


def guard_for(settings: Settings, service: str) -> CredentialGuard | None:
    """The credential check of an internal service ("memory"), or None when ``HIVEMESH_MESH_AUTH``
    is off. Verifiers are shared per JWKS file in a process."""
    if not settings.mesh_auth:
        _log.warning("%s: the mesh credential is not checked (HIVEMESH_MESH_AUTH=off)", service)
        return None
    return CredentialGuard(CONTRACTS[service].full_name, _verifier_for(_resolved(settings).jwks))


def _verifier_for(jwks: Path) -> Verifier:
    verifier = _verifiers.get(jwks)
    if verifier is None:
        verifier = _verifiers[jwks] = Verifier(jwks)
    return verifier


def minter_for(settings: Settings) -> Minter | None:
    """The gateway's signer of task credentials; None when ``HIVEMESH_MESH_AUTH`` is off."""
    if not settings.mesh_auth:
        return None
    paths = _resolved(settings)
    try:
        verifier = _verifier_for(paths.jwks)
        return Minter(paths.signing_key, ttl_s=settings.mesh_credential_ttl_s, verifier=verifier)
    except ValueError as exc:
        raise ConfigError(f"HIVEMESH_MESH_SIGNING_KEY: {exc}") from exc
