# SPDX-License-Identifier: GPL-2.0-or-later
"""Adapt a model to an area from labelled points: the one entry point,
:func:`adapt_model` (QGIS-free; ``landcover:adapt_model`` calls it).

1. the model must expose its features (``features_output``, else a clear error);
2. labels: class values (or names) -> score channels, at least
   :data:`~.fit.MIN_LABELS_PER_CLASS` per labelled class, each on a valid pixel of the
   raster (:mod:`.features`);
3. the model's features and scores at the labelled pixels, and the unadapted map's
   class shares over the extent (unless given);
4. k-fold cross-validation, then the fit on all labels (:mod:`.fit`);
5. the adapted model: the source file with the head's weight and bias replaced and the
   metadata (name, description, model card, provenance) updated, written atomically
   (:func:`~..models.onnx_file.write_model_with`): same graph, same contract otherwise.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files.checksum import file_sha256
from ..files.inputs import Input, Output, check_outputs
from ..inference.image_source import Extent, ImageSource
from ..inference.session import ModelSession, load_session
from ..models.contract import ModelContract, read_contract
from ..models.onnx_file import read_initializers, write_model_with
from ..progress import NullProgress, Progress, check_cancelled
from .features import (
    LabelPoints,
    extract_features,
    label_pixels,
    plan_reading,
    require_features,
    sample_area,
)
from .fit import (
    MIN_LABELS_PER_CLASS,
    CrossValidation,
    FitProblem,
    FittedHead,
    cross_validate,
    fit_head,
    softmax_shares,
)
from .head import Head

CV_FOLDS = 5
L2_GRID = (100.0, 10.0, 1.0, 0.1, 0.01, 0.001)
"""Pulls tried when none is given, strongest first. Measured on the shipped mosaic
(2018 model): 500 class-balanced points of its left three columns pick 0.001 (held-out
right column: overall accuracy 0.655 against 0.615 unadapted); 60 labels that agree
with the model pick the strongest pulls (agreement of the maps in the test)."""


@dataclass(frozen=True)
class AdaptOptions:
    """How to adapt.

    Attributes:
        l2: pull toward the original weights; ``None``: the value of :data:`L2_GRID`
            with the best cross-validated accuracy (the strongest on a tie).
        area_metric: measure the pull as the change of the logits over the extent
            (:func:`~.fit.pull_metric`); False: the plain distance of the weights.
        balanced: class-balanced label weights.
        prior_shift: shift the biases for the area's class shares (see :mod:`.fit`).
        area_shares: {class value: share of the area}, when known; ``None``: measured
            on the unadapted model's map of the extent.
        folds: cross-validation folds (fewer when a class has fewer labels).
        device: ONNX Runtime device (``auto``, ``cpu``, ...).
        input_range: the layer's value range to rescale from (as in classify).
        seed: the folds' random order.
    """

    l2: float | None = None
    area_metric: bool = False
    balanced: bool = True
    prior_shift: bool = True
    area_shares: Mapping[int, float] | None = None
    folds: int = CV_FOLDS
    device: str = "auto"
    input_range: tuple[float, float] | None = None
    seed: int = 0


@dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt_model` did.

    Attributes:
        output: the adapted model file.
        labels_per_class: {class value: labels used}.
        class_names: {class value: name}.
        cross_validation: k-fold agreement with the labels (confusion matrix rows =
            label, columns = prediction, in ``class_values`` order).
        class_values: the class values of the confusion matrix's rows / columns.
        area_shares: {class value: share} the prior shift aims at (empty without): the
            user's, else the unadapted head's mean probabilities over the extent.
        map_shares: {class value: share} of the unadapted model's map (argmax) over
            the sampled tiles of the extent.
        prior_shift: {class value: bias shift}.
        l2: the pull used (given, or chosen by cross-validation).
        fit: the fitted head (score channels).
        cells, cell_size: model windows read and their output side.
        seconds: total; feature_seconds: reading and running the model.
    """

    output: Path
    labels_per_class: dict[int, int]
    class_names: dict[int, str]
    cross_validation: CrossValidation
    class_values: tuple[int, ...]
    area_shares: dict[int, float]
    map_shares: dict[int, float]
    prior_shift: dict[int, float]
    l2: float
    fit: FittedHead
    cells: int
    cell_size: int
    seconds: float
    feature_seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def labels_used(self) -> int:
        return sum(self.labels_per_class.values())

    @property
    def cv_accuracy(self) -> float:
        return self.cross_validation.accuracy


