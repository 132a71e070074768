# SPDX-License-Identifier: GPL-2.0-or-later
"""The many-tiles job end to end: four adjacent input tiles classified chunk by chunk
equal the same area classified as one raster (no seams), resume redoes only what is
not done, a corrupt tile fails only the chunks that read it, cancel leaves no partial
file, and the local process pool gives the same result as this process."""

from __future__ import annotations

import json
import multiprocessing.spawn
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.inference.classified_output import OutputPaths
from qgis_landcover.core.inference.classify import classify
from qgis_landcover.core.inference.gdal_source import GdalImageSource
from qgis_landcover.core.inference.image_source import Extent
from qgis_landcover.core.progress import NullProgress
from qgis_landcover.core.raster.grid import Grid
from qgis_landcover.core.tiles.chunk_runner import ChunkResult, run_chunk
from qgis_landcover.core.tiles.job import (
    Chunk,
    TilesJob,
    build_job,
    check_one_resolution,
    plan_chunks,
)
from qgis_landcover.core.tiles.local_executor import (
    InProcessExecutor,
    LocalExecutor,
    worker_python,
)
from qgis_landcover.core.tiles.run import run_tiles_job

from .conftest import CancelAfter, leftovers, one_raster, read

CHUNK = 100  # rounded down to 90, three output tiles of the box model (32 - 2 px)


class Recording(InProcessExecutor):
    """Runs in this process and remembers which chunks it ran."""

    def __init__(self) -> None:
        super().__init__(task=self.record)
        self.given: list[str] = []

    def record(self, job: TilesJob, chunk: Chunk) -> ChunkResult:
        self.given.append(chunk.id)
        return run_chunk(job, chunk)


def manifest_status(path: Path) -> dict[str, str]:
    source = ogr.Open(str(path))
    return {f.GetField("chunk_id"): f.GetField("status") for f in source.GetLayer(0)}


