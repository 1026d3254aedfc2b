"""A worker that claims one task, renews its claim and never finishes: the benchmark kills it."""

from __future__ import annotations

import asyncio
import sys

from hivemesh.mesh.config import Settings
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem


async def hold() -> None:
    settings = Settings.from_env()
    config = TaskConfig.from_env()
    tasks = TaskSystem(settings, config)
    await tasks.start()
    worker, lease = "doomed-worker", config.visibility_timeout_s
    while (claim := await tasks.queue.claim(worker, lease)) is None:  # noqa: ASYNC110 - a worker polls
        await asyncio.sleep(0.01)
    print(claim.task_id, flush=True)
    while True:  # the heartbeat of a live worker
        await asyncio.sleep(config.visibility_timeout_s / 3)
        await tasks.queue.extend(claim.task_id, "doomed-worker", config.visibility_timeout_s)


if __name__ == "__main__":
    sys.exit(asyncio.run(hold()))
