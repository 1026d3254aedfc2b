"""Idempotency outcomes in a SQL table (SQLite file by default; PostgreSQL through asyncpg too).

A claim is a row in state ``pending`` with a lease (``expires_at``); finishing turns it into
``done`` with the outcome. Every change is conditional on the token of the claim it was given, so
a caller whose lease expired can never overwrite the outcome of the caller who took over.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import (
    Column,
    Float,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.mesh.sql import Statement, Writer, make_engine
from hivemesh.tool.idempotency import (
    INCARNATION_CHARS,
    Claim,
    Claimed,
    Finished,
    Running,
    claim_token,
    decode_output,
    encode_output,
    new_incarnation,
)
from hivemesh.tool.model import ToolOutput

_log = logging.getLogger(__name__)
_metadata = MetaData()
_table = Table(
    "tool_idempotency",
    _metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("token", String(32), nullable=False),
    Column("state", String(8), nullable=False),
    Column("output", Text, nullable=True),
    Column("expires_at", Float, nullable=False, index=True),
)
# The incarnation of each named tool service: claim tokens start with it, so a restarted service
# frees the claims its dead predecessor left pending (the calls it was running died with it).
_instances = Table(
    "tool_instances",
    _metadata,
    Column("name", String(256), primary_key=True),
    Column("incarnation", String(INCARNATION_CHARS), nullable=False),
)

# The statements of every tool call, built once (see ``Statement``).
_BY_KEY = _table.c.idempotency_key == bindparam("key")
_HELD_BY = and_(_BY_KEY, _table.c.token == bindparam("held_by"))
_READ = Statement(
    select(_table.c.fingerprint, _table.c.token, _table.c.state, _table.c.output, _table.c.expires_at).where(
        _BY_KEY
    )
)
_CLAIM_VALUES: dict[str, object] = {
    "fingerprint": bindparam("fingerprint"),
    "token": bindparam("token"),
    "state": "pending",
    "output": None,
    "expires_at": bindparam("expires_at"),
}
_INSERT_CLAIM = Statement(insert(_table).values(idempotency_key=bindparam("key"), **_CLAIM_VALUES))
_TAKE_OVER = Statement(update(_table).where(_HELD_BY).values(**_CLAIM_VALUES))
_FINISH = Statement(
    update(_table)
    .where(_HELD_BY)
    .values(state="done", output=bindparam("output"), expires_at=bindparam("expires_at"))
)
_RELEASE = Statement(delete(_table).where(_HELD_BY))


class SqlIdempotencyStore:
    """Claims, outcomes and releases run through a group-commit ``Writer``: the calls of many
    concurrent tool invocations share transactions."""

    def __init__(self, url: str, *, name: str | None = None) -> None:
        self._url = url
        self._name = name
        self._engine: AsyncEngine | None = None
        self._writer: Writer | None = None
        self.incarnation = new_incarnation()
        self.freed_at_start = 0

    async def start(self) -> None:
        self._engine = make_engine(self._url, pool_size=4)
        async with self._engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)
            await conn.execute(delete(_table).where(_table.c.expires_at < time.time()))
            if self._name is not None:
                self.freed_at_start = await conn.run_sync(self._succeed, self._name)
        if self.freed_at_start:
            _log.warning(
                "freed %d tool call(s) left pending by the previous incarnation of %s",
                self.freed_at_start,
                self._name,
            )
        self._writer = Writer(self._engine)

    def _succeed(self, conn: Connection, name: str) -> int:
        previous = conn.execute(select(_instances.c.incarnation).where(_instances.c.name == name)).scalar()
        freed = 0
        if previous:
            freed = conn.execute(
                delete(_table).where(_table.c.state == "pending", _table.c.token.startswith(previous))
            ).rowcount
            conn.execute(
                update(_instances).where(_instances.c.name == name).values(incarnation=self.incarnation)
            )
        else:
            conn.execute(insert(_instances).values(name=name, incarnation=self.incarnation))
        return int(freed)

    async def stop(self, grace_s: float) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the idempotency store is not started")
        return self._engine

    @property
    def _write(self) -> Writer:
        if self._writer is None:
            raise RuntimeError("the idempotency store is not started")
        return self._writer

    async def claim(self, key: str, fingerprint: str, lease_s: float) -> Claim:
        def take(conn: Connection) -> Claim | None:
            now = time.time()
            row = _READ.run(conn, {"key": key}).fetchone()
            token = claim_token(self.incarnation)
            if row is not None:
                held_fingerprint, held_by, state, output, expires_at = row
                if expires_at > now:
                    if state == "done" and output is not None:
                        return Finished(decode_output(output), held_fingerprint)
                    return Running(held_fingerprint)
            values = {"key": key, "fingerprint": fingerprint, "token": token, "expires_at": now + lease_s}
            if row is None:
                _INSERT_CLAIM.run(conn, values)
                return Claimed(token)
            # An expired claim or outcome: take it over, unless someone else just did.
            taken = _TAKE_OVER.run(conn, {**values, "held_by": held_by})
            return Claimed(token) if taken.rowcount == 1 else None

        while True:
            try:
                claimed = await self._write.run(take)
            except IntegrityError:
                continue  # another process inserted first; read what it holds
            if claimed is not None:
                return claimed

    async def finish(self, key: str, token: str, output: ToolOutput, ttl_s: float) -> None:
        params = {
            "key": key,
            "held_by": token,
            "output": encode_output(output),
            "expires_at": time.time() + ttl_s,
        }
        await self._write.run(lambda conn: _FINISH.run(conn, params).rowcount)

    async def release(self, key: str, token: str) -> None:
        params = {"key": key, "held_by": token}
        await self._write.run(lambda conn: _RELEASE.run(conn, params).rowcount)
