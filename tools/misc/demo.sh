#!/usr/bin/env bash
# `make demo`: the main job on the embedded default. Generates the synthetic
# COCO-panoptic data set, trains FC-CLIP on it with `mim train`, evaluates the
# best checkpoint on the held-out val split with `mim test`, prints PQ/SQ/RQ
# (all, things, stuff) and writes panoptic visualisations of the val images.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"
export PYTHONUNBUFFERED=1
CONFIG=configs/fcclip_tiny_synthetic.py
DATA=data/synthetic_coco_panoptic
WORK=${WORK_DIR:-work_dirs/fcclip_tiny_synthetic}

echo "[demo] 1/3 generating the synthetic data set in $DATA"
python tools/dataset_converters/generate_synthetic_panoptic.py --out-dir "$DATA"

echo "[demo] 2/3 mim train mmfcclip $CONFIG (log: $WORK)"
rm -rf "$WORK"
mim train mmfcclip "$CONFIG" --work-dir "$WORK"

BEST=$(ls -t "$WORK"/best_coco_panoptic_PQ_iter_*.pth 2>/dev/null | head -n 1)
if [ -z "$BEST" ]; then
  echo "[demo] no best checkpoint in $WORK: training did not validate." >&2
  exit 1
fi

echo "[demo] 3/3 mim test mmfcclip $CONFIG --checkpoint $BEST"
TEST_LOG="$WORK/test.log"
mim test mmfcclip "$CONFIG" --checkpoint "$BEST" --work-dir "$WORK/test" \
  --show-dir vis 2>&1 | tee "$TEST_LOG"

VIS=$(ls -td "$WORK"/test/*/vis 2>/dev/null | head -n 1)
echo
echo "[demo] panoptic quality on the held-out val split ($BEST):"
grep -E '^\|' "$TEST_LOG" | tail -n 5
grep -o 'coco_panoptic/PQ: [0-9.]*' "$TEST_LOG" | tail -n 1
echo "[demo] panoptic visualisations (PNG): ${VIS:-not written}"
