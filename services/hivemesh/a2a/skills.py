"""The Agent Card's skills: one for the agent as a whole (any request in plain words), then one per
tool of the live catalogue, read from the gateway's ListTools with a caller's credentials.

- The public card (``public``) is read without credentials, as a client that has not yet learnt how
  to authenticate reads it: when the gateway lets anonymous callers list the tools (``HIVEMESH_AUTH``
  ``none``, as ``hivemesh up`` runs), it lists them; otherwise it lists the general skill alone. That
  copy is kept for ``max_age_s``; when the gateway cannot be reached the copy held is served and the
  next card asks again.
- The extended card (A2A ``GetExtendedAgentCard``, ``for_caller``) is read with the caller's own
  credentials each time, so it lists the catalogue for whoever the gateway admits, and a caller it
  refuses gets the gateway's refusal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from a2a.types import a2a_pb2 as a2a
from a2a.utils.errors import A2AError, InternalError

from hivemesh.a2a.gateway import Credentials, TaskGateway
from hivemesh.tool.v1 import tool_service_pb2 as tool

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
    async def public(self) -> Sequence[a2a.AgentSkill]:
        """The skills of the public card (read without credentials)."""
        ...

    async def for_caller(self, credentials: Credentials) -> Sequence[a2a.AgentSkill]:
        """The skills of the extended card, as the caller with ``credentials`` may see them."""
        ...


class GeneralSkill:
    """The general skill alone, on both cards."""

    async def public(self) -> Sequence[a2a.AgentSkill]:
        return (ASK_SKILL,)

    async def for_caller(self, credentials: Credentials) -> Sequence[a2a.AgentSkill]:
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


def skills_of(specs: Sequence[tool.ToolSpec]) -> tuple[a2a.AgentSkill, ...]:
    return (ASK_SKILL, *(skill_of(spec) for spec in sorted(specs, key=lambda s: s.name)))


class CatalogueSkills:
    """The general skill plus a skill per tool of the gateway's catalogue (ListTools)."""

    def __init__(self, gateway: TaskGateway, *, max_age_s: float = 30.0) -> None:
        self._gateway = gateway
        self._max_age_s = max_age_s
        self._skills: tuple[a2a.AgentSkill, ...] = (ASK_SKILL,)
        self._fetched_at = -max_age_s
        self._lock = asyncio.Lock()

    async def public(self) -> Sequence[a2a.AgentSkill]:
        async with self._lock:
            if time.monotonic() - self._fetched_at >= self._max_age_s:
                try:
                    self._skills = skills_of(await self._gateway.tools(()))
                except InternalError as exc:
                    # The gateway out of reach: keep the copy held, ask again next time.
                    log.warning("the tool catalogue could not be read for the agent card: %s", exc.message)
                    return self._skills
                except A2AError:
                    # Refused without credentials: the public card lists the general skill alone.
                    self._skills = (ASK_SKILL,)
                self._fetched_at = time.monotonic()
        return self._skills

    async def for_caller(self, credentials: Credentials) -> Sequence[a2a.AgentSkill]:
        return skills_of(await self._gateway.tools(credentials))
