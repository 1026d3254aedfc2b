"""The SQL turn store's reads: they never take the write lock for a session with nothing to show,
refresh a live session's time to live when it matters, and never revive an expired one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.memory.adapters.sql_turns import REFRESH_SLACK_S, SqlTurnStore
from hivemesh.memory.adapters.tables import sessions
from hivemesh.memory.model import SessionKey, Turn
from hivemesh.memory.runtime import MIGRATIONS, VERSION_TABLE
from hivemesh.mesh.sql import make_engine, run_migrations, sqlite_url, transactions_committed
from tests.memory.harness import postgres_schema

TTL = 3600.0
T0 = 1_800_000_000.0
ANA = SessionKey("acme", "ana", "s1")


@asynccontextmanager
async def _engine(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if backend == "postgres":
        async with postgres_schema() as engine:
            yield engine
        return
    engine = make_engine(sqlite_url(tmp_path / "turns.db"))
    try:
        yield engine
    finally:
        await engine.dispose()


@asynccontextmanager
async def _store(backend: str, tmp_path: Path) -> AsyncIterator[tuple[SqlTurnStore, AsyncEngine]]:
    async with _engine(backend, tmp_path) as engine:
        await run_migrations(engine, MIGRATIONS, VERSION_TABLE)
        store = SqlTurnStore(engine)
        try:
            yield store, engine
        finally:
            await store.close()


async def _expire_at(engine: AsyncEngine, key: SessionKey) -> float | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(sessions.c.expire_at).where(
                    sessions.c.tenant_id == key.tenant_id,
                    sessions.c.user_id == key.user_id,
                    sessions.c.session_id == key.session_id,
                )
            )
        ).fetchone()
    return None if row is None else float(row[0])


async def _append(store: SqlTurnStore, text: str, now: float) -> int:
    return await store.append(ANA, [Turn(1, text, now, "t")], "", cap=50, ttl_s=TTL, now=now)


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reading_an_unknown_session_writes_nothing(backend: str, tmp_path: Path) -> None:
    async with _store(backend, tmp_path) as (store, engine):
        before = transactions_committed()
        assert await store.recent(ANA, limit=10, ttl_s=TTL, now=T0) == []
        assert transactions_committed() == before
        assert await _expire_at(engine, ANA) is None


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_read_refreshes_the_time_to_live_only_when_it_moves_by_more_than_the_slack(
    backend: str, tmp_path: Path
) -> None:
    async with _store(backend, tmp_path) as (store, engine):
        await _append(store, "hello", T0)
        assert await _expire_at(engine, ANA) == T0 + TTL

        soon = T0 + REFRESH_SLACK_S / 2
        before = transactions_committed()
        assert [t.text for t in await store.recent(ANA, limit=10, ttl_s=TTL, now=soon)] == ["hello"]
        assert transactions_committed() == before
        assert await _expire_at(engine, ANA) == T0 + TTL

        later = T0 + 2 * REFRESH_SLACK_S
        assert [t.text for t in await store.recent(ANA, limit=10, ttl_s=TTL, now=later)] == ["hello"]
        assert await _expire_at(engine, ANA) == later + TTL


@pytest.mark.parametrize("backend", BACKENDS)
async def test_an_expired_session_reads_empty_and_is_not_revived(backend: str, tmp_path: Path) -> None:
    async with _store(backend, tmp_path) as (store, engine):
        await _append(store, "old", T0)
        after = T0 + TTL + 1
        assert await store.recent(ANA, limit=10, ttl_s=TTL, now=after) == []
        assert await _expire_at(engine, ANA) == T0 + TTL
        # The next append starts the conversation again, without the expired turns.
        assert await _append(store, "new", after) == 1
        assert [t.text for t in await store.recent(ANA, limit=10, ttl_s=TTL, now=after)] == ["new"]
        assert await _expire_at(engine, ANA) == after + TTL
