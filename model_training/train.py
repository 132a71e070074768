# SPDX-License-Identifier: GPL-2.0-or-later
"""Train the land-cover U-Net; the entry point ``torchrun`` launches.

One machine, N processes (GPUs, or CPU shares)::

    torchrun --standalone --nproc_per_node N model_training/train.py \\
        --config model_training/configs/default.yaml --set train.run_dir=runs/exp1

Several machines: the same command on each, with ``--nnodes M --node_rank I
--rdzv_backend c10d --rdzv_endpoint HOST:PORT`` (see ``model_training/README.md``).

Continue a stopped run exactly where its last checkpoint left it::

    torchrun ... model_training/train.py --resume runs/exp1

``--resume auto`` continues the configured run folder when it has a checkpoint and
starts fresh otherwise (for jobs that a scheduler may requeue). Any setting can be
overridden with ``--set section.field=value`` (YAML value syntax, repeatable); on
resume the run's saved configuration is used, plus the overrides.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train the land-cover U-Net (PyTorch DDP; launch with torchrun).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("--config", type=Path, help="YAML or TOML configuration file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. train.epochs=5 or data.train=[pairs.csv]",
    )
    parser.add_argument(
        "--resume",
        metavar="auto|RUN_DIR|CHECKPOINT",
        help="continue a run from its last checkpoint (a run folder or a checkpoint file); "
        "'auto': the configured run folder if it has one, else start fresh",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from model_training.checkpoint import load_checkpoint, resolve_checkpoint
    from model_training.config import Config, apply_overrides, config_from_dict, load_config
    from model_training.trainer import run_command
    from qgis_landcover.core.errors import LandcoverError

    args = parse_args(argv)

    def prepare() -> tuple[Config, dict[str, Any] | None]:
        config = (
            load_config(args.config, args.overrides) if args.config or not args.resume else None
        )
        resume: dict[str, Any] | None = None
        if args.resume:
            if args.resume == "auto":
                if config is None:
                    raise LandcoverError("--resume auto needs --config (to know the run folder).")
                checkpoint = resolve_checkpoint("auto", Path(config.train.run_dir))
                resume = load_checkpoint(checkpoint) if checkpoint.is_file() else None
            else:
                resume = load_checkpoint(resolve_checkpoint(args.resume, Path(args.resume)))
            if resume is not None:
                config = config_from_dict(apply_overrides(resume["config"], args.overrides))
        assert config is not None
        return config, resume

    return run_command(prepare)


if __name__ == "__main__":
    if __package__ in (None, ""):
        # `torchrun model_training/train.py` runs this file as a script: import the
        # package from the repository root, not from this folder (whose module names,
        # e.g. `data`, would shadow others).
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    raise SystemExit(main())
