"""Which device the language service's models run on (``HIVEMESH_LANGUAGE_DEVICE``).

``auto`` uses CUDA when the machine has an NVIDIA device and the installed torch was built with
CUDA; torch is imported only when such a device is there, so a CPU process (or one without torch,
running the lexical router) pays nothing to find out. ``cuda`` insists: a process asked for the GPU
that has none stops at start-up instead of serving slowly from the CPU of a GPU node.
"""

from __future__ import annotations

import functools
import glob
from collections.abc import Mapping

from hivemesh.mesh.config import ConfigError, EnvReader

DEVICES = ("auto", "cpu", "cuda")


def device_from_env(env: Mapping[str, str]) -> str:
    """The device ``HIVEMESH_LANGUAGE_DEVICE`` asks for (default ``auto``), resolved."""
    choice = EnvReader(env).choice("HIVEMESH_LANGUAGE_DEVICE", "AUTO", tuple(d.upper() for d in DEVICES))
    return resolve_device(choice.lower())


def resolve_device(choice: str) -> str:
    """``cpu`` or ``cuda`` for a ``HIVEMESH_LANGUAGE_DEVICE`` value; raises ConfigError when ``cuda``
    is asked for and unavailable."""
    if choice == "cpu":
        return "cpu"
    if choice == "auto":
        return "cuda" if _cuda_usable() else "cpu"
    if choice == "cuda":
        if not _cuda_usable():
            raise ConfigError(
                "HIVEMESH_LANGUAGE_DEVICE=cuda but no CUDA device is usable here "
                "(no /dev/nvidia* device, no torch, or a torch built without CUDA)"
            )
        return "cuda"
    raise ConfigError(f"HIVEMESH_LANGUAGE_DEVICE must be one of {', '.join(DEVICES)}, got {choice!r}")


@functools.cache
def _cuda_usable() -> bool:
    if not glob.glob("/dev/nvidia[0-9]*"):
        return False
    try:
        import torch  # noqa: PLC0415 - optional, and heavy: only where a GPU is present
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
