#!/usr/bin/env bash
# The device check on a GPU machine (docs/gpu.md), one lease's worth: a smoke run of bert_tiny.py,
# the two float proof points' GPU path on MiniLM (bert_base.py) and its INT8 one (bert_quantize.py),
# `python3 -m bench speed` on the BERT-base shape at batch 32 and 256, and PyTorch-compiled's recipe
# variants on MiniLM, all on the bundled SST-2. Each step's JSON and one log go to OUT (at most 8
# files: what the device tool brings back). Steps run in the order their figures matter, each under
# its own limit; the limits add up to GPU_CHECK_SECONDS (default 360), so that with the machine's
# start a second run fits in one 15-minute lease. Steps whose compile times are compared have
# caches of their own (the variants); the others share one.
#
#   bash bench/gpu.sh MINILM_DIR OUT
#
# On our GPU machine MiniLM is restored from .device first (../shared/device/README.md):
#   python3 .device/unpack.py .device/restored && bash bench/gpu.sh .device/restored/minilm-l6-sst2 $OUT
# GPU_CHECK_LIMIT=N runs every step on the first N sentences (the suite's test of this script).
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/gpu.sh MINILM_DIR OUT}
out=${2:?usage: bench/gpu.sh MINILM_DIR OUT}
mkdir -p "$out"
log=$out/log.txt
: >"$log"
budget=${GPU_CHECK_SECONDS:-360}
deadline=$((SECONDS + budget))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
data=(--dataset data/sst2/validation.tsv ${GPU_CHECK_LIMIT:+--limit "$GPU_CHECK_LIMIT"})
train=(--calibration-dataset data/sst2/train.tsv.xz)
shared=(--cache-dir "$work/shared")

step() {  # step NAME SHARE COMMAND...: runs it within SHARE/360 of the budget, logs it
    local name=$1 limit=$(($2 * budget / 360)) left=$((deadline - SECONDS))
    shift 2
    limit=$((limit < left ? limit : left))
    if [ "$limit" -lt 10 ]; then
        echo "== $name: skipped, ${left} s left" | tee -a "$log"
        return
    fi
    echo "== $name ($limit s at most): $*" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s" | tee -a "$log"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    python3 -c "import torch, transformers, onnxruntime as o; print('torch', torch.__version__,
'transformers', transformers.__version__, 'onnxruntime', o.__version__, o.get_available_providers())"
    git log -1 --format='commit %H' 2>/dev/null || true
} >>"$log" 2>&1

step tiny 60 python3 bert_tiny.py "${data[@]}" "${shared[@]}" --json "$out/tiny.json"
step base 70 python3 bert_base.py --model "$model" "${data[@]}" "${shared[@]}" \
    --json "$out/base.json"
step speed-base-32 70 python3 -m bench speed --models base --batch-size 32 --rounds 3 \
    ${GPU_CHECK_LIMIT:+--limit "$GPU_CHECK_LIMIT"} \
    --runners pytorch-eager,pytorch-fp16-cuda,torch_compile-fp16-cuda \
    "${shared[@]}" --json "$out/speed-base-32.json"
step speed-base-256 35 python3 -m bench speed --models base --batch-size 256 --rounds 3 \
    ${GPU_CHECK_LIMIT:+--limit "$GPU_CHECK_LIMIT"} \
    --runners pytorch-fp16-cuda,torch_compile-fp16-cuda \
    "${shared[@]}" --json "$out/speed-base-256.json"
step variants-minilm 75 python3 -m bench speed --model "$model" "${data[@]}" "${train[@]}" \
    --batch-size 32 --rounds 3 \
    --runners pytorch-eager,torch_compile-fp16-cuda,torch_compile-fp16-cuda-static,torch_compile-fp16-cuda-no-graphs,torch_compile-fp16-cuda-unbucketed \
    --cache-dir "$work/variants" --json "$out/variants-minilm.json"
step quantize 50 python3 bert_quantize.py --model "$model" "${data[@]}" "${train[@]}" \
    "${shared[@]}" --json "$out/quantize.json"
echo "== done after $SECONDS s" | tee -a "$log"
