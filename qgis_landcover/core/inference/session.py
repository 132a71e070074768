# SPDX-License-Identifier: GPL-2.0-or-later
"""ONNX Runtime sessions for segmentation models: device choice, caching, validation.

``DEVICE`` picks the execution providers: ``cpu``; ``cuda`` / ``tensorrt`` (an error
when this ONNX Runtime cannot use them, instead of silently running on the CPU);
``auto`` tries TensorRT, then CUDA, then the CPU, with a warning when it falls back.
The provider that actually runs the model is read back from the session and reported.

Sessions are cached per (model file, its SHA-256, device), so a batch run over many
tiles or layers loads each model once. On load the model contract (the ONNX metadata)
is checked against the graph (:func:`~..models.validation.check_graph`): input and
output ranks, band and class counts, the fixed tile size and the output margin; every
error names the metadata key at fault.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, ModelContractError
from ..files.checksum import file_sha256
from ..models.contract import ModelContract
from ..models.validation import check_graph, check_model_file, check_scores
from ..progress import NullProgress, Progress

DEVICES = ("auto", "cpu", "cuda", "tensorrt")
"""Values of the ``DEVICE`` parameter."""

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

_CACHE_SIZE = 4
PROBE_TILE_SIZE = 512
"""Largest tile side, pixels, of the probe run on models with a free input size."""
_cache: OrderedDict[tuple[str, str, str], ModelSession] = OrderedDict()
_digests: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def _onnxruntime() -> Any:
    """Import ONNX Runtime with a message a QGIS user can act on when it is missing."""
    try:
        import onnxruntime
    except ImportError as error:
        raise InputError(
            "ONNX Runtime is not installed in QGIS's Python: install the 'onnxruntime' "
            "package (or 'onnxruntime-gpu' for an NVIDIA GPU)."
        ) from error
    return onnxruntime


@dataclass(frozen=True)
class ModelSession:
    """A loaded, validated model.

    Attributes:
        path: the ONNX file.
        digest: its SHA-256.
        device: the ``DEVICE`` it was loaded for.
        provider: the execution provider that runs it (e.g. ``CPUExecutionProvider``).
        contract: the model contract from its metadata (band names completed from the
            graph for models that do not name their bands).
        input_name, output_name: graph tensor names.
        fixed_batch: the batch size the graph requires, or ``None`` (dynamic).
        fixed_tile: the tile side the graph requires, or ``None`` (dynamic H / W).
    """

    path: Path
    digest: str
    device: str
    provider: str
    contract: ModelContract
    session: Any
    input_name: str
    output_name: str
    fixed_batch: int | None
    fixed_tile: int | None

    def output_size(self, tile_size: int) -> int:
        """Side of the model's output for an input tile of ``tile_size`` pixels."""
        return tile_size - 2 * self.contract.output_margin

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Class scores for a batch.

        Args:
            batch: float32 (N, bands, tile, tile), already normalised.

        Returns:
            float32 (N, classes, tile - 2 * margin, tile - 2 * margin).
        """
        try:
            (scores,) = self.session.run([self.output_name], {self.input_name: batch})
        except Exception as error:  # ORT raises its own (pybind) exception classes
            raise InputError(
                f"The model {self.path.name} failed on a batch of {batch.shape[0]} tile(s) of "
                f"{batch.shape[-1]} x {batch.shape[-2]} pixels (width x height): {error}. "
                "If you changed the tile "
                "size, try the model's own (many networks need multiples of 32)."
            ) from error
        check_scores(self.path.name, self.contract, scores, tuple(batch.shape))
        return np.asarray(scores, dtype=np.float32)


def available_providers() -> list[str]:
    """Execution providers this ONNX Runtime build offers."""
    return list(_onnxruntime().get_available_providers())


def provider_candidates(device: str, available: list[str]) -> list[list[str]]:
    """Provider lists to try, best first, for ``device``.

    Raises:
        InputError: unknown device, or ``cuda`` / ``tensorrt`` without support.
    """
    if device not in DEVICES:
        raise InputError(f"Unknown device {device!r}; use one of {', '.join(DEVICES)}.")
    if device == "cpu":
        return [[CPU]]
    if device in ("cuda", "tensorrt"):
        wanted = CUDA if device == "cuda" else TENSORRT
        if wanted not in available:
            raise InputError(
                f"DEVICE={device} was requested, but this ONNX Runtime cannot use it "
                f"(available providers: {', '.join(available)}). Install 'onnxruntime-gpu' "
                "with matching CUDA libraries, or use DEVICE=auto to fall back to the CPU."
            )
        # TensorRT hands the operators it lacks to CUDA, CUDA to the CPU.
        chain = [TENSORRT, CUDA, CPU] if device == "tensorrt" else [CUDA, CPU]
        return [[p for p in chain if p in available or p == CPU]]
    candidates = []
    if TENSORRT in available:
        candidates.append([p for p in (TENSORRT, CUDA, CPU) if p in available or p == CPU])
    if CUDA in available:
        candidates.append([CUDA, CPU])
    candidates.append([CPU])
    return candidates


def _with_options(provider: str) -> str | tuple[str, dict[str, Any]]:
    """A provider with the options this pipeline wants: TensorRT keeps its built
    engines on disk, so a model is compiled once per machine, not once per run."""
    if provider != TENSORRT:
        return provider
    cache = Path(tempfile.gettempdir()) / "qgis_landcover_tensorrt"
    return (
        provider,
        {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(cache),
        },
    )


def model_digest(path: Path) -> str:
    """SHA-256 of ``path``, remembered per (path, size, modification time) so a batch
    run does not hash a large model for every tile it classifies."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        digest = _digests.get(key)
    if digest is None:
        digest = file_sha256(path)
        with _lock:
            _digests[key] = digest
    return digest


