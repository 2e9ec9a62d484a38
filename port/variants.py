"""The released PSANet models and the paper's ablation variants, with their datasets and published numbers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

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
DEFAULT_BASE_SIZE = 512  # test long side for a user's own dataset (ADE20K's and VOC's)


def eval_base_size(dataset: str | None, source: Mapping[str, Any]) -> int:
    """The test long side at scale 1: the dataset's, else the one a weights file records (port.train), else 512."""
    if dataset in DATASETS:
        return DATASETS[dataset].base_size
    return int(source.get("base_size", DEFAULT_BASE_SIZE))


# The paper's val-set table of each dataset.
PAPER_TABLES = {"ade20k": 1, "voc2012": 4, "cityscapes": 5}


@dataclass(frozen=True)
class PaperRow:
    """Where a variant's published numbers come from: a table of the paper and the row's label there."""

    table: int
    row: str
    note: str = ""  # e.g. which published numbers are lost

    def __str__(self) -> str:
        return f"Table {self.table}: {self.row}" + (f" ({self.note})" if self.note else "")


@dataclass(frozen=True)
class Variant:
    """A named network: its architecture, dataset and the authors' published val numbers (percent).

    `published` holds only the numbers known: a key is absent where the paper's number is unknown.
    `paper` is None for a variant that is no row of the paper (e.g. VOC +DISTRIBUTE).
    """

    name: str
    dataset: str
    config: PSANetConfig
    released: bool
    published: dict[str, float] = field(
        default_factory=dict
    )  # keys: miou_ss, pacc_ss, miou_ms, pacc_ms; miou_ms_test: test server
    caffemodel_md5_prefix: str = ""
    paper: PaperRow | None = None


def dataset_config(dataset: str, depth: int, **changes: object) -> PSANetConfig:
    """The released architecture for `dataset` and `depth`, with optional changes."""
    d = DATASETS[dataset]
    fields: dict[str, object] = {"num_classes": d.num_classes, "crop": d.crop, "shrink_factor": d.shrink_factor}
    return PSANetConfig(depth=depth, **{**fields, **changes})


Scores = tuple[float, float, float, float]  # mIoU ss, pAcc ss, mIoU ms, pAcc ms


def _scores(values: Scores | None) -> dict[str, float]:
    return {} if values is None else dict(zip(("miou_ss", "pacc_ss", "miou_ms", "pacc_ms"), values))


_RELEASED = [
    ("psanet50_ade20k_465", "ade20k", 50, (41.92, 80.17, 42.97, 80.92), "a8e884"),
    ("psanet101_ade20k_465", "ade20k", 101, (42.75, 80.71, 43.77, 81.51), "ab5e56"),
    ("psanet50_voc2012_465", "voc2012", 50, (77.24, 94.88, 78.14, 95.12), "d5fc37"),
    ("psanet101_voc2012_465", "voc2012", 101, (78.51, 95.18, 79.77, 95.43), "5d8c0f"),
    ("psanet50_cityscapes_705", "cityscapes", 50, (76.65, 95.99, 77.79, 96.24), "25c06a"),
    ("psanet101_cityscapes_705", "cityscapes", 101, (77.94, 96.10, 79.05, 96.30), "3ac1bf"),
]

# Ablations of the paper (name suffix -> architecture change, row label); only COLLECT+DISTRIBUTE was released.
ABLATIONS = {
    "fcn": ({"branches": ()}, "baseline (FCN)"),
    "collect": ({"branches": ("COLLECT",)}, "+ COLLECT"),
    "distribute": ({"branches": ("DISTRIBUTE",)}, "+ DISTRIBUTE"),
    "collect_compact": ({"branches": ("COLLECT",), "compact": True}, "+ COLLECT(compact)"),
}
RELEASED_ROW = "+ COLLECT + DISTRIBUTE"
# Registered ablations per depth. ResNet-101 has no COLLECT(compact) row in any table.
ABLATION_DEPTHS = {50: tuple(ABLATIONS), 101: ("fcn", "collect", "distribute")}
LOST = "the paper's numbers for this row are lost in our copy of the text"
# Published numbers of the ablation rows (paper Tables 1, 4, 5; psanet-facts.md). A (dataset, depth, suffix)
# absent here is no row of the paper; None marks a row whose numbers we do not have. Table 5's ResNet-101
# baseline is lost: our copy shows one unattributed pair 75.89/96.23 that may be its ss or its ms result.
_ABLATION_SCORES: dict[tuple[str, int, str], Scores | None] = {
    ("ade20k", 50, "fcn"): (37.23, 78.01, 38.48, 78.92),
    ("ade20k", 50, "collect_compact"): (41.07, 79.61, 41.99, 80.32),
    ("ade20k", 50, "collect"): (41.27, 79.74, 42.56, 80.56),
    ("ade20k", 50, "distribute"): (41.46, 80.12, 42.63, 80.90),
    ("ade20k", 101, "fcn"): (39.66, 79.44, 40.71, 80.17),
    ("ade20k", 101, "collect"): (42.70, 80.53, 43.68, 81.24),
    ("ade20k", 101, "distribute"): (42.11, 80.01, 43.38, 81.12),
    ("voc2012", 50, "fcn"): (67.12, 92.83, 67.57, 92.98),
    ("voc2012", 50, "collect"): (76.96, 94.79, 78.00, 95.01),
    ("voc2012", 101, "fcn"): (70.64, 93.82, 71.22, 93.95),
    ("voc2012", 101, "collect"): (77.90, 95.02, 79.07, 95.32),
    ("cityscapes", 50, "fcn"): (71.93, 95.53, 72.99, 95.76),
    ("cityscapes", 50, "collect"): (76.51, 95.95, 77.50, 96.15),
    ("cityscapes", 101, "fcn"): None,
    ("cityscapes", 101, "collect"): (77.06, 96.18, 78.05, 96.39),
}


