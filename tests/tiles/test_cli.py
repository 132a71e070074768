# SPDX-License-Identifier: GPL-2.0-or-later
"""``python -m qgis_landcover.tiles classify`` run as a user runs it, without QGIS:
outputs, resume, exit status and messages."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from qgis_landcover.core.errors import LandcoverError
from qgis_landcover.tiles.__main__ import parse_extent

from ..conftest import run_python
from ..core.tiles.conftest import model, read, tiles  # noqa: F401 (fixtures)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    # qgis blocked: the command line must work where QGIS is not installed.
    code = (
        "import sys, runpy; sys.modules['qgis'] = None; "
        "sys.argv = ['qgis_landcover.tiles', *sys.argv[1:]]; "
        "runpy.run_module('qgis_landcover.tiles', run_name='__main__')"
    )
    return run_python(code, *args)


def test_classify_writes_the_job_and_resumes(
    tmp_path: Path,
    tiles: list[Path],  # noqa: F811
    model: Path,  # noqa: F811
) -> None:
    out = tmp_path / "out"
    first = cli(
        "classify", "--model", model, "--output", out, "--chunk-size", 200, "--workers", 1,
        *tiles,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "chunks: 4 done, 0 skipped, 0 failed; pixels: 76800" in first.stdout
    assert "100.0 %" in first.stderr and "Class areas" in first.stderr
    for name in ("classified.vrt", "classified.qml", "manifest.gpkg", "areas.csv", "inputs.vrt"):
        assert (out / name).exists()
    assert np.count_nonzero(read(out / "classified.vrt")) == 320 * 240
    again = cli(
        "classify", "--model", model, "--output", out, "--chunk-size", 200,
        "--folder", tiles[0].parent, "--pattern", "tile_*.tif", "--quiet",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "chunks: 0 done, 4 skipped" in again.stdout
    assert "Class areas" not in again.stderr  # --quiet


def test_bad_input_exits_2_with_a_message(tmp_path: Path, model: Path) -> None:  # noqa: F811
    missing = cli("classify", "--model", model, "--output", tmp_path / "out", tmp_path / "no.tif")
    assert missing.returncode == 2
    assert "Error: Raster not found" in missing.stderr and "Traceback" not in missing.stderr


def test_extents() -> None:
    assert parse_extent("1,2,3,4").bounds == (1.0, 2.0, 3.0, 4.0)
    geographic = parse_extent("-77.1, 38.8, -76.9, 39.0, EPSG:4326")
    assert "WGS 84" in geographic.crs_wkt
    for bad in ("1,2,3", "1,2,a,4", "3,2,1,4"):
        with pytest.raises(LandcoverError, match="--extent"):
            parse_extent(bad)
