"""The edge's one channel to the gateway, shared by every caller of every door: each call carries
its caller's credentials, never the edge's own (it has none)."""

from __future__ import annotations

from hivemesh.client import HivemeshClient
from hivemesh.edge.callers import Caller
from hivemesh.edge.config import EdgeConfig
from hivemesh.edge.conversation import Conversation
from hivemesh.mesh.config import Settings


class GatewayLink:
    """Opened when the edge starts (a gRPC channel belongs to the event loop that serves it)."""

    def __init__(self, address: str, settings: Settings, config: EdgeConfig) -> None:
        self.address = address
        self._settings = settings
        self._config = config
        self._client: HivemeshClient | None = None
        # A task's own deadline ends it first; this only bounds a door's wait for its events.
        self.task_timeout_s = settings.task_deadline_s + settings.default_call_timeout_s

    async def open(self) -> None:
        # Without waiting for the gateway to be ready: a caller gets 503 at once (after the
        # patience of a resumable failure) instead of hanging on a gateway that is down.
        self._client = HivemeshClient(
            self.address,
            timeout_s=self._settings.default_call_timeout_s,
            tls=self._settings.tls,
            wait_for_ready=False,
            # Each call continues the trace of the HTTP request it answers (edge/tracing.py).
            carry_trace=True,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _shared(self) -> HivemeshClient:
        if self._client is None:
            raise RuntimeError("the edge's gateway channel is not open (the app has not started)")
        return self._client

    def client(self, caller: Caller) -> HivemeshClient:
        """A client of the gateway that sends ``caller``'s credentials."""
        return self._shared().for_caller(caller.metadata)

    def conversation(self, caller: Caller) -> Conversation:
        return Conversation(
            self.client(caller), timeout_s=self.task_timeout_s, patience_s=self._config.gateway_patience_s
        )

    @property
    def patience_s(self) -> float:
        """How long a call that failed with a resumable code is tried again before giving up."""
        return self._config.gateway_patience_s

    async def ready(self) -> bool:
        """Whether the gateway reports itself ready (its ``readiness`` health)."""
        return await self._shared().serving("readiness")
