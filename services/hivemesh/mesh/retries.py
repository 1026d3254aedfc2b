"""The retry policy of outbound calls, declared once: gRPC channels receive it as service config JSON,
in-process channels apply it themselves (``RetryBudget``), so both retry the same calls the same way.

Only idempotent unary methods are retried (the protos declare which), only on UNAVAILABLE, and only
while the caller's deadline allows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC's retry and throttling parameters (gRFC A6)."""

    # The first call plus up to three retries.
    max_attempts: int = 4
    # Retry n waits a random time up to min(initial * multiplier ** (n - 1), max): jitter spreads the
    # retries of many callers that failed together.
    initial_backoff_s: float = 0.05
    max_backoff_s: float = 1.0
    backoff_multiplier: float = 2.0
    # A retry budget: every failed attempt costs a token, every success earns ``token_ratio``; below
    # half of ``max_tokens`` retries stop (more than about 10% of calls failing), so a struggling
    # service is not hit harder by the retries themselves.
    max_tokens: int = 10
    token_ratio: float = 0.1

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.initial_backoff_s * self.backoff_multiplier ** (retry - 1), self.max_backoff_s)
        return rng.uniform(0.0, ceiling)


RETRY_POLICY = RetryPolicy()


class RetryBudget:
    """The token bucket of one channel (gRPC keeps one per target)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._policy = policy
        self._tokens = float(policy.max_tokens)

    def failed(self) -> bool:
        """Count a failed attempt; True while retries are still allowed."""
        self._tokens = max(0.0, self._tokens - 1.0)
        return self._tokens > self._policy.max_tokens / 2

    def succeeded(self) -> None:
        self._tokens = min(self._policy.max_tokens, self._tokens + self._policy.token_ratio)
