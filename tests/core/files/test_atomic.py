# SPDX-License-Identifier: GPL-2.0-or-later
""":mod:`qgis_landcover.core.files.atomic`: outputs renamed into place when complete, and
the reasons an output path cannot be written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from qgis_landcover.core.errors import InputError
from qgis_landcover.core.files.atomic import atomic_output, check_output_path
from qgis_landcover.core.raster.reading import open_raster, raster_grid
from qgis_landcover.core.raster.writing import create_geotiff

from ...conftest import DATA

LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"


def test_atomic_output_renames_on_success_and_cleans_on_failure(tmp_path: Path) -> None:
    destination = tmp_path / "out.tif"
    grid = raster_grid(open_raster(LABELS))
    with atomic_output(destination) as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".tif"
        dataset = create_geotiff(
            temporary, grid, 1, gdal.GDT_Byte, nodata=0, colors={1: (0, 128, 0)}, names={1: "tree"}
        )
        dataset.GetRasterBand(1).WriteArray(np.ones((grid.height, grid.width), np.uint8))
        dataset = None
        assert not destination.exists()
    written = gdal.Open(str(destination))
    assert written.GetRasterBand(1).GetNoDataValue() == 0
    assert written.GetRasterBand(1).GetCategoryNames()[1] == "tree"
    assert written.GetRasterBand(1).GetColorTable().GetColorEntry(1)[:3] == (0, 128, 0)
    # GTiff keeps category names in a PAM side-car, which moves with the file.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names in (["out.tif"], ["out.tif", "out.tif.aux.xml"])

    with (
        pytest.raises(RuntimeError, match="boom"),
        atomic_output(tmp_path / "failed.tif") as temporary,
    ):
        temporary.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == names


def test_atomic_output_refuses_missing_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(InputError, match="does not exist"),
        atomic_output(tmp_path / "nowhere" / "out.tif"),
    ):
        pass


def test_output_paths_say_what_is_wrong_with_them(tmp_path: Path) -> None:
    """Each reason a file cannot be written has its own message (a file in the middle
    of the path was reported as a missing folder; /proc as a raw FileNotFoundError)."""
    a_file = tmp_path / "hostname"
    a_file.write_text("not a folder")
    for destination in (a_file / "x.tif", a_file / "a" / "b" / "x.tif"):
        with pytest.raises(InputError, match=rf"{a_file} is a file, not a folder"):
            check_output_path(destination)
        with (
            pytest.raises(InputError, match="is a file, not a folder"),
            atomic_output(destination),
        ):
            pass
    with pytest.raises(InputError, match="output folder does not exist"):
        check_output_path(tmp_path / "nowhere" / "x.tif")
    with pytest.raises(InputError, match="is a folder: give a file name"):
        check_output_path(tmp_path)
    assert check_output_path(tmp_path / "x.tif") == tmp_path
    assert list(tmp_path.iterdir()) == [a_file]  # the probe file is gone


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_that_refuses_files_is_a_clear_error() -> None:
    # /proc accepts no new files, whatever the permissions (root included).
    with pytest.raises(InputError, match="Cannot create files in the output folder /proc"):
        check_output_path("/proc/x.tif")
    with (
        pytest.raises(InputError, match="Cannot create files in the output folder /proc"),
        atomic_output("/proc/x.tif"),
    ):
        pass
