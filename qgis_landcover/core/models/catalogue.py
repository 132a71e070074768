# SPDX-License-Identifier: GPL-2.0-or-later
"""Model catalogues: the models known by name (``MODEL=azure-2018-unet``) and the
default model; :func:`~.resolve.resolve_model` turns a name into a file.

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

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files.checksum import normalize_sha256
from .download import check_url

CATALOGUE_FORMAT = "qgis-landcover-model-catalogue"
CATALOGUE_VERSION = 1
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
BUILTIN_CATALOGUE = MODELS_DIR / "catalogue.json"
#: The precisions a catalogue model (or variant) can have.
PRECISIONS = ("fp32", "fp16", "int8")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
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
        precision: the numbers the network computes with, one of :data:`PRECISIONS`.
        variant_of: for a variant (same input, classes and tiling, another precision),
            the name of the model it derives from; None for a model of its own.
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
    precision: str = "fp32"
    variant_of: str | None = None


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

    def variants(self, name: str) -> dict[str, CatalogueEntry]:
        """Precision -> entry for model ``name`` and its variants (``name`` itself
        included, under its own precision)."""
        base = self.entry(name)
        found = {base.precision: base}
        for entry in self.entries.values():
            if entry.variant_of == base.name:
                found.setdefault(entry.precision, entry)
        return found

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
    for entry in entries.values():
        if entry.variant_of is not None and entry.variant_of not in entries:
            raise InputError(
                f"The model catalogues: {entry.name!r} is a variant of "
                f"{entry.variant_of!r}, which they do not list."
            )
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
    precision = _optional(item, "precision", str, context) or "fp32"
    if precision not in PRECISIONS:
        raise context.error(f"'precision' must be one of {', '.join(PRECISIONS)}.")
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
        precision=precision,
        variant_of=_optional(item, "variant_of", str, context),
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
