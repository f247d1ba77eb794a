#!/usr/bin/env bash
# Start or resume the long training run of the shipped network in the background.
# Resumable: run it again after a stop (the run folder keeps checkpoint.pt).
#   scripts/train-background.sh [RUN_DIR] [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/normalnet-v1}"
data="${2:-.cache/synth-v1}"
mkdir -p "$run"
resume=""
[ -f "$run/checkpoint.pt" ] && resume="--resume"
nohup .venv/bin/facenormals3d train --paired "$data" -o "$run" $resume \
  --width 0.375 --input-size 128 --channels-last --threads 2 --batch-size 8 \
  --steps 10000 --val-every 500 --val-samples 96 --checkpoint-every 100 --log-every 20 \
  >> "$run/train.log" 2>&1 &
echo "training in the background (pid $!): $run/train.log"
