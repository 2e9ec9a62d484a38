"""Replace the base tree's conda hard-codes with cache variables set by build.sh.

CMakeLists.txt: ANACONDA_HOME / PYTHON_VERSION include and link paths become
PSANET_EXTRA_INCLUDES / PSANET_EXTRA_LIBDIRS, and CPU_ONLY is defined only when the
CPU_ONLY option is on. python/CMakeLists.txt: the plain `-lboost_python` (absent on
Debian) becomes ${PSANET_BOOST_PYTHON}.
"""
from __future__ import annotations

import sys
from pathlib import Path

# (file, old text, new text); every old text must occur exactly once.
EDITS = (
    ("CMakeLists.txt", 'set(ANACONDA_HOME /root/miniconda3 CACHE STRING  "Default anaconda home")\n', ""),
    ("CMakeLists.txt", 'set(PYTHON_VERSION python3.7 CACHE STRING  "Default python version")\n', ""),
    ("CMakeLists.txt", "add_definitions( -DCPU_ONLY=1 )\n", ""),
    (
        "CMakeLists.txt",
        'caffe_option(CPU_ONLY  "Build Caffe without CUDA support" ON)\n',
        'caffe_option(CPU_ONLY  "Build Caffe without CUDA support" ON)\n'
        "if(CPU_ONLY)\n  add_definitions(-DCPU_ONLY=1)\nendif()\n",
    ),
    (
        "CMakeLists.txt",
        "include_directories(${ANACONDA_HOME}/include ${ANACONDA_HOME}/include/${PYTHON_VERSION} "
        "${ANACONDA_HOME}/include/${PYTHON_VERSION}m "
        "${ANACONDA_HOME}/lib/${PYTHON_VERSION}/site-packages/numpy/core/include)\n",
        "include_directories(${PSANET_EXTRA_INCLUDES})\n",
    ),
    ("CMakeLists.txt", "link_directories(${ANACONDA_HOME}/lib)\n", "link_directories(${PSANET_EXTRA_LIBDIRS})\n"),
    ("python/CMakeLists.txt", " -lboost_python ", " ${PSANET_BOOST_PYTHON} "),
)


def main(argv: list[str]) -> int:
    """Usage: patch_cmake.py TREE (edits the tree in place)."""
    if len(argv) != 2:
        print("usage: patch_cmake.py TREE", file=sys.stderr)
        return 2
    tree = Path(argv[1])
    texts: dict[str, str] = {}
    for name, old, new in EDITS:
        text = texts.get(name) or (tree / name).read_text()
        if text.count(old) != 1:
            print(f"patch_cmake: {tree / name}: expected exactly one {old.strip()!r}", file=sys.stderr)
            return 2
        texts[name] = text.replace(old, new)
    for name, text in texts.items():
        (tree / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
