"""The task queue on Redis Streams (distributed mode, when ``HIVEMESH_REDIS_URL`` is set).

One stream holds the ready tasks; the planner workers share one consumer group, so each entry goes
to one worker (XREADGROUP). The entry stays in the group's pending list until its worker
acknowledges it, which the worker does only after the task's outcome is in the event log. Each claim is
a lease (a sorted set of deadlines) that the worker's heartbeat renews; a worker that dies stops
renewing it, and once its lease has run out the next claim moves the pending entry to itself with
XCLAIM and delivers the task again, with its delivery count one higher.

Beside the stream, one hash holds each queued task's record (tenant, trace context, delivery count,
the stream entry and the worker holding it, last error); a sorted set holds retries waiting out
their backoff and another the dead letters. Every operation is one Lua script, so a claim, a retry
or a move to the dead-letter queue is atomic, and a worker that lost its claim can no longer
acknowledge, retry or dead-letter the task.

With sticky sessions a task may be for one side of the planner's canary (``side``, chosen by the
gateway): a worker that claims for the other side hands its entry on to the stream's end, counting
no delivery, so the next worker reading it may be of the task's side. A claim whose lease ran out
is taken over by whichever worker claims next, whatever its side: the run resumes rather than waits.

Redis is not the source of truth: the log is. Enqueueing is idempotent (a task already held is
left alone), so anything may enqueue again: a client repeating a submit, and the sweep of
``TaskSystem`` that re-enqueues tasks the log says are waiting but Redis does not hold (a crash
between the log's commit and the enqueue, or writes Redis lost when it restarted).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hivemesh.mesh.errors import Unavailable
from hivemesh.tasks.notifier import QUEUE_TOPIC, Notifier
from hivemesh.tasks.queue import Claim, DeadLetter

T = TypeVar("T")

_TAKE = """
local function take(stream, meta, leases, group, consumer, entry_id, task_id, lease_until)
  local raw = task_id and redis.call('HGET', meta, task_id)
  if not raw then
    -- The task left the queue (canceled, purged) after this entry was written.
    redis.call('XACK', stream, group, entry_id)
    redis.call('XDEL', stream, entry_id)
    return nil
  end
  local m = cjson.decode(raw)
  if m.dead or (m.entry and m.entry ~= entry_id) then
    -- A stale duplicate: the task is dead-lettered or held through another entry.
    redis.call('XACK', stream, group, entry_id)
    redis.call('XDEL', stream, entry_id)
    return nil
  end
  m.delivery_count = (m.delivery_count or 0) + 1
  m.entry = entry_id
  m.owner = consumer
  redis.call('HSET', meta, task_id, cjson.encode(m))
  redis.call('ZADD', leases, lease_until, task_id)
  return {task_id, m.tenant_id, m.delivery_count, m.trace}
end
"""

# A task for the other side of the planner's canary is handed on: its entry goes to the stream's
# end for a worker of that side (no delivery is counted). True when ``entry_id`` was handed on.
_HAND_ON = """
local function hand_on(stream, meta, group, entry_id, task_id, side)
  if side == '' or not task_id then return false end
  local raw = redis.call('HGET', meta, task_id)
  if not raw then return false end
  local m = cjson.decode(raw)
  if m.dead or m.entry or not m.side or m.side == '' or m.side == side then return false end
  redis.call('XACK', stream, group, entry_id)
  redis.call('XDEL', stream, entry_id)
  redis.call('XADD', stream, '*', 'task_id', task_id)
  return true
end
"""

# KEYS: stream, delayed, meta, leases. ARGV: group, consumer, now_ms, visibility_ms, side ('' for
# any task; else a task for any worker or for that side).
_CLAIM = (
    _TAKE
    + _HAND_ON
    + """
local stream, delayed, meta, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local group, consumer = ARGV[1], ARGV[2]
local now = tonumber(ARGV[3])
local deadline = now + tonumber(ARGV[4])
local side = ARGV[5]
local handed = {}
redis.pcall('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM')
local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', delayed, id)
  redis.call('XADD', stream, '*', 'task_id', id)
