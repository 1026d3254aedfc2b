"""Redis clients of the services (imported only when ``HIVEMESH_REDIS_URL`` is set: redis is the
optional extra ``hivemesh[distributed]``).

Each client has a bounded pool that makes a caller wait for a free connection (up to
``POOL_WAIT_S``) instead of failing: redis-py's default pool raises "Too many connections" as soon
as more than 100 calls are in flight, which under load turned accepted work into UNAVAILABLE.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

# Connections one client keeps at most; calls beyond them wait for one to be free.
MAX_CONNECTIONS = 64
POOL_WAIT_S = 5.0


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_S, **options
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool
