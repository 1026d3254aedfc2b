"""Who is calling, and may they call now: credentials to a tenant, then the tenant's rate limit.

Credentials travel in request metadata: ``x-api-key: hmk_...`` or ``authorization: Bearer <jwt>``.
Missing, malformed, unknown, revoked or expired credentials are UNAUTHENTICATED with a reason that
says which; a tenant over its rate is RESOURCE_EXHAUSTED with the wait in RetryInfo. So is a peer
that has failed to authenticate too often (``failures``), before its credentials cost a lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from hivemesh.gateway.config import AuthMode
from hivemesh.gateway.failures import FailureBudget, peer_key
from hivemesh.gateway.jwt_auth import TokenIdentity
from hivemesh.gateway.keys import KeyCheck
from hivemesh.gateway.ratelimit import RateLimiter
from hivemesh.gateway.service import Caller
from hivemesh.mesh.errors import ResourceExhausted, Unauthenticated

API_KEY_HEADER = "x-api-key"
AUTHORIZATION_HEADER = "authorization"
# The bucket of callers without credentials (authentication off).
ANONYMOUS = "-anonymous-"


class KeyChecker(Protocol):
    async def check(self, token: str) -> KeyCheck: ...

    def vouched(self, token: str) -> bool:
        """Whether ``token`` is worth a lookup from a peer over its failure budget."""
        ...


class TokenVerifier(Protocol):
    async def identity(self, token: str) -> TokenIdentity: ...


class Authenticator:
    def __init__(
        self,
        mode: AuthMode,
        keys: KeyChecker,
        tokens: TokenVerifier | None,
        limiter: RateLimiter | None,
        *,
        rate_per_s: float = 0.0,
        failures: FailureBudget | None = None,
    ) -> None:
        self._mode = mode
        self._keys = keys
        self._tokens = tokens
        self._limiter = limiter
        self._rate = rate_per_s
        self._failures = failures

    async def caller(self, metadata: Mapping[str, str], peer: str) -> Caller:
        caller = await self._within_budget(metadata, peer)
        if self._limiter is not None:
            tenant = caller.tenant_id or ANONYMOUS
            wait = await self._limiter.acquire(tenant)
            if wait > 0:
                raise ResourceExhausted(
                    f"tenant {tenant} is over its rate limit of {self._rate:g} calls per second",
                    retry_after_s=wait,
                    reason="RATE_LIMITED",
                    metadata={"tenant_id": tenant, "limit_per_s": f"{self._rate:g}"},
                )
        return caller

    async def _within_budget(self, metadata: Mapping[str, str], peer: str) -> Caller:
        """``_identify``, within the peer's budget of failures: a peer that has spent it is refused
        before its credentials are looked at, unless it presents a key accepted lately; each failure
        is charged. Successes cost nothing, so a busy peer with good credentials is never slowed."""
        if self._failures is None or self._mode is AuthMode.NONE:
            return await self._identify(metadata)
        where = peer_key(peer)
        if not self._keys.vouched(metadata.get(API_KEY_HEADER, "").strip()):
            self._failures.admit(where)
        try:
            return await self._identify(metadata)
        except Unauthenticated:
            self._failures.charge(where)
            raise

    async def _identify(self, metadata: Mapping[str, str]) -> Caller:
        if self._mode is AuthMode.NONE:
            return Caller(tenant_id=None)
        api_key = metadata.get(API_KEY_HEADER, "").strip()
        if api_key:
            found = (await self._keys.check(api_key)).key
            if found is None:
                raise Unauthenticated("the API key is not valid", reason="API_KEY_INVALID")
            if found.revoked:
                raise Unauthenticated(
                    "the API key has been revoked",
                    reason="API_KEY_REVOKED",
                    metadata={"key_id": found.key_id},
                )
            return Caller(tenant_id=found.tenant_id, read_only=found.read_only)
        authorization = metadata.get(AUTHORIZATION_HEADER, "").strip()
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated(
                    "the authorization header must read 'Bearer <token>'", reason="TOKEN_INVALID"
                )
            if self._tokens is None:
                raise Unauthenticated(
                    "this gateway accepts no bearer tokens (no JWKS is configured)",
                    reason="TOKEN_NOT_ACCEPTED",
                )
            named = await self._tokens.identity(token.strip())
            return Caller(tenant_id=named.tenant_id, read_only=named.read_only)
        raise Unauthenticated(
            f"credentials are required: send '{API_KEY_HEADER}: <key>' or "
            f"'{AUTHORIZATION_HEADER}: Bearer <jwt>'",
            reason="CREDENTIALS_MISSING",
        )
