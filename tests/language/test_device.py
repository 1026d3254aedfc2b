"""HIVEMESH_LANGUAGE_DEVICE and what the language service reports about its runtime."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hivemesh.language.device import device_from_env, resolve_device
from hivemesh.language.settings import LanguageConfig
from hivemesh.mesh.config import ConfigError
from hivemesh.mesh.release import RUNTIME_HEADERS
from hivemesh.release.v1 import release_service_pb2 as rel
from hivemesh.release.v1.release_service_pb2_grpc import ReleaseServiceStub
from tests.support import make_settings, start_mesh

NO_GPU = not glob.glob("/dev/nvidia[0-9]*")


def test_cpu_is_cpu_and_auto_finds_no_gpu_on_a_machine_without_one() -> None:
    assert resolve_device("cpu") == "cpu"
    if NO_GPU:
        assert device_from_env({}) == "cpu"
        assert device_from_env({"HIVEMESH_LANGUAGE_DEVICE": "auto"}) == "cpu"


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
def test_cuda_without_a_gpu_stops_the_start() -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_LANGUAGE_DEVICE=cuda but no CUDA device"):
        device_from_env({"HIVEMESH_LANGUAGE_DEVICE": "cuda"})


def test_bad_device_and_heavy_methods_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="HIVEMESH_LANGUAGE_DEVICE must be one of AUTO, CPU, CUDA"):
        device_from_env({"HIVEMESH_LANGUAGE_DEVICE": "tpu"})
    with pytest.raises(ConfigError, match="HIVEMESH_LANGUAGE_HEAVY_METHODS names Plan"):
        LanguageConfig.from_env({"HIVEMESH_LANGUAGE_HEAVY_METHODS": "Understand,Plan"})


def test_capacity_defaults_to_the_batch_size_and_heavy_methods_to_auto() -> None:
    config = LanguageConfig.from_env({"HIVEMESH_NLU_MAX_BATCH": "32"})
    assert (config.capacity, config.heavy_methods) == (32, None)
    config = LanguageConfig.from_env(
        {"HIVEMESH_LANGUAGE_CAPACITY": "8", "HIVEMESH_LANGUAGE_HEAVY_METHODS": "Understand, Generate"}
    )
    assert (config.capacity, config.heavy_methods) == (8, ("Understand", "Generate"))
    assert LanguageConfig.from_env({"HIVEMESH_LANGUAGE_HEAVY_METHODS": "none"}).heavy_methods == ()


async def test_health_answers_carry_the_runtime_that_get_release_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HIVEMESH_LANGUAGE_DEVICE", "cpu")
    monkeypatch.setenv("HIVEMESH_LANGUAGE_CAPACITY", "12")
    monkeypatch.setenv("HIVEMESH_LANGUAGE_HEAVY_METHODS", "Understand,Generate")
    mesh = await start_mesh(make_settings(tmp_path), ["language", "memory"])
    try:
        language = mesh.bare_client("language")
        runtime = (await ReleaseServiceStub(language).GetRelease(rel.GetReleaseRequest())).release.runtime
        health = health_pb2_grpc.HealthStub(language)
        check = health.Check(health_pb2.HealthCheckRequest(service="readiness"))
        headers = dict(await check.initial_metadata())
        assert (await check).status == health_pb2.HealthCheckResponse.SERVING
        assert headers["hivemesh-device"] == runtime.device == "cpu"
        assert headers["hivemesh-batch-capacity"] == str(runtime.batch_capacity) == "12"
        assert headers["hivemesh-heavy-methods"] == "Understand,Generate"
        models = headers["hivemesh-models"].split(",")
        assert models == list(runtime.models)
        assert "lexical" in models
        # Watch sends the same headers, then the status and each change of it.
        watch = health.Watch(health_pb2.HealthCheckRequest(service="readiness"))
        assert dict(await watch.initial_metadata())["hivemesh-device"] == "cpu"
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        # An unknown name is still NOT_FOUND, not an error of the headers.
        unknown = health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        with pytest.raises(Exception, match="NOT_FOUND"):
            await unknown
        # A service that reports no runtime sends none of these headers.
        memory = health_pb2_grpc.HealthStub(mesh.bare_client("memory"))
        plain = memory.Check(health_pb2.HealthCheckRequest(service="readiness"))
        assert not set(dict(await plain.initial_metadata())) & set(RUNTIME_HEADERS)
        assert (await plain).status == health_pb2.HealthCheckResponse.SERVING
        await mesh.servers["language"].stop(0.5)
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await mesh.stop()
