"""Intents: what the language service's router says a request asks for.

An intent is a name the router is trained on (``Intent``); the tools of the catalogue declare the
intents they serve. A few are answered by the agent itself, with no tool: ``AgentIntent``.
"""

from __future__ import annotations

import enum
from typing import NewType

# An intent's name, as the router is trained on it: lower-case letters, digits and "_".
Intent = NewType("Intent", str)


class AgentIntent(enum.StrEnum):
    """The intents the agent answers itself (the planner, or Generate's fallback), never a tool."""

    OUT_OF_SCOPE = "oos"
    GREETING = "greeting"
    REMEMBER = "remember"
    RECALL = "recall"

    @classmethod
    def of(cls, intent: str) -> AgentIntent | None:
        """The agent's own intent named ``intent``; None for any other (a tool's)."""
        return _AGENT_INTENTS.get(intent)


_AGENT_INTENTS = {member.value: member for member in AgentIntent}
