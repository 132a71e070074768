#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make demo: the plugin's main job through qgis_process on the real sample shipped in
# data/: classify the 1 m NAIP mosaic with the embedded default model, then measure its
# agreement with the Chesapeake labels of the same pixels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="out/demo"
mkdir -p "$out"
naip="data/chesapeake_1m_patches/m_3708020_sw_17_1_2014_mosaic_naip.tif"
labels="data/chesapeake_1m_patches/m_3708020_sw_17_1_2014_mosaic_labels.tif"

results() {  # qgis_process --json output on stdin -> its "results" object
  .venv/bin/python -c 'import json, sys; text = sys.stdin.read(); print(json.dumps(json.loads(text[text.index("{"):])["results"]))'
}

echo "Algorithms of the 'landcover' provider:"
scripts/qgis_process list 2>/dev/null | sed -n '/^Land cover (U-Net)/,/^$/p'

echo "1/2 landcover:classify  $naip  (embedded default model, CPU unless a GPU is found)"
classify=$(scripts/qgis_process --json run landcover:classify -- \
  INPUT="$naip" OUTPUT="$out/landcover.tif" OUTPUT_CONFIDENCE="$out/confidence.tif" \
  2>/dev/null | results)

echo "2/2 landcover:agreement  classified vs $labels (Chesapeake 5, 6 -> 4 as in the model)"
agreement=$(scripts/qgis_process --json run landcover:agreement -- \
  CLASSIFIED="$out/landcover.tif" REFERENCE="$labels" REFERENCE_REMAP="5:4,6:4" \
  OUTPUT_HTML="$out/agreement.html" OUTPUT_JSON="$out/agreement.json" \
  OUTPUT_CSV="$out/confusion_matrix.csv" OUTPUT_DISAGREEMENT="$out/disagreement.tif" \
  2>/dev/null | results)

CLASSIFY="$classify" AGREEMENT="$agreement" .venv/bin/python - <<'PY'
import json
import os

classify = json.loads(os.environ["CLASSIFY"])
agreement = json.loads(os.environ["AGREEMENT"])
print()
print(f"Classified raster : {classify['OUTPUT']} (styled: .qml beside it)")
print(f"Confidence raster : {classify['OUTPUT_CONFIDENCE']}")
print(f"Pixels classified : {classify['PIXELS_CLASSIFIED']:,} on {classify['EXECUTION_PROVIDER']}")
print(f"Agreement report  : {agreement['OUTPUT_HTML']}")
print(f"                    {agreement['OUTPUT_JSON']}, {agreement['OUTPUT_CSV']}")
print(f"Disagreement map  : {agreement['OUTPUT_DISAGREEMENT']}")
print(f"Overall accuracy  : {agreement['OVERALL_ACCURACY']:.4f}")
print(f"Cohen's kappa     : {agreement['KAPPA']:.4f}")
print(f"Mean IoU          : {agreement['MEAN_IOU']:.4f}")
PY
