"""An index for the sweep that finds tasks waiting in the log but missing from the Redis queue.

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_task_tasks_state_updated", "task_tasks", ["state", "update_time"])


def downgrade() -> None:
    op.drop_index("ix_task_tasks_state_updated", table_name="task_tasks")
