# SPDX-License-Identifier: GPL-2.0-or-later
"""Issue #15's evaluation in ``make bench``: local adaptation from N labelled points on
the shipped mosaic's held-out right column, against the unadapted, fine-tuned and
majority-class maps (overall accuracy, kappa, mean IoU), with the adaptation time.

It runs :mod:`model_training.release.evaluate_adaptation` (the evaluation behind
``model_training/release/EVALUATION.md``) on a reduced grid so that ``make bench`` stays
within minutes on 2 cores: N = 50, 200, 500 stratified random points, 2 seeds, the
uncertainty loop at N = 200, no ablations. The full grid (N = 25-500, 5 seeds, the
uncertainty loop at 50-500, ablations; about 16 minutes on one core) is
``python bench/bench_adaptation.py --full``. The table is printed and written to
``runs/adaptation_bench/results.md`` (about a minute on 2 idle cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REDUCED = [
    "--sizes", "50", "200", "500",
    "--seeds", "0", "1",
    "--suggested-sizes", "200",
    "--no-ablations",
]  # fmt: skip


def main() -> int:
    from model_training.release.evaluate_adaptation import main as evaluate

    folder = ROOT / "runs" / "adaptation_bench"
    grid = [] if "--full" in sys.argv[1:] else REDUCED
    return evaluate([*grid, "--output-dir", str(folder)])  # prints the table


if __name__ == "__main__":
    raise SystemExit(main())
