"""PSANetConfig: derived sizes against hand-worked Caffe arithmetic, validation, serialisation."""
from __future__ import annotations

import pytest

from port.config import PSANetConfig, feature_size, pool_out
from port.sides import side_problem


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


def test_crop_must_be_a_side_the_network_takes() -> None:
    """The fork's fixed zooms: 8k+1 crops, 16k+1 where the PSA shrinks conv5 by 2; mmseg's resize rule takes any."""
    with pytest.raises(ValueError, match=r"^crop 505 is not 16k\+1: nearest 497 and 513 \(set by the fixed x8 zoom "
                                         r"and the PSA's x2 shrink and zoom back\)$"):
        PSANetConfig(crop=505)  # 8k+1, but conv5_3's 64 shrinks to 32 and zooms back to 63
    with pytest.raises(ValueError, match=r"^crop 512 is not 8k\+1: nearest 505 and 513 \(set by the fixed x8 zoom\)$"):
        PSANetConfig(crop=512, shrink_factor=1)
    with pytest.raises(ValueError, match=r"^crop 1 is not 24k\+1: nearest 25 "):
        PSANetConfig(crop=1, shrink_factor=3)
    assert PSANetConfig(crop=505, shrink_factor=1).side_step == 8 and PSANetConfig(crop=505, branches=()).crop == 505
    assert (PSANetConfig(crop=513).side_step, PSANetConfig(crop=73, shrink_factor=3).side_step) == (16, 24)
    mmseg = PSANetConfig(family="mmseg", crop=512)
    assert (mmseg.side_step, mmseg.side_offset, mmseg.side_problem(100)) == (16, 0, None)
    assert PSANetConfig(family="mmseg", crop=769).side_offset == 1


@pytest.mark.parametrize("args, text", [
    ((97, 16), None), ((512, 16, 0), None), ((100, 16), "side 100 is not 16k+1: nearest 97 and 113"),
    ((513, 16, 0), "side 513 is not 16k: nearest 512 and 528"),
    ((9, 8, 1, 33, 8193), "side 9 is not 8k+1 in 33..8193: nearest 33"),
    ((100000, 8, 1, 33, 8193), "side 100000 is not 8k+1 in 33..8193: nearest 8193"),
    ((8194, 16, 1, 33, 8193), "side 8194 is not 16k+1 in 33..8193: nearest 8193"),
])  # fmt: skip
def test_side_problem_names_the_nearest_valid_sides(args: tuple[int, ...], text: str | None) -> None:
    assert side_problem(*args) == text


def test_an_unknown_option_is_named_with_the_nearest_field() -> None:
    """create_model / torch.hub pass options to the config: a typo or timm's `pretrained` was dataclasses' TypeError."""
    cfg = PSANetConfig()
    with pytest.raises(TypeError, match=r"^unknown PSANetConfig field\(s\) num_clases \(did you mean num_classes\?\)$"):
        cfg.with_(num_clases=5)
    with pytest.raises(TypeError, match=r"^unknown PSANetConfig field\(s\) pretrained \(weights come from a file: "
                                        r"create_model\(name, weights=PATH\) or port.load\(PATH\)\)$"):
        cfg.with_(pretrained=True)
    with pytest.raises(TypeError, match=r"^unknown PSANetConfig field\(s\) bar, foo$"):
        cfg.with_(foo=1, bar=2)
    assert cfg.unknown_fields(["crop", "depth"]) is None and cfg.with_(crop=97).crop == 97


def test_dict_round_trip_and_unknown_keys() -> None:
    cfg = PSANetConfig(depth=50, num_classes=21, shrink_factor=1, mask_size=(7, 9), aux=True, width_divisor=8)
    assert PSANetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        PSANetConfig.from_dict({**cfg.to_dict(), "extra": 1})
