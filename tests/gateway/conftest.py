from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways built from the environment here run without authentication (the contract tests);
    the security tests build theirs with an explicit GatewayConfig."""
    monkeypatch.setenv("HIVEMESH_AUTH", "none")
