"""One measurement of bench/end_to_end.py in a process of its own: `python -m bench.e2e_worker '<json job>'`.

Prints one `RESULT <json>` line: median seconds per forward for each batch size, peak RSS, the
torch.mm roof measured right after (end_to_end.py keeps the fastest roof seen in the run), and
for the port modes the batch-1 logits saved to `<workdir>/<tag>.npy` (for parity and argmax checks).
Modes: caffe (legacy Caffe CPU), eager, fast (port.optimize.for_inference), compile (torch.compile of
fast), compile_frozen (the same with inductor freezing), bf16 (fast with bf16 weights), int8
(port.quantize.quantize_int8 calibrated on 2 random images other than the timed ones), roof (torch.mm 4096^2 fp32 and
bf16), gpu (when CUDA is present); eager_glibc / fast_glibc run eager / fast with PSANET_KEEP_FREED_MEMORY=0,
fast_direct runs fast with PSANET_WINOGRAD=0 (oneDNN's direct 3x3 convolutions): bench.common.SWITCHES.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench import caffe_binary
from bench.common import (
    answer,
    median_seconds,
    mm_roof,
    module_times,
    peak_rss_bytes,
    required_job,
    seconds,
    split_mode,
    stopwatch,
)

WEIGHTS = {
    "eager": "weights.pt", "int8": "weights.pt", "fast": "fast.pt", "compile": "fast.pt", "compile_frozen": "fast.pt",
    "bf16": "fast_bf16.pt",
}
MMSEG_V100_MS = 76.0  # mmsegmentation's published PSANet R-101-D8 ADE20K 512x512 inference time on a V100


def forward_caffe(job: dict[str, Any]) -> dict[str, Any]:
    """Legacy Caffe, batch 1 (the deploy's input shape), OpenBLAS threads from the environment: through pycaffe, or
    through caffe_bench where PSANET_CAFFE_BENCH names it (bench/caffe_binary.py; the peak RSS is then its own).

    torch is imported only after the timing, for the fp32 roof; its footprint stays under Caffe's peak.
    """
    work = Path(job["workdir"])
    binary = caffe_binary.binary()
    if binary is not None:
        result = caffe_binary.run(
            binary, "forward", "--model", str(work / "deploy.prototxt"),
            "--weights", str(work / "weights.caffemodel"), "--input", f"data={work / 'input.npy'}",
            "--save", f"conv6_zoom={work / 'caffe.npy'}",
            warmup=job["warmup"], reps=job["reps"],
        )
        seconds, rss = result["seconds"], result["peak_rss"]
    else:
        caffe = caffe_binary.pycaffe()
        net = caffe.Net(str(work / "deploy.prototxt"), str(work / "weights.caffemodel"), caffe.TEST)
        net.blobs["data"].data[...] = np.load(work / "input.npy")[:1]
        seconds = median_seconds(net.forward, job["warmup"], job["reps"])
        np.save(work / "caffe.npy", net.blobs["conv6_zoom"].data)
        rss = peak_rss_bytes()
        del net
    return {"seconds": {"1": seconds}, "peak_rss": rss, "roof": mm_roof(job["threads"])}


def build_port_model(job: dict[str, Any]) -> Any:
    """The port model for the job's mode, built on the meta device, its weights mapped from the shared files.

    The fast modes load weights that `port.optimize` already folded (saved once by the parent, as a
    deployment would ship them), so the plain model is never resident beside the optimized one.
    """
    import torch

    from port.config import PSANetConfig
    from port.model import PSANet
    from port.optimize import for_inference

    cfg = PSANetConfig.from_dict(job["config"])
    mode = job["mode"]
    with torch.device("meta"):
        model = PSANet(cfg).eval().requires_grad_(False)
        if mode not in ("eager", "int8"):
            model = for_inference(model, dtype=torch.bfloat16 if mode == "bf16" else None)
    # The fast modes read their file into memory: FusedConv releases each plain weight once packed, while a
    # mapped file's touched pages stay resident as long as any tensor of it (a bias) lives.
    fused = mode not in ("eager", "int8") and not mode.startswith("compile")
    state = torch.load(Path(job["workdir"]) / WEIGHTS[mode], mmap=not fused, weights_only=True)
    model.load_state_dict(state, assign=True)
    if mode == "int8":
        from port.quantize import quantize_int8

        return quantize_int8(model, torch.from_numpy(np.load(Path(job["workdir"]) / "calibration.npy")))
    if mode.startswith("compile"):
        from port.torch_private import set_inductor_freezing

        # freezing: weights become constants, so oneDNN prepacks the convolution weights once
        set_inductor_freezing(mode == "compile_frozen")
        model = torch.compile(model, dynamic=False)
    return model


def psa_share(model: Any, x: Any, reps: int) -> dict[str, float]:
    """Fractions of a forward spent in the PSA head (branches + conv_post_PSA + zoom) and in the PSA op alone."""
    import torch

    from port.optimize.rewrite import FusedPSA

    net = model.net
    head = [*net.psa.values(), net.conv_post_PSA] + ([net.conv_post_PSA_zoom] if net.conv_post_PSA_zoom else [])
    ops = [m for m in net.modules() if isinstance(m, FusedPSA)]
    with module_times({"head": head, "op": ops}) as spent, torch.inference_mode():
        total = sum(seconds(lambda: model(x)) for _ in range(reps))
    return {key: sum(times) / total for key, times in spent.items()}


def forward_port(job: dict[str, Any]) -> dict[str, Any]:
    """The port in one mode, batch sizes from the job, torch threads from the job."""
    import torch

    torch.set_num_threads(job["threads"])
    work = Path(job["workdir"])
    images = torch.from_numpy(np.load(work / "input.npy"))
    elapsed = stopwatch()
    from port.memory import keep_freed_memory_after_first_forward

    model = keep_freed_memory_after_first_forward(build_port_model(job))  # timed as the CLIs run it
    result: dict[str, Any] = {"seconds": {}, "setup_seconds": 0.0}
    with torch.inference_mode():
        for batch in job["batches"]:
            x = images[:batch].contiguous()
            if batch == job["batches"][0]:
                logits = model(x)  # first call: compilation for `compile`, weight reorders otherwise
                result["setup_seconds"] = elapsed()
                np.save(work / f"{job.get('tag', job['mode'])}.npy", logits[:1].float().numpy())
                del logits
            result["seconds"][str(batch)] = median_seconds(lambda: model(x), job["warmup"], job["reps"])
            # batches run smallest first, so this is the peak of the process up to and including this batch
            result.setdefault("peak_rss_by_batch", {})[str(batch)] = peak_rss_bytes()
    if job["mode"] in ("fast", "bf16") and model.cfg.branches:
        result["share"] = psa_share(model, images[:1].contiguous(), job["reps"])
    if job["mode"] == "int8":
        result["int8_lowered"] = [model.lowered, model.int8_convolutions]
    result["peak_rss"] = peak_rss_bytes()  # before the roof's matrices
    result["roof"] = mm_roof(job["threads"])
    return result


def roof_only(job: dict[str, Any]) -> dict[str, Any]:
    """The session's torch.mm roof, on its own."""
    return {"roof": mm_roof(job["threads"])}


def forward_gpu(job: dict[str, Any]) -> dict[str, Any]:
    """Images/s of the fast path on CUDA in fp32, TF32 and bf16 (PSANet101 ADE20K config at the job's crop)."""
    import torch

    from port.config import PSANetConfig
    from port.model import PSANet
    from port.optimize import for_inference

    if not torch.cuda.is_available():
        return {"gpu": None}
    cfg = PSANetConfig.from_dict(job["config"])
    model = PSANet(cfg).eval()
    rates = {}
    for name, dtype, tf32 in (("fp32", None, False), ("tf32", None, True), ("bf16", torch.bfloat16, True)):
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        fast = for_inference(model, dtype=dtype).cuda()
        x = torch.randn(job["batches"][0], 3, cfg.crop, cfg.crop, device="cuda")
        with torch.inference_mode():
            seconds = median_seconds(lambda net=fast: net(x), job["warmup"], job["reps"], torch.cuda.synchronize)
        rates[name] = x.shape[0] / seconds
        del fast
    return {"gpu": {"device": torch.cuda.get_device_name(), "images_per_s": rates, "mmseg_v100_ms": MMSEG_V100_MS}}


RUNNERS = {"caffe": forward_caffe, "roof": roof_only, "gpu": forward_gpu}


def main() -> int:
    job = required_job("bench.e2e_worker")
    job["tag"] = job["mode"]  # the logits' file: the mode as asked, suffix included
    job["mode"] = split_mode(job["mode"])[0]  # its switch is in this process's environment (bench.common.run_worker)
    result = RUNNERS.get(job["mode"], forward_port)(job)
    result.setdefault("peak_rss", peak_rss_bytes())
    return answer(result)


if __name__ == "__main__":
    raise SystemExit(main())
