#!/usr/bin/env bash
# Retrain the PVP study (issue 13): the five runs after stage 0 for seed 0 (the shipped
# checkpoints), then seeds 1 and 2 (cards in qgnb/pvp/results/seed-S/). Stage 0 is shared by
# every seed and kept. One process at a time on one thread, each run resumable: a run whose
# saved state (build/pvp-work/seed-S/NAME.pt) already holds every step of the same recipe is
# only saved and scored.
# Usage (from the repository root): bash experiments/pvp_retrain.sh [SEED ...]
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
PY=${PYTHON:-python}
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(0 1 2)
names=(pvp-connector pvp-connector-lm pvp-connector-lm-vision seg-frozen-encoder seg-pvp-encoder)
for seed in "${seeds[@]}"; do
  echo "== $(date -u +%H:%M:%S) seed $seed"
  $PY -m qgnb.pvp.train "${names[@]}" --seed "$seed"
done
echo "== $(date -u +%H:%M:%S) done"
