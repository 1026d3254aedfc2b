"""The Agent Card's skills: one for the agent as a whole (any request in plain words), then one per
tool of the live catalogue, read from ToolService.ListTools and cached for ``max_age_s`` (a
conditional ListTools, answered "unchanged" when nothing changed, renews a copy that aged).

ToolService is an internal service: ListTools needs a mesh credential, minted here by ``credential``
(ListTools answers every tenant alike, so one credential of any tenant serves all callers). A front
door without the mesh's signing key passes no ToolService, and its card lists the general skill only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import grpc
from a2a.types import a2a_pb2 as a2a

from hivemesh.mesh.credentials import CREDENTIAL_HEADER
from hivemesh.tool.v1 import tool_service_pb2 as tool
from hivemesh.tool.v1.tool_service_pb2_grpc import ToolServiceStub

log = logging.getLogger(__name__)

TEXT = "text/plain"

ASK_SKILL = a2a.AgentSkill(
    id="ask",
    name="Ask the agent",
    description=(
        "Any request in plain words: the agent understands it, plans and runs the tools it needs, "
        "remembers the conversation (the A2A context) and answers. It asks a question back "
        "(input-required) when something is missing."
    ),
    tags=["agent", "conversation"],
    examples=["what is 12 * (3 + 4)?", "convert 5 miles to km and add eggs to my shopping list"],
    input_modes=[TEXT],
    output_modes=[TEXT],
)


class SkillSource(Protocol):
    async def __call__(self) -> Sequence[a2a.AgentSkill]:
        """The skills to list on the card now."""
        ...


async def general_skill() -> Sequence[a2a.AgentSkill]:
    return (ASK_SKILL,)


def skill_of(spec: tool.ToolSpec) -> a2a.AgentSkill:
    return a2a.AgentSkill(
        id=f"tool:{spec.name}",
        name=spec.name,
        description=spec.description or spec.name,
        tags=["tool", spec.source or "builtin"],
        input_modes=[TEXT],
        output_modes=[TEXT],
    )


class ToolCatalogueSkills:
    """The general skill plus a skill per tool of ToolService's catalogue. When ToolService cannot
    be reached, the copy held is served (or the general skill alone) and the next card asks again."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        credential: Callable[[], str],
        *,
        max_age_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._stub = ToolServiceStub(channel)
        self._credential = credential
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._version = ""
        self._skills: tuple[a2a.AgentSkill, ...] = (ASK_SKILL,)
        self._fetched_at = -max_age_s
        self._lock = asyncio.Lock()

    async def __call__(self) -> Sequence[a2a.AgentSkill]:
        async with self._lock:
            if time.monotonic() - self._fetched_at >= self._max_age_s:
                try:
                    await self._refresh()
                except grpc.aio.AioRpcError as exc:
                    log.warning("the tool catalogue could not be read for the agent card: %s", exc.details())
        return self._skills

    async def _refresh(self) -> None:
        metadata = ((CREDENTIAL_HEADER, self._credential()),)
        first: tool.ListToolsResponse = await self._stub.ListTools(
            tool.ListToolsRequest(page_size=1000, cached_catalogue_version=self._version),
            timeout=self._timeout_s,
            metadata=metadata,
        )
        self._fetched_at = time.monotonic()
        if first.unchanged:
            return
        specs, token = list(first.tools), first.next_page_token
        while token:
            page: tool.ListToolsResponse = await self._stub.ListTools(
                tool.ListToolsRequest(page_size=1000, page_token=token),
                timeout=self._timeout_s,
                metadata=metadata,
            )
            specs.extend(page.tools)
            token = page.next_page_token
        self._version = first.catalogue_version
        self._skills = (ASK_SKILL, *(skill_of(spec) for spec in sorted(specs, key=lambda s: s.name)))
