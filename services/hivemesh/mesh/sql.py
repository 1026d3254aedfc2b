"""SQL engines shared by the stores: SQLite embedded, PostgreSQL (asyncpg) when configured.

SQLite runs in WAL mode with every write transaction opened as BEGIN IMMEDIATE: writers from
several processes (gateway, planner workers) then queue on the busy timeout instead of failing with
"database is locked" when a read transaction tries to upgrade to a write. Reads go through
``reader(engine)`` or ``Reader``: each is a single statement in autocommit mode, which in WAL mode
sees the last committed state and never waits for, or holds up, a writer.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import sqlite3
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, cast

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

P = ParamSpec("P")
R = TypeVar("R")


def sqlite_url(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An async engine for ``url``; SQLite gets WAL, a busy timeout and immediate transactions."""
    if url.startswith("postgresql://"):
        url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    if not url.startswith("sqlite"):
        # Enough pooled connections that a busy process does not open (and close) overflow ones:
        # each new asyncpg connection costs a TCP handshake and a refused TLS attempt. No ping
        # before each use (a round trip on every checkout): a connection the server dropped fails
        # its statement once, which invalidates the pool, and the caller's retry gets a new one.
        return create_async_engine(
            url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=False, pool_recycle=300
        )
    engine = create_async_engine(url, connect_args={"timeout": 30})
    _configure_sqlite(engine.sync_engine)
    return engine


