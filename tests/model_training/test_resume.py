# SPDX-License-Identifier: GPL-2.0-or-later
"""Kill-and-resume: a run killed (SIGKILL) after a checkpoint and resumed with
``--resume`` ends with exactly the weights, optimizer state and logs of a run that was
never interrupted (deterministic CPU settings)."""

from __future__ import annotations

import csv
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from model_training.checkpoint import load_checkpoint

from .tiny import ROOT, run_training, tiny_overrides, train_command, training_env

STEPS = 40


def settings(run_dir: Path) -> list[str]:
    overrides = tiny_overrides(
        run_dir,
        data__patch_size=64,
        train__epochs=4,
        train__steps_per_epoch=10,
        train__checkpoint_every=3,
    )
    return [arg for item in overrides for arg in ("--set", item)]


def logged(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with path.open(newline="") as stream:
        return [tuple(row[c] for c in columns) for row in csv.DictReader(stream)]


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_same_tensors(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key


def kill_after_step(run_dir: Path, step: int, timeout: float = 120) -> int:
    """Start a run, SIGKILL it once step ``step`` is logged; return its exit code."""
    process = subprocess.Popen(
        train_command(*settings(run_dir)),
        env=training_env(),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = run_dir / "train.csv"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if log.exists() and log.read_text().count("\n") > step:  # header + rows
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    completed = run_training(*settings(straight))
    assert completed.returncode == 0, completed.stderr[-3000:]

    # Killed after step 13 was logged: its last checkpoint is from step 12 (after the
    # first validation and best-model save), so the resumed run redoes step 13 on.
    assert kill_after_step(interrupted, 13) == -signal.SIGKILL
    partial = load_checkpoint(interrupted / "checkpoints" / "last.pt")
    assert 12 <= partial["step"] < STEPS
    assert not (interrupted / "metrics.json").exists()

    completed = run_training("--resume", str(interrupted))
    assert completed.returncode == 0, completed.stderr[-3000:]

    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(interrupted / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == STEPS and a["next_draw"] == b["next_draw"]
    assert_same_tensors(a["model"], b["model"])
    assert_same_tensors(a["optimizer"], b["optimizer"])
    assert a["scheduler"] == b["scheduler"]
    assert a["best"] == b["best"]
    best_a = load_checkpoint(straight / "checkpoints" / "best.pt")
    best_b = load_checkpoint(interrupted / "checkpoints" / "best.pt")
    assert_same_tensors(best_a["model"], best_b["model"])

    # The logs were cut back to the checkpoint and continue identically.
    columns = ("step", "loss", "lr")
    assert logged(straight / "train.csv", columns) == logged(interrupted / "train.csv", columns)
    assert len(logged(straight / "train.csv", columns)) == STEPS
    assert (straight / "val.csv").read_text() == (interrupted / "val.csv").read_text()
