"""The trainer's optimiser (port.train.optim: CaffeSGD, PolyLR, param_groups) against Caffe's own SGDSolver.

Caffe side: the generated train definition at width/16, 65x65, batch 2, dropout 0, aux loss 0.4, TRAIN-mode
BN, lr_policy "poly" (power 0.9, max_iter 20 so the decay is visible), momentum 0.9, weight decay 1e-4, the
definition's lr_mult / decay_mult; STEPS = 5 iterations on one batch.

1. Update rule (`solver_updates`): before each iteration our optimiser (fp64) takes Caffe's weights, momentum
   history and gradient; after it, every parameter must equal Caffe's within 1e-5 of the step + 5e-7 |w|.
   Measured: worst 1.2e-3 of its step on PSA fc2 weights, whose step is ~1e-4 |w| (fp32 ulps of w); every
   other key far below; losses at each common state within 1e-5. PyTorch's SGD (lr outside the history)
   would be off by ~2.5% of a step from iteration 1 on.
2. Whole step against an fp64 oracle (`solver_parity`, the method of test_train_step.py): each iteration
   restarts PyTorch fp64 and fp32 from Caffe's state; Caffe's error must stay within 4x PyTorch-fp32's own,
   that fp32 run computing BN in the legacy build's float arithmetic (parity_tests/caffe_bn.py). Both
   PyTorch runs take Caffe's ReLU mask where a pre-activation is within 1e-3 of its tensor's max of 0
   (parity_tests/kinks.py; at most 1e-3 of the ReLU elements, measured 1-21 of 0.3-0.6 M): without that,
   ResNet-50 ADE20K (seed 11) failed with Caffe 74% / 4.7% of a step off fp64 at iterations 0 / 1, from a
   handful of ReLU elements (at iteration 1 two of conv5_4's) a rounding away from 0 on the other side in Caffe.
   Measured with it: Caffe 0.08-0.14% of a step vs fp32 0.08-0.23% (ResNet-50 ADE20K), 0.16-1.1% vs
   0.12-1.2% (ResNet-101 VOC); losses within 4e-6.
3. param_mults equal the lr_mult / decay_mult of every committed train definition, both ways.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parity_tests.definitions import layer_params, released_text
from parity_tests.train_step import live_case, solver_parity, solver_updates
from port.model import PSANet, param_table
from port.train.optim import build_optimizer, param_mults
from port.train.recipe import recipe_for
from port.variants import VARIANTS
from prototxt.context import has_definition
from prototxt.solver import Schedule

STEPS, MAX_ITER, POWER = 5, 20, 0.9
LOSS_RTOL = 1e-3
NOISE_MARGIN, NOISE_FLOOR = 4.0, 1e-3
# Caffe-gradient-driven updates: Caffe's fp32 update vs ours in fp64 from the same fp32 numbers differ by the
# rounding of v <- m*v + lr*(g + wd*w) and w - v: a few float32 ulps of |w| (eps 1.2e-7) plus 1e-5 of the step.
UPDATE_RTOL, UPDATE_ULPS, UPDATE_LOSS_RTOL = 1e-5, 5e-7, 1e-5


# NonLocal has no Caffe definition; port/tests/model/test_heads.py checks its multipliers.
@pytest.mark.parametrize("name", sorted(n for n, v in VARIANTS.items() if has_definition(v.config)))
def test_param_mults_equal_the_train_definition(name: str) -> None:
    """Every param blob of the committed train definition <-> every parameter of the model, same (lr, decay) mults."""
    cfg = VARIANTS[name].config.with_(width_divisor=16, aux=True)
    model = PSANet(cfg)
    stated = layer_params(released_text(name, train=True))
    table = param_table(cfg)
    ours = param_mults(model, recipe_for("caffe", VARIANTS[name].dataset))
    params = dict(model.named_parameters())
    assert set(table) == {(layer, i) for layer, blobs in stated.items() for i in range(len(blobs))}
    for (layer, index), key in table.items():
        lr, decay = stated[layer][index]
        if key in params:
            assert ours[key] == (lr, decay), (layer, index, key)
        else:  # BN running mean / variance: buffers, updated by the forward only
            assert (lr, decay) == (0.0, 0.0) and key not in ours, (layer, index, key)
    assert set(ours) == set(params) == {k for k in table.values() if k in params}


@pytest.mark.caffe
@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet101_voc2012_465"])
def test_poly_sgd_matches_caffe_solver(name: str, tmp_path: Path) -> None:
    case = live_case(name, tmp_path, seed=11)
    recipe = recipe_for("caffe", VARIANTS[name].dataset).with_(iterations=MAX_ITER, power=POWER)
    results = solver_parity(
        case, tmp_path, Schedule("poly", MAX_ITER, POWER), lambda m: build_optimizer(m, recipe), STEPS
    )
    for k, result in enumerate(results):
        loss_error = max(abs(c / o - 1) for c, o in zip(result.caffe_losses, result.oracle_losses))
        worst, error = result.worst, result.caffe_errors[result.worst]
        print(
            f"{name} it {k}: losses rel {loss_error:.2g}; caffe worst {worst} {error:.3g}; torch fp32 "
            f"{result.fp32_noise:.3g}; "
            f"ReLU kinks taken {result.kinks_taken}"
        )
        np.testing.assert_allclose(result.caffe_losses, result.oracle_losses, rtol=LOSS_RTOL)
        assert error <= NOISE_MARGIN * result.fp32_noise + NOISE_FLOOR, (k, worst, error, result.fp32_noise)


@pytest.mark.caffe
@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet101_voc2012_465"])
def test_port_optimizer_reproduces_caffe_solver_updates(name: str, tmp_path: Path) -> None:
    """Each iteration, our optimiser gets Caffe's weights, history and gradient: the update rule alone is compared."""
    case = live_case(name, tmp_path, seed=11)
    recipe = recipe_for("caffe", VARIANTS[name].dataset).with_(iterations=MAX_ITER, power=POWER)
    updates = solver_updates(
        case, tmp_path, Schedule("poly", MAX_ITER, POWER), lambda m: build_optimizer(m, recipe), STEPS
    )
    for k, update in enumerate(updates):
        np.testing.assert_allclose(update.caffe_losses, update.torch_losses, rtol=UPDATE_LOSS_RTOL)
        worst = max(update.error, key=lambda key: update.error[key] / update.change[key])
        print(f"{name} it {k}: worst {worst} {update.error[worst] / update.change[worst]:.2g} of its change")
        for key, error in update.error.items():
            assert error <= UPDATE_RTOL * update.change[key] + UPDATE_ULPS * update.size[key], (k, key)
