# SPDX-License-Identifier: GPL-2.0-or-later
"""Ship a trained model in the plugin: the evaluated ONNX file, its model card
completed with the held-out evaluation through the plugin, and the catalogue's
SHA-256 and size of every model in ``qgis_landcover/models``.

The weights and graph are copied byte for byte from the file that was evaluated; only
the ``model_card`` metadata changes (and the card is written beside it as Markdown)::

    python -m model_training.release.ship runs/finetune_2018/model.onnx \\
        qgis_landcover/models/azure_2018_unet_finetuned.onnx \\
        --evaluation model_training/release/evaluation/heldout.json \\
        --notes model_training/release/evaluation/azure_2018_unet_finetuned.yaml
    python -m model_training.release.ship --catalogue-only      # refresh SHA-256 and size

The notes file (YAML) says what the training record cannot: ``evaluated_as`` (the
model's name in the evaluation report), ``sources`` and ``limits`` (lists of lines).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from qgis_landcover.core.errors import InputError, LandcoverError
from qgis_landcover.core.files.atomic import atomic_output
from qgis_landcover.core.files.checksum import file_sha256
from qgis_landcover.core.models.catalogue import BUILTIN_CATALOGUE, read_catalogue
from qgis_landcover.core.models.contract import ModelContract, read_contract

from ..config import config_from_dict
from ..onnx_metadata import write_metadata
from .contract import with_card
from .evaluate_models import heldout_section
from .model_card import CardNotes, trained_model_card

#: Known limits of every model trained on the shipped 1 m patches.
PATCH_LIMITS = (
    "This project's training used 6 patches of 256 x 256 px (393,216 px) of one NAIP tile "
    "(m_3708020_sw_17_1, West Virginia, 2014) with Chesapeake Conservancy 2013/14 labels: "
    "96 % tree canopy, 3.9 % low vegetation, 0.2 % impervious, no water, no barren land.",
    "Water is absent from both the training and the evaluation pixels: the water class "
    "is unmeasured (and, for a model trained from scratch, never learnt).",
    "Chesapeake-region NAIP of 2013-2014 only; other regions, seasons, sensors or years "
    "(NAIP radiometry changes between acquisitions) are unmeasured.",
)

#: The largest model file the plugin ships.
MAX_SHIPPED_BYTES = 10 * 1024 * 1024


def card_notes(
    report: dict[str, Any] | None,
    name: str | None,
    sources: Sequence[str] = (),
    limits: Sequence[str] = (),
) -> CardNotes:
    """The notes for a model card: ``sources`` (source and licence bullet points), the
    held-out section of model ``name`` in the evaluation ``report`` (see
    :func:`~model_training.release.evaluate_models.report_json`), :data:`PATCH_LIMITS` and
    ``limits``."""
    evaluation = ""
    if report is not None and name is not None:
        if name not in report["models"]:
            raise InputError(
                f"The evaluation report has no model {name!r} "
                f"(it has {', '.join(report['models'])})."
            )
        evaluation = heldout_section(report, name)
    return CardNotes(tuple(sources), evaluation, (*PATCH_LIMITS, *limits))


def read_notes(path: Path | None, report: dict[str, Any] | None) -> CardNotes:
    """:func:`card_notes` from a YAML notes file (``evaluated_as``, ``sources``,
    ``limits``; all optional) and the evaluation ``report``."""
    if path is None:
        return card_notes(report, None)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise InputError(f"Cannot read the card notes {path}: {error}") from error
    unknown = set(data) - {"evaluated_as", "sources", "limits"}
    if unknown:
        raise InputError(f"{path}: unknown keys {sorted(unknown)}.")
    return card_notes(
        report,
        data.get("evaluated_as"),
        [str(line) for line in data.get("sources", [])],
        [str(line) for line in data.get("limits", [])],
    )


def ship(source: Path, destination: Path, notes: CardNotes) -> ModelContract:
    """Copy the trained ONNX model ``source`` to ``destination`` with its model card
    rebuilt from its own provenance plus ``notes``; write the card beside it (``.md``).
    Nothing is replaced unless both files are complete."""
    contract = read_contract(source)
    provenance = contract.provenance
    if "config" not in provenance:
        raise InputError(f"{source} was not exported by model_training (no configuration).")
    config = config_from_dict(provenance["config"])
    card = trained_model_card(contract, config, provenance.get("metrics") or {}, provenance, notes)
    shipped = with_card(contract, card)
    card_path = destination.with_suffix(".md")
    with atomic_output(destination) as onnx_path, atomic_output(card_path) as card_temporary:
        shutil.copyfile(source, onnx_path)
        write_metadata(onnx_path, shipped)
        if read_contract(onnx_path) != shipped:
            raise LandcoverError(f"The metadata written to {destination} does not read back.")
        if onnx_path.stat().st_size > MAX_SHIPPED_BYTES:
            raise InputError(f"{source} is over {MAX_SHIPPED_BYTES:,} bytes: too big to ship.")
        card_temporary.write_text(shipped.model_card, encoding="utf-8")
    return shipped


def update_catalogue(path: Path = BUILTIN_CATALOGUE) -> list[dict[str, Any]]:
    """Record the SHA-256 and size of every local (``file``) model of the catalogue at
    ``path``; URL entries are left as they are. Returns the updated local entries."""
    document = json.loads(path.read_text(encoding="utf-8"))
    updated = []
    for entry in document["models"]:
        if "file" not in entry:
            continue
        model = path.parent / entry["file"]
        if not model.is_file():
            raise InputError(f"Catalogue entry {entry['name']!r}: {model} is missing.")
        entry["sha256"] = file_sha256(model)
        entry["size"] = model.stat().st_size
        updated.append(entry)
    with atomic_output(path) as temporary:
        temporary.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        read_catalogue(temporary)  # still a valid catalogue
    return updated


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m model_training.release.ship", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("source", nargs="?", type=Path, help="the evaluated ONNX model")
    parser.add_argument("destination", nargs="?", type=Path, help="where to ship it")
    parser.add_argument("--evaluation", type=Path, help="evaluate_models report.json")
    parser.add_argument("--notes", type=Path, help="card notes (YAML)")
    parser.add_argument(
        "--catalogue-only", action="store_true", help="only refresh the catalogue's checksums"
    )
    args = parser.parse_args(argv)
    try:
        if not args.catalogue_only:
            if args.source is None or args.destination is None:
                parser.error("give SOURCE and DESTINATION (or --catalogue-only)")
            report = None
            if args.evaluation is not None:
                report = json.loads(args.evaluation.read_text(encoding="utf-8"))
            notes = read_notes(args.notes, report)
            ship(args.source, args.destination, notes)
            print(f"wrote {args.destination} and {args.destination.with_suffix('.md')}")
        for entry in update_catalogue():
            print(f"catalogue: {entry['name']}: {entry['size']:,} bytes, sha256 {entry['sha256']}")
    except (LandcoverError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
