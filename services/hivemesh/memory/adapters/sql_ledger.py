"""The long-term memory ledger in SQL: current memories and every change ever made to them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hivemesh.memory.adapters.tables import changes, items
from hivemesh.memory.model import ChangeAction, Memory, MemoryChange, Owner
from hivemesh.memory.usage import Tally
from hivemesh.mesh.errors import Aborted


def _owned(owner: Owner, table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(table.c.tenant_id == owner.tenant_id, table.c.user_id == owner.user_id)


def _row(memory: Memory) -> dict[str, Any]:
    return {
        "session_id": memory.session_id,
        "text": memory.text,
        "metadata": json.dumps(dict(memory.metadata), sort_keys=True),
        "version": memory.version,
        "create_time": memory.create_time,
        "update_time": memory.update_time,
        "expire_at": memory.expire_time,
    }


def _memory(row: sa.Row[Any]) -> Memory:
    return Memory(
        memory_id=row.memory_id,
        owner=Owner(row.tenant_id, row.user_id),
        session_id=row.session_id,
        text=row.text,
        metadata=json.loads(row.metadata),
        version=int(row.version),
        create_time=row.create_time,
        update_time=row.update_time,
        expire_time=row.expire_at,
    )


@contextlib.asynccontextmanager
async def _request_guard(request_id: str) -> AsyncIterator[None]:
    """Two Remembers racing with one request id: the loser is told to retry, and its retry then
    finds what the winner made."""
    try:
        yield
    except IntegrityError:
        if not request_id:
            raise
        raise Aborted(
            "a Remember with this request_id is in progress; retry",
            reason="REQUEST_IN_PROGRESS",
            metadata={"request_id": request_id},
        ) from None


class SqlLedger:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, memory: Memory, request_id: str) -> None:
        async with _request_guard(request_id), self._engine.begin() as conn:
            await conn.execute(
                items.insert().values(
                    memory_id=memory.memory_id,
                    tenant_id=memory.owner.tenant_id,
                    user_id=memory.owner.user_id,
                    **_row(memory),
                )
            )
            await self._record(
                conn, memory, ChangeAction.REMEMBERED, memory.text, memory.update_time, request_id
            )

    async def by_request(self, owner: Owner, request_id: str) -> str | None:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(
                    sa.select(changes.c.memory_id).where(
                        _owned(owner, changes), changes.c.request_id == request_id
                    )
                )
            ).scalar_one_or_none()
        return None if found is None else str(found)

    async def get(self, owner: Owner, memory_id: str) -> Memory | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(items).where(_owned(owner, items), items.c.memory_id == memory_id)
                )
            ).first()
        return None if row is None else _memory(row)

    async def replace(
        self, memory: Memory, expected_version: int, action: ChangeAction, request_id: str
    ) -> bool:
        async with _request_guard(request_id), self._engine.begin() as conn:
            updated = await conn.execute(
                items.update()
                .where(
                    _owned(memory.owner, items),
                    items.c.memory_id == memory.memory_id,
                    items.c.version == expected_version,
                )
                .values(**_row(memory))
            )
            if updated.rowcount != 1:
                return False
            await self._record(conn, memory, action, memory.text, memory.update_time, request_id)
            return True

    async def matching(self, owner: Owner, metadata: Mapping[str, str]) -> list[str]:
        # Metadata is JSON text so the same query runs on SQLite and PostgreSQL; one user's memories
        # are few enough to match in Python.
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(sa.select(items.c.memory_id, items.c.metadata).where(_owned(owner, items)))
            ).all()
        wanted = dict(metadata)
        return [
            row.memory_id
            for row in rows
            if all(json.loads(row.metadata).get(k) == v for k, v in wanted.items())
        ]

    async def remove(
        self, owner: Owner, memory_ids: Sequence[str], action: ChangeAction, now: float
    ) -> list[str]:
        if not memory_ids:
            return []
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    sa.select(items).where(_owned(owner, items), items.c.memory_id.in_(list(memory_ids)))
                )
            ).all()
            removed: list[str] = []
            for row in rows:
                deleted = await conn.execute(
                    items.delete().where(
                        _owned(owner, items),
                        items.c.memory_id == row.memory_id,
                        items.c.version == row.version,
                    )
                )
                if deleted.rowcount == 1:
                    gone = _memory(row)
                    await self._record(conn, gone, action, "", now, "", version=gone.version + 1)
                    removed.append(gone.memory_id)
            return removed

    async def tally(self, tenant_id: str, user_id: str, now: float) -> Tally:
        """The tenant's unexpired memories (one user's when ``user_id`` is given): each is one
        vector of the index."""
        where = [items.c.tenant_id == tenant_id, sa.or_(items.c.expire_at.is_(None), items.c.expire_at > now)]
        if user_id:
            where.append(items.c.user_id == user_id)
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(sa.select(sa.func.count()).select_from(items).where(*where))
            ).scalar_one()
        return Tally(int(found))

    async def history(self, owner: Owner, memory_id: str) -> list[MemoryChange]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(changes.c.version, changes.c.action, changes.c.text, changes.c.time)
                    .where(_owned(owner, changes), changes.c.memory_id == memory_id)
                    .order_by(changes.c.version, changes.c.id)
                )
            ).all()
        return [MemoryChange(int(r.version), ChangeAction(r.action), r.text, r.time) for r in rows]

    async def expired(self, now: float, limit: int) -> list[tuple[Owner, str]]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(items.c.tenant_id, items.c.user_id, items.c.memory_id)
                    .where(items.c.expire_at.is_not(None), items.c.expire_at <= now)
                    .limit(limit)
                )
            ).all()
        return [(Owner(r.tenant_id, r.user_id), r.memory_id) for r in rows]

    async def _record(
        self,
        conn: AsyncConnection,
        memory: Memory,
        action: ChangeAction,
        text: str,
        time: float,
        request_id: str,
        *,
        version: int | None = None,
    ) -> None:
        await conn.execute(
            changes.insert().values(
                memory_id=memory.memory_id,
                tenant_id=memory.owner.tenant_id,
                user_id=memory.owner.user_id,
                version=memory.version if version is None else version,
                action=action.value,
                text=text,
                time=time,
                request_id=request_id or None,
            )
        )
