"""The one module that knows the CPU: its instruction sets, and which fast paths follow from them.

Every capability-dependent choice of the project asks here: the fast path's dtype, weight packing and Winograd
convolutions (port.optimize), int8 (port.quantize), the trainer's autocast, the train-mode BN kernel's vector loops
and the convolutions' weight gradients (port.model.conv), and the benchmarks' roofs and modes. Nothing here changes
the process: it only reads.

A lesser CPU can be reported on any machine, so every fallback path runs in tests everywhere:
PSANET_CPU_CAPABILITY=default|avx2|avx512 caps the x86 level (flags above it are dropped), as do torch's
ATEN_CPU_CAPABILITY and oneDNN's ONEDNN_MAX_CPU_ISA when set (CI sets all three; the last two make ATen and
oneDNN themselves run the lesser paths).
"""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

ENV = "PSANET_CPU_CAPABILITY"
X86_ARCHES = ("x86_64", "amd64")  # platform.machine(), lowered
ARM_ARCHES = ("aarch64", "arm64")
LEVELS = ("default", "avx2", "avx512")  # x86 vector levels, lowest first, named as ATen names them
# The flags each level needs, and the flags that only a level at or above it may report.
AVX512_CORE = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})
AVX2_CORE = frozenset({"avx2", "fma"})
ABOVE_AVX2_PREFIXES = ("avx512", "amx", "avx_vnni", "avx_ne_convert", "avx_ifma")
BF16_NATIVE_X86 = frozenset({"avx512_bf16", "amx_bf16"})
INT8_DOT_X86 = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})


class CpuFeatureError(RuntimeError):
    """A requested path needs a CPU feature this machine lacks; the message names it and the alternative."""


@dataclass(frozen=True)
class CpuInfo:
    """What the CPU offers, after any cap. `flags` are /proc/cpuinfo's (x86 "flags", aarch64 "Features")."""

    arch: str
    model: str
    flags: frozenset[str]
    level: str  # x86: one of LEVELS; aarch64: "neon" or "sve"; else "default"

    @property
    def x86(self) -> bool:
        return self.arch in X86_ARCHES

    @property
    def aarch64(self) -> bool:
        return self.arch in ARM_ARCHES

    @property
    def amx(self) -> bool:
        return bool({"amx_bf16", "amx_int8"} & self.flags)

    @property
    def native_bf16(self) -> bool:
        """bf16 arithmetic in hardware (avx512_bf16, AMX, aarch64 BFDOT/BFMMLA), where bf16 beats fp32. oneDNN also
        runs bf16 on plain AVX-512 or AVX-NE-CONVERT by converting to fp32 (no faster than fp32), and not at all on
        AVX2 ("bf16 path needs the cpu support avx_ne_convert or avx512bw, avx512vl and avx512dq")."""
        return (self.x86 and bool(BF16_NATIVE_X86 & self.flags)) or (self.aarch64 and "bf16" in self.flags)

    @property
    def int8_dot(self) -> bool:
        """int8 dot-product instructions (VNNI, AMX int8; aarch64 SDOT/I8MM)."""
        arm_dot = {"asimddp", "i8mm"}
        return (self.x86 and bool(INT8_DOT_X86 & self.flags)) or (self.aarch64 and bool(arm_dot & self.flags))

    @property
    def int8(self) -> bool:
        """port.quantize's int8 path runs: x86 with AVX2 at least (oneDNN's int8 convolutions; VNNI or AMX make them
        faster), since its quantizer (X86InductorQuantizer) targets x86's oneDNN only."""
        return self.x86 and self.level != "default"

    @property
    def packed_convolutions(self) -> bool:
        """The fast path's oneDNN convolutions with prepacked weights and fused post-ops (x86, AVX2 or better);
        elsewhere it runs plain conv2d, which ATen sends to the platform's own kernels."""
        return self.x86 and self.level != "default"

    @property
    def tap_weight_gradients(self) -> bool:
        """float32 convolution weight gradients as one matrix product per kernel tap (psanet::conv_weight_grad)
        instead of oneDNN's own kernel: x86 at the AVX2 or AVX-512 level, where oneDNN's weight-gradient kernels ran
        at 27-54% of torch.mm at the 3x3 layers' shapes (AMD Zen 3) and the taps made a training step 1.14-1.38x
        faster (Intel Ice Lake; docs/PERFORMANCE.md); aarch64 keeps ATen's."""
        return self.x86 and self.level != "default"

    @property
    def winograd_convolutions(self) -> bool:
        """The fast path's float32 3x3 stride-1 convolutions of 128 or more input channels by Winograd F(2x2, 3x3)
        (psanet::winograd_conv3x3) instead of oneDNN's direct kernel: x86 at the AVX2 or AVX-512 level, where it
        ran PSANet-101's fast path 1.16-1.50x faster (AMD Zen 3, Intel Ice Lake; docs/PERFORMANCE.md); aarch64 keeps
        ATen's kernels (unmeasured there)."""
        return self.x86 and self.level != "default"

    @property
    def vector_level(self) -> int:
        """The widest loops of port._C's train-mode BN kernel to run: 2 AVX-512, 1 AVX2, 0 portable C++."""
        return LEVELS.index(self.level) if self.x86 else 0

    def roof_dtypes(self) -> tuple[str, ...]:
        """The dtypes whose matrix-multiply roof is worth measuring: those the CPU runs natively, and int8 where the
        int8 path runs (with or without int8 dot products: its roof says what int8 can gain over fp32 here)."""
        return ("fp32",) + (("bf16",) if self.native_bf16 else ()) + (("int8",) if self.int8 else ())

    def describe(self) -> str:
        """One line naming the CPU and what decides the fast paths (benchmarks print it)."""
        shown = ", ".join(f"{flag} {'yes' if flag in self.flags else 'no'}" for flag in REPORTED_FLAGS[self.x86])
        capped = ", ".join(caps())
        capped = f"; capped by {capped}" if capped else ""
        return (
            f"ISA: {self.model or 'unknown CPU'} ({self.arch}); level {self.level}{capped}; torch CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}; native bf16 {'yes' if self.native_bf16 else 'no'}, "
            f"int8 dot products {'yes' if self.int8_dot else 'no'}, AMX {'yes' if self.amx else 'no'} ({shown})."
        )


