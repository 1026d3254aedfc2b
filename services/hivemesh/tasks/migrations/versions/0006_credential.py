"""The mesh credential a task runs with, stored on its projection row (never in its events).

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tasks submitted before this revision have none; a worker fails them with a clear reason
    # when the internal services require the credential.
    op.add_column("task_tasks", sa.Column("credential", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("task_tasks", "credential")