end
-- Claims whose worker stopped renewing them come first: they have waited longest.
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, 10)
for _, task_id in ipairs(expired) do
  redis.call('ZREM', leases, task_id)
  local raw = redis.call('HGET', meta, task_id)
  if raw then
    local m = cjson.decode(raw)
    if m.entry and m.owner then
      -- Move the pending entry to this consumer (its idle time restarts).
      redis.call('XCLAIM', stream, group, consumer, 0, m.entry, 'JUSTID')
      local r = take(stream, meta, leases, group, consumer, m.entry, task_id, deadline)
      if r then return r end
    end
  end
end
for _ = 1, 10 do
  local read = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', 1, 'STREAMS', stream, '>')
  if not read then return nil end
  local entry = read[1][2][1]
  if entry then
    local task_id = nil
    for i = 1, #entry[2], 2 do
      if entry[2][i] == 'task_id' then task_id = entry[2][i + 1] end
    end
    if hand_on(stream, meta, group, entry[1], task_id, side) then
      -- Seen twice: every entry left is for the other side.
      if handed[task_id] then return nil end
      handed[task_id] = true
    else
      local r = take(stream, meta, leases, group, consumer, entry[1], task_id, deadline)
      if r then return r end
    end
  end
end
return nil
"""
)

# KEYS: stream, meta. ARGV: task_id, tenant_id, trace, now_s, side.
_ENQUEUE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 0 end
local m = {tenant_id = ARGV[2], trace = ARGV[3], delivery_count = 0, enqueued_at = tonumber(ARGV[4]),
  side = ARGV[5]}
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(m))
redis.call('XADD', KEYS[1], '*', 'task_id', ARGV[1])
return 1
"""

# KEYS: stream, meta, leases. ARGV: group, task_id, tenant_id, now_s, side.
# Like _ENQUEUE, except that a task still claimed (by the worker that asked for input and has not
# acknowledged yet) is released and queued afresh: that worker's late ack then finds no claim.
_REQUEUE = """
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if raw then
  local m = cjson.decode(raw)
  if not m.owner then return 0 end
  redis.call('XACK', KEYS[1], ARGV[1], m.entry)
  redis.call('XDEL', KEYS[1], m.entry)
  redis.call('ZREM', KEYS[3], ARGV[2])
end
local m = {tenant_id = ARGV[3], trace = '{}', delivery_count = 0, enqueued_at = tonumber(ARGV[4]),
  side = ARGV[5]}
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(m))
redis.call('XADD', KEYS[1], '*', 'task_id', ARGV[2])
return 1
"""

# The task's record, if ARGV[3] holds its claim (else the script ends with 0).
_OWNED = """
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if not raw then return 0 end
local m = cjson.decode(raw)
if m.owner ~= ARGV[3] then return 0 end
"""

# Gives up the claim: the stream entry is acknowledged and deleted.
_RELEASE = """
redis.call('XACK', KEYS[1], ARGV[1], m.entry)
redis.call('XDEL', KEYS[1], m.entry)
redis.call('ZREM', KEYS[3], ARGV[2])
m.owner = nil
m.entry = nil
"""

# KEYS: stream, meta, leases. ARGV: group, task_id, worker.
_ACK = (
    _OWNED
    + _RELEASE
    + """
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""
)

# KEYS: stream, meta, leases. ARGV: group, task_id, worker, lease_until_ms.
_EXTEND = (
    _OWNED
    + """
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
return 1
"""
)

# KEYS: stream, meta, leases, delayed. ARGV: group, task_id, worker, available_at_ms, error, now_ms.
_RETRY = (
    _OWNED
    + _RELEASE
    + """
m.last_error = ARGV[5]
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(m))
if tonumber(ARGV[4]) <= tonumber(ARGV[6]) then
  redis.call('XADD', KEYS[1], '*', 'task_id', ARGV[2])
else
  redis.call('ZADD', KEYS[4], ARGV[4], ARGV[2])
end
return 1
"""
)

# KEYS: stream, meta, leases, dead. ARGV: group, task_id, worker, error.
_DEAD = (
    _OWNED
    + _RELEASE
    + """
