# SPDX-License-Identifier: GPL-2.0-or-later
"""The one place a ``MODEL`` value becomes a model file: :func:`resolve_model`.

A model is named by one string (the ``MODEL`` parameter of the algorithms):

- ``""``: the catalogue's default model, embedded in the plugin;
- a catalogue name, e.g. ``azure-2018-unet`` (:mod:`.catalogue`);
- a local file path;
- an ``https://`` URL.

:func:`resolve_model` turns any of them into the path of a verified local ONNX file:
downloads go to the cache folder through :func:`~.download.download_file` (SHA-256,
size, contract check, atomic rename), and a cached copy is re-used while its SHA-256
matches. Inside QGIS, ``qgis_glue`` passes QGIS's cache folder, catalogues and proxy.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files.atomic import atomic_output
from ..files.checksum import file_sha256, normalize_sha256
from ..progress import NullProgress, Progress
from .catalogue import PRECISIONS, Catalogue, CatalogueEntry, load_catalogue
from .contract import read_contract
from .download import ByteCallback, DownloadOptions, check_url, download_file
from .validation import check_checksum, check_downloaded_model, check_model_file

CACHE_FOLDER_NAME = "qgis_landcover"
#: The ``PRECISION`` choices: ``auto`` or one of the catalogue's precisions.
PRECISION_CHOICES = ("auto", *PRECISIONS)
#: /proc/cpuinfo flags of CPUs with int8 dot-product instructions (VNNI).
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})

# A URL scheme of two or more letters ("C:" is a Windows drive, not a scheme).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


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


# -- precision variants ----------------------------------------------------------------


def cpu_has_vnni(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU has int8 dot products (a ``flags`` line of ``cpuinfo`` lists
    ``avx512_vnni`` or ``avx_vnni``); False where the file is unreadable (not Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags") and VNNI_FLAGS & set(line.split(":", 1)[-1].split()):
            return True
    return False


@dataclass(frozen=True)
class VariantChoice:
    """The catalogue entry chosen for a requested precision, and why (one sentence)."""

    entry: CatalogueEntry
    reason: str


def _accuracy_loss_within_bound(entry: CatalogueEntry) -> tuple[bool, str]:
    """Whether a local variant's measured loss of overall accuracy vs its fp32 model
    (``provenance.mosaic_accuracy``) is within its own ``max_overall_accuracy_loss``."""
    if entry.file is None or not entry.file.is_file():
        return False, "its accuracy cannot be checked before it is downloaded"
    provenance = read_contract(entry.file).provenance
    bound = provenance.get("max_overall_accuracy_loss")
    measured = provenance.get("mosaic_accuracy") or {}
    try:
        loss = measured["fp32"]["overall_accuracy"] - measured[entry.precision]["overall_accuracy"]
    except (KeyError, TypeError):
        return False, "its model card states no accuracy measured against fp32"
    if bound is None or loss > bound:
        return False, f"its loss of overall accuracy ({loss:.4f}) exceeds its bound ({bound})"
    return True, f"overall accuracy {-loss:+.4f} vs fp32, within its bound of {bound}"


def choose_variant(
    catalogue: Catalogue, entry: CatalogueEntry, precision: str, *, on_gpu: bool, vnni: bool
) -> VariantChoice:
    """The variant of ``entry``'s model to run for ``precision`` (:data:`PRECISION_CHOICES`).

    ``auto``: fp16 when running on a GPU (``on_gpu``) and the model has an fp16 variant;
    int8 on a CPU with VNNI (``vnni``) when it has an int8 variant whose measured loss of
    overall accuracy is within its card's bound; else the fp32 model. An explicit
    precision the model has no variant for is an :class:`InputError`, never a silent
    substitute.
    """
    if precision not in PRECISION_CHOICES:
        raise InputError(
            f"Unknown precision {precision!r}; use one of {', '.join(PRECISION_CHOICES)}."
        )
    base = catalogue.entry(entry.variant_of) if entry.variant_of else entry
    variants = catalogue.variants(base.name)
    if precision != "auto":
        if precision not in variants:
            raise InputError(
                f"The model {base.name!r} has no {precision} variant (it has "
                f"{', '.join(sorted(variants))}); use PRECISION=auto or one of those."
            )
        return VariantChoice(variants[precision], f"PRECISION={precision} was requested")
    fp32 = variants.get("fp32", base)
    if on_gpu:
        if "fp16" in variants:
            return VariantChoice(variants["fp16"], "running on a GPU, which computes fp16 fast")
        return VariantChoice(fp32, f"running on a GPU; {base.name!r} has no fp16 variant")
    if "int8" not in variants:
        return VariantChoice(fp32, f"{base.name!r} has no int8 variant")
    if not vnni:
        return VariantChoice(
            fp32, "this CPU lacks int8 dot products (VNNI), where int8 is not faster"
        )
    within, why = _accuracy_loss_within_bound(variants["int8"])
    if not within:
        return VariantChoice(fp32, f"the int8 variant was not used: {why}")
    return VariantChoice(variants["int8"], f"this CPU has VNNI and the int8 variant's {why}")


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
    precision: str | None = None,
    on_gpu: bool = False,
    vnni: bool | None = None,
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
        precision: ``None`` takes ``spec`` as named; else one of
            :data:`PRECISION_CHOICES`, choosing among a catalogue model's variants
            (:func:`choose_variant`; the choice and its reason go to ``progress``). A
            file or URL has no variants: only ``auto`` applies to it.
        on_gpu: the model will run on a GPU (CUDA or TensorRT provider).
        vnni: the CPU has int8 dot products; ``None``: :func:`cpu_has_vnni`.

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
    if precision not in (None, "auto") and not _is_catalogue_name(text, catalogues):
        raise InputError(
            f"PRECISION={precision} chooses among a catalogue model's variants; the model "
            f"{text!r} is a file or URL: use PRECISION=auto."
        )
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
    # A checksum pins one file: auto then keeps the model as named.
    if precision is not None and not (precision == "auto" and expected):
        choice = choose_variant(
            catalogue,
            entry,
            precision,
            on_gpu=on_gpu,
            vnni=cpu_has_vnni() if vnni is None else vnni,
        )
        if progress is not None:
            progress.info(
                f"Model {choice.entry.name!r} ({choice.entry.precision}): {choice.reason}."
            )
        entry = choice.entry
    if expected and entry.sha256 and expected != entry.sha256:
        raise InputError(
            f"The checksum given ({expected}) differs from the catalogue's for "
            f"{entry.name!r} ({entry.sha256}); remove one of them."
        )
    if entry.file is not None:
        return _local_model(entry.file, expected or entry.sha256, entry=entry)
    if entry.url is None:  # the catalogue reader requires one of the two; never trust it
        raise InputError(f"The catalogue entry {entry.name!r} gives neither a file nor a url.")
    return fetch_model(
        entry.url, sha256=expected or entry.sha256, size=entry.size, label=entry.name, **fetch
    )


def _is_catalogue_name(text: str, catalogues: Sequence[str | os.PathLike[str]]) -> bool:
    """Whether ``text`` names a catalogue model (``""``: the default one)."""
    if _SCHEME.match(text) or "/" in text or "\\" in text:
        return False
    return not text or text in load_catalogue(catalogues)


def _local_model(path: Path, sha256: str | None, *, entry: CatalogueEntry | None = None) -> Path:
    """``path`` if it is a file (and has ``sha256`` when given); else a clear error."""
    if not path.is_file() and entry is not None:
        raise InputError(
            f"The model {entry.name!r} should be at {path}, which is missing; "
            "reinstall the plugin or give a model file, catalogue name or URL."
        )
    check_model_file(path)
    check_checksum(path, sha256)
    return path
