"""Wiring of the gateway service: task system, API keys, JWT verification, rate limits, the
failure budget per peer, the limits per tenant, the tool service for tools called directly and
memory for its counts."""

from __future__ import annotations

import logging
import sys

from hivemesh.gateway.auth import Authenticator
from hivemesh.gateway.config import AuthMode, GatewayConfig
from hivemesh.gateway.failures import FailureBudget, ScreenedKeys
from hivemesh.gateway.jwt_auth import JwtVerifier
from hivemesh.gateway.keys import ApiKeyStore
from hivemesh.gateway.memory import GrpcMemory
from hivemesh.gateway.ratelimit import InProcessTokenBucket, RateLimiter, RedisTokenBucket
from hivemesh.gateway.service import Gateway
from hivemesh.gateway.servicer import GatewayServicer
from hivemesh.gateway.tenant_limits import TenantLimits
from hivemesh.gateway.tools import GrpcTools
from hivemesh.gateway.v1 import gateway_service_pb2_grpc as pb_grpc
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import ConfigError, Settings
from hivemesh.mesh.credentials import minter_for
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.releases import ASKS, SideMap
from hivemesh.mesh.server import ServiceApp
from hivemesh.mesh.sql import make_engine, sqlite_url
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.gauges import QueueGauges
from hivemesh.tasks.system import shared_task_system

_log = logging.getLogger(__name__)

DEV_MODE_WARNING = (
    "hivemesh: WARNING: authentication is OFF (HIVEMESH_AUTH=none): anyone who can reach the gateway "
    "acts as any tenant. Never expose this gateway beyond your machine."
)


def key_store(settings: Settings) -> ApiKeyStore:
    """API keys live in the shared database when one is configured, else in SQLite."""
    return ApiKeyStore(make_engine(settings.database_url or sqlite_url(settings.data_dir / "gateway.db")))


def build(settings: Settings, channels: ChannelFactory, metrics: Metrics) -> ServiceApp:
    return build_app(settings, GatewayConfig.from_env(), metrics, channels=channels)


def build_app(
    settings: Settings,
    config: GatewayConfig,
    metrics: Metrics | None = None,
    *,
    keys: ApiKeyStore | None = None,
    channels: ChannelFactory | None = None,
) -> ServiceApp:
    """The gateway; ``keys``: the API key store to use instead of the one ``settings`` names;
    ``channels``: where the tool and memory services are, for tools called directly and the counts
    of a tenant's memory (without it ListTools, InvokeTool and GetMemoryUsage answer UNIMPLEMENTED)."""
    server_limit = settings.server.max_concurrent_rpcs
    if config.tenant_max_in_flight >= server_limit:
        raise ConfigError(
            f"HIVEMESH_TENANT_MAX_IN_FLIGHT ({config.tenant_max_in_flight}) must be below "
            f"HIVEMESH_MAX_CONCURRENT_RPCS ({server_limit}), or one tenant could take every slot"
        )
    tasks = shared_task_system(settings, TaskConfig.from_env())
    keys = key_store(settings) if keys is None else keys
    tokens = (
        JwtVerifier(
            config.jwt_jwks,
            tenant_claim=config.jwt_tenant_claim,
            role_claim=config.jwt_role_claim,
            issuer=config.jwt_issuer,
            audience=config.jwt_audience,
            leeway_s=config.jwt_leeway_s,
        )
        if config.jwt_jwks
        else None
    )
    limiter: RateLimiter | None = None
    if config.rate_limit_per_s > 0:
        limiter = (
            RedisTokenBucket(
                tasks.redis,
                config.rate_limit_per_s,
                config.rate_limit_burst,
                prefix=tasks.config.redis_prefix,
            )
            if tasks.redis is not None
            else InProcessTokenBucket(config.rate_limit_per_s, config.rate_limit_burst)
        )
    if config.auth is AuthMode.NONE:
        print(DEV_MODE_WARNING, file=sys.stderr)
        _log.warning("authentication is off (HIVEMESH_AUTH=none)")
    failures = (
        FailureBudget(config.auth_failure_rate_per_s, config.auth_failure_burst)
        if config.auth_failure_rate_per_s > 0
        else None
    )
    auth = Authenticator(
        config.auth,
        ScreenedKeys(keys, rejected_ttl_s=config.rejected_key_ttl_s),
        tokens,
        limiter,
        rate_per_s=config.rate_limit_per_s,
        failures=failures,
    )
    limits = TenantLimits(config.tenant_max_in_flight, config.tenant_max_streams)
    tools = GrpcTools(channels) if channels is not None else None
    memory = GrpcMemory(channels) if channels is not None else None
    # With sticky sessions, the gateway queues each task for the side of the planner's canary its
    # session is on (it asks each side which release it runs, through the mesh).
    sides = (
        SideMap(channels, ASKS["gateway"], sticky=True)
        if channels is not None and config.sticky_sessions
        else None
    )
    gateway = Gateway(
        tasks, settings, minter_for(settings), tools, memory, sides, queue_max_depth=config.queue_max_depth
    )
    servicer = GatewayServicer(gateway, auth, limits)
    return ServiceApp(
        name="gateway",
        # Garbage costs what a call without credentials costs, before anyone can authenticate it.
        screen=failures.undecodable if failures is not None and config.auth is not AuthMode.NONE else None,
        register=lambda server: pb_grpc.add_GatewayServiceServicer_to_server(servicer, server),
        components=[tasks, keys, *([QueueGauges(tasks.queue, metrics)] if metrics is not None else [])],
        public=True,
    )