def label_channels(values: Sequence[object], contract: ModelContract) -> np.ndarray:
    """The score channel of each label, given as a class value (``3``, ``"3"``) or a
    class name (``"low vegetation"``, any case).

    Raises:
        InputError: unknown values, naming them and the model's classes.
    """
    by_value = {contract.class_values[c]: c for c in contract.class_channels}
    by_name = {contract.class_names[c].strip().lower(): c for c in contract.class_channels}
    channels, unknown = [], []
    for value in values:
        channel = None
        text = str(value).strip()
        try:
            number = float(text)
            if number.is_integer():
                channel = by_value.get(int(number))
        except ValueError:
            channel = by_name.get(text.lower())
        if channel is None:
            unknown.append(value)
            channel = -1
        channels.append(channel)
    if unknown:
        known = ", ".join(f"{contract.class_values[c]} ({contract.class_names[c]})"
                          for c in contract.class_channels)  # fmt: skip
        shown = sorted({str(u) for u in unknown})[:5]
        raise InputError(
            f"{len(unknown)} labels have class values the model does not know "
            f"({', '.join(repr(s) for s in shown)}); its classes are {known}."
        )
    return np.asarray(channels, np.int64)


def _check_counts(targets: np.ndarray, contract: ModelContract) -> dict[int, int]:
    counts = {int(c): int(n) for c, n in zip(*np.unique(targets, return_counts=True), strict=True)}
    if len(counts) < 2:
        only = next(iter(counts))
        raise InputError(
            f"All labels are {contract.class_names[only]} ({contract.class_values[only]}): "
            "adaptation needs labels of at least two classes (the fit compares classes)."
        )
    few = {c: n for c, n in counts.items() if n < MIN_LABELS_PER_CLASS}
    if few:
        listed = ", ".join(f"{contract.class_names[c]} ({contract.class_values[c]}): {n}"
                           for c, n in few.items())  # fmt: skip
        raise InputError(
            f"Too few labels for {listed}: each labelled class needs at least "
            f"{MIN_LABELS_PER_CLASS} (add labels or remove those)."
        )
    return counts


def _model_card(
    contract: ModelContract,
    source_name: str,
    source_sha: str,
    counts: dict[int, int],
    validation: CrossValidation,
    extent_text: str,
    options: AdaptOptions,
    shift: dict[int, float],
    l2: float,
) -> str:
    values = contract.class_values
    rows = "\n".join(
        f"| {values[c]} | {contract.class_names[c]} | {counts.get(c, 0)} | "
        f"{shift.get(c, 0.0):+.3f} |"
        for c in contract.class_channels
    )
    section = (
        "## Local adaptation\n\n"
        f"Adapted from `{source_name}` (SHA-256 `{source_sha}`) by `landcover:adapt_model`: "
        "its last layer re-fitted on its own features at labelled pixels (multinomial "
        f"logistic regression, L2 pull {l2:g} toward the original weights, "
        f"{'class-balanced' if options.balanced else 'unweighted'}; classes without "
        "labels keep their weights).\n\n"
        f"Where: {extent_text}.\n\n"
        "| value | class | labels | prior shift of the bias |\n|---|---|---|---|\n"
        f"{rows}\n\n"
        f"Cross-validated accuracy on the labels ({validation.folds} folds): "
        f"**{validation.accuracy:.3f}** (the original model on the same labels: "
        f"{validation.original_accuracy:.3f}). The labels are not a random sample of the "
        "area: this is not the map's accuracy.\n"
    )
    original = contract.model_card.rstrip()
    return f"{section}\n{original}\n" if original else section


