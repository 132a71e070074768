# SPDX-License-Identifier: GPL-2.0-or-later
"""Label raster values -> training targets (output-channel indices), with an ignore
index for no data, missing labels and values that are not a class.

The remap itself is the plugin core's (:mod:`qgis_landcover.core.accuracy.remap`): values it
does not list keep their own value, so ``{5: 4, 6: 4}`` turns the Chesapeake 7-class
set into the 2018 model's 4 classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from qgis_landcover.core.accuracy.remap import apply_remap, parse_remap
from qgis_landcover.core.errors import InputError

IGNORE_INDEX = 255
"""Target value of pixels that count neither in the loss nor in the metrics."""


class LabelMapper:
    """Raw label values -> channel indices ``0..K-1``, ``IGNORE_INDEX`` elsewhere.

    Args:
        remap: raw value -> class value (unlisted values keep their value), as a dict
            or in the core's text form (``'5:4,6:4'`` or a CSV / JSON file).
        class_values: class values in output-channel order.
        ignore_values: raw values that are no data, ignored before any remap.
    """

    def __init__(
        self,
        remap: Mapping[int, int] | str,
        class_values: Iterable[int],
        ignore_values: Iterable[int] = (),
    ) -> None:
        self.remap = dict(
            parse_remap(remap, what="labels.remap") if isinstance(remap, str) else remap
        )
        self.class_values = [int(v) for v in class_values]
        if len(self.class_values) >= IGNORE_INDEX:
            raise InputError(f"At most {IGNORE_INDEX - 1} classes are supported.")
        self.ignore_values = sorted({int(v) for v in ignore_values})

    @property
    def num_classes(self) -> int:
        return len(self.class_values)

    def encode(self, labels: np.ndarray, nodata: float | None = None) -> np.ndarray:
        """Raw label values (any shape, integer or float) -> uint8 targets of the same
        shape; ``nodata``, ``ignore_values``, non-integers and non-classes -> ignore."""
        values = np.asarray(labels)
        ignored = np.isin(values, self.ignore_values)
        if nodata is not None and np.isfinite(nodata):
            ignored |= values == nodata
        if values.dtype.kind == "f":
            ignored |= ~np.isfinite(values) | (values != np.round(values))
            values = np.where(ignored, 0, values)
        classes = apply_remap(values, self.remap)
        targets = np.full(values.shape, IGNORE_INDEX, dtype=np.uint8)
        for channel, value in enumerate(self.class_values):
            targets[classes == value] = channel
        targets[ignored] = IGNORE_INDEX
        return targets
