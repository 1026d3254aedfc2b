"""A second client that keeps asking a service something small while a test sends it something hostile.

The services under test run in the test's own process and event loop, so a client on that loop
cannot time them: if the service blocked the loop, the client's clock would stop with it. The
probe calls from its own thread over its own (blocking) channel, so it sees the service as any
other caller would.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import grpc


class Probe:
    def __init__(
        self,
        address: str,
        ask: Callable[[grpc.Channel], object],
        pause_s: float = 0.02,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._address = address
        self._metadata = tuple(metadata)
        self._ask = ask
        self._pause_s = pause_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self.took: list[float] = []
        self.failures: list[BaseException] = []

    async def __aenter__(self) -> Probe:
        self._thread.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        # Off the loop: the probe's last call may need the service, which runs on this loop.
        await asyncio.to_thread(self._thread.join, 60)

    @property
    def worst_s(self) -> float:
        return max(self.took, default=0.0)

    def _run(self) -> None:
        with grpc.insecure_channel(self._address) as plain:
            channel = (
                grpc.intercept_channel(plain, _WithMetadata(self._metadata)) if self._metadata else plain
            )
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self._ask(channel)
                except grpc.RpcError as exc:
                    self.failures.append(exc)
                self.took.append(time.monotonic() - started)
                self._stop.wait(self._pause_s)


class _WithMetadata(grpc.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]  # generic only in the stubs
    """Sends ``metadata`` (a mesh credential) with every unary call."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        with_metadata = _Details(
            details.method,
            details.timeout,
            [*(details.metadata or ()), *self._metadata],
            details.credentials,
            details.wait_for_ready,
            details.compression,
        )
        return continuation(with_metadata, request)


class _Details(
    collections.namedtuple(
        "_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass
