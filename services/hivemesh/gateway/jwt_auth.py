"""Bearer JWTs: RS256 or ES256, verified against a JWKS (file or URL); the tenant is a claim.

Only asymmetric algorithms are accepted, and the algorithm list is fixed here, never taken from the
token (no "none", no HS256 with a public key as the secret). ``exp`` is required.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import jwt

from hivemesh.gateway.keys import OPERATOR, ROLES, VIEWER
from hivemesh.mesh.errors import Unauthenticated, Unavailable

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenIdentity:
    """Who a valid token names: its tenant, and whether its role may only read."""

    tenant_id: str
    read_only: bool = False


ALGORITHMS = ("RS256", "ES256")
# The JWKS is read again once the cached keys are this old (rotation; retired keys drop out)...
JWKS_REFRESH_S = 300.0
# ...or when a token names an unknown key id; but never sooner than this after the last attempt,
# successful or not, so made-up key ids or a failing endpoint cannot turn every call into a fetch.
JWKS_REFETCH_COOLDOWN_S = 10.0
# A JWKS URL that has not answered within this has failed this attempt.
JWKS_FETCH_TIMEOUT_S = 5.0


class JwtVerifier:
    def __init__(
        self,
        jwks: str,
        *,
        tenant_claim: str,
        role_claim: str = "hivemesh_role",
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 30.0,
    ) -> None:
        self._source = jwks
        self._tenant_claim = tenant_claim
        self._role_claim = role_claim
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = 0.0
        self._tried_at: float | None = None
        self._failing = False
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, jwt.PyJWK]:
        if self._source.startswith(("https://", "http://")):
            client = jwt.PyJWKClient(self._source, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT_S)
            keyset = client.get_jwk_set()
        else:
            document = json.loads(Path(self._source).expanduser().read_text())
            if not isinstance(document, dict):
                raise ValueError("a JWKS file holds a JSON object with a 'keys' list")
            keyset = jwt.PyJWKSet.from_dict(document)
        return {str(key.key_id or ""): key for key in keyset.keys}

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this id; None if the key set has none; Unavailable if the key set cannot
        be loaded and the cached keys (if any) cannot answer."""
        async with self._lock:
            now = time.monotonic()
            wanted = kid not in self._keys or now - self._loaded_at > JWKS_REFRESH_S
            allowed = self._tried_at is None or now - self._tried_at >= JWKS_REFETCH_COOLDOWN_S
            if wanted and allowed:
                self._tried_at = now
                try:
                    self._keys = await asyncio.to_thread(self._read)
                    self._loaded_at = time.monotonic()
                    self._failing = False
                except (OSError, ValueError, jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
                    self._failing = True
                    _log.warning("cannot load the JWKS from %s: %s", self._source, exc)
            if kid in self._keys:
                return self._keys[kid]
            if len(self._keys) == 1 and not kid:
                return next(iter(self._keys.values()))
            if self._failing:
                # Not the caller's fault: the same token may well pass once the keys load again.
                raise Unavailable("the keys that verify tokens cannot be loaded", reason="JWKS_UNAVAILABLE")
            return None

    async def identity(self, token: str) -> TokenIdentity:
        """The tenant and role of a valid token; Unauthenticated (with a reason) otherwise, or
        Unavailable when the JWKS cannot be loaded and no cached key can judge the token."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("the bearer token is not a JWT", reason="TOKEN_INVALID") from exc
        if header.get("alg") not in ALGORITHMS:
            raise Unauthenticated(
                f"the bearer token must be signed with {' or '.join(ALGORITHMS)}",
                reason="TOKEN_INVALID",
                metadata={"alg": str(header.get("alg"))},
            )
        key = await self._key(str(header.get("kid") or ""))
        if key is None:
            raise Unauthenticated("the bearer token was signed by an unknown key", reason="TOKEN_INVALID")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=list(ALGORITHMS),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("the bearer token has expired", reason="TOKEN_EXPIRED") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the bearer token is not valid: {exc}", reason="TOKEN_INVALID") from exc
        tenant = claims.get(self._tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated(
                f"the bearer token carries no {self._tenant_claim!r} claim",
                reason="TENANT_CLAIM_MISSING",
                metadata={"claim": self._tenant_claim},
            )
        role = claims.get(self._role_claim, OPERATOR)
        if role not in ROLES:
            raise Unauthenticated(
                f"the bearer token's {self._role_claim!r} claim must be one of {', '.join(ROLES)}",
                reason="ROLE_CLAIM_INVALID",
                metadata={"claim": self._role_claim},
            )
        return TokenIdentity(tenant, read_only=role == VIEWER)
