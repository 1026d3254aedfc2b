"""The parts of an agent the durability tests fix: a language that always routes to the
``calculator`` tool, a memory that remembers nothing, and a counting ``calculator`` that records
every real execution (its side effect) in a SQL table, so exactly-once can be counted across
processes. The tool service in front of it is the real one, with its real idempotency store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Annotated

from sqlalchemy import Column, Integer, MetaData, String, Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.common.v1.scope_pb2 import Scope
from hivemesh.language.v1.language_service_pb2 import (
    GenerateRequest,
    GenerateResponse,
    Slot,
    UnderstandResponse,
)
from hivemesh.memory.v1.memory_service_pb2 import MemoryHit, Turn
from hivemesh.mesh.channels import ChannelFactory
from hivemesh.mesh.config import Settings
from hivemesh.mesh.errors import Unavailable
from hivemesh.mesh.server import ServiceApp
from hivemesh.planner.ports import UserContext
from hivemesh.tool.decorator import Arg, FunctionTool, tool
from hivemesh.tool.executor import Executor
from hivemesh.tool.memory_records import MemoryRecords
from hivemesh.tool.model import Fill, Serves, ToolDeps, ToolOutput
from hivemesh.tool.registry import Registry
from hivemesh.tool.scheduling import LoggingScheduler
from hivemesh.tool.servicer import ToolServicer
from hivemesh.tool.stores.sql import SqlIdempotencyStore
from hivemesh.tool.v1.tool_service_pb2_grpc import add_ToolServiceServicer_to_server

_metadata = MetaData()
effects = Table(
    "durability_effects",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("expression", String(256), nullable=False),
)


class ScriptedLanguage:
    """Understands every request as a calculation of its own text."""

    async def understand(
        self,
        text: str,
        context: Sequence[str],
        time_zone: str = "",
        intents: Sequence[str] = (),
    ) -> UnderstandResponse:
        return UnderstandResponse(
            text=text, intent="calculator", confidence=1.0, slots=[Slot(name="expression", text=text)]
        )

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateResponse]:
        yield GenerateResponse(text_delta=request.messages[-1].content)


class StallingLanguage(ScriptedLanguage):
    """Starts the same answer in two deltas, then never finishes it: a run on it stays mid-answer
    until its worker dies."""

    async def generate(self, request: GenerateRequest) -> AsyncIterator[GenerateResponse]:
        answer = request.messages[-1].content
        yield GenerateResponse(text_delta=answer[:3])
        yield GenerateResponse(text_delta=answer[3:6])
        await asyncio.Event().wait()


class NoMemory:
    async def get_context(self, scope: Scope) -> UserContext:
        return UserContext([])

    async def append_turns(self, scope: Scope, turns: Sequence[Turn], request_id: str) -> None:
        return None

    async def remember(self, scope: Scope, text: str, request_id: str) -> str:
        return request_id

    async def recall(self, scope: Scope, text: str, top_k: int) -> list[MemoryHit]:
        return []


class Switch:
    """Whether the calculator's downstream is broken (the poison test's cause, fixed later)."""

    def __init__(self) -> None:
        self.broken = False


def counting_calculator(engine: AsyncEngine, switch: Switch, *, work_s: float = 0.02) -> FunctionTool:
    @tool(
        name="calculator",
        side_effects=True,
        timeout_s=10.0,
        max_concurrency=64,
        serves=Serves("calculator", {"expression": Fill("expression")}),
    )
    async def calculator(expression: Annotated[str, Arg(min_length=1)]) -> ToolOutput:
        """Record one execution of ``expression`` (the side effect), then answer.

        Args:
            expression: what to compute.
        """
        if switch.broken:
            raise Unavailable("the calculator's backend is down", reason="BACKEND_DOWN")
        await asyncio.sleep(work_s)  # long enough that a killed worker is often mid-call
        async with engine.begin() as conn:
            await conn.execute(effects.insert().values(expression=expression))
        return ToolOutput({"value": expression}, f"computed {expression}")

    return calculator


async def create_effects(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_metadata.create_all)


async def effect_counts(engine: AsyncEngine) -> dict[str, int]:
    query = select(effects.c.expression, func.count()).group_by(effects.c.expression)
    async with engine.connect() as conn:
        return {str(e): int(n) for e, n in (await conn.execute(query)).all()}


def tool_app(
    settings: Settings, database_url: str, engine: AsyncEngine, switch: Switch, *, work_s: float = 0.02
) -> ServiceApp:
    """The real tool service around the counting calculator, idempotency store in PostgreSQL."""
    registry = Registry([counting_calculator(engine, switch, work_s=work_s)])
    store = SqlIdempotencyStore(database_url)
    channels = ChannelFactory(settings)
    # The calculator keeps no records: the memory channel is never opened.
    deps = ToolDeps(records=MemoryRecords(lambda: channels.channel("memory")), scheduler=LoggingScheduler())
    executor = Executor(registry, deps, store)
    servicer = ToolServicer(registry, executor)
    return ServiceApp(
        name="tool",
        register=lambda server: add_ToolServiceServicer_to_server(servicer, server),
        components=[store, executor],
    )
