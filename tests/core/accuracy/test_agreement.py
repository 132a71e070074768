# SPDX-License-Identifier: GPL-2.0-or-later
"""Raster-level agreement on real Chesapeake rasters, against numpy / scikit-learn."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, osr
from sklearn.metrics import confusion_matrix

from qgis_landcover.core.accuracy.agreement import AgreementReport, assess_agreement
from qgis_landcover.core.accuracy.confusion import AGREE, DISAGREE, IGNORED
from qgis_landcover.core.errors import CancelledError, InputError
from qgis_landcover.core.progress import NullProgress

from ...conftest import DATA, TEST_DATA

CASES = json.loads((TEST_DATA / "accuracy_cases.json").read_text(encoding="utf-8"))
LULC = DATA / "chesapeake_lulc_1m"
LABELS = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_labels.tif"
NAIP = DATA / "chesapeake_1m_patches" / "m_3708020_sw_17_1_2014_mosaic_naip.tif"
LOWRES = DATA / "chesapeake_lowres_tile"
NLCD_TO_CHESAPEAKE = {
    11: 1, 21: 3, 22: 5, 23: 5, 24: 5, 31: 4, 41: 2, 42: 2, 43: 2,
    52: 3, 71: 3, 81: 3, 82: 3, 90: 2, 95: 3,
}  # fmt: skip


def read(path: Path, band: int = 1) -> np.ndarray:
    dataset = gdal.Open(str(path))
    return dataset.GetRasterBand(band).ReadAsArray()


def write_like(
    source: Path,
    path: Path,
    array: np.ndarray,
    nodata: float | None = None,
    names: list[str] | None = None,
    colors: dict[int, tuple[int, int, int]] | None = None,
) -> Path:
    """A GeoTIFF with ``source``'s georeferencing and ``array``'s pixels / type, and
    optionally category names and a colour table on every band."""
    template = gdal.Open(str(source))
    types = {np.uint8: gdal.GDT_Byte, np.int16: gdal.GDT_Int16, np.float32: gdal.GDT_Float32}
    bands = 1 if array.ndim == 2 else array.shape[0]
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), array.shape[-1], array.shape[-2], bands, types[array.dtype.type]
    )
    dataset.SetGeoTransform(template.GetGeoTransform())
    dataset.SetProjection(template.GetProjection())
    for index, plane in enumerate(array.reshape(bands, *array.shape[-2:]), start=1):
        band = dataset.GetRasterBand(index)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        if colors:  # before the pixels: GDAL >= 3.10 refuses a palette afterwards
            table = gdal.ColorTable()
            for value, rgb in colors.items():
                table.SetColorEntry(value, (*rgb, 255))
            band.SetRasterColorTable(table)
        if names:
            band.SetCategoryNames(names)
        band.WriteArray(plane)
    dataset = None
    return path


def oracle_matrix(
    classified: np.ndarray, reference: np.ndarray, remap: dict[int, int], ignore: set[int]
) -> tuple[list[int], np.ndarray]:
    mapped = np.vectorize(lambda v: remap.get(int(v), int(v)))(classified)
    keep = ~np.isin(mapped, list(ignore)) & ~np.isin(reference, list(ignore))
    classes = sorted(set(mapped[keep].tolist()) | set(reference[keep].tolist()))
    return classes, confusion_matrix(mapped[keep], reference[keep], labels=classes)


@pytest.mark.slow
def test_chesapeake_13_class_remapped_agrees_with_7_class_tile() -> None:
    case = CASES["chesapeake_13_to_7_remap"]
    remap = {int(k): v for k, v in case["remap_13_to_7"].items()}
    report = assess_agreement(
        LULC / "Baywide_13Class_20132014_E1300000_N1770000.tif",
        LULC / "Baywide_7class_20132014_E1300000_N1770000.tif",
        classified_remap=remap,
    )
    statistics = report.statistics
    expected = case["expected"]
    assert statistics.overall_accuracy == expected["overall_accuracy"]
    assert statistics.observations == expected["valid_pixels"]
    counts = {c.value: c.reference for c in statistics.classes}
    assert counts == {int(k): v for k, v in expected["counts_by_7class"].items()}
    assert all(c.classified == c.reference for c in statistics.classes)
    assert report.ignored_pixels == 10_000 * 10_000 - expected["valid_pixels"]
    assert report.inputs.reference_resampled is False


def test_real_nlcd_against_chesapeake_labels(tmp_path: Path) -> None:
    classified_path = LOWRES / "m_3907833_nw_17_1_nlcd.tif"
    reference_path = LOWRES / "m_3907833_nw_17_1_lc.tif"
    disagreement = tmp_path / "agreement.tif"
    progress = NullProgress()
    report = assess_agreement(
        classified_path,
        reference_path,
        classified_remap=NLCD_TO_CHESAPEAKE,
        reference_remap={6: 5},
        disagreement_path=disagreement,
        progress=progress,
        target_pixels=260 * 40,  # several blocks on this small raster
    )
    nlcd, labels = read(classified_path), read(reference_path)
    labels = np.where(labels == 6, 5, labels)
    classes, matrix = oracle_matrix(nlcd, labels, NLCD_TO_CHESAPEAKE, {0})
    assert report.statistics.class_values == classes
    np.testing.assert_array_equal(report.statistics.matrix, matrix)
    assert progress.percent == pytest.approx(100.0)

    written = read(disagreement)
    mapped = np.vectorize(lambda v: NLCD_TO_CHESAPEAKE.get(int(v), int(v)))(nlcd)
    np.testing.assert_array_equal(written, np.where(mapped == labels, AGREE, DISAGREE))
    dataset = gdal.Open(str(disagreement))
    band = dataset.GetRasterBand(1)
    assert band.GetNoDataValue() == IGNORED
    assert band.GetColorTable() is not None
    assert band.GetCategoryNames()[:3] == ["ignored", "agree", "disagree"]
    assert dataset.GetGeoTransform() == gdal.Open(str(classified_path)).GetGeoTransform()
    assert disagreement.with_suffix(".qml").exists()


def test_reference_in_another_crs_and_resolution(tmp_path: Path) -> None:
    # The labels warped to geographic coordinates at about 2 m: the core must bring
    # them back onto the 1 m UTM grid with nearest neighbour.
    warped_path = tmp_path / "labels_4326_2m.tif"
    gdal.Warp(
        str(warped_path),
        str(LABELS),
        dstSRS="EPSG:4326",
        xRes=2.2e-5,
        yRes=1.8e-5,
        resampleAlg="near",
    )
    progress = NullProgress()
    report = assess_agreement(LABELS, warped_path, progress=progress)
    assert report.inputs.reference_resampled is True
    assert any("nearest neighbour" in message for message in progress.messages)

    # Oracle: gdalwarp with an exact transformer into memory on the classified grid.
    # The core's warped VRT uses GDAL's default approximate transformer (error at most
    # 0.125 pixel), which may pick the neighbouring pixel at a handful of boundaries.
    labels = gdal.Open(str(LABELS))
    x0, dx, _, y0, _, dy = labels.GetGeoTransform()
    back = gdal.Warp(
        "",
        str(warped_path),
        format="MEM",
        dstSRS=labels.GetProjection(),
        outputBounds=(x0, y0 + dy * labels.RasterYSize, x0 + dx * labels.RasterXSize, y0),
        width=labels.RasterXSize,
        height=labels.RasterYSize,
        resampleAlg="near",
        errorThreshold=0,
    )
    classes, matrix = oracle_matrix(read(LABELS), back.GetRasterBand(1).ReadAsArray(), {}, {0})
    statistics = report.statistics
    assert statistics.class_values == classes
    difference = np.abs(np.array(statistics.matrix) - matrix).sum()
    assert difference <= 1e-4 * matrix.sum()
    assert abs(statistics.observations - matrix.sum()) <= 1e-4 * matrix.sum()
    # Same labels, coarser pixels: agreement stays high but is not perfect.
    assert 0.9 < statistics.overall_accuracy < 1.0


def test_extent_and_offset_reference(tmp_path: Path) -> None:
    labels = read(LABELS)
    # A reference that covers only part of the classified raster, on the same grid.
    part = tmp_path / "part.tif"
    gdal.Translate(str(part), str(LABELS), srcWin=[100, 50, 600, 400])
    altered = labels.copy()
    altered[::7, ::5] = 3  # some disagreement
    classified = write_like(LABELS, tmp_path / "classified.tif", altered, nodata=0)

    report = assess_agreement(classified, part)
    assert report.inputs.reference_resampled is False
    classes, matrix = oracle_matrix(altered[50:450, 100:700], labels[50:450, 100:700], {}, {0})
    assert report.statistics.class_values == classes
    np.testing.assert_array_equal(report.statistics.matrix, matrix)

    # Extent in the classified CRS: x 580300-580400, y 4099700-4099800 (rows 200-300).
    limited = assess_agreement(classified, part, extent=(580300.0, 4099700.0, 580400.0, 4099800.0))
    classes, matrix = oracle_matrix(altered[200:300, 300:400], labels[200:300, 300:400], {}, {0})
    assert limited.statistics.class_values == classes
    np.testing.assert_array_equal(limited.statistics.matrix, matrix)
    assert limited.compared_pixels == 100 * 100


def test_class_names_from_the_category_names(tmp_path: Path) -> None:
    path = write_like(
        LABELS,
        tmp_path / "named.tif",
        read(LABELS),
        nodata=0,
        names=["", "water", "tree canopy", "low vegetation", "", "impervious"],
        colors={2: (0, 128, 0)},
    )
    report = assess_agreement(path, LABELS)
    names = [c.name for c in report.statistics.classes]
    # Water is in the class list but in neither raster: listed, with zeros.
    assert names == ["water", "tree canopy", "low vegetation", "impervious"]
    water = report.statistics.classes[0]
    assert (water.value, water.classified, water.reference) == (1, 0, 0)
    counts = np.asarray(report.statistics.matrix)
    assert counts[0].tolist() == [0, 0, 0, 0] and counts[:, 0].tolist() == [0, 0, 0, 0]
    assert report.class_colors[2] == "#008000"
    named = assess_agreement(path, LABELS, class_names={3: "grass <&>"})
    assert named.statistics.classes[2].name == "grass <&>"
    # Remapped classification: raw-value names would be wrong, so none are used.
    remapped = assess_agreement(path, LABELS, classified_remap={5: 3})
    assert [c.name for c in remapped.statistics.classes] == ["class 2", "class 3", "class 5"]


def test_class_names_for_too_few_classes_are_refused_and_write_nothing(tmp_path: Path) -> None:
    """Names for 2 values of a comparison of 3 classes (2, 3, 5 in the shipped labels)
    were accepted, the others silently named 'class N'."""
    disagreement = tmp_path / "disagreement.tif"
    for path in (None, disagreement):
        with pytest.raises(InputError, match=r"comparison has 3 classes \(2, 3, 5\): 3, 5 have"):
            assess_agreement(
                LABELS, LABELS, class_names={1: "Water", 2: "Trees"}, disagreement_path=path
            )
    assert list(tmp_path.iterdir()) == []
    names = {1: "Water", 2: "Trees", 3: "Low", 5: "Built", 6: "Roads"}  # a whole legend
    report = assess_agreement(LABELS, LABELS, class_names=names)
    # Classes of the legend absent from both rasters are listed with zero rows and
    # columns; the statistics are those of the 3 classes compared.
    statistics = report.statistics
    assert [c.name for c in statistics.classes] == ["Water", "Trees", "Low", "Built", "Roads"]
    counts = np.asarray(statistics.matrix)
    assert counts[[0, 4]].sum() == 0 and counts[:, [0, 4]].sum() == 0
    unnamed = assess_agreement(LABELS, LABELS).statistics
    assert counts[1:4, 1:4].tolist() == np.asarray(unnamed.matrix).tolist()
    assert (statistics.overall_accuracy, statistics.kappa.value, statistics.mean_iou) == (
        unnamed.overall_accuracy,
        unnamed.kappa.value,
        unnamed.mean_iou,
    )
    assert statistics.classes[0].iou is None and statistics.classes[0].producers_accuracy is None


def test_all_pixels_ignored_gives_zero_observations() -> None:
    report = assess_agreement(LABELS, LABELS, ignore_values=[2, 3, 5])
    assert report.statistics.observations == 0
    assert report.statistics.overall_accuracy is None and report.statistics.kappa.value is None
    assert report.ignored_pixels == 1024 * 512
    assert any("Zero observations" in w for w in report.warnings)
    json.dumps(report.to_json(), allow_nan=False)


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found"):
        assess_agreement(tmp_path / "missing.tif", LABELS)
    with pytest.raises(InputError, match=r"4 bands: choose the band"):
        assess_agreement(NAIP, LABELS)
    with pytest.raises(InputError, match=r"no band 7"):
        assess_agreement(NAIP, LABELS, classified_band=7)
    floats = write_like(LABELS, tmp_path / "float.tif", read(LABELS).astype(np.float32))
    with pytest.raises(InputError, match=r"Float32 values; class values must be integers"):
        assess_agreement(LABELS, floats)
    # Elsewhere: the same labels moved 100 km east.
    far = tmp_path / "far.tif"
    gdal.Translate(str(far), str(LABELS), outputBounds=[680000, 4100000, 681024, 4099488])
    with pytest.raises(InputError, match=r"do not overlap"):
        assess_agreement(LABELS, far)
    with pytest.raises(InputError, match=r"extent .* does not overlap"):
        assess_agreement(LABELS, LABELS, extent=(0.0, 0.0, 10.0, 10.0))


def test_band_choice_on_a_multiband_raster(tmp_path: Path) -> None:
    labels = read(LABELS)
    stack = write_like(LABELS, tmp_path / "stack.tif", np.stack([labels // 2, labels]))
    report = assess_agreement(stack, LABELS, classified_band=2)
    assert report.statistics.overall_accuracy == 1.0
    # The reference's band is honoured through the warped path too.
    warped = tmp_path / "stack_4326.tif"
    gdal.Warp(str(warped), str(stack), dstSRS="EPSG:4326", resampleAlg="near")
    report = assess_agreement(LABELS, warped, reference_band=2)
    assert report.statistics.overall_accuracy > 0.95


# Each side has its own, non-zero nodata value, at different pixels, and each side's
# nodata value is a real class on the other side (4 is a reference class, 3 a map class).
OWN_NODATA_CLASSIFIED = np.array(
    [[1, 1, 2, 2, 4],
     [1, 3, 2, 2, 2],
     [4, 3, 3, 1, 1],
     [2, 2, 3, 3, 4]], dtype=np.uint8)  # nodata 4  # fmt: skip
OWN_NODATA_REFERENCE = np.array(
    [[1, 2, 2, 3, 4],
     [1, 4, 4, 2, 2],
     [1, 4, 3, 1, 2],
     [2, 3, 4, 1, 1]], dtype=np.int16)  # nodata 3  # fmt: skip
# By hand: 6 pixels are nodata on one side (3 on each), 14 pairs remain.
OWN_NODATA_MATRIX = [  # rows = classification 1-4, columns = reference 1-4
    [3, 2, 0, 0],
    [0, 4, 0, 1],
    [1, 0, 0, 3],
    [0, 0, 0, 0],
]
# 1 agree, 2 disagree, 0 ignored (nodata on either side).
OWN_NODATA_AGREEMENT = [
    [1, 2, 1, 0, 0],
    [1, 2, 2, 1, 1],
    [0, 2, 0, 1, 2],
    [1, 0, 2, 2, 0],
]


def write_grid(
    path: Path, array: np.ndarray, nodata: int, pixel: float = 1.0, epsg: int = 32617
) -> Path:
    """A GeoTIFF of ``array`` with upper-left corner (500000, 4100000) and square
    ``pixel``-metre pixels in ``epsg``."""
    types = {np.uint8: gdal.GDT_Byte, np.int16: gdal.GDT_Int16}
    dataset = gdal.GetDriverByName("GTiff").Create(
        str(path), array.shape[1], array.shape[0], 1, types[array.dtype.type]
    )
    dataset.SetGeoTransform((500000.0, pixel, 0.0, 4100000.0, 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    dataset.SetProjection(srs.ExportToWkt())
    band = dataset.GetRasterBand(1)
    band.WriteArray(array)
    band.SetNoDataValue(nodata)
    dataset = None
    return path


@pytest.mark.parametrize("resampled", [False, True])
def test_each_side_has_its_own_nodata(tmp_path: Path, resampled: bool) -> None:
    classified = write_grid(tmp_path / "classified.tif", OWN_NODATA_CLASSIFIED, nodata=4)
    if resampled:
        # The reference at 1/3 m: its grid differs, so it is warped (nearest) onto the
        # classified grid, where each 1 m pixel centre falls in the middle 1/3 m pixel.
        fine = np.kron(OWN_NODATA_REFERENCE, np.ones((3, 3), dtype=np.int16))
        reference = write_grid(tmp_path / "reference.tif", fine, nodata=3, pixel=1 / 3)
    else:
        reference = write_grid(tmp_path / "reference.tif", OWN_NODATA_REFERENCE, nodata=3)
    disagreement = tmp_path / "agreement.tif"

    report = assess_agreement(classified, reference, disagreement_path=disagreement)

    statistics = report.statistics
    assert report.inputs.reference_resampled is resampled
    assert statistics.class_values == [1, 2, 3, 4]
    assert statistics.matrix == tuple(tuple(row) for row in OWN_NODATA_MATRIX)
    assert statistics.observations == 14 and statistics.correct == 7
    assert report.ignored_pixels == 6
    assert statistics.overall_accuracy == 0.5
    assert (report.inputs.classified_nodata, report.inputs.reference_nodata) == ("4", "3")
    # The JSON document states the same, and reads back into the same report.
    document = report.to_json()
    assert document["matrix"] == OWN_NODATA_MATRIX
    assert document["inputs"]["reference_resampled"] is resampled
    assert AgreementReport.from_json(json.loads(json.dumps(document))) == report
    np.testing.assert_array_equal(read(disagreement), OWN_NODATA_AGREEMENT)


class CancelAfter(NullProgress):
    def __init__(self, blocks: int) -> None:
        super().__init__()
        self.blocks = blocks

    def is_cancelled(self) -> bool:
        self.blocks -= 1
        return self.blocks < 0


def test_cancel_leaves_no_output(tmp_path: Path) -> None:
    target = tmp_path / "agreement.tif"
    with pytest.raises(CancelledError):
        assess_agreement(
            LABELS,
            LABELS,
            disagreement_path=target,
            progress=CancelAfter(2),
            target_pixels=1024 * 64,
        )
    assert list(tmp_path.iterdir()) == []
