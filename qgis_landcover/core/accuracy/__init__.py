# SPDX-License-Identifier: GPL-2.0-or-later
"""Measuring agreement with reference data: confusion matrices counted block by block
(raw values as dense codes, turned into classes by remap, nodata and ignore rules),
class remaps, accuracy statistics (overall accuracy, kappa, IoU, disagreement) as typed
results, area-adjusted estimates from samples, and the HTML / JSON / CSV reports.
"""
