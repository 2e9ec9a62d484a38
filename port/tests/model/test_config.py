"""PSANetConfig: derived sizes against hand-worked Caffe arithmetic, validation, serialisation."""
from __future__ import annotations

import pytest

from port.config import PSANetConfig, feature_size, pool_out


@pytest.mark.parametrize(
    ("crop", "feature"),
    # 465 -> conv s2 233 -> ceil pool 117 -> s2 59; 705 -> 353 -> 177 -> 89; 65 -> 33 -> 17 -> 9
    [(465, 59), (705, 89), (65, 9), (97, 13)],
)
def test_feature_size(crop: int, feature: int) -> None:
    assert feature_size(crop) == feature


def test_pool_rounds_up_but_drops_a_window_starting_in_padding() -> None:
    assert pool_out(233, 3, 2, 1) == 117  # ceil((233 + 2 - 3) / 2) + 1
    assert pool_out(4, 3, 2, 1) == 3  # ceil(3 / 2) + 1 = 3; last window starts at 4 = size + pad - 1: kept
    assert pool_out(5, 2, 2, 1) == 3  # ceil(5 / 2) + 1 = 4, but window 3 starts at 6 >= 5 + 1: dropped


@pytest.mark.parametrize(
    ("changes", "mask", "channels"),
    [
        ({}, (59, 59), 3481),  # ADE: 30x30 after shrink
        ({"crop": 705, "num_classes": 19}, (89, 89), 7921),
        ({"shrink_factor": 1, "num_classes": 21}, (117, 117), 13689),  # VOC: no shrink
        ({"compact": True, "branches": ("COLLECT",)}, (30, 30), 900),
    ],
)
def test_mask_size_follows_the_layer_default(changes: dict, mask: tuple[int, int], channels: int) -> None:
    cfg = PSANetConfig(**changes)
    assert cfg.resolved_mask_size == mask
    assert cfg.mask_channels == channels


def test_validation() -> None:
    assert PSANetConfig(compact=True, branches=("COLLECT",), mask_size=(30, 30)).mask_channels == 900
    with pytest.raises(ValueError, match="odd"):
        PSANetConfig(mask_size=(30, 30))
    with pytest.raises(ValueError, match="depth"):
        PSANetConfig(depth=34)
    with pytest.raises(ValueError, match="branch"):
        PSANetConfig(branches=("GATHER",))
    assert PSANetConfig(depth=101).stride_in_3x3 and not PSANetConfig(depth=50).stride_in_3x3
    for name, value in (("width_divisor", 0), ("num_classes", -3), ("crop", 465.0), ("shrink_factor", 0)):
        with pytest.raises(ValueError, match=f"^{name} must be a positive integer, got {value}$"):
            PSANetConfig(**{name: value})  # width_divisor 0 was a ZeroDivisionError, -1 a 1-channel network


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = PSANetConfig(depth=50, num_classes=21, shrink_factor=1, mask_size=(7, 9), aux=True, width_divisor=8)
    assert PSANetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        PSANetConfig.from_dict({**cfg.to_dict(), "extra": 1})
