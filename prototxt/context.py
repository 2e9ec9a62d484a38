"""Caffe definitions of the Table 1 context heads that stock layers (plus the fork's Interp) can express, PSPNet's
included."""

from __future__ import annotations

from typing import Callable

from port.config import PSANetConfig
from port.model.aspp import ASPP_RATES, rate_name
from prototxt.builder import NetBuilder
from prototxt.emit import Ident
from prototxt.head import NEW_LAYER_LR
from prototxt.psp import psp_head


def image_pool(net: NetBuilder, cfg: PSANetConfig, name: str, feature: str) -> str:
    """Global average `name`, 1x1 conv + BN + ReLU `name_conv`, Interp `name_interp` back to the feature size.

    The Interp states the conv5_3 size at the crop (height/width), so the definition is tied to that input size.
    """
    pooled = net.add(
        name, "Pooling", [feature], name, ("pooling_param", [("pool", Ident("AVE")), ("global_pooling", True)])
    )
    reduced = net.conv_bn(f"{name}_conv", pooled, cfg.channels(512), lr=NEW_LAYER_LR)
    side = cfg.feature_size
    size = [("height", side), ("width", side)]
    return net.add(f"{name}_interp", "Interp", [reduced], f"{name}_interp", ("interp_param", size))


def global_pool_head(net: NetBuilder, cfg: PSANetConfig, feature: str) -> str:
    """ParseNet-style image pooling concatenated to `feature` as `<feature>_concat`."""
    return net.concat(f"{feature}_concat", [feature, image_pool(net, cfg, f"{feature}_global_pool", feature)])


def aspp_head(net: NetBuilder, cfg: PSANetConfig, feature: str) -> str:
    """DeepLab v3 ASPP at output stride 8: 1x1, 3x3 at each rate, image pooling; concatenated as `<feature>_aspp`."""
    width = cfg.channels(512)
    branches = [net.conv_bn(f"{feature}_aspp_1x1", feature, width, lr=NEW_LAYER_LR)]
    for rate in ASPP_RATES:
        branches.append(net.conv_bn(rate_name(rate), feature, width, kernel=3, dilation=rate, lr=NEW_LAYER_LR))
    branches.append(image_pool(net, cfg, f"{feature}_aspp_pool", feature))
    return net.concat(f"{feature}_aspp", branches)


CAFFE_HEADS: dict[str, Callable[[NetBuilder, PSANetConfig, str], str]] = {
    "global_pool": global_pool_head,
    "aspp": aspp_head,
    "psp": psp_head,
}


def has_definition(cfg: PSANetConfig) -> bool:
    """Whether Caffe can express the config's head (the NonLocal block has no stock Caffe layers)."""
    return cfg.head == "psa" or cfg.head in CAFFE_HEADS


def tied_to_crop(cfg: PSANetConfig) -> bool:
    """Whether the definition runs only at its crop size (compact masks; pooling kernels and explicit Interp sizes of
    the other heads)."""
    return cfg.compact or cfg.head in CAFFE_HEADS
