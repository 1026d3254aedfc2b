"""Settings of the gateway beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import ConfigError, EnvReader


class AuthMode(enum.Enum):
    # Every call needs an API key or a JWT (the default of `hivemesh serve gateway`).
    REQUIRED = "required"
    # No credentials: every caller acts as the tenant it names. For a laptop only; `hivemesh up`
    # turns it on when HIVEMESH_AUTH is unset, and says so.
    NONE = "none"


@dataclass(frozen=True)
class GatewayConfig:
    auth: AuthMode = AuthMode.REQUIRED
    # JWKS (a file path, or an https:// URL) whose keys verify bearer JWTs; None: JWTs are refused.
    jwt_jwks: str | None = None
    # When set, a JWT must carry exactly this issuer (iss) / this audience (aud).
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    # The JWT claim that names the caller's tenant.
    jwt_tenant_claim: str = "tenant_id"
    # The JWT claim that names the caller's role: "viewer" may only read; absent or "operator",
    # every call.
    jwt_role_claim: str = "hivemesh_role"
    # Tolerated clock skew when checking exp and nbf.
    jwt_leeway_s: float = 30.0
    # Per-tenant token bucket: sustained calls per second and burst size; 0 turns limiting off.
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    # Calls of any kind, and streams (ExecuteTask, WatchTask; they count as calls too), one tenant
    # may have open at once in one gateway process. In-flight calls must stay below the server's
    # HIVEMESH_MAX_CONCURRENT_RPCS, so that no tenant can hold every slot.
    tenant_max_in_flight: int = 128
    tenant_max_streams: int = 64
    # Failed authentications (calls without credentials included) per peer address: sustained per
    # second, and burst; a rate of 0 turns the limit off.
    auth_failure_rate_per_s: float = 10.0
    auth_failure_burst: int = 30
    # A rejected API key is answered from memory this long, without a lookup; 0 turns that off.
    rejected_key_ttl_s: float = 30.0
    # Tasks waiting on the queue beyond which SubmitTask answers RESOURCE_EXHAUSTED with RetryInfo.
    queue_max_depth: int = 10000
    # Each task is queued for the side of the planner's canary its session is on (the same
    # HIVEMESH_STICKY_SESSIONS the planner reads).
    sticky_sessions: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GatewayConfig:
        reader = EnvReader(os.environ if env is None else env)
        text, number = reader.optional, reader.number
        raw_auth = (text("HIVEMESH_AUTH") or AuthMode.REQUIRED.value).lower()
        try:
            auth = AuthMode(raw_auth)
        except ValueError:
            raise ConfigError(f"HIVEMESH_AUTH must be 'required' or 'none', got {raw_auth!r}") from None
        rate = number("HIVEMESH_RATE_LIMIT", cls.rate_limit_per_s)
        burst = number("HIVEMESH_RATE_LIMIT_BURST", max(1.0, rate * 2))
        if rate > 0 and burst < 1:
            raise ConfigError("HIVEMESH_RATE_LIMIT_BURST must be at least 1 when rate limiting is on")
        in_flight = reader.integer("HIVEMESH_TENANT_MAX_IN_FLIGHT", cls.tenant_max_in_flight, minimum=1)
        streams = reader.integer("HIVEMESH_TENANT_MAX_STREAMS", cls.tenant_max_streams, minimum=1)
        if streams > in_flight:
            raise ConfigError(
                f"HIVEMESH_TENANT_MAX_STREAMS ({streams}) must not exceed HIVEMESH_TENANT_MAX_IN_FLIGHT "
                f"({in_flight}): every stream is also a call in flight"
            )
        return cls(
            auth=auth,
            jwt_jwks=text("HIVEMESH_JWT_JWKS"),
            jwt_issuer=text("HIVEMESH_JWT_ISSUER"),
            jwt_audience=text("HIVEMESH_JWT_AUDIENCE"),
            jwt_tenant_claim=text("HIVEMESH_JWT_TENANT_CLAIM") or cls.jwt_tenant_claim,
            jwt_role_claim=text("HIVEMESH_JWT_ROLE_CLAIM") or cls.jwt_role_claim,
            jwt_leeway_s=reader.seconds("HIVEMESH_JWT_LEEWAY", cls.jwt_leeway_s),
            rate_limit_per_s=rate,
            rate_limit_burst=int(burst),
            tenant_max_in_flight=in_flight,
            tenant_max_streams=streams,
            auth_failure_rate_per_s=reader.number("HIVEMESH_AUTH_FAILURE_RATE", cls.auth_failure_rate_per_s),
            auth_failure_burst=reader.integer(
                "HIVEMESH_AUTH_FAILURE_BURST", cls.auth_failure_burst, minimum=1
            ),
            rejected_key_ttl_s=reader.seconds("HIVEMESH_AUTH_REJECTED_KEY_TTL", cls.rejected_key_ttl_s),
            queue_max_depth=reader.integer("HIVEMESH_QUEUE_MAX_DEPTH", cls.queue_max_depth, minimum=1),
            sticky_sessions=reader.boolean("HIVEMESH_STICKY_SESSIONS", default=False),
        )
