"""The deadline of the request being handled, carried in a context variable.

The server interceptor records the inbound deadline; every outbound call made while handling that
request (including from tasks it spawns, which copy the context) is bounded by what is left of it.
Work that does not come from an RPC (a queue worker running a task) sets its own with ``deadline``.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

from hivemesh.mesh.errors import DeadlineExceeded

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("hivemesh_deadline", default=None)


def current() -> float | None:
    """Absolute deadline (time.monotonic) of the current work, or None when unbounded."""
    return _deadline.get()


def remaining() -> float | None:
    """Seconds left before the current deadline, or None when unbounded (never negative)."""
    value = _deadline.get()
    return None if value is None else max(0.0, value - time.monotonic())


@contextlib.contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Bound everything inside to ``seconds`` from now, or to the outer deadline if that is sooner."""
    if seconds is None:
        yield
        return
    proposed = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(proposed if outer is None else min(outer, proposed))
    try:
        yield
    finally:
        # Inside an async generator that its consumer dropped (a server stream whose client went
        # away), this runs when asyncio closes the generator, in a task of its own whose context
        # never held the value: there is nothing to undo there, and reset() would raise.
        with contextlib.suppress(ValueError):
            _deadline.reset(token)


def outbound_timeout(explicit: float | None, *, default: float, margin: float) -> float:
    """Timeout for an outbound call: the explicit one, capped by what is left of the current deadline
    minus a margin for the reply to travel back; ``default`` when neither bounds it. Raises
    DeadlineExceeded when nothing is left, instead of starting a call that cannot finish."""
    left = remaining()
    candidates = [t for t in (explicit, None if left is None else left - margin) if t is not None]
    if not candidates:
        return default
    timeout = min(candidates)
    if timeout <= 0:
        raise DeadlineExceeded("the deadline of the current request has passed", reason="DEADLINE_EXHAUSTED")
    return timeout
