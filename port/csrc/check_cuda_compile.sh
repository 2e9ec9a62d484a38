#!/usr/bin/env bash
# Compiles every CUDA source of port._C (port/csrc/cuda/*.cu) to an object file only, against the installed
# torch's headers. Torch here may be a CPU build, which ships the CUDA headers but not the CMake-generated
# c10/cuda macros file; C10_USING_CUSTOM_GENERATED_MACROS lets us supply those macros on the command line instead.
# torch 2.13 headers need C++20 (-std=c++17 compiles with warnings). Usage:
#   bash port/csrc/check_cuda_compile.sh [output_dir]   (NVCC, CUDA_ARCH, CUDA_STD override nvcc, -arch, -std)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
nvcc="${NVCC:-${CUDA_HOME:-/usr/local/cuda}/bin/nvcc}"
arch="${CUDA_ARCH:-sm_90}"
out_dir="${1:-$(mktemp -d)}"
mkdir -p "$out_dir"
torch_include="$(python -c 'import torch.utils.cpp_extension as e; print(" ".join(e.include_paths()))')"
includes=()
for dir in $torch_include; do includes+=("-I$dir"); done
python_include="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[ -x "$nvcc" ] || { echo "check_cuda_compile.sh: nvcc not found at $nvcc (set NVCC or CUDA_HOME)" >&2; exit 2; }
for source in "$here"/cuda/*.cu; do
  out="$out_dir/$(basename "${source%.cu}").o"
  "$nvcc" -c "$source" -o "$out" -arch="$arch" -std="${CUDA_STD:-c++20}" -O3 -Xcompiler -fPIC \
    "${includes[@]}" "-I$python_include" \
    -DC10_USING_CUSTOM_GENERATED_MACROS -DC10_CUDA_BUILD_SHARED_LIBS \
    -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H \
    -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__ \
    -D__CUDA_NO_HALF2_OPERATORS__ --expt-relaxed-constexpr
  echo "compiled $out"
done
