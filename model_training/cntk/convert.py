# SPDX-License-Identifier: GPL-2.0-or-later
"""Convert the 2018 Azure land-cover model (CNTK v2) to an ONNX model for the plugin.

No CNTK is involved: the ``.model`` file is parsed with :mod:`.protobuf`, the
network is rebuilt in PyTorch and verified node by node against the saved graph
(:mod:`.model`), exported to ONNX with the plugin's model contract, checked with
ONNX Runtime against PyTorch, and scored on the real 1 m patches shipped in
``data/chesapeake_1m_patches``. The measured accuracy goes into the model card, which is
written beside the model and into its metadata.

Usage::

    python -m model_training.cntk.convert --list            # parameters and functions
    python -m model_training.cntk.convert                   # writes qgis_landcover/models/
    python -m model_training.cntk.convert data/models/azure_2018_cntk/1epoch.model --evaluate

Without arguments it regenerates everything shipped for this model: the ONNX file, its
model card (beside it and in its metadata) and the catalogue's SHA-256 and size. The
bytes depend only on the CNTK weights, the patches and the software versions, not on
the CPU (see :func:`model_training.export.fold_batchnorm`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from qgis_landcover.core.accuracy.confusion import ConfusionMatrix
from qgis_landcover.core.accuracy.remap import apply_remap
from qgis_landcover.core.accuracy.statistics import AgreementStatistics
from qgis_landcover.core.files.atomic import atomic_output
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.inference.session import load_session
from qgis_landcover.core.models.catalogue import MODELS_DIR
from qgis_landcover.core.models.contract import ModelContract, read_contract

from ..config import ExportConfig, NormalizationConfig
from ..export import export_onnx
from ..onnx_metadata import write_metadata
from ..release.contract import ModelClass, build_contract, with_card
from ..release.evaluate_models import heldout_section
from ..release.model_card import CardSection, CardTable, ModelCard
from ..release.ship import update_catalogue
from .model import Azure2018UNet, load_cntk_network
from .protobuf import CntkGraph, Function, Variable, load_graph, output_name

ROOT = Path(__file__).resolve().parents[2]
CNTK_FOLDER = ROOT / "data" / "models" / "azure_2018_cntk"
DEFAULT_MODEL = CNTK_FOLDER / "250epochs.model"
DEFAULT_OUTPUT = ROOT / "qgis_landcover" / "models" / "azure_2018_unet.onnx"
PATCHES = ROOT / "data" / "chesapeake_1m_patches"
#: The held-out evaluation through the plugin (model_training/release/EVALUATION.md), whose
#: entry EVALUATED_AS goes into the model card.
EVALUATION = ROOT / "model_training" / "release" / "evaluation" / "heldout.json"
EVALUATED_AS = "converted-2018"

#: Output channels of the 2018 model (class value = channel; channel 0 = no data).
CLASS_NAMES = {
    0: "no data",
    1: "water",
    2: "tree canopy",
    3: "low vegetation",
    4: "barren and impervious",
}
CLASS_COLORS = {0: "#000000", 1: "#1f78b4", 2: "#33a02c", 3: "#b2df8a", 4: "#a6a6a6"}
NODATA_CHANNEL = 0
BAND_NAMES = ["red", "green", "blue", "nir"]
#: The 2018 training script divided the 8-bit NAIP values by 256 (not 255).
INPUT_SCALE = 1.0 / 256.0
#: The raw input: NAIP digital numbers, as the 2018 network was trained on.
NORMALIZATION = NormalizationConfig(
    input_scale=INPUT_SCALE, input_dtype="uint8", input_range=[0.0, 255.0]
)
#: The exported model: 1 m, 256 px tiles whose outputs abut (a 128 px stride, as the
#: 2018 evaluation tiled: the 64 px margin already gives every output pixel context).
EXPORT = ExportConfig(
    name="azure-2018-unet",
    description=(
        "The 2018 Microsoft AI for Earth land-cover network (CNTK, 250 epochs) converted "
        "to ONNX: 1 m NAIP red, green, blue, near-infrared -> water, tree canopy, low "
        "vegetation, barren and impervious."
    ),
    license="MIT",
    resolution_cm=100.0,
    tile_size=256,
    tiles_overlap_percent=0.0,
    opset=17,
)
#: Chesapeake 7-class labels -> the model's classes: both impervious classes become
#: "barren and impervious"; 15 (the 7-class set's no data) becomes 0.
LABEL_REMAP = {5: 4, 6: 4, 15: 0}
#: Patch channels: 0-3 NAIP R, G, B, NIR (0-255), 8 the Chesapeake 7-class label.
PATCH_IMAGE_CHANNELS = (0, 1, 2, 3)
PATCH_LABEL_CHANNEL = 8
#: ONNX Runtime and PyTorch must agree this closely on the scores (scores reach ~10),
#: checked on the first CHECK_PATCHES real patches.
MAX_ABS_DIFF = 1e-3
CHECK_PATCHES = 2
SOURCE_URL = "https://github.com/Azure/pixel_level_land_classification"


# --- Listing --------------------------------------------------------------------------


def _count(variable: Variable) -> int:
    return int(variable.value.size) if variable.value is not None else 0


def _inner_functions(graph: CntkGraph, block: Function) -> list[Function]:
    """The functions inside a block's composite, its root first."""
    found: dict[str, Function] = {}
    pending = [output_name(block.block_root)] if block.block_root else []
    while pending:
        function = graph.producer(pending.pop())
        if function is None or function.uid in found:
            continue
        found[function.uid] = function
        pending.extend(function.inputs)
    return list(found.values())


