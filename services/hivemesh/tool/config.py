"""Settings of the tool service beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hivemesh.mesh.config import ConfigError, RedisKeys


@dataclass(frozen=True)
class ToolConfig:
    # JSON file naming the MCP servers to start (see docs/tools.md); None: no MCP servers.
    mcp_servers: Path | None = None
    # Seed of the random source of roll_dice and flip_coin; None: the operating system's randomness.
    random_seed: int | None = None
    # How long the outcome of an idempotent call answers repeats of its key.
    idempotency_ttl_s: float = 24 * 3600.0
    # Worker processes for cpu_bound tools (calculator, convert_units): as many of their calls run at once.
    worker_processes: int = 2
    # Worker threads for the other synchronous tools.
    worker_threads: int = 8
    # Prefix of the idempotency records in Redis (``RedisKeys.tool_idempotency``, from
    # HIVEMESH_REDIS_PREFIX).
    redis_prefix: str = RedisKeys().tool_idempotency

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ToolConfig:
        e = os.environ if env is None else env
        servers = e.get("HIVEMESH_MCP_SERVERS", "").strip()
        seed = e.get("HIVEMESH_TOOL_RANDOM_SEED", "").strip()
        ttl = e.get("HIVEMESH_TOOL_IDEMPOTENCY_TTL", "").strip()
        processes = _count(e, "HIVEMESH_TOOL_PROCESSES", cls.worker_processes)
        threads = _count(e, "HIVEMESH_TOOL_THREADS", cls.worker_threads)
        try:
            seed_value = int(seed) if seed else None
        except ValueError:
            raise ConfigError(f"HIVEMESH_TOOL_RANDOM_SEED must be an integer, got {seed!r}") from None
        try:
            ttl_value = float(ttl) if ttl else cls.idempotency_ttl_s
        except ValueError:
            raise ConfigError(
                f"HIVEMESH_TOOL_IDEMPOTENCY_TTL must be a number of seconds, got {ttl!r}"
            ) from None
        if ttl_value <= 0:
            raise ConfigError(f"HIVEMESH_TOOL_IDEMPOTENCY_TTL must be positive, got {ttl!r}")
        path = Path(servers).expanduser() if servers else None
        if path is not None and not path.is_file():
            raise ConfigError(f"HIVEMESH_MCP_SERVERS names {str(path)!r}, which is not a file")
        return cls(
            mcp_servers=path,
            random_seed=seed_value,
            idempotency_ttl_s=ttl_value,
            worker_processes=processes,
            worker_threads=threads,
            redis_prefix=RedisKeys.from_env(e).tool_idempotency,
        )


def _count(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {raw!r}")
    return value
