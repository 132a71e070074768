# SPDX-License-Identifier: GPL-2.0-or-later
"""The many-tiles job without QGIS: ``python -m qgis_landcover.tiles classify ...``
(:mod:`.__main__`), for clusters and scripts. The job itself is
:mod:`qgis_landcover.core.tiles`; this package only parses the command line, shows a
progress bar and picks the executor (local processes, or a Dask scheduler)."""
