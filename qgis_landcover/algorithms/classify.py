# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:classify``: run a U-Net (ONNX) over a raster layer and an extent into a
styled land-cover GeoTIFF.

The parameters are read into what the core takes (``qgis_glue``): the layer becomes an
image source (GDAL's for files, the layer's data provider for WMS / XYZ imagery), the
model value a resolved model file; then one core call,
:func:`qgis_landcover.core.inference.classify.classify`, does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterString,
)

from ..core.inference.classified_output import OutputPaths, qml_path
from ..core.inference.classify import classify
from ..core.inference.model_input import parse_value_range
from ..core.inference.pipeline import ClassifyOptions
from ..core.inference.tile_plan import MAX_OVERLAP_PERCENT
from ..qgis_glue.feedback import FeedbackProgress, core_errors
from ..qgis_glue.image_source import image_source
from ..qgis_glue.model_parameters import (
    add_imagery_input,
    add_model_parameter,
    device_parameter,
    imagery_extent,
    model_settings,
    precision_parameter,
)
from ..qgis_glue.parameters import (
    add_advanced,
    band_numbers,
    band_parameter,
    check_no_overwrite,
    extent_parameter,
    is_unset,
    number_parameter,
    optional_layer_output,
    with_help,
    written_outputs,
)
from ..qgis_glue.raster_inputs import raster_input
from ..qgis_glue.styling import style_on_load
from .base import LandcoverAlgorithm, Parameters, Results


