"""Builds the PSA operator extension `port._C` (CPU always; CUDA when a GPU or FORCE_CUDA=1 and CUDA_HOME).

Install with `pip install --no-build-isolation -e .`: build isolation would fetch another torch.
"""
from __future__ import annotations

import glob
import os

import torch
from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension


def want_cuda() -> bool:
    """CUDA kernels are built when a GPU is visible or FORCE_CUDA=1, and nvcc's CUDA_HOME is known."""
    return (torch.cuda.is_available() or os.environ.get("FORCE_CUDA") == "1") and CUDA_HOME is not None


# NOTE: the shared libstdc++ named by file: on a GPU host, g++ (a wrapper adding its own -B GCC dirs) resolved
# -lstdc++ to the static library, and a private copy beside torch's shared one corrupts or crashes TORCH_CHECK
# messages that format integers.
LINK_ARGS = ["-fopenmp", "-l:libstdc++.so.6"]


# torch.library's register_fake / register_autograd need torch 2.4; tested with 2.11 and 2.13 (setup.sh pins 2.13.0)
RUNTIME = ["numpy", "protobuf", "safetensors", "tqdm", "pillow"]


def torch_requirement() -> str:
    """The torch a built port._C runs with: the minor release it was compiled against (C++ ABI), e.g. torch==2.13.*."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch=={major}.{minor}.*"


def extension():
    """The `port._C` extension with the CPU kernels, plus the CUDA ones when wanted."""
    sources = sorted(glob.glob("port/csrc/*.cpp"))
    # No fused multiply-adds and no trapping compares: kernels give the same values on every CPU, and vectorise.
    args = {"cxx": ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math"]}
    if not want_cuda():
        return CppExtension("port._C", sources, extra_compile_args=args, extra_link_args=LINK_ARGS)
    args["nvcc"] = ["-O3"]
    return CUDAExtension(
        "port._C",
        sources + sorted(glob.glob("port/csrc/cuda/*.cu")),
        extra_compile_args=args,
        extra_link_args=LINK_ARGS,
    )


setup(
    ext_modules=[extension()], cmdclass={"build_ext": BuildExtension}, install_requires=[torch_requirement(), *RUNTIME]
)
