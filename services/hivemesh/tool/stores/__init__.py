"""Idempotency store adapters: SQL (SQLite embedded, or the configured database) and Redis."""