m.dead = true
m.last_error = ARGV[4]
redis.call('HSET', KEYS[2], ARGV[2], cjson.encode(m))
redis.call('ZADD', KEYS[4], m.enqueued_at, ARGV[2])
return 1
"""
)

# KEYS: stream, meta, dead. ARGV: task_id.
_REPLAY = """
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return 0 end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 0 end
local m = cjson.decode(raw)
m.dead = nil
m.owner = nil
m.entry = nil
m.delivery_count = 0
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(m))
redis.call('XADD', KEYS[1], '*', 'task_id', ARGV[1])
return 1
"""

# KEYS: stream, meta, leases, delayed, dead. ARGV: group, task_id.
_REMOVE = """
local raw = redis.call('HGET', KEYS[2], ARGV[2])
if not raw then return 0 end
local m = cjson.decode(raw)
if m.entry then
  redis.call('XACK', KEYS[1], ARGV[1], m.entry)
  redis.call('XDEL', KEYS[1], m.entry)
end
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[4], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[2])
return redis.call('HDEL', KEYS[2], ARGV[2])
"""

# KEYS: meta, dead. ARGV: task_id.
_PURGE_ONE = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 0 then return 0 end
return redis.call('HDEL', KEYS[1], ARGV[1])
"""


# Declaring worker incarnations dead: their claims' leases end now, so the next claim takes them
# over (with XCLAIM, as for a lease that ran out). Leases hold only the tasks in flight.
_RELEASE = """
local function release(meta, leases, names, beats, dead)
  if #dead == 0 then return 0 end
  local gone = {}
  for _, id in ipairs(dead) do
    gone[id] = true
    redis.call('HDEL', names, id)
    redis.call('HDEL', beats, id)
  end
  local released = 0
  for _, task_id in ipairs(redis.call('ZRANGE', leases, 0, -1)) do
    local raw = redis.call('HGET', meta, task_id)
    if raw then
      local m = cjson.decode(raw)
      if m.owner and gone[m.owner] then
        redis.call('ZADD', leases, 0, task_id)
        released = released + 1
      end
    end
  end
  return released
end
"""

# KEYS: meta, leases, names, beats. ARGV: worker_id, name, now_s.
_JOIN = (
    _RELEASE
    + """
local meta, leases, names, beats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dead = {}
local all = redis.call('HGETALL', names)
for i = 1, #all, 2 do
  if all[i + 1] == ARGV[2] and all[i] ~= ARGV[1] then table.insert(dead, all[i]) end
end
local released = release(meta, leases, names, beats, dead)
redis.call('HSET', names, ARGV[1], ARGV[2])
redis.call('HSET', beats, ARGV[1], ARGV[3])
return released
"""
)

# KEYS: meta, leases, names, beats. ARGV: cutoff_s.
_REAP = (
    _RELEASE
    + """
local meta, leases, names, beats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local dead = {}
local all = redis.call('HGETALL', beats)
for i = 1, #all, 2 do
  if tonumber(all[i + 1]) < tonumber(ARGV[1]) then table.insert(dead, all[i]) end
end
return release(meta, leases, names, beats, dead)
"""
)

# KEYS: names, beats. ARGV: worker_id, now_s. 0 when the incarnation is no longer registered.
_BEAT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""

# KEYS: meta, leases, names, beats. ARGV: worker_id.
_LEAVE = (
    _RELEASE
    + """
return release(KEYS[1], KEYS[2], KEYS[3], KEYS[4], {ARGV[1]})
"""
)


