"""PSPNet's pyramid pooling head in the naming and layer order of the authors' hszhao/PSPNet deploys."""
from __future__ import annotations

from port.config import PSP_BINS, PSANetConfig, psp_pooling
from prototxt.builder import NetBuilder
from prototxt.head import NEW_LAYER_LR


def psp_head(net: NetBuilder, cfg: PSANetConfig, feature: str) -> str:
    """Per bin count: average pool, 1x1 conv + BN + ReLU, Interp back; then concat with `feature` (finest first).

    The pooling geometry is derived from the feature size at the crop (port.config.psp_pooling), so a
    definition at another crop pools into the same 1/2/3/6 bins.
    """
    side = cfg.feature_size
    levels = []
    for bins in PSP_BINS:
        kernel, stride = psp_pooling(side, bins)
        pooled = net.ave_pool(f"{feature}_pool{bins}", feature, kernel, stride)
        reduced = net.conv_bn(f"{pooled}_conv", pooled, cfg.channels(512), lr=NEW_LAYER_LR)
        levels.append(net.interp_to(f"{pooled}_interp", reduced, side, side))
    return net.concat(f"{feature}_concat", [feature, *reversed(levels)])
