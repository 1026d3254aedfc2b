"""API keys of the gateway, stored hashed.

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
        "gateway_api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("create_time", sa.Float, nullable=False),
        sa.Column("revoke_time", sa.Float, nullable=True),
    )
    op.create_index("ix_gateway_api_keys_tenant", "gateway_api_keys", ["tenant_id"])


def downgrade() -> None:
    op.drop_table("gateway_api_keys")
