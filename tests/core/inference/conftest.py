# SPDX-License-Identifier: GPL-2.0-or-later
"""What the inference tests share: real NAIP pixels, a pointwise model with a closed
form, and a fresh session cache for every test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.inference.session import clear_session_cache

from ...conftest import DATA
from ...onnx_models import contract_for, pointwise_model, pointwise_reference

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
WEIGHTS = np.array(
    [[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1], [0.1, 0.0, -0.6, 0.5]]
)
BIAS = np.array([0.05, -0.02, 0.01, -0.04])


@pytest.fixture(autouse=True)
def fresh_sessions() -> None:
    clear_session_cache()


def read(path: Path) -> np.ndarray:
    dataset = gdal.Open(str(path))
    return dataset.ReadAsArray()


def crop(tmp_path: Path, name: str, window: tuple[int, int, int, int], **options: object) -> Path:
    """A real-pixel GeoTIFF cut from the mosaic (xoff, yoff, width, height)."""
    target = tmp_path / name
    gdal.Translate(str(target), str(MOSAIC), srcWin=list(window), **options)
    return target


def closed_form(
    image: np.ndarray, weights: np.ndarray, bias: np.ndarray | None, scale: float
) -> np.ndarray:
    """Reference scores (K, rows, cols) of the pointwise model on raw pixels."""
    return pointwise_reference(image.astype(np.float64) * scale, weights, bias)


def decided(scores: np.ndarray, gap: float = 1e-4) -> np.ndarray:
    """Pixels whose best class beats the runner-up by more than ``gap`` (float32 noise
    cannot flip them)."""
    top2 = np.sort(scores, axis=0)[-2:]
    return (top2[1] - top2[0]) > gap


@pytest.fixture
def naip(tmp_path: Path) -> Path:
    return crop(tmp_path, "naip.tif", (100, 60, 300, 230))


@pytest.fixture
def model(tmp_path: Path) -> Path:
    contract = contract_for(4, input_scale=1 / 255)
    return pointwise_model(tmp_path / "pointwise.onnx", WEIGHTS, BIAS, contract=contract)
