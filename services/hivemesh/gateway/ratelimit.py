"""Token buckets. Per tenant: in-process when embedded, in Redis when several gateway replicas must
share one budget per tenant (one Lua script: refill by elapsed time, take a token, all atomic, on
Redis's own clock so replicas with skewed clocks agree). Per peer, for failed authentications: in
process (``failures``)."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

_log = logging.getLogger(__name__)


class RateLimiter(Protocol):
    async def acquire(self, tenant_id: str) -> float:
        """Take one token; 0 when allowed, else the seconds until a token is available."""
        ...


class InProcessTokenBucket:
    """Token buckets in this process, one per key, for the ``max_keys`` keys used last (a key
    forgotten starts again with a full bucket)."""

    def __init__(self, rate_per_s: float, burst: int, *, max_keys: int = 100_000) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._max_keys = max_keys
        # key -> (tokens, when they were counted), least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _tokens(self, key: str, now: float) -> float:
        tokens, since = self._buckets.get(key, (self._burst, now))
        return min(self._burst, tokens + (now - since) * self._rate)

    def _store(self, key: str, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        self._buckets.move_to_end(key)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)

    async def acquire(self, tenant_id: str) -> float:
        now = time.monotonic()
        tokens = self._tokens(tenant_id, now)
        if tokens >= 1.0:
            self._store(tenant_id, tokens - 1.0, now)
            return 0.0
        self._store(tenant_id, tokens, now)
        return (1.0 - tokens) / self._rate

    def wait(self, key: str) -> float:
        """Seconds until ``key`` has a token (0 when it has one now); takes nothing."""
        tokens = self._tokens(key, time.monotonic())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate

    def charge(self, key: str) -> None:
        """Take one token, into debt if there is none: what has been spent already is owed."""
        now = time.monotonic()
        self._store(key, self._tokens(key, now) - 1.0, now)


# KEYS: the tenant's bucket. ARGV: rate per second, burst. Returns {allowed, wait in microseconds}.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if not tokens then tokens, at = burst, now end
tokens = math.min(burst, tokens + (now - at) / 1000000 * rate)
local allowed, wait = 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) / rate * 1000000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, wait}
"""


if TYPE_CHECKING:
    # The redis client is the optional extra hivemesh[distributed]: imported only when configured.
    import redis.asyncio as aioredis


class RedisTokenBucket:
    def __init__(self, client: aioredis.Redis, rate_per_s: float, burst: int, *, prefix: str) -> None:
        from redis.exceptions import RedisError  # noqa: PLC0415 - the optional extra, see above

        self._redis_error = RedisError
        self._redis = client
        self._rate = rate_per_s
        self._burst = burst
        self._prefix = prefix
        self._take = client.register_script(_TAKE)

    async def acquire(self, tenant_id: str) -> float:
        try:
            allowed, wait_us = await self._take(
                keys=[f"{self._prefix}:ratelimit:{tenant_id}"], args=[self._rate, self._burst]
            )
        except (self._redis_error, OSError) as exc:
            # Limits protect the mesh; they are not worth refusing reads over. Admission of new
            # work still fails while Redis is down, because the queue is there too.
            _log.warning("rate limiting is off while Redis is unreachable: %s", exc)
            return 0.0
        return 0.0 if int(allowed) else max(0.001, math.ceil(int(wait_us) / 1000) / 1000)
