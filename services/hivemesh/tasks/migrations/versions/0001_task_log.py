"""The task log, its projection and the SQL queue.

Revision ID: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_tasks",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("state", sa.Integer, nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
        sa.Column("update_time", sa.Float, nullable=False),
        sa.Column("last_sequence", sa.BigInteger, nullable=False),
        sa.Column("task", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("tenant_id", "request_id", name="uq_task_tasks_tenant_request"),
    )
    op.create_index("ix_task_tasks_tenant_created", "task_tasks", ["tenant_id", "create_time"])
    op.create_table(
        "task_events",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger, primary_key=True),
        sa.Column("event", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_table(
        "task_queue",
        sa.Column("task_id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", sa.Float, nullable=True),
        sa.Column("delivery_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("trace", sa.Text, nullable=False, server_default="{}"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("dead", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_task_queue_ready", "task_queue", ["dead", "available_at"])


def downgrade() -> None:
    op.drop_table("task_queue")
    op.drop_table("task_events")
    op.drop_table("task_tasks")
