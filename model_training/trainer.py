# SPDX-License-Identifier: GPL-2.0-or-later
"""The training loop: DistributedDataParallel over ``torchrun`` processes, mixed
precision on GPUs, gradient accumulation, warm-up + cosine / step learning rate,
atomic checkpoints with exact resume, validation with the plugin core's metrics, and
the ONNX export at the end.

Use it through ``model_training/train.py`` (the ``torchrun`` entry point) or
:func:`run` (one process, e.g. notebooks and tests).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from qgis_landcover.core.accuracy.confusion import ConfusionMatrix
from qgis_landcover.core.accuracy.statistics import accuracy_statistics
from qgis_landcover.core.errors import InputError, LandcoverError
from qgis_landcover.core.inference.normalization import Normalizer

from . import distributed
from .checkpoint import BEST, LAST, load_checkpoint, model_weights, save_checkpoint
from .config import Config, OptimConfig, save_config
from .data import open_sources, resolve_pairs
from .distributed import Context
from .export import build_model, export_onnx, inference_network, software_versions, timestamp
from .labels import IGNORE_INDEX, LabelMapper
from .loader import TrainPatches, ValidationTiles, train_loader, validation_loader
from .losses import build_loss, class_weights_from_counts
from .normalization import DataStatistics, sample_statistics
from .release.contract import trained_contract
from .run_log import RunLog
from .sampler import PatchSampler, validation_windows

CHECKPOINT_VERSION = 1


@dataclass
class RunResult:
    """What a finished run produced (on rank 0; other ranks get the same numbers)."""

    run_dir: Path
    steps: int
    model_path: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)
    export_difference: float | None = None


def lr_factor(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Learning-rate multiplier for optimizer step ``step`` (0-based): linear warm-up
    over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` at ``total_steps``, a
    ``step_gamma`` drop every ``step_every`` steps, or constant."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    if optim.schedule == "constant":
        return 1.0
    if optim.schedule == "step":
        return optim.step_gamma ** (step // optim.step_every)
    progress = min(1.0, (step - optim.warmup_steps) / max(1, total_steps - optim.warmup_steps))
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_amp(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU has it (fp16 otherwise) for ``auto``;
    none on CPU, where mixed precision does not pay."""
    if device.type != "cuda" or setting == "none":
        return None
    if setting == "bf16" or (setting == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


class Trainer:
    """One process's share of a training run (see :func:`run`).

    Built in steps, each a ``configure_*`` method that reads what the ones before it
    set: torch switches, the run folder, the data, the normalisation (and the model
    contract), the datasets, the loss, the model, the optimizer, the starting point
    (a fresh start or a checkpoint), the distributed wrapper and the logs.
    """

    def __init__(self, config: Config, context: Context, resume: dict[str, Any] | None = None):
        """``resume``: a loaded checkpoint to continue from (:func:`run`)."""
        self.config = config
        self.context = context
        self.device = context.device
        self.run_dir = Path(config.train.run_dir)
        self.class_values = config.class_values
        self.margin = config.model.output_margin
        self.configure_torch()
        self.configure_run_folder()
        self.configure_data()
        self.configure_normalization(resume)
        self.configure_datasets()
        self.configure_loss()
        self.configure_model(resume)
        self.configure_optimizer()
        self.configure_start(resume)
        self.configure_distributed()
        self.configure_logging(resume)

    # -- set-up --------------------------------------------------------------------

    def configure_torch(self) -> None:
        """Threads, determinism and speed switches for this process."""
        train = self.config.train
        if train.threads > 0:
            torch.set_num_threads(train.threads)
        if train.deterministic:
            # cuBLAS is deterministic only with a fixed workspace (read at first use).
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    def configure_run_folder(self) -> None:
        """Rank 0 creates the run folder (with ``checkpoints/``) and saves the resolved
        configuration there; every rank waits until it exists."""
        if self.context.is_main:
            (self.run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.run_dir / "config.yaml")
        distributed.barrier(self.context)

    def configure_data(self) -> None:
        """The label mapping (raw label values -> channels) and the training and
        validation sources: image / label pairs, opened in this process."""
        config = self.config
        self.mapper = LabelMapper(
            config.labels.remap, self.class_values, config.labels.ignore_values
        )
        d = config.data
        self.train_pairs = resolve_pairs(d.train, d.image_suffix, d.label_suffix)
        self.val_pairs = resolve_pairs(d.val, d.image_suffix, d.label_suffix)
        source_args = (d.bands, d.label_band, d.npz_image_channels, d.npz_label_channel, d.cache)
        self.train_sources = open_sources(self.train_pairs, self.mapper, *source_args)
        self.val_sources = open_sources(self.val_pairs, self.mapper, *source_args)

    def configure_normalization(self, resume: dict[str, Any] | None) -> None:
        """Band statistics and class counts (:meth:`data_statistics`) and the model
        contract built from them: the datasets normalise as the exported model will
        declare."""
        self.statistics = self.data_statistics(resume)
        self.contract = trained_contract(self.config, self.statistics.mean, self.statistics.std)

    def configure_datasets(self) -> None:
        """Training patches drawn by this rank's sampler (seeded per rank, rare classes
        over-sampled, augmented) and this rank's share of the validation tiles, both
        normalised as the contract says."""
        config, context = self.config, self.context
        normalizer = Normalizer(self.contract)
        rare = [self.class_values.index(v) for v in config.sampler.rare_classes]
        s = config.sampler
        self.sampler = PatchSampler(
            self.train_sources,
            config.data.patch_size,
            rare,
            s.rare_min_fraction,
            s.common_keep_probability,
            s.min_labelled_fraction,
            s.max_tries,
            seed=config.train.seed,
            rank=context.rank,
        )
        self.train_set = TrainPatches(
            self.sampler, config.augment, normalizer, config.normalization.input_scale
        )
        windows = validation_windows(
            self.val_sources, config.data.patch_size, context.rank, context.world_size, self.margin
        )
        self.val_set = ValidationTiles(self.val_sources, windows, normalizer)

    def configure_loss(self) -> None:
        """The loss on this device, with the class weights of ``loss.class_weights``."""
        loss = self.config.loss
        weights = self.class_weights()
        self.loss_fn = build_loss(
            loss.name,
            None if weights is None else torch.tensor(weights, dtype=torch.float32),
            focal_gamma=loss.focal_gamma,
            dice_weight=loss.dice_weight,
        ).to(self.device)

    def configure_model(self, resume: dict[str, Any] | None) -> None:
        """The network on this device: the same initial weights on every rank (seeded),
        ``model.init_weights`` loaded unless resuming, ``model.freeze`` applied, batch
        norm synchronised across GPUs, channels-last memory on CUDA."""
        config = self.config
        torch.manual_seed(config.train.seed)  # identical initial weights on every rank
        model: nn.Module = build_model(config)
        if config.model.init_weights and resume is None:
            model.load_state_dict(model_weights(Path(config.model.init_weights)))
        self.frozen = freeze_modules(model, config.model.freeze)
        if self.context.distributed and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        # Channels-last lets tensor-core convolutions run without layout transposes.
        self.memory_format = (
            torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        )
        self.model = model.to(self.device, memory_format=self.memory_format)

    def configure_optimizer(self) -> None:
        """AdamW over the trainable weights, the learning-rate schedule (per optimizer
        step, :func:`lr_factor`) and mixed precision: the autocast dtype and, for
        float16, the gradient scaler."""
        config = self.config
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise InputError("model.freeze leaves no weights to train.")
        self.optimizer = torch.optim.AdamW(
            trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay
        )
        self.total_steps = config.train.epochs * config.train.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, config.optim, self.total_steps)
        )
        self.amp_dtype = resolve_amp(config.train.amp, self.device)
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=self.amp_dtype == torch.float16 and self.device.type == "cuda"
        )

    def configure_start(self, resume: dict[str, Any] | None) -> None:
        """Where the loop starts: step 0 with no best epoch yet, or the checkpoint
        ``resume`` (weights, optimizer, schedule, scaler, random state and counters;
        :meth:`restore`)."""
        self.step = 0
        self.next_draw = 0
        self.best_value = -math.inf
        self.best_step = -1
        self.last_metrics: dict[str, Any] = {}
        if resume is not None:
            self.restore(resume)

    def configure_distributed(self) -> None:
        """The module the training step calls: the model wrapped in
        DistributedDataParallel when several processes train (gradients all-reduced
        once per optimizer step), compiled with ``train.compile``. Wrapped after the
        restore, so every rank starts from the checkpoint's weights."""
        self.ddp: nn.Module = self.model
        if self.context.distributed:
            self.ddp = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.forward: nn.Module = torch.compile(self.ddp) if self.config.train.compile else self.ddp

    def configure_logging(self, resume: dict[str, Any] | None) -> None:
        """Rank 0's run log (``train.csv`` / ``val.csv``, cut back to the resumed step)
        and, with ``train.log_samples``, each rank's record of its draws."""
        is_main = self.context.is_main
        self.log = RunLog(self.run_dir, self.step if resume else None) if is_main else None
        self.sample_log = self.open_sample_log() if self.config.train.log_samples else None

    def data_statistics(self, resume: dict[str, Any] | None) -> DataStatistics:
        """Band statistics and class counts: from the checkpoint on resume, else measured
        on rank 0 and shared, so every rank normalises identically."""
        if resume is not None:
            return DataStatistics(**resume["statistics"])
        n = self.config.normalization
        statistics = None
        if self.context.is_main:
            statistics = sample_statistics(
                self.train_sources,
                self.config.data.patch_size,
                len(self.class_values),
                n.input_scale,
                n.windows,
                self.config.train.seed,
            )
            if n.mean is not None:
                statistics.mean = list(n.mean)
            if n.std is not None:
                statistics.std = list(n.std)
        return distributed.broadcast_object(statistics, self.context)

    def class_weights(self) -> list[float] | None:
        setting = self.config.loss.class_weights
        if setting == "none":
            return None
        if setting == "auto":
            weights = class_weights_from_counts(
                self.statistics.class_counts, self.config.loss.max_class_weight
            )
            return [float(w) for w in weights]
        return [float(w) for w in setting]

    def open_sample_log(self) -> Any:
        """Per-rank record of the draws used (for audits and the tests), cut back to the
        resumed position."""
        path = self.run_dir / f"samples_rank{self.context.rank}.csv"
        rows = []
        if path.exists() and self.next_draw:
            with path.open(newline="") as stream:
                rows = [r for r in csv.reader(stream)][1:]
            rows = [r for r in rows if int(r[0]) < self.next_draw]
        stream = path.open("w", newline="")
        writer = csv.writer(stream)
        writer.writerow(["draw", "source", "col", "row"])
        writer.writerows(rows)
        return stream

    # -- checkpoints -----------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "next_draw": self.next_draw,
            "world_size": self.context.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "config": self.config.to_dict(),
            "statistics": asdict(self.statistics),
            "best": {"value": self.best_value, "step": self.best_step},
            "metrics": self.last_metrics,
            "provenance": json.dumps(self.provenance()),
        }

    def restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != CHECKPOINT_VERSION or "optimizer" not in state:
            raise InputError("This checkpoint cannot be resumed (it holds weights only).")
        if state["world_size"] != self.context.world_size and self.context.is_main:
            print(
                f"warning: resuming a {state['world_size']}-process run with "
                f"{self.context.world_size} processes; the sample stream will differ."
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.next_draw = int(state["next_draw"])
        self.best_value = float(state["best"]["value"])
        self.best_step = int(state["best"]["step"])
        self.last_metrics = dict(state.get("metrics") or {})

    def save(self, name: str = LAST) -> None:
        """Rank 0 writes the checkpoint atomically; ``keep_checkpoints`` keeps a copy
        per step as well."""
        if not self.context.is_main:
            return
        path = self.run_dir / "checkpoints" / name
        save_checkpoint(path, self.state())
        if self.config.train.keep_checkpoints and name == LAST:
            shutil.copyfile(path, path.with_name(f"step_{self.step:08d}.pt"))

    # -- the loop ------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self, batches: Iterator[dict[str, torch.Tensor]]) -> torch.Tensor:
        """One optimizer step over ``grad_accum`` micro-batches; returns the mean loss."""
        accum = self.config.train.grad_accum
        self.ddp.train()
        for module in self.frozen:
            module.eval()  # frozen batch norm keeps its statistics
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros((), device=self.device)
        for micro in range(accum):
            batch = next(batches)
            image = batch["image"].to(
                self.device, non_blocking=True, memory_format=self.memory_format
            )
            target = batch["target"].to(self.device, non_blocking=True)
            if self.sample_log is not None:
                csv.writer(self.sample_log).writerows(batch["draw"].tolist())
            last = micro == accum - 1
            # Gradients are all-reduced once per optimizer step, on the last micro-batch.
            sync = (
                contextlib.nullcontext()
                if last or not self.context.distributed
                else self.ddp.no_sync()  # type: ignore[operator]
            )
            with sync:
                with self.autocast():
                    logits = self.forward(image)
                logits, target = self.scored(logits, target)
                loss = self.loss_fn(logits.float(), target)
                self.scaler.scale(loss / accum).backward()
            total += loss.detach()
        if self.config.optim.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return total / accum

    def fit(self) -> RunResult:
        train = self.config.train
        per_step = train.batch_size * train.grad_accum
        progress = self.progress_bar()
        loss_sum = torch.zeros((), device=self.device)
        loss_steps = 0
        started = time.perf_counter()
        steps_timed = 0
        while self.step < self.total_steps:
            epoch = self.step // train.steps_per_epoch
            left = train.steps_per_epoch - self.step % train.steps_per_epoch
            loader = train_loader(
                self.train_set,
                self.next_draw,
                left * per_step,
                train.batch_size,
                self.config.data.num_workers,
                pin=self.device.type == "cuda",
            )
            batches = iter(loader)
            for _ in range(left):
                loss_sum += self.train_step(batches)
                loss_steps += 1
                steps_timed += 1
                self.step += 1
                self.next_draw += per_step
                if progress is not None:
                    progress.update(1)
                end_of_epoch = self.step % train.steps_per_epoch == 0
                if self.step % train.log_every == 0 or end_of_epoch:
                    elapsed = time.perf_counter() - started
                    loss = self.mean_over_ranks(loss_sum / loss_steps)
                    rate = steps_timed * per_step * self.context.world_size / max(elapsed, 1e-9)
                    self.log_train(epoch, loss, rate, progress)
                    loss_sum.zero_()
                    loss_steps = 0
                    started, steps_timed = time.perf_counter(), 0
                if end_of_epoch:
                    self.end_epoch(epoch)
                elif train.checkpoint_every and self.step % train.checkpoint_every == 0:
                    self.save()
            del batches, loader
        if progress is not None:
            progress.close()
        return self.finish()

    def progress_bar(self) -> Any:
        if not (self.context.is_main and self.config.train.progress):
            return None
        from tqdm import tqdm

        return tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True)

    def mean_over_ranks(self, value: torch.Tensor) -> float:
        total = distributed.all_reduce_sum(value.detach().clone().float(), self.context)
        return float(total) / self.context.world_size

    def log_train(self, epoch: int, loss: float, rate: float, progress: Any) -> None:
        if not math.isfinite(loss):
            raise LandcoverError(
                f"Training diverged at step {self.step} (loss {loss}); lower optim.lr "
                "or use train.amp=bf16."
            )
        lr = self.scheduler.get_last_lr()[0]
        if self.log is not None:
            values = {"epoch": epoch, "loss": loss, "lr": lr, "samples_per_s": rate}
            self.log.log("train", self.step, values)
        if progress is not None:
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", rate=f"{rate:.1f}/s")

    def end_epoch(self, epoch: int) -> None:
        """Validation, best-model tracking and the epoch-end checkpoint."""
        distributed.average_batchnorm_statistics(self.model, self.context)
        if len(self.val_pairs):
            metrics = self.validate()
            self.last_metrics = metrics
            best_metric = self.config.train.best_metric
            value = None if best_metric == "none" else metrics.get(best_metric)
            if self.log is not None:
                row = {k: v for k, v in metrics.items() if not isinstance(v, dict)}
                row.update({f"iou_{k}": v for k, v in metrics["iou"].items()})
                self.log.log("val", self.step, {"epoch": epoch, **row})
            if value is not None and value > self.best_value:
                self.best_value, self.best_step = float(value), self.step
                self.save(BEST)
            if self.context.is_main:
                print(
                    f"epoch {epoch + 1}: validation loss {metrics['loss']:.4f}, overall "
                    f"accuracy {fmt(metrics['overall_accuracy'])}, kappa "
                    f"{fmt(metrics['kappa'])}, mean IoU {fmt(metrics['miou'])}",
                    flush=True,
                )
        self.save()

    def scored(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scored part of a batch: logits (N, C, H, W) and targets (N, H, W) without
        ``model.output_margin`` pixels on each side."""
        if logits.shape[-2:] != target.shape[-2:]:
            raise InputError(
                f"The network returns {tuple(logits.shape[-2:])} scores for "
                f"{tuple(target.shape[-2:])} pixels; it must keep the input's size (set "
                "model.output_margin to have the pipeline crop a margin)."
            )
        return crop_margin(logits, self.margin), crop_margin(target, self.margin)

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """Loss and the plugin core's accuracy statistics over the whole validation grid
        (each rank scores its share; counts are summed over ranks)."""
        self.model.eval()
        channels = list(range(len(self.class_values)))
        matrix = ConfusionMatrix(classes=channels, ignore_values=[IGNORE_INDEX])
        loss_total = torch.zeros(2, dtype=torch.float64, device=self.device)
        loader = validation_loader(
            self.val_set,
            self.config.train.val_batch_size,
            self.config.data.num_workers,
            pin=self.device.type == "cuda",
        )
        for batch in loader:
            image = batch["image"].to(
                self.device, non_blocking=True, memory_format=self.memory_format
            )
            target = batch["target"].to(self.device, non_blocking=True)
            with self.autocast():
                logits = self.model(image)
            logits, target = self.scored(logits, target)
            labelled = int((target != IGNORE_INDEX).sum())
            if labelled:
                loss = self.loss_fn(logits.float(), target)
                loss_total += torch.stack([loss.double() * labelled, loss.new_tensor(labelled)])
            predicted = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
            matrix.update(predicted, target.to(torch.uint8).cpu().numpy())
        counts = torch.as_tensor(matrix.aligned_matrix(channels), device=self.device)
        counts = distributed.all_reduce_sum(counts, self.context).cpu().numpy()
        loss_total = distributed.all_reduce_sum(loss_total, self.context)
        names = {v: self.config.labels.classes[v] for v in self.class_values}
        stats = accuracy_statistics(counts, self.class_values, names)
        labelled_total = float(loss_total[1])
        return {
            "loss": float(loss_total[0]) / labelled_total if labelled_total else math.nan,
            "overall_accuracy": stats.overall_accuracy,
            "kappa": stats.kappa.value,
            "miou": stats.mean_iou,
            "pixels": stats.observations,
            "iou": {str(c.value): c.iou for c in stats.classes},
        }

    # -- the end -------------------------------------------------------------------

    def provenance(self) -> dict[str, Any]:
        train = self.config.train
        return {
            "training_data": [p.name for p in self.train_pairs],
            "validation_data": [p.name for p in self.val_pairs],
            "steps": self.step,
            "global_batch": train.batch_size * train.grad_accum * self.context.world_size,
            "world_size": self.context.world_size,
            "best_step": self.best_step,
            "statistics": asdict(self.statistics),
            "config": self.config.to_dict(),
            "software": software_versions(),
            "created": timestamp(),
        }

    def finish(self) -> RunResult:
        """Rank 0 exports the best weights (the last ones with ``best_metric: none`` or
        without validation) to ONNX with the contract, writes ``metrics.json`` and the
        summary plot."""
        if self.sample_log is not None:
            self.sample_log.close()
        digests = distributed.gather_object(distributed.state_digest(self.model), self.context)
        if len(set(digests)) > 1 and self.context.is_main:
            print("warning: the model replicas differ between ranks", flush=True)
        result = RunResult(self.run_dir, self.step, None, dict(self.last_metrics))
        if self.context.is_main:
            assert self.log is not None
            self.log.close()
            plot = self.log.plot(self.run_dir / "summary.png")
            best_path = self.run_dir / "checkpoints" / BEST
            weights = self.model.state_dict()
            metrics = self.last_metrics
            if self.config.train.best_metric != "none" and best_path.is_file():
                best = load_checkpoint(best_path)
                weights, metrics = best["model"], best["metrics"]
            model = build_model(self.config)
            model.load_state_dict(weights)
            model = inference_network(model, self.margin)
            provenance = {**self.provenance(), "metrics": metrics}
            contract = trained_contract(
                self.config,
                self.statistics.mean,
                self.statistics.std,
                metrics=metrics,
                provenance=provenance,
            )
            path = self.run_dir / "model.onnx"
            sample = self.export_sample()
            e = self.config.export
            difference = export_onnx(model, path, contract, sample, opset=e.opset)
            result = RunResult(self.run_dir, self.step, path, dict(metrics), difference)
            if e.fp16:
                export_onnx(model, path.with_suffix(".fp16.onnx"), contract, sample, fp16=True)
            summary = {
                "model": str(path),
                "steps": self.step,
                "best_step": self.best_step,
                "validation": metrics,
                "onnx_max_abs_difference": difference,
                "replica_digests": digests,
                "summary_plot": str(plot) if plot else None,
            }
            (self.run_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        distributed.barrier(self.context)
        return result

    def export_sample(self) -> torch.Tensor:
        """Two real, normalised tiles (validation if any, else training draws)."""
        if len(self.val_set):
            items = [self.val_set[i] for i in range(min(2, len(self.val_set)))]
        else:
            items = [self.train_set[i] for i in range(2)]
        return torch.stack([item["image"] for item in items])


def crop_margin(tensor: torch.Tensor, margin: int) -> torch.Tensor:
    """``tensor`` (..., H, W) without ``margin`` pixels on each side of its last two axes."""
    if margin == 0:
        return tensor
    return tensor[..., margin:-margin, margin:-margin]


def freeze_modules(model: nn.Module, paths: list[str]) -> list[nn.Module]:
    """Fix the weights of the sub-modules at ``paths`` (e.g. ``network.stem``) and return
    them (the loop keeps them in inference mode, so batch norm keeps its statistics)."""
    modules = []
    for path in paths:
        try:
            module = model.get_submodule(path)
        except AttributeError as error:
            names = ", ".join(name for name, _ in model.named_children())
            raise InputError(
                f"model.freeze: the network has no module {path!r} (top level: {names})."
            ) from error
        for parameter in module.parameters():
            parameter.requires_grad_(False)
        modules.append(module)
    return modules


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def run(config: Config, resume: dict[str, Any] | None = None) -> RunResult:
    """Train with ``config`` in this process (joining the ``torchrun`` group when
    launched by it); ``resume`` is a loaded checkpoint to continue from."""
    context = distributed.setup(config.train.backend)
    try:
        return Trainer(config, context, resume).fit()
    finally:
        distributed.teardown()


def run_command(prepare: Callable[[], tuple[Config, dict[str, Any] | None]]) -> int:
    """A training command line's run: :func:`run` the configuration (and loaded
    checkpoint, or ``None``) that ``prepare`` reads; a :class:`LandcoverError` from
    either is one line ``error: ...`` on stderr and exit status 2, success prints the
    exported model's path and is status 0."""
    try:
        config, resume = prepare()
        result = run(config, resume)
    except LandcoverError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.model_path is not None:
        print(f"model: {result.model_path}")
    return 0
