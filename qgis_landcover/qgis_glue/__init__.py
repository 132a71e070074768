# SPDX-License-Identifier: GPL-2.0-or-later
"""The QGIS side of the plugin that every algorithm shares: parameters read into what
the core takes (extents to bounds, optional outputs, raster inputs), QGIS feedback as
the core's ``Progress``, the plugin's ``landcover/...`` settings, QGIS's proxy, the
model resolution with those settings, layers as the core's image sources, and the
styling of outputs as QGIS loads them.

Layering (``tests/test_layering.py`` enforces it): ``algorithms`` use ``qgis_glue`` and
``core``; ``qgis_glue`` uses ``core`` and never an algorithm; ``core`` uses neither.
"""
