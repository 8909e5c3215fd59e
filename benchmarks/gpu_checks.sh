#!/usr/bin/env bash
# The GPU checks of issue 17 as one script, for a machine with CUDA (a CUDA build of torch
# installed, see the README's "GPU" section; ott-jax with JAX's GPU build optional):
#
#   bash benchmarks/gpu_checks.sh [results-folder]   # PYTHON=... picks the interpreter
#
# 1. the CUDA tests (pytest -m gpu): captured solves against eager to 1e-6, host syncs of a
#    solve and of each loss counted by torch.cuda.set_sync_debug_mode, training on cuda;
# 2. bench_ot.py --device cuda: ours eager and replayed from its CUDA graph, POT's torch
#    backend, OTT-JAX, the bare loop eager and in a CUDA graph (targets 1 and 3);
# 3. bench_losses.py --device cuda: every loss against a plain NT-Xent and the references;
# 4. bench_train.py: one SGD step of ResNet-18 on 512 pairs of 32x32 images (target 2).
#
# Each part's output goes to the results folder (default gpu-results, or $OUT/gpu-results);
# a part that fails does not stop the others, and the script then ends with status 1.
# Paste the tables into benchmarks/README.md.
set -u -o pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python}"  # the interpreter with torch (CUDA) and the requirements
out="${1:-${OUT:+$OUT/}gpu-results}"
mkdir -p "$out"
"$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA here'; \
print(torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt" || exit 1

failed=()
run() {  # run NAME COMMAND...: the command's output to NAME.txt, its status noted
    local name=$1 status
    shift
    echo "== $name: $*"
    "$@" > "$out/$name.txt" 2>&1
    status=$?
    echo "   exit $status ($(tail -n 1 "$out/$name.txt"))"
    [ "$status" -eq 0 ] || failed+=("$name")
}

run gpu-tests "$py" -m pytest -q -m gpu tests/ -p no:cacheprovider
run bench_ot "$py" benchmarks/bench_ot.py --device cuda --sizes 1024 4096 16384 \
    --dtypes float32 --eps 0.5 --iters 100 --repeats 20
run bench_losses "$py" benchmarks/bench_losses.py --device cuda --sizes 256 512 --repeats 20
run bench_train "$py" benchmarks/bench_train.py --device cuda --encoder resnet18 \
    --image-size 32 --batch 512
echo "results in $out"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
