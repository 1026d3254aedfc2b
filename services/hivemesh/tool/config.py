"""Settings of the tool service beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hivemesh.mesh.config import ConfigError, EnvReader, RedisKeys


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
        reader = EnvReader(e)
        servers = reader.optional("HIVEMESH_MCP_SERVERS")
        path = Path(servers).expanduser() if servers else None
        if path is not None and not path.is_file():
            raise ConfigError(f"HIVEMESH_MCP_SERVERS names {str(path)!r}, which is not a file")
        return cls(
            mcp_servers=path,
            random_seed=reader.optional_integer("HIVEMESH_TOOL_RANDOM_SEED"),
            idempotency_ttl_s=reader.seconds(
                "HIVEMESH_TOOL_IDEMPOTENCY_TTL", cls.idempotency_ttl_s, minimum=0.001
            ),
            worker_processes=reader.integer("HIVEMESH_TOOL_PROCESSES", cls.worker_processes, minimum=1),
            worker_threads=reader.integer("HIVEMESH_TOOL_THREADS", cls.worker_threads, minimum=1),
            redis_prefix=RedisKeys.from_env(e).tool_idempotency,
        )
