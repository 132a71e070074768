# SPDX-License-Identifier: GPL-2.0-or-later
"""Small test rasters built from real imagery, shared by the core and algorithm tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal


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
