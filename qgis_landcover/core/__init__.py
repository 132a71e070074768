# SPDX-License-Identifier: GPL-2.0-or-later
"""QGIS-free core of qgis-landcover: numpy, GDAL (``osgeo.gdal``) and ONNX Runtime only.

Nothing under this package may import ``qgis`` or ``torch`` (a test enforces it): the
Processing algorithms, ``model_training`` and the benchmarks all use this one
implementation of tiling, metrics and the model contract.
"""
