"""The two sides of a canary, as outbound calls name them: sticky sessions.

During a canary Istio sends each call to the stable or the canary subset by weight, so the turns of
one conversation would be answered by both releases. A planner run instead calls each service that
decides answers on one side, the side its session started on (``mesh/releases.py`` picks it),
by naming that side in the ``x-hivemesh-side`` header of every call it makes to that service. The
VirtualServices (``istio/services/``) route a call with ``x-hivemesh-side: stable`` to the stable
subset and one with ``canary`` to the canary subset whatever the weights; a call without it is
weighted as before. Outside a mesh nothing reads the header.

The planner itself is not called: it takes tasks from the queue. The gateway queues each task for
the side of the planner's canary its session is on, and a planner's workers claim only the tasks
of their side (and those for any side); the same header tells the gateway and each planner which
side runs which release.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Final

from hivemesh.common.v1.task_pb2 import CanarySide
from hivemesh.mesh.contracts import CONTRACTS

SIDE_HEADER: Final = "x-hivemesh-side"
STABLE: Final = "stable"
CANARY: Final = "canary"
SIDES: Final = (STABLE, CANARY)
# The services whose release decides an answer: the ones a session stays on. A run's calls to
# language, memory (the context and recall an answer reads) and tool name their side; the planner's
# side is the one whose workers take the session's tasks.
STICKY_SERVICES: Final = ("language", "memory", "planner", "tool")

# TaskOptions.side -> the side it names (a task that names none follows its session).
NAMED_SIDES: Final[Mapping[int, str]] = {
    CanarySide.CANARY_SIDE_STABLE: STABLE,
    CanarySide.CANARY_SIDE_CANARY: CANARY,
}

# Short service name -> side, for the calls made inside ``routed``.
_routed: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "hivemesh_sides", default=None
)
# "/hivemesh.language.v1.LanguageService/" -> "language"
_PREFIXES: Final = {f"/{contract.full_name}/": name for name, contract in CONTRACTS.items()}


@contextlib.contextmanager
def routed(sides: Mapping[str, str]) -> Iterator[None]:
    """Calls made inside (and from tasks started inside) to a service in ``sides`` name its side."""
    unknown = sorted(set(sides.values()) - set(SIDES))
    if unknown:
        raise ValueError(f"unknown side(s) {unknown}: a side is one of {', '.join(SIDES)}")
    token = _routed.set(dict(sides) or None)
    try:
        yield
    finally:
        _routed.reset(token)


def side_for(method: str | bytes) -> str | None:
    """The side a call to ``method`` (a full gRPC path) goes to, or None: weighted."""
    sides = _routed.get()
    if not sides:
        return None
    if isinstance(method, bytes):
        method = method.decode()
    service = _PREFIXES.get(method[: method.rfind("/") + 1])
    return None if service is None else sides.get(service)