class ClassifyAlgorithm(LandcoverAlgorithm):
    """Classify land cover with a U-Net (ONNX) into a styled GeoTIFF."""

    NAME = "classify"
    DISPLAY_NAME = "Classify land cover (U-Net)"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = (
        "land cover",
        "landcover",
        "land use",
        "classification",
        "classify",
        "segmentation",
        "semantic segmentation",
        "U-Net",
        "UNet",
        "deep learning",
        "neural network",
        "CNN",
        "ONNX",
        "ONNX Runtime",
        "onnxruntime",
        "GPU",
        "CUDA",
        "TensorRT",
        "NAIP",
        "aerial imagery",
        "orthophoto",
        "Chesapeake",
        "raster",
    )
    NEEDS_ONNXRUNTIME = True

    INPUT = "INPUT"
    EXTENT = "EXTENT"
    MODEL = "MODEL"
    BANDS = "BANDS"
    DEVICE = "DEVICE"
    PRECISION = "PRECISION"
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
        add_imagery_input(
            self,
            "The imagery to classify: a GeoTIFF, VRT mosaic, COG or any GDAL raster, or an "
            "online layer (WMS / XYZ), read at the model's resolution.",
        )
        extent = extent_parameter(
            "Optional, in any CRS (it is reprojected to the layer's CRS). Default: the whole "
            "layer. Required for online layers."
        )
        self.addParameter(extent)
        add_model_parameter(
            self,
            "An ONNX model file, a model catalogue name (e.g. azure-2018-unet) or an https:// "
            "URL (downloaded once, verified, cached). Empty: the model shipped with the "
            "plugin.",
        )
        bands = band_parameter(
            self.BANDS,
            "Bands (model order)",
            self.INPUT,
            "Optional: the layer's bands in the order the model expects them (e.g. red, "
            "green, blue, near-infrared). Default: matched by band name / colour "
            "interpretation, the remaining model bands taking the unnamed bands in order. "
            "From qgis_process: BANDS=4,1,2,3 (or BANDS=4 BANDS=1 ...).",
            multiple=True,
        )
        self.addParameter(bands)
        device = device_parameter(
            "auto: TensorRT or CUDA when onnxruntime-gpu can use them, else the CPU (with a "
            "warning when a GPU was found but failed). cpu: always the CPU. cuda / "
            "tensorrt: that GPU provider or an error. The provider used is reported in "
            "EXECUTION_PROVIDER. The name or its number (0-3) may be given."
        )
        self.addParameter(device)
        batch = number_parameter(
            self.BATCH_SIZE,
            "Batch size (tiles)",
            "Tiles per model call. 0: automatic (4 on the CPU, 16 on a GPU, fewer when the "
            "memory needed would exceed half of the machine's). Larger batches use more "
            "memory; a batch that would exceed that limit is refused with the largest that "
            "fits.",
            integer=True,
            default=0,
            minimum=0,
        )
        self.addParameter(batch)
        tile = number_parameter(
            self.TILE_SIZE,
            "Tile size (pixels)",
            "0: automatic. For a model with a free input size and an output margin, the "
            "multiple of 32 that computes the fewest pixels for the extent within a small "
            "memory budget (the log says which, why, and the share of compute on margins); "
            "else the model's own tile size. Other values only for models with a free input "
            "size; most networks need a multiple of 32. Tiles larger than the extent needs "
            "are reduced to it; tiles too large for the memory are refused.",
            integer=True,
            default=0,
            minimum=0,
        )
        overlap = number_parameter(
            self.OVERLAP,
            "Tile overlap (%)",
            "Overlap between neighbouring output tiles in percent of their side, blended "
            f"smoothly, at most {MAX_OVERLAP_PERCENT:g}. Empty: the model's own (metadata "
            "'tiles_overlap').",
            integer=False,
            optional=True,
            minimum=0.0,
            maximum=MAX_OVERLAP_PERCENT,
        )
        input_range = with_help(
            QgsProcessingParameterString(
                self.INPUT_RANGE, "Rescale input from range", optional=True
            ),
            "Optional, low,high, e.g. 0,10000 or 0,1: the layer's values from low to high "
            "are mapped linearly onto the range the model expects (metadata 'input_range', "
            "e.g. 0-255 for 8-bit imagery) and clipped to it. Empty: the values are used as "
            "they are, and a layer whose values do not fit the model's range is refused.",
        )
        overviews = with_help(
            QgsProcessingParameterBoolean(self.OVERVIEWS, "Build overviews", defaultValue=True),
            "Internal overviews so QGIS draws large outputs quickly.",
        )
        precision = precision_parameter(
            "Which variant of a catalogue model runs. auto: int8 on a CPU with int8 dot "
            "products (AVX-512 VNNI / AVX-VNNI) when the model has an int8 variant whose "
            "measured accuracy loss is within its model card's bound, fp16 on a GPU when it "
            "has an fp16 variant, else fp32. fp32 / fp16 / int8: that variant, or an error "
            "naming the variants the model has. Model files and URLs run as they are (auto "
            "only). The variant used and why is written to the log."
        )
        add_advanced(self, (tile, overlap, input_range, overviews, precision))
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
        self.addOutput(QgsProcessingOutputString(self.EXECUTION_PROVIDER, "Execution provider"))
        self.addOutput(QgsProcessingOutputNumber(self.PIXELS_CLASSIFIED, "Pixels classified"))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        raster = raster_input(self, parameters, self.INPUT, context)
        progress = FeedbackProgress(feedback)
        extent = imagery_extent(self, parameters, context, raster)
        with core_errors():
            input_range = parse_value_range(
                self.parameterAsString(parameters, self.INPUT_RANGE, context)
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
        settings = model_settings(self, parameters, context, feedback)
        options = ClassifyOptions(
            device=settings.device,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            tile_size=self.parameterAsInt(parameters, self.TILE_SIZE, context) or None,
            overlap_percent=(
                None
                if is_unset(parameters.get(self.OVERLAP), context)
                else self.parameterAsDouble(parameters, self.OVERLAP, context)
            ),
            overviews=self.parameterAsBool(parameters, self.OVERVIEWS, context),
            input_range=input_range,
        )
        with core_errors():
            check_no_overwrite(
                self,
                settings.inputs(raster),
                [
                    (self.OUTPUT, output, True),
                    (self.OUTPUT_PROBABILITIES, probabilities, True),
                    (self.OUTPUT_CONFIDENCE, confidence, True),
                ],
            )
            result = classify(
                image_source(raster, feedback),
                settings.model,
                outputs,
                extent=extent,
                bands=bands,
                options=options,
                progress=progress,
            )
        feedback.pushInfo(
            f"{result.pixels_classified} pixels classified in {result.seconds:.1f} s "
            f"({result.tiles_run} tiles run, {result.tiles_skipped} without data) on "
            f"{result.execution_provider}."
        )
        style_on_load(context, output, qml_path(outputs.classes))
        return {
            **written_outputs(
                {
                    self.OUTPUT: output,
                    self.OUTPUT_PROBABILITIES: probabilities,
                    self.OUTPUT_CONFIDENCE: confidence,
                }
            ),
            self.EXECUTION_PROVIDER: result.execution_provider,
            self.PIXELS_CLASSIFIED: result.pixels_classified,
        }
