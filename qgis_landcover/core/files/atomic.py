# SPDX-License-Identifier: GPL-2.0-or-later
"""Outputs written atomically: a file is written under a temporary name beside its
destination and renamed onto it only when complete, so a failed or cancelled run never
leaves a partial file (rasters, reports and the model catalogue alike).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InputError
from .temporary import SIDECARS, registered_temporary, remove_with_sidecars


def check_output_path(destination: str | os.PathLike[str]) -> Path:
    """Raise :class:`InputError` saying why no file can be written at ``destination``
    (it is a folder; its folder is missing, or a file; the folder refuses new files);
    return the folder.

    Permissions alone do not tell: root may write anywhere, and special or read-only
    file systems (``/proc``, a read-only mount) refuse files all the same. So a hidden
    file is created in the folder and deleted at once.
    """
    target = Path(destination)
    if target.is_dir():
        raise InputError(f"The output {target} is a folder: give a file name.")
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        ancestor = directory
        while not ancestor.exists() and ancestor.parent != ancestor:
            ancestor = ancestor.parent
        if ancestor.exists() and not ancestor.is_dir():
            raise InputError(f"Cannot write {target}: {ancestor} is a file, not a folder.")
        raise InputError(f"The output folder does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise InputError(f"The output folder is not writable: {directory}")
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".landcover-probe-"):
            pass
    except OSError as error:
        raise InputError(
            f"Cannot create files in the output folder {directory} "
            f"({error.strerror or error}): choose another folder."
        ) from error
    return directory


@contextmanager
def atomic_output(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination`` (same suffix); on success it is
    renamed onto ``destination``, on any exception it is deleted.

    GDAL side-car files written next to the temporary file (``.aux.xml``, ``.ovr``,
    ``.msk``) are moved or removed with it. The path is created by the writer, named
    ``.<name>.<pid>-<n>.tmp-landcover<suffix>`` and registered in
    :mod:`.temporary`: a SIGTERM deletes it, and the next run writing the same
    destination deletes those that a killed process left behind.
    """
    target = Path(destination)
    directory = check_output_path(target)
    with registered_temporary(directory / target.name) as temporary:
        try:
            yield temporary
            if not temporary.exists():
                raise InputError(f"Nothing was written for {target}.")
            os.replace(temporary, target)
            for extension in SIDECARS:
                sidecar = Path(f"{temporary}{extension}")
                if sidecar.exists():
                    os.replace(sidecar, Path(f"{target}{extension}"))
        except BaseException:
            remove_with_sidecars(temporary)
            raise
