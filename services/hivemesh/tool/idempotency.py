"""Idempotency: the first outcome of a call stored under its key and returned for every repeat.

A call claims its key before running; a second call with the same key while the first runs waits
for its outcome instead of running the tool again. The claim is a lease: if the replica running it
dies, the claim expires and the next caller runs the tool. A failed call releases its claim, so a
retry after a failure runs again. Keys are scoped by tenant, and a key reused for a different tool
or different arguments is refused rather than answered with someone else's result.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Protocol

from hivemesh.mesh.errors import FailedPrecondition
from hivemesh.tool.model import ToolCall, ToolOutput


@dataclass(frozen=True)
class Claimed:
    """This caller owns the key and must ``finish`` or ``release`` it with ``token``."""

    token: str


@dataclass(frozen=True)
class Finished:
    """The key's first outcome."""

    output: ToolOutput
    fingerprint: str


@dataclass(frozen=True)
class Running:
    """Another caller holds the key and has not finished."""

    fingerprint: str


Claim = Claimed | Finished | Running


# A claim's token is the claiming service's incarnation followed by random characters, so that a
# restarted service can tell (and free) the claims its dead predecessor left pending.
INCARNATION_CHARS = 12
TOKEN_CHARS = 32


def new_incarnation() -> str:
    return secrets.token_hex(INCARNATION_CHARS // 2)


def claim_token(incarnation: str) -> str:
    return incarnation + secrets.token_hex((TOKEN_CHARS - len(incarnation)) // 2)


class IdempotencyStore(Protocol):
    async def claim(self, key: str, fingerprint: str, lease_s: float) -> Claim: ...

    async def finish(self, key: str, token: str, output: ToolOutput, ttl_s: float) -> None: ...

    async def release(self, key: str, token: str) -> None: ...


def store_key(call: ToolCall) -> str:
    raw = f"{call.owner.tenant_id}\x00{call.idempotency_key}"
    return hashlib.sha256(raw.encode()).hexdigest()


def fingerprint(call: ToolCall) -> str:
    canonical = json.dumps([call.tool_name, call.arguments], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_same_call(call: ToolCall, expected: str, stored: str) -> None:
    if expected != stored:
        raise FailedPrecondition(
            "this idempotency key was already used for a different tool call",
            reason="IDEMPOTENCY_KEY_REUSED",
            metadata={"idempotency_key": call.idempotency_key, "tool": call.tool_name},
        )


def encode_output(output: ToolOutput) -> str:
    return json.dumps({"value": output.value, "display": output.display}, separators=(",", ":"))


def decode_output(text: str) -> ToolOutput:
    data = json.loads(text)
    return ToolOutput(data["value"], data["display"])
