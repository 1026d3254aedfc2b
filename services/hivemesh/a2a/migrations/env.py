"""Alembic environment: runs on the connection handed over by hivemesh.mesh.sql.run_migrations."""

from __future__ import annotations

from alembic import context

_connection = context.config.attributes["connection"]
context.configure(connection=_connection, version_table=context.config.attributes["version_table"])
with context.begin_transaction():
    context.run_migrations()
