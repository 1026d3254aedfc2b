"""Short-term turns in Redis: one capped list per session, its time to live refreshed on use.

Keys are ``<prefix>turns/<tenant>/<user>/<session>``: ``/`` cannot occur in any scope id, so two
different sessions never share a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from redis.asyncio import Redis

from hivemesh.memory.model import SessionKey, Turn
from hivemesh.memory.usage import Tally


def _glob(text: str) -> str:
    """``text`` matched literally in a SCAN pattern."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisTurnStore:
    def __init__(self, client: Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _key(self, session: SessionKey, what: str) -> str:
        return f"{self._prefix}{what}/{session.tenant_id}/{session.user_id}/{session.session_id}"

    async def append(
        self, session: SessionKey, new: Sequence[Turn], request_id: str, *, cap: int, ttl_s: float, now: float
    ) -> int:
        key = self._key(session, "turns")
        ttl_ms = max(1, int(ttl_s * 1000))
        if request_id:
            # SET NX claims the request id atomically; a retry of the same append finds it taken.
            claimed = await self._redis.set(
                f"{self._key(session, 'request')}/{request_id}", "1", nx=True, px=ttl_ms
            )
            if not claimed:
                return int(await self._redis.llen(key))
        encoded = [json.dumps({"r": t.role, "x": t.text, "t": t.time, "k": t.task_id}) for t in new]
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *encoded)
            pipe.ltrim(key, -cap, -1)
            pipe.pexpire(key, ttl_ms)
            pipe.llen(key)
            results = await pipe.execute()
        return int(results[-1])

    async def recent(self, session: SessionKey, *, limit: int, ttl_s: float, now: float) -> list[Turn]:
        key = self._key(session, "turns")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.lrange(key, -limit, -1)
            pipe.pexpire(key, max(1, int(ttl_s * 1000)))
            raw, _ = await pipe.execute()
        turns: list[Turn] = []
        for item in raw:
            data = json.loads(item)
            turns.append(Turn(int(data["r"]), str(data["x"]), float(data["t"]), str(data["k"])))
        return turns

    async def tally(self, tenant_id: str, user_id: str, now: float) -> Tally:
        """Sessions of the tenant (or of one user of it) with turns, and their turns: Redis drops a
        session when its time to live runs out, so every key found is live."""
        pattern = f"{_glob(self._prefix)}turns/{_glob(tenant_id)}/{_glob(user_id) if user_id else '*'}/*"
        keys = [key async for key in self._redis.scan_iter(match=pattern, count=1000)]
        if not keys:
            return Tally(0, 0)
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.llen(key)
            lengths = await pipe.execute()
        live = [int(n) for n in lengths if n]
        return Tally(sum(live), len(live))

    async def close(self) -> None:
        await self._redis.aclose()
