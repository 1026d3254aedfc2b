"""Settings of the planner beyond the shared ``Settings``, read once from ``HIVEMESH_*`` when the
planner is built."""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import EnvReader

DEFAULT_TOOL_CATALOGUE_MAX_AGE_S = 5.0


class PlannerStrategy(enum.StrEnum):
    """How the planner runs a task (``HIVEMESH_PLANNER_STRATEGY``)."""

    BUILTIN = "builtin"  # intents and slots to the tools that declare them
    LLM = "llm"  # a function-calling loop through LanguageService.Generate


@dataclass(frozen=True)
class PlannerConfig:
    # "builtin" plans from intents and slots; "llm" lets the configured model call tools.
    strategy: PlannerStrategy = PlannerStrategy.BUILTIN
    # Tasks one planner process runs at once from the queue; 0 takes none (PlanTask and RunTask only).
    workers: int = 32
    # Calls the planner keeps in flight to each downstream service (a bulkhead per service).
    downstream_concurrency: int = 64
    # Longest the planner plans with its copy of the tool catalogue without asking ToolService
    # whether it changed (tool answers report changes sooner). 0: ask before every task.
    tool_catalogue_max_age_s: float = DEFAULT_TOOL_CATALOGUE_MAX_AGE_S
    # Each run calls language and tool on the side of a canary its session started on
    # (hivemesh.mesh.sides); on inside a mesh whose VirtualServices route by x-hivemesh-side.
    sticky_sessions: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlannerConfig:
        reader = EnvReader(os.environ if env is None else env)
        return cls(
            strategy=PlannerStrategy(
                reader.choice("HIVEMESH_PLANNER_STRATEGY", "BUILTIN", ("BUILTIN", "LLM")).lower()
            ),
            workers=reader.integer("HIVEMESH_PLANNER_WORKERS", cls.workers, minimum=0),
            downstream_concurrency=reader.integer(
                "HIVEMESH_PLANNER_DOWNSTREAM_CONCURRENCY", cls.downstream_concurrency, minimum=1
            ),
            tool_catalogue_max_age_s=reader.seconds(
                "HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE", DEFAULT_TOOL_CATALOGUE_MAX_AGE_S
            ),
            sticky_sessions=reader.boolean("HIVEMESH_STICKY_SESSIONS", default=False),
        )
