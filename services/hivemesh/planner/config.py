"""Settings of the planner beyond the shared ``Settings``, read once from ``HIVEMESH_*``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from hivemesh.mesh.config import ConfigError, EnvReader

DEFAULT_TOOL_CATALOGUE_MAX_AGE_S = 5.0


@dataclass(frozen=True)
class PlannerConfig:
    # Longest the planner plans with its copy of the tool catalogue without asking ToolService
    # whether it changed (tool answers report changes sooner). 0: ask before every task.
    tool_catalogue_max_age_s: float = DEFAULT_TOOL_CATALOGUE_MAX_AGE_S
    # The GPU pool of the language service (host:port, comma-separated replicas); empty: one pool.
    language_gpu: tuple[str, ...] = ()
    # The CPU pool; empty: the language address (HIVEMESH_LANGUAGE_ADDR).
    language_cpu: tuple[str, ...] = ()
    # How long a failing language replica stays out of rotation first (doubling while it fails).
    language_eject_for_s: float = 10.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PlannerConfig:
        e = os.environ if env is None else env
        reader = EnvReader(e)
        gpu = _addresses(reader, "HIVEMESH_LANGUAGE_GPU_ADDR")
        cpu = _addresses(reader, "HIVEMESH_LANGUAGE_CPU_ADDR")
        if cpu and not gpu:
            raise ConfigError("HIVEMESH_LANGUAGE_CPU_ADDR needs HIVEMESH_LANGUAGE_GPU_ADDR beside it")
        overlap = set(gpu) & set(cpu)
        if overlap:
            raise ConfigError(f"{', '.join(sorted(overlap))} is in both the GPU and the CPU language pool")
        return cls(
            tool_catalogue_max_age_s=reader.seconds(
                "HIVEMESH_PLANNER_TOOL_CATALOGUE_MAX_AGE", DEFAULT_TOOL_CATALOGUE_MAX_AGE_S
            ),
            language_gpu=gpu,
            language_cpu=cpu,
            language_eject_for_s=reader.seconds("HIVEMESH_LANGUAGE_EJECT_FOR", 10.0, minimum=0.05),
        )


def _addresses(reader: EnvReader, name: str) -> tuple[str, ...]:
    raw = reader.optional(name)
    if raw is None:
        return ()
    addresses = tuple(a.strip() for a in raw.split(",") if a.strip())
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name} must be host:port entries separated by commas, got {address!r}")
    return addresses
