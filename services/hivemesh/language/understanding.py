"""Understand: intent, confidence, out-of-scope flag, slots and alternatives for a request, with
compound requests ("convert 5 miles to km and add eggs to my list") understood part by part.

Domain code: no grpc. The router is reached through ``classify`` (the micro-batcher in the
service), slots and splitting through small ports, so tests can hand in plain functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from typing import Protocol

from hivemesh.language.nlu.router import Alternative, Prediction
from hivemesh.language.v1 import language_service_pb2 as pb
from hivemesh.mesh.intents import AgentIntent


class SlotReader(Protocol):
    """Typed slots of ``text`` read for ``intent``, as contract messages."""

    def __call__(self, text: str, intent: str, *, now: datetime) -> list[pb.Slot]: ...


@dataclass(frozen=True)
class Understanding:
    text: str
    intent: str
    confidence: float
    out_of_scope: bool
    slots: tuple[pb.Slot, ...] = ()
    alternatives: tuple[Alternative, ...] = ()
    parts: tuple[Understanding, ...] = field(default=())
    # Recognised, but none of the installed tools serves it (see ``among``).
    without_tool: bool = False

    def among(self, available: Collection[str]) -> Understanding:
        """This understanding for a catalogue whose tools serve ``available``: alternatives only
        among those and the agent's own intents, and ``without_tool`` when the intent is another.
        An empty ``available`` names no catalogue: every intent counts as served."""
        if not available:
            return self
        return replace(
            self,
            alternatives=tuple(a for a in self.alternatives if _served(a.intent, available)),
            parts=tuple(part.among(available) for part in self.parts),
            without_tool=not self.out_of_scope and not _served(self.intent, available),
        )


def _served(intent: str, available: Collection[str]) -> bool:
    return intent in available or AgentIntent.of(intent) is not None


class Understander:
    def __init__(
        self,
        classify: Callable[[str], Awaitable[Prediction]],
        read_slots: SlotReader,
        split: Callable[[str], list[str]],
        clock: Callable[[], datetime],
    ) -> None:
        self._classify = classify
        self._read_slots = read_slots
        self._split = split
        self._clock = clock

    async def understand(
        self,
        text: str,
        context: Sequence[str] = (),
        zone: tzinfo | None = None,
        available: Collection[str] = (),
    ) -> Understanding:
        """The whole text's understanding; ``parts`` holds each request when it asks for several.

        Dates and times are read in ``zone``, the user's time zone ("at 5pm" is 5pm there, "today"
        is its date), or in the clock's when None. ``available``: the intents the installed tools
        serve (see ``Understanding.among``); empty, every intent counts as served. ``context`` is
        accepted for follow-ups but not yet used by the router.
        """
        return (await self._understand(text, zone)).among(frozenset(available))

    async def _understand(self, text: str, zone: tzinfo | None) -> Understanding:
        now = self._clock() if zone is None else self._clock().astimezone(zone)
        pieces = [p for p in self._split(text) if p.strip()] or [text]
        if len(pieces) == 1:
            return await self._one(text, now)
        parts = await asyncio.gather(*(self._one(piece, now) for piece in pieces))
        # The first part leads: planners that read only the top level still act on a real request.
        lead = next((p for p in parts if not p.out_of_scope), parts[0])
        return Understanding(
            text=text,
            intent=lead.intent,
            confidence=lead.confidence,
            out_of_scope=all(p.out_of_scope for p in parts),
            slots=lead.slots,
            alternatives=lead.alternatives,
            parts=tuple(parts),
        )

    async def _one(self, text: str, now: datetime) -> Understanding:
        prediction = await self._classify(text)
        slots = () if prediction.out_of_scope else tuple(self._read_slots(text, prediction.intent, now=now))
        return Understanding(
            text=text,
            intent=prediction.intent,
            confidence=prediction.confidence,
            out_of_scope=prediction.out_of_scope,
            slots=slots,
            alternatives=prediction.alternatives,
        )
