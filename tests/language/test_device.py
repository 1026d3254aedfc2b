"""HIVEMESH_LANGUAGE_DEVICE and what the language service reports about its runtime."""

from __future__ import annotations

import glob

import pytest

from hivemesh.language.device import device_from_env, resolve_device
from hivemesh.language.settings import LanguageConfig
from hivemesh.mesh.config import ConfigError

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