def _attributes(function: Function) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(function.attributes.items()))


def describe(graph: CntkGraph) -> str:
    """A listing of the model: input, parameters and constants (name, shape, count),
    and the functions in execution order with each block's inner functions."""
    lines = [f"CNTK model {graph.uid}: root {graph.root}"]
    lines += [f"input     {v.uid:<24} {v.shape}" for v in graph.inputs]
    for title, variables in (("parameters", graph.parameters), ("constants", graph.constants)):
        total = sum(_count(v) for v in variables)
        lines.append(f"{title} ({len(variables)}, {total:,} values):")
        lines += [
            f"  {v.name or '-':<20} {v.uid:<18} {v.shape!s:<18} {_count(v):>8,}" for v in variables
        ]
    top = graph.top_level()
    listed = 0
    blocks = sum(1 for f in top if f.op == "Block")
    lines.append(f"functions ({len(graph.functions)}, {blocks} blocks), inputs first:")
    for function in top:
        kind = f"{function.op}({function.block_op})" if function.block_op else function.op
        line = f"  {function.uid:<22} {kind:<32} <- {', '.join(function.inputs)}"
        lines.append(f"{line}  {_attributes(function)}".rstrip())
        listed += 1
        if function.op == "Block":
            for inner in _inner_functions(graph, function):
                line = f"      . {inner.uid:<20} {inner.op:<18}"
                lines.append(f"{line} {_attributes(inner)}".rstrip())
                listed += 1
    if listed != len(graph.functions):
        lines.append(f"  ({len(graph.functions) - listed} functions not reachable from the root)")
    return "\n".join(lines)


# --- Evaluation on the real patches ---------------------------------------------------------


@dataclass(frozen=True)
class Patches:
    """Real 1 m patches: ``images`` (N, 4, H, W) float32 DN 0-255 (R, G, B, NIR) and
    ``labels`` (N, H, W) int64 in the model's classes (0 = no data)."""

    names: list[str]
    images: np.ndarray
    labels: np.ndarray


def load_patches(folder: Path = PATCHES) -> Patches:
    """The ``*.npz`` patches of ``folder``, labels mapped with :data:`LABEL_REMAP`."""
    files = sorted(folder.glob("*.npz"))
    if not files:
        raise FileNotFoundError(f"no .npz patches in {folder}")
    images, labels = [], []
    for file in files:
        with np.load(file) as archive:
            array = archive[archive.files[0]]
        array = array[0] if array.ndim == 4 else array
        images.append(array[list(PATCH_IMAGE_CHANNELS)].astype(np.float32))
        labels.append(apply_remap(array[PATCH_LABEL_CHANNEL].astype(np.int64), LABEL_REMAP))
    return Patches([f.stem for f in files], np.stack(images), np.stack(labels))


@dataclass(frozen=True)
class Scores:
    """Agreement of predictions with reference labels over the classes 1..K.

    ``statistics``: the plugin core's statistics of all patches (rows = prediction,
    columns = reference); ``per_patch_accuracy`` the overall accuracy of each patch.
    """

    statistics: AgreementStatistics
    per_patch_accuracy: list[float]

    def reference_share(self, value: int) -> float:
        """Share of the labelled pixels whose reference is class ``value``."""
        record = self.statistics.class_accuracy(value)
        return (record.reference if record else 0) / max(self.statistics.observations, 1)

    def confused(self, reference: int, predicted: int) -> float:
        """Share of the pixels of reference class ``reference`` predicted ``predicted``."""
        record = self.statistics.class_accuracy(reference)
        count = self.statistics.count(classified=predicted, reference=reference)
        return count / max(record.reference if record else 0, 1)


