"""Each service's own settings are read with the shared EnvReader: the same forms of values and
the same errors, naming the variable, everywhere."""

from __future__ import annotations

import pytest

from hivemesh.gateway.config import GatewayConfig
from hivemesh.mesh.config import ConfigError
from hivemesh.tasks.config import TaskConfig
from hivemesh.tool.config import ToolConfig


def test_tool_and_task_settings_take_the_shared_forms() -> None:
    tool = ToolConfig.from_env(
        {
            "HIVEMESH_TOOL_RANDOM_SEED": "-3",
            "HIVEMESH_TOOL_IDEMPOTENCY_TTL": "2h",
            "HIVEMESH_TOOL_THREADS": "4",
        }
    )
    assert (tool.random_seed, tool.idempotency_ttl_s, tool.worker_threads) == (-3, 7200.0, 4)
    assert ToolConfig.from_env({}) == ToolConfig()
    tasks = TaskConfig.from_env({"HIVEMESH_QUEUE_SWEEP_INTERVAL": "0", "HIVEMESH_WORKER_HEARTBEAT": "500ms"})
    assert (tasks.sweep_interval_s, tasks.worker_heartbeat_s) == (0.0, 0.5)
    assert TaskConfig.from_env({}) == TaskConfig()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HIVEMESH_TOOL_PROCESSES": "0"}, "HIVEMESH_TOOL_PROCESSES must be at least 1"),
        ({"HIVEMESH_TOOL_THREADS": "many"}, "HIVEMESH_TOOL_THREADS must be an integer"),
        ({"HIVEMESH_TOOL_RANDOM_SEED": "x"}, "HIVEMESH_TOOL_RANDOM_SEED must be an integer"),
        ({"HIVEMESH_TOOL_IDEMPOTENCY_TTL": "0"}, "HIVEMESH_TOOL_IDEMPOTENCY_TTL must be at least"),
    ],
)
def test_bad_tool_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ToolConfig.from_env(env)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HIVEMESH_WORKER_HEARTBEAT": "0"}, "HIVEMESH_WORKER_HEARTBEAT must be at least"),
        ({"HIVEMESH_QUEUE_SWEEP_INTERVAL": "-1"}, "HIVEMESH_QUEUE_SWEEP_INTERVAL must be at least 0"),
        ({"HIVEMESH_QUEUE_SWEEP_INTERVAL": "soon"}, "HIVEMESH_QUEUE_SWEEP_INTERVAL must be a duration"),
    ],
)
def test_bad_task_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TaskConfig.from_env(env)


def test_gateway_settings_take_the_shared_forms() -> None:
    config = GatewayConfig.from_env({"HIVEMESH_JWT_LEEWAY": "2m", "HIVEMESH_JWT_ISSUER": " issuer "})
    assert (config.jwt_leeway_s, config.jwt_issuer) == (120.0, "issuer")
    with pytest.raises(ConfigError, match="HIVEMESH_RATE_LIMIT must be at least 0"):
        GatewayConfig.from_env({"HIVEMESH_RATE_LIMIT": "-1"})
    with pytest.raises(ConfigError, match="HIVEMESH_JWT_LEEWAY must be a duration"):
        GatewayConfig.from_env({"HIVEMESH_JWT_LEEWAY": "a while"})
