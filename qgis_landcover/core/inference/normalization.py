# SPDX-License-Identifier: GPL-2.0-or-later
"""The input normalisation a model's contract prescribes.

Raw pixel values ``x`` (e.g. NAIP digital numbers 0-255) become
``(x * input_scale - mean) / std`` per band, Deepness's order of operations
(scale to 0-1 first, then standardise). It is applied as one fused multiply-add,
``x * a + b`` with ``a = input_scale / std`` and ``b = -mean / std``.
"""

from __future__ import annotations

import numpy as np

from ..models.contract import ModelContract


class Normalizer:
    """Per-band affine normalisation of float32 arrays whose third-last axis is the band
    axis: (bands, rows, cols) or (N, bands, rows, cols)."""

    def __init__(self, contract: ModelContract) -> None:
        bands = contract.num_bands
        mean = np.broadcast_to(
            np.asarray(contract.standardization_mean or [0.0], dtype=np.float64), (bands,)
        )
        std = np.broadcast_to(
            np.asarray(contract.standardization_std or [1.0], dtype=np.float64), (bands,)
        )
        self.scale = (contract.input_scale / std).astype(np.float32).reshape(bands, 1, 1)
        self.offset = (-mean / std).astype(np.float32).reshape(bands, 1, 1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Normalise ``batch`` (float32, [N x] bands x rows x cols) in place; return it."""
        batch *= self.scale
        batch += self.offset
        return batch
