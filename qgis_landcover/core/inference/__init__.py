# SPDX-License-Identifier: GPL-2.0-or-later
"""Running a model over imagery: one :func:`~.classify.classify` for any image source
(``image_source.py``; GDAL rasters in ``gdal_source.py``), mapping the image's bands to
the model's (``band_mapping.py``), planning the grid the model runs on
(``model_grid.py``), sizing tiles, batches and memory (``planning.py``), reading and
normalising its input (``model_input.py``, ``normalization.py``), tile plans
(``tile_plan.py``) and blending (``blending.py``), the ONNX Runtime session
(``session.py``), the threaded pipeline (``pipeline.py``) and the classified outputs
(``classified_output.py``).
"""
