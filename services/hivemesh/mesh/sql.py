"""SQL engines shared by the stores: SQLite embedded, PostgreSQL (asyncpg) when configured.

SQLite runs in WAL mode with every transaction opened as BEGIN IMMEDIATE: writers from several
processes (gateway, planner workers) then queue on the busy timeout instead of failing with
"database is locked" when a read transaction tries to upgrade to a write.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

P = ParamSpec("P")
R = TypeVar("R")


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, a busy timeout and immediate transactions."""
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


async def run_migrations(engine: AsyncEngine, script_location: Path, version_table: str) -> None:
    """Upgrade the schema to the newest alembic revision in ``script_location``."""
    from alembic import command  # noqa: PLC0415 - alembic is only needed at start-up
    from alembic.config import Config  # noqa: PLC0415

    def upgrade(connection: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(script_location))
        config.attributes["connection"] = connection
        config.attributes["version_table"] = version_table
        command.upgrade(config, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)


def uncancellable(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Run a store method to completion even when its caller is cancelled.

    A transaction cut off half way (a watcher that disconnects, a task canceled while it records
    an event) would leave its pooled connection mid-transaction; on SQLite that connection can
    hold the database lock while it waits to be cleaned up, and every other writer then times out.
    The caller still sees its cancellation at once; the statement finishes on its own. The store
    (the method's ``self``) keeps the operations still running, so ``settle(store)`` can let them
    end before its engine is disposed.
    """

    @functools.wraps(method)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        job = asyncio.ensure_future(method(*args, **kwargs))
        running: set[asyncio.Future[Any]] = vars(args[0]).setdefault(_IN_FLIGHT, set())
        running.add(job)
        job.add_done_callback(running.discard)
        return await asyncio.shield(job)

    return run


_IN_FLIGHT = "_hivemesh_uncancellable"


async def settle(*stores: object, timeout_s: float = 5.0) -> None:
    """Wait (up to ``timeout_s``) for the uncancellable operations still running on ``stores``."""
    running = [job for store in stores for job in vars(store).get(_IN_FLIGHT, ())]
    if running:
        await asyncio.wait(running, timeout=timeout_s)
