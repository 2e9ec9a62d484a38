"""One training-step measurement of bench/train_step.py in a process of its own: `python -m bench.train_worker
'<json>'`.

Prints one `RESULT <json>` line: median seconds per step, the loss (main + aux_weight x aux) of the last step, peak RSS
(VmHWM;
on CUDA also the peak of allocated GPU memory), the torch.mm roof measured right after, and (with "profile") the
self-time
share of the top operator types and, on the CPU, the step by layer type (bench/train_layers.py); with "onednn" (CPU),
the oneDNN kernels one more step ran, by pass and layer shape, and its reorders (bench/onednn_verbose.py).
Modes: caffe (SGDSolver.step(1) on the generated train definition, CPU), fp32, bf16 (autocast to bfloat16), tf32
(CUDA: fp32 with TF32 matmuls and convolutions; the other CUDA modes run fp32 with TF32 off), each in the trainer's
layout (channels-last, port.train.loop.memory_format); fp32_nchw, bf16_nchw with a contiguous model and input;
fp32_aten_bn, bf16_aten_bn with PyTorch's native batch norm and a separate ReLU (PSANET_BN_KERNEL=0); fp32_onednn_wgrad
with oneDNN's weight gradients where port.cpu would take them by taps (PSANET_TAP_WEIGHT_GRAD=0); roof. The suffixes'
switches are in the worker's environment (bench.common.SWITCHES).
The job's "device" is "cpu" or "cuda".
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench import caffe_binary
from bench.common import answer, cuda_mm_roof, median_seconds, mm_roof, peak_rss_bytes, required_job, seconds

PROFILE_TOP = 8
CPU_DTYPES = ("fp32", "bf16")  # the roofs a CPU training step is held against


def step_caffe(job: dict[str, Any]) -> dict[str, Any]:
    """Caffe's SGDSolver on the written solver/train definition, starting from the shared weights: through pycaffe, or
    through caffe_bench where PSANET_CAFFE_BENCH names it (bench/caffe_binary.py; the peak RSS is then its own)."""
    work = Path(job["workdir"])
    binary = caffe_binary.binary()
    if binary is not None:
        result = caffe_binary.run(
            binary, "step", "--solver", str(work / "solver.prototxt"),
            "--weights", str(work / "weights.caffemodel"), "--input", f"data={work / 'input.npy'}",
            "--input", f"label={work / 'label.npy'}",
            warmup=job["warmup"], reps=job["reps"],
        )
        seconds, losses, rss = result["seconds"], result["outputs"], result["peak_rss"]
    else:
        caffe = caffe_binary.pycaffe()
        solver = caffe.SGDSolver(str(work / "solver.prototxt"))
        solver.net.copy_from(str(work / "weights.caffemodel"))
        solver.net.blobs["data"].data[...] = np.load(work / "input.npy")
        solver.net.blobs["label"].data[...] = np.load(work / "label.npy")
        seconds = median_seconds(lambda: solver.step(1), job["warmup"], job["reps"])
        losses = {name: float(solver.net.blobs[name].data) for name in ("loss", "loss_aux")}
        rss = peak_rss_bytes()
        del solver
    loss = losses["loss"] + job["config"]["aux_weight"] * losses["loss_aux"]
    return {"seconds": seconds, "loss": loss, "peak_rss": rss, "roof": mm_roof(job["threads"], CPU_DTYPES)}


def port_step(job: dict[str, Any]) -> tuple[Any, dict[str, float], Any]:
    """A closure running one training step of the port in the job's mode and device (model, optimiser, poly schedule),
    the dict it leaves the last loss in, and the model."""
    import torch

    from port.config import PSANetConfig
    from port.model import PSANet
    from port.train.distributed import convert_sync_bn
    from port.train.loop import memory_format
    from port.train.loss import loss_labels, loss_zoom, normaliser, summed_loss, valid_count
    from port.train.optim import build_optimizer
    from port.train.recipe import recipe_for

    work, device, mode = Path(job["workdir"]), torch.device(job.get("device", "cpu")), job["mode"]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not mode.startswith("fp32")
    cfg = PSANetConfig.from_dict(job["config"])
    recipe = recipe_for("caffe", job["dataset"])
    model = PSANet(cfg)
    model.load_state_dict(torch.load(work / "weights.pt", weights_only=True))
    convert_sync_bn(model)  # as the trainer does (a world of one: CaffeBN's own train mode)
    model.zoom_train_logits = False  # as the trainer: the loss zooms
    layout = memory_format("float32", False if mode.endswith("_nchw") else None)
    model = model.to(device, memory_format=layout).train()
    optimizer, scheduler = build_optimizer(model, recipe)
    x = torch.from_numpy(np.load(work / "input.npy")).to(device).contiguous(memory_format=layout)
    target = loss_labels(torch.from_numpy(np.load(work / "label.npy")[:, 0]).long(), recipe.loss_scale).to(device)
    count = normaliser(valid_count(target))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode.startswith("bf16"))
    last = {}

    def step() -> None:
        """The trainer's iteration (port.train.loop.Trainer.step) without data loading."""
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            out = model(x)
        loss = summed_loss(out, target, cfg.aux_weight, loss_zoom(recipe.loss_scale)) / count
        loss.backward()
        optimizer.step()
        scheduler.step()
        last["loss"] = float(loss.detach())

    return step, last, model


