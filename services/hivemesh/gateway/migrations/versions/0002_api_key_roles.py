"""A role per API key: ``operator`` (every RPC) or ``viewer`` (only the RPCs that change nothing).

Revision ID: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Keys issued before roles existed keep what they could do.
    op.add_column(
        "gateway_api_keys",
        sa.Column("role", sa.String(16), nullable=False, server_default="operator"),
    )


def downgrade() -> None:
    op.drop_column("gateway_api_keys", "role")
