"""Whole deploy and train definitions as text, and the set of files the repository carries."""
from __future__ import annotations

from port.config import PSANetConfig
from port.variants import VARIANTS
from prototxt.backbone import backbone
from prototxt.builder import NetBuilder
from prototxt.context import CAFFE_HEADS, has_definition
from prototxt.emit import Message, render
from prototxt.head import aux_branch, classifier, losses, psa_head

TRAIN_BATCH = 16  # the paper's batch; its BN statistics were synchronised over all 16 images


def _inputs(blobs: list[tuple[str, tuple[int, int, int, int]]]) -> Message:
    """The legacy net-level input header: it loads in the fork's Caffe (which lacks the Input layer) and in ours."""
    header: Message = []
    for name, shape in blobs:
        header += [("input", name)] + [("input_dim", d) for d in shape]
    return header


def _text(name: str, cfg: PSANetConfig, net: NetBuilder, header: Message, phase: str) -> str:
    mask_h, mask_w = cfg.resolved_mask_size
    psa_h, psa_w = cfg.psa_input_size
    notes = [
        f"# {name} ({phase}), ResNet-{cfg.depth}, {cfg.num_classes} classes, input {cfg.crop}x{cfg.crop}.",
        "# Written by `python -m prototxt.generate` from port.variants; change the generator, not this file.",
    ]
    if cfg.branches:
        kind = "compact attention mask" if cfg.compact else "attention mask"
        notes.append(f"# PSA ({', '.join(cfg.branches)}) on {psa_h}x{psa_w}, {kind} {mask_h}x{mask_w}.")
    if cfg.head in CAFFE_HEADS:
        side = cfg.feature_size
        notes.append(
            f"# Context head {cfg.head!r}: its Interp layers state the {side}x{side} conv5_3, so only this input size "
            "runs."
        )
    lines = notes + render([("name", name)] + header)
    for layer in net.layers:
        lines += render([("layer", layer)])
    return "\n".join(lines) + "\n"


def _body(cfg: PSANetConfig, train: bool) -> tuple[NetBuilder, str]:
    if cfg.family != "caffe":
        raise ValueError(
            f"a {cfg.family} PSANet has no Caffe definition (the fork's layers describe the Caffe release)"
        )
    net = NetBuilder(frozen_bn=not train, bn_momentum=cfg.bn_momentum)
    feature = backbone(net, cfg, "data")
    head = CAFFE_HEADS.get(cfg.head, psa_head)
    return net, classifier(net, cfg, head(net, cfg, feature))


def deploy_text(name: str, cfg: PSANetConfig) -> str:
    """Inference definition: 1x3xcropxcrop `data` in, `conv6_zoom` logits out, BN on running statistics."""
    net, _ = _body(cfg, train=False)
    return _text(name, cfg, net, _inputs([("data", (1, 3, cfg.crop, cfg.crop))]), "deploy")


def train_text(name: str, cfg: PSANetConfig, batch: int = TRAIN_BATCH) -> str:
    """Training definition: `data` and `label` inputs, BN on batch statistics, auxiliary branch and both losses."""
    net, logits = _body(cfg, train=True)
    losses(net, cfg, logits, aux_branch(net, cfg), "label")
    header = _inputs([("data", (batch, 3, cfg.crop, cfg.crop)), ("label", (batch, 1, cfg.crop, cfg.crop))])
    return _text(f"{name}_train", cfg, net, header, "train")


def definitions() -> dict[str, str]:
    """File name -> text for every variant's deploy and train definition."""
    files: dict[str, str] = {}
    for name, variant in VARIANTS.items():
        if not has_definition(variant.config):
            continue
        files[f"{name}.prototxt"] = deploy_text(name, variant.config)
        files[f"{name}_train.prototxt"] = train_text(name, variant.config)
    return files
