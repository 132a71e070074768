# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:classify``: run a U-Net (ONNX) over a raster layer and an extent into a
styled land-cover GeoTIFF (:mod:`qgis_landcover.core.inference.classify`).

Layers GDAL can read (GeoTIFF, VRT mosaics, COGs, ...) are read by the core with GDAL
windows. Other layers (WMS / XYZ imagery, ...) are read through their QGIS data
provider's block API at the model's resolution: :class:`ProviderReader` is that
adapter, kept here because it needs ``qgis``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from qgis.core import (
    Qgis,
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBand,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
    QgsRasterBlockFeedback,
    QgsRasterDataProvider,
    QgsRasterLayer,
    QgsRectangle,
)

from ..core.errors import InputError
from ..core.inference.band_mapping import BandInfo, map_bands
from ..core.inference.classified_output import OutputPaths, qml_path
from ..core.inference.classify import (
    ClassifyOptions,
    ClassifyResult,
    checked_tile_size,
    classify,
    run_pipeline,
)
from ..core.inference.image_reader import validity
from ..core.inference.model_grid import metres_per_unit, plan_model_grid
from ..core.inference.model_input import parse_value_range
from ..core.inference.session import DEVICES, ModelSession, load_session
from ..core.inference.tile_plan import MAX_OVERLAP_PERCENT
from ..core.progress import Progress
from ..core.raster.grid import Bounds, Grid, Window
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.model_resolution import resolve_model_in_qgis
from ..qgis_glue.parameters import (
    EXTENT_POLICY_HELP,
    NamedEnumParameter,
    band_numbers,
    check_no_overwrite,
    enum_string,
    extent_bounds,
    optional_layer_output,
)
from ..qgis_glue.raster_inputs import RasterFileParameter, raster_input
from .base import LandcoverAlgorithm

ARGB_TYPES = (Qgis.ARGB32, Qgis.ARGB32_Premultiplied)
NUMPY_TYPES = {
    Qgis.Byte: np.uint8,
    Qgis.UInt16: np.uint16,
    Qgis.Int16: np.int16,
    Qgis.UInt32: np.uint32,
    Qgis.Int32: np.int32,
    Qgis.Float32: np.float32,
    Qgis.Float64: np.float64,
}
RGBA_BANDS = [
    BandInfo(1, "", "red"),
    BandInfo(2, "", "green"),
    BandInfo(3, "", "blue"),
    BandInfo(4, "", "alpha"),
]
"""How an ARGB32 provider (WMS / XYZ imagery) is presented: four 8-bit bands."""


# --------------------------------------------------------------------------- provider


def is_argb(provider: QgsRasterDataProvider) -> bool:
    """True for providers that deliver rendered RGBA images (WMS, XYZ tiles)."""
    return provider.bandCount() == 1 and provider.dataType(1) in ARGB_TYPES


def describe_provider_bands(provider: QgsRasterDataProvider) -> list[BandInfo]:
    """The layer's bands for band mapping (ARGB images become red, green, blue, alpha)."""
    if is_argb(provider):
        return RGBA_BANDS
    return [
        BandInfo(n, "", (provider.colorInterpretationName(n) or "undefined").lower())
        for n in range(1, provider.bandCount() + 1)
    ]