async def _guard(operation: Callable[[], Awaitable[T]]) -> T:
    """Redis down is the caller's UNAVAILABLE, never an accepted task silently dropped."""
    try:
        return await operation()
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable(
            "the task queue (Redis) is unreachable; try again shortly",
            reason="QUEUE_UNAVAILABLE",
            metadata={"error": type(exc).__name__},
        ) from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisTaskQueue:
    """``TaskQueue`` on a Redis stream and consumer group; see the module docstring."""

    def __init__(self, client: aioredis.Redis, notifier: Notifier, *, prefix: str, group: str) -> None:
        self._redis = client
        self._notifier = notifier
        self._group = group
        self.stream = f"{prefix}:stream"
        self.meta = f"{prefix}:tasks"
        self.delayed = f"{prefix}:delayed"
        self.dead = f"{prefix}:dead"
        self.leases = f"{prefix}:leases"
        self.worker_names = f"{prefix}:workers:names"
        self.worker_beats = f"{prefix}:workers:beats"
        self._claim = client.register_script(_CLAIM)
        self._enqueue = client.register_script(_ENQUEUE)
        self._requeue = client.register_script(_REQUEUE)
        self._ack = client.register_script(_ACK)
        self._extend = client.register_script(_EXTEND)
        self._retry = client.register_script(_RETRY)
        self._dead = client.register_script(_DEAD)
        self._replay = client.register_script(_REPLAY)
        self._remove = client.register_script(_REMOVE)
        self._purge_one = client.register_script(_PURGE_ONE)
        self._join = client.register_script(_JOIN)
        self._reap = client.register_script(_REAP)
        self._beat = client.register_script(_BEAT)
        self._leave = client.register_script(_LEAVE)

    @property
    def _worker_keys(self) -> list[str]:
        return [self.meta, self.leases, self.worker_names, self.worker_beats]

    async def join(self, worker_id: str, name: str) -> int:
        released = await _guard(
            lambda: self._join(keys=self._worker_keys, args=[worker_id, name, time.time()])
        )
        if released:
            self._notifier.notify(QUEUE_TOPIC)
        return int(released)

    async def beat(self, worker_id: str) -> bool:
        keys = [self.worker_names, self.worker_beats]
        return bool(await _guard(lambda: self._beat(keys=keys, args=[worker_id, time.time()])))

    async def reap(self, silent_for_s: float) -> int:
        cutoff = time.time() - silent_for_s
        released = await _guard(lambda: self._reap(keys=self._worker_keys, args=[cutoff]))
        if released:
            self._notifier.notify(QUEUE_TOPIC)
        return int(released)

    async def leave(self, worker_id: str) -> None:
        await _guard(lambda: self._leave(keys=self._worker_keys, args=[worker_id]))

    async def enqueue(self, task_id: str, tenant_id: str, trace: dict[str, str], side: str = "") -> bool:
        """Queue a task unless the queue already holds it, for the workers of ``side`` of the
        planner's canary ('' for any); True when it was added."""
        added = await _guard(
            lambda: self._enqueue(
                keys=[self.stream, self.meta],
                args=[task_id, tenant_id, json.dumps(trace), time.time(), side],
            )
        )
        if added:
            self._notifier.notify(QUEUE_TOPIC)
        return bool(added)

    async def requeue(self, task_id: str, tenant_id: str, side: str = "") -> bool:
        """Queue a task answered with input again (for the workers of ``side``), taking it over from
        a claim not yet acknowledged; True when it was added (False: it is already queued and
        unclaimed)."""
        added = await _guard(
            lambda: self._requeue(
                keys=[self.stream, self.meta, self.leases],
                args=[self._group, task_id, tenant_id, time.time(), side],
            )
        )
        if added:
            self._notifier.notify(QUEUE_TOPIC)
        return bool(added)

    async def holds(self, task_ids: list[str]) -> list[bool]:
        """Whether the queue holds each task (queued, claimed, waiting to retry or dead)."""
        if not task_ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for task_id in task_ids:
            pipe.hexists(self.meta, task_id)
        return [bool(v) for v in await _guard(pipe.execute)]

    async def claim(
        self, worker_id: str, visibility_timeout_s: float, *, side: str | None = None
    ) -> Claim | None:
        now_ms = int(time.time() * 1000)
        visibility_ms = max(1, int(visibility_timeout_s * 1000))
        row = await _guard(
            lambda: self._claim(
                keys=[self.stream, self.delayed, self.meta, self.leases],
                args=[self._group, worker_id, now_ms, visibility_ms, side or ""],
            )
        )
        if not row:
            return None
        task_id, tenant_id, count, trace = row
        return Claim(_text(task_id), _text(tenant_id), int(count), dict(json.loads(_text(trace) or "{}")))

    async def extend(self, task_id: str, worker_id: str, visibility_timeout_s: float) -> bool:
        until_ms = int((time.time() + visibility_timeout_s) * 1000)
        done = await _guard(
            lambda: self._extend(
                keys=[self.stream, self.meta, self.leases], args=[self._group, task_id, worker_id, until_ms]
            )
        )
        return bool(done)

    async def ack(self, task_id: str, worker_id: str) -> None:
        await _guard(
            lambda: self._ack(
                keys=[self.stream, self.meta, self.leases], args=[self._group, task_id, worker_id]
            )
        )

    async def retry(self, task_id: str, worker_id: str, delay_s: float, error: str) -> None:
        now_ms = int(time.time() * 1000)
        await _guard(
            lambda: self._retry(
                keys=[self.stream, self.meta, self.leases, self.delayed],
                args=[self._group, task_id, worker_id, now_ms + int(delay_s * 1000), error, now_ms],
            )
        )
        self._notifier.notify(QUEUE_TOPIC)

    async def dead_letter(self, task_id: str, worker_id: str, error: str) -> None:
        await _guard(
            lambda: self._dead(
                keys=[self.stream, self.meta, self.leases, self.dead],
                args=[self._group, task_id, worker_id, error],
            )
        )

    async def remove(self, task_id: str) -> None:
        await _guard(
            lambda: self._remove(
                keys=[self.stream, self.meta, self.leases, self.delayed, self.dead],
                args=[self._group, task_id],
            )
        )

    async def depth(self) -> int:
        """Tasks accepted and not finished: queued, claimed or waiting to retry (not the dead)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hlen(self.meta)
        pipe.zcard(self.dead)
        held, dead = await _guard(pipe.execute)
        return max(0, int(held) - int(dead))

    async def dead_count(self) -> int:
        return int(await _guard(lambda: self._redis.zcard(self.dead)))

    async def _records(self, task_ids: list[str]) -> list[tuple[str, dict[str, Any]]]:
        if not task_ids:
            return []
        raws = await _guard(lambda: self._redis.hmget(self.meta, task_ids))
        return [(t, json.loads(_text(r))) for t, r in zip(task_ids, raws, strict=True) if r is not None]

    async def dead_letters(
        self, *, tenant_id: str | None = None, limit: int = 100, after: tuple[float, str] | None = None
    ) -> list[DeadLetter]:
        found: list[DeadLetter] = []
        low: str = "-inf" if after is None else str(after[0])
        chunk = max(limit, 100)
        offset = 0
        while len(found) < limit:
            ids = await self._dead_ids(low, offset, chunk)
            if not ids:
                break
            offset += len(ids)
            for task_id, record in await self._records([_text(i) for i in ids]):
                letter = _letter(task_id, record)
                if after is not None and (letter.enqueued_at, letter.task_id) <= after:
                    continue
                if tenant_id is None or letter.tenant_id == tenant_id:
                    found.append(letter)
        found.sort(key=lambda d: (d.enqueued_at, d.task_id))
        return found[:limit]

    async def _dead_ids(self, low: str, offset: int, count: int) -> list[Any]:
        ids: list[Any] = await _guard(
            lambda: self._redis.zrangebyscore(self.dead, low, "+inf", start=offset, num=count)
        )
        return ids

    async def dead_letter_of(self, task_id: str) -> DeadLetter | None:
        if await _guard(lambda: self._redis.zscore(self.dead, task_id)) is None:
            return None
        records = await self._records([task_id])
        return _letter(*records[0]) if records else None

    async def replay(self, task_id: str) -> bool:
        done = await _guard(
            lambda: self._replay(keys=[self.stream, self.meta, self.dead], args=[task_id, time.time()])
        )
        self._notifier.notify(QUEUE_TOPIC)
        return bool(done)

    async def purge(self, task_id: str | None = None, *, tenant_id: str | None = None) -> int:
        if task_id is not None:
            letter = await self.dead_letter_of(task_id)
            if letter is None or (tenant_id is not None and letter.tenant_id != tenant_id):
                return 0
            return await self._purge(task_id)
        purged = 0
        while True:
            batch = await self.dead_letters(tenant_id=tenant_id, limit=500)
            if not batch:
                return purged
            for letter in batch:
                purged += await self._purge(letter.task_id)

    async def _purge(self, task_id: str) -> int:
        return int(await _guard(lambda: self._purge_one(keys=[self.meta, self.dead], args=[task_id])))

    async def ping(self) -> None:
        await _guard(self._redis.ping)


def _letter(task_id: str, record: dict[str, Any]) -> DeadLetter:
    return DeadLetter(
        task_id=task_id,
        tenant_id=str(record.get("tenant_id", "")),
        delivery_count=int(record.get("delivery_count", 0)),
        last_error=str(record.get("last_error", "")),
        enqueued_at=float(record.get("enqueued_at", 0.0)),
    )
