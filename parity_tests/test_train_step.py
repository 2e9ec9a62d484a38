"""Training parity: Caffe SGDSolver vs torch.optim.SGD (lr_mult / decay_mult from the train definition), aux loss
0.4."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parity_tests.train_step import live_case, solver_parity, torch_optimizer
from prototxt.solver import FIXED

pytestmark = pytest.mark.caffe
LOSS_RTOL = 1e-3
# TRAIN-mode BN on batch statistics of 2 small images is ill-conditioned: its backward keeps only the part of
# dy orthogonal to 1 and x_hat per channel, which is small for the near-constant channels after the PSA, so
# rounding is amplified; and a ReLU input a rounding away from 0 takes the whole gradient or none of it, which
# the runs settle by taking Caffe's side (parity_tests/kinks.py). Measured with that: Caffe vs fp64 0.26% /
# 1.2% / 0.16% of a weight's change (ResNet-50 ADE, ResNet-101 VOC, PSPNet-50 ADE; width/16), PyTorch fp32 with
# Caffe's BN arithmetic 0.27% / 0.92% / 0.15%. Layer by layer the same step agrees to 5e-7 (BN+ReLU+Dropout
# chains in place, legacy_caffe/tests, test_backward_layers/_head). So the oracle is PyTorch in float64 and
# Caffe's error must stay within a few times PyTorch's own fp32 error: a semantic difference (wrong formula,
# missing term) gives errors of order 1.
NOISE_MARGIN, NOISE_FLOOR = 4.0, 1e-3


@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet101_voc2012_465", "pspnet50_ade20k_473"])
def test_one_sgd_step(name: str, tmp_path: Path) -> None:
    case = live_case(name, tmp_path, seed=5)
    assert case.converted.cfg.aux and case.converted.cfg.aux_weight == 0.4
    (result,) = solver_parity(case, tmp_path, FIXED, lambda model: torch_optimizer(model, case.text), 1)
    np.testing.assert_allclose(result.caffe_losses, result.oracle_losses, rtol=LOSS_RTOL)
    worst, error = result.worst, result.caffe_errors[result.worst]
    print(
        f"{name}: caffe worst {worst} {error:.3g}; torch fp32 worst {result.fp32_noise:.3g}; kinks {result.kinks_taken}"
    )
    assert error <= NOISE_MARGIN * result.fp32_noise + NOISE_FLOOR, (worst, error, result.fp32_noise)
