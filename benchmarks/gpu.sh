#!/usr/bin/env bash
# Full-size benchmarks on one CUDA GPU, in under 8 minutes. Prepared but NOT yet run on a GPU.
# Checkpoints are built from configs with random weights (no hub access needed).
# Usage: bash benchmarks/gpu.sh [python]   (also writes benchmarks/gpu-results.txt)
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${1:-python}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=benchmarks/gpu-results.txt
: > "$OUT"
run() { echo "+ $*" | tee -a "$OUT"; timeout "$1" "$PY" "${@:2}" 2>&1 | grep -v Warning | tee -a "$OUT"; }
"$PY" -c "import torch; print(torch.cuda.get_device_name(0), torch.__version__)" | tee -a "$OUT"
run 90 -m pytest -q -p no:cacheprovider -m gpu tests/test_engine.py tests/test_detector.py
for kind in gdino-swin-t llmdet-t; do
  "$PY" -c "import sys; sys.path.insert(0, 'benchmarks'); import common; common.checkpoint('$kind'); common.footage(100)"
  run 80 benchmarks/bench_e2e.py --kind $kind --frames 100 --rounds 1 --device cuda --extra "--device cuda --batch-size 4"
  run 30 benchmarks/bench_sinks.py --kind $kind --batch 4 --rounds 3 --device cuda
done
# Needs the CLI's --cuda-graphs flag; fails harmlessly without it.
run 50 benchmarks/bench_e2e.py --kind gdino-swin-t --frames 100 --rounds 1 --device cuda --extra "--device cuda --batch-size 4 --cuda-graphs"
run 30 benchmarks/bench_live.py --kind gdino-swin-t --seconds 8 --rounds 1 --device cuda
run 30 benchmarks/bench_memory.py --kind gdino-swin-t --frames 300 --extra "--device cuda"
