# SPDX-License-Identifier: GPL-2.0-or-later
"""Local adaptation: re-fit a model's final layer (its head) on its own penultimate
features at a few labelled pixels, numpy only (no PyTorch), and write the adapted
model as a new ONNX file with the same graph and contract."""
