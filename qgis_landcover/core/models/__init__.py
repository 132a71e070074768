# SPDX-License-Identifier: GPL-2.0-or-later
"""What a model is and where it comes from: the model contract (the ONNX metadata a
model carries about itself), every check a model passes (``validation.py``), the
catalogue of named models, the one resolution of a ``MODEL`` value into a verified
local file (``resolve.py``), and downloads.
"""
