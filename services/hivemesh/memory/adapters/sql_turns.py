"""Short-term turns in SQL (SQLite embedded, PostgreSQL when configured)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.memory.adapters.tables import sessions, turn_requests, turns
from hivemesh.memory.model import SessionKey, Turn
from hivemesh.memory.usage import Tally
from hivemesh.mesh.sql import Reader, Statement, Writer


def _bound(table: sa.Table) -> sa.ColumnElement[bool]:
    """The session's rows of ``table``, the session bound at execution (``_key``)."""
    return sa.and_(
        table.c.tenant_id == sa.bindparam("s_tenant"),
        table.c.user_id == sa.bindparam("s_user"),
        table.c.session_id == sa.bindparam("s_session"),
    )


def _key(session: SessionKey) -> dict[str, str]:
    return {"s_tenant": session.tenant_id, "s_user": session.user_id, "s_session": session.session_id}


# The statements of the hot path, built once (see ``Statement``).
_EXPIRE_AT = Statement(sa.select(sessions.c.expire_at).where(_bound(sessions)))
_DROP = [Statement(table.delete().where(_bound(table))) for table in (turns, turn_requests, sessions)]
_SEEN = Statement(
    sa.select(turn_requests.c.request_id).where(
        _bound(turn_requests), turn_requests.c.request_id == sa.bindparam("s_request")
    )
)
_CLAIM = Statement(
    turn_requests.insert().values(
        tenant_id=sa.bindparam("s_tenant"),
        user_id=sa.bindparam("s_user"),
        session_id=sa.bindparam("s_session"),
        request_id=sa.bindparam("s_request"),
        expire_at=sa.bindparam("s_expire_at"),
    )
)
_ADD_TURN = Statement(
    turns.insert(), columns=("tenant_id", "user_id", "session_id", "role", "text", "time", "task_id")
)
_TOUCH = Statement(sessions.update().where(_bound(sessions)).values(expire_at=sa.bindparam("s_expire_at")))
# Refreshes a session still alive (one that expired since it was read stays expired).
_REFRESH = Statement(
    sessions.update()
    .where(_bound(sessions), sessions.c.expire_at > sa.bindparam("s_now"))
    .values(expire_at=sa.bindparam("s_expire_at"))
)
_OPEN = Statement(
    sessions.insert().values(
        tenant_id=sa.bindparam("s_tenant"),
        user_id=sa.bindparam("s_user"),
        session_id=sa.bindparam("s_session"),
        expire_at=sa.bindparam("s_expire_at"),
    )
)
_COUNT = Statement(sa.select(sa.func.count()).select_from(turns).where(_bound(turns)))
_RECENT = Statement(
    sa.select(turns.c.role, turns.c.text, turns.c.time, turns.c.task_id)
    .where(_bound(turns))
    .order_by(turns.c.id.desc())
    .limit(sa.bindparam("s_limit"))
)
_TRIM = Statement(
    turns.delete().where(
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
)


# A read refreshes its session's time to live only when that moves the expiry by more than this
# (or a tenth of the time to live, if shorter): reading a conversation every turn then writes at
# most once a minute, and an append refreshes it anyway.
REFRESH_SLACK_S = 60.0


class SqlTurnStore:
    """Appends are one transaction each through a group-commit ``Writer``: concurrent appends of
    many sessions share transactions (each still sees the ones before it). Reads run on a
    ``Reader`` and never take the write lock; a read writes only to refresh a live session's time
    to live (see ``REFRESH_SLACK_S``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._writer = Writer(engine)
        self._reads = Reader(engine)

    async def append(
        self, session: SessionKey, new: Sequence[Turn], request_id: str, *, cap: int, ttl_s: float, now: float
    ) -> int:
        def write(conn: Connection) -> int:
            self._drop_if_expired(conn, session, now)
            if request_id and not self._claim(conn, session, request_id, now + ttl_s):
                return self._count(conn, session)
            _ADD_TURN.run_many(
                conn,
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
            _TRIM.run(conn, {**_key(session), "s_keep": cap - 1})
            self._touch(conn, session, now + ttl_s)
            return self._count(conn, session)

        return await self._writer.run(write)

    async def recent(self, session: SessionKey, *, limit: int, ttl_s: float, now: float) -> list[Turn]:
        key = _key(session)

        def read(conn: Connection) -> tuple[float, list[Turn]]:
            row = _EXPIRE_AT.run(conn, key).fetchone()
            if row is None or row[0] <= now:
                # Unknown or expired: nothing to show. An expired session's rows are dropped by the
                # next append to it or by the sweep.
                return 0.0, []
            rows = _RECENT.run(conn, {**key, "s_limit": limit}).fetchall()
            found = [Turn(role, text, time, task_id) for role, text, time, task_id in reversed(rows)]
            return float(row[0]), found

        expire_at, found = await self._reads.run(read)
        if found and expire_at < now + ttl_s - min(REFRESH_SLACK_S, ttl_s / 10):
            refreshed = {**key, "s_now": now, "s_expire_at": now + ttl_s}
            await self._writer.run(lambda conn: _REFRESH.run(conn, refreshed).rowcount)
        return found

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

    async def tally(self, tenant_id: str, user_id: str, now: float) -> Tally:
        """Live sessions of the tenant (or of one user of it) and their turns."""
        live = [sessions.c.tenant_id == tenant_id, sessions.c.expire_at > now]
        if user_id:
            live.append(sessions.c.user_id == user_id)
        of_live_session = turns.join(
            sessions,
            sa.and_(
                turns.c.tenant_id == sessions.c.tenant_id,
                turns.c.user_id == sessions.c.user_id,
                turns.c.session_id == sessions.c.session_id,
            ),
        )

        def read(conn: Connection) -> Tally:
            found = conn.execute(sa.select(sa.func.count()).select_from(sessions).where(*live)).scalar_one()
            said = conn.execute(
                sa.select(sa.func.count()).select_from(of_live_session).where(*live)
            ).scalar_one()
            return Tally(int(said), int(found))

        return await self._writer.run(read)

    async def close(self) -> None:
        """Finish queued writes; the engine belongs to the app, which disposes of it."""
        await self._writer.close()
        self._reads.close()

    def _drop_if_expired(self, conn: Connection, session: SessionKey, now: float) -> bool:
        row = _EXPIRE_AT.run(conn, _key(session)).fetchone()
        if row is None or row[0] > now:
            return False
        self._drop(conn, session)
        return True

    def _drop(self, conn: Connection, session: SessionKey) -> None:
        for statement in _DROP:
            statement.run(conn, _key(session))

    def _claim(self, conn: Connection, session: SessionKey, request_id: str, expire_at: float) -> bool:
        key = {**_key(session), "s_request": request_id}
        if _SEEN.run(conn, key).fetchone() is not None:
            return False
        _CLAIM.run(conn, {**key, "s_expire_at": expire_at})
        return True

    def _touch(self, conn: Connection, session: SessionKey, expire_at: float) -> None:
        params = {**_key(session), "s_expire_at": expire_at}
        if _TOUCH.run(conn, params).rowcount == 0:
            _OPEN.run(conn, params)

    def _count(self, conn: Connection, session: SessionKey) -> int:
        return int(_COUNT.run(conn, _key(session)).fetchone()[0])
