#!/usr/bin/env bash
# Start or resume the long training run of the shipped network in the background.
# Resumable across sessions and machines: the training set is regenerated from its seed
# when missing (deterministic), and the run resumes from RUN_DIR/checkpoint.pt, or from the
# committed assets/train-state/checkpoint.pt on a fresh machine.
#   scripts/train-background.sh [RUN_DIR] [DATA_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/normalnet-v1}"
data="${2:-.cache/synth-v1}"
mkdir -p "$run"
log="$run/train.log"
if [ ! -f "$data/manifest.json" ]; then
  echo "generating the training set $data (seed 1, 4096 samples)" | tee -a "$log"
  .venv/bin/facenormals3d synth --ict-dir .cache/ICT-FaceKit -n 4096 -o "$data" --workers 2 --seed 1 >> "$log" 2>&1
fi
if [ ! -f "$run/checkpoint.pt" ] && [ -f assets/train-state/checkpoint.pt ]; then
  cp assets/train-state/checkpoint.pt "$run/checkpoint.pt"
  cp assets/train-state/train_config.json "$run/train_config.json"
fi
resume=""
[ -f "$run/checkpoint.pt" ] && resume="--resume"
nohup .venv/bin/facenormals3d train --paired "$data" -o "$run" $resume \
  --width 0.375 --input-size 128 --channels-last --threads 2 --batch-size 8 \
  --steps 10000 --val-every 500 --val-samples 96 --checkpoint-every 100 --log-every 20 \
  >> "$log" 2>&1 &
echo "training in the background (pid $!): $log"
