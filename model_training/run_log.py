# SPDX-License-Identifier: GPL-2.0-or-later
"""Training records on rank 0: ``train.csv`` (per logged step), ``val.csv`` (per
epoch), TensorBoard events, and a summary plot (``summary.png``) at the end.

On resume, rows after the resumed step are dropped first, so a run killed between a
checkpoint and its next log has no duplicated or orphaned rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class RunLog:
    """Appends metrics rows to CSV files and TensorBoard.

    Args:
        run_dir: the run folder.
        resume_step: the step a resumed run restarts from (``None``: fresh run).
        tensorboard: also write TensorBoard events (``run_dir/tensorboard``).
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.run_dir = run_dir
        self.files = {"train": run_dir / "train.csv", "val": run_dir / "val.csv"}
        for path in self.files.values():
            if resume_step is None:
                path.unlink(missing_ok=True)
            else:
                truncate_after(path, resume_step)
        self.writer: Any = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(
                str(run_dir / "tensorboard"),
                purge_step=None if resume_step is None else resume_step + 1,
            )

    def log(self, split: str, step: int, values: Mapping[str, float]) -> None:
        """One row of ``split`` (``train`` or ``val``) at optimizer step ``step``."""
        row = {"step": step, **values}
        path = self.files[split]
        exists = path.exists() and path.stat().st_size > 0
        fields = read_header(path) if exists else list(row)
        with path.open("a", newline="", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=fields, extrasaction="ignore")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for name, value in values.items():
                if name != "epoch" and isinstance(value, int | float) and math.isfinite(value):
                    self.writer.add_scalar(f"{split}/{name}", value, step)
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def plot(self, path: Path) -> Path | None:
        """Loss and mean IoU curves as a PNG; ``None`` when nothing was logged."""
        train = read_rows(self.files["train"])
        val = read_rows(self.files["val"])
        if not train and not val:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        figure, (loss_axes, iou_axes) = plt.subplots(1, 2, figsize=(11, 4))
        if train:
            loss_axes.plot(column(train, "step"), column(train, "loss"), label="training")
        if val:
            loss_axes.plot(column(val, "step"), column(val, "loss"), "o-", label="validation")
            iou_axes.plot(column(val, "step"), column(val, "miou"), "o-", label="mean IoU")
            iou_axes.plot(
                column(val, "step"), column(val, "overall_accuracy"), "s--", label="overall acc."
            )
        loss_axes.set(xlabel="optimizer step", ylabel="loss", title="Loss")
        iou_axes.set(xlabel="optimizer step", ylabel="score", title="Validation", ylim=(0, 1))
        for axes in (loss_axes, iou_axes):
            axes.grid(alpha=0.3)
            axes.legend()
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return path


def read_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as stream:
        return next(csv.reader(stream))


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


def column(rows: list[dict[str, str]], name: str) -> list[float]:
    return [float(row[name]) if row.get(name) not in (None, "") else math.nan for row in rows]


def truncate_after(path: Path, step: int) -> None:
    """Drop rows logged after ``step`` (they belong to the part of a run that was lost)."""
    rows = read_rows(path)
    if not rows:
        return
    fields = read_header(path)
    kept = [row for row in rows if int(float(row["step"])) <= step]
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
