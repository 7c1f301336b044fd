#!/usr/bin/env bash
# Retrain the zoo (issue 14) in order, one process at a time on one thread, each step resumable:
# train, apply the reading rule, write the card. AMC needs base's reading; the AMC card's
# comparisons need base's and large's grounding tables (written by the last cards call).
# Usage (from the repository root): bash experiments/zoo_retrain.sh [NAME ...]
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PYTHON:-python}
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(shapes-blip-base shapes-blip-amc shapes-clip shapes-blip-large)
for name in "${names[@]}"; do
  echo "== $(date -u +%H:%M:%S) train $name"
  $PY -m qgnb.zoo.train "$name"
  echo "== $(date -u +%H:%M:%S) reading $name"
  $PY -m qgnb.zoo.reading "$name"
  echo "== $(date -u +%H:%M:%S) card $name"
  $PY -m qgnb.zoo.cards "$name"
done
echo "== $(date -u +%H:%M:%S) done"
