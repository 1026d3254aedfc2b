"""Domain pieces without grpc: token budgeting, the hashing encoder, record schemas, settings."""

from __future__ import annotations

import math

import pytest

from hivemesh.memory.config import EmbedderKind, MemoryConfig
from hivemesh.memory.hashing import HashingEmbedder
from hivemesh.memory.model import Owner, Turn
from hivemesh.memory.schemas import RecordKinds
from hivemesh.memory.scoping import owner, session
from hivemesh.memory.tokens import fit, turn_tokens
from hivemesh.mesh.config import ConfigError
from hivemesh.mesh.errors import InvalidArgument


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_a_turn_costs_a_quarter_of_its_characters_plus_overhead() -> None:
    assert turn_tokens(Turn(2, "x" * 9, 0.0)) == 3 + 4


def test_fit_keeps_a_contiguous_newest_tail() -> None:
    turns = [Turn(2, "a" * 40, float(i)) for i in range(3)]  # 14 tokens each
    assert fit(turns, 28).turns == tuple(turns[1:])
    assert fit(turns, 28).truncated
    assert fit(turns, 1000).token_count == 42
    assert not fit(turns, 1000).truncated
    assert fit(turns, 5).turns == ()


async def test_hashing_encoder_is_normalised_and_separates_facts() -> None:
    encoder = HashingEmbedder(384)
    fact, question, other, same = await encoder.embed(
        [
            "Remember that my sister's name is Ana",
            "what's my sister's name?",
            "my brother's name is Bob",
            "My sister's name is Ana.",
        ]
    )
    assert math.isclose(math.sqrt(sum(v * v for v in fact)), 1.0)
    assert cosine(fact, question) > cosine(other, question)
    assert cosine(fact, same) > 0.99
    assert cosine(fact, other) < 0.92


def test_schema_errors_name_the_json_path() -> None:
    kinds = RecordKinds()
    kinds.check("list", {"items": ["a"]})
    with pytest.raises(InvalidArgument) as raised:
        kinds.check("list", {"items": ["a", "b", 3]})
    assert raised.value.violations[0].field == "value.items[2]"
    with pytest.raises(InvalidArgument) as unknown:
        kinds.check("recipe", {})
    assert unknown.value.reason == "UNKNOWN_RECORD_KIND"
    due = {"text": "t", "task_id": "1", "kind": "timer"}
    kinds.check("reminder", {**due, "due": "2026-11-25T10:00:00+01:00"})
    with pytest.raises(InvalidArgument):
        kinds.check("reminder", {**due, "due": "2026-11-25"})  # no time, no offset


def test_scope_requirements() -> None:
    assert owner("t", "u") == Owner("t", "u")
    with pytest.raises(InvalidArgument) as raised:
        session("t", "u", "")
    assert raised.value.violations[0].field == "scope.session_id"
    with pytest.raises(InvalidArgument):
        owner("", "u")


def test_config_from_env() -> None:
    config = MemoryConfig.from_env(
        {
            "HIVEMESH_MEMORY_EMBEDDER": "hashing",
            "HIVEMESH_MEMORY_SESSION_TTL": "2h",
            "HIVEMESH_MEMORY_HNSW_EF": "64",
        }
    )
    assert config.embedder is EmbedderKind.HASHING
    assert config.session_ttl_s == 7200
    assert config.hnsw.ef == 64
    assert MemoryConfig.from_env({}) == MemoryConfig()
    with pytest.raises(ConfigError, match="HIVEMESH_MEMORY_DEDUP_THRESHOLD"):
        MemoryConfig.from_env({"HIVEMESH_MEMORY_DEDUP_THRESHOLD": "1.5"})
    with pytest.raises(ConfigError, match="HIVEMESH_MEMORY_EMBEDDER"):
        MemoryConfig.from_env({"HIVEMESH_MEMORY_EMBEDDER": "bert"})
