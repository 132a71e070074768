# SPDX-License-Identifier: GPL-2.0-or-later
"""The HTML report of an adaptation: labels per class, the cross-validated confusion
matrix (in the accuracy reports' orientation and style), shares and prior shift."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from ..accuracy.reports import (  # the accuracy reports' page, tables and matrix
    _matrix_html,
    _number,
    _overall_rows,
    _page,
    _per_class_html,
    _percent,
    _table,
)
from ..accuracy.statistics import AgreementStatistics, accuracy_statistics
from .adapt import AdaptResult


def cross_validation_statistics(result: AdaptResult) -> AgreementStatistics:
    """The cross-validation's confusion matrix as agreement statistics (rows = the
    adapted model's prediction, columns = the label), by class value."""
    return accuracy_statistics(
        result.cross_validation.confusion.T, result.class_values, result.class_names
    )


def adaptation_html(
    result: AdaptResult, inputs: Mapping[str, str], colors: Mapping[int, str] | None = None
) -> str:
    """The report page. ``inputs``: what was adapted from what (label -> text);
    ``colors``: {class value: '#rrggbb'} for the swatches."""
    colors = colors or {}
    validation = result.cross_validation
    statistics = cross_validation_statistics(result)
    counts = "".join(
        f'<tr><td class="l">{value} {escape(result.class_names[value])}</td>'
        f"<td>{result.labels_per_class.get(value, 0):,}</td>"
        f"<td>{_percent(result.map_shares.get(value))}</td>"
        f"<td>{_percent(result.area_shares.get(value)) if result.area_shares else '-'}</td>"
        f"<td>{result.prior_shift.get(value, 0.0):+.3f}</td></tr>"
        for value in result.class_values
    )
    labels_table = (
        '<table><tr><th class="l">class</th><th>labels</th><th>share of the unadapted map'
        "</th><th>target share (prior shift)</th><th>bias shift</th></tr>"
        f"{counts}</table>"
    )
    summary = [
        ("Adapted model", escape(str(result.output))),
        *((key, escape(value)) for key, value in inputs.items()),
        ("Labels used", _number(result.labels_used)),
        (f"Cross-validated accuracy ({validation.folds} folds)", _percent(validation.accuracy)),
        ("The unadapted model on the same labels", _percent(validation.original_accuracy)),
        ("L2 pull toward the original weights", f"{result.l2:g}"),
        ("Model windows read", f"{result.cells} of {result.cell_size} px output"),
        ("Time", f"{result.seconds:.1f} s ({result.feature_seconds:.1f} s in the model)"),
    ]
    note = (
        '<p class="note">The cross-validated figures measure agreement with the labels, '
        "each predicted by a head fitted without it. Labels are rarely a random sample "
        "of the area (rare classes and the model's mistakes are labelled more often), so "
        "this is not the map's accuracy: assess that with an independent random sample "
        "(landcover:sample_design, landcover:sample_accuracy). Orientation: rows = the "
        "adapted model's prediction, columns = the label.</p>"
    )
    return _page(
        "Model adaptation",
        [
            _table(summary),
            "<h2>Labels and prior shift</h2>",
            labels_table,
            "<h2>Cross-validated confusion matrix</h2>",
            note,
            _matrix_html(statistics, colors),
            _per_class_html(statistics, colors),
            _table(_overall_rows(statistics)[:4]),
            *(f'<p class="warn">{escape(w)}</p>' for w in result.warnings),
        ],
    )
