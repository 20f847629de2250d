#!/usr/bin/env bash
# The GPU measurements of issue 18, on one CUDA GPU, in one run (about 6 minutes on a data-centre GPU):
#
#   1. training: the engine (data resident on the device, batches by index, bf16 autocast, fused Adam, no
#      host sync in the step) against the plain DataLoader loop that concatenates trigger items to every
#      batch, on all 60,000 MNIST images, for mnist_mlp, mnist_cnn and mnist_fast: images/s and the ratio
#      (target >= 3x); and evaluation throughput against a naive loop (benchmarks/engine.py);
#   2. the same training with each GPU option turned off in turn (fused optimizer, bf16 autocast) and with
#      channels-last and torch.compile turned on, so that each is kept only where it pays
#      (benchmarks/gpu_options.py);
#   3. time to 99 % test accuracy on MNIST, mnist_fast and mnist_cnn, 3 seeds (benchmarks/engine.py
#      --time-to-99);
#   4. marking time for the demo's key (100 items, PreTrained, until learned; benchmarks/engine.py --marking).
#
# Everything is written to OUT (default benchmarks/results/gpu-<device name>/): one .txt and one .json per
# step, and device.txt (nvidia-smi, torch, CUDA). Run from the repository root:
#
#     bash benchmarks/gpu.sh [OUT]
#
# It needs no install: the checkout is put on PYTHONPATH, and torch is the machine's own. A machine without
# PyNaCl (a GPU image with torch but not wmproof's base install) gets it from wheels in .whl/, installed into
# /tmp/site first; MNIST comes from $WMPROOF_DATA, else .gpudata/ in the checkout, else ../shared/data.
# On this project's device machine (both folders are in .git/info/exclude, and travel when carried):
#
#     run(command="bash benchmarks/gpu.sh $OUT/gpu", carry=[".whl", ".gpudata"], timeout_s=600)
#
# then copy the files that come back to benchmarks/results/gpu-<device name>/ and commit them.
# DEVICE=cpu TRAIN_IMAGES=2000 SEEDS=1 TIME_TO_99_ARCH=mnist_fast runs the whole script on a CPU, as a dry
# run of its plumbing (about 3 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ -d .whl ] && ! "$PY" -c "import nacl" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
if [ -z "${WMPROOF_DATA:-}" ] && [ -d .gpudata ]; then
    export WMPROOF_DATA="$PWD/.gpudata"
fi
DEVICE=${DEVICE:-cuda}
name=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none')")
if [ "$DEVICE" = cuda ] && [ "$name" = none ]; then
    echo "benchmarks/gpu.sh: torch sees no CUDA GPU here (set DEVICE=cpu for a dry run)" >&2
    exit 2
fi
OUT=${1:-benchmarks/results/gpu-$(echo "$name" | tr -c 'A-Za-z0-9.\n' '-')}
mkdir -p "$OUT"
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    "$PY" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'python', platform.python_version()); print('device', '$name')"
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; fi
} | tee "$OUT/device.txt"
TRAIN=${TRAIN_IMAGES:-60000}
SEEDS=${SEEDS:-3}
step() { echo; echo "== $1"; }
step "1. engine against the DataLoader loop, and evaluation"
"$PY" benchmarks/engine.py --device "$DEVICE" --train-images "$TRAIN" --arch mnist_mlp,mnist_cnn,mnist_fast \
    --repeats 3 --json "$OUT/engine.json" | tee "$OUT/engine.txt" || true
step "2. each GPU option on and off"
"$PY" benchmarks/gpu_options.py --device "$DEVICE" --train-images "$TRAIN" --json "$OUT/options.json" \
    | tee "$OUT/options.txt" || true
step "3. time to 99 %"
"$PY" benchmarks/engine.py --device "$DEVICE" --skip-throughput --time-to-99 --seeds "$SEEDS" \
    --time-to-99-arch "${TIME_TO_99_ARCH:-mnist_fast,mnist_cnn}" --json "$OUT/time_to_99.json" \
    | tee "$OUT/time_to_99.txt" || true
step "4. marking the demo key"
"$PY" benchmarks/engine.py --device "$DEVICE" --skip-throughput --marking mnist_fast \
    --json "$OUT/marking.json" | tee "$OUT/marking.txt" || true
echo
echo "results in $OUT"
