#!/usr/bin/env bash
# The device check on a GPU machine (docs/gpu.md): the three proof points with --device auto (the
# default) on MiniLM and the bundled BERT-tiny, then `python -m bench speed` on the BERT-base shape at
# batch 32 and 256 and PyTorch-compiled's recipe variants on MiniLM. Each step's JSON and one log
# go to OUT (at most 8 files: what the device tool brings back). Steps run in the order the issue
# needs their figures, each under its own limit and all within GPU_CHECK_SECONDS (default 540), so
# a short lease still brings back what finished.
#
#   bash bench/gpu.sh MINILM_DIR OUT
#
# On our GPU machine MiniLM is restored from .device first (../shared/device/README.md):
#   python3 .device/unpack.py .device/restored && bash bench/gpu.sh .device/restored/minilm-l6-sst2 $OUT
set -uo pipefail
cd "$(dirname "$0")/.."
model=${1:?usage: bench/gpu.sh MINILM_DIR OUT}
out=${2:?usage: bench/gpu.sh MINILM_DIR OUT}
mkdir -p "$out"
log=$out/log.txt
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-540}))
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
data=(--dataset data/sst2/validation.tsv)

step() {  # step NAME CAP_SECONDS COMMAND...: runs it within its cap and the deadline, logs it
    local name=$1 cap=$2 left=$((deadline - SECONDS))
    shift 2
    local limit=$((cap < left ? cap : left))
    if [ "$limit" -lt 30 ]; then
        echo "== $name: skipped, ${left} s left" | tee -a "$log"
        return
    fi
    echo "== $name ($limit s at most): $*" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "== $name: exit $? after $((SECONDS - start)) s" | tee -a "$log"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python -c "import torch, transformers, onnxruntime as o; print('torch', torch.__version__,
'transformers', transformers.__version__, 'onnxruntime', o.__version__, o.get_available_providers())"
    git log -1 --format='commit %H' 2>/dev/null
} >>"$log" 2>&1

step base 180 python bert_base.py --model "$model" "${data[@]}" --cache-dir "$cache" \
    --json "$out/base.json"
step benchmark-base-32 150 python -m bench speed --models base --batch-size 32 --rounds 5 \
    --runners pytorch-eager,pytorch-fp16-cuda,torch_compile-fp16-cuda,torch_compile-bf16-cuda \
    --cache-dir "$cache" --json "$out/benchmark-base-32.json"
step benchmark-base-256 150 python -m bench speed --models base --batch-size 256 --rounds 3 \
    --runners pytorch-eager,pytorch-fp16-cuda,torch_compile-fp16-cuda,torch_compile-bf16-cuda \
    --cache-dir "$cache" --json "$out/benchmark-base-256.json"
step tiny 90 python bert_tiny.py --cache-dir "$cache" --json "$out/tiny.json"
step quantize 180 python bert_quantize.py --model "$model" "${data[@]}" \
    --calibration-dataset data/sst2/train.tsv.xz --cache-dir "$cache" --json "$out/quantize.json"
step variants-minilm 180 python -m bench speed --model "$model" "${data[@]}" \
    --calibration-dataset data/sst2/train.tsv.xz --batch-size 32 --rounds 5 \
    --runners pytorch-eager,torch_compile-fp16-cuda,torch_compile-fp16-cuda-static,torch_compile-fp16-cuda-no-graphs,torch_compile-fp16-cuda-unbucketed \
    --cache-dir "$cache" --json "$out/variants-minilm.json"
echo "== done after $SECONDS s" | tee -a "$log"
