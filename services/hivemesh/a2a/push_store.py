"""Where push notification registrations live: a SQL table shared by every replica of the A2A door
(SQLite embedded, PostgreSQL when ``HIVEMESH_DATABASE_URL`` is set), so a restart forgets none.

A row is one webhook of one task: the registration as the client made it (its ``token`` signs the
notifications), the credentials it was made with (the deliverer watches the task as its registrant;
a JWT among them stops working when it expires), ``delivered``, the sequence of the last event
delivered to it (or given up on), and the lease of the replica delivering the task's events:
``owner`` renews ``lease_until`` while it runs; when a replica stops (or dies), another one takes
the task over once the lease has run out and goes on after ``delivered``. ``done``: the task has
ended and every event of it has been delivered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from a2a.types import a2a_pb2 as a2a
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    delete,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.a2a.gateway import Credentials
from hivemesh.mesh.config import Settings
from hivemesh.mesh.sql import make_engine, reader, run_migrations, sqlite_url

MIGRATIONS = Path(__file__).parent / "migrations"

_metadata = MetaData()
registrations = Table(
    "a2a_push_registrations",
    _metadata,
    Column("task_id", String(128), primary_key=True),
    Column("config_id", String(128), primary_key=True),
    Column("config", LargeBinary, nullable=False),
    Column("credentials", Text, nullable=False),
    Column("delivered", BigInteger, nullable=False),
    Column("owner", String(64), nullable=False),
    Column("lease_until", Float, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("create_time", Float, nullable=False),
)
_r = registrations.c


@dataclass(frozen=True)
class Registration:
    config: a2a.TaskPushNotificationConfig
    credentials: Credentials
    # The sequence of the last event delivered to this webhook (or given up on).
    delivered: int


def _registration(row: Sequence[object]) -> Registration:
    config = a2a.TaskPushNotificationConfig()
    config.ParseFromString(bytes(row[0]))  # type: ignore[call-overload]
    credentials = tuple((str(k), str(v)) for k, v in json.loads(str(row[1])))
    return Registration(config, credentials, int(row[2]))  # type: ignore[call-overload]


class PushStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader(engine)

    @classmethod
    def for_settings(cls, settings: Settings) -> PushStore:
        """The shared database when one is configured, else SQLite in the data directory."""
        return cls(
            make_engine(settings.database_url or sqlite_url(settings.data_dir / "a2a.db"), pool_size=5)
        )

    async def start(self) -> None:
        await run_migrations(self._engine, MIGRATIONS, "a2a_alembic_version")

    async def close(self) -> None:
        await self._engine.dispose()

    async def add(self, registration: Registration) -> None:
        """Keep ``registration`` (one with the same config id for the task is replaced). It has no
        deliverer yet: whoever holds the task's lease adopts it, or ``claim`` takes the task."""
        config = registration.config
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(registrations).where((_r.task_id == config.task_id) & (_r.config_id == config.id))
            )
            await conn.execute(
                registrations.insert().values(
                    task_id=config.task_id,
                    config_id=config.id,
                    config=config.SerializeToString(),
                    credentials=json.dumps([list(pair) for pair in registration.credentials]),
                    delivered=registration.delivered,
                    owner="",
                    lease_until=0.0,
                    done=False,
                    create_time=time.time(),
                )
            )
            # A new webhook wakes a task whose deliveries had ended (it paused, then went on).
            await conn.execute(update(registrations).where(_r.task_id == config.task_id).values(done=False))

    async def of_task(self, task_id: str) -> list[Registration]:
        query = (
            select(_r.config, _r.credentials, _r.delivered)
            .where(_r.task_id == task_id)
            .order_by(_r.create_time, _r.config_id)
        )
        async with self._reader.connect() as conn:
            return [_registration(row) for row in (await conn.execute(query)).all()]

    async def remove(self, task_id: str, config_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(registrations).where((_r.task_id == task_id) & (_r.config_id == config_id))
            )

    async def delivered(self, task_id: str, config_ids: Sequence[str], sequence: int) -> None:
        """Move the cursor of the task's webhooks ``config_ids`` to ``sequence`` (never back)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(registrations)
                .where(
                    (_r.task_id == task_id) & _r.config_id.in_(list(config_ids)) & (_r.delivered < sequence)
                )
                .values(delivered=sequence)
            )

    async def claim(self, task_id: str, owner: str, now: float, lease_until: float) -> bool:
        """Take the delivery of the task's events, unless another replica's lease still runs."""
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(_r.owner, _r.lease_until).where(_r.task_id == task_id).with_for_update()
                )
            ).all()
            if not rows or any(row[0] not in ("", owner) and row[1] >= now for row in rows):
                return False
            await conn.execute(
                update(registrations)
                .where(_r.task_id == task_id)
                .values(owner=owner, lease_until=lease_until)
            )
            return True

    async def renew(self, owner: str, task_ids: Sequence[str], lease_until: float) -> None:
        """Extend the lease of the tasks ``owner`` delivers, adopting the webhooks added since."""
        if not task_ids:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                update(registrations)
                .where(_r.task_id.in_(list(task_ids)))
                .values(owner=owner, lease_until=lease_until)
            )

    async def release(self, owner: str, task_id: str, *, done: bool, recheck_at: float) -> None:
        """Give the task's delivery up. ``done``: it has ended and everything is delivered; else
        any replica takes it again from ``recheck_at`` (0: at once)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(registrations)
                .where((_r.owner == owner) & (_r.task_id == task_id))
                .values(owner="", lease_until=recheck_at, done=done)
            )

    async def orphaned(self, now: float, limit: int = 100) -> list[str]:
        """Tasks with events still to deliver whose deliverer's lease has run out."""
        query = (
            select(_r.task_id)
            .where(_r.done.is_(False) & (_r.lease_until < now))
            .group_by(_r.task_id)
            .limit(limit)
        )
        async with self._reader.connect() as conn:
            return [str(row[0]) for row in (await conn.execute(query)).all()]
