# SPDX-License-Identifier: GPL-2.0-or-later
"""Reading and writing rasters with GDAL: pixel grids and windows, windowed reading and
warping, GeoTIFF writing with colour tables and styles, class rasters (their band,
nodata, category names and colours), fast reads of packed sub-byte GeoTIFF
bands, and large block-aligned windows read ahead in threads.
"""
