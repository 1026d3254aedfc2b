"""Claims by side of the planner's canary (sticky sessions), on every adapter: a task queued for one
side goes only to that side's workers or to a worker that claims for any side; a task for any side
goes to every worker; handing a task on to its side counts no delivery; a task queued before the
queue had sides (migration 0007) is for any worker."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.common.v1.task_pb2 import TaskEvent
from hivemesh.mesh.config import Settings
from hivemesh.mesh.sides import CANARY, STABLE
from hivemesh.mesh.sql import make_engine, sqlite_url
from hivemesh.tasks.config import TaskConfig
from hivemesh.tasks.log import MIGRATIONS
from hivemesh.tasks.system import TaskSystem
from tests.tasks.stores import postgres_database
from tests.tasks.test_log import new_task


async def test_a_worker_claims_the_tasks_of_its_side_and_those_for_any(any_tasks: TaskSystem) -> None:
    on_canary, _ = await any_tasks.submit(new_task(), trace={}, side=CANARY)
    on_stable, _ = await any_tasks.submit(new_task(), trace={}, side=STABLE)
    anywhere, _ = await any_tasks.submit(new_task(), trace={})

    stable_claims = [await any_tasks.claim("stable-1", 30, side=STABLE) for _ in range(3)]
    assert {c.task_id for c in stable_claims if c is not None} == {on_stable.task_id, anywhere.task_id}
    assert stable_claims[-1] is None  # the canary's task waits for the canary

    canary = await any_tasks.claim("canary-1", 30, side=CANARY)
    assert canary is not None
    assert (canary.task_id, canary.delivery_count) == (on_canary.task_id, 1)
    assert await any_tasks.claim("canary-1", 30, side=CANARY) is None


async def test_a_worker_for_any_side_claims_every_task(any_tasks: TaskSystem) -> None:
    submitted = {
        (await any_tasks.submit(new_task(), trace={}, side=side))[0].task_id for side in (CANARY, STABLE, "")
    }
    claimed = {c.task_id for c in [await any_tasks.claim("any", 30) for _ in range(3)] if c is not None}
    assert claimed == submitted


@pytest.mark.parametrize("side", [STABLE, CANARY])
async def test_an_answered_task_goes_back_to_the_side_it_is_given(any_tasks: TaskSystem, side: str) -> None:
    task, _ = await any_tasks.submit(new_task(), trace={}, side=side)
    assert await any_tasks.claim("w1", 30, side=side) is not None
    asked = TaskEvent()
    asked.input_requested.question = "which unit?"
    await any_tasks.log.append(task.task_id, asked)
    await any_tasks.queue.ack(task.task_id, "w1")
    await any_tasks.answer(task.task_id, "km", side=side)

    other = CANARY if side == STABLE else STABLE
    assert await any_tasks.claim("other", 30, side=other) is None
    again = await any_tasks.claim("w2", 30, side=side)
    assert again is not None
    assert (again.task_id, again.delivery_count) == (task.task_id, 1)


async def _migrate(engine: AsyncEngine, revision: str) -> None:
    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        config.attributes["version_table"] = "task_alembic_version"
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_tasks_queued_before_the_side_column_are_for_any_worker(
    database: str, settings: Settings, tmp_path: Path
) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = (
            sqlite_url(tmp_path / "tasks.db")
            if database == "sqlite"
            else await stack.enter_async_context(postgres_database())
        )
        engine = make_engine(url)
        stack.push_async_callback(engine.dispose)
        await _migrate(engine, "0006")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO task_queue (task_id, tenant_id, available_at, enqueued_at, "
                    "delivery_count, trace, dead) VALUES ('old', 'acme', 0, 0, 0, '{}', false)"
                )
            )
        system = TaskSystem(replace(settings, database_url=url), TaskConfig(sweep_interval_s=0))
        await system.start()  # migrates to the newest revision
        stack.push_async_callback(system.stop, 0)
        claim = await system.claim("canary-1", 30, side=CANARY)
        assert claim is not None
        assert claim.task_id == "old"
