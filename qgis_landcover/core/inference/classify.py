# SPDX-License-Identifier: GPL-2.0-or-later
"""Classify imagery with a segmentation model into land-cover GeoTIFFs: the one entry
point, for any :class:`~.image_source.ImageSource`.

:func:`classify` runs, once for every kind of source:

1. the check that no output overwrites a file the source or the model reads;
2. the model: a session loaded from a resolved file (names, URLs and the default model
   are resolved before, by :func:`~..models.resolve.resolve_model`), or one given;
3. band mapping (:mod:`.band_mapping`): which of the source's bands feed the model;
4. grid planning (:mod:`.model_grid`): the extent at the model's resolution, on the
   source's grid or resampled, with context around it;
5. the pipeline (:mod:`.pipeline`): the input check, reading, tiles, the model,
   blending and writing, reading ahead in a thread when the source allows it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..files.inputs import Input, Output, check_outputs
from ..progress import NullProgress, Progress
from .band_mapping import map_bands
from .classified_output import OutputPaths
from .image_source import Extent, ImageSource
from .model_grid import plan_model_grid
from .pipeline import ClassifyOptions, ClassifyResult, run_pipeline
from .planning import checked_tile_size
from .session import ModelSession, load_session


def classify(
    source: ImageSource,
    model: str | os.PathLike[str] | ModelSession,
    outputs: OutputPaths,
    *,
    extent: Extent | None = None,
    bands: Sequence[int] | None = None,
    options: ClassifyOptions | None = None,
    progress: Progress | None = None,
) -> ClassifyResult:
    """Classify ``extent`` of ``source`` with ``model`` into ``outputs``.

    Args:
        source: the imagery (e.g. :class:`~.gdal_source.GdalImageSource`); never modified.
        model: a local ONNX file, or a loaded session.
        outputs: the classified GeoTIFF (uint8, nodata 0, colour table, ``.qml``) and
            the optional probabilities and confidence GeoTIFFs (uint8, 0-255).
        extent: the area to classify, in any CRS; ``None`` for the whole source.
        bands: 1-based bands of the source feeding the model, in the model's order;
            ``None`` to match them by band name / colour interpretation.

    Raises:
        InputError: bad input of any kind, with a message for the user (nothing is
            written); CancelledError: ``progress`` asked to stop (nothing is written).
    """
    options = options or ClassifyOptions()
    progress = progress or NullProgress()
    check_outputs(
        [
            Input("the input raster", source.data_source),
            Input("the model", model.path if isinstance(model, ModelSession) else model),
        ],
        [
            Output("the classified output", outputs.classes, raster=True),
            Output("the probabilities output", outputs.probabilities, raster=True),
            Output("the confidence output", outputs.confidence, raster=True),
        ],
    )
    session = (
        model if isinstance(model, ModelSession) else load_session(model, options.device, progress)
    )
    contract = session.contract
    mapping = map_bands(contract.band_names, source.bands(), bands, progress)
    progress.info(
        "Bands: "
        + ", ".join(f"{n} <- band {b}" for n, b in zip(contract.band_names, mapping, strict=True))
    )
    source_grid = source.grid(contract.resolution_m, extent)
    layout = plan_model_grid(
        source_grid,
        contract.resolution_m,
        extent.bounds_in(source_grid.crs_wkt) if extent is not None else None,
        context=checked_tile_size(session, options.tile_size),
        progress=progress,
    )
    reader = source.reader(layout, mapping)
    return run_pipeline(
        reader,
        layout.window,
        session,
        outputs,
        options,
        progress,
        read_ahead=source.thread_safe,
    )
