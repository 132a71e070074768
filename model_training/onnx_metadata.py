# SPDX-License-Identifier: GPL-2.0-or-later
"""Writing the model contract into an ONNX file's ``metadata_props``, with the ``onnx``
package (a training-side dependency; the plugin reads the contract with ONNX Runtime,
:func:`qgis_landcover.core.models.contract.read_contract`).
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from qgis_landcover.core.models.contract import ModelContract


def write_metadata(path: str | os.PathLike[str], contract: ModelContract) -> None:
    """Store ``contract`` in the ONNX file's ``metadata_props`` (replacing the keys it
    writes, keeping others). Uses the ``onnx`` package: a training-side dependency."""
    model = onnx.load(os.fspath(path))
    props = contract.to_metadata_props()
    kept = [p for p in model.metadata_props if p.key not in props]
    del model.metadata_props[:]
    for prop in kept:
        model.metadata_props.append(prop)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    temporary = Path(f"{os.fspath(path)}.tmp")
    onnx.save(model, os.fspath(temporary))
    os.replace(temporary, path)