def adapt_model(
    source: ImageSource,
    model: str | os.PathLike[str] | ModelSession,
    labels: LabelPoints,
    output: str | os.PathLike[str],
    *,
    extent: Extent | None = None,
    bands: Sequence[int] | None = None,
    options: AdaptOptions | None = None,
    progress: Progress | None = None,
) -> AdaptResult:
    """Adapt ``model`` to ``source`` from ``labels`` and write it to ``output``.

    Args:
        source: the imagery the labels lie on.
        model: a local ONNX file (or its loaded session) with a features output.
        labels: points with class values or names (:class:`~.features.LabelPoints`).
        output: the adapted model (.onnx), written atomically; never one of the inputs.
        extent: the area the model is adapted for (its map's class shares; the labels
            must lie in it); ``None``: all of ``source``.

    Raises:
        InputError / ModelContractError: bad input, with a message for the user
            (nothing written); CancelledError: cancelled (nothing written).
    """
    options = options or AdaptOptions()
    progress = progress or NullProgress()
    started = time.perf_counter()
    output_path = Path(output)
    if output_path.suffix.lower() != ".onnx":
        raise InputError(f"The adapted model must be an .onnx file, got {output_path.name}.")
    model_path = model.path if isinstance(model, ModelSession) else Path(model)
    check_outputs(
        [Input("the input raster", source.data_source), Input("the model", model_path)],
        [Output("the adapted model", output_path)],
    )
    session = (
        model if isinstance(model, ModelSession) else load_session(model, options.device, progress)
    )
    contract = session.contract
    description = require_features(session)
    if len(labels) == 0:
        raise InputError("The label layer has no labels.")
    targets = label_channels(list(labels.values), contract)
    counts = _check_counts(targets, contract)
    layout, model_input = plan_reading(
        source,
        session,
        extent=extent,
        bands=bands,
        input_range=options.input_range,
        progress=progress,
    )
    pixels = label_pixels(labels, layout)
    labelled = extract_features(session, layout, model_input, pixels, progress)
    check_cancelled(progress)
    channels = contract.class_channels
    weights = read_initializers(session.path, [description.weight, description.bias])
    head = Head(
        weights[description.weight],
        weights[description.bias],
        description.activation,
        description.head_channels,
    )
    rows = head.rows
    head_rows_weight = head.flat_weight[rows].astype(np.float64)
    head_rows_bias = head.bias[rows].astype(np.float64)
    progress.info("Running the unadapted model over a sample of the extent's tiles.")
    area = sample_area(session, layout, model_input, seed=options.seed, progress=progress)
    if not options.prior_shift:
        shares = {}
    elif options.area_shares is not None:
        by_value = {contract.class_values[c]: c for c in channels}
        shares = {by_value[int(v)]: float(s) for v, s in options.area_shares.items()
                  if int(v) in by_value}  # fmt: skip
    else:
        # The unadapted head's own mean probabilities over the area: the same measure
        # as the shares the fitted head implies (fit.implied_shares), so that a fit
        # that stays at the original is not shifted at all.
        shares = softmax_shares(area.neighbourhood, head_rows_weight, head_rows_bias, channels)
    problem = FitProblem(
        labelled.neighbourhood,
        targets,
        head.flat_weight[rows],
        head.bias[rows],
        channels,
        area.neighbourhood,
        options.area_metric,
    )
    fit_options = {
        "balanced": options.balanced,
        "area_shares": shares if options.prior_shift else None,
    }
    folds = max(2, min(options.folds, min(counts.values())))
    candidates = L2_GRID if options.l2 is None else (options.l2,)
    progress.info(
        f"Cross-validating the fit on {len(targets)} labels ({folds} folds, L2 pull "
        f"{', '.join(f'{c:g}' for c in candidates)})."
    )
    validation, l2 = None, candidates[0]
    for candidate in candidates:  # strongest pull first: ties keep the closest model
        check_cancelled(progress)
        tried = cross_validate(
            problem, labelled.scores, folds=folds, seed=options.seed, l2=candidate, **fit_options
        )
        progress.info(f"L2 pull {candidate:g}: cross-validated accuracy {tried.accuracy:.3f}")
        if validation is None or tried.accuracy > validation.accuracy:
            validation, l2 = tried, candidate
    if validation is None:  # candidates is never empty; a check, not an assert (B101)
        raise InputError("No L2 pull to cross-validate: the candidate list is empty.")
    fitted = fit_head(problem, l2=l2, **fit_options)  # type: ignore[arg-type]
    check_cancelled(progress)
    new_flat, new_bias = head.flat_weight.astype(np.float64), head.bias.astype(np.float64)
    new_flat[rows] = fitted.weight
    new_bias[rows] = fitted.bias
    adapted = head.with_flat(new_flat, new_bias)
    source_sha = file_sha256(session.path)
    values = contract.class_values
    extent_text = (
        f"{list(extent.bounds)} in {'the raster CRS' if not extent.crs_wkt else 'its CRS'}"
        if extent is not None
        else f"all of {Path(source.data_source).name}"
    )
    grid = layout.output_grid
    where = {
        "bounds": list(grid.bounds),
        "crs_wkt": grid.crs_wkt,
        "description": extent_text,
    }
    provenance = {
        **contract.provenance,
        "adapted_from": {
            "name": contract.name or session.path.stem,
            "sha256": source_sha,
            "file": session.path.name,
        },
        "adaptation": {
            "method": "head re-fitted on the model's features (landcover:adapt_model)",
            "labels_per_class": {str(values[c]): n for c, n in sorted(counts.items())},
            "area": where,
            "cv_accuracy": validation.accuracy,
            "cv_folds": validation.folds,
            "original_accuracy_on_labels": validation.original_accuracy,
            "l2": l2,
            "class_balanced": options.balanced,
            "area_shares": {str(values[c]): s for c, s in sorted(shares.items())},
            "prior_shift": {str(values[c]): s for c, s in sorted(fitted.prior_shift.items())},
        },
    }
    name = f"{contract.name or session.path.stem}-adapted"
    card = _model_card(
        contract, session.path.name, source_sha, counts, validation, extent_text, options,
        fitted.prior_shift, l2,
    )  # fmt: skip
    metadata = {
        "name": json.dumps(name),
        "description": json.dumps(
            f"{contract.description} Adapted to {extent_text} from "
            f"{sum(counts.values())} labelled points (landcover:adapt_model)."
        ),
        "model_card": json.dumps(card),
        "provenance": json.dumps(provenance),
    }
    write_model_with(
        session.path,
        output_path,
        {description.weight: adapted.weight, description.bias: adapted.bias},
        metadata,
    )
    read_contract(output_path)  # the written file is a valid model (else it raises)
    progress.set_progress(100.0)
    return AdaptResult(
        output=output_path,
        labels_per_class={values[c]: n for c, n in sorted(counts.items())},
        class_names={values[c]: contract.class_names[c] for c in channels},
        cross_validation=validation,
        class_values=tuple(values[c] for c in channels),
        area_shares={values[c]: s for c, s in sorted(shares.items())},
        map_shares={values[c]: s for c, s in sorted(area.shares.items())},
        prior_shift={values[c]: s for c, s in sorted(fitted.prior_shift.items())},
        l2=l2,
        fit=fitted,
        cells=labelled.cells,
        cell_size=labelled.cell_size,
        seconds=time.perf_counter() - started,
        feature_seconds=labelled.seconds,
    )
