# SPDX-License-Identifier: GPL-2.0-or-later
"""``landcover:classify_tiles``: many input rasters classified as one mosaic, chunk by
chunk, on worker processes here or on a Dask cluster, resumable.

The parameters are read into what the core takes (``qgis_glue``): the input rasters as
GDAL sources (files never loaded as QGIS layers), a tile index's path field as more
of them, the model value as a resolved model file, ``SCHEDULER`` as an executor; the
core describes the job (:func:`~qgis_landcover.core.tiles.job.build_job`: the inputs'
virtual mosaic and chunk grid) and runs it
(:func:`~qgis_landcover.core.tiles.run.run_tiles_job`: manifest, chunks, mosaic, areas).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterString,
    QgsProviderRegistry,
)

from ..core.inference.classified_output import qml_path
from ..core.inference.image_source import Extent
from ..core.inference.pipeline import ClassifyOptions
from ..core.raster.reading import open_raster
from ..core.tiles.executor import executor_for
from ..core.tiles.job import (
    AREAS_NAME,
    DEFAULT_CHUNK_SIZE,
    MANIFEST_NAME,
    MOSAIC_INPUT_NAME,
    MOSAIC_OUTPUT_NAME,
    build_job,
)
from ..core.tiles.run import run_tiles_job
from ..qgis_glue.feedback import QgisProcessProgress, core_errors
from ..qgis_glue.model_parameters import (
    add_model_parameter,
    device_parameter,
    model_settings,
    precision_parameter,
)
from ..qgis_glue.parameters import (
    add_advanced,
    check_no_overwrite,
    extent_bounds,
    extent_parameter,
    feature_source,
    is_unset,
    number_parameter,
    with_help,
)
from ..qgis_glue.raster_inputs import RasterFilesParameter, gdal_raster_sources
from ..qgis_glue.styling import style_on_load
from .base import LandcoverAlgorithm, Parameters, Results

MIN_CHUNK_SIZE = 64
"""Smallest chunk side accepted (pixels; rounded up to one model tile): small chunks
cost more in margins and files than they gain in parallelism (the default is 4096)."""


class ClassifyTilesAlgorithm(LandcoverAlgorithm):
    """Classify many rasters as one mosaic, chunk by chunk, locally or on Dask."""

    NAME = "classify_tiles"
    DISPLAY_NAME = "Classify many tiles (U-Net)"
    GROUP = "Classification"
    GROUP_ID = "classification"
    TAGS = (
        "land cover",
        "landcover",
        "classification",
        "classify",
        "batch",
        "tiles",
        "many tiles",
        "mosaic",
        "VRT",
        "tile index",
        "NAIP",
        "chunks",
        "resume",
        "manifest",
        "parallel",
        "workers",
        "Dask",
        "cluster",
        "distributed",
        "Kubernetes",
        "Slurm",
        "U-Net",
        "ONNX",
        "GPU",
        "areas",
    )
    NEEDS_ONNXRUNTIME = True

    INPUTS = "INPUTS"
    TILE_INDEX = "TILE_INDEX"
    PATH_FIELD = "PATH_FIELD"
    EXTENT = "EXTENT"
    MODEL = "MODEL"
    DEVICE = "DEVICE"
    PRECISION = "PRECISION"
    WORKERS = "WORKERS"
    SCHEDULER = "SCHEDULER"
    CHUNK_SIZE = "CHUNK_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_MOSAIC = "OUTPUT_MOSAIC"
    OUTPUT_MANIFEST = "OUTPUT_MANIFEST"
    OUTPUT_AREAS = "OUTPUT_AREAS"
    CHUNKS_DONE = "CHUNKS_DONE"
    CHUNKS_FAILED = "CHUNKS_FAILED"
    PIXELS_CLASSIFIED = "PIXELS_CLASSIFIED"

    def shortHelpString(self) -> str:
        return (
            "Classifies many input rasters (e.g. hundreds of NAIP tiles) into land cover as "
            "one mosaic: the inputs become one virtual mosaic (VRT), so every piece of "
            "work reads its margin from the neighbouring tiles and no seam appears at "
            "tile edges. The work is a grid of square chunks; each chunk is classified "
            "like 'Classify land cover (U-Net)' into its own tiled, compressed GeoTIFF, "
            "written whole or not at all.\n\n"
            "The chunks run on worker processes on this computer (each with its own model "
            "session), or on a Dask cluster (SCHEDULER: local-dask, or a scheduler "
            "address; needs the Python package dask[distributed]). A manifest "
            "(GeoPackage, one footprint per chunk with its status, pixels, time and "
            "error) makes the job resumable: running it again with the same output "
            "folder skips the chunks already done and redoes failed ones and those whose "
            "inputs or model changed. A chunk that fails (a corrupt tile) is recorded and "
            "the others go on.\n\n"
            "Outputs, in the output folder: classified.vrt over all chunks (styled with "
            "the model's classes when loaded), manifest.gpkg, and areas.csv with each "
            "class's area (km², %) per chunk and in total, computed for the CRS. "
            "Cancelling keeps the chunks done; no partial file is left."
        )

    def initAlgorithm(self, configuration: dict[str, Any] | None = None) -> None:
        inputs = RasterFilesParameter(self.INPUTS, "Input rasters", optional=True)
        inputs.setHelp(
            "The rasters to classify as one mosaic (GeoTIFF, VRT, COG or any GDAL file): "
            "same CRS, bands, data type and pixel size, e.g. adjacent NAIP tiles. Give "
            "these, a tile index, or both."
        )
        self.addParameter(inputs)
        index = QgsProcessingParameterFeatureSource(
            self.TILE_INDEX,
            "Tile index",
            [QgsProcessing.SourceType.TypeVector],
            optional=True,
        )
        index.setHelp(
            "Optional: a vector layer with one feature per raster (like the NAIP tile "
            "index, or gdaltindex's output) whose PATH_FIELD holds the raster's path; "
            "relative paths are relative to the index file's folder."
        )
        self.addParameter(index)
        path_field = QgsProcessingParameterField(
            self.PATH_FIELD,
            "Path field",
            defaultValue="location",
            parentLayerParameterName=self.TILE_INDEX,
            type=QgsProcessingParameterField.DataType.String,
            optional=True,
        )
        path_field.setHelp(
            "The tile index's field holding the raster paths (gdaltindex writes "
            "'location', the default)."
        )
        self.addParameter(path_field)
        self.addParameter(
            extent_parameter(
                "Optional, in any CRS: classify only the chunks over this area. Default: all "
                "of the inputs."
            )
        )
        add_model_parameter(
            self,
            "An ONNX model file, a model catalogue name (e.g. azure-2018-unet) or an https:// "
            "URL (downloaded once, verified, cached). Empty: the model shipped with the "
            "plugin. On a cluster, every worker must read the file at the same path "
            "(shared storage).",
        )
        device = device_parameter(
            "auto: TensorRT or CUDA when onnxruntime-gpu can use them, else the CPU. cpu: "
            "always the CPU. cuda / tensorrt: that GPU provider or the chunk fails. On a "
            "GPU one local worker runs (one device runs one model at a time). The name or "
            "its number (0-3) may be given."
        )
        self.addParameter(device)
        workers = number_parameter(
            self.WORKERS,
            "Worker processes",
            "Worker processes on this computer, each running one chunk at a time with its "
            "own model session and its share of the cores. 0: automatic (the physical "
            "cores, fewer when memory is short; 1 on a GPU). Not used with a Dask "
            "scheduler address: that cluster has its own workers.",
            integer=True,
            default=0,
            minimum=0,
        )
        self.addParameter(workers)
        scheduler = with_help(
            QgsProcessingParameterString(
                self.SCHEDULER, "Scheduler", defaultValue="", optional=True
            ),
            "Empty: worker processes on this computer (no extra package). local-dask: a "
            "Dask LocalCluster on this computer. An address (tcp://host:8786): a running "
            "Dask scheduler (Kubernetes, Slurm, ...), whose workers must see the inputs, "
            "the model and the output folder at the same paths. Dask needs the Python "
            "package dask[distributed].",
        )
        self.addParameter(scheduler)
        chunk = number_parameter(
            self.CHUNK_SIZE,
            "Chunk size (pixels)",
            "Side of one chunk (one task, one GeoTIFF) in output pixels, rounded down to "
            f"whole model tiles. Default {DEFAULT_CHUNK_SIZE} (16.8 Mpx: minutes on a CPU, "
            "seconds on a GPU). Smaller chunks spread better over few inputs and resume "
            "closer to where a run stopped; larger ones cost less in margins and files. "
            "Changing it redoes every chunk.",
            integer=True,
            default=DEFAULT_CHUNK_SIZE,
            minimum=MIN_CHUNK_SIZE,
        )
        precision = precision_parameter(
            "Which variant of a catalogue model runs, as in 'Classify land cover (U-Net)'. "
            "auto: int8 on a CPU with int8 dot products when the model has a variant "
            "within its card's accuracy bound, fp16 on a GPU when it has one, else fp32. "
            "The variant is resolved here, on this computer's CPU or GPU."
        )
        add_advanced(self, (chunk, precision))
        folder = QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder")
        folder.setHelp(
            "Where the chunks (chunks/), classified.vrt, manifest.gpkg, areas.csv and the "
            "inputs' mosaic (inputs.vrt) go. The same folder again resumes the job. It "
            "must not hold the input rasters."
        )
        self.addParameter(folder)
        self.addOutput(
            QgsProcessingOutputRasterLayer(self.OUTPUT_MOSAIC, "Land cover mosaic (VRT)")
        )
        self.addOutput(
            QgsProcessingOutputVectorLayer(
                self.OUTPUT_MANIFEST,
                "Manifest (chunks)",
                QgsProcessing.SourceType.TypeVectorPolygon,
            )
        )
        self.addOutput(QgsProcessingOutputFile(self.OUTPUT_AREAS, "Class areas (CSV)"))
        self.addOutput(QgsProcessingOutputNumber(self.CHUNKS_DONE, "Chunks done"))
        self.addOutput(QgsProcessingOutputNumber(self.CHUNKS_FAILED, "Chunks failed"))
        self.addOutput(QgsProcessingOutputNumber(self.PIXELS_CLASSIFIED, "Pixels classified"))

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> Results:
        # In qgis_process, Ctrl+C cancels between chunks (the executors poll often).
        progress = QgisProcessProgress(feedback)
        sources = gdal_raster_sources(self, parameters, self.INPUTS, context)
        index_paths = self._tile_index_paths(parameters, context)
        inputs = list(dict.fromkeys(sources + index_paths))
        if not inputs:
            raise QgsProcessingException(
                "No input rasters: give INPUTS, or a TILE_INDEX whose PATH_FIELD names them."
            )
        with core_errors():
            crs_wkt = open_raster(inputs[0]).GetProjection()
        crs = QgsCoordinateReferenceSystem.fromWkt(crs_wkt) if crs_wkt else None
        bounds = extent_bounds(
            self, parameters, self.EXTENT, context, crs or QgsCoordinateReferenceSystem()
        )
        folder = Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context))
        scheduler = self.parameterAsString(parameters, self.SCHEDULER, context)
        settings = model_settings(self, parameters, context, feedback)
        options = ClassifyOptions(device=settings.device)
        model = settings.model
        with core_errors():
            check_no_overwrite(
                self,
                [
                    *[(self.INPUTS, source) for source in inputs],
                    (self.MODEL, str(model)),
                    (self.TILE_INDEX, self._index_file(parameters, context)),
                ],
                [
                    (self.OUTPUT_FOLDER, str(folder / name), False)
                    for name in (MOSAIC_INPUT_NAME, MOSAIC_OUTPUT_NAME, MANIFEST_NAME, AREAS_NAME)
                ],
            )
            job = build_job(
                inputs,
                model=model,
                output_folder=folder,
                chunk_size=self.parameterAsInt(parameters, self.CHUNK_SIZE, context),
                # Bounds in the first input's CRS, the mosaic's: QGIS reprojected them.
                extent=Extent(bounds, crs_wkt) if bounds is not None else None,
                options=options,
                progress=progress,
            )
            executor = executor_for(
                scheduler, self.parameterAsInt(parameters, self.WORKERS, context) or None
            )
            result = run_tiles_job(job, executor, progress)
        mosaic = str(result.mosaic) if result.mosaic is not None else None
        if mosaic is not None:
            details = QgsProcessingContext.LayerDetails(
                "Land cover mosaic", context.project(), self.OUTPUT_MOSAIC
            )
            context.addLayerToLoadOnCompletion(mosaic, details)
            style_on_load(context, mosaic, qml_path(Path(mosaic)))
        return {
            self.OUTPUT_FOLDER: str(job.output_folder),
            self.OUTPUT_MOSAIC: mosaic,
            self.OUTPUT_MANIFEST: str(result.manifest),
            self.OUTPUT_AREAS: str(result.areas_csv) if result.areas_csv is not None else None,
            self.CHUNKS_DONE: result.chunks_done + result.chunks_skipped,
            self.CHUNKS_FAILED: result.chunks_failed,
            self.PIXELS_CLASSIFIED: result.pixels_classified,
        }

    def _index_file(self, parameters: dict[str, Any], context: QgsProcessingContext) -> str | None:
        """The tile index's file (for relative paths and the overwrite check), or
        ``None`` when it is not set or not a file (a memory layer, a database)."""
        if is_unset(parameters.get(self.TILE_INDEX)):
            return None
        layer = self.parameterAsVectorLayer(parameters, self.TILE_INDEX, context)
        if layer is None:
            return None
        path = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
        file = path.get("path") or ""
        return file if file and Path(file).is_file() else None

    def _tile_index_paths(
        self, parameters: dict[str, Any], context: QgsProcessingContext
    ) -> list[str]:
        """The raster paths in the tile index's path field (relative ones against the
        index file's folder), ``[]`` without a tile index."""
        if is_unset(parameters.get(self.TILE_INDEX)):
            return []
        source = feature_source(self, parameters, self.TILE_INDEX, context)
        field = self.parameterAsString(parameters, self.PATH_FIELD, context) or "location"
        if source.fields().indexOf(field) < 0:
            names = ", ".join(source.fields().names()) or "none"
            raise QgsProcessingException(
                f"The tile index has no field {field!r} holding the raster paths (PATH_FIELD); "
                f"its fields: {names}."
            )
        index_file = self._index_file(parameters, context)
        base = Path(index_file).parent if index_file else None
        paths = []
        for feature in source.getFeatures():
            value = feature[field]
            text = str(value).strip() if value not in (None, "") else ""
            if not text or text == "NULL":
                continue
            relative = not (text.startswith("/vsi") or "://" in text or Path(text).is_absolute())
            paths.append(str((base / text).resolve()) if relative and base else text)
        if not paths:
            raise QgsProcessingException(f"The tile index lists no raster in {field!r}.")
        return paths
