# SPDX-License-Identifier: GPL-2.0-or-later
from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from qgis_landcover.core.accuracy.agreement import AgreementInputs, AgreementReport
from qgis_landcover.core.accuracy.area_estimation import area_adjusted_accuracy
from qgis_landcover.core.accuracy.reports import (
    agreement_html,
    area_html,
    json_ready,
    write_html,
    write_json,
    write_matrix_csv,
)
from qgis_landcover.core.accuracy.sample_accuracy import (
    PointCounts,
    SampleAccuracyInputs,
    SampleAccuracyReport,
)
from qgis_landcover.core.accuracy.statistics import accuracy_statistics
from qgis_landcover.core.errors import InputError

MATRIX = np.array([[50, 3, 0], [4, 30, 1], [0, 0, 0]])


def inputs(**changes: str) -> AgreementInputs:
    described = {
        "classified": "/data/a.tif (band 1)",
        "reference": "/data/b.tif (band 1)",
        "comparison_grid": "EPSG:26917, pixel 1 x 1, 10 x 10 pixels",
        "extent": "0, 0, 10, 10",
        "reference_resampled": False,
        "classified_remap": "none",
        "reference_remap": "6:5",
        "ignore_values": "0",
        "classified_nodata": "none",
        "reference_nodata": "none",
    }
    return AgreementInputs(**{**described, **changes})


def agreement_report() -> AgreementReport:
    statistics = accuracy_statistics(MATRIX, [1, 2, 7], {1: "water", 2: "tree <canopy>"})
    return AgreementReport(
        statistics=statistics,
        ignored_pixels=12,
        compared_pixels=100,
        inputs=inputs(),
        class_colors={1: "#0000ff"},
        warnings=("something to know",),
    )


