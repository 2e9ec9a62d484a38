#!/usr/bin/env bash
# Compile our three layers' CUDA sources with nvcc to object files only (no GPU needed), against the
# patched Caffe work tree that build.sh left in the cache. The CUDA toolkit here lacks cuBLAS/cuRAND
# headers, which Caffe's common.hpp includes: they are taken from NVIDIA's PyPI wheels (pinned),
# extracted once into the cache. Usage: bash legacy_caffe/check_cuda_compile.sh   (NVCC, CUDA_ARCH override)
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
CACHE=${PSANET_CACHE:-$HOME/.cache/psanet}
NVCC=${NVCC:-${CUDA_HOME:-/usr/local/cuda}/bin/nvcc}
ARCH=${CUDA_ARCH:-sm_90}
HEADER_WHEELS=(nvidia-cublas==13.10.0.20 nvidia-curand==10.4.5.25)
die() { echo "check_cuda_compile: $*" >&2; exit 2; }

[[ -x $NVCC ]] || die "nvcc not found at $NVCC (set NVCC or CUDA_HOME)"
PY_TAG=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
WORK=$CACHE/work-py$PY_TAG
[[ -f $WORK/build/include/caffe/proto/caffe.pb.h ]] || die "no Caffe work tree at $WORK: run bash legacy_caffe/build.sh first"

HEADERS=$CACHE/cuda-headers
if [[ ! -f $HEADERS/include/cublas_v2.h || ! -f $HEADERS/include/curand.h ]]; then
  echo "[cuda] fetching cuBLAS/cuRAND headers (${HEADER_WHEELS[*]})"
  rm -rf "$HEADERS" && mkdir -p "$HEADERS/wheels"
  "$PYTHON" -m pip download -q --no-deps -d "$HEADERS/wheels" "${HEADER_WHEELS[@]}" || die "pip could not download ${HEADER_WHEELS[*]}"
  "$PYTHON" - "$HEADERS" <<'PY'
import pathlib, sys, zipfile
root = pathlib.Path(sys.argv[1])
for wheel in (root / "wheels").glob("*.whl"):
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if "/include/" in name and not name.endswith("/"):
                (root / "include" / pathlib.Path(name).name).parent.mkdir(parents=True, exist_ok=True)
                (root / "include" / pathlib.Path(name).name).write_bytes(archive.read(name))
PY
  rm -rf "$HEADERS/wheels"
fi

PY_INCLUDE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NUMPY_INCLUDE=$("$PYTHON" -c 'import numpy; print(numpy.get_include())')
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
# build/include first: the sdist ships a stale caffe.pb.h under src/include.
for cu in "$HERE"/src/*.cu; do
  echo "[cuda] nvcc -c $(basename "$cu") (-arch=$ARCH)"
  "$NVCC" -c "$cu" -o "$OUT/$(basename "$cu" .cu).o" -std=c++17 -arch="$ARCH" -Xcompiler -fPIC \
    -I"$HEADERS/include" -I"$WORK/build/include" -I"$WORK/src/include" -I/usr/include/hdf5/serial \
    -I"$PY_INCLUDE" -I"$NUMPY_INCLUDE" || die "nvcc failed on $(basename "$cu")"
done
echo "[cuda] all legacy Caffe CUDA sources compile"
