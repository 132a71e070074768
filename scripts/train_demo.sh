#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make train-demo: train the U-Net for a few minutes on the CPU on the real 1 m NAIP /
# Chesapeake patches shipped in data/, export it to ONNX with the model contract, and
# run it through the plugin itself (landcover:classify + landcover:agreement via
# qgis_process) on the held-out validation column.
#   NPROC=2 scripts/train_demo.sh     # two DDP processes (gloo) instead of one
#   RUN_DIR=runs/x scripts/train_demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=.venv/bin/python
RUN_DIR="${RUN_DIR:-runs/demo}"
NPROC="${NPROC:-1}"
CORES="$(nproc)"
THREADS=$(( CORES / NPROC > 0 ? CORES / NPROC : 1 ))
MOSAIC=data/chesapeake_1m_patches/m_3708020_sw_17_1_2014_mosaic
# The validation column of demo_cpu.yaml (pixels 768-1023 of the mosaic) in EPSG:26917.
VAL_EXTENT="580768,581024,4099488,4100000 [EPSG:26917]"

rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
echo "Training on ${NPROC} process(es) x ${THREADS} thread(s); run folder ${RUN_DIR}"
OMP_NUM_THREADS="$THREADS" PYTHONWARNINGS=ignore "$PYTHON" -m torch.distributed.run \
  --standalone --nproc_per_node "$NPROC" model_training/train.py \
  --config model_training/configs/demo_cpu.yaml \
  --set "train.run_dir=$RUN_DIR" --set "train.threads=$THREADS"

MODEL="$RUN_DIR/model.onnx"
echo
echo "Validation during training (last epoch, held-out pixels):"
"$PYTHON" - "$RUN_DIR/metrics.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
v = summary["validation"]
print(f"  overall accuracy {v['overall_accuracy']:.4f}  kappa {v['kappa']:.4f}  "
      f"mean IoU {v['miou']:.4f}  ({v['pixels']} pixels, {summary['steps']} steps)")
print("  IoU per class: " + ", ".join(
    f"{k}: {'n/a' if x is None else format(x, '.3f')}" for k, x in v["iou"].items()))
print(f"  ONNX Runtime vs PyTorch max abs difference: {summary['onnx_max_abs_difference']:.2e}")
print(f"  summary plot: {summary['summary_plot']}")
PY

echo
echo "The exported model through the plugin (qgis_process):"
CLASSES="$RUN_DIR/validation_classes.tif"
scripts/qgis_process run landcover:classify -- "INPUT=${MOSAIC}_naip.tif" "MODEL=$MODEL" \
  "EXTENT=$VAL_EXTENT" DEVICE=cpu "OUTPUT=$CLASSES" >/dev/null 2>&1
scripts/qgis_process --json run landcover:agreement -- "CLASSIFIED=$CLASSES" \
  "REFERENCE=${MOSAIC}_labels.tif" "REFERENCE_REMAP=5:4,6:4" IGNORE_VALUES=0 \
  "OUTPUT_HTML=$RUN_DIR/validation_agreement.html" 2>/dev/null >"$RUN_DIR/validation_agreement.json"
"$PYTHON" - "$RUN_DIR/validation_agreement.json" <<'PY'
import json, sys
text = open(sys.argv[1]).read()
r = json.loads(text[text.find("{"):])["results"]
print(f"  landcover:classify + landcover:agreement: overall accuracy {r['OVERALL_ACCURACY']:.4f}  "
      f"kappa {r['KAPPA']:.4f}  mean IoU {r['MEAN_IOU']:.4f}")
print(f"  report: {r['OUTPUT_HTML']}")
PY
echo
echo "Model: $MODEL"
