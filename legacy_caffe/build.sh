#!/usr/bin/env bash
# Build the legacy Caffe reference (brocolli-caffe 9.0.2 + our PSANet layers) for the running
# Python, cache it under ${PSANET_CACHE:-$HOME/.cache/psanet}/caffe-<hash> and make
# `import caffe` work through a psanet_caffe.pth in that Python's site-packages.
# Idempotent: an unchanged rerun only re-installs the .pth and re-checks the import.
set -euo pipefail
shopt -s nullglob

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
CACHE=${PSANET_CACHE:-$HOME/.cache/psanet}
JOBS=${PSANET_CAFFE_JOBS:-2}
SDIST_NAME=brocolli-caffe
SDIST_VERSION=9.0.2
SDIST_SHA256=c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a
DEB_PACKAGES=(build-essential cmake protobuf-compiler libprotobuf-dev libgoogle-glog-dev libgflags-dev
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-regex-dev
  libboost-python-dev libhdf5-dev libopenblas-dev libgtest-dev)
# header (relative to /usr/include) -> package that ships it, checked after installation
HEADERS=(glog/logging.h:libgoogle-glog-dev gflags/gflags.h:libgflags-dev google/protobuf/message.h:libprotobuf-dev
  boost/python.hpp:libboost-python-dev boost/thread.hpp:libboost-thread-dev hdf5/serial/hdf5.h:libhdf5-dev
  x86_64-linux-gnu/cblas.h:libopenblas-dev gtest/gtest.h:libgtest-dev)

say() { echo "[caffe] $*"; }
die() { echo "[caffe] error: $*" >&2; exit 1; }