REPORTED_FLAGS = {
    True: ("amx_bf16", "amx_int8", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx_ne_convert", "avx512f", "avx2"),
    False: ("asimd", "asimddp", "sve", "bf16", "i8mm"),
}


def caps() -> list[str]:
    """The environment variables that cap the reported level, as NAME=value."""
    names = (ENV, "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
    return [f"{name}={os.environ[name]}" for name in names if os.environ.get(name, "").strip()]


def _cap_level() -> str:
    """The lowest level any cap allows ("avx512" where none is set). Unknown values are refused: a typo must not
    silently test the full CPU instead of the lesser one."""
    allowed = ["avx512"]
    for name in (ENV, "ATEN_CPU_CAPABILITY"):
        value = os.environ.get(name, "").strip().lower()
        if value:
            if value not in LEVELS:
                raise ValueError(f"{name}={value!r}: expected one of {', '.join(LEVELS)}")
            allowed.append(value)
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if onednn and onednn != "ALL":  # oneDNN's names: SSE41, AVX, AVX2, AVX2_VNNI..., AVX512_CORE..., ALL
        allowed.append("avx512" if onednn.startswith("AVX512") else "avx2" if onednn.startswith("AVX2") else "default")
    return min(allowed, key=LEVELS.index)


def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) from /proc/cpuinfo; ("", empty) where there is none."""
    path = Path("/proc/cpuinfo")
    try:
        text = path.read_text()
    except OSError:
        return "", frozenset()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    model = fields.get("model name") or fields.get("cpu model") or fields.get("hardware", "")
    return model, frozenset((fields.get("flags") or fields.get("features", "")).split())


def _torch_flags() -> frozenset[str]:
    """Flags implied by torch's own dispatch level, where /proc/cpuinfo is missing (not Linux)."""
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if capability.startswith("AVX512"):
        return AVX512_CORE | AVX2_CORE
    return AVX2_CORE if capability.startswith("AVX2") else frozenset()


def _detect() -> CpuInfo:
    arch = platform.machine().lower()
    model, flags = _cpuinfo()
    if arch in X86_ARCHES:
        flags = flags or _torch_flags()
        hardware = "avx512" if AVX512_CORE <= flags else "avx2" if AVX2_CORE <= flags else "default"
        level = min(hardware, _cap_level(), key=LEVELS.index)
        if level != hardware:  # capped: what the lesser CPU would not have goes (AVX2 CPUs may have avx_vnni)
            flags = frozenset(f for f in flags if not f.startswith(ABOVE_AVX2_PREFIXES))
            if level == "default":
                flags = flags - AVX2_CORE
        return CpuInfo(arch, model, flags, level)
    if arch in ARM_ARCHES:
        return CpuInfo(arch, model, flags, "sve" if "sve" in flags else "neon")
    return CpuInfo(arch, model, flags, "default")


@functools.cache
def info() -> CpuInfo:
    """This machine's CPU, read once per process (caps included)."""
    return _detect()


def require_bf16(what: str, alternative: str = "use float32") -> None:
    """Raises CpuFeatureError when `what` (a bf16 path on the CPU) would not run bf16 natively here."""
    cpu = info()
    if not cpu.native_bf16:
        raise CpuFeatureError(
            f"{what} needs native bfloat16 on the CPU (x86: avx512_bf16 or AMX; aarch64: bf16), which this "
            f"{cpu.arch} {cpu.level} CPU lacks (bf16 would be emulated, slower than float32): {alternative}"
        )


def refuse_fp16(what: str, alternative: str) -> None:
    """Raises CpuFeatureError for `what`, a float16 path on the CPU: every CPU the port runs on emulates it (an eager
    PSANet forward ~90x slower than float32 on AVX-512)."""
    raise CpuFeatureError(f"{what} is for CUDA (the CPU runs fp16 emulated): {alternative}")


def require_int8(what: str) -> None:
    """Raises CpuFeatureError when `what` (port.quantize's int8 path) cannot run on this CPU."""
    cpu = info()
    if not cpu.int8:
        raise CpuFeatureError(
            f"{what} needs an x86 CPU with AVX2 or better (oneDNN's int8 convolutions through the x86 quantizer); "
            f"this CPU is {cpu.arch} {cpu.level}: use float32"
        )
