# SPDX-License-Identifier: GPL-2.0-or-later
"""Olofsson et al. (2014) estimators against the paper's worked example."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qgis_landcover.core.accuracy.area_estimation import AreaEstimate, area_adjusted_accuracy

from ...conftest import TEST_DATA

CASE = json.loads((TEST_DATA / "accuracy_cases.json").read_text(encoding="utf-8"))[
    "olofsson_2014_area_adjusted"
]


def _example() -> AreaEstimate:
    counts = np.array(CASE["sample_counts_rows_map_cols_reference"])
    pixels = np.array(CASE["mapped_area_pixels"], dtype=float)
    # Areas in pixels (0.09 ha each): the report converts them to hectares.
    return area_adjusted_accuracy(
        counts,
        pixels,
        [1, 2, 3, 4],
        dict(enumerate(CASE["classes"], start=1)),
        area_unit="pixels",
        hectares_per_unit=CASE["pixel_area_ha"],
    )


def test_expected_values() -> None:
    result = _example()
    expected = CASE["expected"]
    rel = CASE["tolerance_relative"]
    assert result.overall_accuracy == pytest.approx(expected["overall_accuracy"], rel=rel)
    assert result.overall_accuracy_se == pytest.approx(expected["overall_accuracy_se"], rel=rel)
    classes = result.classes
    users = [c.users_accuracy for c in classes]
    np.testing.assert_allclose(users, expected["users_accuracy"], rtol=rel)
    producers = [c.producers_accuracy for c in classes]
    np.testing.assert_allclose(producers, expected["producers_accuracy"], rtol=rel)
    document = result.to_json()
    np.testing.assert_allclose(document["area_ha"], expected["area_ha"], rtol=rel)
    np.testing.assert_allclose(document["area_ci95_ha"], expected["area_ci95_ha"], rtol=rel)
    areas = [result.in_report_unit(c.area) for c in classes]
    np.testing.assert_allclose(areas, expected["area_ha"], rtol=rel)
    assert result.report_unit == "ha"
    assert result.warnings == ()


def test_published_deforestation_area() -> None:
    published = CASE["published"]
    result = _example()
    deforestation = result.classes[0]
    assert round(result.in_report_unit(deforestation.area)) == published["deforestation_area_ha"]
    ci95 = result.in_report_unit(deforestation.area_ci95)
    assert round(ci95) == published["deforestation_area_ci95_ha"]


def test_published_accuracy_intervals() -> None:
    # Olofsson et al. (2014), section 5: accuracies ± 95 % CI, rounded to 2 decimals.
    result = _example()
    users = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
    producers = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)]
    for record, user, producer in zip(result.classes, users, producers, strict=True):
        assert (round(record.users_accuracy, 2), round(record.users_accuracy_ci95, 2)) == (
            pytest.approx(user)
        )
        assert (
            round(record.producers_accuracy, 2),
            round(record.producers_accuracy_ci95, 2),
        ) == pytest.approx(producer)
    assert round(result.overall_accuracy, 2) == pytest.approx(0.95)
    assert round(result.overall_accuracy_ci95, 2) == pytest.approx(0.02)


def test_estimates_are_consistent() -> None:
    result = _example()
    classes = result.classes
    assert sum(c.area_proportion for c in classes) == pytest.approx(1.0)
    assert sum(c.area for c in classes) == pytest.approx(sum(c.mapped_area for c in classes))
    assert sum(c.mapped_proportion for c in classes) == pytest.approx(1.0)
    # p_ij rows sum to the mapped proportions W_i.
    np.testing.assert_allclose(
        np.sum(result.error_matrix_proportions, axis=1), [c.mapped_proportion for c in classes]
    )
    assert classes[0].area_se * 1.96 == pytest.approx(classes[0].area_ci95)
    document = result.to_json()
    assert document["area_se_ha"][0] * 1.96 == pytest.approx(document["area_ci95_ha"][0])
    assert result.samples == int(np.sum(CASE["sample_counts_rows_map_cols_reference"]))
    assert document["samples"] == result.samples
    json.dumps(document, allow_nan=False)


def test_stratum_without_samples_or_with_one_sample() -> None:
    counts = np.array([[10, 2, 0], [1, 9, 0], [0, 0, 0]])
    result = area_adjusted_accuracy(counts, [100.0, 200.0, 50.0], [1, 2, 3], area_unit="m²")
    # By hand: W = 100, 200, 50 / 350; class 3 (1/7 of the map) has no samples, so the
    # overall accuracy is 2/7 * 10/12 + 4/7 * 9/10 = 0.752381, at most 6/7 = 85.71 %.
    assert result.overall_accuracy == pytest.approx(2 / 7 * 10 / 12 + 4 / 7 * 9 / 10)
    assert result.unsampled_proportion == pytest.approx(1 / 7)
    assert sum(c.area_proportion for c in result.classes) == pytest.approx(6 / 7)
    (warning,) = [w for w in result.warnings if "no samples" in w]
    assert "'class 3' (14.29 % of the mapped area, 50 m²)" in warning
    assert "at most 85.71 %" in warning and "add up to only 85.71 %" in warning
    assert "class 1" not in warning and "class 2" not in warning
    assert result.classes[2].users_accuracy is None
    assert result.to_json()["users_accuracy"][2] is None
    json.dumps(result.to_json(), allow_nan=False)

    single = area_adjusted_accuracy(np.array([[1, 0], [2, 8]]), [10.0, 30.0], [1, 2])
    assert any("single sample" in w for w in single.warnings)
    assert single.classes[0].users_accuracy == 1.0
    assert single.classes[0].users_accuracy_se is None
    assert single.overall_accuracy_se is None
    assert single.report_unit == "map units²"
    assert "area_ha" not in single.to_json()
    json.dumps(single.to_json(), allow_nan=False)


def test_one_correct_point_in_one_class_is_the_weight_of_that_class() -> None:
    # The case of the issue: one correct point in a class holding 27.85 % of the map
    # and none in the other classes gives an overall accuracy of 0.2785, which the
    # warning must explain.
    result = area_adjusted_accuracy(
        np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]]), [2785.0, 5000.0, 2215.0], [1, 2, 3]
    )
    assert result.overall_accuracy == pytest.approx(0.2785)
    assert result.unsampled_proportion == pytest.approx(0.7215)
    (warning,) = [w for w in result.warnings if "no samples" in w]
    assert "'class 2' (50.00 % of the mapped area" in warning
    assert "'class 3' (22.15 % of the mapped area" in warning
    assert "(72.15 % of the map)" in warning and "at most 27.85 %" in warning


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match=r"do not match"):
        area_adjusted_accuracy(np.zeros((2, 2)), [1.0, 2.0, 3.0], [1, 2])
