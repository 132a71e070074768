# SPDX-License-Identifier: GPL-2.0-or-later
"""Exceptions raised by the core.

Algorithms turn :class:`LandcoverError` into ``QgsProcessingException`` with the same
message, so every message here must make sense to a GIS user on its own.
"""

from __future__ import annotations


class LandcoverError(Exception):
    """Base class of every error the core raises on bad input or failed I/O."""


class InputError(LandcoverError, ValueError):
    """An input (raster, parameter string, file) is missing, malformed or unusable."""


class CancelledError(LandcoverError):
    """The caller asked to stop (e.g. the user pressed Cancel in QGIS)."""


class OverwriteError(InputError):
    """An output would overwrite a file that an input reads (or another output)."""


class ModelContractError(InputError):
    """A model's metadata (its contract) is missing, malformed or inconsistent, with
    itself or with the model's graph."""


class DownloadError(LandcoverError):
    """The download failed: network, HTTP status, size limit or a rejected file."""


class ChecksumError(DownloadError):
    """A file does not have the expected SHA-256 or size (a download, or a local model
    its catalogue entry pins)."""
