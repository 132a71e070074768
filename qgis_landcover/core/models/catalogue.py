# SPDX-License-Identifier: GPL-2.0-or-later
"""Model catalogues, the model cache, and :func:`resolve_model`.

A model is named by one string (the ``MODEL`` parameter of the algorithms):

- ``""``: the catalogue's default model, embedded in the plugin;
- a catalogue name, e.g. ``azure-2018-unet``;
- a local file path;
- an ``https://`` URL.

:func:`resolve_model` turns any of them into the path of a verified local ONNX file:
downloads go to the cache folder through :func:`~qgis_landcover.core.models.download.download_file`
(SHA-256, size, contract check, atomic rename), and a cached copy is re-used while its
SHA-256 matches.

Catalogue files are JSON (the plugin ships ``qgis_landcover/models/catalogue.json``)::

    {"format": "qgis-landcover-model-catalogue", "version": 1, "default": "name",
     "models": [{"name": "...", "description": "...",
                 "url": "https://..."  or  "file": "relative/to/the/catalogue.onnx",
                 "sha256": "64 hex digits or null", "size": bytes or null,
                 "classes": {"1": "water", ...}, "resolution": cm per pixel,
                 "bands": ["red", ...], "tile_size": pixels,
                 "licence": "...", "source": "https://..."}]}

or the Deepness plugin's model-zoo page (``MODEL_ZOO.md``, Markdown tables), whose
segmentation models are imported as they are: their ONNX metadata already follows the
contract's Deepness keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files.atomic import atomic_output
from ..files.checksum import file_sha256, normalize_sha256
from ..progress import NullProgress, Progress
from .contract import check_model_file, read_contract
from .download import ByteCallback, ChecksumError, DownloadOptions, check_url, download_file

CATALOGUE_FORMAT = "qgis-landcover-model-catalogue"
CATALOGUE_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
BUILTIN_CATALOGUE = MODELS_DIR / "catalogue.json"
CACHE_FOLDER_NAME = "qgis_landcover"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A URL scheme of two or more letters ("C:" is a Windows drive, not a scheme).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
# A Nextcloud public share page; appending /download gives the file itself.
_NEXTCLOUD_SHARE = re.compile(r"^https://[^/]+/(?:index\.php/)?s/[A-Za-z0-9]+/?$")


@dataclass(frozen=True)
class CatalogueEntry:
    """One model of a catalogue: exactly one of ``url`` and ``file`` is set.

    Attributes:
        name: the name users type (letters, digits, ``.``, ``_``, ``-``).
        description: one paragraph for people.
        url: where to download it (``https://``).
        file: absolute path of a local model (resolved against the catalogue's folder).
        sha256: expected SHA-256, 64 lowercase hex digits, or None.
        size: expected size in bytes, or None.
        classes: raster value -> class name, as documented (informative).
        resolution: ground sampling distance the model expects, cm per pixel.
        bands: input bands the model expects, e.g. ``["red", "green", "blue", "nir"]``.
        tile_size: input tile side in pixels.
        licence: licence of the model weights.
        source: where the model comes from (page, paper or repository).
        catalogue: the catalogue file this entry was read from.
    """

    name: str
    description: str = ""
    url: str | None = None
    file: Path | None = None
    sha256: str | None = None
    size: int | None = None
    classes: dict[int, str] = field(default_factory=dict)
    resolution: float | None = None
    bands: list[str] = field(default_factory=list)
    tile_size: int | None = None
    licence: str = ""
    source: str = ""
    catalogue: Path | None = None


@dataclass(frozen=True)
class Catalogue:
    """Entries by name (in file order) and the name of the default model."""

    entries: dict[str, CatalogueEntry]
    default: str | None = None

    def names(self) -> list[str]:
        """Known model names, in catalogue order."""
        return list(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def entry(self, name: str) -> CatalogueEntry:
        """The entry called ``name``; :class:`InputError` listing the known names."""
        if name not in self.entries:
            raise InputError(
                f"Unknown model {name!r}. Known catalogue models: {', '.join(self.names())}. "
                "Or give a path to an .onnx file or an https:// URL."
            )
        return self.entries[name]

    def default_entry(self) -> CatalogueEntry:
        """The entry used when no model is given."""
        if self.default is None:
            raise InputError("No default model is set in the model catalogues; name a model.")
        return self.entry(self.default)


# -- reading catalogues --------------------------------------------------------------


def read_catalogue(path: str | os.PathLike[str]) -> Catalogue:
    """Read one catalogue file: JSON (``.json``) or a Deepness ``MODEL_ZOO.md``."""
    catalogue_path = Path(path).expanduser()
    try:
        text = catalogue_path.read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(
            f"Cannot read the model catalogue {catalogue_path}: {error.strerror or error}."
        ) from error
    if catalogue_path.suffix.lower() in (".md", ".markdown"):
        entries = parse_deepness_model_zoo(text, catalogue_path)
        return Catalogue({entry.name: entry for entry in entries})
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(
            f"The model catalogue {catalogue_path} is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})."
        ) from error
    return _catalogue_from_json(document, catalogue_path)


def load_catalogue(
    paths: Iterable[str | os.PathLike[str]] = (), *, include_builtin: bool = True
) -> Catalogue:
    """The plugin's catalogue followed by the files in ``paths``; a later entry with the
    same name replaces an earlier one, and a later ``default`` wins."""
    sources = [BUILTIN_CATALOGUE] if include_builtin else []
    sources += [Path(p) for p in paths if os.fspath(p).strip()]
    entries: dict[str, CatalogueEntry] = {}
    default: str | None = None
    for source in sources:
        catalogue = read_catalogue(source)
        entries.update(catalogue.entries)
        default = catalogue.default or default
    if default is not None and default not in entries:
        raise InputError(f"The default model {default!r} is not in the model catalogues.")
    return Catalogue(entries, default)


def _catalogue_from_json(document: Any, path: Path) -> Catalogue:
    if not isinstance(document, dict) or not isinstance(document.get("models"), list):
        raise InputError(f"The model catalogue {path} must be a JSON object with a 'models' list.")
    fmt = document.get("format", CATALOGUE_FORMAT)
    if fmt != CATALOGUE_FORMAT:
        raise InputError(
            f"The model catalogue {path} has format {fmt!r}, not {CATALOGUE_FORMAT!r}."
        )
    version = document.get("version", CATALOGUE_VERSION)
    if not isinstance(version, int) or version > CATALOGUE_VERSION:
        raise InputError(
            f"The model catalogue {path} is version {version!r}; this plugin reads version "
            f"{CATALOGUE_VERSION}. Update the plugin."
        )
    entries: dict[str, CatalogueEntry] = {}
    for index, item in enumerate(document["models"], start=1):
        entry = _entry_from_json(item, _EntryContext(path, index))
        if entry.name in entries:
            raise InputError(f"The model catalogue {path} lists {entry.name!r} twice.")
        entries[entry.name] = entry
    default = document.get("default")
    if default is not None and default not in entries:
        raise InputError(
            f"The model catalogue {path}: default {default!r} is not one of its models."
        )
    return Catalogue(entries, default)


@dataclass(frozen=True)
class _EntryContext:
    """Where an entry comes from, for error messages and relative ``file`` paths."""

    path: Path
    index: int
    name: str = ""

    def error(self, message: str) -> InputError:
        label = f"entry {self.index}" + (f" ({self.name!r})" if self.name else "")
        return InputError(f"Model catalogue {self.path}, {label}: {message}")


def _entry_from_json(item: Any, context: _EntryContext) -> CatalogueEntry:
    if not isinstance(item, dict):
        raise context.error("each model must be a JSON object.")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise context.error(f"'name' must be letters, digits, '.', '_' or '-' (got {name!r}).")
    context = _EntryContext(context.path, context.index, name)
    url, file = item.get("url"), item.get("file")
    if (url is None) == (file is None):
        raise context.error("give exactly one of 'url' and 'file'.")
    sha256_text = _optional(item, "sha256", str, context)
    url_text = _optional(item, "url", str, context)
    try:
        sha256 = normalize_sha256(sha256_text)
        # Plain http passes only for loopback (a local model server); else https.
        url = check_url(url_text) if url_text is not None else None
    except InputError as error:
        raise context.error(str(error)) from error
    size = _optional(item, "size", int, context)
    if size is not None and size <= 0:
        raise context.error("'size' must be a positive number of bytes.")
    resolution = _optional(item, "resolution", (int, float), context)
    if resolution is not None and resolution <= 0:
        raise context.error("'resolution' must be > 0 (cm per pixel).")
    tile_size = _optional(item, "tile_size", int, context)
    return CatalogueEntry(
        name=name,
        description=_optional(item, "description", str, context) or "",
        url=url,
        file=_entry_file(file, context) if file is not None else None,
        sha256=sha256,
        size=size,
        classes=_entry_classes(item.get("classes"), context),
        resolution=float(resolution) if resolution is not None else None,
        bands=[str(band) for band in _optional(item, "bands", list, context) or []],
        tile_size=tile_size,
        licence=_optional(item, "licence", str, context)
        or _optional(item, "license", str, context)
        or "",
        source=_optional(item, "source", str, context) or "",
        catalogue=context.path,
    )


def _optional(item: Mapping[str, Any], key: str, kind: Any, context: _EntryContext) -> Any:
    """``item[key]`` checked against ``kind`` (booleans are not numbers), or None."""
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise context.error(f"'{key}' must be of type {names} (got {value!r}).")
    return value


def _entry_file(file: Any, context: _EntryContext) -> Path:
    if not isinstance(file, str) or not file.strip():
        raise context.error("'file' must be a path relative to the catalogue's folder.")
    path = Path(file).expanduser()
    return path if path.is_absolute() else (context.path.parent / path).resolve()


def _entry_classes(classes: Any, context: _EntryContext) -> dict[int, str]:
    if classes is None:
        return {}
    if isinstance(classes, list):
        return {index + 1: str(name) for index, name in enumerate(classes)}
    if isinstance(classes, dict):
        try:
            return {int(value): str(name) for value, name in classes.items()}
        except ValueError as error:
            raise context.error("'classes' keys must be integer raster values.") from error
    raise context.error("'classes' must map raster values to names.")


def parse_deepness_model_zoo(text: str, source: Path) -> list[CatalogueEntry]:
    """The segmentation models of a Deepness ``MODEL_ZOO.md`` page, as catalogue entries.

    Each table row under a "Segmentation models" heading is a model: its first cell is a
    Markdown link (title -> share page) and the ``Input size``, ``CM/PX`` and
    ``Description`` columns give the tile size, resolution (cm per pixel) and text.
    Rows of other sections (detection, regression, super-resolution) are skipped: only
    segmentation models classify land cover. Deepness publishes no checksums, so the
    entries have none; the downloaded file is still checked against the model contract.
    """
    entries: list[CatalogueEntry] = []
    section, header = "", []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            section, header = stripped.lstrip("#").strip().lower(), []
            continue
        if not stripped.startswith("|"):
            header = []  # a table ends at the first line that is not a row
            continue
        cells = [cell.strip() for cell in stripped.strip("|").split("|")]
        if not header:
            header = [cell.lower() for cell in cells]
            continue
        if "segmentation" not in section or set("".join(cells)) <= set("-: "):
            continue
        row = dict(zip(header, cells, strict=False))
        link = _MARKDOWN_LINK.search(row.get("model", cells[0]))
        if link is None:
            continue
        title, page = link.group(1).strip(), link.group(2).strip()
        url = f"{page.rstrip('/')}/download" if _NEXTCLOUD_SHARE.match(page) else page
        entries.append(
            CatalogueEntry(
                name="deepness-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"),
                description=_MARKDOWN_LINK.sub(r"\1", row.get("description", "")).strip(),
                url=url,
                resolution=_number(row.get("cm/px")),
                tile_size=int(size) if (size := _number(row.get("input size"))) else None,
                licence="not stated by the Deepness model zoo",
                source=page,
                catalogue=source,
            )
        )
    return entries


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


# -- the cache -------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/qgis_landcover`` (``~/.cache/qgis_landcover`` when unset).

    Inside QGIS the algorithms pass a folder under the QGIS settings directory instead.
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says relative values are invalid and must be ignored.
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache"
    return root / CACHE_FOLDER_NAME


def ensure_cache_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` if needed and check it can be written; :class:`InputError` if not."""
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise InputError(
            f"The model cache folder {folder} is not writable ({error.strerror or error}); "
            "choose another cache folder."
        ) from error
    return folder


def cache_file_name(url: str, label: str | None = None) -> str:
    """File name of the cached copy of ``url``: ``<label or URL stem>-<12 hex>.onnx``.

    The hash of the URL keeps models with the same name from different places apart.
    """
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    if label is None:
        segments = [s for s in url.split("?")[0].split("#")[0].split("/") if s]
        stem = Path(segments[-1]).stem if len(segments) > 2 else ""
        label = stem if stem and stem.lower() != "download" else "model"
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-.")[:60] or "model"
    return f"{label}-{digest}.onnx"


def _record_path(model: Path) -> Path:
    """The note beside a cached model: its URL and the SHA-256 verified at download."""
    return model.with_name(f"{model.name}.json")


def _read_record(model: Path) -> dict[str, Any]:
    try:
        record = json.loads(_record_path(model).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(model: Path, record: Mapping[str, Any]) -> None:
    with atomic_output(_record_path(model)) as temporary:
        temporary.write_text(json.dumps(record, indent=1), encoding="utf-8")


# -- resolving a model -----------------------------------------------------------------


def check_downloaded_model(path: Path, url: str) -> None:
    """Reject a downloaded file that is not an ONNX model with a valid contract."""
    try:
        read_contract(path)
    except InputError as error:
        # The reader names the temporary file; the user knows the download by its URL.
        detail = str(error).replace(f"{path.name}: ", "").replace(f": {path} (", " (")
        detail = detail.replace(str(path), "the file")
        raise type(error)(
            f"The file downloaded from {url} is not a usable land-cover model: {detail}"
        ) from error


def fetch_model(
    url: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    size: int | None = None,
    label: str | None = None,
    options: DownloadOptions | None = None,
    proxies: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    on_bytes: ByteCallback | None = None,
) -> Path:
    """The cached, verified copy of the model at ``url``, downloading it when needed.

    A cached file is re-used without any network request when its SHA-256 equals
    ``sha256`` or, when no checksum is given, the one recorded when it was downloaded
    and checked (trust on first use). Otherwise it is downloaded again.
    """
    options = options or DownloadOptions()
    url = check_url(url, allow_http=options.allow_http)
    expected = normalize_sha256(sha256)
    progress = progress if progress is not None else NullProgress()
    folder = ensure_cache_dir(cache_dir if cache_dir is not None else default_cache_dir())
    target = folder / cache_file_name(url, label)
    if target.is_file():
        actual = file_sha256(target)
        record = _read_record(target)
        if actual == (expected or (record.get("sha256") if record.get("url") == url else None)):
            progress.info(f"Using the cached model {target} (SHA-256 {actual}).")
            return target
        progress.info(f"The cached copy {target.name} does not match; downloading it again.")
        target.unlink()
        _record_path(target).unlink(missing_ok=True)
    progress.info(f"Downloading {url} to {target}")
    result = download_file(
        url,
        target,
        sha256=expected,
        size=size,
        validate=lambda path: check_downloaded_model(path, url),
        options=options,
        proxies=proxies,
        progress=progress,
        on_bytes=on_bytes,
    )
    _write_record(target, {"url": url, "sha256": result.sha256, "size": result.size})
    if expected is None:
        progress.info(
            f"No checksum was given for {url}; the model's SHA-256 is {result.sha256} "
            "(recorded in the cache; give it as the checksum to pin this exact file)."
        )
    return target


def resolve_model(
    spec: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    catalogues: Sequence[str | os.PathLike[str]] = (),
    sha256: str | None = None,
    progress: Progress | None = None,
    proxies: Mapping[str, str] | None = None,
    options: DownloadOptions | None = None,
    on_bytes: ByteCallback | None = None,
) -> Path:
    """The verified local ONNX file named by ``spec``.

    Args:
        spec: ``""`` (the default model), a catalogue name, a file path or a URL.
        cache_dir: where downloads are kept (default :func:`default_cache_dir`).
        catalogues: extra catalogue files (JSON or Deepness ``MODEL_ZOO.md``) read after
            the plugin's own.
        sha256: expected SHA-256 of the model; checked for every kind of ``spec``.
        progress: progress, log lines and cancel for downloads.
        proxies: ``requests`` proxies mapping; ``None`` uses the environment.
        options: download limits (timeouts, maximum size, retries, plain HTTP opt-in).
        on_bytes: receives (bytes done, total or None) while downloading.

    Raises:
        InputError: unknown name (the message lists the known ones), missing file,
            malformed URL or checksum, unwritable cache folder, not a valid model.
        DownloadError / ChecksumError / CancelledError: see :func:`download_file`.
    """
    text = (spec or "").strip()
    expected = normalize_sha256(sha256)
    options = options or DownloadOptions()
    fetch: dict[str, Any] = {
        "cache_dir": cache_dir,
        "options": options,
        "proxies": proxies,
        "progress": progress,
        "on_bytes": on_bytes,
    }
    if _SCHEME.match(text):
        return fetch_model(text, sha256=expected, **fetch)
    if re.match(r"^https?//", text, re.IGNORECASE):
        raise InputError(f"Malformed URL {text!r}: expected https://host/path.")
    if text.lower().startswith("www."):
        raise InputError(f"Malformed URL {text!r}: add the scheme, e.g. https://{text}")
    if text and ("/" in text or "\\" in text or Path(text).expanduser().is_file()):
        return _local_model(Path(text).expanduser(), expected)
    catalogue = load_catalogue(catalogues)
    if text and text not in catalogue and text.lower().endswith(".onnx"):
        return _local_model(Path(text), expected)
    entry = catalogue.entry(text) if text else catalogue.default_entry()
    if expected and entry.sha256 and expected != entry.sha256:
        raise InputError(
            f"The checksum given ({expected}) differs from the catalogue's for "
            f"{entry.name!r} ({entry.sha256}); remove one of them."
        )
    if entry.file is not None:
        return _local_model(entry.file, expected or entry.sha256, entry=entry)
    assert entry.url is not None  # a catalogue entry has a url or a file
    return fetch_model(
        entry.url, sha256=expected or entry.sha256, size=entry.size, label=entry.name, **fetch
    )


def _local_model(path: Path, sha256: str | None, *, entry: CatalogueEntry | None = None) -> Path:
    """``path`` if it is a file (and has ``sha256`` when given); else a clear error."""
    if not path.is_file():
        if entry is not None:
            raise InputError(
                f"The model {entry.name!r} should be at {path}, which is missing; "
                "reinstall the plugin or give a model file, catalogue name or URL."
            )
        check_model_file(path)
    if sha256 is not None and (actual := file_sha256(path)) != sha256:
        raise ChecksumError(f"SHA-256 mismatch for {path}: expected {sha256}, got {actual}.")
    return path