def _row(dataset: str, depth: int, label: str, lost: bool = False) -> PaperRow:
    return PaperRow(PAPER_TABLES[dataset], f"ResNet-{depth} {label}", LOST if lost else "")


def _ablation(dataset: str, depth: int, suffix: str) -> Variant:
    changes, label = ABLATIONS[suffix]
    name = f"psanet{depth}_{dataset}_{DATASETS[dataset].crop}_{suffix}"
    key = (dataset, depth, suffix)
    in_paper = key in _ABLATION_SCORES
    scores = _ABLATION_SCORES.get(key)
    paper = _row(dataset, depth, label, lost=scores is None) if in_paper else None
    return Variant(name, dataset, dataset_config(dataset, depth, **changes), False, _scores(scores), paper=paper)


VARIANTS: dict[str, Variant] = {
    name: Variant(name, ds, dataset_config(ds, depth), True, _scores(scores), md5, _row(ds, depth, RELEASED_ROW))
    for name, ds, depth, scores, md5 in _RELEASED
}
for _ds in DATASETS:
    for _depth, _suffixes in ABLATION_DEPTHS.items():
        for _suffix in _suffixes:
            _variant = _ablation(_ds, _depth, _suffix)
            VARIANTS[_variant.name] = _variant

RELEASED = [v for v in VARIANTS.values() if v.released]  # the released PSANets (registered so far)


def paper_rows() -> list[Variant]:
    """Variants that reproduce a row of the paper, in table order (table, then registration order)."""
    return sorted((v for v in VARIANTS.values() if v.paper is not None), key=lambda v: v.paper.table)  # type: ignore[union-attr]


# The authors' PSPNet release (hszhao/PSPNet README; VOC: test set, multi-scale only). Paper Table 1's
# "ResNet50+PSP" row is pspnet50_ade20k_473. No md5 of these files is published.
_PSPNET = [
    ("pspnet50_ade20k_473", "ade20k", 50, 473, _scores((41.68, 80.04, 42.78, 80.76)), "+ PSP (the released PSPNet-50)"),
    ("pspnet101_voc2012_473", "voc2012", 101, 473, {"miou_ms_test": 85.41}, None),
    ("pspnet101_cityscapes_713", "cityscapes", 101, 713, _scores((79.70, 96.38, 80.91, 96.59)), None),
]
for _name, _ds, _depth, _crop, _published, _label in _PSPNET:
    _config = PSANetConfig(depth=_depth, num_classes=DATASETS[_ds].num_classes, crop=_crop, head="psp", branches=())
    _paper = _row(_ds, _depth, _label) if _label else None
    VARIANTS[_name] = Variant(_name, _ds, _config, True, _published, paper=_paper)
PSPNET_RELEASED = [v for v in VARIANTS.values() if v.released and v.config.head == "psp"]

# Paper Table 1's other context heads on the same ResNet-50 trunk and classifier (ADE20K; none released).
_HEAD_ROWS = {
    "global_pool": ("+ GlobalPooling", (40.07, 79.52, 41.22, 80.35)),
    "aspp": ("+ ASPP", (40.39, 79.71, 42.18, 80.73)),
    "nonlocal": ("+ NonLocal", (40.93, 79.97, 41.94, 80.71)),
}
HEAD_ABLATIONS = tuple(_HEAD_ROWS)
for _head, (_label, _numbers) in _HEAD_ROWS.items():
    _name = f"psanet50_ade20k_465_{_head}"
    _config = dataset_config("ade20k", 50, head=_head, branches=())
    VARIANTS[_name] = Variant(_name, "ade20k", _config, False, _scores(_numbers), paper=_row("ade20k", 50, _label))


@dataclass(frozen=True)
class TableRow:
    """One row of paper Table 1 (ADE20K val): the variant that reproduces it, with `crf` the DenseCRF
    post-processing."""

    label: str
    variant: str
    published: dict[str, float]
    crf: bool = False


# Table 1 as rows: every registered Table 1 variant, plus the baseline evaluated with DenseCRF (`port.evaluate --crf`).
CRF_ROW = TableRow("ResNet-50 + DenseCRF", "psanet50_ade20k_465_fcn", _scores((37.97, 78.51, 38.86, 79.32)), crf=True)
TABLE1 = [TableRow(v.paper.row, v.name, v.published) for v in paper_rows() if v.paper.table == 1] + [CRF_ROW]  # type: ignore[union-attr]
