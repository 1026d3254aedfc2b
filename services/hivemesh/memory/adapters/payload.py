"""How a memory is laid out as a Qdrant point payload (shared by the Edge and server adapters).

Metadata is stored twice: as a map to return it, and as ``meta`` — a list of JSON-encoded
``[key, value]`` pairs under a keyword index — so a filter on any key (dots included) is one exact
keyword match and can never be confused with another key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hivemesh.memory.model import Hit, Memory, Owner

TENANT = "tenant_id"
USER = "user_id"
META = "meta"
EXPIRE = "expire_at"
VERSION = "version"


# What a hit needs back: everything but the filter-only ``meta`` copy.
RETURNED = (TENANT, USER, "session_id", "text", "metadata", VERSION, "create_time", "update_time", EXPIRE)


def meta_pair(key: str, value: str) -> str:
    return json.dumps([key, value], ensure_ascii=False)


def to_payload(memory: Memory) -> dict[str, Any]:
    payload: dict[str, Any] = {
        TENANT: memory.owner.tenant_id,
        USER: memory.owner.user_id,
        "session_id": memory.session_id,
        "text": memory.text,
        "metadata": dict(memory.metadata),
        META: [meta_pair(k, v) for k, v in sorted(memory.metadata.items())],
        VERSION: memory.version,
        "create_time": memory.create_time,
        "update_time": memory.update_time,
    }
    if memory.expire_time is not None:
        payload[EXPIRE] = memory.expire_time
    return payload


def to_hit(point_id: object, payload: Mapping[str, Any], score: float) -> Hit:
    expire = payload.get(EXPIRE)
    memory = Memory(
        memory_id=str(point_id),
        owner=Owner(str(payload[TENANT]), str(payload[USER])),
        session_id=str(payload.get("session_id", "")),
        text=str(payload["text"]),
        metadata={str(k): str(v) for k, v in dict(payload.get("metadata") or {}).items()},
        version=int(payload[VERSION]),
        create_time=float(payload["create_time"]),
        update_time=float(payload["update_time"]),
        expire_time=None if expire is None else float(expire),
    )
    return Hit(memory, min(1.0, max(0.0, float(score))))