step_debian() {
  say "step 1/7: Debian build dependencies"
  command -v dpkg >/dev/null || die "dpkg not found: this script supports Debian 12 (or a conda env from environment.yml)"
  local missing=() pkg
  for pkg in "${DEB_PACKAGES[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      || die "could not install Debian package(s): ${missing[*]} (run: apt-get install ${missing[*]})"
  fi
  check_headers /usr/include "${HEADERS[@]}"
  HDF5_INCLUDE=/usr/include/hdf5/serial
  LIB_DIRS=$(echo /usr/lib/*/hdf5/serial)
}

# Conda: the build dependencies come from environment.yml (conda-forge) under $CONDA_PREFIX.
step_conda() {
  say "step 1/7: conda build dependencies in $CONDA_PREFIX"
  check_headers "$CONDA_PREFIX/include" glog/logging.h:glog gflags/gflags.h:gflags google/protobuf/message.h:libprotobuf \
    boost/python.hpp:libboost-python-devel boost/thread.hpp:libboost-devel hdf5.h:hdf5 cblas.h:openblas gtest/gtest.h:gtest
  HDF5_INCLUDE=$CONDA_PREFIX/include
  LIB_DIRS=$CONDA_PREFIX/lib
  export CMAKE_PREFIX_PATH=$CONDA_PREFIX${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
}

# check_headers ROOT header:package... — stop naming the first header that is missing.
check_headers() {
  local root=$1 entry
  shift
  for entry in "$@"; do
    [[ -f $root/${entry%%:*} ]] || die "missing header $root/${entry%%:*} (package ${entry##*:})"
  done
  for entry in cmake protoc make; do command -v "$entry" >/dev/null || die "missing tool: $entry"; done
  command -v "${CXX:-g++}" >/dev/null || die "missing C++ compiler: ${CXX:-g++}"
}

step_python() {
  say "step 2/7: Python side ($PYTHON)"
  command -v "$PYTHON" >/dev/null || die "python not found: $PYTHON (set PYTHON=...)"
  local mod
  for mod in numpy google.protobuf skimage scipy six; do
    "$PYTHON" -c "import $mod" 2>/dev/null || die "$PYTHON cannot import $mod (pip install ${mod/google.protobuf/protobuf})"
  done
  PY_TAG=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
  PY_INCLUDE=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  PY_PURELIB=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  [[ -f $PY_INCLUDE/Python.h ]] || die "missing $PY_INCLUDE/Python.h (Debian: apt-get install python3-dev)"
  NUMPY_INCLUDE=$("$PYTHON" -c 'import numpy; print(numpy.get_include())')
  PY_ID=$("$PYTHON" -c 'import sys, numpy, google.protobuf as p; print(sys.version.split()[0], numpy.__version__, p.__version__)')
  BOOST_PYTHON=boost_python$PY_TAG
  compgen -G "${CONDA_PREFIX:-/nonexistent}/lib/lib$BOOST_PYTHON.so" >/dev/null || compgen -G "/usr/lib/*/lib$BOOST_PYTHON.so" >/dev/null \
    || die "lib$BOOST_PYTHON.so not found (Debian: libboost-python-dev; conda: libboost-python-devel) for Python $PY_TAG"
}

step_sdist() {
  say "step 3/7: source $SDIST_NAME==$SDIST_VERSION"
  SDIST="$CACHE/downloads/$SDIST_NAME-$SDIST_VERSION.tar.gz"
  if [[ ! -f $SDIST ]]; then
    local tmp
    tmp=$(mktemp -d "$CACHE/downloads/.pip.XXXXXX")
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: -d "$tmp" "$SDIST_NAME==$SDIST_VERSION" \
      || die "pip download $SDIST_NAME==$SDIST_VERSION failed"
    mv "$tmp/$SDIST_NAME-$SDIST_VERSION.tar.gz" "$SDIST" && rm -rf "$tmp"
  fi
  echo "$SDIST_SHA256  $SDIST" | sha256sum -c --quiet - || die "sha256 mismatch for $SDIST (delete it to download again)"
}

# Hash of everything that shapes the result; $1 = files under legacy_caffe/ to include.
inputs_hash() {
  {
    echo "$SDIST_SHA256 $PY_ID $BUILD_FLAGS"
    (cd "$HERE" && sha256sum "$@")
  } | sha256sum | cut -c1-16
}

# Copy $1 to $2 only when the content differs, so make rebuilds only what changed.
sync_file() { cmp -s "$1" "$2" || cp "$1" "$2"; }

step_tree() {
  say "step 4/7: build tree $WORK"
  local tree_key
  tree_key=$(inputs_hash tools/patch_cmake.py tools/patch_proto.py proto/psanet_messages.proto)
  if [[ ! -f $WORK/.tree_key || $(cat "$WORK/.tree_key") != "$tree_key" ]]; then
    say "extracting $SDIST"
    rm -rf "$WORK" && mkdir -p "$WORK"
    tar -xzf "$SDIST" -C "$WORK"
    mv "$WORK/$SDIST_NAME-$SDIST_VERSION" "$WORK/src"
    local src=$WORK/src
    # the base's own BN layer (1xC blobs, other proto) is replaced by ours
    rm -f "$src"/src/caffe/layers/{bn_layer,cudnn_bn_layer}.{cpp,cu} "$src"/include/caffe/layers/{bn_layer,cudnn_bn_layer}.hpp
    rm -f "$src"/python/caffe/proto/caffe_pb2.py "$src"/python/caffe/_caffe.so
    "$PYTHON" "$HERE/tools/patch_proto.py" "$src/src/caffe/proto/caffe.proto" "$HERE/proto/psanet_messages.proto" || die "proto patch failed"
    "$PYTHON" "$HERE/tools/patch_cmake.py" "$src" || die "CMake patch failed"
    if grep -rlE "BNLayer|bn_layer\.hpp|bn_param\(\)" "$src/src" "$src/include" "$src/python" --include='*.cpp' --include='*.hpp' --include='*.cu'; then
      die "files above still reference the removed BN layer"
    fi
    echo "$tree_key" >"$WORK/.tree_key"
  fi
  local f
  for f in "$HERE"/include/*.hpp; do sync_file "$f" "$WORK/src/include/caffe/layers/$(basename "$f")"; done
  for f in "$HERE"/src/*.cpp "$HERE"/src/*.cu; do sync_file "$f" "$WORK/src/src/caffe/layers/$(basename "$f")"; done
}

step_compile() {
  say "step 5/7: cmake + make -j$JOBS pycaffe ($BUILD_FLAGS)"
  local log=$WORK/build.log
  cmake -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_python=ON $BUILD_FLAGS \
    "-DPSANET_EXTRA_INCLUDES=$PY_INCLUDE;$NUMPY_INCLUDE;$HDF5_INCLUDE" \
    "-DPSANET_EXTRA_LIBDIRS=$LIB_DIRS" "-DPSANET_BOOST_PYTHON=-l$BOOST_PYTHON" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; die "cmake failed (full log: $log)"; }
  make -C "$WORK/build" -j"$JOBS" pycaffe >>"$log" 2>&1 || { grep -m 20 -B2 -A6 "error" "$log" >&2; die "make failed (full log: $log)"; }
}

# caffe_pb2.py from Debian's protoc may not load under a newer Python protobuf: regenerate it
# with the protoc bundled in grpcio-tools (kept in the cache, never installed into the Python).
fix_pb2() {
  local pkg=$1/caffe
  if (cd "$1" && "$PYTHON" -c "import caffe.proto.caffe_pb2" 2>/dev/null); then return; fi
  say "caffe_pb2.py from $(protoc --version) does not import; regenerating with grpcio-tools"
  local tools=$CACHE/grpcio-tools
  [[ -d $tools ]] || "$PYTHON" -m pip install -q --no-deps --target "$tools" grpcio-tools || die "pip install grpcio-tools failed"
  PYTHONPATH=$tools "$PYTHON" -m grpc_tools.protoc -I"$WORK/src/src/caffe/proto" --python_out="$pkg/proto" \
    "$WORK/src/src/caffe/proto/caffe.proto" || die "grpc_tools.protoc failed"
  (cd "$1" && "$PYTHON" -c "import caffe.proto.caffe_pb2") || die "regenerated caffe_pb2.py still does not import"
}

step_collect() {
  say "step 6/7: collect into $OUT"
  local tmp=$OUT.tmp.$$
  rm -rf "$tmp" && mkdir -p "$tmp/python"
  cp -rL "$WORK/src/python/caffe" "$tmp/python/caffe"
  rm -rf "$tmp/python/caffe/test" "$tmp/python/caffe/_caffe.cpp"
  find "$tmp/python" -name __pycache__ -prune -exec rm -rf {} +
  fix_pb2 "$tmp/python"
  smoke_test "$tmp/python"
  printf 'sdist %s %s\npython %s\nflags %s\n' "$SDIST_NAME==$SDIST_VERSION" "$SDIST_SHA256" "$PY_ID" "$BUILD_FLAGS" >"$tmp/BUILD_INFO"
  rm -rf "$OUT" && mv "$tmp" "$OUT"
}

# Run the smoke net (all three PSANet layers) with the package found under $1.
smoke_test() {
  (cd / && PYTHONPATH=$1 "$PYTHON" - "$HERE/tests/smoke.prototxt" <<'EOF'
import sys
import caffe
import numpy as np
net = caffe.Net(sys.argv[1], caffe.TEST)
net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal(net.blobs["data"].data.shape)
out = net.forward()
assert all(np.isfinite(v).all() for v in out.values()), "non-finite smoke output"
print("[caffe] smoke net OK:", {k: v.shape for k, v in out.items()})
EOF
  ) || die "smoke net failed with the build under $1"
}

step_install() {
  say "step 7/7: psanet_caffe.pth -> $OUT/python"
  mkdir -p "$PY_PURELIB"
  local pth=$PY_PURELIB/psanet_caffe.pth
  echo "$OUT/python" >"$pth.tmp.$$" && mv "$pth.tmp.$$" "$pth" || die "cannot write $pth"
  local found
  found=$(cd / && "$PYTHON" -c "import caffe; print(caffe.__file__)") || die "import caffe fails after installing $pth"
  [[ $found == "$OUT/python/"* ]] || die "import caffe picks up $found, not $OUT/python (another caffe shadows it)"
  say "import caffe OK: $found"
}

main() {
  mkdir -p "$CACHE/downloads"
  exec 9>"$CACHE/.build.lock"
  flock 9
  # a conda env made from environment.yml carries its own build deps; otherwise Debian's packages
  if [[ -f ${CONDA_PREFIX:-/nonexistent}/include/glog/logging.h ]]; then step_conda; else step_debian; fi
  step_python
  BUILD_FLAGS="-DCPU_ONLY=ON"
  if command -v nvcc >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    say "note: nvcc and a GPU are present, but the base tree's CMake has no CUDA wiring; building CPU-only"
  fi
  step_sdist
  local feeds
  feeds=$(cd "$HERE" && ls build.sh tools/*.py proto/*.proto include/*.hpp src/*.cpp src/*.cu tests/smoke.prototxt)
  # shellcheck disable=SC2086
  OUT=$CACHE/caffe-$(inputs_hash $feeds)
  WORK=$CACHE/work-py$PY_TAG
  if [[ -f $OUT/BUILD_INFO ]]; then
    say "cached build found: $OUT"
  else
    step_tree
    step_compile
    step_collect
  fi
  step_install
}

main "$@"
