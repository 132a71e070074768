# SPDX-License-Identifier: GPL-2.0-or-later
"""A tiny, fast training set-up on the real 1 m patches shipped in ``data/``.

Training: patches 0, 1 and 3 (tree, low vegetation, impervious); validation: the
top-left quarter of patch 7 (mostly low vegetation). A U-Net of width 4 and depth 2 on
32 px windows trains a step in a few milliseconds on one thread.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from model_training.config import Config, load_config

from ..conftest import DATA, ROOT

PATCHES = DATA / "chesapeake_1m_patches"
MOSAIC_IMAGE = PATCHES / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
MOSAIC_LABELS = PATCHES / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
LOWRES = DATA / "chesapeake_lowres_tile"


def patch(index: int) -> Path:
    return PATCHES / f"wv_1m_2014-m_3708020_sw_17_1-{index}.npz"


def tiny_overrides(run_dir: Path, **extra: Any) -> list[str]:
    """``--set`` overrides for the tiny set-up (``extra``: ``section__field=value``)."""
    settings: dict[str, Any] = {
        "data.train": [str(patch(0)), str(patch(1)), str(patch(3))],
        "data.val": [{"image": str(patch(7)), "window": [0, 0, 128, 128]}],
        "data.patch_size": 32,
        "sampler.rare_classes": [4],
        "normalization.windows": 8,
        "model.base_width": 4,
        "model.depth": 2,
        "model.max_width": 16,
        "optim.lr": 0.01,
        "optim.warmup_steps": 2,
        "train.run_dir": str(run_dir),
        "train.epochs": 2,
        "train.steps_per_epoch": 6,
        "train.batch_size": 4,
        "train.val_batch_size": 8,
        "train.checkpoint_every": 2,
        "train.log_every": 1,
        "train.threads": 1,
        "train.deterministic": True,
        "train.progress": False,
        "export.tile_size": 32,
    }
    settings.update({key.replace("__", "."): value for key, value in extra.items()})
    # JSON is valid YAML, the syntax of --set values.
    return [f"{key}={json.dumps(value)}" for key, value in settings.items()]


def tiny_config(run_dir: Path, **extra: Any) -> Config:
    return load_config(None, tiny_overrides(run_dir, **extra))


def training_env() -> dict[str, str]:
    """Environment for training subprocesses: one thread each, repository importable."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore",
    }


def train_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "model_training" / "train.py"), *args]


def run_training(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        train_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=training_env(),
        cwd=ROOT,
        check=False,
    )
