"""Settings come from HIVEMESH_* variables once; a bad value fails naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivemesh.mesh.config import DEFAULT_PORTS, ConfigError, EnvReader, RedisKeys, Settings
from hivemesh.planner.config import PlannerConfig


def test_defaults() -> None:
    settings = Settings.from_env({"HOME": "/home/ana"})
    assert settings.data_dir == Path("/home/ana/.local/share/hivemesh")
    assert settings.ports == DEFAULT_PORTS
    assert settings.addresses["gateway"] == "127.0.0.1:50051"
    assert settings.metrics_port == 9464
    assert settings.server.max_concurrent_rpcs == 256
    assert settings.redis_url is None
    assert PlannerConfig.from_env({"HOME": "/home/ana"}).strategy == "builtin"
    assert settings.local_calls


def test_values_and_addresses_follow_the_variables() -> None:
    env = {
        "HIVEMESH_DATA_DIR": "/srv/hivemesh",
        "HIVEMESH_HOST": "0.0.0.0",
        "HIVEMESH_TOOL_PORT": "6000",
        "HIVEMESH_MEMORY_ADDR": "memory.hivemesh:50054",
        "HIVEMESH_METRICS_PORT": "off",
        "HIVEMESH_GRACE_PERIOD": "1500ms",
        "HIVEMESH_TASK_DEADLINE": "2m",
        "HIVEMESH_IN_MESH": "true",
        "HIVEMESH_PLANNER_STRATEGY": "LLM",
        "HIVEMESH_LOCAL_CALLS": "0",
    }
    settings = Settings.from_env(env)
    assert settings.data_dir == Path("/srv/hivemesh")
    assert settings.server.host == "0.0.0.0"
    assert settings.addresses["tool"] == "127.0.0.1:6000"  # a wildcard bind is reached on loopback
    assert settings.addresses["memory"] == "memory.hivemesh:50054"
    assert settings.metrics_port is None
    assert settings.server.grace_period_s == 1.5
    assert settings.task_deadline_s == 120
    assert settings.in_mesh
    assert PlannerConfig.from_env(env).strategy == "llm"
    assert not settings.local_calls
    moved = settings.with_ports(gateway=7000)
    assert moved.ports["gateway"] == 7000
    assert moved.addresses["gateway"] == "127.0.0.1:7000"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("HIVEMESH_GATEWAY_PORT", "http", "HIVEMESH_GATEWAY_PORT must be a port number"),
        ("HIVEMESH_GATEWAY_PORT", "70000", "HIVEMESH_GATEWAY_PORT must be a port number"),
        ("HIVEMESH_GRACE_PERIOD", "soon", "HIVEMESH_GRACE_PERIOD must be a duration"),
        ("HIVEMESH_MAX_CONCURRENT_RPCS", "0", "HIVEMESH_MAX_CONCURRENT_RPCS must be at least 1"),
        ("HIVEMESH_IN_MESH", "maybe", "HIVEMESH_IN_MESH must be true or false"),
        ("HIVEMESH_LOCAL_CALLS", "sometimes", "HIVEMESH_LOCAL_CALLS must be true or false"),
        ("HIVEMESH_LOG_LEVEL", "LOUD", "HIVEMESH_LOG_LEVEL must be one of"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({name: value})


def test_the_reader_parses_durations_and_numbers() -> None:
    reader = EnvReader({"A": "250ms", "B": "7d", "C": "0.5", "D": "-1"})
    assert reader.seconds("A", 1.0) == 0.25
    assert reader.seconds("B", 1.0) == 7 * 86400
    assert reader.number("C", 1.0) == 0.5
    assert reader.seconds("MISSING", 3.0) == 3.0
    with pytest.raises(ConfigError, match="D must be at least 0"):
        reader.number("D", 1.0)


def test_redis_keys_keep_the_old_names_by_default() -> None:
    keys = RedisKeys.from_env({})
    assert keys.prefix == "hivemesh:{tasks}"
    assert keys.memory == "hivemesh:memory:"
    assert keys.tool_idempotency == "hivemesh:tool:idempotency:"
    assert RedisKeys.from_env({"HIVEMESH_REDIS_PREFIX": "hivemesh:{tasks}"}) == keys


def test_redis_keys_of_memory_and_tools_leave_the_hash_tag_out() -> None:
    keys = RedisKeys.from_env({"HIVEMESH_REDIS_PREFIX": "acme:{tasks}"})
    assert keys.prefix == "acme:{tasks}"
    assert keys.memory == "acme:tasks:memory:"
    assert keys.tool_idempotency == "acme:tasks:tool:idempotency:"
