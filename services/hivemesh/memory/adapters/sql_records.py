"""Structured records in SQL, with compare-and-set on the version."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from hivemesh.memory.adapters.tables import records
from hivemesh.memory.errors import record_version_mismatch
from hivemesh.memory.model import Owner, Record
from hivemesh.memory.records import CREATE_ONLY, UNCONDITIONAL
from hivemesh.memory.usage import Tally
from hivemesh.mesh.sql import Reader, Statement

# An unconditional put that races another writer creating the same key retries this often.
_ATTEMPTS = 5


def _key(owner: Owner, kind: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(
        records.c.tenant_id == owner.tenant_id,
        records.c.user_id == owner.user_id,
        records.c.kind == kind,
        records.c.key == key,
    )


def _live(now: float) -> sa.ColumnElement[bool]:
    return sa.or_(records.c.expire_at.is_(None), records.c.expire_at > now)


def _record(row: sa.Row[Any]) -> Record:
    return Record(
        owner=Owner(row.tenant_id, row.user_id),
        kind=row.kind,
        key=row.key,
        value=json.loads(row.value),
        version=int(row.version),
        update_time=row.update_time,
        expire_time=row.expire_at,
    )


# A read by key, the path of every GetContext (the user's profile): built once, and on SQLite run
# inline on the reader's own connection (see ``Reader``), columns in ``_record_at``'s order.
_GET = Statement(
    sa.select(
        records.c.tenant_id,
        records.c.user_id,
        records.c.kind,
        records.c.key,
        records.c.value,
        records.c.version,
        records.c.update_time,
        records.c.expire_at,
    ).where(
        records.c.tenant_id == sa.bindparam("tenant_id"),
        records.c.user_id == sa.bindparam("user_id"),
        records.c.kind == sa.bindparam("kind"),
        records.c.key == sa.bindparam("key"),
        sa.or_(records.c.expire_at.is_(None), records.c.expire_at > sa.bindparam("now")),
    )
)


def _record_at(row: Any) -> Record:
    return Record(
        owner=Owner(row[0], row[1]),
        kind=row[2],
        key=row[3],
        value=json.loads(row[4]),
        version=int(row[5]),
        update_time=row[6],
        expire_time=row[7],
    )


class SqlRecordStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reads = Reader(engine)

    def close(self) -> None:
        """Close the reader's connection (the engine belongs to the app)."""
        self._reads.close()

    async def put(
        self,
        owner: Owner,
        kind: str,
        key: str,
        value: str,
        expected_version: int,
        expire_at: float | None,
        now: float,
    ) -> Record:
        for _ in range(_ATTEMPTS):
            try:
                async with self._engine.begin() as conn:
                    return await self._put(conn, owner, kind, key, value, expected_version, expire_at, now)
            except IntegrityError:
                if expected_version == CREATE_ONLY:
                    current = await self.get(owner, kind, key, now)
                    raise record_version_mismatch(
                        kind, key, expected_version, 0 if current is None else current.version
                    ) from None
        current = await self.get(owner, kind, key, now)
        raise record_version_mismatch(kind, key, expected_version, 0 if current is None else current.version)

    async def _put(
        self,
        conn: AsyncConnection,
        owner: Owner,
        kind: str,
        key: str,
        value: str,
        expected_version: int,
        expire_at: float | None,
        now: float,
    ) -> Record:
        # An expired record counts as absent: it is removed before anything else is decided.
        await conn.execute(records.delete().where(_key(owner, kind, key), sa.not_(_live(now))))
        fields = {"value": value, "update_time": now, "expire_at": expire_at}
        if expected_version != CREATE_ONLY:
            condition = [_key(owner, kind, key)]
            if expected_version != UNCONDITIONAL:
                condition.append(records.c.version == expected_version)
            updated = await conn.execute(
                records.update().where(*condition).values(version=records.c.version + 1, **fields)
            )
            if updated.rowcount == 1:
                return await self._read(conn, owner, kind, key)
            if expected_version != UNCONDITIONAL:
                current = (
                    await conn.execute(sa.select(records.c.version).where(_key(owner, kind, key)))
                ).scalar_one_or_none()
                raise record_version_mismatch(kind, key, expected_version, int(current or 0))
        await conn.execute(
            records.insert().values(
                tenant_id=owner.tenant_id, user_id=owner.user_id, kind=kind, key=key, version=1, **fields
            )
        )
        return await self._read(conn, owner, kind, key)

    async def _read(self, conn: AsyncConnection, owner: Owner, kind: str, key: str) -> Record:
        row = (await conn.execute(sa.select(records).where(_key(owner, kind, key)))).one()
        return _record(row)

    async def get(self, owner: Owner, kind: str, key: str, now: float) -> Record | None:
        params = {
            "tenant_id": owner.tenant_id,
            "user_id": owner.user_id,
            "kind": kind,
            "key": key,
            "now": now,
        }
        row = await self._reads.run(lambda conn: _GET.run(conn, params).fetchone())
        return None if row is None else _record_at(row)

    async def list(self, owner: Owner, kind: str, after_key: str, limit: int, now: float) -> list[Record]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(records)
                    .where(
                        records.c.tenant_id == owner.tenant_id,
                        records.c.user_id == owner.user_id,
                        records.c.kind == kind,
                        records.c.key > after_key,
                        _live(now),
                    )
                    .order_by(records.c.key)
                    .limit(limit)
                )
            ).all()
        return [_record(r) for r in rows]

    async def delete(self, owner: Owner, kind: str, key: str, now: float) -> bool:
        async with self._engine.begin() as conn:
            deleted = await conn.execute(records.delete().where(_key(owner, kind, key), _live(now)))
            await conn.execute(records.delete().where(_key(owner, kind, key)))
        return deleted.rowcount == 1

    async def tally(self, tenant_id: str, user_id: str, now: float) -> Tally:
        """The tenant's live records (one user's when ``user_id`` is given)."""
        where = [records.c.tenant_id == tenant_id, _live(now)]
        if user_id:
            where.append(records.c.user_id == user_id)
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(sa.select(sa.func.count()).select_from(records).where(*where))
            ).scalar_one()
        return Tally(int(found))

    async def sweep(self, now: float) -> int:
        async with self._engine.begin() as conn:
            deleted = await conn.execute(
                records.delete().where(records.c.expire_at.is_not(None), records.c.expire_at <= now)
            )
        return int(deleted.rowcount)
