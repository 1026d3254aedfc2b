"""A2A push notification registrations, with their delivery cursor and the lease of the replica
that delivers them.

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
        "a2a_push_registrations",
        sa.Column("task_id", sa.String(128), primary_key=True),
        sa.Column("config_id", sa.String(128), primary_key=True),
        sa.Column("config", sa.LargeBinary, nullable=False),
        sa.Column("credentials", sa.Text, nullable=False),
        sa.Column("delivered", sa.BigInteger, nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
    )
    op.create_index("ix_a2a_push_registrations_lease", "a2a_push_registrations", ["done", "lease_until"])


def downgrade() -> None:
    op.drop_table("a2a_push_registrations")
