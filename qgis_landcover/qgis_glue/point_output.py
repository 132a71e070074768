# SPDX-License-Identifier: GPL-2.0-or-later
"""Point layers the algorithms write (sample designs, suggested points): coordinates
from the core (numpy arrays in a raster's CRS) and one column per attribute, into a
Processing feature sink."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qgis.core import (
    Qgis,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputLayerDefinition,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QMetaType

from .parameters import is_unset


@dataclass(frozen=True)
class PointField:
    """One attribute column.

    Attributes:
        name: the field name.
        kind: ``QMetaType.Type.Int``, ``QMetaType.Type.Double`` or
            ``QMetaType.Type.QString``.
        values: one value per point; ``None``: NULL for every point (a field for the
            user to fill).
    """

    name: str
    kind: QMetaType.Type
    values: Sequence[Any] | np.ndarray | None = None


def field_type(kind: QMetaType.Type) -> Any:
    """``QgsField``'s type argument for ``kind``: QGIS 3.38+ (every Qt 6 build among
    them) takes ``QMetaType.Type``; older releases only ``QVariant.Type`` (gone in Qt 6),
    whose values are the same numbers, and accept the number."""
    return kind if Qgis.QGIS_VERSION_INT >= 33800 else int(kind)


def sink_destination(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
) -> str | None:
    """The file a feature sink parameter will write, for the overwrite check before
    anything is written; ``None`` for a temporary or memory layer.

    Read from the value as given, not with ``parameterAsOutputLayer``: that would
    register a layer to load under a name the sink, created later, may not have."""
    value = parameters.get(name)
    if is_unset(value, context):
        return None
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink.valueAsString(context.expressionContext(), "")[0]
    text = str(value).strip()
    if not text or text == QgsProcessing.TEMPORARY_OUTPUT or text.startswith(("memory:", "ogr:")):
        return None
    return text.split("|", 1)[0]


def write_points(
    algorithm: QgsProcessingAlgorithm,
    parameters: dict[str, Any],
    name: str,
    context: QgsProcessingContext,
    crs: QgsCoordinateReferenceSystem,
    xs: np.ndarray,
    ys: np.ndarray,
    fields: Sequence[PointField],
) -> str:
    """Write points (``xs``, ``ys`` in ``crs``) with ``fields`` to the feature sink of
    parameter ``name``; returns its destination id.

    Call it once the core's work is done: it writes every point without checking for
    cancel (a few thousand points take milliseconds), so no layer is left half written."""
    definitions = QgsFields()
    for field in fields:
        definitions.append(QgsField(field.name, field_type(field.kind)))
    sink, destination = algorithm.parameterAsSink(
        parameters, name, context, definitions, QgsWkbTypes.Type.Point, crs
    )
    if sink is None:
        raise QgsProcessingException(algorithm.invalidSinkError(parameters, name))
    columns = [
        [None] * len(xs) if f.values is None else np.asarray(f.values).tolist() for f in fields
    ]
    for index, (x, y) in enumerate(zip(xs.tolist(), ys.tolist(), strict=True)):
        feature = QgsFeature(definitions)
        feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(x, y)))
        feature.setAttributes([column[index] for column in columns])
        if not sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert):
            raise QgsProcessingException(f"Cannot write point {index + 1}: {sink.lastError()}")
    return destination
