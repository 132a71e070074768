# SPDX-License-Identifier: GPL-2.0-or-later
"""What a model is and where it comes from: the model contract (the ONNX metadata a
model carries about itself), the catalogue of named models, and their download.
"""
