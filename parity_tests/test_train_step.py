"""Training parity: Caffe SGDSolver vs torch.optim.SGD (lr_mult / decay_mult from the train definition), aux loss 0.4."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from parity_tests.conversion import load_converted
from parity_tests.definitions import generated_text, write
from parity_tests.live import random_net
from parity_tests.random_weights import random_input
from parity_tests.train_step import caffe_solver, caffe_steps, relative_change_error, state_errors, torch_optimizer, torch_run
from port.variants import VARIANTS

pytestmark = pytest.mark.caffe
LOSS_RTOL = 1e-3
# TRAIN-mode BN on batch statistics of 2 small images is ill-conditioned: its backward keeps only the part of
# dy orthogonal to 1 and x_hat per channel, which is small for the near-constant channels after the PSA, so
# rounding is amplified. Measured: an fp32 PyTorch step differs from the same step in fp64 by up to 17% of a
# weight's change (ResNet-101 VOC, width/16, 65x65); Caffe's by 15% there and by 2.7% vs PyTorch-fp32's 0.86%
# on ResNet-50 ADE (Caffe's BN sums naively in float, PyTorch pairwise). Layer by layer the same step agrees
# to 5e-7 (BN+ReLU+Dropout chains in place, legacy_caffe/tests, test_backward_layers/_head). So the oracle is
# PyTorch in float64 and Caffe's error must stay within a few times PyTorch's own fp32 error: a semantic
# difference (wrong formula, missing term) gives errors of order 1.
NOISE_MARGIN, NOISE_FLOOR = 4.0, 1e-3


@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet101_voc2012_465"])
def test_one_sgd_step(name: str, tmp_path: Path) -> None:
    # NOTE: dropout ratio 0 in both definitions: Caffe's and PyTorch's random masks cannot agree.
    cfg = VARIANTS[name].config.with_(width_divisor=16, crop=65, dropout=0.0)
    text = generated_text(name, cfg, train=True, batch=2)
    net = random_net(text, tmp_path, seed=5, phase="TRAIN")
    weights = tmp_path / "start.caffemodel"
    net.save(str(weights))
    converted = load_converted(weights, write(tmp_path, "def.prototxt", text), tmp_path)
    assert converted.cfg.aux and converted.cfg.aux_weight == 0.4

    data = random_input((2, 3, cfg.crop, cfg.crop), 6)
    rng = np.random.default_rng(7)
    label = rng.integers(0, cfg.num_classes, (2, 1, cfg.crop, cfg.crop)).astype(np.float32)
    label[rng.random(label.shape) < 0.2] = 255
    solver = caffe_solver(tmp_path, text, weights)
    caffe_losses = caffe_steps(solver, data, label, 1)
    def sgd(model):
        return torch_optimizer(model, text)

    oracle, start, oracle_losses = torch_run(converted, sgd, data, label, 1, torch.float64)
    fp32, _, _ = torch_run(converted, sgd, data, label, 1, torch.float32)
    np.testing.assert_allclose(caffe_losses, oracle_losses, rtol=LOSS_RTOL)

    caffe_errors = state_errors(solver.net, oracle, start)
    fp32_noise = max(relative_change_error(fp32, oracle, start).values())
    worst = max(caffe_errors, key=caffe_errors.get)
    print(f"{name}: caffe worst {worst} {caffe_errors[worst]:.3g}; torch fp32 worst {fp32_noise:.3g}")
    assert caffe_errors[worst] <= NOISE_MARGIN * fp32_noise + NOISE_FLOOR, (worst, caffe_errors[worst], fp32_noise)
