"""Short-term turns in SQL (SQLite embedded, PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.memory.adapters.tables import sessions, turn_requests, turns
from hivemesh.memory.model import SessionKey, Turn
from hivemesh.mesh.sql import Writer


def _bound(table: sa.Table) -> sa.ColumnElement[bool]:
    """The session's rows of ``table``, the session bound at execution (``_key``)."""
    return sa.and_(
        table.c.tenant_id == sa.bindparam("s_tenant"),
        table.c.user_id == sa.bindparam("s_user"),
        table.c.session_id == sa.bindparam("s_session"),
    )


def _key(session: SessionKey) -> dict[str, str]:
    return {"s_tenant": session.tenant_id, "s_user": session.user_id, "s_session": session.session_id}


# The statements of the hot path, built once (their compiled forms are then cached).
_EXPIRE_AT = sa.select(sessions.c.expire_at).where(_bound(sessions))
_DROP = [table.delete().where(_bound(table)) for table in (turns, turn_requests, sessions)]
_SEEN = sa.select(turn_requests.c.request_id).where(
    _bound(turn_requests), turn_requests.c.request_id == sa.bindparam("s_request")
)
_TOUCH = sessions.update().where(_bound(sessions)).values(expire_at=sa.bindparam("s_expire_at"))
_COUNT = sa.select(sa.func.count()).select_from(turns).where(_bound(turns))
_RECENT = (
    sa.select(turns.c.role, turns.c.text, turns.c.time, turns.c.task_id)
    .where(_bound(turns))
    .order_by(turns.c.id.desc())
    .limit(sa.bindparam("s_limit"))
)
_TRIM = turns.delete().where(
    _bound(turns),
    turns.c.id
    < (
        sa.select(turns.c.id)
        .where(_bound(turns))
        .order_by(turns.c.id.desc())
        .offset(sa.bindparam("s_keep"))
        .limit(1)
        .scalar_subquery()
    ),
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
            conn.execute(_TRIM, {**_key(session), "s_keep": cap - 1})
            self._touch(conn, session, now + ttl_s)
            return self._count(conn, session)

        return await self._writer.run(write)

    async def recent(self, session: SessionKey, *, limit: int, ttl_s: float, now: float) -> list[Turn]:
        def read(conn: Connection) -> list[Turn]:
            if self._drop_if_expired(conn, session, now):
                return []
            rows = conn.execute(_RECENT, {**_key(session), "s_limit": limit}).all()
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
        expire_at = conn.execute(_EXPIRE_AT, _key(session)).scalar_one_or_none()
        if expire_at is None or expire_at > now:
            return False
        self._drop(conn, session)
        return True

    def _drop(self, conn: Connection, session: SessionKey) -> None:
        for statement in _DROP:
            conn.execute(statement, _key(session))

    def _claim(self, conn: Connection, session: SessionKey, request_id: str, expire_at: float) -> bool:
        seen = conn.execute(_SEEN, {**_key(session), "s_request": request_id}).first()
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
        updated = conn.execute(_TOUCH, {**_key(session), "s_expire_at": expire_at})
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
        count = conn.execute(_COUNT, _key(session)).scalar_one()
        return int(count)
