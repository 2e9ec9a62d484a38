"""PSPNet's pyramid pooling head: pooling geometry, arithmetic against direct loops, names, gradients."""
from __future__ import annotations

import pytest
import torch

from port.config import PSP_BINS, PSANetConfig, psp_pooling
from port.model import PSANet, blob_modules, create_model, logits_blob, param_table
from port.model.psp import BinPool

CFG = PSANetConfig(depth=50, num_classes=5, crop=49, head="psp", branches=(), width_divisor=32)


@pytest.mark.parametrize("side", [6, 7, 9, 13, 60, 90])
@pytest.mark.parametrize("bins", PSP_BINS)
def test_pooling_windows_tile_the_map_into_bins(side: int, bins: int) -> None:
    kernel, stride = psp_pooling(side, bins)
    starts = list(range(0, side - kernel + 1, stride))
    assert len(starts) == bins and starts[-1] + kernel == side
    assert set(range(side)) == {i for s in starts for i in range(s, s + kernel)}


def test_released_geometry_is_the_authors() -> None:
    assert [psp_pooling(60, b) for b in PSP_BINS] == [(60, 60), (30, 30), (20, 20), (10, 10)]
    assert [psp_pooling(90, b) for b in PSP_BINS] == [(90, 90), (45, 45), (30, 30), (15, 15)]
    with pytest.raises(ValueError, match="too small"):
        psp_pooling(5, 6)


def test_bin_pool_equals_direct_window_means() -> None:
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    out = BinPool(3)(x)
    expected = torch.empty(2, 3, 3, 3, dtype=torch.float64)
    for i, top in enumerate((0, 3, 6)):  # 9 rows: kernel 3, stride 3
        for j, left in enumerate((0, 2, 4)):  # 7 columns: stride 2, kernel 7 - 2*2 = 3
            expected[:, :, i, j] = x[:, :, top : top + 3, left : left + 3].mean(dim=(2, 3))
    torch.testing.assert_close(out, expected)


def test_head_concat_order_and_global_level() -> None:
    model = PSANet(CFG).eval()
    head = model.context
    x = torch.randn(1, CFG.channels(2048), 7, 7)
    out = head(x)
    width = CFG.channels(512)
    assert out.shape == (1, head.out_channels, 7, 7) and head.out_channels == 64 + 4 * width
    torch.testing.assert_close(out[:, :64], x)
    global_level = head.conv5_3_pool1_conv(x.mean(dim=(2, 3), keepdim=True))  # 1 bin = the global mean
    torch.testing.assert_close(out[:, 64 + 3 * width :], global_level.expand(-1, -1, 7, 7))  # pool1 comes last


def test_caffe_names_cover_the_head() -> None:
    names = {layer for layer, _ in param_table(CFG)}
    for bins in PSP_BINS:
        assert {f"conv5_3_pool{bins}_conv", f"conv5_3_pool{bins}_conv/bn"} <= names
    blobs = blob_modules(CFG)
    assert logits_blob(CFG) == "conv6_interp" and blobs["conv6_interp"] == "conv6_zoom" and "conv6_zoom" not in blobs
    assert blobs["conv5_3_concat"] == "context.conv5_3_concat"
    assert set(param_table(CFG).values()) == set(PSANet(CFG).state_dict())


def test_released_pspnet101_head_parameter_count() -> None:
    psp = create_model("pspnet101_cityscapes_713")
    fcn = PSANet(psp.cfg.with_(head="psa"))  # same trunk and classifier, conv5_3 straight into conv5_4
    extra = 4 * (2048 * 512 + 2 * 512) + (4096 - 2048) * 512 * 9  # four 1x1 convs + BN slopes/biases, wider conv5_4
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(psp) - count(fcn) == extra
    assert round(count(psp) / 1e6, 1) == 65.7  # PSPNet-101's commonly quoted size


def test_gradients_reach_every_pyramid_level() -> None:
    model = PSANet(CFG.with_(aux=True)).train()
    out = model(torch.randn(2, 3, 49, 49))
    model.loss(out, torch.randint(0, 5, (2, 49, 49))).backward()
    for bins in PSP_BINS:
        grad = getattr(model.context, f"conv5_3_pool{bins}_conv").conv.weight.grad
        assert grad is not None and grad.abs().sum() > 0
