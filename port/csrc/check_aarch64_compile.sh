#!/usr/bin/env bash
# Cross-compiles every C++ source of port._C (port/csrc/*.cpp) for aarch64 to an object file only, with Debian's
# g++-aarch64-linux-gnu against the installed torch's headers (they are the same on every architecture). Proves
# that no x86-only attribute or builtin escapes its guard. Usage:
#   bash port/csrc/check_aarch64_compile.sh [output_dir]   (CXX_AARCH64 overrides the compiler)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cxx="${CXX_AARCH64:-aarch64-linux-gnu-g++}"
out_dir="${1:-$(mktemp -d)}"
mkdir -p "$out_dir"
if ! command -v "$cxx" >/dev/null; then
  echo "check_aarch64_compile.sh: $cxx not found (apt-get install g++-aarch64-linux-gnu)" >&2
  exit 2
fi
includes=()
torch_include="$(python3 -c 'import torch.utils.cpp_extension as e; print(" ".join(e.include_paths()))')"
for dir in $torch_include; do includes+=("-I$dir"); done
python_include="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
for source in "$here"/*.cpp; do
  out="$out_dir/$(basename "${source%.cpp}").o"
  # setup.py's flags for the CPU sources, the ABI flag torch's wheel was built with
  "$cxx" -c "$source" -o "$out" -std=c++20 -O3 -fPIC -fopenmp -ffp-contract=off -fno-trapping-math \
    "${includes[@]}" "-I$python_include" -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H \
    -D_GLIBCXX_USE_CXX11_ABI="$(python3 -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))')"
  echo "compiled $out"
done
