#!/usr/bin/env bash
# Issue 12's CPU report on whatever CPU this is, pinned to 2 cores: where a bf16, an fp32 and an int8 forward go
# (oneDNN kernels included) and the Interp kernel against ATen's, the fast / bf16 / int8 inference rows, and a training
# step by layer type (oneDNN kernels included). On a CPU without native bf16 (or int8) those parts are skipped with a
# line saying why (port.cpu); the rest runs (AVX2-only AMD EPYC: ~9 min).
# Each part writes its markdown report into OUTDIR; legacy Caffe rows are added where `import caffe` works or
# PSANET_CAFFE_BENCH names a caffe_bench (legacy_caffe/bench/bundle.sh: for hosts whose Python cannot load our
# pycaffe build).
#   bash bench/cpu_report.sh OUTDIR [layers] [infer] [train]     # default: all three parts (~13 min on 2 cores)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 1 ]] || { echo "usage: bash bench/cpu_report.sh OUTDIR [layers] [infer] [train]" >&2; exit 2; }
out=$1
shift
parts=("$@")
((${#parts[@]})) || parts=(layers infer train)
for part in "${parts[@]}"; do
  [[ $part == @(layers|infer|train) ]] || { echo "cpu_report: unknown part '$part' (layers, infer, train)" >&2; exit 2; }
done
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."  # the repository root: the benchmarks run as `python3 -m bench.<script>`
python3 -c "import port._C" 2>/dev/null || { echo "cpu_report: port._C is not built (python setup.py build_ext --inplace)" >&2; exit 2; }
pin=()
if command -v taskset >/dev/null && (($(nproc) > 2)); then pin=(taskset -c 0,1); fi
caffe=()
if [[ -n ${PSANET_CAFFE_BENCH:-} ]] || python3 -c "import caffe" 2>/dev/null; then caffe=(caffe); fi
for part in "${parts[@]}"; do
  echo "[cpu_report] $part" >&2
  case $part in
    layers) for dtype in bf16 fp32 int8; do
        "${pin[@]}" python3 -m bench.layer_profile --size 465 --dtype $dtype --threads 2 --reps 2 --onednn \
          | tee "$out/layers_$dtype.md"
      done
      "${pin[@]}" python3 -m bench.interp --threads 2 --reps 5 | tee "$out/interp.md" ;;
    infer) "${pin[@]}" python3 -m bench.end_to_end --depths 101 --sizes 465 --batches 1 --warmup 1 --reps 2 --threads 2 \
      --modes "${caffe[@]}" eager fast bf16 int8 --out "$out/infer.md" ;;
    train) "${pin[@]}" python3 -m bench.train_step --modes "${caffe[@]}" fp32 bf16 --threads 2 --warmup 1 --reps 2 --profile --onednn \
      --out "$out/train.md" ;;
  esac
done
