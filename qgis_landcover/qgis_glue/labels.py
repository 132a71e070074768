# SPDX-License-Identifier: GPL-2.0-or-later
"""Label layers for adaptation: a point or polygon layer in any CRS read into the
core's :class:`~qgis_landcover.core.adaptation.features.LabelPoints` in the raster's CRS.

Points: each point (each part of a multipoint) is a label. Polygons: the raster's
pixel centres inside each polygon are labels, at most :data:`MAX_POINTS_PER_POLYGON`
per polygon, spread evenly over it (a large polygon would otherwise outweigh every
point; the fit weighs classes, not polygons, equally). Class values are taken as they
are (whole numbers or class names); the core maps them to the model's classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFeatureSource,
    QgsGeometry,
    QgsPoint,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsWkbTypes,
)

from ..core.adaptation.features import LabelPoints
from ..core.raster.reading import open_raster
from .raster_inputs import RasterInput

MAX_POINTS_PER_POLYGON = 100
"""Labels one polygon gives at most."""


@dataclass(frozen=True)
class LabelLayer:
    """The labels read from a layer.

    Attributes:
        points: the labels in the raster's CRS.
        features: features read; skipped: features without a class value or geometry.
        polygons: True when the layer holds polygons.
    """

    points: LabelPoints
    features: int
    skipped: int
    polygons: bool


def _pixel_grid(raster: RasterInput) -> tuple[float, float, float, float]:
    """(x origin, pixel width, y origin, pixel height) of the raster's own grid."""
    if raster.layer is not None:
        extent = raster.layer.extent()
        return (
            extent.xMinimum(),
            raster.layer.rasterUnitsPerPixelX(),
            extent.yMaximum(),
            -raster.layer.rasterUnitsPerPixelY(),
        )
    x0, dx, _, y0, _, dy = open_raster(raster.source).GetGeoTransform()
    return x0, dx, y0, dy


def polygon_pixels(
    geometry: QgsGeometry, grid: tuple[float, float, float, float]
) -> list[tuple[float, float]]:
    """Pixel centres of ``grid`` inside ``geometry`` (same CRS), at most
    :data:`MAX_POINTS_PER_POLYGON`, evenly spread."""
    x0, dx, y0, dy = grid
    box = geometry.boundingBox()
    c0, c1 = math.floor((box.xMinimum() - x0) / dx), math.ceil((box.xMaximum() - x0) / dx)
    r0, r1 = sorted((math.floor((box.yMaximum() - y0) / dy), math.ceil((box.yMinimum() - y0) / dy)))
    # A stride keeps a large polygon's candidates to a few times the points kept.
    stride = max(1, math.ceil(math.sqrt((c1 - c0) * (r1 - r0) / (4 * MAX_POINTS_PER_POLYGON))))
    engine = QgsGeometry.createGeometryEngine(geometry.constGet())
    engine.prepareGeometry()
    inside = []
    for row in range(r0, r1 + 1, stride):
        for col in range(c0, c1 + 1, stride):
            x, y = x0 + (col + 0.5) * dx, y0 + (row + 0.5) * dy
            if engine.contains(QgsPoint(x, y)):
                inside.append((x, y))
    if len(inside) > MAX_POINTS_PER_POLYGON:
        keep = np.linspace(0, len(inside) - 1, MAX_POINTS_PER_POLYGON).round().astype(int)
        inside = [inside[i] for i in keep]
    return inside


def read_labels(
    source: QgsFeatureSource,
    field_name: str,
    raster: RasterInput,
    context: QgsProcessingContext,
    feedback: QgsProcessingFeedback,
) -> LabelLayer:
    """The labels of a point or polygon layer, in the raster's CRS.

    Raises:
        QgsProcessingException: no such field, a layer of lines, or no labels.
    """
    index = source.fields().lookupField(field_name)
    if index < 0:
        raise QgsProcessingException(
            f"The label layer has no field '{field_name}'. Fields: "
            f"{', '.join(source.fields().names())}."
        )
    kind = QgsWkbTypes.geometryType(source.wkbType())
    kinds = QgsWkbTypes.GeometryType
    if kind not in (kinds.PointGeometry, kinds.PolygonGeometry):
        raise QgsProcessingException("The label layer must hold points or polygons.")
    polygons = kind == kinds.PolygonGeometry
    transform = QgsCoordinateTransform(source.sourceCrs(), raster.crs, context.transformContext())
    grid = _pixel_grid(raster) if polygons else None
    xs: list[float] = []
    ys: list[float] = []
    values: list[Any] = []
    features = skipped = 0
    request = QgsFeatureRequest().setSubsetOfAttributes([index])
    for feature in source.getFeatures(request):
        if features % 100 == 0 and feedback.isCanceled():
            break
        features += 1
        value = feature.attribute(index)
        geometry = feature.geometry()
        empty = value is None or (hasattr(value, "isNull") and value.isNull())
        if empty or str(value).strip() == "" or geometry.isNull() or geometry.isEmpty():
            skipped += 1
            continue
        geometry.transform(transform)
        if grid is not None:
            found = polygon_pixels(geometry, grid)
        elif geometry.isMultipart():
            found = [(p.x(), p.y()) for p in geometry.asMultiPoint()]
        else:
            point = geometry.asPoint()
            found = [(point.x(), point.y())]
        for x, y in found:
            xs.append(x)
            ys.append(y)
            values.append(value)
    if not xs and not feedback.isCanceled():
        raise QgsProcessingException(
            f"The label layer '{source.sourceName()}' gives no labels: "
            + (
                f"each of its {features} features has an empty '{field_name}' or no geometry"
                + (" or covers no pixel centre" if polygons else "")
                if features
                else "it has no features"
            )
            + "."
        )
    return LabelLayer(
        LabelPoints(np.asarray(xs), np.asarray(ys), np.asarray(values, dtype=object)),
        features,
        skipped,
        polygons,
    )
