# SPDX-License-Identifier: GPL-2.0-or-later
"""Small test rasters built from real imagery, shared by the core and algorithm tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from .conftest import DATA

MOSAIC_NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
"""The shipped real NAIP mosaic (red, green, blue, nir; EPSG:26917, 1 m pixels)."""
MOSAIC_LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
"""Its land-cover labels, on the same grid."""


def mosaic_crop(folder: Path, size: int) -> tuple[Path, np.ndarray]:
    """The mosaic's top-left ``size`` x ``size`` px as a GeoTIFF in ``folder``, and
    the labels of those pixels."""
    image = folder / "naip.tif"
    gdal.Translate(str(image), str(MOSAIC_NAIP), srcWin=[0, 0, size, size])
    labels = gdal.Open(str(MOSAIC_LABELS)).ReadAsArray(0, 0, size, size)
    return image, labels


def write_with_alpha(path: Path, image: np.ndarray, alpha: np.ndarray, like: Path) -> Path:
    """Write red, green, blue, nir (``image``, uint8, shape (4, rows, cols)) plus a 5th
    alpha band (``alpha``, 0 = transparent), georeferenced as ``like``.

    A 5th-band alpha is the case GDAL does not report as the dataset's mask (it does so
    only for band 2 of 2 or 4 of 4), so readers must look at the colour interpretation.
    """
    source = gdal.Open(str(like))
    rows, cols = alpha.shape
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), cols, rows, 5, gdal.GDT_Byte, ["PHOTOMETRIC=RGB"]
    )
    dataset.SetGeoTransform(source.GetGeoTransform())
    dataset.SetProjection(source.GetProjection())
    for band in range(4):
        dataset.GetRasterBand(band + 1).WriteArray(image[band])
    dataset.GetRasterBand(4).SetColorInterpretation(gdal.GCI_Undefined)
    dataset.GetRasterBand(5).WriteArray(alpha)
    dataset.GetRasterBand(5).SetColorInterpretation(gdal.GCI_AlphaBand)
    dataset = None
    return path