def _configure_sqlite(engine: Engine, *, busy_timeout_ms: int = 30_000) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A read is one statement, which SQLite runs on a snapshot of its own: no BEGIN needed.
        # The writer may have begun the transaction on the driver's connection itself.
        if conn.get_execution_options().get(_READ_ONLY):
            return
        if not getattr(conn.connection.dbapi_connection, "in_transaction", False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")


_READ_ONLY = "hivemesh_read_only"


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (pool, events) for transactions that only read: on SQLite they do not take
    the write lock. Writing through it is a mistake SQLite reports as "database is locked" at
    worst, never silently."""
    if is_sqlite(engine):
        return engine.execution_options(**{_READ_ONLY: True})
    # PostgreSQL: no BEGIN and ROLLBACK around a one-statement read (two round trips saved).
    return engine.execution_options(**{_READ_ONLY: True}, isolation_level="AUTOCOMMIT")


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
        if not is_sqlite(engine):
            # Services starting together on a fresh PostgreSQL database would race to create the
            # same tables: one migrates, the others wait for it and then find nothing to do.
            await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_migration_lock(version_table)})")
        await conn.run_sync(upgrade)


def _migration_lock(version_table: str) -> int:
    """A stable 63-bit advisory lock id per migration history."""
    return int.from_bytes(hashlib.sha256(version_table.encode()).digest()[:8], "big") >> 1


class Rows(Protocol):
    """What ``Statement.run`` returns: a sqlite3 cursor or SQLAlchemy's result. Rows index by
    position."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> Sequence[Any]: ...


Params = Mapping[str, Any]

# Named parameters (``:task_id``), as sqlite3 takes them from a dict.
_SQLITE_NAMED = sqlite_dialect.dialect(paramstyle="named")


class Statement:
    """A statement of a hot path, built once: the Core construct and its SQLite text.

    On SQLite the ``Writer`` and the ``Reader`` use synchronous sqlite3 connections; there ``run``
    hands the text straight to the driver, which keeps it prepared. What it skips, SQLAlchemy's
    work per execution (cache key, parameter processing, execution events, result wrapping), costs
    several times what SQLite itself spends on a write by key. On any other connection (PostgreSQL,
    aiosqlite) the construct is executed as usual. Errors are SQLAlchemy's either way
    (``IntegrityError``, ``OperationalError``...). An insert names its ``columns``: the parameters
    then give every one of them (no column defaults are filled in).
    """

    __slots__ = ("clause", "constants", "text")

    clause: Executable

    def __init__(self, clause: Executable, *, columns: Sequence[str] | None = None) -> None:
        if not isinstance(clause, ClauseElement):
            raise TypeError(f"not a statement: {clause!r}")
        self.clause = clause
        keys = None if columns is None else list(columns)
        compiled = cast("SQLCompiler", clause.compile(dialect=_SQLITE_NAMED, column_keys=keys))
        self.text = str(compiled)
        # Values the construct holds itself (``LIMIT 1``, ``state = 'done'``), bound by name too.
        self.constants = {
            name: bind.effective_value for bind, name in compiled.bind_names.items() if not bind.required
        }

    def run(self, conn: Connection, params: Params) -> Rows:
        driver = conn.connection.dbapi_connection
        if not isinstance(driver, sqlite3.Connection):
            return conn.execute(self.clause, params)
        bound = {**self.constants, **params} if self.constants else params
        try:
            return driver.execute(self.text, bound)
        except sqlite3.Error as exc:
            raise _wrapped(self.text, bound, exc) from exc

    def run_many(self, conn: Connection, rows: Sequence[Params]) -> None:
        """The statement once per row of parameters (one ``executemany``)."""
        driver = conn.connection.dbapi_connection
        if not isinstance(driver, sqlite3.Connection):
            conn.execute(self.clause, list(rows))
            return
        bound = [{**self.constants, **row} for row in rows] if self.constants else rows
        try:
            driver.executemany(self.text, bound)
        except sqlite3.Error as exc:
            raise _wrapped(self.text, bound, exc) from exc


def _wrapped(text: str, params: Any, error: sqlite3.Error) -> DBAPIError:
    """The SQLAlchemy exception that executing through SQLAlchemy would have raised."""
    return cast("DBAPIError", DBAPIError.instance(text, params, error, sqlite3.Error))


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


class Writer:
    """Group commit: the write operations of many callers run one after another in shared
    transactions, one transaction at a time.

    An operation is a plain function of a synchronous connection. The operations waiting when a
    transaction starts all go into it, in the order they were asked for, so each sees what the ones
    before it wrote; their callers learn their results only after the commit. An operation that
    raises a ``HivemeshError`` (a refusal decided before it wrote anything) fails alone. Any other
    error rolls the transaction back and each of its operations is run again in a transaction of
    its own, so one bad operation never fails or loses its neighbours' writes.

    On SQLite the batch runs on one thread with a synchronous connection to the same file (one
    thread hop per transaction instead of one per statement); the database's lock is then taken by
    this writer only, never waited for by two connections of one process. PostgreSQL runs the same
    functions on the async engine's connection.
    """

    def __init__(self, engine: AsyncEngine, *, max_batch: int = 256) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._pending: list[_Operation[Any]] = []
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._sync_engine: Engine | None = None
        self._inline_engine: Engine | None = None
        self._inline: Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._closing = False
        self.transactions = 0
        if is_sqlite(engine):
            url = engine.url.render_as_string(hide_password=False)
            self._sync_engine = _sync_sqlite_engine(url)
            # Tried first, on the event loop's thread: no thread hop and no contention for the GIL
            # with a writer thread. It never waits: if another process holds the database's write
            # lock, the batch goes to the thread, which waits on the busy timeout.
            self._inline_engine = _sync_sqlite_engine(url, busy_timeout_ms=0)
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="hivemesh-sql-writer")

    async def run(self, operation: Callable[[Connection], R]) -> R:
        """Run ``operation`` in the next transaction and return its result once committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append(_Operation(operation, future))
        self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._commit_forever(), name="sql-group-commit")
        return await future

    async def close(self) -> None:
        """Finish what is queued, then release the thread and the synchronous engine."""
        self._closing = True
        self._wake.set()
        if self._loop_task is not None:
            await self._loop_task
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        self._drop_inline()
        for sync_engine in (self._sync_engine, self._inline_engine):
            if sync_engine is not None:
                sync_engine.dispose()

    async def _commit_forever(self) -> None:
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                # Let the callbacks already due on the loop queue their writes too, so they share
                # this transaction instead of each paying for one.
                await asyncio.sleep(0)
                continue
            batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            try:
                outcomes = await self._commit(batch)
            except Exception as exc:
                if len(batch) == 1:
                    outcomes = [exc]
                else:
                    outcomes = []
                    for op in batch:
                        try:
                            outcomes.extend(await self._commit([op]))
                        except Exception as single:
                            outcomes.append(single)
            for op, outcome in zip(batch, outcomes, strict=True):
                if op.future.done():
                    continue
                if isinstance(outcome, _Failed):
                    op.future.set_exception(outcome.error)
                elif isinstance(outcome, BaseException):
                    op.future.set_exception(outcome)
                else:
                    op.future.set_result(outcome)

    async def _commit(self, batch: list[_Operation[Any]]) -> list[Any]:
        self.transactions += 1
        _TRANSACTIONS[0] += 1
        _OPERATIONS[0] += len(batch)
        if self._inline_engine is not None:
            results = self._commit_inline(batch)
            if results is not None:
                return results
        if self._sync_engine is not None and self._thread is not None:
            sync_engine = self._sync_engine

            def in_thread() -> list[Any]:
                with sync_engine.begin() as conn:
                    return _apply(conn, batch)

            return await asyncio.get_running_loop().run_in_executor(self._thread, in_thread)
        async with self._engine.begin() as conn:
            return await conn.run_sync(_apply, batch)

    def _commit_inline(self, batch: list[_Operation[Any]]) -> list[Any] | None:
        """The batch in one transaction on the event loop's thread; None when another process
        holds the write lock. The connection stays open from one transaction to the next, and the
        transaction is begun and committed on the driver's connection: a sequence of SQLAlchemy's
        connect, begin, commit and close costs more than a batch of small writes. An operation that
        executes through SQLAlchemy joins the transaction (the "begin" hook sees it open), and
        SQLAlchemy then commits it."""
        if self._inline is None:
            assert self._inline_engine is not None
            self._inline = self._inline_engine.connect()
        inline = self._inline
        driver = inline.connection.dbapi_connection
        assert isinstance(driver, sqlite3.Connection)
        try:
            driver.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_locked(exc):
                return None
            raise _wrapped("BEGIN IMMEDIATE", (), exc) from exc
        try:
            results = _apply(inline, batch)
            if inline.in_transaction():
                inline.commit()
            else:
                driver.execute("COMMIT")
        except BaseException:
            # Rolled back as the connection goes back to the pool; the next batch opens another.
            self._drop_inline()
            raise
        return results

    def _drop_inline(self) -> None:
        if self._inline is not None:
            inline, self._inline = self._inline, None
            inline.close()


class Reader:
    """Read-only transactions that never wait for a writer.

    On SQLite (WAL) a read by key takes microseconds and is never blocked by the writer, so it runs
    inline on the event loop's thread with a synchronous connection: no thread hop, no greenlet.
    Every read here is bounded (a page, one task's events), so none can hold the loop for long; the
    connection stays open from one read to the next (a checkout from the pool and its return cost
    more than a read by key). PostgreSQL reads run on the async engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = reader(engine)
        self._sync_engine = (
            _sync_sqlite_engine(engine.url.render_as_string(hide_password=False), read_only=True)
            if is_sqlite(engine)
            else None
        )
        self._held: Connection | None = None

    async def run(self, query: Callable[[Connection], R]) -> R:
        if self._sync_engine is not None:
            if self._held is None:
                self._held = self._sync_engine.connect()
            held = self._held
            try:
                result = query(held)
                if held.in_transaction():
                    held.rollback()  # SQLAlchemy's bookkeeping only: a read sends no BEGIN
            except BaseException:
                self._release()
                raise
            return result
        async with self._engine.connect() as conn:
            return await conn.run_sync(query)

    def close(self) -> None:
        self._release()
        if self._sync_engine is not None:
            self._sync_engine.dispose()

    def _release(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            held.close()


@dataclass
class _Operation(Generic[R]):
    function: Callable[[Connection], R]
    future: asyncio.Future[R]


@dataclass(frozen=True)
class _Failed:
    error: Exception


def _apply(conn: Connection, batch: list[_Operation[Any]]) -> list[Any]:
    from hivemesh.mesh.errors import HivemeshError  # noqa: PLC0415 - avoids an import cycle

    results: list[Any] = []
    for op in batch:
        try:
            results.append(op.function(conn))
        except HivemeshError as exc:
            results.append(_Failed(exc))
    return results


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _sync_sqlite_engine(async_url: str, *, read_only: bool = False, busy_timeout_ms: int = 30_000) -> Engine:
    engine = create_engine(async_url.replace("sqlite+aiosqlite://", "sqlite://", 1))
    _configure_sqlite(engine, busy_timeout_ms=busy_timeout_ms)
    return engine.execution_options(**{_READ_ONLY: True}) if read_only else engine


# Write transactions (and the operations they carried) of every ``Writer`` of this process,
# exported as metrics. A batch retried one by one after a failure counts each attempt.
_TRANSACTIONS = [0]
_OPERATIONS = [0]


def transactions_committed() -> int:
    return _TRANSACTIONS[0]


def operations_committed() -> int:
    return _OPERATIONS[0]
