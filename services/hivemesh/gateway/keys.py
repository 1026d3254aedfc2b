"""API keys: each bound to one tenant, stored as a SHA-256 of its secret, revocable.

A key reads ``hmk_<key id>_<secret>``. The key id is public (it names the key in listings and
revocations); the secret is 32 random bytes and is shown once, at creation. Only its SHA-256 is
stored: with that much entropy a fast hash is as safe as a slow one, and verifying stays one
indexed lookup plus a constant-time comparison on every call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Column, Float, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from hivemesh.mesh.errors import InvalidArgument
from hivemesh.mesh.sql import reader, run_migrations

PREFIX = "hmk"
MIGRATIONS = Path(__file__).parent / "migrations"

_metadata = MetaData()
api_keys = Table(
    "gateway_api_keys",
    _metadata,
    Column("key_id", String(32), primary_key=True),
    Column("tenant_id", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("create_time", Float, nullable=False),
    Column("revoke_time", Float, nullable=True),
    Column("role", String(16), nullable=False, server_default="operator"),
)
# What a key may do: an operator calls every RPC; a viewer only those that change nothing (the
# gateway refuses the others with PERMISSION_DENIED, READ_ONLY_CREDENTIAL).
OPERATOR, VIEWER = "operator", "viewer"
ROLES = (OPERATOR, VIEWER)


@dataclass(frozen=True)
class ApiKey:
    """A key as listed: never its secret."""

    key_id: str
    tenant_id: str
    name: str
    create_time: float
    revoke_time: float | None
    role: str = OPERATOR

    @property
    def revoked(self) -> bool:
        return self.revoke_time is not None

    @property
    def read_only(self) -> bool:
        return self.role == VIEWER


@dataclass(frozen=True)
class KeyCheck:
    """What a presented key turned out to be: its record (None if unknown or wrong)."""

    key: ApiKey | None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """``(key id, secret)`` of a well-formed key, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


class ApiKeyStore:
    """API keys in SQL (the gateway's database: SQLite embedded, PostgreSQL distributed)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reader(engine)

    async def start(self) -> None:
        await run_migrations(self._engine, MIGRATIONS, "gateway_alembic_version")

    async def stop(self, grace_s: float) -> None:
        await self._engine.dispose()

    async def create(self, tenant_id: str, name: str = "", role: str = OPERATOR) -> tuple[ApiKey, str]:
        """A new key for ``tenant_id`` with ``role``; returns it and the full key text (shown only now)."""
        if not tenant_id or len(tenant_id) > 128:
            raise InvalidArgument.field("tenant_id", "must be 1 to 128 characters")
        if role not in ROLES:
            raise InvalidArgument.field("role", f"must be one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = time.time()
        async with self._engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    tenant_id=tenant_id,
                    name=name[:256],
                    secret_sha256=_digest(secret),
                    create_time=now,
                    revoke_time=None,
                    role=role,
                )
            )
        return ApiKey(key_id, tenant_id, name[:256], now, None, role), f"{PREFIX}_{key_id}_{secret}"

    async def list(self, tenant_id: str | None = None) -> list[ApiKey]:
        query = select(
            api_keys.c.key_id,
            api_keys.c.tenant_id,
            api_keys.c.name,
            api_keys.c.create_time,
            api_keys.c.revoke_time,
            api_keys.c.role,
        ).order_by(api_keys.c.create_time, api_keys.c.key_id)
        if tenant_id is not None:
            query = query.where(api_keys.c.tenant_id == tenant_id)
        async with self._reader.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [ApiKey(str(r[0]), str(r[1]), str(r[2]), float(r[3]), r[4], str(r[5])) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        """Revoke a key at once; False when no such key is active."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(api_keys)
                .where((api_keys.c.key_id == key_id) & api_keys.c.revoke_time.is_(None))
                .values(revoke_time=time.time())
            )
        return bool(result.rowcount)

    async def check(self, token: str) -> KeyCheck:
        parsed = parse(token)
        if parsed is None:
            return KeyCheck(None)
        key_id, secret = parsed
        query = select(
            api_keys.c.key_id,
            api_keys.c.tenant_id,
            api_keys.c.name,
            api_keys.c.create_time,
            api_keys.c.revoke_time,
            api_keys.c.secret_sha256,
            api_keys.c.role,
        ).where(api_keys.c.key_id == key_id)
        async with self._reader.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None or not hmac.compare_digest(str(row[5]), _digest(secret)):
            return KeyCheck(None)
        return KeyCheck(ApiKey(str(row[0]), str(row[1]), str(row[2]), float(row[3]), row[4], str(row[6])))