def profile_step(step: Any, model: Any, job: dict[str, Any]) -> dict[str, Any]:
    """One profiled step: the self-time shares of the top operator types and, on the CPU, the step by layer type
    against each type's own roof (bench/train_layers.py)."""
    from torch.profiler import ProfilerActivity, profile

    from bench.train_layers import conv_layers, measure

    cuda = job.get("device") == "cuda"
    activity = ProfilerActivity.CUDA if cuda else ProfilerActivity.CPU
    with conv_layers(model) as layers, profile(activities=[activity], record_shapes=not cuda) as prof:
        step_seconds = seconds(step)
    result: dict[str, Any] = {"profile": shares(prof.key_averages(), cuda)}
    if not cuda:
        dtype = "bf16" if job["mode"].startswith("bf16") else "fp32"
        result["layers"] = measure(prof, step_seconds, layers, dtype, job["threads"])
    return result


def shares(events: Any, cuda: bool) -> dict[str, float]:
    """Self time share (CPU time, or kernel time on CUDA) of the top operator types."""

    def spent(event: Any) -> float:
        return event.self_device_time_total if cuda else event.self_cpu_time_total

    total = sum(spent(e) for e in events)
    top: dict[str, float] = {}
    for event in sorted(events, key=spent, reverse=True)[:PROFILE_TOP]:
        name = kernel_name(event.key)
        top[name] = top.get(name, 0.0) + spent(event) / total
    return top


def kernel_name(key: str) -> str:
    """A profiler key made readable: a CUDA kernel's C++ signature without `void`, its parameter list and any
    template argument list over 80 characters (`at::native::batch_norm_backward_kernel<…>`); op names unchanged."""
    key = key.removeprefix("void ").replace("(anonymous namespace)::", "")
    out, depth, start = [], 0, 0
    for char in key:
        if char == "<":
            depth += 1
            if depth == 1:
                start = len(out)
        elif char == ">":
            depth -= 1
            if depth == 0 and len(out) - start > 80:
                del out[start + 1:]
                out.append("…")
        elif char == "(" and depth == 0:
            break
        out.append(char)
    return "".join(out)


def step_port(job: dict[str, Any]) -> dict[str, Any]:
    """The port's training step in one mode with the job's torch threads."""
    import torch

    from port.memory import keep_freed_memory

    device = job.get("device", "cpu")
    torch.set_num_threads(job["threads"])
    keep_freed_memory()  # as `python -m port.train` does
    step, last, model = port_step(job)
    sync = torch.cuda.synchronize if device == "cuda" else lambda: None
    seconds = median_seconds(step, job["warmup"], job["reps"], sync)
    result: dict[str, Any] = {"seconds": seconds, "loss": last["loss"], "peak_rss": peak_rss_bytes()}
    if device == "cuda":
        result["peak_gpu"] = torch.cuda.max_memory_allocated()
    if job.get("profile"):
        result.update(profile_step(step, model, job))
    if job.get("onednn"):
        from bench.onednn_verbose import capture, summary

        result["onednn"] = summary(capture(step), unit="step")
    result["roof"] = roof(job)
    return result


def roof(job: dict[str, Any]) -> dict[str, float]:
    """The torch.mm roof of the job's device (on the CPU only the dtypes training runs in: no int8)."""
    return cuda_mm_roof() if job.get("device") == "cuda" else mm_roof(job["threads"], CPU_DTYPES)


def main() -> int:
    job = required_job("bench.train_worker")
    if job["mode"] == "roof":
        result = {"roof": roof(job)}
    else:
        result = step_caffe(job) if job["mode"] == "caffe" else step_port(job)
    return answer(result)


if __name__ == "__main__":
    raise SystemExit(main())
