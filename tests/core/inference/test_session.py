# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qgis_landcover.core.errors import InputError, ModelContractError
from qgis_landcover.core.inference.session import (
    CPU,
    CUDA,
    TENSORRT,
    cached_session_count,
    clear_session_cache,
    load_session,
    probe_tile_size,
    provider_candidates,
)
from qgis_landcover.core.progress import NullProgress

from ...onnx_models import box_model, contract_for, pointwise_model, pointwise_reference

WEIGHTS = np.array([[1.0, -1.0, 0.0, 0.5], [0.0, 2.0, -1.0, 0.0], [-1.0, 0.0, 1.0, 1.0]])


@pytest.fixture(autouse=True)
def empty_cache() -> None:
    clear_session_cache()


def test_provider_candidates_follow_the_device() -> None:
    assert provider_candidates("cpu", [CPU]) == [[CPU]]
    assert provider_candidates("auto", [CPU]) == [[CPU]]
    assert provider_candidates("auto", [CUDA, CPU]) == [[CUDA, CPU], [CPU]]
    assert provider_candidates("auto", [TENSORRT, CUDA, CPU]) == [
        [TENSORRT, CUDA, CPU],
        [CUDA, CPU],
        [CPU],
    ]
    assert provider_candidates("cuda", [TENSORRT, CUDA, CPU]) == [[CUDA, CPU]]
    assert provider_candidates("tensorrt", [TENSORRT, CUDA, CPU]) == [[TENSORRT, CUDA, CPU]]


@pytest.mark.parametrize("device", ["cuda", "tensorrt"])
def test_gpu_device_without_gpu_support_is_an_error(device: str) -> None:
    with pytest.raises(InputError, match=f"DEVICE={device} was requested.*onnxruntime-gpu"):
        provider_candidates(device, ["AzureExecutionProvider", CPU])
    with pytest.raises(InputError, match="Unknown device"):
        provider_candidates("gpu", [CPU])


def test_session_runs_the_closed_form(tmp_path: Path) -> None:
    bias = np.array([0.1, -0.2, 0.3])
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, bias, contract=contract_for(3))
    session = load_session(path, "cpu")
    assert session.provider == CPU
    batch = np.random.default_rng(0).normal(size=(2, 4, 32, 32)).astype(np.float32)
    scores = session.run(batch)
    assert scores.shape == (2, 3, 32, 32)
    for n in range(2):
        np.testing.assert_allclose(
            scores[n], pointwise_reference(batch[n], WEIGHTS, bias), rtol=1e-5, atol=1e-5
        )


def test_sessions_are_cached_per_file_hash_and_device(tmp_path: Path) -> None:
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3))
    progress = NullProgress()
    first = load_session(path, "cpu", progress)
    assert load_session(path, "cpu", progress) is first
    assert any("already loaded" in m for m in progress.messages)
    assert load_session(path, "auto") is not first  # another device, another entry
    assert cached_session_count() == 2
    # The same path with other content (a retrained model) is loaded afresh.
    pointwise_model(path, -WEIGHTS, contract=contract_for(3))
    os.utime(path, ns=(1, 1))
    reloaded = load_session(path, "cpu")
    assert reloaded is not first and reloaded.digest != first.digest


@pytest.mark.filterwarnings("ignore:Specified provider:UserWarning")
def test_silent_gpu_fallback_is_detected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend this ONNX Runtime lists CUDA: the session then starts on the CPU only,
    # which ORT does silently; `auto` must say so, `cuda` must refuse.
    monkeypatch.setattr(
        "qgis_landcover.core.inference.session.available_providers", lambda: [CUDA, CPU]
    )
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3))
    progress = NullProgress()
    session = load_session(path, "auto", progress)
    assert session.provider == CPU
    assert any("GPU could not be used" in w for w in progress.warnings)
    with pytest.raises(InputError, match="DEVICE=cuda was requested but the GPU could not"):
        load_session(path, "cuda")


def test_not_onnx_and_missing_files_are_clear_errors(tmp_path: Path) -> None:
    text = tmp_path / "model.onnx"
    text.write_text("this is not a model")
    with pytest.raises(InputError, match="is not an ONNX model"):
        load_session(text, "cpu")
    with pytest.raises(InputError, match="not found"):
        load_session(tmp_path / "absent.onnx", "cpu")
    # A folder was reported as "not found" although it exists.
    with pytest.raises(InputError, match=r"is a folder, not a file: give an ONNX model"):
        load_session(tmp_path, "cpu")


def test_missing_metadata_names_the_key(tmp_path: Path) -> None:
    props = contract_for(3).to_metadata_props()
    del props["resolution"]
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, metadata=props)
    with pytest.raises(ModelContractError, match=r"m.onnx.*lacks 'resolution'"):
        load_session(path, "cpu")
    path = pointwise_model(tmp_path / "bare.onnx", WEIGHTS, metadata={})
    with pytest.raises(ModelContractError, match=r"bare.onnx"):
        load_session(path, "cpu")


def test_wrong_runtime_shape_is_reported(tmp_path: Path) -> None:
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3))
    session = load_session(path, "cpu")
    with pytest.raises(InputError, match="failed on a batch"):
        session.run(np.zeros((1, 3, 32, 32), np.float32))


def test_non_square_batches_keep_height_and_width_apart(tmp_path: Path) -> None:
    contract = contract_for(2, output_margin=2)
    path = box_model(tmp_path / "crop.onnx", WEIGHTS[:2], contract=contract, margin=2)
    session = load_session(path, "cpu")
    # (N, C, H=24, W=40): the 2-pixel crop per side gives H 20, W 36.
    assert session.run(np.zeros((1, 4, 24, 40), np.float32)).shape == (1, 2, 20, 36)


def test_metadata_tile_size_beyond_memory_is_probed_small(tmp_path: Path) -> None:
    """Models with a free input size are probed with one tile at load; metadata saying
    tile 100000 made that probe allocate 298 GiB (a MemoryError). The probe is at most
    512 px, and larger than twice the output margin."""
    contract = contract_for(3, tile_size=100_000, output_margin=300)
    path = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract, margin=300)
    session = load_session(path, "cpu")
    assert session.fixed_tile is None and session.contract.tile_size == 100_000
    assert probe_tile_size(session.contract) == 608  # smallest multiple of 32 above 600
    assert probe_tile_size(contract_for(4, tile_size=100_000)) == 512
    assert probe_tile_size(contract_for(4, tile_size=256)) == 256


def test_session_options_are_set_deliberately(tmp_path: Path) -> None:
    """Threads = physical cores, arena on with memory patterns off, all graph
    optimisations; logged."""
    from qgis_landcover.core.inference.session import physical_core_count

    model = pointwise_model(tmp_path / "m.onnx", WEIGHTS, contract=contract_for(3))
    progress = NullProgress()
    session = load_session(model, "cpu", progress=progress)
    options = session.session.get_session_options()
    assert options.intra_op_num_threads == physical_core_count()
    assert options.enable_cpu_mem_arena is True
    assert options.enable_mem_pattern is False
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_ALL")
    assert options.optimized_model_filepath == ""  # not worth caching (see session_options)
    assert any(
        f"{physical_core_count()} intra-op threads (physical cores), memory arena on, "
        "memory pattern off" in m
        for m in progress.messages
    )
