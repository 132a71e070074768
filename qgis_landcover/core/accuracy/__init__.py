# SPDX-License-Identifier: GPL-2.0-or-later
"""Measuring agreement with reference data: confusion matrices counted block by block,
class remaps, accuracy statistics (overall accuracy, kappa, IoU, disagreement),
area-adjusted estimates from samples, and the HTML / JSON / CSV reports.
"""
