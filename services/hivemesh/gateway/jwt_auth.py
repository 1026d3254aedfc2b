"""Bearer JWTs: RS256 or ES256, verified against a JWKS (file or URL); the tenant is a claim.

Only asymmetric algorithms are accepted, and the algorithm list is fixed here, never taken from the
token (no "none", no HS256 with a public key as the secret). ``exp`` is required.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import jwt

from hivemesh.mesh.errors import Unauthenticated

ALGORITHMS = ("RS256", "ES256")
# A JWKS from a URL is fetched again at most this often (key rotation), and on an unknown key id.
JWKS_REFRESH_S = 300.0


class JwtVerifier:
    def __init__(
        self,
        jwks: str,
        *,
        tenant_claim: str,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 30.0,
    ) -> None:
        self._source = jwks
        self._tenant_claim = tenant_claim
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_s
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, jwt.PyJWK]:
        if self._source.startswith(("https://", "http://")):
            client = jwt.PyJWKClient(self._source, cache_jwk_set=False)
            keyset = client.get_jwk_set()
        else:
            keyset = jwt.PyJWKSet.from_dict(json.loads(Path(self._source).expanduser().read_text()))
        return {str(key.key_id or ""): key for key in keyset.keys}

    async def _key(self, kid: str) -> jwt.PyJWK | None:
        async with self._lock:
            stale = time.monotonic() - self._loaded_at > JWKS_REFRESH_S
            if stale or kid not in self._keys:
                try:
                    self._keys = await asyncio.to_thread(self._read)
                    self._loaded_at = time.monotonic()
                except (OSError, ValueError, jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
                    if not self._keys:
                        raise Unauthenticated(
                            "the keys that verify tokens cannot be loaded", reason="JWKS_UNAVAILABLE"
                        ) from exc
            if kid in self._keys:
                return self._keys[kid]
            return next(iter(self._keys.values())) if len(self._keys) == 1 and not kid else None

    async def tenant(self, token: str) -> str:
        """The tenant of a valid token; Unauthenticated (with a reason) otherwise."""
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
        return tenant
