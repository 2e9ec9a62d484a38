"""port.cpu: what it reads off known CPUs, the caps that make it report a lesser CPU, and the one clear error each
CPU-dependent public path gives where the CPU lacks what it needs."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from port import cpu
from port.model import create_model
from port.optimize import for_inference
from port.optimize.fused_conv import FusedConv

pytestmark = pytest.mark.cpu_isa

# /proc/cpuinfo flags (the ones that matter here, plus neighbours) of CPUs users run
ZEN3 = "fpu sse4_2 avx f16c fma avx2 bmi2 sha_ni vaes vpclmulqdq"
ZEN4 = ZEN3 + " avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni avx512_bitalg"
SKYLAKE_SP = ZEN3 + " avx512f avx512dq avx512cd avx512bw avx512vl"
SAPPHIRE_RAPIDS = ZEN4 + " amx_bf16 amx_tile amx_int8 avx_vnni"
ALDER_LAKE = ZEN3 + " avx_vnni"
GRAVITON3 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm asimddp sve i8mm bf16"
NEOVERSE_N1 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"


@pytest.fixture
def simulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """simulated(arch, flags, **env) -> the CpuInfo port.cpu reads off such a machine (the cache cleared around)."""
    for name in (cpu.ENV, "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(name, raising=False)

    def read(arch: str, flags: str, **env: str) -> cpu.CpuInfo:
        monkeypatch.setattr(cpu.platform, "machine", lambda: arch)
        monkeypatch.setattr(cpu, "_cpuinfo", lambda: ("test CPU", frozenset(flags.split())))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        cpu.info.cache_clear()
        return cpu.info()

    yield read
    cpu.info.cache_clear()


@pytest.mark.parametrize(
    "arch, flags, level, bf16, int8_dot, amx, vector",
    [
        ("x86_64", ZEN3, "avx2", False, False, False, 1),
        ("x86_64", ALDER_LAKE, "avx2", False, True, False, 1),
        ("x86_64", SKYLAKE_SP, "avx512", False, False, False, 2),
        ("x86_64", ZEN4, "avx512", True, True, False, 2),
        ("x86_64", SAPPHIRE_RAPIDS, "avx512", True, True, True, 2),
        ("x86_64", "fpu sse4_2 avx", "default", False, False, False, 0),
        ("aarch64", GRAVITON3, "sve", True, True, False, 0),
        ("aarch64", NEOVERSE_N1, "neon", False, True, False, 0),
    ],
    ids=["zen3", "alder_lake", "skylake_sp", "zen4", "sapphire_rapids", "sse4", "graviton3", "neoverse_n1"],
)
def test_known_cpus(simulated, arch: str, flags: str, level: str, bf16: bool, int8_dot: bool, amx: bool,
                    vector: int) -> None:
    info = simulated(arch, flags)
    assert (info.level, info.native_bf16, info.int8_dot, info.amx, info.vector_level) == (
        level, bf16, int8_dot, amx, vector)
    x86_simd = arch == "x86_64" and level != "default"  # x86 at AVX2 or better
    assert info.int8 == info.packed_convolutions == x86_simd
    assert info.tap_weight_gradients == info.winograd_convolutions == x86_simd
    assert info.roof_dtypes() == ("fp32", *(("bf16",) if bf16 else ()), *(("int8",) if x86_simd else ()))
    assert info.describe().startswith(f"ISA: test CPU ({arch}); level {level}")


@pytest.mark.parametrize(
    "env", [{cpu.ENV: "avx2"}, {"ATEN_CPU_CAPABILITY": "avx2"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"},
            {cpu.ENV: "avx512", "ONEDNN_MAX_CPU_ISA": "avx2_vnni"}],
    ids=["psanet", "aten", "onednn", "lowest_wins"],
)
def test_a_cap_reports_an_avx2_cpu(simulated, env: dict[str, str]) -> None:
    info = simulated("x86_64", SAPPHIRE_RAPIDS, **env)
    assert info.level == "avx2" and info.vector_level == 1 and info.tap_weight_gradients and info.winograd_convolutions
    assert not (info.native_bf16 or info.int8_dot or info.amx) and info.int8
    assert not {f for f in info.flags if f.startswith(("avx512", "amx", "avx_vnni"))}
    assert "capped by" in info.describe()


def test_a_cap_to_default_leaves_no_vector_path(simulated) -> None:
    info = simulated("x86_64", SAPPHIRE_RAPIDS, **{cpu.ENV: "default"})
    assert info.level == "default" and info.vector_level == 0
    assert not (info.int8 or info.packed_convolutions or "avx2" in info.flags)


def test_a_cap_never_raises_the_level(simulated) -> None:
    assert simulated("x86_64", ZEN3, **{cpu.ENV: "avx512"}).level == "avx2"


def test_an_unknown_cap_is_refused(simulated) -> None:
    with pytest.raises(ValueError, match="PSANET_CPU_CAPABILITY='avx3'.*default, avx2, avx512"):
        simulated("x86_64", ZEN3, **{cpu.ENV: "avx3"})


@pytest.fixture
def avx2_cpu(simulated) -> cpu.CpuInfo:
    """This test runs as on an AVX2-only x86 CPU (Zen 3), whatever the machine."""
    return simulated("x86_64", ZEN3)


def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("psanet50_ade20k_465", width_divisor=16, crop=97).eval()


def test_bf16_inference_without_native_bf16_is_one_clear_error(avx2_cpu) -> None:
    with pytest.raises(cpu.CpuFeatureError) as error:
        for_inference(small_model(), dtype=torch.bfloat16)
    message = str(error.value)
    assert "\n" not in message and "native bfloat16" in message and "avx2" in message
    assert "dtype=torch.float32" in message and "quantize_int8" in message


@pytest.mark.parametrize("dtype, autocast", [(torch.bfloat16, False), (torch.float32, True)])
def test_an_emulated_bf16_forward_is_one_clear_error(avx2_cpu, dtype: torch.dtype, autocast: bool) -> None:
    """The eager model in bf16 (or under CPU bf16 autocast) without native bf16: 7 s against fp32's 0.08 s (width/4
    PSANet-50 at 241², capped at AVX2), a silent ~90x; one error instead, before any layer runs."""
    model = small_model().to(dtype)
    with pytest.raises(cpu.CpuFeatureError, match=r"^PSANet in bfloat16 on the CPU needs native bfloat16 .* this "
                                                  r"x86_64 avx2 CPU lacks .*: use float32$"):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(torch.zeros(1, 3, 97, 97, dtype=dtype))


def test_an_fp16_forward_on_the_cpu_is_one_clear_error() -> None:
    message = r"^PSANet in float16 is for CUDA \(the CPU runs fp16 emulated\): on the CPU use float32, or bfloat16 "
    with pytest.raises(cpu.CpuFeatureError, match=message + r"where the CPU has it natively$"):
        small_model().half()(torch.zeros(1, 3, 97, 97, dtype=torch.float16))


def test_a_native_bf16_cpu_runs_the_eager_model_in_bf16(simulated) -> None:
    simulated("x86_64", SAPPHIRE_RAPIDS)
    model = small_model()
    image = torch.randn(1, 3, 97, 97)
    with torch.no_grad():
        out = model.to(torch.bfloat16)(image.to(torch.bfloat16))
        assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_int8_without_avx2_is_one_clear_error(simulated) -> None:
    pytest.importorskip("torchao")
    from port.quantize import quantize_int8

    simulated("aarch64", NEOVERSE_N1)
    with pytest.raises(cpu.CpuFeatureError, match="x86 CPU with AVX2.*aarch64 neon: use float32"):
        quantize_int8(small_model(), torch.zeros(1, 3, 97, 97))


@pytest.mark.parametrize("amp, message", [
    ("bf16", "--amp bf16 on the CPU needs native bfloat16"),
    ("fp16", "--amp fp16 is for CUDA (the CPU runs fp16 emulated): on the CPU use --amp none"),
])
def test_half_training_on_this_cpu_exits_2_with_one_line(avx2_cpu, tmp_path: Path, capsys, amp: str,
                                                          message: str) -> None:
    from port.tests.support.train import write_voc_shapes
    from port.train.cli import main

    data = write_voc_shapes(tmp_path / "data", 2, 0, 33)
    args = ["--variant", "psanet50_voc2012_465", "--data-root", str(data), "--out", str(tmp_path / "run"),
            "--workers", "0", "--model-opt", "width_divisor=32", "--model-opt", "crop=33", "--batch-size", "2",
            "--iterations", "1", "--amp", amp, "--no-val", "--no-plot", "--no-tensorboard"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"port.train: error: {message}")
    assert not (tmp_path / "run" / "final.safetensors").exists()


def test_without_packed_convolutions_the_fast_path_runs_plain_and_equal(simulated) -> None:
    """A CPU where port.cpu allows no oneDNN packing (here: one capped to no AVX2) runs FusedConv's plain branch,
    with the same logits as the packed path (fp32 rounding)."""
    model = small_model()
    x = torch.randn(1, 3, 97, 97, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference = model(x)
        simulated("x86_64", ZEN3, **{cpu.ENV: "default"})
        plain = for_inference(model)
        out = plain(x)
    assert not any(conv.released for conv in plain.modules() if isinstance(conv, FusedConv))
    assert ((out - reference).abs().max() / reference.abs().max()).item() <= 1e-4
