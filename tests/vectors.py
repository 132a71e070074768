# SPDX-License-Identifier: GPL-2.0-or-later
"""Small label layers for the tests: pixel centres of a raster written as points in
another CRS (EPSG:4326, longitude first), as a user's GeoPackage would be."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from osgeo import gdal, ogr, osr


def geographic_layer(
    path: Path, image: Path, geometry_type: int, field_type: int, field: str = "class"
) -> tuple[Any, Any, Any]:
    """A new GeoPackage at ``path`` with one EPSG:4326 layer ``labels`` and its field
    ``field``: (the data source, kept open until deleted; the layer; the transformation
    from ``image``'s CRS to longitude, latitude)."""
    projected, geographic = osr.SpatialReference(), osr.SpatialReference()
    projected.ImportFromWkt(gdal.Open(str(image)).GetProjection())
    geographic.ImportFromEPSG(4326)
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = source.CreateLayer("labels", geographic, geometry_type)
    layer.CreateField(ogr.FieldDefn(field, field_type))
    return source, layer, osr.CoordinateTransformation(projected, geographic)


def write_pixel_points(
    path: Path,
    image: Path,
    pixels: Iterable[tuple[int, int, Any]],
    field_type: int = ogr.OFTString,
    field: str = "class",
) -> Path:
    """The centres of ``image``'s pixels (row, column, value) as points in EPSG:4326,
    each with its value in ``field`` (``None``: left null)."""
    x0, dx, _, y0, _, dy = gdal.Open(str(image)).GetGeoTransform()
    source, layer, to_geographic = geographic_layer(path, image, ogr.wkbPoint, field_type, field)
    for row, col, value in pixels:
        lon, lat, _ = to_geographic.TransformPoint(x0 + (col + 0.5) * dx, y0 + (row + 0.5) * dy)
        feature = ogr.Feature(layer.GetLayerDefn())
        if value is not None:
            feature.SetField(field, value)
        point = ogr.Geometry(ogr.wkbPoint)
        point.AddPoint_2D(lon, lat)
        feature.SetGeometry(point)
        layer.CreateFeature(feature)
    del source  # closes the GeoPackage
    return path
