"""Settings of the task system beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import DEFAULT_REDIS_PREFIX, EnvReader, RedisKeys

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
    # How long a claimed task stays a worker's without a heartbeat before another may claim it.
    visibility_timeout_s: float = 120.0
    # Deliveries of a task (its first run included) before it goes to the dead-letter queue.
    max_attempts: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> TaskConfig:
        e = os.environ if env is None else env
        reader = EnvReader(e)
        return cls(
            redis_prefix=RedisKeys.from_env(e).prefix,
            consumer_group=reader.text("HIVEMESH_QUEUE_GROUP", cls.consumer_group),
            sweep_interval_s=reader.seconds("HIVEMESH_QUEUE_SWEEP_INTERVAL", cls.sweep_interval_s),
            worker_heartbeat_s=reader.seconds(
                "HIVEMESH_WORKER_HEARTBEAT", cls.worker_heartbeat_s, minimum=0.001
            ),
            visibility_timeout_s=reader.seconds(
                "HIVEMESH_VISIBILITY_TIMEOUT", cls.visibility_timeout_s, minimum=0.1
            ),
            max_attempts=reader.integer("HIVEMESH_MAX_ATTEMPTS", cls.max_attempts, minimum=1),
        )
