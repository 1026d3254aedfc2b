"""Short-term turns, long-term memory ledger and history, structured records.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "memory_sessions",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("expire_at", sa.Float, nullable=False),
    )
    op.create_index("memory_sessions_expire", "memory_sessions", ["expire_at"])
    op.create_table(
        "memory_turns",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("role", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("task_id", sa.String(128), nullable=False),
    )
    op.create_index("memory_turns_session", "memory_turns", ["tenant_id", "user_id", "session_id", "id"])
    op.create_table(
        "memory_turn_requests",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("session_id", sa.String(128), primary_key=True),
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("expire_at", sa.Float, nullable=False),
    )
    op.create_table(
        "memory_items",
        sa.Column("memory_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
        sa.Column("update_time", sa.Float, nullable=False),
        sa.Column("expire_at", sa.Float, nullable=True),
    )
    op.create_index("memory_items_owner", "memory_items", ["tenant_id", "user_id"])
    op.create_index("memory_items_expire", "memory_items", ["expire_at"])
    op.create_table(
        "memory_changes",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("memory_id", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("time", sa.Float, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
    )
    op.create_index(
        "memory_changes_memory", "memory_changes", ["tenant_id", "user_id", "memory_id", "version"]
    )
    # A repeated Remember with the same request id finds the memory it made (NULLs never collide).
    op.create_index(
        "memory_changes_request", "memory_changes", ["tenant_id", "user_id", "request_id"], unique=True
    )
    op.create_table(
        "memory_records",
        sa.Column("tenant_id", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("update_time", sa.Float, nullable=False),
        sa.Column("expire_at", sa.Float, nullable=True),
    )
    op.create_index("memory_records_expire", "memory_records", ["expire_at"])


def downgrade() -> None:
    for table in (
        "memory_records",
        "memory_changes",
        "memory_items",
        "memory_turn_requests",
        "memory_turns",
        "memory_sessions",
    ):
        op.drop_table(table)