def test_chunked_tiles_equal_one_raster(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    expected = one_raster(tmp_path, whole, model)
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    chunks = plan_chunks(job)
    # 320 x 240 px in chunks of 90: 4 columns x 3 rows, chunk edges off the tile edges.
    assert job.chunk_size == 90 and len(chunks) == 12
    result = run_tiles_job(job, InProcessExecutor())
    assert (result.chunks_done, result.chunks_failed, result.chunks_skipped) == (12, 0, 0)
    mosaic = read(result.mosaic)
    np.testing.assert_array_equal(mosaic, expected)
    assert result.pixels_classified == expected.size == np.count_nonzero(mosaic)
    # Guard: each tile classified alone differs along its edges (reflected margins):
    # the equality above needs the neighbours' pixels.
    classify(GdalImageSource(tiles[0]), model, OutputPaths(tmp_path / "alone.tif"))
    alone = read(tmp_path / "alone.tif")
    assert not np.array_equal(alone, expected[: alone.shape[0], : alone.shape[1]])
    # Each chunk is a tiled GeoTIFF with overviews, the VRT is styled.
    chunk = gdal.Open(chunks[0].output)
    assert chunk.GetRasterBand(1).GetBlockSize() == [512, 512]
    assert chunk.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"
    assert (tmp_path / "job" / "classified.qml").exists()
    assert set(manifest_status(result.manifest).values()) == {"done"}
    lines = result.areas_csv.read_text().splitlines()
    totals = [line.split(",") for line in lines if line.startswith("total,")]
    values, counts = np.unique(expected, return_counts=True)
    # 1 m pixels in a projected CRS: km² = pixels / 1e6.
    assert [(int(t[1]), int(t[3]), float(t[4])) for t in totals] == [
        (int(v), int(c), round(c / 1e6, 6)) for v, c in zip(values, counts, strict=True)
    ]
    assert leftovers(tmp_path / "job") == []


def test_resume_redoes_only_unfinished_or_changed_chunks(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    with pytest.raises(CancelledError, match="after 5 of 12"):
        run_tiles_job(job, InProcessExecutor(), CancelAfter(5))
    status = manifest_status(job.manifest_path)
    done = {k for k, v in status.items() if v == "done"}
    assert len(done) == 5 and set(status.values()) == {"done", "pending"}
    on_disk = {p.stem for p in job.chunks_folder.glob("*.tif")}
    assert on_disk == done and leftovers(job.chunks_folder) == []
    # The mosaic of the interrupted run covers the done chunks only.
    assert job.output_mosaic.exists()

    again = Recording()
    result = run_tiles_job(job, again)
    assert sorted(again.given) == sorted(set(status) - done)
    assert (result.chunks_done, result.chunks_skipped) == (7, 5)
    np.testing.assert_array_equal(read(result.mosaic), one_raster(tmp_path, whole, model))

    # Nothing left: nothing runs. A touched input redoes the chunks that read it; a
    # deleted chunk output redoes that chunk.
    idle = Recording()
    assert run_tiles_job(job, idle).chunks_skipped == 12 and idle.given == []
    chunks = {c.id: c for c in plan_chunks(job)}
    gdal.Open(str(tiles[3]), gdal.GA_Update).SetMetadataItem("touched", "yes")
    Path(chunks["r0_c0"].output).unlink()
    redo = Recording()
    run_tiles_job(job, redo)
    reading = {c.id for c in chunks.values() if str(tiles[3]) in c.inputs}
    assert 0 < len(reading) < 12
    assert sorted(redo.given) == sorted(reading | {"r0_c0"})


def test_another_model_redoes_every_chunk(tmp_path: Path, tiles: list[Path], model: Path) -> None:
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=200)
    run_tiles_job(job, InProcessExecutor())
    other = tmp_path / "other.onnx"
    other.write_bytes(model.read_bytes() + b"")  # same bytes: same SHA-256
    same = build_job(tiles, model=other, output_folder=tmp_path / "job", chunk_size=200)
    assert run_tiles_job(same, Recording()).chunks_skipped == len(plan_chunks(job))
    changed = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=200)
    changed = TilesJob(**{**changed.__dict__, "model_sha256": "0" * 64})
    assert run_tiles_job(changed, Recording()).chunks_skipped == 0


