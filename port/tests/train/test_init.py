"""ImageNet initialisation: synthetic state dicts with the real semseg / timm key layouts, loaded into the trunk."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from port.model import PSANet
from port.train.init import load_imagenet_init, plan, read_state
from port.variants import VARIANTS

DIVISOR = 16  # reduced width: every channel count of the source architecture divided by this
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.{k}": (channels,) for k in ("weight", "bias", "running_mean", "running_var")}
    return shapes | {f"{prefix}.num_batches_tracked": ()}


def source_shapes(layout: str, depth: int, d: int = DIVISOR) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the source ImageNet ResNet (torchvision-style bottlenecks, deep stem 64-64-128, fc 1000)."""
    if layout == "semseg":
        names = [("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]
    else:
        names = [("conv1.0", "conv1.1"), ("conv1.3", "conv1.4"), ("conv1.6", "bn1")]
    shapes: dict[str, tuple[int, ...]] = {}
    for (conv, bn), (cout, cin) in zip(names, ((64 // d, 3), (64 // d, 64 // d), (128 // d, 64 // d))):
        shapes |= {f"{conv}.weight": (cout, cin, 3, 3)} | _bn(bn, cout)
    inplanes = 128 // d
    for stage, (planes, count) in enumerate(zip((64 // d, 128 // d, 256 // d, 512 // d), BLOCKS[depth])):
        for b in range(count):
            p = f"layer{stage + 1}.{b}"
            shapes |= {f"{p}.conv1.weight": (planes, inplanes, 1, 1)} | _bn(f"{p}.bn1", planes)
            shapes |= {f"{p}.conv2.weight": (planes, planes, 3, 3)} | _bn(f"{p}.bn2", planes)
            shapes |= {f"{p}.conv3.weight": (4 * planes, planes, 1, 1)} | _bn(f"{p}.bn3", 4 * planes)
            if b == 0:
                shapes |= {f"{p}.downsample.0.weight": (4 * planes, inplanes, 1, 1)} | _bn(
                    f"{p}.downsample.1", 4 * planes
                )
            inplanes = 4 * planes
    return shapes | {"fc.weight": (1000, 2048 // d), "fc.bias": (1000,)}


def constant_state(layout: str, depth: int) -> dict[str, torch.Tensor]:
    """Each float tensor filled with its own constant (its index + 1), so a landed value names its source."""
    state = {}
    for i, (key, shape) in enumerate(source_shapes(layout, depth).items()):
        state[key] = torch.tensor(7) if key.endswith("num_batches_tracked") else torch.full(shape, float(i + 1))
    return state


def model(depth: int) -> PSANet:
    name = "psanet101_ade20k_465" if depth == 101 else "psanet50_ade20k_465"
    return PSANet(VARIANTS[name].config.with_(width_divisor=DIVISOR, aux=True))


# Hand-picked correspondences, typed from the two model definitions (an oracle independent of the key map).
SPOT = {
    "semseg": {
        "conv2.weight": "conv1_2_3x3.conv.weight",
        "bn3.running_var": "conv1_3_3x3.bn.running_var",
        "bn1.bias": "conv1_1_3x3_s2.bn.bias",
        "layer1.2.conv2.weight": "conv2.3.conv3x3.conv.weight",
        "layer3.0.downsample.1.running_var": "conv4.1.proj.bn.running_var",
        "layer4.2.bn3.weight": "conv5.3.increase.bn.weight",
    },
    "timm": {
        "conv1.3.weight": "conv1_2_3x3.conv.weight",
        "conv1.4.running_mean": "conv1_2_3x3.bn.running_mean",
        "bn1.running_var": "conv1_3_3x3.bn.running_var",
        "conv1.1.weight": "conv1_1_3x3_s2.bn.weight",
        "layer2.0.downsample.0.weight": "conv3.1.proj.conv.weight",
        "layer3.22.bn1.bias": "conv4.23.reduce.bn.bias",
    },
}


@pytest.mark.parametrize("layout,depth", [("semseg", 50), ("semseg", 101), ("timm", 50), ("timm", 101)])
def test_every_trunk_tensor_gets_exactly_one_source_tensor(layout: str, depth: int, tmp_path: Path) -> None:
    state = constant_state(layout, depth)
    path = tmp_path / "init.pth"
    torch.save(state, path)
    net = model(depth)
    head_before = {
        k: v.clone()
        for k, v in net.state_dict().items()
        if not k.startswith(("conv1_", "conv2.", "conv3.", "conv4.", "conv5."))
    }
    load_imagenet_init(net, path)
    ours = net.state_dict()
    trunk = {k: v for k, v in ours.items() if k not in head_before}
    landed = {}
    for key, value in trunk.items():
        if key == "conv1_1_3x3_s2.conv.weight":
            continue  # rescaled for BGR input: checked below
        assert value.min() == value.max(), key
        landed[key] = int(value.flatten()[0])
    assert len(set(landed.values())) == len(landed), "a source tensor landed twice"
    float_sources = {k for k in state if state[k].is_floating_point() and not k.startswith("fc.")}
    assert len(landed) + 1 == len(float_sources)
    index = {k: i + 1 for i, k in enumerate(state)}
    for source, target in SPOT[layout].items():
        if source in index:
            assert landed[target] == index[source], (source, target)
    for key, value in head_before.items():
        assert torch.equal(ours[key], value), f"{key} changed"
    found = plan(state, net)
    assert found.layout == layout and "fc.weight" in found.ignored and "fc.bias" in found.ignored


@pytest.mark.parametrize("layout", ["semseg", "timm"])
def test_first_conv_takes_bgr_0_255_minus_mean(layout: str, tmp_path: Path) -> None:
    """Our conv1_1 + BN on BGR-minus-mean equals the source's conv1 + BN on RGB normalised by mean and std."""
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.rand(v, generator=gen, dtype=torch.float64) + 0.5 for k, v in source_shapes(layout, 50).items()}
    path = tmp_path / "init.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.float() for k, v in state.items()}, str(path))
    net = model(50).double().eval()
    load_imagenet_init(net, path)
    conv, bn = ("conv1", "bn1") if layout == "semseg" else ("conv1.0", "conv1.1")
    src = {k: v.float().double() for k, v in state.items()}
    rgb = torch.rand(1, 3, 17, 17, generator=gen, dtype=torch.float64) * 255
    mean = torch.tensor([123.68, 116.779, 103.939], dtype=torch.float64)[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)[None, :, None, None]
    x = F.conv2d((rgb - mean) / (255 * std), src[f"{conv}.weight"], stride=2, padding=1)
    expected = F.batch_norm(
        x, src[f"{bn}.running_mean"], src[f"{bn}.running_var"], src[f"{bn}.weight"], src[f"{bn}.bias"], eps=1e-5
    )
    got = net.conv1_1_3x3_s2((rgb - mean).flip(1))
    torch.testing.assert_close(got, F.relu(expected), rtol=1e-9, atol=1e-9)


class Evil:
    def __reduce__(self):  # a pickle that would run code when loaded without weights_only
        return (print, ("pwned",))


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    good = tmp_path / "good.pth"
    torch.save(constant_state("semseg", 50), good)
    files["truncated"] = tmp_path / "truncated.pth"
    files["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["garbage"] = tmp_path / "garbage.pth"
    files["garbage"].write_bytes(b"\x00not a weights file" * 10)
    files["malicious"] = tmp_path / "evil.pth"
    files["malicious"].write_bytes(pickle.dumps({"conv1.weight": Evil()}))
    files["missing"] = tmp_path / "absent.pth"
    seven = {
        "conv1.weight": torch.zeros(64, 3, 7, 7),
        "bn1.weight": torch.zeros(64),
        "fc.weight": torch.zeros(10, 2048),
    }
    files["7x7 stem"] = tmp_path / "r50.pth"
    torch.save(seven, files["7x7 stem"])
    depth = constant_state("semseg", 101)
    files["wrong depth"] = tmp_path / "r101.pth"
    torch.save(depth, files["wrong depth"])
    shaped = constant_state("timm", 50)
    shaped["layer2.1.conv2.weight"] = torch.zeros(3, 3, 3, 3)
    files["wrong shape"] = tmp_path / "shape.pth"
    torch.save(shaped, files["wrong shape"])
    nan = constant_state("timm", 50)
    nan["bn1.running_var"][0] = float("nan")
    files["nan"] = tmp_path / "nan.pth"
    torch.save(nan, files["nan"])
    extra = constant_state("timm", 50) | {"layer5.0.conv1.weight": torch.zeros(1)}
    files["extra key"] = tmp_path / "extra.pth"
    torch.save(extra, files["extra key"])
    files["not tensors"] = tmp_path / "list.pth"
    torch.save([1, 2, 3], files["not tensors"])
    return files


def test_bad_files_are_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = model(50)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    messages = {}
    for what, path in _bad_files(tmp_path).items():
        with pytest.raises(ValueError) as err:
            load_imagenet_init(net, path)
        messages[what] = str(err.value)
        assert "\n" not in messages[what], what
    assert "pwned" not in capsys.readouterr().out
    assert "deep-stem" in messages["7x7 stem"]
    assert "unexpected" in messages["wrong depth"] and "layer3." in messages["wrong depth"]
    assert (
        "layer2.1.conv2.weight" in messages["wrong shape"] and "conv3.2.conv3x3.conv.weight" in messages["wrong shape"]
    )
    assert "bn1.running_var" in messages["nan"] and "does not exist" in messages["missing"]
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), "a refused file changed the model"


def test_wrapped_and_prefixed_state_dicts_are_read(tmp_path: Path) -> None:
    state = constant_state("timm", 50)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    assert read_state(path).keys() == state.keys()
