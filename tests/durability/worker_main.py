"""A planner worker process for the durability tests: ``python -m tests.durability.worker_main``.

The real WorkerPool and Runner over the configured task system (``HIVEMESH_*``), with the scripted
language and memory of ``tests.durability.agent`` and the real tool client (``HIVEMESH_TOOL_ADDR``);
``DURABILITY_LANGUAGE=stalling`` gives it the language that never finishes an answer. Runs until
SIGTERM; the tests also kill it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from hivemesh.mesh.bulkhead import WaitingBulkhead
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.metrics import Metrics
from hivemesh.planner.clients import GrpcTools
from hivemesh.planner.config import PlannerConfig
from hivemesh.planner.runner import BuiltinRunner
from hivemesh.planner.worker import WorkerPool
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.system import TaskSystem
from tests.durability.agent import NoMemory, ScriptedLanguage, StallingLanguage


async def serve() -> None:
    settings = Settings.from_env()
    channels = ChannelFactory(settings)
    queue = TaskConfig.from_env()
    tasks = TaskSystem(settings, queue)
    config = PlannerConfig.from_env()
    tools_bulkhead = WaitingBulkhead("tool", config.downstream_concurrency)
    language = StallingLanguage if os.environ.get("DURABILITY_LANGUAGE") == "stalling" else ScriptedLanguage
    pool = WorkerPool(
        tasks,
        lambda: BuiltinRunner(language(), NoMemory(), GrpcTools(channels, tools_bulkhead)),
        settings,
        Metrics(),
        concurrency=config.workers,
        queue=queue,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await tasks.start()
    await pool.start()
    print(f"worker {pool.worker_id} ready", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await pool.stop(2.0)
        await tasks.stop(0)
        await channels.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve())
