#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Reproduce model_training/release/EVALUATION.md: train the fine-tuned 2018 model and the
# from-scratch U-Net with torchrun (2 processes, gloo, CPU), then score them and the
# converted 2018 model on the same held-out pixels through the plugin
# (landcover:classify + landcover:agreement via scripts/qgis_process).
#   model_training/release/reproduce_evaluation.sh            # about 20 minutes on 2 CPU cores
#   NPROC=4 model_training/release/reproduce_evaluation.sh    # more processes, same global batch x 2
# Outputs: runs/finetune_2018, runs/scratch_unet, runs/evaluation/report.{md,json}.
# Shipping (after reading the report): python -m model_training.release.ship, see EVALUATION.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PYTHON=.venv/bin/python
NPROC="${NPROC:-2}"

for name in finetune_2018 scratch_unet; do
  echo "== training configs/${name}.yaml on ${NPROC} process(es)"
  rm -rf "runs/${name}"
  started=$(date +%s)
  OMP_NUM_THREADS=1 PYTHONWARNINGS=ignore "$PYTHON" -m torch.distributed.run \
    --standalone --nproc_per_node "$NPROC" model_training/train.py \
    --config "model_training/configs/${name}.yaml" --set train.progress=false
  echo "== ${name}: $(( $(date +%s) - started )) s wall time"
done

echo "== held-out evaluation through the plugin"
"$PYTHON" -m model_training.release.evaluate_models \
  --model converted-2018=qgis_landcover/models/azure_2018_unet.onnx \
  --model finetuned-2018=runs/finetune_2018/model.onnx \
  --model scratch-unet=runs/scratch_unet/model.onnx \
  --output-dir runs/evaluation
