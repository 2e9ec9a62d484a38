#!/usr/bin/env bash
# Build legacy_caffe/bench/caffe_bench.cpp against the cached Caffe build (legacy_caffe/build.sh) and make DIR a
# self-contained copy of it: DIR/caffe_bench (a launcher) runs DIR/lib/caffe_bench with every library it needs but
# the C library's from DIR/lib, so it runs on another x86-64 Linux with glibc >= this one's and no Caffe, Boost or
# Python packages. DIR/lib/_caffe.so is a copy of the file `import caffe` loads here (the one the parity tests ran);
# it needs libpython to load, but the program never starts Python.
#   bash legacy_caffe/bench/bundle.sh DIR [--tar]     # --tar: also DIR.tar.gz (one file to carry)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
CACHE=${PSANET_CACHE:-$HOME/.cache/psanet}
say() { echo "[caffe-bundle] $*"; }
die() { echo "[caffe-bundle] error: $*" >&2; exit 2; }

(($# >= 1 && $# <= 2)) || die "usage: bash legacy_caffe/bench/bundle.sh DIR [--tar]"
dir=$(realpath -m "$1")
tar=${2:-}
[[ -z $tar || $tar == --tar ]] || die "unknown option '$tar' (only --tar)"

loaded=$(cd / && GLOG_minloglevel=2 "$PYTHON" -c 'import caffe._caffe as c; print(c.__file__)' 2>/dev/null) \
  || die "$PYTHON cannot import caffe: build it first (bash legacy_caffe/build.sh)"
tag=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
work=$CACHE/work-py$tag
[[ -f $work/build/lib/_caffe.so && -f $work/src/include/caffe/caffe.hpp ]] \
  || die "no Caffe work tree at $work (headers and objects of the build): run bash legacy_caffe/build.sh"
cmp -s "$loaded" "$work/build/lib/_caffe.so" \
  || die "$loaded (what import caffe loads) differs from $work/build/lib/_caffe.so: run bash legacy_caffe/build.sh"
libpython=$("$PYTHON" -c 'import sysconfig as s; print(*map(s.get_config_var, ("LIBDIR", "INSTSONAME")), sep="/")')
[[ -f $libpython ]] || die "$libpython not found: the Python that built Caffe has no shared libpython"
# Debian's HDF5 headers, or a conda env's include/lib folders (the env environment.yml makes)
paths=(-I/usr/include/hdf5/serial)
[[ -f ${CONDA_PREFIX:-/nonexistent}/include/glog/logging.h ]] \
  && paths=(-I"$CONDA_PREFIX/include" -L"$CONDA_PREFIX/lib" -Wl,--enable-new-dtags,-rpath,"$CONDA_PREFIX/lib")

# Built in a scratch folder renamed to DIR at the end: a failed run leaves no partial bundle.
final=$dir
dir=$final.tmp.$$
trap 'rm -rf "$dir"' EXIT
rm -rf "$dir" "$final.tar.gz"
mkdir -p "$dir/lib"
cp "$loaded" "$dir/lib/_caffe.so"
say "compiling caffe_bench against $loaded"
# The build's generated caffe.pb.h goes before the source tree's stale copy.
"${CXX:-g++}" -O2 -std=c++17 -DCPU_ONLY=1 -I"$work/build/include" -I"$work/src/include" "${paths[@]}" \
  "$HERE/caffe_bench.cpp" -o "$dir/lib/caffe_bench" "$dir/lib/_caffe.so" "$libpython" \
  -lglog -lgflags -lprotobuf -lboost_system >"$dir/compile.log" 2>&1 \
  || { grep -m 10 -A3 "error" "$dir/compile.log" >&2 || true; die "compiling caffe_bench.cpp failed"; }
rm "$dir/compile.log"
# The launcher: LD_LIBRARY_PATH is searched before _caffe.so's own RUNPATH (an RPATH of the program would not be).
printf '%s\n' '#!/bin/sh' 'here=$(cd "${0%/*}" && pwd)' \
  'LD_LIBRARY_PATH=$here/lib exec "$here/lib/caffe_bench" "$@"' >"$dir/caffe_bench"
chmod +x "$dir/caffe_bench"

# Every library the loader resolves, but the C library's own, into DIR/lib (stripped copies; _caffe.so as it is).
glibc='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libutil|libmvec)\.so'
resolved() { env -i LD_LIBRARY_PATH="$dir/lib" ldd "$dir/lib/caffe_bench" | awk '$2 == "=>" { print $1, $3 }'; }
while read -r name path; do
  [[ $name =~ $glibc || $path == "$dir/lib/"* ]] && continue
  [[ -f $path ]] || die "the loader does not find $name for caffe_bench"
  cp -L "$path" "$dir/lib/$name"
  chmod u+w "$dir/lib/$name"
  strip --strip-unneeded "$dir/lib/$name" 2>/dev/null || true
done < <(resolved)

# Check: with the environment emptied but for the launcher's path, nothing but the C library resolves outside DIR.
outside=$(resolved | grep -vE "$glibc" | grep -v " $dir/lib/" || true)
[[ -z $outside ]] || die "caffe_bench still loads from outside $dir: $outside"
rc=0
env -i "$dir/caffe_bench" 2>/dev/null || rc=$?
((rc == 2)) || die "$dir/caffe_bench does not start (exit $rc; it should stop at its usage line)"
rm -rf "$final" && mv "$dir" "$final"
say "$final: caffe_bench and $(ls "$final/lib" | wc -l) files in lib/, $(du -sh "$final" | cut -f1)"
if [[ -n $tar ]]; then
  tar -czf "$final.tar.gz.tmp" -C "$(dirname "$final")" "$(basename "$final")" && mv "$final.tar.gz.tmp" "$final.tar.gz"
  say "$final.tar.gz: $(du -h "$final.tar.gz" | cut -f1)"
fi
