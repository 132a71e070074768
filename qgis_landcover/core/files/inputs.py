# SPDX-License-Identifier: GPL-2.0-or-later
"""The files an algorithm reads, so that none of its outputs is ever written over one.

An input reads more files than the path it is given:

- a VRT reads its sources, and a source may itself be a VRT (read recursively);
  ``relativeToVRT`` names are relative to the folder of the VRT (of the file a symlinked
  VRT points to, as GDAL resolves it);
- a QGIS layer URI (``points.gpkg|layername=x``), a GDAL connection string
  (``GPKG:points.gpkg:table``, ``NETCDF:"file.nc":var``), a ``vrt://`` or ``file://``
  URL, or an archive path (``/vsizip/archive.zip/inner.tif``) reads one local file;
- GDAL, QGIS and SQLite keep files beside it that belong to it: ``.aux.xml``
  (metadata and statistics), ``.ovr`` (overviews), ``.msk`` (mask), ``.qml`` (the QGIS
  style), GeoPackage / SQLite ``-wal`` / ``-shm`` / ``-journal``, the parts of a
  shapefile (``.shp``, ``.shx``, ``.dbf``, ``.prj``, ``.cpg``, ...), and whatever else
  GDAL lists for the dataset (world files, ENVI headers, ...).

Writing over any of them destroys or silently changes the input, so
:func:`check_outputs` refuses an output that is, or writes beside it, one of these files.
Paths are compared both as named (``..`` and the working folder resolved; an output that
names a symlink replaces the link) and as real paths (symlinks resolved), and with
``os.path.samefile`` when both exist (hard links, case-insensitive file systems).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

# A VRT is the user's own file, read only to list its sources; Python's expat (2.4.1+)
# limits entity expansion and ElementTree never fetches external entities or DTDs, so
# the attacks defusedxml guards against do not apply (and no new dependency is needed).
from xml.etree import ElementTree  # nosec B405

from osgeo import gdal

from ..errors import OverwriteError

gdal.UseExceptions()

GDAL_SIDECARS = {
    ".aux.xml": "the metadata / statistics file of",
    ".ovr": "the overviews of",
    ".msk": "the mask of",
}
"""Files GDAL keeps beside a dataset, named ``<file name><suffix>``."""
STYLE_SUFFIX = ".qml"
"""The QGIS style loaded with a layer: ``<name without extension>.qml``."""
SQLITE_EXTENSIONS = {".gpkg", ".gpkx", ".sqlite", ".db", ".mbtiles", ".spatialite"}
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qpj")
NOT_GDAL_EXTENSIONS = {".json", ".csv", ".onnx", ".md", ".txt", ".html", ".qml", ".xml"}
"""Inputs read as plain files (models, catalogues, remap tables): not opened with GDAL."""
VRT_FILE_ELEMENTS = ("SourceFilename", "SourceDataset")
"""VRT elements that name a file: band sources, overviews, pansharpening inputs
(``SourceFilename``), the source of a warped VRT (``SourceDataset``)."""
ARCHIVE_PREFIXES = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")
_CONNECTION = re.compile(r"^([A-Za-z][A-Za-z0-9_]+):(.*)$", re.DOTALL)
"""``DRIVER:rest`` GDAL connection strings (a one-letter prefix is a Windows drive)."""
_MAX_VRT_DEPTH = 32


@dataclass(frozen=True)
class InputFile:
    """One file an input reads.

    Attributes:
        path: the file, absolute (``..`` resolved, symlinks kept).
        relation: how the input reads it, for messages: ``""`` for the file named by
            the input, else e.g. ``"a source of /data/mosaic.vrt"``.
    """

    path: Path
    relation: str = ""


@dataclass(frozen=True)
class Input:
    """An input of an algorithm: ``name`` says it in messages (e.g. ``'REFERENCE
    "Reference raster"'``); ``source`` is a path, URI or connection string, or ``None``."""

    name: str
    source: str | os.PathLike[str] | None


@dataclass(frozen=True)
class Output:
    """An output of an algorithm, named for messages; ``raster`` outputs are GeoTIFFs
    written through GDAL with a QGIS style, so they also write ``.aux.xml``, ``.ovr``,
    ``.msk`` and ``.qml`` files beside them."""

    name: str
    path: str | os.PathLike[str] | None
    raster: bool = False


def _absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute with ``..`` resolved textually (symlinks kept)."""
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def local_file(source: str | os.PathLike[str]) -> Path | None:
    """The local file that a data source string reads, or ``None`` for sources without
    one (remote URLs, ``/vsimem/``, databases, inline VRT XML, memory layers).

    The result is absolute but not checked for existence.
    """
    text = os.fspath(source).strip()
    if not text or text.startswith("<"):
        return None
    text = text.split("|", 1)[0]  # QGIS layer URI options: |layername=, |layerid=, ...
    lower = text.lower()
    if lower.startswith("file://"):
        text = unquote(urlsplit(text).path)
    elif lower.startswith("vrt://"):
        text = text[len("vrt://") :].split("?", 1)[0]
    if text.startswith("/vsi"):
        return _vsi_file(text)
    if "://" in text:
        return None  # http://, https://, s3://, ...
    match = _CONNECTION.match(text)
    if match is not None and not Path(text).exists():  # GDAL, too, opens a file first
        return _connection_file(match.group(2))
    return _absolute(text)


def _vsi_file(text: str) -> Path | None:
    """The local file behind a GDAL virtual path: the archive of ``/vsizip/`` & co.,
    the file of ``/vsisubfile/``; ``None`` for network and memory file systems."""
    for prefix in ARCHIVE_PREFIXES:
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            if rest.startswith("{") and "}" in rest:
                return local_file(rest[1 : rest.index("}")])
            if rest.startswith("/vsi"):
                return local_file(rest)
            candidate = _absolute(rest)
            for path in (candidate, *candidate.parents):
                if path.is_file():
                    return path
            return candidate
    if text.startswith("/vsisubfile/") and "," in text:
        return local_file(text.split(",", 1)[1])
    return None


def _connection_file(rest: str) -> Path | None:
    """The file inside the part after ``DRIVER:`` of a GDAL connection string:
    ``"quoted"``, or the ``:``-separated run of fields that is an existing file
    (``GPKG:/a/b.gpkg:table``, ``NITF_IM:0:/a/b.ntf``, ``GTIFF_DIR:1:/a/b.tif``)."""
    if rest.startswith('"') and '"' in rest[1:]:
        return local_file(rest[1 : rest.index('"', 1)])
    fields = rest.split(":")
    for start in range(len(fields)):
        for end in range(len(fields), start, -1):
            candidate = ":".join(fields[start:end])
            if candidate and (candidate.startswith("/vsi") or Path(candidate).is_file()):
                return local_file(candidate)
    return None  # no local file: a database, a server, or a file that does not exist


def sidecars(path: Path) -> list[InputFile]:
    """The files GDAL, QGIS and SQLite keep beside ``path`` (existing or not: writing
    one that does not exist yet changes how the input is read, e.g. a ``.qml`` style or
    an ``.aux.xml`` nodata value)."""
    files = [
        InputFile(Path(f"{path}{suffix}"), f"{what} {path}")
        for suffix, what in GDAL_SIDECARS.items()
    ]
    files.append(InputFile(path.with_suffix(STYLE_SUFFIX), f"the QGIS style of {path}"))
    extension = path.suffix.lower()
    if extension in SQLITE_EXTENSIONS:
        files += [
            InputFile(Path(f"{path}{suffix}"), f"the SQLite journal of {path}")
            for suffix in SQLITE_SIDECARS
        ]
    if extension in SHAPEFILE_PARTS[:3]:
        files += [
            InputFile(path.with_suffix(part), f"a part of the shapefile {path.with_suffix('.shp')}")
            for part in SHAPEFILE_PARTS
            if part != extension
        ]
    return files


def files_read(source: str | os.PathLike[str] | None) -> list[InputFile]:
    """Every file that reading ``source`` reads or that belongs to it: the file itself,
    a VRT's sources (recursively), and the sidecars of each. Empty for sources without
    a local file and for files that do not exist."""
    if source is None:
        return []
    found: dict[Path, InputFile] = {}
    _collect(os.fspath(source), "", found, set(), depth=0)
    return list(found.values())


def _collect(
    source: str, relation: str, found: dict[Path, InputFile], visited: set[str], depth: int
) -> None:
    """Add the files of ``source`` to ``found`` (first relation wins), recursing into
    VRT sources; ``visited`` (real paths) stops cycles."""
    if source.lstrip().startswith("<VRTDataset"):  # inline VRT XML
        for name in _vrt_sources(source, os.getcwd()):
            _collect(name, "a source of an inline VRT", found, visited, depth + 1)
        return
    path = local_file(source)
    if path is None or not path.exists():
        return
    identity = os.path.realpath(source if source.startswith("/vsi") else path)
    if identity in visited:
        return
    visited.add(identity)
    found[path] = InputFile(path, relation)  # replaces a sidecar entry: it is read
    for sidecar in sidecars(path):
        found.setdefault(sidecar.path, sidecar)
    if depth < _MAX_VRT_DEPTH and _is_vrt(source, path):
        if source.startswith("/vsi"):
            text, base = _read_text(source.split("|", 1)[0]), os.path.dirname(source)
        else:
            # GDAL resolves relativeToVRT names from the folder of the real VRT file.
            text, base = _read_text(os.fspath(path)), os.path.dirname(os.path.realpath(path))
        for name in _vrt_sources(text, base):
            _collect(name, f"a source of {path}", found, visited, depth + 1)
    for extra in _gdal_file_list(source, path):
        found.setdefault(extra, InputFile(extra, f"a file GDAL reads with {path}"))


def _is_vrt(source: str, path: Path) -> bool:
    if path.suffix.lower() == ".vrt" or source.split("|", 1)[0].lower().endswith(".vrt"):
        return True
    if not path.is_file():
        return False
    with path.open("rb") as stream:
        head = stream.read(256).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<VRTDataset")


def _read_text(name: str) -> str:
    """A whole (small) file as text, through GDAL's virtual file systems when needed."""
    if not name.startswith("/vsi"):
        return Path(name).read_text(encoding="utf-8", errors="replace")
    handle = gdal.VSIFOpenL(name, "rb")
    if handle is None:
        return ""
    try:
        chunks = []
        while chunk := gdal.VSIFReadL(1, 1 << 20, handle):
            chunks.append(chunk)
    finally:
        gdal.VSIFCloseL(handle)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _vrt_sources(text: str, base: str) -> list[str]:
    """The data source names a VRT reads, ``relativeToVRT`` ones joined to ``base``."""
    try:
        # Safe with expat 2.4.1+ and no external entities: see the import's comment.
        root = ElementTree.fromstring(text)  # nosec B314
    except ElementTree.ParseError:
        return []  # GDAL will refuse it as well; nothing more is read
    names = []
    for element in root.iter():
        if element.tag not in VRT_FILE_ELEMENTS or not (element.text or "").strip():
            continue
        name = element.text.strip()
        relative = element.get("relativeToVRT", "0").strip().lower() in ("1", "true", "yes")
        if relative and not name.startswith("/vsi") and not os.path.isabs(name):
            name = (
                f"{base.rstrip('/')}/{name}"
                if base.startswith("/vsi")
                else os.path.join(base, name)
            )
        names.append(name)
    return names


@contextmanager
def _thread_config(key: str, value: str) -> Iterator[None]:
    """Set a GDAL configuration option for this thread only, restoring it after."""
    previous = gdal.GetThreadLocalConfigOption(key, None)
    gdal.SetThreadLocalConfigOption(key, value)
    try:
        yield
    finally:
        gdal.SetThreadLocalConfigOption(key, previous)


def _gdal_file_list(source: str, path: Path) -> list[Path]:
    """The files GDAL lists for the dataset (world files, headers, sidecars, a VRT's
    direct sources); empty when GDAL cannot open it. Opened read-only without PAM, so
    nothing is written back."""
    if path.suffix.lower() in NOT_GDAL_EXTENSIONS | SQLITE_EXTENSIONS or not path.is_file():
        return []
    name = source if source.startswith("/vsi") or _CONNECTION.match(source) else os.fspath(path)
    with _thread_config("GDAL_PAM_ENABLED", "NO"), suppress(RuntimeError):
        dataset = gdal.OpenEx(name.split("|", 1)[0], gdal.OF_READONLY | gdal.OF_RASTER)
        if dataset is not None:
            listed = dataset.GetFileList() or []
            dataset = None
            return [p for p in (local_file(item) for item in listed) if p is not None]
    return []


def output_files(output: Output) -> list[Path]:
    """The files writing ``output`` creates or replaces: the file and, for rasters,
    GDAL's sidecars and the ``.qml`` style beside it."""
    if not output.path:
        return []
    path = _absolute(output.path)
    if not output.raster:
        return [path]
    return [
        path,
        *(Path(f"{path}{suffix}") for suffix in GDAL_SIDECARS),
        path.with_suffix(STYLE_SUFFIX),
    ]


def _keys(path: Path) -> set[str]:
    """Both identities of ``path``: as named, and with symlinks resolved."""
    return {os.path.normpath(path), os.path.realpath(path)}


def _same_existing(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(inputs: Iterable[Input], outputs: Iterable[Output]) -> None:
    """Refuse outputs that would overwrite a file an input reads (or that belongs to
    it), and outputs that would overwrite each other.

    Call it before any output is opened for writing.

    Raises:
        OverwriteError: naming the output, the file and the input that reads it.
    """
    read: dict[str, tuple[InputFile, str]] = {}
    existing: list[tuple[InputFile, str]] = []
    for item in inputs:
        for file in files_read(item.source):
            for key in _keys(file.path):
                read.setdefault(key, (file, item.name))
            if file.path.exists():
                existing.append((file, item.name))
    written: dict[str, tuple[Path, Output]] = {}
    for output in outputs:
        main = _absolute(output.path) if output.path else None
        for path in output_files(output):
            hit = next((read[k] for k in _keys(path) if k in read), None)
            if hit is None:
                hit = next((f for f in existing if _same_existing(path, f[0].path)), None)
            if hit is not None:
                raise OverwriteError(_overwrite_message(output, main, path, *hit))
            for key in _keys(path):
                other = written.get(key)
                if other is not None and other[1] is not output:
                    raise OverwriteError(
                        f"{_capital(output.name)} and {other[1].name} would both write "
                        f"{path}; choose different files. Nothing was written."
                    )
                written[key] = (path, output)


def _overwrite_message(
    output: Output, main: Path | None, path: Path, file: InputFile, input_name: str
) -> str:
    what = f"{path}" if path == main else f"{path}, written beside {main}"
    if os.path.normpath(file.path) != os.path.normpath(path):
        what += f" (the same file as {file.path})"
    relation = f" ({file.relation})" if file.relation else ""
    return (
        f"{_capital(output.name)} would overwrite {what}{relation}, a file that "
        f"{input_name} reads. Choose another file; nothing was written."
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
