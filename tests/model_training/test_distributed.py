# SPDX-License-Identifier: GPL-2.0-or-later
"""Two CPU processes through ``torchrun`` (gloo), on real patches: the loss goes down,
both ranks end with bit-identical weights, and each rank saw its own samples."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .tiny import ROOT, tiny_overrides, training_env


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


@pytest.mark.slow
def test_two_process_gloo_training(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = tiny_overrides(
        run_dir,
        train__epochs=3,
        train__steps_per_epoch=10,
        train__log_samples=True,
        optim__lr=0.03,
        loss__class_weights="none",  # unweighted: a smoother curve over few steps
    )
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(ROOT / "model_training" / "train.py"),
        *[arg for item in overrides for arg in ("--set", item)],
    ]  # fmt: skip
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=180, env=training_env(), cwd=ROOT
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]

    summary = json.loads((run_dir / "metrics.json").read_text())
    # Bit-identical replicas: every parameter and batch-norm buffer on both ranks.
    digests = summary["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1]

    losses = [float(row["loss"]) for row in read_csv(run_dir / "train.csv")]
    assert len(losses) == 30  # logged every step, averaged over both ranks
    assert sum(losses[-5:]) / 5 < 0.75 * sum(losses[:5]) / 5, losses

    streams = [read_csv(run_dir / f"samples_rank{rank}.csv") for rank in (0, 1)]
    for rows in streams:  # 30 steps x 4 patches, draws 0..119 in order
        assert [int(r["draw"]) for r in rows] == list(range(120))
    windows = [[(r["source"], r["col"], r["row"]) for r in rows] for rows in streams]
    shared = sum(a == b for a, b in zip(*windows, strict=True))
    assert shared == 0, "the ranks drew the same windows"

    assert summary["validation"]["pixels"] == 128 * 128  # whole grid, both shares summed
    assert Path(summary["model"]).is_file()
