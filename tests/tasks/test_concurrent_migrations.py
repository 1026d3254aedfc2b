"""Services started together on a fresh PostgreSQL database migrate it once, without racing."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

from hivemesh.mesh.sql import make_engine, run_migrations
from hivemesh.tasks.log import MIGRATIONS

pytestmark = pytest.mark.postgres
SERVER = os.environ.get("HIVEMESH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def test_four_processes_worth_of_migrations_at_once_on_a_fresh_database() -> None:
    name = f"hivemesh_fresh_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = SERVER.rsplit("/", 1)[0] + f"/{name}"
    engines = [make_engine(url) for _ in range(4)]
    try:
        await asyncio.gather(*(run_migrations(e, MIGRATIONS, "task_alembic_version") for e in engines))
        async with engines[0].connect() as conn:
            tables = set(
                (await conn.exec_driver_sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
                .scalars()
                .all()
            )
        assert {"task_tasks", "task_events", "task_queue", "task_workers"} <= tables
    finally:
        for engine in engines:
            await engine.dispose()
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()
