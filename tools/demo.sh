#!/usr/bin/env bash
# `make demo`: synthetic data -> train tiny MaskTrack R-CNN -> evaluate on synth_vis_val -> output/demo/.
# Environment knobs: DEMO_ITERS (training iterations), DEMO_OUT (output folder), DETECTRON2_DATASETS.
set -euo pipefail
PY=./.venv/bin/python
export DETECTRON2_DATASETS="${DETECTRON2_DATASETS:-datasets}"
OUT="${DEMO_OUT:-output/demo}"
CFG=configs/synth_vis/masktrack_rcnn_tiny.yaml
ITERS="${DEMO_ITERS:-}"
SYNTH="$DETECTRON2_DATASETS/synth_vis"
start=$(date +%s)

# Data written by an older release (other calibration defaults, a smaller valid split) would silently change the
# figures: regenerate it.
stale=0
if [ -f "$SYNTH/valid.json" ]; then
  $PY -c "import sys; from vis_d2.data.synthetic import differences_from_defaults as d
found = d(sys.argv[1]); print(*('[demo] ' + f for f in found), sep='\n') if found else None; sys.exit(bool(found))" "$SYNTH" || stale=1
  [ "$stale" = 1 ] && echo "[demo] $SYNTH was generated with other settings than today's defaults: regenerating it"
fi
if [ ! -f "$SYNTH/valid.json" ] || [ "$stale" = 1 ]; then
  echo "[demo] generating the synthetic benchmark in $SYNTH"
  $PY -m vis_d2.data.synthetic --out "$SYNTH" --videos 80 --seed 0
fi

iter_opts=()
[ -n "$ITERS" ] && iter_opts=(SOLVER.MAX_ITER "$ITERS")
echo "[demo] training $CFG ${ITERS:+for $ITERS iterations} -> $OUT"
# DATASETS.TEST () skips detectron2's evaluation at the end of training: the next step evaluates, as a user would.
$PY train_net.py --config-file "$CFG" OUTPUT_DIR "$OUT" DATASETS.TEST "()" "${iter_opts[@]}"

echo "[demo] evaluating $OUT/model_final.pth on synth_vis_val"
$PY train_net.py --config-file "$CFG" --eval-only MODEL.WEIGHTS "$OUT/model_final.pth" OUTPUT_DIR "$OUT"
cp "$OUT/inference/metrics.json" "$OUT/inference/results.json" "$OUT/inference/results.zip" "$OUT/"

echo "[demo] rendering an overlay of the first validation video"
# The tiny model's scores are low after a few minutes of training: draw its 6 best tracks above 0.05.
$PY tools/visualize_tracks.py --dataset synth_vis_val --results "$OUT/results.json" --score-thresh 0.05 --max-tracks 6 \
  --out "$OUT/overlay.gif"

echo "[demo] done in $(( $(date +%s) - start )) s. Metrics ($OUT/metrics.json):"
$PY -c "import json,sys; m=json.load(open(sys.argv[1])); print('  '+'  '.join(f'{k} {m[k]:.1f}' if m[k] is not None else f'{k} -' for k in ('AP','AP50','AP75','AR1','AR10')))" "$OUT/metrics.json"
