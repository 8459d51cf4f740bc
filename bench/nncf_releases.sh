#!/usr/bin/env bash
# INT8 fidelity across NNCF releases, same recipe and data: for each NNCF release, a virtual
# environment with requirements.txt, that NNCF and the OpenVINO of its release, then
# bert_quantize.py on the shared MiniLM with the bf16 remainder, JSON into the given folder.
#   bash bench/nncf_releases.sh bench/results/<date>-<cpu>        (about 4 minutes per release)
set -u
cd "$(dirname "$0")/.."
out=${1:?"usage: bench/nncf_releases.sh RESULTS_FOLDER"}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for pair in "2.15.0 2025.0.0" "2.16.0 2025.1.0" "2.18.0 2025.3.0"; do
  set -- $pair
  venv="$work/nncf-$1"
  python -m venv "$venv"
  "$venv/bin/python" -m pip install -q torch==2.13.0 &&
    "$venv/bin/python" -m pip install -q -r requirements.txt &&
    "$venv/bin/python" -m pip install -q "nncf==$1" "openvino==$2" || { echo "nncf $1: install failed"; continue; }
  "$venv/bin/python" bert_quantize.py --model ../shared/models/minilm-l6-sst2 \
    --dataset ../shared/data/sst2/validation.tsv --calibration-dataset ../shared/data/sst2/train.tsv \
    --backend openvino --precision int8+bf16 --json "$out/quantize-nncf-$1.json" \
    --cache-dir "$work/cache-$1" > /dev/null
  echo "nncf $1: exit $?"
done
