"""Settings of the task system beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import DEFAULT_REDIS_PREFIX, ConfigError, RedisKeys

# Missed heartbeats after which a worker pool is declared dead.
WORKER_SILENCE_BEATS = 5


@dataclass(frozen=True)
class TaskConfig:
    # Prefix of every Redis key of the queue and of the wake-up channels (``RedisKeys.prefix``).
    redis_prefix: str = DEFAULT_REDIS_PREFIX
    # The Redis consumer group of the planner worker pool; pools with different groups each get
    # every task (use one group per pool that should share the work).
    consumer_group: str = "planner"
    # How often queued-but-lost tasks are looked for (tasks SUBMITTED or WORKING in the log that the
    # Redis queue does not hold, e.g. after Redis lost its last writes). 0 turns the sweep off.
    sweep_interval_s: float = 5.0
    # How often a planner worker pool tells the queue it is alive. A pool silent for
    # ``WORKER_SILENCE_BEATS`` beats is declared dead and its claims are taken over at once.
    worker_heartbeat_s: float = 2.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TaskConfig:
        e = os.environ if env is None else env
        prefix = RedisKeys.from_env(e).prefix
        group = e.get("HIVEMESH_QUEUE_GROUP", "").strip() or cls.consumer_group
        raw = e.get("HIVEMESH_QUEUE_SWEEP_INTERVAL", "").strip()
        try:
            interval = float(raw) if raw else cls.sweep_interval_s
        except ValueError:
            raise ConfigError(
                f"HIVEMESH_QUEUE_SWEEP_INTERVAL must be a number of seconds, got {raw!r}"
            ) from None
        if interval < 0:
            raise ConfigError(f"HIVEMESH_QUEUE_SWEEP_INTERVAL must not be negative, got {raw!r}")
        raw_beat = e.get("HIVEMESH_WORKER_HEARTBEAT", "").strip()
        try:
            beat = float(raw_beat) if raw_beat else cls.worker_heartbeat_s
        except ValueError:
            raise ConfigError(
                f"HIVEMESH_WORKER_HEARTBEAT must be a number of seconds, got {raw_beat!r}"
            ) from None
        if not beat > 0:
            raise ConfigError(f"HIVEMESH_WORKER_HEARTBEAT must be more than 0, got {raw_beat!r}")
        return cls(
            redis_prefix=prefix, consumer_group=group, sweep_interval_s=interval, worker_heartbeat_s=beat
        )
