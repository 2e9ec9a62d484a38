"""The variant registry against the paper's tables: every row with a network of its own, its numbers, its name."""
from __future__ import annotations

from port.variants import RELEASED, VARIANTS, paper_rows

# Rows of the paper's Tables 1, 4, 5 (DenseCRF aside: no network of its own), typed from the paper (psanet-facts.md):
# an oracle
# independent of the registry's own tables. (table, depth, row label suffix) -> mIoU ss, or None where lost.
PAPER_MIOU_SS = {
    (1, 50, "baseline (FCN)"): 37.23,
    (1, 50, "+ COLLECT(compact)"): 41.07,
    (1, 50, "+ COLLECT"): 41.27,
    (1, 50, "+ DISTRIBUTE"): 41.46,
    (1, 50, "+ COLLECT + DISTRIBUTE"): 41.92,
    (1, 50, "+ GlobalPooling"): 40.07,
    (1, 50, "+ ASPP"): 40.39,
    (1, 50, "+ NonLocal"): 40.93,
    (1, 50, "+ PSP (the released PSPNet-50)"): 41.68,
    (1, 101, "baseline (FCN)"): 39.66,
    (1, 101, "+ COLLECT"): 42.70,
    (1, 101, "+ DISTRIBUTE"): 42.11,
    (1, 101, "+ COLLECT + DISTRIBUTE"): 42.75,
    (4, 50, "baseline (FCN)"): 67.12,
    (4, 50, "+ COLLECT"): 76.96,
    (4, 50, "+ COLLECT + DISTRIBUTE"): 77.24,
    (4, 101, "baseline (FCN)"): 70.64,
    (4, 101, "+ COLLECT"): 77.90,
    (4, 101, "+ COLLECT + DISTRIBUTE"): 78.51,
    (5, 50, "baseline (FCN)"): 71.93,
    (5, 50, "+ COLLECT"): 76.51,
    (5, 50, "+ COLLECT + DISTRIBUTE"): 76.65,
    (5, 101, "baseline (FCN)"): None,
    (5, 101, "+ COLLECT"): 77.06,
    (5, 101, "+ COLLECT + DISTRIBUTE"): 77.94,
}


def test_every_paper_row_is_one_variant_with_its_numbers() -> None:
    found = {}
    for v in paper_rows():
        assert v.paper is not None and v.paper.row.startswith(f"ResNet-{v.config.depth} ")
        key = (v.paper.table, v.config.depth, v.paper.row.removeprefix(f"ResNet-{v.config.depth} "))
        assert key not in found, key
        found[key] = v.published.get("miou_ss")
    assert found == PAPER_MIOU_SS


def test_lost_numbers_are_absent_not_invented() -> None:
    lost = VARIANTS["psanet101_cityscapes_705_fcn"]
    assert lost.published == {} and "lost" in str(lost.paper)
    for v in paper_rows():
        if v.published:
            assert set(v.published) == {"miou_ss", "pacc_ss", "miou_ms", "pacc_ms"}
            assert v.published["miou_ss"] < v.published["miou_ms"], v.name  # multi-scale helps in every row


def test_names_architectures_and_released_rows() -> None:
    v = VARIANTS["psanet50_ade20k_465_collect"]
    assert v.config.branches == ("COLLECT",) and v.config.depth == 50 and not v.config.compact
    assert VARIANTS["psanet101_voc2012_465_fcn"].config.branches == ()
    assert "psanet101_ade20k_465_collect_compact" not in VARIANTS
    for v in VARIANTS.values():
        family = "pspnet" if v.config.head == "psp" else "psanet"
        assert v.name.startswith(f"{family}{v.config.depth}_{v.dataset}_{v.config.crop}")
    assert all(v.paper is not None and v.caffemodel_md5_prefix for v in RELEASED)
    assert {v.name for v in VARIANTS.values() if v.paper is None} == {
        f"psanet{d}_{ds}_{c}_{s}"
        for ds, c in (("voc2012", 465), ("cityscapes", 705))
        for d, s in ((50, "distribute"), (50, "collect_compact"), (101, "distribute"))
    } | {"pspnet101_voc2012_473", "pspnet101_cityscapes_713"}  # the PSPNet releases beyond Table 1


def test_dataset_config_takes_changes_to_its_own_fields() -> None:
    """A change may override the dataset's own crop / classes (the GPU bench row asks for 513², the ADE crop is 465)."""
    from port.variants import dataset_config

    assert dataset_config("ade20k", 101).crop == 465
    cfg = dataset_config("ade20k", 101, crop=513, num_classes=19, width_divisor=8)
    assert (cfg.crop, cfg.num_classes, cfg.width_divisor, cfg.depth) == (513, 19, 8, 101)
