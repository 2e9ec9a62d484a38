"""DenseCRF post-processing: pydensecrf2's lattice mean field against a brute-force dense CRF, and `--crf` in the
CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import port.model
from port.evaluate import InferenceSettings, predict
from port.evaluate.cli import main
from port.evaluate.crf import CRFParams, crf_labels, crf_marginals, unary
from port.evaluate.inference import predict_probabilities
from port.tests.support.evaluate import StandInNet, write_ade20k
from port.variants import VARIANTS

pytest.importorskip("pydensecrf.densecrf")


def brute_force(probs: np.ndarray, image: np.ndarray, params: CRFParams) -> np.ndarray:
    """Mean field with explicit N x N Gaussian kernels, symmetric normalisation, Potts compatibility (float64)."""
    classes, rows, cols = probs.shape
    ys, xs = np.mgrid[0:rows, 0:cols]
    position = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    colour = image.reshape(-1, 3).astype(np.float64)
    kernels = []
    for weight, features in (
        (params.pos_w, position / params.pos_xy_std),
        (params.bi_w, np.concatenate([position / params.bi_xy_std, colour / params.bi_rgb_std], axis=1)),
    ):
        squared = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
        k = np.exp(-squared / 2)
        norm = 1 / np.sqrt(k.sum(axis=1))
        kernels.append(weight * norm[:, None] * k * norm[None, :])
    energy = -np.log(np.maximum(probs.reshape(classes, -1).astype(np.float64), 1e-8))

    def softmax(logits: np.ndarray) -> np.ndarray:
        e = np.exp(logits - logits.max(axis=0))
        return e / e.sum(axis=0)

    q = softmax(-energy)
    for _ in range(params.iterations):
        # Potts: a label gains the kernel-weighted mass its neighbours give it (equal to w * [l != l'] up to a
        # constant).
        q = softmax(-energy + sum(q @ k.T for k in kernels))
    return q.reshape(classes, rows, cols)


def two_region_scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 12 x 15 image with two colour regions and noisy 4-class probabilities that half follow them."""
    rng = np.random.default_rng(seed)
    image = np.zeros((12, 15, 3))
    image[:, :7], image[:, 7:] = (200, 30, 30), (20, 40, 220)
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    logits = rng.normal(0, 1, (4, 12, 15))
    logits[0, :, :7] += 0.8
    logits[1, :, 7:] += 0.8
    return torch.softmax(torch.from_numpy(logits), 0).numpy().astype(np.float32), image


@pytest.mark.parametrize(
    "params", [CRFParams(), CRFParams(bi_w=5, bi_xy_std=4, bi_rgb_std=20, pos_w=1, pos_xy_std=1.5, iterations=5)]
)
def test_lattice_mean_field_matches_brute_force(params: CRFParams) -> None:
    probs, image = two_region_scene()
    ours, exact = crf_marginals(probs, image, params), brute_force(probs, image, params)
    # The permutohedral lattice approximates the Gaussian filter: measured mean |dQ| ~1e-3, max ~0.06 here.
    assert np.abs(ours - exact).mean() < 2.5e-3 and np.abs(ours - exact).max() < 0.1
    assert (ours.argmax(0) == exact.argmax(0)).mean() >= 0.99
    assert (exact.argmax(0) != probs.argmax(0)).mean() > 0.3  # the CRF really changes the labelling
    np.testing.assert_allclose(ours.sum(0), 1, atol=1e-5)


def test_brute_force_tells_the_weights_apart() -> None:
    """The comparison above is tight enough to notice the paper's weights being swapped."""
    probs, image = two_region_scene()
    ours = crf_marginals(probs, image, CRFParams())
    right = np.abs(ours - brute_force(probs, image, CRFParams())).mean()
    swapped = np.abs(ours - brute_force(probs, image, CRFParams(bi_w=2.0, pos_w=3.5))).mean()
    assert swapped > 3 * right


def test_unary_is_negative_log_probability_with_a_floor() -> None:
    probs = np.array([[[0.25, 0.0]], [[0.75, 1.0]]], dtype=np.float32)
    u = unary(probs)
    assert u.shape == (2, 2) and u.flags.c_contiguous and u.dtype == np.float32
    np.testing.assert_allclose(u, [[np.log(4), -np.log(1e-8)], [-np.log(0.75), 0]], rtol=1e-6)


def test_predict_applies_the_crf_to_the_averaged_probabilities() -> None:
    net = StandInNet(5, 33, seed=3)
    image = np.random.default_rng(4).integers(0, 256, (20, 26, 3), dtype=np.uint8)
    plain = InferenceSettings(33, 5, 32)
    refined = InferenceSettings(33, 5, 32, crf=CRFParams())
    probs = predict_probabilities(net, image, plain, torch.device("cpu"))
    np.testing.assert_array_equal(
        predict(net, image, refined, torch.device("cpu")), crf_labels(probs.numpy(), image, CRFParams())
    )
    assert not np.array_equal(
        predict(net, image, refined, torch.device("cpu")), predict(net, image, plain, torch.device("cpu"))
    )


@pytest.fixture
def fcn_model(monkeypatch: pytest.MonkeyPatch) -> StandInNet:
    net = StandInNet(150, 465, seed=0)
    net.variant = VARIANTS["psanet50_ade20k_465_fcn"]
    monkeypatch.setattr(port.model, "load", lambda _path, **_family: net)
    return net


def test_cli_crf_reports_the_densecrf_row_and_keeps_its_own_folder(
    tmp_path: Path, fcn_model: StandInNet, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_ade20k(tmp_path / "ade", [(9, 11)])
    weights = tmp_path / "fcn.safetensors"
    weights.write_bytes(b"stand-in; port.model.load is patched")
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(weights)]
    assert main(base) == 0
    assert "published 37.23%" in capsys.readouterr().out
    assert main([*base, "--crf", "--crf-iterations", "3"]) == 0
    out = capsys.readouterr().out
    assert "published 37.97%" in out and "predicted 1 image(s), resumed 0" in out
    assert (tmp_path / "results" / "ade20k_fcn_ss_crf" / "gray").is_dir()


@pytest.mark.parametrize("bad", [["--crf-iterations", "0"], ["--crf-bi-rgb-std", "-1"]])
def test_cli_bad_crf_values_exit_2(
    tmp_path: Path,
    fcn_model: StandInNet,
    bad: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write_ade20k(tmp_path / "ade", [(5, 5)])
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"x")
    code = main(["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(weights), "--crf", *bad])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "CRF" in err
    assert not (tmp_path / "results").exists()
