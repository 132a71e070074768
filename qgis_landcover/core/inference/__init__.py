# SPDX-License-Identifier: GPL-2.0-or-later
"""Running a model over imagery: mapping the image's bands to the model's, planning the
grid the model runs on, reading and normalising its input, tiling with blended
overlaps, the ONNX Runtime session, the classified outputs, and the classify pipeline
that ties them together.
"""
