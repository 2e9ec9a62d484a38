"""The PSA head, the classifier and the training-only auxiliary branch, built from a PSANetConfig."""
from __future__ import annotations

from port.config import PSANetConfig
from port.model.caffe_names import logits_blob
from prototxt.builder import NetBuilder
from prototxt.emit import Message

NEW_LAYER_LR = 10  # layers not initialised from ImageNet learn 10x faster in the release
IGNORE_LABEL = 255
OUTPUT_STRIDE = 8  # the dilated backbone's; the logits are zoomed back by this factor


def psa_branch(net: NetBuilder, cfg: PSANetConfig, branch: str, feature: str) -> str:
    """Reduce, (shrink), predict the attention mask, aggregate; returns `global_feature_<branch>`."""
    reduced = net.conv_bn(f"conv5_3_reduce_before_PSA_{branch}", feature, cfg.channels(512), lr=NEW_LAYER_LR)
    if cfg.shrink_factor > 1:
        reduced = net.interp(f"{reduced}_shrink", reduced, shrink=cfg.shrink_factor)
    hidden = net.conv_bn(f"PSA_{branch}_fc1", reduced, cfg.channels(512), lr=NEW_LAYER_LR)
    mask = net.conv(f"PSA_{branch}_fc2", hidden, cfg.mask_channels, lr=NEW_LAYER_LR)
    mask_h, mask_w = cfg.resolved_mask_size
    param: Message = [
        ("is_softmax", cfg.softmax),
        ("normalization_factor", float(cfg.normalization_factor)),
        ("attention_mask_height", mask_h),
        ("attention_mask_width", mask_w),
    ]
    param += [("compact", True)] if cfg.compact else []
    return net.psa(f"global_feature_{branch}", reduced, mask, branch, param)


def psa_head(net: NetBuilder, cfg: PSANetConfig, feature: str) -> str:
    """All branches, fused and brought back to the feature size, concatenated with `feature`.

    Two branches meet in the Concat `global_feature`; a single branch feeds `conv_post_PSA` directly;
    without branches (the FCN baseline) `feature` itself is returned.
    """
    if not cfg.branches:
        return feature
    outputs = [psa_branch(net, cfg, branch, feature) for branch in cfg.branches]
    fused = net.concat("global_feature", outputs) if len(outputs) > 1 else outputs[0]
    post = net.conv_bn("conv_post_PSA", fused, cfg.channels(2048), lr=NEW_LAYER_LR)
    if cfg.shrink_factor > 1:
        post = net.interp(f"{post}_zoom", post, zoom=cfg.shrink_factor)
    return net.concat(f"{feature}_concat", [feature, post])


def classifier(net: NetBuilder, cfg: PSANetConfig, feature: str) -> str:
    """conv5_4 (3x3 + BN + ReLU + dropout), conv6 logits and their zoom to the input size."""
    top = net.conv_bn("conv5_4", feature, cfg.channels(512), kernel=3, lr=NEW_LAYER_LR)
    net.dropout(top, cfg.dropout)
    logits = net.conv("conv6", top, cfg.num_classes, lr=NEW_LAYER_LR, bias=True)
    # the PSPNet release names the final zoom `conv6_interp` and states no Interp pads
    return net.interp(logits_blob(cfg), logits, zoom=OUTPUT_STRIDE, pads=cfg.head != "psp")


def aux_branch(net: NetBuilder, cfg: PSANetConfig) -> str:
    """Deep-supervision logits from the last conv4 block (names are a contract with the PyTorch model)."""
    top = net.conv_bn("conv4_aux_3x3", f"conv4_{cfg.blocks[2]}", cfg.channels(256), kernel=3, lr=NEW_LAYER_LR)
    net.dropout(top, cfg.dropout)
    logits = net.conv("conv6_aux", top, cfg.num_classes, lr=NEW_LAYER_LR, bias=True)
    return net.interp("conv6_aux_zoom", logits, zoom=OUTPUT_STRIDE)


def losses(net: NetBuilder, cfg: PSANetConfig, logits: str, aux_logits: str, label: str) -> None:
    """Main loss (weight 1) and the auxiliary loss (weight cfg.aux_weight), both ignoring label 255."""
    net.softmax_loss("loss", logits, label, None, IGNORE_LABEL)
    net.softmax_loss("loss_aux", aux_logits, label, cfg.aux_weight, IGNORE_LABEL)
