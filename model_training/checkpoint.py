# SPDX-License-Identifier: GPL-2.0-or-later
"""Checkpoints: written atomically (a crash mid-write never leaves a truncated file in
place of the last good one), read back with ``weights_only=True`` (no pickled code
runs on load)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.files.atomic import atomic_output

LAST = "last.pt"
BEST = "best.pt"


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, numbers, strings, lists, dicts only) to ``path``
    through a temporary file beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as temporary:
        torch.save(state, temporary)


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors onto ``device``)."""
    if not path.is_file():
        raise InputError(f"Checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as error:  # torch raises several unrelated types for bad files
        raise InputError(f"Cannot read the checkpoint {path}: {error}") from error


def model_weights(path: Path) -> dict[str, Any]:
    """The model state dict in a checkpoint of a run, or in a plain state-dict file."""
    state = load_checkpoint(path)
    weights = state.get("model", state)
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise InputError(f"{path} holds no model weights.")
    return weights


def resolve_checkpoint(resume: str, run_dir: Path) -> Path:
    """``--resume`` argument -> checkpoint file: ``auto`` / ``last`` is the run's last
    checkpoint, ``best`` its best, a folder means its ``checkpoints/last.pt``."""
    if resume in ("auto", "last"):
        return run_dir / "checkpoints" / LAST
    if resume == "best":
        return run_dir / "checkpoints" / BEST
    path = Path(resume)
    return path / "checkpoints" / LAST if path.is_dir() else path