def test_json_has_the_keys_and_no_nan(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(path, {**agreement_report().to_json(), "extra": float("nan"), "n": np.int64(3)})

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in JSON")

    data = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    for key in (
        "classes", "matrix", "observations", "correct", "overall_accuracy", "kappa",
        "kappa_variance", "producers_accuracy", "users_accuracy", "conditional_kappa",
        "f1", "iou", "mean_iou", "quantity_disagreement", "allocation_disagreement",
        "orientation", "kappa_ci95", "kappa_variance_rkappa", "mean_f1", "notes",
    ):  # fmt: skip
        assert key in data, key
    # The notes say which kappa variance is which and what the means average.
    notes = " ".join(data["notes"])
    assert "Fleiss, Cohen & Everitt (1969)" in notes and "kappa_variance_rkappa" in notes
    assert "classes present in the reference" in notes
    assert data["extra"] is None and data["n"] == 3
    assert data["users_accuracy"][2] is None  # empty row: class 7 never classified
    assert data["matrix"] == MATRIX.tolist()
    assert data["title"] == "Agreement with reference raster"
    assert (data["ignored_pixels"], data["compared_pixels"]) == (12, 100)
    assert data["class_colors"] == {"1": "#0000ff"}
    assert data["warnings"] == ["something to know"]
    assert data["inputs"]["reference_remap"] == "6:5"
    assert data["inputs"]["reference_resampled"] is False
    assert json_ready({"a": [np.float32(1.5), float("inf")]}) == {"a": [1.5, None]}
    # The file reads back into the same report.
    del data["extra"], data["n"]
    assert AgreementReport.from_json(data) == agreement_report()


def test_csv_round_trips_the_matrix(tmp_path: Path) -> None:
    path = tmp_path / "matrix.csv"
    write_matrix_csv(path, agreement_report().statistics)
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["classification \\ reference", "name", "1", "2", "7", "total"]
    body = np.array([[int(v) for v in row[2:]] for row in rows[1:4]])
    np.testing.assert_array_equal(body[:, :3], MATRIX)
    np.testing.assert_array_equal(body[:, 3], MATRIX.sum(axis=1))
    assert rows[2][1] == "tree <canopy>"
    assert [int(v) for v in rows[4][2:]] == [*MATRIX.sum(axis=0), MATRIX.sum()]


def test_agreement_html_is_self_contained(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    write_html(path, agreement_html(agreement_report()))
    html = path.read_text(encoding="utf-8")
    assert "rows = classification (map), columns = reference" in html
    assert "tree &lt;canopy&gt;" in html and "<canopy>" not in html
    assert "<script" not in html and not re.search(r"(src|href)=", html)
    assert "something to know" in html and "/data/a.tif" in html
    for count in ("50", "30", "53", "35", "54", "33", "88"):  # cells, row and column totals
        assert f">{count}<" in html
    assert "rgba(26,150,65" in html and "rgba(215,25,28" in html  # heat map
    assert f"{100 * 80 / 88:.2f} %" in html  # overall accuracy
    kappa = agreement_report().statistics.kappa
    # Both variances, each with its name, and the notes that tell them apart.
    for label, value in (
        ("Kappa variance (Fleiss, Cohen &amp; Everitt 1969)", kappa.variance),
        ("Kappa variance as GRASS r.kappa computes it", kappa.variance_rkappa),
    ):
        assert re.search(rf"{re.escape(label)}[^<]*</th><td[^>]*>{value:.6g}<", html), label
    low, high = kappa.ci95
    assert f"95 % CI {low:.4f} to {high:.4f}" in html
    assert "classes present in the reference" in html and "r.kappa pairs" in html


@pytest.mark.parametrize(
    ("resampled", "words"),
    [
        (False, "no, it has the comparison grid"),
        (True, "yes, nearest neighbour onto the comparison grid"),
    ],
)
def test_inputs_say_yes_or_no_in_words(resampled: bool, words: str) -> None:
    """The report printed Python's 'False' for 'reference resampled'."""
    report = agreement_report()
    report = AgreementReport(
        report.statistics,
        12,
        100,
        inputs(reference_resampled=resampled),  # type: ignore[arg-type]
    )
    html = agreement_html(report)
    row = re.search(r"reference resampled</th><td[^>]*>([^<]*)<", html)
    assert row is not None and row.group(1) == words
    assert ">False<" not in html and ">True<" not in html


def test_zero_observations_report() -> None:
    statistics = accuracy_statistics(np.zeros((0, 0), dtype=np.int64), [])
    html = agreement_html(AgreementReport(statistics, 100, 100, inputs()))
    assert "Zero observations" in html
    assert "n/a" in html


def test_area_html() -> None:
    counts = np.array([[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]])
    estimate = area_adjusted_accuracy(
        counts,
        [200000.0, 150000.0, 3200000.0, 6450000.0],
        [1, 2, 3, 4],
        area_unit="m²",
        hectares_per_unit=1e-4,
    )
    report = SampleAccuracyReport(
        area_adjusted=estimate,
        samples=accuracy_statistics(counts, [1, 2, 3, 4]),
        mapped_pixels={1: 20, 2: 15, 3: 320, 4: 645},
        pixel_area=10_000.0,
        points=PointCounts(total=642, used=640, outside_raster=2, ignored=0),
        inputs=SampleAccuracyInputs(
            classified="/data/map.tif (band 1)",
            points="validation.gpkg",
            crs="EPSG:26917",
            pixel_size="100 x 100",
            classified_remap="none",
            reference_remap="none",
            ignore_values="0",
        ),
    )
    html = area_html(report)
    assert "Olofsson" in html and "validation.gpkg" in html
    # Class 1: 20 ha mapped, its estimated area in hectares.
    assert "<td>20.00</td>" in html
    assert f"<td>{1e-4 * estimate.classes[0].area:.2f}</td>" in html
    assert "area (ha)" in html
    assert ">2 / 0</td>" in html  # points skipped: outside the raster / ignored
    assert "<script" not in html
    document = report.to_json()
    assert document["points"] == {"total": 642, "used": 640, "outside_raster": 2, "ignored": 0}
    assert document["area_adjusted"]["area_ha"][0] == pytest.approx(1e-4 * estimate.classes[0].area)
    assert document["mapped_pixels"] == {"1": 20, "2": 15, "3": 320, "4": 645}


def test_writers_refuse_a_missing_folder(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "report.json"
    with pytest.raises(InputError, match=r"does not exist"):
        write_json(target, agreement_report().to_json())
    assert not target.parent.exists()
