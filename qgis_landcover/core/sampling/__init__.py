# SPDX-License-Identifier: GPL-2.0-or-later
"""Where to look: stratified random sample designs for accuracy assessment
(:mod:`.design`, Olofsson et al. 2014) and the points a model is least sure of, for a
user to label before adapting the model (:mod:`.uncertainty`).
"""
