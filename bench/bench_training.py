# SPDX-License-Identifier: GPL-2.0-or-later
"""Training throughput of ``model_training`` (samples/s, 256 x 256 px, 4 bands).

Runs the real entry point (``torchrun model_training/train.py``) on the real 1 m NAIP
mosaic shipped in ``data/``, with the default U-Net, and reads the throughput the
trainer logs (optimizer steps x global batch / wall time, data loading included; the
first logging interval is warm-up and left out).

* CPU: 1 process and 2 processes (gloo), one thread per process, and the scaling
  efficiency ``rate(2) / (2 x rate(1))``; also 1 process using every core.
* GPU (when CUDA is available): 1 process on one GPU with bf16 autocast, compared with
  the 2018 system's 11.3 samples/s on one K80.

Usage: ``python bench/bench_training.py [--steps 8] [--batch 4] [--gpu-batch 32]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MOSAIC = ROOT / "data" / "chesapeake_1m_patches"
K80_2018 = 11.3  # samples/s of 256 x 256 on one K80, the 2018 CNTK system


def measure(
    nproc: int, threads: int, steps: int, batch: int, *, gpu: bool = False
) -> dict[str, float]:
    """Run ``steps`` optimizer steps; return the mean logged samples/s after warm-up."""
    log_every = max(1, steps // 4)
    with tempfile.TemporaryDirectory(prefix="bench_training_") as run_dir:
        settings = {
            "data.train": [
                {
                    "image": str(MOSAIC / "m_3708020_sw_17_1_2014_mosaic_naip.tif"),
                    "label": str(MOSAIC / "m_3708020_sw_17_1_2014_mosaic_labels.tif"),
                }
            ],
            "data.val": [],
            "data.patch_size": 256,
            "data.cache": True,
            "data.num_workers": 8 if gpu else 0,
            "sampler.rare_classes": [4],
            "train.run_dir": run_dir,
            "train.epochs": 1,
            "train.steps_per_epoch": steps,
            "train.batch_size": batch,
            "train.threads": threads,
            "train.log_every": log_every,
            "train.checkpoint_every": 0,
            "train.progress": False,
            "train.amp": "bf16" if gpu else "none",
            "optim.warmup_steps": 1,
        }
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc_per_node", str(nproc), str(ROOT / "model_training" / "train.py"),
        ]  # fmt: skip
        for key, value in settings.items():
            command += ["--set", f"{key}={json.dumps(value)}"]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
        if not gpu:
            env["CUDA_VISIBLE_DEVICES"] = ""
        completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        if completed.returncode != 0:
            raise SystemExit(
                f"training failed:\n{completed.stdout[-2000:]}{completed.stderr[-4000:]}"
            )
        with (Path(run_dir) / "train.csv").open(newline="") as stream:
            rates = [float(row["samples_per_s"]) for row in csv.DictReader(stream)]
    timed = rates[1:] or rates  # the first interval holds start-up and warm-up
    return {"samples_per_s": sum(timed) / len(timed), "intervals": len(timed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=4, help="patches per process and step (CPU)")
    parser.add_argument("--gpu-batch", type=int, default=32, help="patches per step on a GPU")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"Training throughput, U-Net default config, 256 x 256 x 4, batch {args.batch}/process")
    one = measure(1, 1, args.steps, args.batch)["samples_per_s"]
    two = measure(2, 1, args.steps, args.batch)["samples_per_s"]
    print(f"  CPU 1 process x 1 thread : {one:7.2f} samples/s")
    print(f"  CPU 2 processes x 1 thread: {two:7.2f} samples/s")
    print(f"  scaling efficiency rate(2) / (2 x rate(1)) = {two / (2 * one):.2f}")
    if cores > 1:
        every = measure(1, cores, args.steps, args.batch)["samples_per_s"]
        print(f"  CPU 1 process x {cores} threads: {every:7.2f} samples/s")
    import torch

    if torch.cuda.is_available():
        gpu = measure(1, 4, args.steps, args.gpu_batch, gpu=True)["samples_per_s"]
        name = torch.cuda.get_device_name(0)
        print(f"  GPU ({name}), bf16, batch {args.gpu_batch}: {gpu:8.1f} samples/s")
        print(f"  vs the 2018 K80 ({K80_2018} samples/s): {gpu / K80_2018:.0f}x")
    else:
        print("  GPU: none available (CUDA not found); skipped")


if __name__ == "__main__":
    main()
