# SPDX-License-Identifier: GPL-2.0-or-later
"""Accuracy reports as JSON (machine-readable), CSV (the matrix) and HTML (for people).

The HTML is one self-contained file (inline CSS, no scripts, no external resources)
with the confusion matrix as a heat map. Every writer goes through
:func:`~qgis_landcover.core.files.atomic.atomic_output`, so a failed run never leaves a
half-written report at the destination.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from html import escape
from typing import Any

from ..files.atomic import atomic_output
from .agreement import AgreementInputs, AgreementReport
from .sample_accuracy import SampleAccuracyInputs, SampleAccuracyReport
from .statistics import ORIENTATION, AgreementStatistics


def json_ready(value: Any) -> Any:
    """``value`` with NaN / infinity turned into ``None`` and numpy scalars into Python
    ones, so that ``json.dumps(..., allow_nan=False)`` accepts it."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: str | os.PathLike[str], document: Mapping[str, Any]) -> None:
    """Write ``document`` (e.g. a report's ``to_json()``) as indented JSON (null for
    undefined values, never NaN)."""
    text = json.dumps(json_ready(document), indent=2, allow_nan=False, ensure_ascii=False)
    with atomic_output(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")


def write_matrix_csv(path: str | os.PathLike[str], statistics: AgreementStatistics) -> None:
    """Write the confusion matrix with row and column totals as CSV.

    The first header cell states the orientation; class columns are headed
    ``value`` and rows start with ``value``, followed by the class name.
    """
    classes = statistics.classes
    with atomic_output(path) as temporary, temporary.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(
            ["classification \\ reference", "name", *[str(c.value) for c in classes], "total"]
        )
        for record, row in zip(classes, statistics.matrix, strict=True):
            writer.writerow([record.value, record.name, *row, record.classified])
        writer.writerow(["total", "", *[c.reference for c in classes], statistics.observations])


# -- HTML ------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em;color:#222;
max-width:80em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .55em;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f2f2f2}td.l,th.l{text-align:left}
.note{background:#fff8dc;border-left:4px solid #e0b000;padding:.5em .8em}
.warn{background:#fdecea;border-left:4px solid #d7191c;padding:.5em .8em}
.swatch{display:inline-block;width:.9em;height:.9em;border:1px solid #888;
vertical-align:middle;margin-right:.3em}
.muted{color:#777}
"""


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return '<span class="muted">n/a</span>'
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _small(value: float | None) -> str:
    """A number that may be tiny (a variance), with 6 significant digits."""
    return _number(None) if value is None else f"{value:.6g}"


def _percent(value: float | None, digits: int = 2) -> str:
    return '<span class="muted">n/a</span>' if value is None else f"{100 * value:.{digits}f} %"


def _swatch(color: str | None) -> str:
    return f'<span class="swatch" style="background:{escape(color)}"></span>' if color else ""


def _table(rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(
        f'<tr><th class="l">{escape(k)}</th><td class="l">{v}</td></tr>' for k, v in rows
    )
    return f"<table>{body}</table>"


def _heat(share: float, diagonal: bool) -> str:
    """Background for a matrix cell holding ``share`` (0-1) of its reference column:
    green on the diagonal (agreement), red off it (confusion)."""
    if share <= 0:
        return ""
    alpha = 0.12 + 0.78 * min(share, 1.0)
    rgb = "26,150,65" if diagonal else "215,25,28"
    return f' style="background:rgba({rgb},{alpha:.2f})"'


def _class_label(value: int, name: str, colors: Mapping[int, str]) -> str:
    return f"{_swatch(colors.get(value))}{value} {escape(name)}"


def _matrix_html(statistics: AgreementStatistics, colors: Mapping[int, str]) -> str:
    classes = statistics.classes
    cols = [c.reference for c in classes]
    head = "".join(f"<th>{_class_label(c.value, c.name, colors)}</th>" for c in classes)
    lines = [
        "<table>",
        f'<tr><th class="l">classification ↓ \\ reference →</th>{head}<th>total</th></tr>',
    ]
    for i, (record, row) in enumerate(zip(classes, statistics.matrix, strict=True)):
        cells = "".join(
            f"<td{_heat(count / cols[j] if cols[j] else 0.0, i == j)}>{count:,}</td>"
            for j, count in enumerate(row)
        )
        lines.append(
            f'<tr><th class="l">{_class_label(record.value, record.name, colors)}</th>{cells}'
            f"<th>{record.classified:,}</th></tr>"
        )
    totals = "".join(f"<th>{v:,}</th>" for v in cols)
    lines.append(f'<tr><th class="l">total</th>{totals}<th>{statistics.observations:,}</th></tr>')
    lines.append("</table>")
    return "\n".join(lines)


def _per_class_html(statistics: AgreementStatistics, colors: Mapping[int, str]) -> str:
    header = (
        '<tr><th class="l">class</th><th>classified</th><th>reference</th>'
        "<th>producer's accuracy</th><th>user's accuracy</th><th>F1</th><th>IoU</th>"
        "<th>conditional kappa</th></tr>"
    )
    rows = [
        f'<tr><td class="l">{_class_label(c.value, c.name, colors)}</td>'
        f"<td>{c.classified:,}</td><td>{c.reference:,}</td>"
        f"<td>{_percent(c.producers_accuracy)}</td><td>{_percent(c.users_accuracy)}</td>"
        f"<td>{_number(c.f1)}</td><td>{_number(c.iou)}</td>"
        f"<td>{_number(c.conditional_kappa)}</td></tr>"
        for c in statistics.classes
    ]
    return f"<table>{header}{''.join(rows)}</table>"


def _overall_rows(statistics: AgreementStatistics) -> list[tuple[str, str]]:
    kappa = statistics.kappa
    kappa_text = _number(kappa.value)
    if kappa.ci95 is not None:
        kappa_text += f" (95 % CI {kappa.ci95[0]:.4f} to {kappa.ci95[1]:.4f})"
    return [
        ("Observations", _number(statistics.observations)),
        ("Correct", _number(statistics.correct)),
        ("Overall accuracy", _percent(statistics.overall_accuracy)),
        ("Cohen's kappa", kappa_text),
        ("Kappa variance (Fleiss, Cohen & Everitt 1969)", _small(kappa.variance)),
        (
            "Kappa variance as GRASS r.kappa computes it (for comparison)",
            _small(kappa.variance_rkappa),
        ),
        ("Mean IoU (classes in the reference)", _number(statistics.mean_iou)),
        ("Mean F1 (classes in the reference)", _number(statistics.mean_f1)),
        ("Quantity disagreement", _percent(statistics.quantity_disagreement)),
        ("Allocation disagreement", _percent(statistics.allocation_disagreement)),
    ]


_YES_NO = {
    "reference_resampled": (
        "yes, nearest neighbour onto the comparison grid",
        "no, it has the comparison grid",
    )
}
"""How the report words the inputs' yes / no fields (never Python's True / False)."""


def _input_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        yes, no = _YES_NO.get(key, ("yes", "no"))
        return yes if value else no
    return str(value)


def _inputs_rows(inputs: AgreementInputs | SampleAccuracyInputs) -> list[tuple[str, str]]:
    return [
        (key.replace("_", " "), escape(_input_text(key, value)))
        for key, value in asdict(inputs).items()
    ]


def _page(title: str, sections: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _warnings_html(warnings: Sequence[str]) -> str:
    return "".join(f'<p class="warn">{escape(w)}</p>' for w in warnings)


def _statistics_notes_html() -> str:
    """How the kappa variance and the mean IoU / F1 are defined (the same notes as the
    ``notes`` of the JSON)."""
    return "".join(f'<p class="note">{escape(n)}</p>' for n in AgreementStatistics.notes)


def _orientation_html() -> str:
    return (
        f'<p class="note">Orientation: {escape(ORIENTATION)}. Producer\'s accuracy = '
        "correct / reference total (omission); user's accuracy = correct / classified "
        "total (commission). Cell colour: share of the reference column.</p>"
    )


def agreement_html(report: AgreementReport) -> str:
    """The HTML page of a raster agreement report (see :mod:`.agreement`)."""
    statistics, colors = report.statistics, report.class_colors
    sections = [_orientation_html(), _warnings_html(report.warnings)]
    if not statistics.observations:
        sections.append(
            '<p class="warn">Zero observations: every pixel of the compared area was '
            "ignored (nodata or an ignore value) on one side or the other.</p>"
        )
    sections += [
        "<h2>Overall</h2>",
        _table([*_overall_rows(statistics), ("Ignored pixels", _number(report.ignored_pixels))]),
        _statistics_notes_html(),
        "<h2>Confusion matrix (pixels)</h2>",
        _matrix_html(statistics, colors),
        "<h2>Per class</h2>",
        _per_class_html(statistics, colors),
        "<h2>Inputs</h2>",
        _table(_inputs_rows(report.inputs)),
    ]
    return _page(report.title, sections)


def area_html(report: SampleAccuracyReport) -> str:
    """The HTML page of an area-adjusted (Olofsson et al. 2014) accuracy report."""
    colors = report.class_colors
    estimate = report.area_adjusted
    unit = estimate.report_unit
    oa, oa_ci = estimate.overall_accuracy, estimate.overall_accuracy_ci95
    points = report.points
    overall = [
        ("Samples used", _number(estimate.samples)),
        (
            "Points skipped (outside the raster / ignored class)",
            f"{points.outside_raster:,} / {points.ignored:,}",
        ),
        (
            "Area-weighted overall accuracy",
            _percent(oa) + (f" ± {100 * oa_ci:.2f} %" if oa_ci is not None else ""),
        ),
        ("Samples: overall accuracy (unweighted)", _percent(report.samples.overall_accuracy)),
        ("Samples: Cohen's kappa (unweighted)", _number(report.samples.kappa.value)),
    ]
    header = (
        f'<tr><th class="l">class</th><th>samples (map class)</th><th>mapped area ({unit})</th>'
        f"<th>estimated area ({unit})</th><th>± 95 % CI ({unit})</th>"
        "<th>user's accuracy ± 95 % CI</th><th>producer's accuracy ± 95 % CI</th></tr>"
    )

    def pm(value: float | None, ci: float | None) -> str:
        return _percent(value) + (f" ± {100 * ci:.2f} %" if ci is not None else "")

    def area(value: float | None) -> str:
        return _number(estimate.in_report_unit(value), 2)

    rows = [
        f'<tr><td class="l">{_class_label(c.value, c.name, colors)}</td>'
        f"<td>{c.samples:,}</td>"
        f"<td>{area(c.mapped_area)}</td><td>{area(c.area)}</td><td>{area(c.area_ci95)}</td>"
        f"<td>{pm(c.users_accuracy, c.users_accuracy_ci95)}</td>"
        f"<td>{pm(c.producers_accuracy, c.producers_accuracy_ci95)}</td></tr>"
        for c in estimate.classes
    ]
    sections = [
        _orientation_html(),
        '<p class="note">Estimators of Olofsson et al. (2014), Remote Sensing of Environment '
        "148:42-57: map classes are the strata; areas and accuracies are weighted by the "
        "mapped area of each class; intervals are ± 1.96 standard errors.</p>",
        _warnings_html([*report.warnings, *estimate.warnings]),
        "<h2>Overall</h2>",
        _table(overall),
        "<h2>Area estimates and accuracy</h2>",
        f"<table>{header}{''.join(rows)}</table>",
        "<h2>Sample counts</h2>",
        _matrix_html(report.samples, colors),
        "<h2>Inputs</h2>",
        _table(_inputs_rows(report.inputs)),
    ]
    return _page(report.title, sections)


def write_html(path: str | os.PathLike[str], html: str) -> None:
    """Write an HTML page (as returned by :func:`agreement_html` / :func:`area_html`)."""
    with atomic_output(path) as temporary:
        temporary.write_text(html, encoding="utf-8")