def test_a_corrupt_tile_fails_only_the_chunks_reading_it(
    tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    folder = tmp_path / "compressed"
    folder.mkdir()
    inputs = []
    for tile in tiles:
        target = folder / tile.name
        gdal.Translate(str(target), str(tile), creationOptions=["COMPRESS=DEFLATE"])
        inputs.append(target)
    job = build_job(inputs, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    # The header stays readable (the job plans), the pixels of the last tile do not.
    size = inputs[3].stat().st_size
    with inputs[3].open("r+b") as stream:
        stream.truncate(size // 2)
    progress = NullProgress()
    result = run_tiles_job(job, InProcessExecutor(), progress)
    status = manifest_status(job.manifest_path)
    chunks = plan_chunks(job)
    failed = {k for k, v in status.items() if v == "failed"}
    assert failed and result.chunks_failed == len(failed)
    assert failed <= {c.id for c in chunks if str(inputs[3]) in c.inputs}
    assert result.chunks_done == 12 - len(failed)
    assert all(not Path(c.output).exists() for c in chunks if c.id in failed)
    source = ogr.Open(str(job.manifest_path))
    errors = [f.GetField("error") for f in source.GetLayer(0) if f.GetField("status") == "failed"]
    assert all(inputs[3].name in e for e in errors)
    assert any(inputs[3].name in w for w in progress.warnings)
    # The mosaic has the done chunks and nodata where chunks failed.
    mosaic = read(result.mosaic)
    assert mosaic[0, 0] != 0 and mosaic[-1, -1] == 0
    assert leftovers(tmp_path / "job") == []


def test_run_chunk_reports_instead_of_raising(
    tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    chunk = plan_chunks(job)[0]
    broken = TilesJob(**{**job.__dict__, "mosaic": str(tmp_path / "missing.vrt")})
    result = run_chunk(broken, chunk)
    assert result.status == "failed" and "missing.vrt" in result.error
    assert not Path(chunk.output).exists()


def test_inputs_must_form_one_mosaic(tmp_path: Path, tiles: list[Path], model: Path) -> None:
    warped = tmp_path / "warped.tif"
    gdal.Warp(str(warped), str(tiles[1]), dstSRS="EPSG:4326")
    with pytest.raises(InputError, match=r"warped\.tif differs from tile_00\.tif"):
        build_job([tiles[0], warped], model=model, output_folder=tmp_path / "job")
    three = tmp_path / "three.tif"
    gdal.Translate(str(three), str(tiles[1]), bandList=[1, 2, 3])
    with pytest.raises(InputError, match=r"same bands: three\.tif has 3"):
        build_job([tiles[0], three], model=model, output_folder=tmp_path / "job")
    coarse = tmp_path / "coarse.tif"
    gdal.Translate(str(coarse), str(tiles[1]), xRes=2, yRes=2)
    with pytest.raises(InputError, match=r"one pixel size: coarse\.tif has 2 x 2"):
        build_job([tiles[0], coarse], model=model, output_folder=tmp_path / "job")
    wide = tmp_path / "wide.tif"
    gdal.Translate(str(wide), str(tiles[1]), outputType=gdal.GDT_UInt16)
    with pytest.raises(InputError, match=r"one data type: wide\.tif is UInt16"):
        build_job([tiles[0], wide], model=model, output_folder=tmp_path / "job")
    with pytest.raises(InputError, match="holds input rasters"):
        build_job(tiles, model=model, output_folder=tiles[0].parent)


def test_inputs_from_a_folder_or_a_tile_index(
    tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    by_folder = build_job(
        folder=tiles[0].parent, pattern="tile_*.tif", model=model, output_folder=tmp_path / "a"
    )
    assert [t.path for t in by_folder.inputs] == [str(t) for t in tiles]
    index = tmp_path / "index.gpkg"
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(index))
    layer = source.CreateLayer("index", geom_type=ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("path", ogr.OFTString))
    for tile in tiles[:2]:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("path", f"tiles/{tile.name}")  # relative to the index
        layer.CreateFeature(feature)
    source = None
    by_index = build_job(
        tile_index=index, path_field="path", model=model, output_folder=tmp_path / "b"
    )
    assert [t.path for t in by_index.inputs] == [str(t) for t in tiles[:2]]
    assert by_index.grid.width == 320 and by_index.grid.height == 120
    with pytest.raises(InputError, match="no field 'name'"):
        build_job(tile_index=index, path_field="name", model=model, output_folder=tmp_path / "c")
    with pytest.raises(InputError, match="No file in"):
        build_job(folder=tmp_path, pattern="*.jp2", model=model, output_folder=tmp_path / "d")


def test_extent_and_mask_clip_the_job(tmp_path: Path, tiles: list[Path], model: Path) -> None:
    full = build_job(tiles, model=model, output_folder=tmp_path / "full", chunk_size=CHUNK)
    xmin, ymin, _, ymax = full.grid.bounds
    # A mask: the triangle over the left half; chunks wholly right of it are not planned.
    mask = tmp_path / "mask.gpkg"
    source = ogr.GetDriverByName("GPKG").CreateDataSource(str(mask))
    srs = gdal.Open(str(tiles[0])).GetSpatialRef()
    layer = source.CreateLayer("mask", srs=srs, geom_type=ogr.wkbPolygon)
    feature = ogr.Feature(layer.GetLayerDefn())
    feature.SetGeometry(
        ogr.CreateGeometryFromWkt(
            f"POLYGON(({xmin} {ymin},{xmin + 100} {ymin},{xmin} {ymax},{xmin} {ymin}))"
        )
    )
    layer.CreateFeature(feature)
    source = None
    job = build_job(
        tiles, model=model, output_folder=tmp_path / "masked", mask=mask, chunk_size=CHUNK
    )
    assert job.grid.width == 100 and job.grid.height == 240
    result = run_tiles_job(job, InProcessExecutor())
    classes = read(result.mosaic)
    cols = np.arange(100) + 0.5
    rows = np.arange(240)[:, None] + 0.5
    inside = cols < 100 * rows / 240  # pixel centres left of the triangle's hypotenuse
    assert np.all(classes[~inside] == 0) and np.all(classes[inside] != 0)
    assert result.pixels_classified == np.count_nonzero(inside)


def test_local_processes_give_the_same_result(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Inside QGIS sys.executable is the QGIS binary: the workers need a real Python.
    monkeypatch.setattr(
        multiprocessing.spawn, "_python_exe", multiprocessing.spawn.get_executable()
    )
    monkeypatch.setattr(sys, "executable", str(tmp_path / "qgis"))
    python = worker_python()
    assert Path(python).name.startswith("python") and python != sys.executable
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    executor = LocalExecutor(2)
    result = run_tiles_job(job, executor)
    assert executor.started_workers == 2
    # The workers ran on that interpreter (here the venv's base Python, not the venv).
    assert os.fsdecode(multiprocessing.spawn.get_executable()) == python
    assert result.chunks_done == 12
    np.testing.assert_array_equal(read(result.mosaic), one_raster(tmp_path, whole, model))


class CancelWhileWriting(NullProgress):
    """Asks to cancel as soon as a worker is seen writing a chunk (a temporary file in
    the chunks folder) after ``results`` chunks were reported."""

    def __init__(self, folder: Path, results: int) -> None:
        super().__init__()
        self.folder = folder
        self.results = results
        self.calls = 0
        self.seen: list[str] = []

    def set_progress(self, percent: float) -> None:
        super().set_progress(percent)
        self.calls += 1

    def is_cancelled(self) -> bool:
        if not self.seen and self.calls >= self.results:
            self.seen = leftovers(self.folder)
        return bool(self.seen)


def test_cancelling_the_pool_leaves_no_partial_file(
    tmp_path: Path, tiles: list[Path], model: Path
) -> None:
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=30)
    progress = CancelWhileWriting(job.chunks_folder, 2)
    with pytest.raises(CancelledError):
        run_tiles_job(job, LocalExecutor(2), progress)
    assert progress.seen  # cancelled while a worker was writing
    status = manifest_status(job.manifest_path)
    done = {k for k, v in status.items() if v == "done"}
    assert 2 <= len(done) < len(status)
    # The workers were stopped mid-chunk: only the recorded chunks have files, all
    # whole, and the partial ones are gone.
    assert {p.stem for p in job.chunks_folder.glob("*.tif")} == done
    assert leftovers(tmp_path / "job") == []
    windows = {c.id: c.window for c in plan_chunks(job)}
    for name in done:
        classes = read(job.chunks_folder / f"{name}.tif")
        assert classes.shape == windows[name].shape and np.all(classes > 0)


def dying_task(job: TilesJob, chunk: Chunk) -> ChunkResult:
    """A task whose worker dies: always on chunk r0_c0, once on r1_c1 (a marker file
    remembers it); the others run normally. Top level, so workers can import it."""
    marker = Path(job.output_folder) / "killed-r1_c1"
    if chunk.id == "r0_c0" or (chunk.id == "r1_c1" and not marker.exists()):
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return run_chunk(job, chunk)


def test_a_lost_worker_reruns_its_chunk(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=180)
    progress = NullProgress()
    result = run_tiles_job(job, LocalExecutor(2, task=dying_task), progress)
    status = manifest_status(job.manifest_path)
    # r1_c1 lost its worker once and was run again; r0_c0 kills every worker it gets.
    assert status["r1_c1"] == "done" and status["r0_c0"] == "failed"
    assert (result.chunks_done, result.chunks_failed) == (3, 1)
    assert any("r0_c0 failed: The worker process running" in w for w in progress.warnings)
    expected = one_raster(tmp_path, whole, model)
    expected[:180, :180] = 0
    np.testing.assert_array_equal(read(result.mosaic), expected)
    assert leftovers(tmp_path / "job") == []


def test_a_geographic_mosaic_is_classified_on_one_model_grid(
    tmp_path: Path, whole: Path, model: Path
) -> None:
    # The area in WGS 84 degrees, cut into 2 x 2 tiles: the model's 1 m pixels are
    # resampled once for the job (inputs_model_grid.vrt), so every chunk reads one grid.
    geographic = tmp_path / "geographic.tif"
    gdal.Warp(str(geographic), str(whole), dstSRS="EPSG:4326")
    width, height = gdal.Open(str(geographic)).RasterXSize, gdal.Open(str(geographic)).RasterYSize
    folder = tmp_path / "geo_tiles"
    folder.mkdir()
    tiles = []
    for row, (y, h) in enumerate(((0, height // 2), (height // 2, height - height // 2))):
        for col, (x, w) in enumerate(((0, width // 2), (width // 2, width - width // 2))):
            tiles.append(folder / f"tile_{row}{col}.tif")
            gdal.Translate(str(tiles[-1]), str(geographic), srcWin=[x, y, w, h])
    job = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    assert Path(job.mosaic).name == "inputs_model_grid.vrt"
    result = run_tiles_job(job, InProcessExecutor())
    assert result.chunks_failed == 0
    classify(GdalImageSource(geographic), model, OutputPaths(tmp_path / "one.tif"))
    np.testing.assert_array_equal(read(result.mosaic), read(tmp_path / "one.tif"))
    # Pixels of 1 m on the ground (the model's resolution): the ellipsoidal areas of
    # the classified pixels add up to about 1 m² each.
    total = [line.split(",") for line in result.areas_csv.read_text().splitlines()]
    area_m2 = sum(float(t[4]) for t in total if t[0] == "total") * 1e6
    assert area_m2 == pytest.approx(result.pixels_classified, rel=0.005)


def test_a_geographic_grid_over_many_latitudes_is_refused() -> None:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    tall = Grid(srs.ExportToWkt(), (-80.0, 1e-5, 0.0, 40.0, 0.0, -1e-5), 100, 1_000_000)
    with pytest.raises(InputError, match="span too many latitudes"):
        check_one_resolution(tall, 1.0)
    check_one_resolution(Grid(srs.ExportToWkt(), (-80.0, 1e-5, 0.0, 40.0, 0.0, -1e-5), 10, 10), 1.0)


def chunk_files(ids: set[str]) -> set[str]:
    """The files a job writes for chunks ``ids``: the GeoTIFF and the ``.aux.xml`` that
    holds the class names (a COG has no place for them)."""
    return {f"{i}.tif" for i in ids} | {f"{i}.tif.aux.xml" for i in ids}


def mosaic_sources(vrt: Path) -> set[str]:
    """The file names the job's output VRT reads (itself excluded)."""
    return {Path(p).name for p in gdal.Open(str(vrt)).GetFileList() if Path(p) != vrt}


def test_a_changed_chunk_size_redoes_everything_and_keeps_only_the_new_plan(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    expected = one_raster(tmp_path, whole, model)
    small = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    run_tiles_job(small, InProcessExecutor())
    folder = small.chunks_folder
    # Sidecars QGIS or GDAL may leave beside an old chunk, and files that are not chunks.
    (folder / "r2_c3.tif.aux.xml").write_text("<PAMDataset/>")
    (folder / "r2_c3.qml").write_text("<qgis/>")
    (folder / "notes.txt").write_text("mine")
    (folder / "r2_c3_backup.tif").write_bytes(b"mine")
    (tmp_path / "job" / "r2_c3.tif").write_bytes(b"mine")  # beside, not in, the chunks folder

    # 90 px chunks (12, r0_c0 .. r2_c3) become 180 px chunks (4, r0_c0 .. r1_c1): the
    # reused ids were done under other parameters, so every chunk runs again.
    large = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=200)
    new_ids = {c.id for c in plan_chunks(large)}
    assert large.chunk_size == 180 and new_ids == {"r0_c0", "r0_c1", "r1_c0", "r1_c1"}
    assert json.loads(large.parameters_json())["chunk_size"] == 180
    progress = NullProgress()
    again = Recording()
    result = run_tiles_job(large, again, progress)
    assert sorted(again.given) == sorted(new_ids)
    assert (result.chunks_done, result.chunks_skipped, result.chunks_total) == (4, 0, 4)
    assert manifest_status(large.manifest_path) == dict.fromkeys(new_ids, "done")
    assert {p.name for p in folder.iterdir()} == chunk_files(new_ids) | {
        "notes.txt",
        "r2_c3_backup.tif",
    }
    assert (tmp_path / "job" / "r2_c3.tif").read_bytes() == b"mine"
    assert mosaic_sources(result.mosaic) == {f"{i}.tif" for i in new_ids}
    np.testing.assert_array_equal(read(result.mosaic), expected)
    assert any("rows of 8 chunks no longer planned" in m for m in progress.messages)
    # 12 old chunks x (GeoTIFF + .aux.xml), and the style of r2_c3.
    assert any("Deleted 25 stale chunk files" in m for m in progress.messages)

    # Back to 90 px, cancelled after one chunk: the stale 180 px files of r0_c1, r1_c0
    # and r1_c1 (done under the previous plan) must not pass for this plan's chunks.
    with pytest.raises(CancelledError, match="after 1 of 12"):
        run_tiles_job(small, Recording(), CancelAfter(1))
    status = manifest_status(small.manifest_path)
    done = {k for k, v in status.items() if v == "done"}
    assert set(status) == {c.id for c in plan_chunks(small)} and len(done) == 1
    assert {p.name for p in folder.iterdir()} == chunk_files(done) | {
        "notes.txt",
        "r2_c3_backup.tif",
    }
    assert mosaic_sources(small.output_mosaic) == {f"{i}.tif" for i in done}
    windows = {c.id: c.window for c in plan_chunks(small)}
    (name,) = done
    window = windows[name]
    mosaic = read(small.output_mosaic)
    part = (
        slice(window.row_off, window.row_off + window.height),
        slice(window.col_off, window.col_off + window.width),
    )
    np.testing.assert_array_equal(mosaic[part], expected[part])
    mosaic[part] = 0
    assert not mosaic.any()  # nothing but the one chunk done under this plan
    assert leftovers(tmp_path / "job") == []


def test_a_smaller_extent_drops_the_chunks_outside_it(
    tmp_path: Path, tiles: list[Path], whole: Path, model: Path
) -> None:
    full = build_job(tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK)
    run_tiles_job(full, InProcessExecutor())
    xmin, ymin, _, ymax = full.grid.bounds
    left = Extent((xmin, ymin, xmin + 150, ymax), full.crs_wkt)
    job = build_job(
        tiles, model=model, output_folder=tmp_path / "job", chunk_size=CHUNK, extent=left
    )
    ids = {c.id for c in plan_chunks(job)}
    assert job.grid.width == 150 and ids == {f"r{r}_c{c}" for r in range(3) for c in range(2)}
    # Same grid origin and pixel size, so the same parameters: the left column of
    # chunks is unchanged and skipped; the second column narrowed from 90 to 60 px
    # under the same ids, and its footprint makes it run again.
    redo = Recording()
    result = run_tiles_job(job, redo)
    assert sorted(redo.given) == ["r0_c1", "r1_c1", "r2_c1"]
    assert (result.chunks_done, result.chunks_skipped) == (3, 3)
    assert manifest_status(job.manifest_path) == dict.fromkeys(ids, "done")
    assert {p.name for p in job.chunks_folder.iterdir()} == chunk_files(ids)
    assert mosaic_sources(result.mosaic) == {f"{i}.tif" for i in ids}
    np.testing.assert_array_equal(read(result.mosaic), one_raster(tmp_path, whole, model)[:, :150])
