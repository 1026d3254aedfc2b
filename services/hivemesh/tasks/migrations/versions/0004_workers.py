"""The planner worker incarnations holding claims, with their last heartbeat.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("beat_at", sa.Float, nullable=False),
    )
    op.create_index("ix_task_workers_name", "task_workers", ["name"])
    op.create_index("ix_task_queue_claimed_by", "task_queue", ["claimed_by"])


def downgrade() -> None:
    op.drop_index("ix_task_queue_claimed_by", "task_queue")
    op.drop_table("task_workers")
