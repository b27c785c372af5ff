#!/usr/bin/env bash
# The GPU proof's one device call (tests/gpu/gpu_proof.py): install the carried wheels and sspo-verl, then run
# every part. On the lent GPU machine, from the repository root, with carry [".gpu-wheels"]:
#     GPU_PROOF_COMMIT=<git rev-parse --short HEAD here> bash tests/gpu/run_gpu_proof.sh   (results under $OUT;
#     the machine's copy of the tree has no .git, so the commit travels in the command)
# Built here first: python tests/gpu/gpu_proof_wheels.py build   (manifest: tests/gpu/gpu_proof_wheels.json)
set -euo pipefail
OUT=${OUT:-$(mktemp -d)}
SITE=${SITE:-/tmp/site}
{
  start=$(date +%s)
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" .gpu-wheels/*.whl
  # sspo-verl itself, so that verl finds its verl.plugins entry point as on a cluster
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-cache-dir --target "$SITE" .
  echo "[run_gpu_proof] installed in $(( $(date +%s) - start )) s"
  unset VERL_PLATFORM
  PYTHONPATH="$SITE" PYTHONUNBUFFERED=1 python3 tests/gpu/gpu_proof.py --out "$OUT" "$@"
} 2>&1 | tee "$OUT/gpu_proof.log"
