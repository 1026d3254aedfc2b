"""Short-term turns in SQL (SQLite embedded, PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.memory.adapters.tables import sessions, turn_requests, turns
from hivemesh.memory.model import SessionKey, Turn
from hivemesh.mesh.sql import Writer


def _of(session: SessionKey, table: sa.Table) -> sa.ColumnElement[bool]:
    return sa.and_(
        table.c.tenant_id == session.tenant_id,
        table.c.user_id == session.user_id,
        table.c.session_id == session.session_id,
    )


class SqlTurnStore:
    """Every operation is one transaction through a group-commit ``Writer``: concurrent appends
    and reads of many sessions share transactions (each still sees the ones before it)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._writer = Writer(engine)

    async def append(
        self, session: SessionKey, new: Sequence[Turn], request_id: str, *, cap: int, ttl_s: float, now: float
    ) -> int:
        def write(conn: Connection) -> int:
            self._drop_if_expired(conn, session, now)
            if request_id and not self._claim(conn, session, request_id, now + ttl_s):
                return self._count(conn, session)
            conn.execute(
                turns.insert(),
                [
                    {
                        "tenant_id": session.tenant_id,
                        "user_id": session.user_id,
                        "session_id": session.session_id,
                        "role": t.role,
                        "text": t.text,
                        "time": t.time,
                        "task_id": t.task_id,
                    }
                    for t in new
                ],
            )
            oldest_kept = (
                sa.select(turns.c.id)
                .where(_of(session, turns))
                .order_by(turns.c.id.desc())
                .offset(cap - 1)
                .limit(1)
                .scalar_subquery()
            )
            conn.execute(turns.delete().where(_of(session, turns), turns.c.id < oldest_kept))
            self._touch(conn, session, now + ttl_s)
            return self._count(conn, session)

        return await self._writer.run(write)

    async def recent(self, session: SessionKey, *, limit: int, ttl_s: float, now: float) -> list[Turn]:
        def read(conn: Connection) -> list[Turn]:
            if self._drop_if_expired(conn, session, now):
                return []
            rows = conn.execute(
                sa.select(turns.c.role, turns.c.text, turns.c.time, turns.c.task_id)
                .where(_of(session, turns))
                .order_by(turns.c.id.desc())
                .limit(limit)
            ).all()
            if rows:
                self._touch(conn, session, now + ttl_s)
            return [Turn(r.role, r.text, r.time, r.task_id) for r in reversed(rows)]

        return await self._writer.run(read)

    async def sweep(self, now: float) -> int:
        """Delete sessions whose time to live ran out; returns how many."""

        def write(conn: Connection) -> int:
            expired = conn.execute(
                sa.select(sessions.c.tenant_id, sessions.c.user_id, sessions.c.session_id)
                .where(sessions.c.expire_at <= now)
                .limit(500)
            ).all()
            for row in expired:
                self._drop(conn, SessionKey(row.tenant_id, row.user_id, row.session_id))
            conn.execute(turn_requests.delete().where(turn_requests.c.expire_at <= now))
            return len(expired)

        return await self._writer.run(write)

    async def close(self) -> None:
        """Finish queued writes; the engine belongs to the app, which disposes of it."""
        await self._writer.close()

    def _drop_if_expired(self, conn: Connection, session: SessionKey, now: float) -> bool:
        expire_at = conn.execute(
            sa.select(sessions.c.expire_at).where(_of(session, sessions))
        ).scalar_one_or_none()
        if expire_at is None or expire_at > now:
            return False
        self._drop(conn, session)
        return True

    def _drop(self, conn: Connection, session: SessionKey) -> None:
        for table in (turns, turn_requests, sessions):
            conn.execute(table.delete().where(_of(session, table)))

    def _claim(self, conn: Connection, session: SessionKey, request_id: str, expire_at: float) -> bool:
        seen = (
            conn.execute(
                sa.select(turn_requests.c.request_id).where(
                    _of(session, turn_requests), turn_requests.c.request_id == request_id
                )
            )
        ).first()
        if seen is not None:
            return False
        conn.execute(
            turn_requests.insert().values(
                tenant_id=session.tenant_id,
                user_id=session.user_id,
                session_id=session.session_id,
                request_id=request_id,
                expire_at=expire_at,
            )
        )
        return True

    def _touch(self, conn: Connection, session: SessionKey, expire_at: float) -> None:
        updated = conn.execute(sessions.update().where(_of(session, sessions)).values(expire_at=expire_at))
        if updated.rowcount == 0:
            conn.execute(
                sessions.insert().values(
                    tenant_id=session.tenant_id,
                    user_id=session.user_id,
                    session_id=session.session_id,
                    expire_at=expire_at,
                )
            )

    def _count(self, conn: Connection, session: SessionKey) -> int:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(turns).where(_of(session, turns))
        ).scalar_one()
        return int(count)
