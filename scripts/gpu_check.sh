#!/usr/bin/env bash
# The GPU check on a CUDA machine without network access (docs/gpu.md):
#   bash scripts/gpu_check.sh OUT_DIR [gpu_check options]
# installs the carried wheels (.whl/) into .site/, puts them and this checkout on PYTHONPATH, and
# runs transformer/benchmarks/gpu_check.py, which writes everything under OUT_DIR. The Multi30k
# mirror comes from $MULTI30K_DIR, else .gpu-data/multi30k (carried beside the checkout).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_check.sh OUT_DIR [gpu_check options]}
shift
mkdir -p "$out"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target .site .whl/*.whl \
    || { echo "gpu_check.sh: installing .whl/*.whl failed" >&2; exit 1; }
fi
export PYTHONPATH="$PWD/.site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MULTI30K_DIR="${MULTI30K_DIR:-$PWD/.gpu-data/multi30k}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv \
  2>&1 | tee "$out/nvidia-smi.txt"
python3 -m transformer.benchmarks.gpu_check --out "$out" "$@" 2>&1 | tee "$out/console.log"
