"""The side of the planner's canary a queued task is for (sticky sessions): '' for any worker.

Revision ID: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tasks queued before this revision are for any worker.
    op.add_column("task_queue", sa.Column("side", sa.String(16), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("task_queue", "side")