def predict_classes(scores: np.ndarray) -> np.ndarray:
    """(N, K+1, h, w) scores -> (N, h, w) classes 1..K: argmax over the class channels,
    never the no-data channel 0."""
    return scores[:, 1:].argmax(axis=1) + 1


def score_patches(
    predict: Callable[[np.ndarray], np.ndarray], patches: Patches, margin: int
) -> Scores:
    """Score ``predict`` (DN/256 images (N, 4, H, W) -> scores (N, K+1, H-2m, W-2m)) on
    the centre of each patch, where the model has output; no-data labels are ignored."""
    scores = predict(patches.images * np.float32(INPUT_SCALE))
    predicted = predict_classes(scores)
    size = patches.labels.shape[1]
    reference = patches.labels[:, margin : size - margin, margin : size - margin]
    classes = [c for c in CLASS_NAMES if c != NODATA_CHANNEL]
    total = ConfusionMatrix(classes, ignore_values=[NODATA_CHANNEL])
    per_patch = []
    for patch_predicted, patch_reference in zip(predicted, reference, strict=True):
        matrix = ConfusionMatrix(classes, ignore_values=[NODATA_CHANNEL])
        matrix.update(patch_predicted, patch_reference)
        per_patch.append(float(matrix.statistics().overall_accuracy))
        total.merge(matrix)
    return Scores(total.statistics(CLASS_NAMES), per_patch)