def load_session(
    path: str | os.PathLike[str], device: str = "auto", progress: Progress | None = None
) -> ModelSession:
    """Load (or take from the cache) the model at ``path`` for ``device``.

    Raises:
        InputError: missing file, not an ONNX model, device unavailable.
        ModelContractError: metadata missing, malformed or inconsistent with the graph.
    """
    progress = progress or NullProgress()
    model_path = Path(path).expanduser().resolve()
    check_model_file(model_path)
    digest = model_digest(model_path)
    key = (str(model_path), digest, device)
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is not None:
        progress.info(f"Model {model_path.name} already loaded ({cached.provider}).")
        return cached
    loaded = _create_session(model_path, digest, device, progress)
    with _lock:
        _cache[key] = loaded
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return loaded


def clear_session_cache() -> None:
    """Forget every cached session (tests; freeing GPU memory)."""
    with _lock:
        _cache.clear()


def cached_session_count() -> int:
    with _lock:
        return len(_cache)


def _create_session(path: Path, digest: str, device: str, progress: Progress) -> ModelSession:
    ort = _onnxruntime()
    available = available_providers()
    candidates = provider_candidates(device, available)
    options = session_options(ort)
    session = None
    failures: list[str] = []
    for providers in candidates:
        try:
            session = ort.InferenceSession(
                str(path), options, providers=[_with_options(p) for p in providers]
            )
        except Exception as error:  # ORT raises pybind exception classes
            if _is_not_onnx(error):
                raise InputError(
                    f"{path.name} is not an ONNX model (ONNX Runtime cannot parse it)."
                ) from error
            if providers == [CPU]:
                raise InputError(f"ONNX Runtime cannot load {path.name}: {error}") from error
            failures.append(f"{providers[0]}: {error}")
            continue
        used = session.get_providers()
        if providers[0] != CPU and providers[0] not in used:
            # ORT falls back to the CPU silently when a GPU provider fails to start.
            failures.append(f"{providers[0]} did not start")
            session = None
            if device != "auto":
                break
            continue
        break
    if session is None:
        raise InputError(
            f"DEVICE={device} was requested but the GPU could not be used for {path.name} "
            f"({'; '.join(failures)}). Check the CUDA / cuDNN / TensorRT installation or "
            "use DEVICE=auto."
        )
    provider = session.get_providers()[0]
    if device == "auto" and provider == CPU:
        if failures:
            progress.warning(
                f"The GPU could not be used ({'; '.join(failures)}): running on the CPU."
            )
        else:
            progress.info("No GPU execution provider is installed: running on the CPU.")
    progress.info(
        f"Model {path.name} loaded; execution provider: {provider}; "
        + describe_session_options(session.get_session_options())
        + "."
    )
    return _validated(path, digest, device, provider, session)


