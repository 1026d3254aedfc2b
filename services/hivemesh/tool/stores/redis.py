"""Idempotency outcomes in Redis, shared by every replica of the tool service.

Each key is a hash (state, token, fingerprint, output) whose TTL is the claim's lease while the call
runs and the outcome's lifetime once it is done. Claim, finish and release are Lua scripts so each
is one atomic step, and finish and release act only for the token that holds the claim.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from hivemesh.mesh.redis_client import redis_client
from hivemesh.tool.idempotency import (
    Claim,
    Claimed,
    Finished,
    Running,
    claim_token,
    decode_output,
    encode_output,
    new_incarnation,
)
from hivemesh.tool.model import ToolOutput

_log = logging.getLogger(__name__)
# Below the prefix: the incarnation of each named tool service.
_INSTANCES = "instance:"

_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'token', ARGV[1], 'fingerprint', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'claimed', '', ''}
end
return redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'output')
"""
_FINISH = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'done', 'output', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# A claim still pending under a token of the given (dead) incarnation is freed.
_FREE_IF_ORPHANED = """
local held = redis.call('HMGET', KEYS[1], 'state', 'token')
if held[1] == 'pending' and held[2] and string.sub(held[2], 1, #ARGV[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisIdempotencyStore:
    def __init__(self, url: str, prefix: str, *, name: str | None = None) -> None:
        self._url = url
        self.prefix = prefix
        self._name = name
        self._client: aioredis.Redis | None = None
        self.incarnation = new_incarnation()
        self.freed_at_start = 0

    async def start(self) -> None:
        self._client = redis_client(self._url, decode_responses=True)
        if self._name is not None:
            self.freed_at_start = await self._succeed(self._client, self._name)
            if self.freed_at_start:
                _log.warning(
                    "freed %d tool call(s) left pending by the previous incarnation of %s",
                    self.freed_at_start,
                    self._name,
                )

    async def stop(self, grace_s: float) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("the idempotency store is not started")
        return self._client

    async def _succeed(self, client: aioredis.Redis, name: str) -> int:
        """Become the incarnation of ``name``; free the claims the previous one left pending (a
        scan of the store's keys, once, at start)."""
        previous = await client.getset(f"{self.prefix}{_INSTANCES}{name}", self.incarnation)
        if not previous:
            return 0
        freed = 0
        async for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
            if not str(key).startswith(self.prefix + _INSTANCES):
                freed += int(await client.eval(_FREE_IF_ORPHANED, 1, key, previous))
        return freed

    async def _eval(self, script: str, key: str, *args: Any) -> Any:
        return await self.client.eval(script, 1, self.prefix + key, *args)

    async def claim(self, key: str, fingerprint: str, lease_s: float) -> Claim:
        while True:
            token = claim_token(self.incarnation)
            state, stored, output = await self._eval(
                _CLAIM, key, token, fingerprint, max(1, int(lease_s * 1000))
            )
            if state == "claimed":
                return Claimed(token)
            if state == "done" and output:
                return Finished(decode_output(output), stored)
            if state == "pending":
                return Running(stored)
            # The hash expired between EXISTS and HMGET; claim again.

    async def finish(self, key: str, token: str, output: ToolOutput, ttl_s: float) -> None:
        await self._eval(_FINISH, key, token, encode_output(output), max(1, int(ttl_s * 1000)))

    async def release(self, key: str, token: str) -> None:
        await self._eval(_RELEASE, key, token)
