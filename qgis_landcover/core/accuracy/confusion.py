# SPDX-License-Identifier: GPL-2.0-or-later
"""Streaming confusion matrices over aligned integer blocks.

Rows are the classification (map, prediction), columns the reference, as in GRASS
``r.kappa`` and Olofsson et al. (2014). Feed blocks of any size with :meth:`update`;
the result does not depend on how the data was cut into blocks.

Each block costs one combined index and one ``np.bincount`` over the *raw* values
(:mod:`.value_codes`); remaps and ignore values are applied afterwards to the small
table of value pairs, so they cost nothing per pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..errors import LandcoverError
from .statistics import AgreementStatistics, accuracy_statistics
from .value_codes import ClassRule, ValueEncoder

IGNORED, AGREE, DISAGREE = 0, 1, 2
"""Pixel values of the agreement array returned by :meth:`ConfusionMatrix.update_agreement`."""


class ConfusionMatrix:
    """Accumulates a confusion matrix (rows = classification / prediction, columns =
    reference) from pairs of aligned integer arrays.

    Example (e.g. validation in training)::

        cm = ConfusionMatrix(classes=[1, 2, 3, 4], ignore_values=[0])
        for predicted, reference in batches:
            cm.update(predicted, reference)  # integer arrays of the same shape
        stats = cm.statistics()  # stats.overall_accuracy, stats.kappa.value, ...

    Args:
        classes: classes that always get a row and a column (others are added as they
            are seen).
        predicted: how raw classification values become classes (remap, nodata, ignore).
        reference: the same for the reference.
        ignore_values: class values ignored on both sides (after the remaps), added to
            the rules' own ignore values. A pixel is counted only when neither side is
            ignored.
    """

    def __init__(
        self,
        classes: Iterable[int] | None = None,
        *,
        predicted: ClassRule | None = None,
        reference: ClassRule | None = None,
        ignore_values: Iterable[int] = (),
    ) -> None:
        extra = frozenset(int(v) for v in ignore_values)
        predicted = predicted or ClassRule()
        reference = reference or ClassRule()
        self.predicted_rule = ClassRule(predicted.remap, predicted.nodata, predicted.ignore | extra)
        self.reference_rule = ClassRule(reference.remap, reference.nodata, reference.ignore | extra)
        self.fixed_classes = sorted({int(c) for c in classes or ()})
        self._predicted: ValueEncoder | None = None
        self._reference: ValueEncoder | None = None
        # Counts of (predicted code, reference code) pairs, grown as codes appear.
        self._table = np.zeros((0, 0), dtype=np.int64)
        # Class-pair counts merged in from other accumulators.
        self._extra: dict[tuple[int, int], int] = {}
        self._extra_ignored = 0
        self._dominant: int | None = None  # see _bincount

    # -- accumulation ---------------------------------------------------------------

    def update(self, predicted: np.ndarray, reference: np.ndarray) -> None:
        """Count the pixel pairs of two integer arrays of the same shape."""
        self._count(predicted, reference)

    def update_agreement(self, predicted: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Like :meth:`update`, and also return a uint8 array shaped like the inputs:
        :data:`AGREE`, :data:`DISAGREE`, or :data:`IGNORED` (either side ignored)."""
        index = self._count(predicted, reference)
        encoders = self._predicted, self._reference
        if encoders[0] is None or encoders[1] is None:  # _count sets both, always
            raise LandcoverError("internal error: the confusion matrix has no value encoders")
        p_class, p_ignored = self.predicted_rule.classify(encoders[0].values)
        r_class, r_ignored = self.reference_rule.classify(encoders[1].values)
        table = np.where(p_class[:, None] == r_class[None, :], AGREE, DISAGREE).astype(np.uint8)
        table[p_ignored, :] = IGNORED
        table[:, r_ignored] = IGNORED
        if isinstance(index, int):
            return np.full(np.shape(predicted), table.ravel()[index], dtype=np.uint8)
        return table.ravel()[index].reshape(np.shape(predicted))

    def merge(self, other: ConfusionMatrix) -> None:
        """Add the counts of ``other`` (e.g. from another worker or another tile).

        Both must use the same rules; ``other`` is summarised by class, so its rules
        have already been applied.
        """
        classes, matrix = other.classes, other.matrix
        for i, j in zip(*np.nonzero(matrix), strict=True):
            pair = (classes[i], classes[j])
            self._extra[pair] = self._extra.get(pair, 0) + int(matrix[i, j])
        self._extra_ignored += other.ignored
        self.fixed_classes = sorted(set(self.fixed_classes) | set(other.fixed_classes))

    def _count(self, predicted: np.ndarray, reference: np.ndarray) -> np.ndarray | int:
        """Add a block pair to the table; return each pixel's pair index (flat, into the
        table), or one int when every pixel is the same pair."""
        predicted, reference = np.asarray(predicted), np.asarray(reference)
        if predicted.shape != reference.shape:
            raise ValueError(
                f"classification and reference blocks differ in shape: "
                f"{predicted.shape} vs {reference.shape}"
            )
        if self._predicted is None or self._reference is None:
            self._predicted = ValueEncoder(predicted.dtype)
            self._reference = ValueEncoder(reference.dtype)
        pixels = predicted.size
        uniform = pixels > 0 and _constant(predicted) and _constant(reference)
        if uniform:
            # E.g. nodata on both sides outside a map's coverage: two min / max scans
            # instead of indexing and counting every pixel.
            predicted, reference = predicted.reshape(-1)[:1], reference.reshape(-1)[:1]
        p_codes = self._predicted.encode(predicted).ravel()
        r_codes = self._reference.encode(reference).ravel()
        rows, cols = self._predicted.size, self._reference.size
        if self._table.shape != (rows, cols):
            grown = np.zeros((rows, cols), dtype=np.int64)
            grown[: self._table.shape[0], : self._table.shape[1]] = self._table
            self._table = grown
        if uniform:
            self._table[int(p_codes[0]), int(r_codes[0])] += pixels
            return int(p_codes[0]) * cols + int(r_codes[0])
        if p_codes.dtype == np.uint8 and r_codes.dtype == np.uint8 and cols == 256:
            # Both sides are bytes: the pair fits a uint16, half the memory of intp.
            index = p_codes.astype(np.uint16)
            index <<= 8
            index |= r_codes
        else:
            index = p_codes.astype(np.intp)
            index *= cols
            index += r_codes
        self._table += self._bincount(index, rows * cols).reshape(rows, cols)
        return index

    def _bincount(self, index: np.ndarray, size: int) -> np.ndarray:
        """``np.bincount(index, minlength=size)``, faster when one pair dominates.

        Land-cover blocks are often mostly one pair (nodata outside the coverage, or a
        large agreeing class): when the previous block was, its dominant pair is
        counted with one comparison and only the other pixels go through ``bincount``.
        The result is exact whatever the data.
        """
        dominant = self._dominant
        if dominant is not None and dominant < size:
            others = index[index != dominant]
            counts = np.bincount(others, minlength=size)
            counts[dominant] += index.size - others.size
        else:
            counts = np.bincount(index, minlength=size)
        top = int(counts.argmax()) if counts.size else 0
        self._dominant = top if counts.size and counts[top] * 2 > index.size else None
        return counts

    # -- results ----------------------------------------------------------------------

    def _class_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """Counted (predicted class, reference class, count) triples and the number of
        ignored pixels, after remaps and ignore values."""
        p_list, r_list, n_list = [], [], []
        ignored = self._extra_ignored
        if self._predicted is not None and self._reference is not None and self._table.size:
            p_class, p_ignored = self.predicted_rule.classify(self._predicted.values)
            r_class, r_ignored = self.reference_rule.classify(self._reference.values)
            keep = ~p_ignored[:, None] & ~r_ignored[None, :] & (self._table > 0)
            rows, cols = np.nonzero(keep)
            p_list.append(p_class[rows])
            r_list.append(r_class[cols])
            n_list.append(self._table[rows, cols])
            ignored += int(self._table.sum() - self._table[rows, cols].sum())
        if self._extra:
            pairs = np.array(list(self._extra), dtype=np.int64).reshape(-1, 2)
            p_list.append(pairs[:, 0])
            r_list.append(pairs[:, 1])
            n_list.append(np.fromiter(self._extra.values(), np.int64, len(self._extra)))
        if not n_list:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, ignored
        return np.concatenate(p_list), np.concatenate(r_list), np.concatenate(n_list), ignored

    @property
    def classes(self) -> list[int]:
        """Class values of the rows and columns, ascending: the fixed classes and every
        class seen in a counted pixel on either side."""
        predicted, reference, _, _ = self._class_pairs()
        seen = set(predicted.tolist()) | set(reference.tolist())
        return sorted(seen | set(self.fixed_classes))

    @property
    def matrix(self) -> np.ndarray:
        """Counts, int64, shape (classes, classes): ``matrix[i, j]`` pixels of class
        ``classes[i]`` in the classification and ``classes[j]`` in the reference."""
        return self.aligned_matrix(self.classes)

    def aligned_matrix(self, classes: Sequence[int]) -> np.ndarray:
        """The matrix over ``classes`` (ascending); counts of other classes are dropped."""
        order = np.asarray(classes, dtype=np.int64)
        result = np.zeros((len(order), len(order)), dtype=np.int64)
        predicted, reference, counts, _ = self._class_pairs()
        if not len(order) or not len(counts):
            return result
        rows = np.clip(np.searchsorted(order, predicted), 0, len(order) - 1)
        cols = np.clip(np.searchsorted(order, reference), 0, len(order) - 1)
        inside = (order[rows] == predicted) & (order[cols] == reference)
        np.add.at(result, (rows[inside], cols[inside]), counts[inside])
        return result

    @property
    def ignored(self) -> int:
        """Pixels left out because either side was nodata or an ignore value."""
        return self._class_pairs()[3]

    @property
    def observations(self) -> int:
        """Pixels counted in the matrix."""
        return int(self._class_pairs()[2].sum())

    def statistics(self, class_names: Mapping[int, str] | None = None) -> AgreementStatistics:
        """Accuracy statistics of the matrix (:func:`.statistics.accuracy_statistics`)."""
        return accuracy_statistics(self.matrix, self.classes, class_names)


