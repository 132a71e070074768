# SPDX-License-Identifier: GPL-2.0-or-later
"""What the many-tiles tests share: four adjacent real-pixel GeoTIFFs cut from the
shipped NAIP mosaic (2 x 2, 160 x 120 px each, 1 m), the same area as one raster, and
a 3x3 box model that crops one pixel per side, so its output does not depend on where
tiles or chunks start (every output pixel is exact): a chunked job must reproduce a
one-raster classification pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.session import clear_session_cache
from qgis_landcover.core.progress import NullProgress

from ...conftest import DATA
from ...onnx_models import box_model, contract_for

MOSAIC = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
AREA = (200, 100, 320, 240)  # xoff, yoff, width, height in the shipped mosaic
WEIGHTS = np.array([[1.0, -0.5, 0.0, 0.2], [-0.3, 1.0, -0.2, 0.1], [0.0, -0.4, 1.0, -0.1]])


@pytest.fixture(autouse=True)
def fresh_sessions() -> None:
    clear_session_cache()


def read(path: Path | str) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def one_raster(tmp_path: Path, whole: Path, model: Path) -> np.ndarray:
    """The oracle of a chunked job: the test area classified as one raster."""
    classify(GdalImageSource(whole), model, OutputPaths(tmp_path / "one.tif"))
    return read(tmp_path / "one.tif")


def leftovers(folder: Path) -> list[str]:
    """Temporary files under ``folder`` (a finished or cancelled job leaves none)."""
    return sorted(p.name for p in folder.rglob("*") if ".tmp-landcover" in p.name)


class CancelAfter(NullProgress):
    """Asks to cancel once ``results`` chunks have reported progress."""

    def __init__(self, results: int) -> None:
        super().__init__()
        self.results = results
        self.calls = 0

    def set_progress(self, percent: float) -> None:
        super().set_progress(percent)
        self.calls += 1

    def is_cancelled(self) -> bool:
        return self.calls >= self.results


@pytest.fixture
def whole(tmp_path: Path) -> Path:
    """The test area as one GeoTIFF."""
    target = tmp_path / "whole.tif"
    gdal.Translate(str(target), str(MOSAIC), srcWin=list(AREA))
    return target


@pytest.fixture
def tiles(tmp_path: Path) -> list[Path]:
    """The test area as 2 x 2 adjacent GeoTIFFs (in their own folder)."""
    folder = tmp_path / "tiles"
    folder.mkdir()
    x0, y0, width, height = AREA
    paths = []
    for row in range(2):
        for col in range(2):
            target = folder / f"tile_{row}{col}.tif"
            window = [x0 + col * width // 2, y0 + row * height // 2, width // 2, height // 2]
            gdal.Translate(str(target), str(MOSAIC), srcWin=window)
            paths.append(target)
    return paths


@pytest.fixture
def model(tmp_path: Path) -> Path:
    contract = contract_for(3, input_scale=1 / 255, output_margin=1, tiles_overlap_percent=30.0)
    return box_model(tmp_path / "box.onnx", WEIGHTS, contract=contract, margin=1)
