"""Sliding-window multi-scale inference against a literal, one-crop-at-a-time transcription of the authors' scripts.

The oracle reuses the MATLAB-resize functions (checked by hand in test_eval_resize.py) and
otherwise follows scale_process/pre_img/caffe_process line by line with 1-based loops.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from port.contracts import CAFFE
from port.evaluate.geometry import scaled_size
from port.evaluate.inference import InferenceSettings, predict, predict_probabilities, to_network_input
from port.evaluate.matlab_resize import resize_image, resize_scores
from port.tests.support.evaluate import StandInNet

CROP, CLASSES, BASE = 33, 5, 40

MEAN_RGB = CAFFE.mean_rgb


def _to_uint8(value: float) -> int:
    """MATLAB's uint8(value): nearest integer, halves away from zero, saturated to 0..255."""
    return min(255, max(0, int(value + 0.5)))


def _pre_img(image: np.ndarray, crop: int) -> np.ndarray:
    """H×W×3 → crop×crop×3 float: pad with the mean (bottom/right), subtract it, reverse channels."""
    rows, cols = image.shape[:2]
    out = np.empty((max(rows, crop), max(cols, crop), 3), dtype=np.float32)
    for c in range(3):
        out[:, :, c] = np.pad(
            image[:, :, c].astype(np.float32),
            ((0, out.shape[0] - rows), (0, out.shape[1] - cols)),
            constant_values=MEAN_RGB[c],
        )
        out[:, :, c] -= np.float32(MEAN_RGB[c])
    return out[:, :, ::-1]


def _net_scores(net: torch.nn.Module, data: np.ndarray, flip: bool) -> np.ndarray:
    """crop×crop×C probabilities of one pre-processed crop: logits (+ flipped logits), then exp-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(data.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        logits = net(x)[0].double().numpy()
        if flip:
            logits = logits + net(x.flip(-1))[0].double().numpy()[:, :, ::-1]
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).transpose(1, 2, 0)


def _scale_process(net: torch.nn.Module, img: np.ndarray, ori: tuple[int, int], flip: bool) -> np.ndarray:
    new_rows, new_cols = img.shape[:2]
    if max(new_rows, new_cols) <= CROP:
        score = _net_scores(net, _pre_img(img, CROP), flip)[:new_rows, :new_cols]
    else:
        stride = math.ceil(CROP * 2 / 3)
        pad_rows, pad_cols = max(new_rows, CROP), max(new_cols, CROP)
        # padarray on the uint8 image: MATLAB casts the pad value to the array's class, uint8(123.68) = 124 etc.
        padded = np.empty((pad_rows, pad_cols, 3), dtype=np.uint8)
        for c in range(3):
            padded[:, :, c] = np.pad(
                img[:, :, c],
                ((0, pad_rows - new_rows), (0, pad_cols - new_cols)),
                constant_values=_to_uint8(MEAN_RGB[c]),
            )
        data = np.zeros((pad_rows, pad_cols, CLASSES))
        count = np.zeros((pad_rows, pad_cols, CLASSES))
        for gy in range(1, math.ceil((pad_rows - CROP) / stride) + 2):
            for gx in range(1, math.ceil((pad_cols - CROP) / stride) + 2):
                ex = min((gx - 1) * stride + CROP, pad_cols)
                ey = min((gy - 1) * stride + CROP, pad_rows)
                sx, sy = ex - CROP + 1, ey - CROP + 1
                sub = padded[sy - 1 : ey, sx - 1 : ex]
                count[sy - 1 : ey, sx - 1 : ex] += 1
                data[sy - 1 : ey, sx - 1 : ex] += _net_scores(net, _pre_img(sub, CROP), flip)
        score = (data / count)[:new_rows, :new_cols]
    out = resize_scores(torch.from_numpy(score.transpose(2, 0, 1)).float(), ori).double().numpy()
    return out / out.sum(axis=0)


def _oracle(net: torch.nn.Module, image: np.ndarray, scales: tuple[float, ...], flip: bool) -> np.ndarray:
    ori = image.shape[:2]
    total = np.zeros((CLASSES, *ori))
    for scale in scales:
        total += _scale_process(net, resize_image(image, scaled_size(*ori, BASE, scale)), ori, flip)
    return total / len(scales)


@pytest.fixture(scope="module")
def net() -> StandInNet:
    return StandInNet(CLASSES, CROP, seed=3)


def _image(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (rows, cols, 3), dtype=np.uint8)


def test_sliding_window_padding_is_the_uint8_mean() -> None:
    # A 40x10 image with crop 33 slides (long side > crop) and is padded to 40x33 with 124/117/104,
    # i.e. 0.32/0.221/0.061 after the mean; a 20x10 image is one crop padded with the float mean, i.e. 0.
    sliding = to_network_input(np.zeros((40, 10, 3), dtype=np.uint8), CROP)
    assert sliding.shape == (3, 40, 33)
    np.testing.assert_allclose(
        sliding[:, :, 10:].numpy(), np.broadcast_to([[[0.061]], [[0.221]], [[0.32]]], (3, 40, 23)), atol=1e-5
    )
    single = to_network_input(np.zeros((20, 10, 3), dtype=np.uint8), CROP)
    assert single.shape == (3, 33, 33) and not single[:, 20:, :].any() and not single[:, :, 10:].any()


@pytest.mark.parametrize("rows, cols", [(30, 50), (50, 20), (33, 33), (7, 9)])
@pytest.mark.parametrize("flip", [True, False])
def test_matches_literal_matlab_procedure(net: StandInNet, rows: int, cols: int, flip: bool) -> None:
    image = _image(rows, cols, rows * cols)
    scales = (0.5, 1.0, 1.5)  # long sides 21 (one padded crop), 41 and 61 (sliding windows)
    settings = InferenceSettings(CROP, CLASSES, BASE, scales, flip, batch_size=4)
    ours = predict_probabilities(net, image, settings, torch.device("cpu")).double().numpy()
    np.testing.assert_allclose(ours, _oracle(net, image, scales, flip), atol=2e-6, rtol=0)
    np.testing.assert_allclose(ours.sum(axis=0), 1.0, atol=1e-5)


def test_batching_does_not_change_the_result(net: StandInNet) -> None:
    image = _image(45, 70, 1)
    results = [
        predict_probabilities(
            net, image, InferenceSettings(CROP, CLASSES, BASE, (1.0, 1.5), True, b), torch.device("cpu")
        )
        for b in (1, 2, 3, 64)
    ]
    for other in results[1:]:
        torch.testing.assert_close(other, results[0], atol=1e-6, rtol=0)


def test_predict_is_argmax(net: StandInNet) -> None:
    image = _image(20, 28, 2)
    settings = InferenceSettings(CROP, CLASSES, BASE)
    probs = predict_probabilities(net, image, settings, torch.device("cpu"))
    np.testing.assert_array_equal(predict(net, image, settings, torch.device("cpu")), probs.argmax(0).numpy())
