"""Gradient accumulation and Caffe's VALID loss normalisation over a split global batch."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from port.model.layers import interp
from port.model.psanet import PSANetOutput
from port.tests.support.train import max_relative_difference, tiny_train_args, write_voc_shapes
from port.train.checkpoint import load_checkpoint
from port.train.cli import main
from port.train.loss import loss_labels, loss_zoom, normaliser, summed_loss, valid_count

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NO_AUGMENT = ["--recipe-opt", "scale_range=[1,1]", "--recipe-opt", "rotate_degrees=0", "--recipe-opt", "blur=false",
              "--recipe-opt", "mirror=false"]


def test_split_batch_loss_gradient_equals_whole_batch() -> None:
    """Pieces backpropagating sum/N_global give the gradient of the whole batch's mean over valid pixels."""
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, 9, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    aux = torch.randn(4, 5, 9, 9, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (4, 9, 9), generator=gen)
    labels[0, :6] = 255  # pieces with very different valid counts
    labels[3] = 255
    whole = F.cross_entropy(logits, labels, ignore_index=255) + 0.4 * F.cross_entropy(aux, labels, ignore_index=255)
    expected = torch.autograd.grad(whole, (logits, aux))
    count = valid_count(labels)
    pieces = [
        summed_loss(PSANetOutput(logits[i : i + 2], aux[i : i + 2]), labels[i : i + 2], 0.4) / normaliser(count)
        for i in (0, 2)
    ]
    got = torch.autograd.grad(sum(pieces), (logits, aux))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(sum(pieces), whole, rtol=1e-12, atol=0)


def test_full_loss_zooms_conv6_as_the_released_interp_layer() -> None:
    """"full": the trainer's model returns conv6 / conv6_aux and the loss zooms them x8 (fused); the sums and their
    gradients are those of the released nets' Interp (zoom_factor 8) + cross-entropy on the materialised maps."""
    gen = torch.Generator().manual_seed(0)
    conv6, aux = (torch.randn(2, 6, 4, 5, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(2))
    labels = torch.randint(0, 6, (2, 25, 33), generator=gen)
    labels[0, :9] = 255
    got = summed_loss(PSANetOutput(conv6, aux), labels, 0.4, loss_zoom("full"))
    expected = sum(
        weight * F.cross_entropy(interp(x, zoom=8), labels, ignore_index=255, reduction="sum")
        for x, weight in ((conv6, 1.0), (aux, 0.4))
    )
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=0)
    for g, e in zip(torch.autograd.grad(got, (conv6, aux)), torch.autograd.grad(expected, (conv6, aux))):
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-14)
    assert loss_zoom("eighth") == 1
    with pytest.raises(ValueError, match="8k\\+1"):
        summed_loss(PSANetOutput(conv6, aux), labels[:, :24], 0.4, 8)


def test_eighth_labels_sit_where_the_zoom_puts_conv6_pixels() -> None:
    conv6 = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    zoomed = interp(conv6, zoom=8)  # the x8 aligned-corner zoom: 33 x 33
    assert zoomed.shape[-1] == 33
    torch.testing.assert_close(zoomed[..., ::8, ::8], conv6, rtol=1e-12, atol=1e-12)
    labels = torch.arange(2 * 33 * 33).view(2, 33, 33) % 7
    assert torch.equal(loss_labels(labels, "eighth"), labels[:, [0, 8, 16, 24, 32]][:, :, [0, 8, 16, 24, 32]])
    assert loss_labels(labels, "full") is labels


def _duplicated_sample_set(root: Path) -> Path:
    """A list file naming one 33x33 sample four times: every micro-batch has the same statistics."""
    write_voc_shapes(root, 1, 0, 33)
    image = next((root / "VOCdevkit" / "VOC2012" / "JPEGImages").glob("*.jpg")).relative_to(root)
    label = next((root / "VOCdevkit" / "VOC2012" / "SegmentationClassAug").glob("*.png")).relative_to(root)
    assert Image.open(root / label).size == (33, 33)
    listing = root / "train.txt"
    listing.write_text(f"{image} {label}\n" * 4)
    return listing


@pytest.mark.parametrize("loss_scale", ["full", "eighth"])
def test_accumulation_equals_batch_where_bn_statistics_agree(tmp_path: Path, loss_scale: str) -> None:
    """micro-batch 1 x 2 accumulation steps vs batch 2, on identical samples (so per-micro-batch BN statistics
    equal the batch's): same weights after 3 steps; running statistics see 2 updates per iteration instead of 1."""
    data = tmp_path / "data"
    listing = _duplicated_sample_set(data)
    common = ["--batch-size", "2", "--dtype", "float64", "--train-list", str(listing), "--loss-scale", loss_scale,
              *NO_AUGMENT]
    runs = {}
    for name, micro, iterations in (("acc", "1", "3"), ("batch", "2", "3"), ("acc1", "1", "1"), ("batch1", "2", "1")):
        assert (
            main(tiny_train_args(data, tmp_path / name, *common, "--batch-per-proc", micro, "--iterations", iterations))
            == 0
        )
        runs[name] = load_checkpoint(tmp_path / name / "last.pt")["model"]
    # float64; 1e-7 of each tensor's largest value: summation-order noise amplified by near-constant BN channels
    # (measured 4e-10 and 1.4e-8 for the two loss scales with CaffeBN's fused batch norm)
    worst, key = max_relative_difference(runs["batch"], runs["acc"], skip="running")
    assert worst < 1e-7, f"{key}: relative difference {worst:.3g}"
    # one iteration: batch statistic s from the batch run (r1 = m*r0 + (1-m)*s); accumulation applies it twice
    m = 0.95
    for key in ("conv1_1_3x3_s2.bn.running_mean", "conv5_4.bn.running_var", "conv4_aux_3x3.bn.running_mean"):
        r0 = torch.zeros_like(runs["batch1"][key]) if key.endswith("mean") else torch.ones_like(runs["batch1"][key])
        s = (runs["batch1"][key] - m * r0) / (1 - m)
        torch.testing.assert_close(runs["acc1"][key], m * m * r0 + (1 - m * m) * s, rtol=1e-9, atol=1e-12)
        assert not torch.allclose(runs["acc1"][key], runs["batch1"][key])


def test_batch_must_split_evenly(tmp_path: Path, capsys) -> None:
    data = write_voc_shapes(tmp_path / "data", 2, 0, 40)
    code = main(
        tiny_train_args(data, tmp_path / "run", "--batch-size", "4", "--batch-per-proc", "3", "--iterations", "1")
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "multiple" in err[0]
    assert not list((tmp_path / "run").glob("*.pt"))
    assert np.isfinite(normaliser(0)) and normaliser(0) == 1.0