def provider_grid(layer: QgsRasterLayer, resolution_m: float, bounds: Bounds | None) -> Grid:
    """The layer's pixel grid; for providers without one (WMS / XYZ) a grid over the
    layer's extent at the model's resolution, which the provider renders to."""
    extent = layer.extent()
    crs_wkt = layer.crs().toWkt()
    provider = layer.dataProvider()
    if provider.capabilities() & QgsRasterDataProvider.Size and provider.xSize() > 0:
        return Grid(
            crs_wkt,
            (
                extent.xMinimum(),
                extent.width() / provider.xSize(),
                0.0,
                extent.yMaximum(),
                0.0,
                -extent.height() / provider.ySize(),
            ),
            provider.xSize(),
            provider.ySize(),
        )
    if bounds is None:
        raise InputError(
            f"{layer.name()} is an online layer without a size of its own "
            f"({layer.providerType()}): choose the extent to classify."
        )
    centre = ((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    scale = metres_per_unit(crs_wkt, centre) or (1.0, 1.0)
    rx, ry = resolution_m / scale[0], resolution_m / scale[1]
    # Pixel edges on multiples of the pixel size, like resampled GDAL layers.
    col0, col1 = math.floor(extent.xMinimum() / rx), math.ceil(extent.xMaximum() / rx)
    row0, row1 = math.floor(extent.yMinimum() / ry), math.ceil(extent.yMaximum() / ry)
    return Grid(crs_wkt, (col0 * rx, rx, 0.0, row1 * ry, 0.0, -ry), col1 - col0, row1 - row0)


class ProviderReader:
    """:class:`~qgis_landcover.core.inference.image_reader.ImageReader` over a QGIS raster data
    provider: each window is requested with ``QgsRasterDataProvider.block`` at the
    grid's resolution (the provider resamples or renders). Use it from one thread."""

    def __init__(
        self,
        provider: QgsRasterDataProvider,
        grid: Grid,
        bands: list[int],
        feedback: QgsProcessingFeedback | None = None,
    ) -> None:
        self.provider = provider
        self._grid = grid
        self.bands = bands
        # Provider requests take a raster-block feedback: cancel it with the algorithm.
        self.block_feedback = QgsRasterBlockFeedback()
        if feedback is not None:
            feedback.canceled.connect(self.block_feedback.cancel)
        self.argb = is_argb(provider)
        # Alpha bands mask pixels (0: transparent) whichever band they are.
        self.alpha_bands = (
            []
            if self.argb
            else [
                n
                for n in range(1, provider.bandCount() + 1)
                if (provider.colorInterpretationName(n) or "").lower() == "alpha"
            ]
        )
        types = {NUMPY_TYPES.get(provider.dataType(b)) for b in bands}
        self.data_type = (
            "uint8"
            if self.argb
            else ",".join(sorted(np.dtype(t).name for t in types if t is not None)) or None
        )

    @property
    def grid(self) -> Grid:
        return self._grid

    def _block(self, band: int, window: Window) -> tuple[np.ndarray, float | None]:
        x0, dx, _, y0, _, dy = self._grid.geotransform
        extent = QgsRectangle(
            x0 + window.col_off * dx,
            y0 + (window.row_off + window.height) * dy,
            x0 + (window.col_off + window.width) * dx,
            y0 + window.row_off * dy,
        )
        block = self.provider.block(band, extent, window.width, window.height, self.block_feedback)
        if block is None or not block.isValid() or block.isEmpty():
            raise InputError(
                f"The layer's data provider returned no data for {extent.toString()} "
                f"(band {band}); check the connection or the layer."
            )
        dtype = np.uint32 if self.argb else NUMPY_TYPES.get(block.dataType())
        if dtype is None:
            raise InputError(f"Unsupported pixel type {block.dataType()} in band {band}.")
        array = np.frombuffer(bytes(block.data()), dtype=dtype).reshape(window.shape)
        return array, block.noDataValue() if block.hasNoDataValue() else None

    def read(self, window: Window) -> tuple[np.ndarray, np.ndarray]:
        if self.argb:
            pixels, _ = self._block(1, window)
            # 0xAARRGGBB words: little-endian bytes are B, G, R, A.
            bgra = pixels.view(np.uint8).reshape(*window.shape, 4)
            rgba = bgra[..., [2, 1, 0, 3]].transpose(2, 0, 1).astype(np.float32)
            if self.provider.dataType(1) == Qgis.ARGB32_Premultiplied:
                alpha = rgba[3]
                scale = np.where(alpha > 0, 255.0 / np.maximum(alpha, 1.0), 0.0)
                rgba[:3] *= scale
            raw = rgba[[b - 1 for b in self.bands]]
            return raw, validity(raw, [None] * len(self.bands)) & (rgba[3] > 0)
        arrays, nodata = zip(*(self._block(b, window) for b in self.bands), strict=True)
        raw = np.stack(arrays).astype(np.float32)
        valid = validity(raw, list(nodata))
        for band in self.alpha_bands:
            valid &= self._block(band, window)[0] > 0
        return raw, valid


def classify_with_provider(
    layer: QgsRasterLayer,
    session: ModelSession,
    outputs: OutputPaths,
    *,
    bounds: Bounds | None,
    bands: list[int] | None,
    options: ClassifyOptions,
    progress: Progress,
    feedback: QgsProcessingFeedback | None = None,
) -> ClassifyResult:
    """Classify a layer through its QGIS data provider (any provider, e.g. WMS / XYZ)."""
    contract = session.contract
    # A private copy of the provider: the layer's own belongs to the main thread.
    provider = layer.dataProvider().clone()
    if (
        provider.providerCapabilities()
        & QgsRasterDataProvider.ProviderHintCanPerformProviderResampling
    ):
        provider.enableProviderResampling(True)
        provider.setZoomedInResamplingMethod(QgsRasterDataProvider.ResamplingMethod.Bilinear)
        provider.setZoomedOutResamplingMethod(QgsRasterDataProvider.ResamplingMethod.Average)
    mapping = map_bands(contract.band_names, describe_provider_bands(provider), bands, progress)
    source = provider_grid(layer, contract.resolution_m, bounds)
    layout = plan_model_grid(
        source,
        contract.resolution_m,
        bounds,
        context=checked_tile_size(session, options.tile_size),
        progress=progress,
    )
    reader = ProviderReader(provider, layout.read_grid, mapping, feedback)
    # Providers are not thread-safe: read on this thread.
    options = dataclasses.replace(options, read_ahead_thread=False)
    return run_pipeline(reader, layout.window, session, outputs, options, progress)


# --------------------------------------------------------------------------- styling


class ClassifiedStyler(QgsProcessingLayerPostProcessorInterface):
    """Applies the classified raster's QML style (paletted, with class names) when
    QGIS loads the output."""

    # QGIS keeps only a pointer to a post-processor: Python must keep the object alive.
    _alive: ClassVar[list[ClassifiedStyler]] = []

    def __init__(self, qml: str) -> None:
        super().__init__()
        self.qml = qml

    @classmethod
    def create(cls, qml: str) -> ClassifiedStyler:
        styler = cls(qml)
        cls._alive = [*cls._alive[-63:], styler]
        return styler

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        message, ok = layer.loadNamedStyle(self.qml)
        if not ok:
            feedback.pushWarning(f"Could not apply the style {self.qml}: {message}")
        layer.triggerRepaint()


# --------------------------------------------------------------------------- algorithm


class ClassifyAlgorithm(LandcoverAlgorithm):
    """Classify land cover with a U-Net (ONNX) into a styled GeoTIFF."""

    NAME = "classify"
    DISPLAY_NAME = "Classify land cover (U-Net)"
    GROUP = "Classification"
    GROUP_ID = "classification"

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    TILE_SIZE = "TILE_SIZE"
    OVERLAP = "OVERLAP"
    OVERVIEWS = "OVERVIEWS"
    INPUT_RANGE = "INPUT_RANGE"
    OUTPUT = "OUTPUT"
    OUTPUT_PROBABILITIES = "OUTPUT_PROBABILITIES"
    OUTPUT_CONFIDENCE = "OUTPUT_CONFIDENCE"
    EXECUTION_PROVIDER = "EXECUTION_PROVIDER"
    PIXELS_CLASSIFIED = "PIXELS_CLASSIFIED"

    def shortHelpString(self) -> str:
        return (
            "Classifies a raster layer (e.g. NAIP red, green, blue, near-infrared) into land "
            "cover with a segmentation model (U-Net, ONNX), for an extent of any size at "
            "constant memory, on an NVIDIA GPU when ONNX Runtime can use one and on the CPU "
            "otherwise.\n\n"
            "The model file carries its own metadata (classes, colours, bands, resolution, "
            "tile size, normalisation; Deepness-compatible keys). The layer is resampled "
            "(bilinear) to the model's resolution when its pixels differ by more than 1 %. "
            "Overlapping tiles are blended smoothly (no seams); tiles at the layer's edge "
            "are padded by reflection. Nodata, transparent (alpha), masked and all-zero "
            "pixels become nodata (0) in the output; the model sees them filled by "
            "mirroring the nearest valid pixels, so their neighbours keep their classes.\n\n"
            "The layer's values are checked against the input the model expects (e.g. "
            "8-bit 0-255): other data (reflectance 0-1, 16-bit values) is refused with a "
            "message, or rescaled with 'Rescale input from range'.\n\n"
            "The output is a GeoTIFF (uint8, nodata 0) with a colour table, class names and "
            "a QGIS style; optional rasters give each class's probability and the "
            "confidence (top probability), 0-255. Outputs appear only when complete: "
            "cancelling leaves no partial file."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        layer = RasterFileParameter(self.INPUT, "Input imagery")
        layer.setHelp(
            "The imagery to classify: a GeoTIFF, VRT mosaic, COG or any GDAL raster, or an "
            "online layer (WMS / XYZ), read at the model's resolution."
        )
        self.addParameter(layer)
        extent = QgsProcessingParameterExtent(self.EXTENT, "Extent", optional=True)
        extent.setHelp(
            "Optional, in any CRS (it is reprojected to the layer's CRS). Default: the whole "
            "layer. Required for online layers. " + EXTENT_POLICY_HELP
        )
        self.addParameter(extent)
        model = QgsProcessingParameterFile(self.MODEL, "Model", optional=True)
        # No file filter (not even the default "All files (*.*)"): with one, QGIS refuses
        # values without an extension, i.e. the catalogue names this parameter accepts.
        model.setFileFilter("")
        model.setHelp(
            "An ONNX model file, a model catalogue name (e.g. azure-2018-unet) or an https:// "
            "URL (downloaded once, verified, cached). Empty: the model shipped with the "
            "plugin."
        )
        self.addParameter(model)
        bands = QgsProcessingParameterBand(
            self.BANDS,
            "Bands feeding the model",
            parentLayerParameterName=self.INPUT,
            optional=True,
            allowMultiple=True,
        )
        bands.setHelp(
            "Optional: the layer's bands in the order the model expects them (e.g. red, "
            "green, blue, near-infrared). Default: matched by band name / colour "
            "interpretation, the remaining model bands taking the unnamed bands in order. "
            "From qgis_process: BANDS=4,1,2,3 (or BANDS=4 BANDS=1 ...)."
        )
        self.addParameter(bands)
        device = NamedEnumParameter(
            self.DEVICE, "Device", options=list(DEVICES), defaultValue="auto"
        )
        device.setHelp(
            "auto: TensorRT or CUDA when onnxruntime-gpu can use them, else the CPU (with a "
            "warning when a GPU was found but failed). cpu: always the CPU. cuda / "
            "tensorrt: that GPU provider or an error. The provider used is reported in "
            "EXECUTION_PROVIDER. The name or its number (0-3) may be given."
        )
        self.addParameter(device)
        batch = QgsProcessingParameterNumber(
            self.BATCH_SIZE,
            "Batch size (tiles per model call)",
            QgsProcessingParameterNumber.Integer,
            defaultValue=0,
            minValue=0,
        )
        batch.setHelp(
            "0: automatic (4 on the CPU, 16 on a GPU, fewer when the memory needed would "
            "exceed half of the machine's). Larger batches use more memory; a batch that "
            "would exceed that limit is refused with the largest that fits."
        )
        self.addParameter(batch)
        tile = QgsProcessingParameterNumber(
            self.TILE_SIZE,
            "Tile size (pixels)",
            QgsProcessingParameterNumber.Integer,
            defaultValue=0,
            minValue=0,
        )
        tile.setHelp(
            "0: the model's own tile size. Other values only for models with a free input "
            "size; most networks need a multiple of 32. Tiles larger than the extent needs "
            "are reduced to it; tiles too large for the memory are refused."
        )
        overlap = QgsProcessingParameterNumber(
            self.OVERLAP,
            "Tile overlap (%)",
            QgsProcessingParameterNumber.Double,
            optional=True,
            minValue=0.0,
            maxValue=MAX_OVERLAP_PERCENT,
        )
        overlap.setHelp(
            "Overlap between neighbouring output tiles in percent of their side, blended "
            f"smoothly, at most {MAX_OVERLAP_PERCENT:g}. Empty: the model's own (metadata "
            "'tiles_overlap')."
        )
        input_range = QgsProcessingParameterString(
            self.INPUT_RANGE, "Rescale input from range (low,high)", optional=True
        )
        input_range.setHelp(
            "Optional, e.g. 0,10000 or 0,1: the layer's values from low to high are mapped "
            "linearly onto the range the model expects (metadata 'input_range', e.g. 0-255 "
            "for 8-bit imagery) and clipped to it. Empty: the values are used as they are, "
            "and a layer whose values do not fit the model's range is refused."
        )
        overviews = QgsProcessingParameterBoolean(
            self.OVERVIEWS, "Build overviews", defaultValue=True
        )
        overviews.setHelp("Internal overviews so QGIS draws large outputs quickly.")
        for parameter in (tile, overlap, input_range, overviews):
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        output = QgsProcessingParameterRasterDestination(self.OUTPUT, "Land cover")
        output.setHelp(
            "GeoTIFF (.tif), uint8, nodata 0, colour table and class names; a .qml style "
            "with the same name is written beside it."
        )
        self.addParameter(output)
        for name, label, text in (
            (
                self.OUTPUT_PROBABILITIES,
                "Class probabilities",
                "Optional GeoTIFF, one uint8 band per class: 255 x probability. Pixels "
                "without data are 0 in every band.",
            ),
            (
                self.OUTPUT_CONFIDENCE,
                "Confidence",
                "Optional GeoTIFF, uint8: 255 x the top class's probability (1-255), nodata 0.",
            ),
        ):
            parameter = QgsProcessingParameterRasterDestination(
                name, label, optional=True, createByDefault=False
            )
            parameter.setHelp(text)
            self.addParameter(parameter)
        self.addOutput(
            QgsProcessingOutputString(self.EXECUTION_PROVIDER, "ONNX Runtime execution provider")
        )
        self.addOutput(QgsProcessingOutputNumber(self.PIXELS_CLASSIFIED, "Pixels classified"))

    def processAlgorithm(
        self,
        parameters: dict[str, Any],
        context: QgsProcessingContext,
        feedback: QgsProcessingFeedback,
    ) -> dict[str, Any]:
        raster = raster_input(self, parameters, self.INPUT, context)
        progress = FeedbackProgress(feedback)
        bounds = extent_bounds(self, parameters, self.EXTENT, context, raster.crs)
        overlap = parameters.get(self.OVERLAP)
        with core_errors():
            input_range = parse_value_range(
                self.parameterAsString(parameters, self.INPUT_RANGE, context)
            )
        options = ClassifyOptions(
            device=enum_string(self, parameters, self.DEVICE, context) or "auto",
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            overlap_percent=(
                None
                if overlap in (None, "")
                else self.parameterAsDouble(parameters, self.OVERLAP, context)
            ),
            overviews=self.parameterAsBool(parameters, self.OVERVIEWS, context),
            input_range=input_range,
        )
        bands = band_numbers(self, parameters, self.BANDS, context)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        probabilities = optional_layer_output(self, parameters, self.OUTPUT_PROBABILITIES, context)
        confidence = optional_layer_output(self, parameters, self.OUTPUT_CONFIDENCE, context)
        outputs = OutputPaths(
            Path(output),
            Path(probabilities) if probabilities else None,
            Path(confidence) if confidence else None,
        )
        with core_errors():
            model = resolve_model_in_qgis(
                self.parameterAsString(parameters, self.MODEL, context), feedback
            )
            check_no_overwrite(
                self,
                [(self.INPUT, raster.source), (self.MODEL, str(model))],
                [
                    (self.OUTPUT, output, True),
                    (self.OUTPUT_PROBABILITIES, probabilities, True),
                    (self.OUTPUT_CONFIDENCE, confidence, True),
                ],
            )
            session = load_session(model, options.device, progress)
            if raster.layer is None or raster.provider == "gdal":
                result = classify(
                    raster.source,
                    outputs.classes,
                    session,
                    bounds=bounds,
                    bands=bands,
                    probabilities=outputs.probabilities,
                    confidence=outputs.confidence,
                    options=options,
                    progress=progress,
                )
            else:
                result = classify_with_provider(
                    raster.layer,
                    session,
                    outputs,
                    bounds=bounds,
                    bands=bands,
                    options=options,
                    progress=progress,
                    feedback=feedback,
                )
        feedback.pushInfo(
            f"{result.pixels_classified} pixels classified in {result.seconds:.1f} s "
            f"({result.tiles_run} tiles run, {result.tiles_skipped} without data) on "
            f"{result.execution_provider}."
        )
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.setPostProcessor(ClassifiedStyler.create(str(qml_path(outputs.classes))))
        return {
            self.OUTPUT: output,
            self.OUTPUT_PROBABILITIES: probabilities,
            self.OUTPUT_CONFIDENCE: confidence,
            self.EXECUTION_PROVIDER: result.execution_provider,
            self.PIXELS_CLASSIFIED: result.pixels_classified,
        }
