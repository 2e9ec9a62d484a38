"""Output shapes of every registered variant at small widths, stage sizes against the Caffe size helpers."""
from __future__ import annotations

import pytest
import torch

from port.config import PSANetConfig, conv_out, feature_size, pool_out
from port.model import PSANet, create_model
from port.variants import VARIANTS


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_small(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, width_divisor=32, crop=97).eval()
    assert model.variant is VARIANTS[name]
    with torch.no_grad():
        out = model(torch.randn(2, 3, 97, 97))
    assert out.shape == (2, VARIANTS[name].config.num_classes, 97, 97)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["psanet101_ade20k_465", "psanet50_voc2012_465", "psanet101_cityscapes_705"])
def test_released_masks_run_below_crop_size(name: str) -> None:
    """The mask size is fixed by the crop, so smaller 8k+1 inputs run too."""
    model = create_model(name, width_divisor=16).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 65)).shape[-2:] == (65, 65)


def test_stage_sizes_follow_caffe_rules() -> None:
    model = create_model("psanet50_ade20k_465", width_divisor=32).eval()
    sizes = {}
    for name in ("conv1_1_3x3_s2", "pool1_3x3_s2", "conv2.3", "conv3.4", "conv5.3"):
        model.get_submodule(name).register_forward_hook(lambda m, i, o, name=name: sizes.__setitem__(name, o.shape[-1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 97, 97))
    stem = conv_out(97, 3, 2, 1)
    assert sizes == {
        "conv1_1_3x3_s2": stem,
        "pool1_3x3_s2": pool_out(stem, 3, 2, 1),
        "conv2.3": pool_out(stem, 3, 2, 1),
        "conv3.4": feature_size(97),
        "conv5.3": feature_size(97),
    }


def test_even_feature_size_is_a_clear_error() -> None:
    """73 is 8k+1, but conv5_3's 10x10 shrinks to 5 and zooms back to 9: the x2 PSA needs 16k+1."""
    model = create_model("psanet50_ade20k_465", width_divisor=32).eval()
    with pytest.raises(ValueError, match=r"^input side 73 is not 16k\+1: nearest 65 and 81 \(set by the fixed x8 "
                                         r"zoom and the PSA's x2 shrink and zoom back\); port.Segmenter takes"):
        model(torch.randn(1, 3, 73, 73))


@pytest.mark.parametrize("name, step", [("psanet50_voc2012_465", 8), ("psanet50_ade20k_465", 16),
                                        ("psanet50_ade20k_465_fcn", 8), ("pspnet50_ade20k_473", 8)])
def test_a_side_the_fixed_zooms_cannot_give_back_is_refused(name: str, step: int) -> None:
    """The fork's x8 zoom gives 97x97 logits for 100x100 (13 -> 97): refused, not returned silently."""
    model = create_model(name, width_divisor=32).eval()
    side = 6 * step + 1  # conv5_3 at least 7 wide (PSP's 6 bins)
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side + step)).shape[-2:] == (side, side + step)
        with pytest.raises(ValueError, match=f"^input side 100 is not {step}k\\+1: nearest "):
            model(torch.randn(1, 3, side, 100))


@pytest.mark.parametrize("family, crop, out", [("mmseg", 512, (100, 100)), ("semseg", 465, None)])
def test_each_family_takes_the_sides_its_own_code_takes(family: str, crop: int, out: tuple[int, int] | None) -> None:
    """mmsegmentation resizes its logits to the input, any size; semseg's PSANet asserts 8k+1 and zooms as the fork."""
    model = PSANet(PSANetConfig(depth=50, family=family, crop=crop, width_divisor=32)).eval()
    with torch.no_grad():
        if out is None:
            with pytest.raises(ValueError, match="^input side 100 is not 16k\\+1"):
                model(torch.randn(1, 3, 100, 100))
        else:
            assert model(torch.randn(1, 3, 100, 100)).shape[-2:] == out


@pytest.mark.parametrize("shape, dtype", [((3, 65, 65), torch.float32), ((1, 4, 65, 65), torch.float32),
                                          ((1, 3, 65, 65), torch.uint8), ((1, 65, 65, 3), torch.float32)])
def test_input_the_network_cannot_take_is_one_clear_error(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    model = create_model("psanet50_ade20k_465", width_divisor=32).eval()
    with pytest.raises(ValueError, match="PSANet takes a float N x 3 x H x W tensor") as info:
        model(torch.zeros(shape, dtype=dtype))
    assert str(info.value).endswith(f"got {str(dtype).removeprefix('torch.')} of shape {shape}")


def test_stride_placement_follows_config() -> None:
    for depth, in_3x3 in ((101, True), (50, False)):
        block = create_model(f"psanet{depth}_ade20k_465", width_divisor=32).conv3["1"]
        assert (block.reduce.conv.stride, block.conv3x3.conv.stride) == (
            ((1, 1), (2, 2)) if in_3x3 else ((2, 2), (1, 1))
        )
        assert block.proj.conv.stride == (2, 2)
    flipped = create_model("psanet101_ade20k_465", width_divisor=32, stride_in_3x3=False).conv3["1"]
    assert flipped.reduce.conv.stride == (2, 2)


def test_dilations_and_biases() -> None:
    model = create_model("psanet101_ade20k_465", width_divisor=32)
    assert model.conv4["23"].conv3x3.conv.dilation == (2, 2) and model.conv5["3"].conv3x3.conv.dilation == (4, 4)
    biased = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None}
    assert biased == {"conv6"}


def test_fcn_baseline_has_no_psa_head() -> None:
    model = create_model("psanet50_ade20k_465_fcn", width_divisor=32)
    assert not hasattr(model, "conv_post_PSA") and len(model.psa) == 0
    assert model.conv5_4.conv.in_channels == 2048 // 32


@pytest.mark.heavy
@pytest.mark.parametrize("name", ["psanet101_ade20k_465", "psanet101_voc2012_465"])
def test_full_width_at_crop(name: str) -> None:
    model = create_model(name).eval()
    crop = model.cfg.crop
    with torch.no_grad():
        assert model(torch.randn(1, 3, crop, crop)).shape == (1, model.cfg.num_classes, crop, crop)


def test_full_width_parameter_count() -> None:
    """Cheap full-width check: build on the meta device and count (mask head sizes per dataset)."""
    with torch.device("meta"):
        ade = PSANet(VARIANTS["psanet101_ade20k_465"].config)
        voc = PSANet(VARIANTS["psanet101_voc2012_465"].config)
    assert ade.psa["COLLECT"].fc2.weight.shape == (59 * 59, 512, 1, 1)
    assert voc.psa["COLLECT"].fc2.weight.shape == (117 * 117, 512, 1, 1)
    diff = sum(p.numel() for p in voc.parameters()) - sum(p.numel() for p in ade.parameters())
    assert diff == 2 * 512 * (117**2 - 59**2) + 512 * (21 - 150) + (21 - 150)
