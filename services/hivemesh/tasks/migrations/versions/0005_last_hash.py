"""The hash of a task's last event on its projection row, so an append reads one row, not two.

Revision ID: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows written before this revision have none; their next append reads it from the events.
    op.add_column("task_tasks", sa.Column("last_hash", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("task_tasks", "last_hash")