def _constant(array: np.ndarray) -> bool:
    """True when every element of ``array`` (not empty) is the same."""
    if not any(array.strides):  # a broadcast constant (see PackedTiffBand.read)
        return True
    return bool(array.min() == array.max())


class ClassCounts:
    """Streaming pixel counts per class of one integer raster (e.g. mapped areas).

    Args:
        rule: remap, nodata and ignore values applied to the raw values.
    """

    def __init__(self, rule: ClassRule | None = None) -> None:
        self.rule = rule or ClassRule()
        self._encoder: ValueEncoder | None = None
        self._counts = np.zeros(0, dtype=np.int64)

    def update(self, block: np.ndarray) -> None:
        """Count the pixels of an integer array of any shape."""
        block = np.asarray(block)
        if self._encoder is None:
            self._encoder = ValueEncoder(block.dtype)
        if block.size and _constant(block):
            code = int(self._encoder.encode(block.reshape(-1)[:1])[0])
            counts = np.zeros(self._encoder.size, dtype=np.int64)
            counts[code] = block.size
        else:
            codes = self._encoder.encode(block).ravel()
            counts = np.bincount(codes, minlength=self._encoder.size)
        if len(self._counts) < len(counts):
            self._counts = np.concatenate(
                [self._counts, np.zeros(len(counts) - len(self._counts), np.int64)]
            )
        self._counts += counts

    def counts(self) -> dict[int, int]:
        """Pixels per class (after the remap), ascending by class; ignored ones left out."""
        if self._encoder is None:
            return {}
        classes, ignored = self.rule.classify(self._encoder.values)
        result: dict[int, int] = {}
        for value, skip, count in zip(classes, ignored, self._counts, strict=True):
            if not skip and count:
                result[int(value)] = result.get(int(value), 0) + int(count)
        return dict(sorted(result.items()))

    @property
    def ignored(self) -> int:
        """Pixels that were nodata or an ignore value."""
        if self._encoder is None:
            return 0
        _, ignored = self.rule.classify(self._encoder.values)
        return int(self._counts[ignored].sum())
