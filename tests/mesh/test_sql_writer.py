"""The group-commit writer and the reader on SQLite and PostgreSQL: concurrent operations share
transactions in order, a refusal fails alone, any other failure loses no neighbour's write, and on
SQLite a lock held by another process is waited for, not failed on."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.mesh import sql
from hivemesh.mesh.errors import FailedPrecondition
from hivemesh.mesh.metrics import Metrics


def _table() -> sa.Table:
    """A table of its own for each test (the PostgreSQL database is shared)."""
    return sa.Table(
        f"writer_rows_{uuid.uuid4().hex[:8]}",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("value", sa.String(32), nullable=False),
    )


_rows = _table()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        created = sql.make_engine(sql.sqlite_url(tmp_path / "writer.db"))
    else:
        created = sql.make_engine(
            os.environ.get("HIVEMESH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
        )
    async with created.begin() as conn:
        await conn.run_sync(_rows.metadata.drop_all)
        await conn.run_sync(_rows.metadata.create_all)
    try:
        yield created
    finally:
        async with created.begin() as conn:
            await conn.run_sync(_rows.metadata.drop_all)
        await created.dispose()


def _insert(row_id: int, value: str) -> sa.Insert:
    return _rows.insert().values(id=row_id, value=value)


async def _values(engine: AsyncEngine) -> dict[int, str]:
    reader = sql.Reader(engine)
    try:
        rows = await reader.run(lambda conn: conn.execute(sa.select(_rows.c.id, _rows.c.value)).all())
    finally:
        reader.close()
    return {int(r[0]): str(r[1]) for r in rows}


async def test_concurrent_operations_share_transactions_in_order(engine: AsyncEngine) -> None:
    writer = sql.Writer(engine)
    seen: list[int] = []

    def append(n: int) -> Callable[[Connection], int]:
        def op(conn: Connection) -> int:
            conn.execute(_insert(n, f"v{n}"))
            # Each operation sees the ones queued before it in the same transaction.
            count = int(conn.execute(sa.select(sa.func.count()).select_from(_rows)).scalar_one())
            seen.append(n)
            return count

        return op

    try:
        counts = await asyncio.gather(*(writer.run(append(n)) for n in range(50)))
    finally:
        await writer.close()
    assert seen == list(range(50))
    assert counts == list(range(1, 51))
    assert writer.transactions < 50  # batched: far fewer transactions than operations
    assert await _values(engine) == {n: f"v{n}" for n in range(50)}


async def test_a_refusal_fails_alone_and_a_failure_loses_no_neighbour(engine: AsyncEngine) -> None:
    writer = sql.Writer(engine)

    def refuse(conn: Connection) -> None:
        raise FailedPrecondition("not now", reason="NOT_NOW")

    try:
        await writer.run(lambda conn: conn.execute(_insert(1, "first")).rowcount)
        results = await asyncio.gather(
            writer.run(lambda conn: conn.execute(_insert(2, "before")).rowcount),
            writer.run(refuse),
            writer.run(lambda conn: conn.execute(_insert(1, "duplicate")).rowcount),  # integrity error
            writer.run(lambda conn: conn.execute(_insert(3, "after")).rowcount),
            return_exceptions=True,
        )
    finally:
        await writer.close()
    assert results[0] == 1
    assert isinstance(results[1], FailedPrecondition)
    assert isinstance(results[2], sa.exc.IntegrityError)
    assert results[3] == 1
    assert await _values(engine) == {1: "first", 2: "before", 3: "after"}


async def test_sqlite_waits_for_a_lock_held_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    engine = sql.make_engine(sql.sqlite_url(path))
    async with engine.begin() as conn:
        await conn.run_sync(_rows.metadata.create_all)
    other = sqlite3.connect(path, isolation_level=None, timeout=30)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    writer = sql.Writer(engine)
    try:
        pending = asyncio.ensure_future(writer.run(lambda conn: conn.execute(_insert(1, "x")).rowcount))
        await asyncio.sleep(0.3)
        assert not pending.done()  # waiting on the lock, not failed
        other.execute("COMMIT")
        assert await asyncio.wait_for(pending, 10) == 1
    finally:
        other.close()
        await writer.close()
        await engine.dispose()


async def test_the_writers_tallies_are_exported_as_metrics(tmp_path: Path) -> None:
    engine = sql.make_engine(sql.sqlite_url(tmp_path / "metrics.db"))
    async with engine.begin() as conn:
        await conn.run_sync(_rows.metadata.create_all)
    metrics = Metrics()

    def scraped(name: str) -> float:
        lines = generate_latest(metrics.registry).decode().splitlines()
        return float(next(line.split()[1] for line in lines if line.startswith(name + " ")))

    before = scraped("hivemesh_sql_transactions_total"), scraped("hivemesh_sql_write_operations_total")
    writer = sql.Writer(engine)

    def insert(n: int) -> Callable[[Connection], int]:
        return lambda conn: int(conn.execute(_insert(n, "m")).rowcount)

    try:
        await asyncio.gather(*(writer.run(insert(n)) for n in range(10)))
    finally:
        await writer.close()
        await engine.dispose()
    assert scraped("hivemesh_sql_write_operations_total") - before[1] == 10
    assert 1 <= scraped("hivemesh_sql_transactions_total") - before[0] <= 10
