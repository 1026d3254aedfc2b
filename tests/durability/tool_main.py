"""A tool service process for the rolling-restart test: ``python -m tests.durability.tool_main``.

The real tool service (servicer, executor, the idempotency store the settings choose, the mesh
credential check, graceful shutdown on SIGTERM) on ``HIVEMESH_TOOL_PORT``, offering one tool: the
counting ``calculator`` of ``tests.durability.agent``, which records each real execution in
``DURABILITY_EFFECTS_URL`` so that side effects can be counted across processes and restarts.
Each execution takes ``DURABILITY_TOOL_WORK`` seconds (default 0.02) before its side effect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.credentials import guard_for
from hivemesh.mesh.metrics import Metrics
from hivemesh.mesh.server import MeshServer, ServiceApp, run_until_signal
from hivemesh.mesh.sql import make_engine
from hivemesh.tool.app import idempotency_store
from hivemesh.tool.config import ToolConfig
from hivemesh.tool.executor import Executor
from hivemesh.tool.memory_records import MemoryRecords
from hivemesh.tool.model import ToolDeps
from hivemesh.tool.registry import Registry
from hivemesh.tool.scheduling import LoggingScheduler
from hivemesh.tool.servicer import ToolServicer
from hivemesh.tool.v1.tool_service_pb2_grpc import add_ToolServiceServicer_to_server
from tests.durability.agent import Switch, counting_calculator


async def serve() -> None:
    settings = Settings.from_env()
    effects = make_engine(os.environ["DURABILITY_EFFECTS_URL"], pool_size=4)
    channels = ChannelFactory(settings)
    store = idempotency_store(settings, ToolConfig.from_env())
    work_s = float(os.environ.get("DURABILITY_TOOL_WORK", "0.02"))
    registry = Registry([counting_calculator(effects, Switch(), work_s=work_s)])
    # The calculator keeps no records: the memory channel is never opened.
    deps = ToolDeps(records=MemoryRecords(lambda: channels.channel("memory")), scheduler=LoggingScheduler())
    executor = Executor(registry, deps, store)
    servicer = ToolServicer(registry, executor)
    app = ServiceApp(
        name="tool",
        guard=guard_for(settings, "tool"),
        register=lambda server: add_ToolServiceServicer_to_server(servicer, server),
        components=[store, executor],
    )
    server = MeshServer(app, settings.server, settings.ports["tool"], Metrics(), tls=settings.tls)
    try:
        await run_until_signal([server], settings.server.grace_period_s)
    finally:
        await channels.close()
        await effects.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(serve())