def physical_core_count() -> int:
    """Physical CPU cores this process may run on (hyperthread siblings counted once):
    the allowed CPUs (``os.sched_getaffinity``) grouped by their (package, core) ids
    from ``/sys/devices/system/cpu``; the allowed CPU count where those cannot be read."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return max(1, len(allowed))
        cores.add((package, core))
    return max(1, len(cores))


def session_options(ort: Any) -> Any:
    """ONNX Runtime session options, each chosen:

    - intra-op threads = :func:`physical_core_count` (a convolution's threads on two
      hyperthreads of one core only contend for its vector units);
    - the CPU memory arena on, memory-pattern planning off: the pattern planner
      pre-allocates one block for every activation of a run, which is what makes ORT's
      default memory large. Measured side by side in fresh processes (2018 U-Net, batch
      1, process peak RSS): 384 px 471 MB default / 317 MB arena on + pattern off /
      322 MB arena off; 512 px 670 / 378 / 473 MB; 1024 px 2362 / 1194 / 1243 MB. Speed
      of arena on + pattern off: 1.00-1.04x the default, while arena off costs 20-28 %
      (re-measured at 384 px, paired fresh processes: 0.57-0.60 against 0.72-0.79 CPU s
      per tile, peak 280 against 262 MB);
    - graph optimisation: all levels (operator fusion, layout changes), redone at each
      load: no optimised model file is cached (``optimized_model_filepath``), as it
      would save little: creating a session of the 2018 U-Net takes 30 ms from the
      original at ORT_ENABLE_ALL against 14 ms from a saved optimised file, its int8
      variant (sub-pixel graph) 50 against 26 ms (median of 7, fresh processes,
      interleaved, 2 cores at load 6, ONNX Runtime 1.32): a saving below 3 % of one
      640 px int8 tile, not worth a cache to keep in step with the model and ORT;
    - ORT's own log: errors only (its warnings are not for GIS users).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = physical_core_count()
    options.enable_cpu_mem_arena = True
    options.enable_mem_pattern = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def describe_session_options(options: Any) -> str:
    """The session options that matter, in words, for the log."""
    return (
        f"{options.intra_op_num_threads} intra-op threads (physical cores), memory arena "
        f"{'on' if options.enable_cpu_mem_arena else 'off'}, memory pattern "
        f"{'on' if options.enable_mem_pattern else 'off'}, graph optimisation "
        f"{str(options.graph_optimization_level).rsplit('.', 1)[-1]} at each load (no cached "
        "optimised model file: it would save about 20 ms)"
    )


def _is_not_onnx(error: Exception) -> bool:
    name = type(error).__name__
    text = str(error)
    return name == "InvalidProtobuf" or "INVALID_PROTOBUF" in text or "Protobuf parsing" in text


def probe_tile_size(contract: ModelContract) -> int:
    """The side of the tile that probes a model with a free input size: its own tile
    size up to :data:`PROBE_TILE_SIZE` pixels (metadata may claim any size, e.g. 100000,
    which no probe could allocate), else the smallest multiple of 32 that leaves output
    beyond the margins and is at least :data:`PROBE_TILE_SIZE`."""
    if contract.tile_size <= PROBE_TILE_SIZE:
        return contract.tile_size
    return max(PROBE_TILE_SIZE, 32 * ((2 * contract.output_margin) // 32 + 1))


def _validated(path: Path, digest: str, device: str, provider: str, session: Any) -> ModelSession:
    """Check the metadata against the graph and build the :class:`ModelSession`."""
    props = dict(session.get_modelmeta().custom_metadata_map)
    try:
        contract = ModelContract.from_metadata_props(props)
    except ModelContractError as error:
        raise ModelContractError(f"{path.name}: {error}") from error
    contract, shape = check_graph(
        path.name,
        contract,
        session.get_inputs(),
        session.get_outputs(),
        names_bands="band_names" in props,
    )
    loaded = ModelSession(
        path=path,
        digest=digest,
        device=device,
        provider=provider,
        contract=contract,
        session=session,
        input_name=shape.input_name,
        output_name=shape.output_name,
        fixed_batch=shape.fixed_batch,
        fixed_tile=shape.fixed_tile,
    )
    if shape.needs_probe:
        # Dynamic shapes: one probe tile proves class count and output margin now,
        # with a message naming the key, rather than after reading the first batch.
        side = probe_tile_size(contract) if shape.fixed_tile is None else shape.fixed_tile
        batch = shape.fixed_batch or 1
        loaded.run(np.zeros((batch, contract.num_bands, side, side), dtype=np.float32))
    return loaded
