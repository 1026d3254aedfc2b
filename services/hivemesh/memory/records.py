"""Structured records: typed values (a todo list, a reminder, profile facts) with versions."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from hivemesh.memory.model import Owner, Record, RecordPage
from hivemesh.memory.schemas import RecordKinds
from hivemesh.mesh.errors import InvalidArgument, NotFound

DEFAULT_PAGE_SIZE = 100
# expected_version values with a meaning of their own (see PutRecordRequest).
UNCONDITIONAL = 0
CREATE_ONLY = -1


class RecordStore(Protocol):
    async def put(
        self,
        owner: Owner,
        kind: str,
        key: str,
        value: str,
        expected_version: int,
        expire_at: float | None,
        now: float,
    ) -> Record:
        """Write ``value`` (JSON text); raises ABORTED VERSION_MISMATCH when the version differs."""
        ...

    async def get(self, owner: Owner, kind: str, key: str, now: float) -> Record | None: ...

    async def list(self, owner: Owner, kind: str, after_key: str, limit: int, now: float) -> list[Record]: ...

    async def delete(self, owner: Owner, kind: str, key: str, now: float) -> bool: ...

    async def sweep(self, now: float) -> int: ...


class StructuredRecords:
    def __init__(
        self, store: RecordStore, kinds: RecordKinds, *, max_value_bytes: int, clock: Callable[[], float]
    ) -> None:
        self._store = store
        self._kinds = kinds
        self._max_value_bytes = max_value_bytes
        self._clock = clock

    async def put(
        self,
        owner: Owner,
        kind: str,
        key: str,
        value: Mapping[str, Any],
        expected_version: int,
        ttl_s: float | None,
    ) -> Record:
        self._kinds.require(kind)
        encoded = json.dumps(value, separators=(",", ":"), sort_keys=True)
        size = len(encoded.encode())
        if size > self._max_value_bytes:
            raise InvalidArgument.field(
                "value",
                f"is {size} bytes of JSON; at most {self._max_value_bytes} are allowed",
                reason="RECORD_TOO_LARGE",
            )
        self._kinds.check(kind, value)
        now = self._clock()
        expire_at = None if ttl_s is None else now + ttl_s
        return await self._store.put(owner, kind, key, encoded, expected_version, expire_at, now)

    async def get(self, owner: Owner, kind: str, key: str) -> Record:
        self._kinds.require(kind)
        record = await self._store.get(owner, kind, key, self._clock())
        if record is None:
            raise NotFound(
                f"record {kind}/{key} not found",
                reason="RECORD_NOT_FOUND",
                metadata={"kind": kind, "key": key},
            )
        return record

    async def list(self, owner: Owner, kind: str, page_size: int, page_token: str) -> RecordPage:
        self._kinds.require(kind)
        limit = page_size or DEFAULT_PAGE_SIZE
        after = _decode_token(page_token, kind) if page_token else ""
        # One extra row tells whether another page follows.
        rows = await self._store.list(owner, kind, after, limit + 1, self._clock())
        page = tuple(rows[:limit])
        token = _encode_token(kind, page[-1].key) if len(rows) > limit else ""
        return RecordPage(page, token)

    async def delete(self, owner: Owner, kind: str, key: str) -> bool:
        self._kinds.require(kind)
        return await self._store.delete(owner, kind, key, self._clock())


def _encode_token(kind: str, last_key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"kind": kind, "after": last_key}).encode()).decode()


def _decode_token(token: str, kind: str) -> str:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after = data["after"]
        same_kind = data["kind"] == kind
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidArgument.field("page_token", "is not a token from ListRecords") from None
    if not same_kind or not isinstance(after, str):
        raise InvalidArgument.field("page_token", "belongs to another listing")
    return after
