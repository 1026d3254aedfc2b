"""What failed authentications may cost: a budget of failures per peer, and short memories of the
API keys the store rejected and accepted.

Identifying a caller costs a database lookup (an API key) or a signature check (a JWT) before
anything is known of it, so the per-tenant rate limit, which needs the tenant, cannot bound that
work. ``FailureBudget`` does, per peer address: each failed authentication (a call without
credentials included) spends a token, and a peer without one is refused before any lookup.
``ScreenedKeys`` stands in front of the key store: a key it rejected lately is rejected again from
memory, and a key id it accepted lately still gets its lookup from a peer over its budget (so a
good key keeps working beside a flood of bad ones from the same address). Accepted keys are never
answered from memory: every call with a good key is looked up, so a revocation applies at once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
import time
from collections import OrderedDict
from typing import Generic, Protocol, TypeVar
from urllib.parse import unquote

from hivemesh.gateway.keys import KeyCheck, parse
from hivemesh.gateway.ratelimit import InProcessTokenBucket
from hivemesh.mesh.errors import ResourceExhausted

# Peers whose budgets one process keeps (the least recently seen is forgotten: a full budget again).
MAX_PEERS = 10_000
# Rejected keys, and accepted key ids, one process remembers.
MAX_REMEMBERED = 10_000
# How long an accepted key id vouches for a lookup from a peer over its budget.
ACCEPTED_TTL_S = 600.0
REASON = "AUTH_RATE_LIMITED"

_K = TypeVar("_K")
_V = TypeVar("_V")


def peer_key(peer: str) -> str:
    """The address a budget is kept for, from ``context.peer()``: an IPv4 client's address, an IPv6
    client's /64 (one host commonly holds a whole /64), an IPv4-mapped IPv6 address as IPv4; other
    transports (a Unix socket, the in-process door) by their name."""
    kind, _, rest = unquote(peer).partition(":")  # grpc writes an IPv6 peer as ipv6:%5B::1%5D:port
    host = rest.rpartition(":")[0] or rest
    if kind == "ipv4":
        return host
    if kind == "ipv6":
        try:
            address = ipaddress.IPv6Address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return host
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return kind


class FailureBudget:
    """Failed authentications per peer: ``rate_per_s`` sustained, ``burst`` at once, in this process."""

    def __init__(self, rate_per_s: float, burst: int, *, max_peers: int = MAX_PEERS) -> None:
        self._rate = rate_per_s
        self._buckets = InProcessTokenBucket(rate_per_s, burst, max_keys=max_peers)

    def admit(self, peer: str) -> None:
        """Raise ResourceExhausted (``AUTH_RATE_LIMITED``, with the wait) if ``peer`` has no failure
        left to spend; spends nothing."""
        wait = self._buckets.wait(peer)
        if wait > 0:
            raise ResourceExhausted(
                f"too many failed authentications from {peer} (at most {self._rate:g} per second); "
                "check the credentials before trying again",
                retry_after_s=wait,
                reason=REASON,
                metadata={"peer": peer, "limit_per_s": f"{self._rate:g}"},
            )

    def charge(self, peer: str) -> None:
        """Count one failure of ``peer``. Failures of calls admitted together are all counted, into
        debt: the peer then waits until it is repaid."""
        self._buckets.charge(peer)

    def undecodable(self, peer: str) -> None:
        """A request from ``peer`` (as ``context.peer()`` names it) did not decode, before anyone
        could authenticate it: it costs a failure like a call without credentials, and a peer that
        has none left is refused (ResourceExhausted) instead of answered."""
        where = peer_key(peer)
        self.admit(where)
        self.charge(where)


class _Recent(Generic[_K, _V]):
    """At most ``capacity`` entries, each kept ``ttl_s`` (0: none kept); the oldest go first."""

    def __init__(self, capacity: int, ttl_s: float) -> None:
        self._capacity = capacity
        self._ttl = ttl_s
        self._entries: OrderedDict[_K, tuple[float, _V]] = OrderedDict()

    def get(self, key: _K) -> _V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: _K, value: _V) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self._ttl, value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def forget(self, key: _K) -> None:
        self._entries.pop(key, None)


class KeyStore(Protocol):
    async def check(self, token: str) -> KeyCheck: ...


class ScreenedKeys:
    """The key store behind a memory of the keys it rejected (unknown, wrong or revoked), kept
    ``rejected_ttl_s``, and of the key ids it accepted. A rejected key is remembered by a keyed hash
    (the key of this process only), never as itself."""

    def __init__(self, store: KeyStore, *, rejected_ttl_s: float, capacity: int = MAX_REMEMBERED) -> None:
        self._store = store
        self._salt = secrets.token_bytes(16)
        self._rejected: _Recent[bytes, KeyCheck] = _Recent(capacity, rejected_ttl_s)
        self._accepted: _Recent[str, bool] = _Recent(capacity, ACCEPTED_TTL_S)

    def _digest(self, token: str) -> bytes:
        return hashlib.blake2b(
            token.encode("utf-8", "surrogatepass"), key=self._salt, digest_size=16
        ).digest()

    async def check(self, token: str) -> KeyCheck:
        parsed = parse(token)
        if parsed is None:  # malformed: rejected without a lookup anyway
            return await self._store.check(token)
        key_id = parsed[0]
        digest = self._digest(token)
        remembered = self._rejected.get(digest)
        if remembered is not None:
            return remembered
        found = await self._store.check(token)
        if found.key is None or found.key.revoked:
            self._rejected.put(digest, found)
            # A wrong secret for a known key id: the id vouches for nothing until it is used rightly.
            self._accepted.forget(key_id)
        else:
            self._accepted.put(key_id, True)
        return found

    def vouched(self, token: str) -> bool:
        """Whether the key id of ``token`` was accepted lately and not presented wrongly since: its
        lookup is worth making even for a peer over its failure budget."""
        parsed = parse(token)
        return parsed is not None and self._accepted.get(parsed[0]) is not None
