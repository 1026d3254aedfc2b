"""Idempotency outcomes in a SQL table (SQLite file by default; PostgreSQL through asyncpg too).

A claim is a row in state ``pending`` with a lease (``expires_at``); finishing turns it into
``done`` with the outcome. Every change is conditional on the token of the claim it was given, so
a caller whose lease expired can never overwrite the outcome of the caller who took over.
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import Column, Float, MetaData, String, Table, Text, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.mesh.sql import make_engine
from hivemesh.tool.idempotency import Claim, Claimed, Finished, Running, decode_output, encode_output
from hivemesh.tool.model import ToolOutput

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


class SqlIdempotencyStore:
    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: AsyncEngine | None = None

    async def start(self) -> None:
        self._engine = make_engine(self._url, pool_size=4)
        async with self._engine.begin() as conn:
            await conn.run_sync(_metadata.create_all)
            await conn.execute(delete(_table).where(_table.c.expires_at < time.time()))

    async def stop(self, grace_s: float) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the idempotency store is not started")
        return self._engine

    async def claim(self, key: str, fingerprint: str, lease_s: float) -> Claim:
        while True:
            now = time.time()
            async with self.engine.begin() as conn:
                row = (await conn.execute(select(_table).where(_table.c.idempotency_key == key))).first()
                token = secrets.token_hex(16)
                if row is not None and row.expires_at > now:
                    if row.state == "done" and row.output is not None:
                        return Finished(decode_output(row.output), row.fingerprint)
                    return Running(row.fingerprint)
                if row is not None:
                    # An expired claim or outcome: take it over, unless someone else just did.
                    taken = await conn.execute(
                        update(_table)
                        .where(_table.c.idempotency_key == key, _table.c.token == row.token)
                        .values(
                            fingerprint=fingerprint,
                            token=token,
                            state="pending",
                            output=None,
                            expires_at=now + lease_s,
                        )
                    )
                    if taken.rowcount == 1:
                        return Claimed(token)
                    continue
            try:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        insert(_table).values(
                            idempotency_key=key,
                            fingerprint=fingerprint,
                            token=token,
                            state="pending",
                            output=None,
                            expires_at=now + lease_s,
                        )
                    )
            except IntegrityError:
                continue  # another caller inserted first; read what it holds
            return Claimed(token)

    async def finish(self, key: str, token: str, output: ToolOutput, ttl_s: float) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(_table)
                .where(_table.c.idempotency_key == key, _table.c.token == token)
                .values(state="done", output=encode_output(output), expires_at=time.time() + ttl_s)
            )

    async def release(self, key: str, token: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(delete(_table).where(_table.c.idempotency_key == key, _table.c.token == token))
