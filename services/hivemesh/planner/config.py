"""Settings of the planner beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import EnvReader

DEFAULT_TOOL_CATALOGUE_MAX_AGE_S = 5.0


@dataclass(frozen=True)
class PlannerConfig:
    # Longest the planner plans with its copy of the tool catalogue without asking ToolService
    # whether it changed (tool answers report changes sooner). 0: ask before every task.
    tool_catalogue_max_age_s: float = DEFAULT_TOOL_CATALOGUE_MAX_AGE_S

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlannerConfig:
        reader = EnvReader(os.environ if env is None else env)
        return cls(
            tool_catalogue_max_age_s=reader.seconds(
                "HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE", DEFAULT_TOOL_CATALOGUE_MAX_AGE_S
            )
        )
