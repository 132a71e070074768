# SPDX-License-Identifier: GPL-2.0-or-later
"""One in-process run end to end (files, logs, validation metrics against
scikit-learn), the learning-rate schedule, and the command line's error handling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from sklearn.metrics import accuracy_score, cohen_kappa_score, jaccard_score

from model_training.checkpoint import load_checkpoint
from model_training.config import OptimConfig, load_config
from model_training.export import build_model
from model_training.trainer import lr_factor, resolve_amp, run
from qgis_landcover.core.errors import InputError
from qgis_landcover.core.inference.normalization import Normalizer
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.models.contract import read_contract

from .tiny import patch, run_training, tiny_config


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_run_writes_everything_and_validates_like_scikit_learn(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    config = tiny_config(run_dir)
    result = run(config)
    assert result.steps == 12 and result.model_path == run_dir / "model.onnx"
    for name in ("config.yaml", "train.csv", "val.csv", "summary.png", "metrics.json"):
        assert (run_dir / name).is_file(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert load_config(run_dir / "config.yaml") == config  # the resolved config is saved

    # Recompute the best model's validation metrics independently: the PyTorch model
    # over the validation window (the top-left 128 x 128 of patch 7), scikit-learn scores.
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    model = build_model(config)
    model.load_state_dict(best["model"])
    model.eval()
    contract = read_contract(result.model_path)
    array = np.load(patch(7))["arr_0"][0]
    image = Normalizer(contract)(array[0:4, :128, :128].astype(np.float32)[None].copy())
    truth = array[8, :128, :128].astype(int)
    tiles = []
    for row in range(0, 128, 32):  # the validation grid's 32 px windows
        for col in range(0, 128, 32):
            with torch.no_grad():
                scores = model(torch.from_numpy(image[:, :, row : row + 32, col : col + 32]))
            tiles.append((scores.argmax(1)[0].numpy(), truth[row : row + 32, col : col + 32]))
    predicted = np.concatenate([t[0].ravel() for t in tiles]) + 1  # channel -> class value
    reference = np.concatenate([t[1].ravel() for t in tiles])
    reference = np.where(np.isin(reference, [5, 6]), 4, reference)
    metrics = best["metrics"]
    assert metrics["overall_accuracy"] == pytest.approx(accuracy_score(reference, predicted))
    assert metrics["kappa"] == pytest.approx(cohen_kappa_score(reference, predicted), abs=1e-9)
    present = sorted(set(reference))
    ious = jaccard_score(reference, predicted, labels=present, average=None)
    assert metrics["miou"] == pytest.approx(float(np.mean(ious)))
    assert metrics["pixels"] == 128 * 128

    summary = json.loads((run_dir / "metrics.json").read_text())
    assert summary["validation"]["kappa"] == pytest.approx(metrics["kappa"])
    assert summary["onnx_max_abs_difference"] < 1e-4
    assert contract.provenance["metrics"]["kappa"] == pytest.approx(metrics["kappa"])
    assert contract.provenance["config"]["train"]["steps_per_epoch"] == 6
    assert contract.standardization_mean == pytest.approx(best["statistics"]["mean"])


def test_learning_rate_schedule() -> None:
    optim = OptimConfig(warmup_steps=10, min_lr_ratio=0.1, schedule="cosine")
    total = 110
    assert lr_factor(0, optim, total) == pytest.approx(0.1)  # warm-up: (step + 1) / 10
    assert lr_factor(9, optim, total) == pytest.approx(1.0)
    assert lr_factor(10, optim, total) == pytest.approx(1.0)  # cosine starts at the top
    assert lr_factor(60, optim, total) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway
    assert lr_factor(110, optim, total) == pytest.approx(0.1)
    assert lr_factor(35, optim, total) == pytest.approx(
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.25))
    )
    step = OptimConfig(warmup_steps=0, schedule="step", step_every=100, step_gamma=0.5)
    assert [lr_factor(s, step, 1000) for s in (0, 99, 100, 250)] == [1.0, 1.0, 0.5, 0.25]


def test_mixed_precision_is_off_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("bf16", cpu) is None


def test_command_line_errors_are_one_clear_line(tmp_path: Path) -> None:
    completed = run_training("--config", str(tmp_path / "missing.yaml"), timeout=60)
    assert completed.returncode == 2
    assert completed.stderr.strip().endswith(
        f"Configuration file not found: {tmp_path}/missing.yaml"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"train": [str(tmp_path / "nothing.csv")]}}))
    completed = run_training("--config", str(bad), "--set", f"train.run_dir={tmp_path}/r")
    assert completed.returncode == 2
    assert "error: Training data not found" in completed.stderr
    completed = run_training("--resume", str(tmp_path / "no_run"), timeout=60)
    assert completed.returncode == 2 and "Checkpoint not found" in completed.stderr


def test_any_architecture_and_initial_weights(tmp_path: Path) -> None:
    # A 3 x 3 convolution is a (poor) segmentation network: it proves the factory path;
    # having no batch norm, learning rate 0 must leave its initial weights untouched.
    conv = {
        "model__architecture": "torch.nn:Conv2d",
        "model__options": {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1},
        "train__epochs": 1,
    }
    first = run(tiny_config(tmp_path / "a", **conv))
    trained = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")["model"]
    assert read_contract(first.model_path).num_classes == 4
    run(
        tiny_config(
            tmp_path / "b",
            **conv,
            model__init_weights=str(first.run_dir / "checkpoints" / "last.pt"),
            optim__lr=0.0,
        )
    )
    again = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")["model"]
    assert trained.keys() == again.keys()
    assert all(torch.equal(trained[k], again[k]) for k in trained)
    fresh = build_model(tiny_config(tmp_path / "c", **conv))
    assert not torch.equal(fresh.state_dict()["weight"], trained["weight"])


def test_margin_frozen_modules_and_last_weights(tmp_path: Path) -> None:
    # The 2018 fine-tuning set-up in miniature: loss and validation on the centre of each
    # patch (8 px margin of 32), the first encoder fixed, the last weights exported.
    run_dir = tmp_path / "run"
    config = tiny_config(
        run_dir,
        model__output_margin=8,
        model__freeze=["encoders.0"],
        train__best_metric="none",
    )
    result = run(config)
    assert not (run_dir / "checkpoints" / "best.pt").exists()
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")

    # Frozen: weights and batch-norm statistics as initialised (the trainer seeds torch
    # with train.seed before building the network); everything else trained.
    torch.manual_seed(config.train.seed)
    initial = build_model(config).state_dict()
    for key, value in last["model"].items():
        if key.startswith("encoders.0.") and not key.endswith("num_batches_tracked"):
            assert torch.equal(value, initial[key]), key
    assert not torch.equal(last["model"]["head.weight"], initial["head.weight"])
    assert not torch.equal(
        last["model"]["encoders.1.1.running_mean"], initial["encoders.1.1.running_mean"]
    )

    # Oracle for the validation metrics: the last weights over the validation window
    # (top-left 128 x 128 of patch 7), reflect-padded by the margin, in 32 px tiles whose
    # centre 16 x 16 tile the window; scikit-learn scores.
    model = build_model(config)
    model.load_state_dict(last["model"])
    model.eval()
    contract = read_contract(result.model_path)
    assert (contract.output_margin, contract.tile_size) == (8, 32)
    array = np.load(patch(7))["arr_0"][0]
    raw = np.pad(array[0:4, :128, :128], ((0, 0), (8, 8), (8, 8)), mode="reflect")
    image = torch.from_numpy(Normalizer(contract)(raw.astype(np.float32)[None].copy()))
    predicted = np.zeros((128, 128), dtype=int)
    with torch.no_grad():
        for row in range(0, 128, 16):
            for col in range(0, 128, 16):
                scores = model(image[:, :, row : row + 32, col : col + 32])[0, :, 8:24, 8:24]
                predicted[row : row + 16, col : col + 16] = scores.argmax(0).numpy() + 1
    reference = array[8, :128, :128].astype(int)
    reference = np.where(np.isin(reference, [5, 6]), 4, reference)
    metrics = last["metrics"]
    assert metrics["pixels"] == 128 * 128
    assert metrics["overall_accuracy"] == pytest.approx(
        accuracy_score(reference.ravel(), predicted.ravel())
    )
    assert metrics["kappa"] == pytest.approx(
        cohen_kappa_score(reference.ravel(), predicted.ravel()), abs=1e-9
    )
    assert result.metrics["kappa"] == pytest.approx(metrics["kappa"])

    # The exported file is the last weights with the crop: ONNX Runtime on a 48 px input
    # returns the centre 32 x 32 of the PyTorch scores.
    session = load_session(result.model_path, "cpu")
    sample = image[:, :, :48, :48]
    with torch.no_grad():
        expected = model(sample)[:, :, 8:40, 8:40].numpy()
    np.testing.assert_allclose(session.run(sample.numpy()), expected, atol=1e-4)
    output = onnx.load(str(result.model_path)).graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in output[2:]] == ["scores_height", "scores_width"]
    assert "last step's weights" in contract.model_card
    assert "(`output_margin` 8)" in contract.model_card


def test_network_output_size_and_freeze_errors_are_clear(tmp_path: Path) -> None:
    # A convolution without padding returns 30 x 30 scores for 32 x 32 pixels.
    shrinking = {
        "model__architecture": "torch.nn:Conv2d",
        "model__options": {"in_channels": 4, "out_channels": 4, "kernel_size": 3},
        "train__epochs": 1,
    }
    with pytest.raises(InputError, match=r"returns \(30, 30\) scores for \(32, 32\) pixels"):
        run(tiny_config(tmp_path / "a", **shrinking))
    with pytest.raises(InputError, match=r"model\.freeze: the network has no module .nowhere."):
        run(tiny_config(tmp_path / "b", model__freeze=["nowhere"]))
    with pytest.raises(InputError, match="leaves no weights to train"):
        run(
            tiny_config(tmp_path / "c", model__freeze=["encoders", "upsamples", "decoders", "head"])
        )