def torch_predictor(network: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return network(torch.from_numpy(images)).numpy()

    return predict


def onnx_predictor(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """The ONNX model as the plugin runs it: loaded and validated against its contract
    by the plugin core, on the CPU."""
    return load_session(path, device="cpu").run


# --- Contract, model card, export ---------------------------------------------------------


def converted_contract(network: Azure2018UNet, source_sha256: str) -> ModelContract:
    """The plugin's model contract for the converted network (without its card)."""
    config = network.config
    return build_contract(
        [ModelClass(channel, name, CLASS_COLORS[channel]) for channel, name in CLASS_NAMES.items()],
        BAND_NAMES,
        EXPORT,
        NORMALIZATION,
        output_margin=config.output_margin,
        nodata_channel=NODATA_CHANNEL,
        provenance={
            "source": SOURCE_URL,
            "source_file": "sample_models/250epochs.model",
            "source_sha256": source_sha256,
            "source_license": "MIT",
            "converter": "model_training/cntk/convert.py",
            "architecture": {
                "c_map": list(config.c_map),
                "num_stack_layers": config.num_stack_layers,
                "centred_channels": list(config.centred_channels),
            },
        },
    )


def _format(value: float | None) -> str:
    return "n/a (absent)" if value is None else f"{value:.3f}"


def heldout_card_section(evaluation: Path | None) -> str:
    """The card's held-out section from the evaluation report (empty without one)."""
    if evaluation is None or not evaluation.is_file():
        return ""
    report = json.loads(evaluation.read_text(encoding="utf-8"))
    if EVALUATED_AS not in report["models"]:
        return ""
    return heldout_section(report, EVALUATED_AS)


def conversion_card(
    scores: Scores, patches: Patches, source_sha256: str, margin: int, heldout: str = ""
) -> ModelCard:
    """The model card, with the accuracy measured on ``patches`` (the conversion check)
    and the ``heldout`` section (the evaluation through the plugin)."""
    class_rows = tuple(
        (str(c.value), CLASS_NAMES[c.value], f"`{CLASS_COLORS[c.value]}`",
         f"{scores.reference_share(c.value):.1%}", _format(c.iou))
        for c in scores.statistics.classes
    )  # fmt: skip
    patch_rows = tuple(
        (f"`{name}`", f"{accuracy:.3f}")
        for name, accuracy in zip(patches.names, scores.per_patch_accuracy, strict=True)
    )
    output = patches.images.shape[-1] - 2 * margin
    low_vegetation_as_tree = scores.confused(reference=3, predicted=2)
    weakest_index = int(np.argmin(scores.per_patch_accuracy))
    weakest = patches.names[weakest_index]
    size = patches.labels.shape[-1]
    centre = patches.labels[weakest_index, margin : size - margin, margin : size - margin]
    weakest_low_vegetation = float(np.mean(centre[centre > 0] == 3))
    conversion_check = CardSection(
        "Conversion check",
        (
            f"Evaluated by the converter with ONNX Runtime on the {len(patches.names)} real "
            "256 x 256 patches of `data/chesapeake_1m_patches` (NAIP tile m_3708020_sw_17_1, "
            "West Virginia, 2014; Chesapeake 7-class labels mapped 5, 6 -> 4), scoring "
            f"the centre {output} x {output} of each patch, "
            f"{scores.statistics.observations:,} labelled pixels:",
            "",
            f"- Overall accuracy: **{scores.statistics.overall_accuracy:.3f}**",
            f"- Cohen's kappa: **{scores.statistics.kappa.value:.3f}**",
            "",
            CardTable(("patch", "overall accuracy"), patch_rows),
        ),
    )
    return ModelCard(
        title="azure-2018-unet: the 2018 AI for Earth land-cover model",
        summary=(
            "A U-Net-like encoder-decoder that classifies 1 m NAIP aerial imagery into four "
            "land-cover classes. It is the trained model of Microsoft's 2018 "
            "*pixel-level land classification* sample (Microsoft Research and AI for Earth "
            "with the Chesapeake Conservancy and Esri), converted from CNTK to ONNX by "
            "`model_training/cntk/convert.py` without CNTK."
        ),
        sources=(
            f"Model: `sample_models/250epochs.model` of {SOURCE_URL} (SHA-256 "
            f"`{source_sha256}`), trained 250 epochs of 16,000 patches.",
            "Licence: MIT, Copyright (c) Microsoft Corporation (`LICENSE.azure_2018` beside "
            "this file). The conversion code is GPL-2.0-or-later; the weights keep their "
            "MIT licence.",
            "Conversion: the CNTK protobuf graph is parsed, the network rebuilt in PyTorch "
            "and matched against the graph node by node, exported to ONNX (opset "
            f"{EXPORT.opset}), and ONNX Runtime checked against PyTorch.",
        ),
        training_data=(
            "NAIP 1 m aerial imagery (red, green, blue, near-infrared) of the Chesapeake Bay "
            "watershed, 2013-2014, with the Chesapeake Conservancy high-resolution land "
            "cover of the same years as labels (classes 5 and 6, impervious, merged into "
            "class 4). Patches of 256 x 256 px; the loss was computed on the centre "
            "128 x 128 only.",
        ),
        classes=(
            "Raster value = output channel. Channel 0 (no data) is never chosen by argmax.",
            "",
            CardTable(
                ("value", "class", "colour", "share of evaluation pixels", "IoU"), class_rows
            ),
        ),
        inputs=(
            "Bands, in this order: red, green, blue, near-infrared (NAIP band order).",
            "Resolution: 1 m per pixel; other resolutions are resampled to 1 m by the "
            "classifier, with some loss of accuracy.",
            "Values: 8-bit digital numbers 0-255, divided by 256 before the network "
            "(`input_scale`); the network subtracts each tile's own mean from red, green and "
            "blue (not NIR) itself.",
            f"Tiles of 256 x 256 px; the model returns the centre {output} x {output} "
            f"(`output_margin` {margin}), so tiles overlap by {2 * margin} px.",
            "A second output, `features`, holds the 64 penultimate feature channels (the "
            "input of the final 3 x 3 convolution, metadata `features_output`), from which "
            "`landcover:adapt_model` re-fits that last layer on a few labelled points; "
            "classification reads only the scores.",
        ),
        sections=(*([heldout] if heldout else []), conversion_check),
        limits=(
            "Trained on Chesapeake-region NAIP of 2013-2014 only; other regions, seasons, "
            "sensors or years (NAIP radiometry changes between acquisitions) score lower.",
            "The evaluation patches lie in the region the model was trained on, and the "
            "2018 training tiles are not published: this tile may have been among them, so "
            "no figure above is an independent test of the model.",
            "Water is absent from the evaluation pixels and barren / impervious covers "
            f"{scores.reference_share(4):.1%} of them: the figures say "
            "little or nothing about those classes.",
            f"Low vegetation is the weak class: {low_vegetation_as_tree:.0%} of its "
            f"evaluation pixels are called tree canopy; the weakest patch (`{weakest}`, "
            f"{weakest_low_vegetation:.0%} low vegetation) scores "
            f"{min(scores.per_patch_accuracy):.2f}.",
            "Each tile's own mean is subtracted from red, green and blue, so tiles of one "
            "uniform cover (all water, all forest) may be less reliable.",
        ),
    )


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert` measured: the largest ONNX Runtime - PyTorch score difference
    on the check patches, and the ONNX model's scores on all patches."""

    max_abs_diff: float
    scores: Scores
    contract: ModelContract


def convert(
    model_path: Path = DEFAULT_MODEL,
    output: Path = DEFAULT_OUTPUT,
    card_path: Path | None = None,
    patches_folder: Path = PATCHES,
    max_abs_diff: float = MAX_ABS_DIFF,
    evaluation: Path | None = EVALUATION,
) -> Conversion:
    """Convert ``model_path`` to ``output`` (ONNX with the model contract) and write the
    model card to ``card_path`` (default: ``output`` with ``.md``). Nothing is written
    unless ONNX Runtime agrees with PyTorch within ``max_abs_diff`` on the first
    :data:`CHECK_PATCHES` patches. ``evaluation``: the held-out report whose
    :data:`EVALUATED_AS` entry the card quotes (none when missing)."""
    card_path = card_path or output.with_suffix(".md")
    network, _graph = load_cntk_network(model_path)
    patches = load_patches(patches_folder)
    margin = network.config.output_margin
    sample = torch.from_numpy(patches.images[:CHECK_PATCHES] * np.float32(INPUT_SCALE))
    source_sha256 = file_sha256(model_path)
    with atomic_output(output) as onnx_path, atomic_output(card_path) as temporary_card:
        # The card reports the exported model's accuracy: export, measure, then store it.
        contract = converted_contract(network, source_sha256)
        difference = export_onnx(
            network, onnx_path, contract, sample, opset=EXPORT.opset, tolerance=max_abs_diff
        )
        scores = score_patches(onnx_predictor(onnx_path), patches, margin)
        heldout = heldout_card_section(evaluation)
        card = conversion_card(scores, patches, source_sha256, margin, heldout)
        # The export added the features output (features_output) to the contract.
        exported = read_contract(onnx_path).features_output
        contract = with_card(replace(contract, features_output=exported), card)
        write_metadata(onnx_path, contract)
        temporary_card.write_text(contract.model_card, encoding="utf-8")
    return Conversion(difference, scores, contract)


# --- Command line ---------------------------------------------------------------------------


def _summary(label: str, scores: Scores) -> str:
    per_patch = " ".join(f"{a:.3f}" for a in scores.per_patch_accuracy)
    statistics = scores.statistics
    return (
        f"{label}: overall accuracy {statistics.overall_accuracy:.4f}, kappa "
        f"{statistics.kappa.value:.4f} on {statistics.observations:,} pixels (per patch: "
        f"{per_patch})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.cntk.convert",
        description="Convert the 2018 CNTK land-cover model to ONNX, without CNTK.",
    )
    parser.add_argument("model", nargs="?", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--list", action="store_true", help="list parameters and functions")
    parser.add_argument(
        "--evaluate",
        action="store_true",
        help="only score the rebuilt network on the patches, write nothing",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="ONNX file")
    parser.add_argument("--card", type=Path, default=None, help="model card (default: .md)")
    parser.add_argument("--patches", type=Path, default=PATCHES, help="evaluation patches")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.list:
        print(describe(load_graph(args.model)))
        return 0
    if args.evaluate:
        network, _ = load_cntk_network(args.model)
        patches = load_patches(args.patches)
        scores = score_patches(torch_predictor(network), patches, network.config.output_margin)
        print(_summary(f"{args.model.name} (PyTorch)", scores))
        return 0
    result = convert(args.model, args.output, args.card, args.patches)
    print(f"wrote {args.output} ({args.output.stat().st_size:,} bytes)")
    print(
        f"ONNX Runtime vs PyTorch on {CHECK_PATCHES} patches: max abs diff "
        f"{result.max_abs_diff:.3g} (allowed {MAX_ABS_DIFF:g})"
    )
    print(_summary("ONNX Runtime", result.scores))
    if args.output.resolve().parent == MODELS_DIR.resolve():
        for entry in update_catalogue():
            print(f"catalogue: {entry['name']}: {entry['size']:,} bytes, sha256 {entry['sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
