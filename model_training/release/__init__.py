# SPDX-License-Identifier: GPL-2.0-or-later
"""Release tooling: the model contract and model card every exported model carries
(``contract``, ``model_card``), comparing models on held-out pixels through the plugin
(``evaluate_models``), shipping an evaluated model with its card into the plugin
(``ship``), the evaluation reports they use and the script that reproduces them.
"""
