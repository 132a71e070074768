# SPDX-License-Identifier: GPL-2.0-or-later
"""The job's manifest: a GeoPackage with one polygon feature per chunk.

Fields: chunk id, footprint (the chunk's bounds, mosaic CRS), status (``done`` /
``failed``), pixels, seconds, error, input fingerprint, model SHA-256, parameters JSON,
class counts and areas JSON, time. Only the driver process writes it (workers return
results), after each result, so an interrupted job knows what is done. A chunk is
skipped on resume only when it is ``done`` with the same fingerprint, model and
parameters and its GeoTIFF exists; anything else is redone.
"""

from __future__ import annotations
