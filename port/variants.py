"""The released PSANet models and the paper's ablation variants, with their datasets and published numbers."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from port.config import PSANetConfig


@dataclass(frozen=True)
class Dataset:
    """Per-dataset facts used by the network definitions and the authors' evaluation."""

    name: str
    num_classes: int
    crop: int
    shrink_factor: int  # PSA input shrink (1: none)
    base_size: int  # evaluation: long side = base_size * scale + 1


DATASETS = {
    "ade20k": Dataset("ade20k", 150, 465, 2, 512),
    "voc2012": Dataset("voc2012", 21, 465, 1, 512),
    "cityscapes": Dataset("cityscapes", 19, 705, 2, 2048),
}


@dataclass(frozen=True)
class Variant:
    """A named network: its architecture, dataset and the authors' published val numbers (percent)."""

    name: str
    dataset: str
    config: PSANetConfig
    released: bool
    published: dict[str, float] = field(default_factory=dict)  # keys: miou_ss, pacc_ss, miou_ms, pacc_ms; miou_ms_test: test server
    caffemodel_md5_prefix: str = ""


def dataset_config(dataset: str, depth: int, **changes: object) -> PSANetConfig:
    """The released architecture for `dataset` and `depth`, with optional changes."""
    d = DATASETS[dataset]
    return PSANetConfig(depth=depth, num_classes=d.num_classes, crop=d.crop, shrink_factor=d.shrink_factor, **changes)


def _scores(miou_ss: float, pacc_ss: float, miou_ms: float, pacc_ms: float) -> dict[str, float]:
    return {"miou_ss": miou_ss, "pacc_ss": pacc_ss, "miou_ms": miou_ms, "pacc_ms": pacc_ms}


_RELEASED = [
    ("psanet50_ade20k_465", "ade20k", 50, _scores(41.92, 80.17, 42.97, 80.92), "a8e884"),
    ("psanet101_ade20k_465", "ade20k", 101, _scores(42.75, 80.71, 43.77, 81.51), "ab5e56"),
    ("psanet50_voc2012_465", "voc2012", 50, _scores(77.24, 94.88, 78.14, 95.12), "d5fc37"),
    ("psanet101_voc2012_465", "voc2012", 101, _scores(78.51, 95.18, 79.77, 95.43), "5d8c0f"),
    ("psanet50_cityscapes_705", "cityscapes", 50, _scores(76.65, 95.99, 77.79, 96.24), "25c06a"),
    ("psanet101_cityscapes_705", "cityscapes", 101, _scores(77.94, 96.10, 79.05, 96.30), "3ac1bf"),
]

# Paper Tables 1, 4, 5 ablations (ResNet-50); only COLLECT+DISTRIBUTE models were released.
ABLATIONS = {
    "fcn": {"branches": ()},
    "collect": {"branches": ("COLLECT",)},
    "distribute": {"branches": ("DISTRIBUTE",)},
    "collect_compact": {"branches": ("COLLECT",), "compact": True},
}

VARIANTS: dict[str, Variant] = {
    name: Variant(name, ds, dataset_config(ds, depth), True, scores, md5) for name, ds, depth, scores, md5 in _RELEASED
}
for _ds, _d in DATASETS.items():
    for _suffix, _changes in ABLATIONS.items():
        _name = f"psanet50_{_ds}_{_d.crop}_{_suffix}"
        VARIANTS[_name] = Variant(_name, _ds, dataset_config(_ds, 50, **_changes), False)

# The authors' PSPNet release (hszhao/PSPNet README; VOC: test set, multi-scale only). Paper Table 1's
# "ResNet50+PSP" row is pspnet50_ade20k_473. No md5 of these files is published.
_PSPNET = [
    ("pspnet50_ade20k_473", "ade20k", 50, 473, _scores(41.68, 80.04, 42.78, 80.76)),
    ("pspnet101_voc2012_473", "voc2012", 101, 473, {"miou_ms_test": 85.41}),
    ("pspnet101_cityscapes_713", "cityscapes", 101, 713, _scores(79.70, 96.38, 80.91, 96.59)),
]
for _name, _ds, _depth, _crop, _published in _PSPNET:
    _config = PSANetConfig(depth=_depth, num_classes=DATASETS[_ds].num_classes, crop=_crop, head="psp", branches=())
    VARIANTS[_name] = Variant(_name, _ds, _config, True, _published)

RELEASED = [v for v in VARIANTS.values() if v.released and v.config.head == "psa"]  # the released PSANets
PSPNET_RELEASED = [v for v in VARIANTS.values() if v.released and v.config.head == "psp"]


# Paper Table 1's other context heads on the same ResNet-50 trunk and classifier (ADE20K; none released).
HEAD_ABLATIONS = ("global_pool", "aspp", "nonlocal")
for _head in HEAD_ABLATIONS:
    _name = f"psanet50_ade20k_465_{_head}"
    VARIANTS[_name] = Variant(_name, "ade20k", dataset_config("ade20k", 50, head=_head, branches=()), False)


@dataclass(frozen=True)
class TableRow:
    """One row of paper Table 1 (ADE20K val): the variant that reproduces it, with `crf` the DenseCRF post-processing."""

    label: str
    variant: str
    published: dict[str, float]
    crf: bool = False


TABLE1 = [
    TableRow("ResNet50 baseline (FCN)", "psanet50_ade20k_465_fcn", _scores(37.23, 78.01, 38.48, 78.92)),
    TableRow("ResNet50 + DenseCRF", "psanet50_ade20k_465_fcn", _scores(37.97, 78.51, 38.86, 79.32), crf=True),
    TableRow("ResNet50 + GlobalPooling", "psanet50_ade20k_465_global_pool", _scores(40.07, 79.52, 41.22, 80.35)),
    TableRow("ResNet50 + ASPP", "psanet50_ade20k_465_aspp", _scores(40.39, 79.71, 42.18, 80.73)),
    TableRow("ResNet50 + NonLocal", "psanet50_ade20k_465_nonlocal", _scores(40.93, 79.97, 41.94, 80.71)),
    TableRow("ResNet50 + PSP (the released PSPNet-50)", "pspnet50_ade20k_473", _scores(41.68, 80.04, 42.78, 80.76)),
    TableRow("ResNet50 + COLLECT(compact)", "psanet50_ade20k_465_collect_compact", _scores(41.07, 79.61, 41.99, 80.32)),
    TableRow("ResNet50 + COLLECT", "psanet50_ade20k_465_collect", _scores(41.27, 79.74, 42.56, 80.56)),
    TableRow("ResNet50 + DISTRIBUTE", "psanet50_ade20k_465_distribute", _scores(41.46, 80.12, 42.63, 80.90)),
    TableRow("ResNet50 + COLLECT + DISTRIBUTE", "psanet50_ade20k_465", _scores(41.92, 80.17, 42.97, 80.92)),
    TableRow("ResNet101 + COLLECT + DISTRIBUTE", "psanet101_ade20k_465", _scores(42.75, 80.71, 43.77, 81.51)),
]
for _row in TABLE1:
    if not _row.crf and not VARIANTS[_row.variant].published:
        VARIANTS[_row.variant] = replace(VARIANTS[_row.variant], published=_row.published)
