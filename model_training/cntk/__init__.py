# SPDX-License-Identifier: GPL-2.0-or-later
"""The 2018 Azure land-cover model, converted from its CNTK v2 file without CNTK: the
file's protobuf graph, the network rebuilt in PyTorch from it, and the conversion to
an ONNX model with the plugin's contract (``python -m model_training.cntk.convert``).
"""
