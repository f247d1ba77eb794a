#!/usr/bin/env bash
# Start or resume a long training run in the background. Its whole state (checkpoint,
# logs, config) lives in RUN_DIR under runs/ (gitignored), never in git; running the same
# command again resumes from RUN_DIR/checkpoint.pt with the run's own config and data seed.
#
#   scripts/train-background.sh stream  [RUN_DIR] [EXTRA TRAIN FLAGS...]
#       synthetic data rendered on the fly by data workers, never repeating (--synth);
#       default RUN_DIR runs/normalnet-stream. EXTRA flags go to `facenormals3d train`
#       (e.g. --coarse-normals --prior fit-v2 --framing front-end --confidence, --data-seed, --steps).
#   scripts/train-background.sh shipped RUN_DIR INIT_WEIGHTS
#       re-run the shipped weights' last training stage: the train config recorded with them
#       (assets/normalnet.json, metadata.train_config: data seed, synthetic settings, lr,
#       schedule, prior) from INIT_WEIGHTS, the weights that stage started from (train checks
#       their SHA-256 against the recorded one; assets/MODEL_CARD.md says which commit's
#       assets/normalnet.safetensors they are). The shipped weights are the run's
#       best.safetensors after step metadata.steps (stop it there: the schedule runs to the
#       config's planned steps), up to floating-point non-determinism.
#
# Environment: ICT (default .cache/ICT-FaceKit), WORKERS (data worker processes, default 1),
# THREADS (torch threads of the trainer, default 1). On 2 cores, 1 data worker + 1 trainer
# thread keep both cores busy at the shipped network size: ~5 samples/s with
# --framing front-end --prior fit-v2 (2026-12-06; ~2.4 before the workers' OpenBLAS ran on
# one thread, when the worker's spinning BLAS threads took the trainer's core). With --bf16
# (CPUs with AVX512-BF16 or AMX) the trainer needs half the time, so give the data 2 workers:
# WORKERS=2 ... --bf16 ran 5.4 samples/s against 3.8 for WORKERS=1 in float32 (2026-12-07).
# Without bfloat16 instructions leave --bf16 off (emulated: ~8x slower steps). On an AVX2-only
# AMD EPYC (Zen 1) the float32 trainer is ~4x slower than there: WORKERS=1 THREADS=2 ran
# 1.0-1.1 samples/s (~7.5 s a step of 8), and 0.85 (~10 s a step) with the detail head
# (--detail-channels 16), so a 3000-step stage takes 6-8 hours. There, about 40 % of a step
# is the weight gradients of the decoders' 3x3 convolutions, which oneDNN computes at half to
# two thirds of its contiguous-layout speed in channels-last (24-35 against 44-52 GFLOP/s,
# 2026-12-07).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-stream}"
shift || true
ict="${ICT:-.cache/ICT-FaceKit}"
workers="${WORKERS:-1}"
threads="${THREADS:-1}"
py=.venv/bin/facenormals3d

case "$mode" in
  stream)
    run="runs/normalnet-stream"
    if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then run="$1"; shift; fi
    mkdir -p "$run"
    log="$run/train.log"
    resume=""
    [ -f "$run/checkpoint.pt" ] && resume="--resume"
    nohup "$py" train --synth "$ict" -o "$run" $resume --data-seed 2 \
      --width 0.5 --input-size 128 --channels-last --threads "$threads" --num-workers "$workers" \
      --batch-size 8 --steps 200000 --val-every 1000 --val-samples 96 --checkpoint-every 100 \
      --log-every 20 "$@" >> "$log" 2>&1 &
    ;;
  shipped)
    run="${1:?usage: $0 shipped RUN_DIR INIT_WEIGHTS (see assets/MODEL_CARD.md)}"
    init="${2:?usage: $0 shipped RUN_DIR INIT_WEIGHTS (the weights the shipped stage started from)}"
    mkdir -p "$run"
    log="$run/train.log"
    config="$run/shipped_config.json"
    .venv/bin/python -c "import json,sys; json.dump(json.load(open('assets/normalnet.json'))['metadata']['train_config'], open(sys.argv[1], 'w'), indent=2)" "$config"
    resume=""
    [ -f "$run/checkpoint.pt" ] && resume="--resume"
    nohup "$py" train --synth "$ict" -o "$run" $resume --config "$config" --init-weights "$init" \
      --threads "$threads" --num-workers "$workers" >> "$log" 2>&1 &
    ;;
  *)
    echo "usage: $0 stream [RUN_DIR] [TRAIN FLAGS...] | shipped RUN_DIR INIT_WEIGHTS" >&2
    exit 2
    ;;
esac
echo "training in the background (pid $!): $log"
