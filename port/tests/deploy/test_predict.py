"""`port.Segmenter` and `python -m port.predict` on a converted (reduced-width) release: results against the
evaluation procedure run on the eager model, the pictures, the files written, and bad input."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import port
from port.classes import ClassTable
from port.drawing import label_image, overlay, with_legend
from port.evaluate.inference import InferenceSettings, predict_probabilities
from port.predict.cli import main
from port.tests.support.release import convert_release
from port.tests.support.train import one_thread

BASE = 64  # long side at scale 1: a few 33-pixel crops per image, not hundreds


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return convert_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (50, 70, 3), dtype=np.uint8)


def test_segmenter_matches_the_evaluation_procedure_on_the_eager_model(weights: Path, photo: np.ndarray) -> None:
    seg = port.Segmenter(weights, base_size=BASE, device="cpu")
    with one_thread():
        result = seg(photo)
        net = port.load(weights)
        expected = predict_probabilities(net, photo, InferenceSettings(33, 150, BASE), torch.device("cpu"))
    assert result.labels.shape == (50, 70) and result.probabilities.shape == (150, 50, 70)
    torch.testing.assert_close(result.probabilities, expected, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(result.labels, expected.argmax(0).numpy())
    assert result.classes == ClassTable.for_dataset("ade20k")  # recorded by caffe2torch --dataset
    assert set(result.present()) == {result.classes.names[i] for i in np.unique(result.labels)}


def test_segmenter_takes_paths_pil_images_and_arrays_alike(weights: Path, photo: np.ndarray, tmp_path: Path) -> None:
    seg = port.Segmenter(weights, base_size=BASE, device="cpu", flip=False)
    Image.fromarray(photo).save(tmp_path / "p.png")
    with one_thread():
        results = [seg(tmp_path / "p.png"), seg(str(tmp_path / "p.png")), seg(Image.fromarray(photo)), seg(photo)]
    for other in results[1:]:
        np.testing.assert_array_equal(other.labels, results[0].labels)
    gray = photo[:, :, 0]
    with one_thread():
        np.testing.assert_array_equal(seg(gray).image, np.repeat(gray[:, :, None], 3, axis=2))


def test_segmenter_takes_a_psanet_object_and_leaves_it_as_it_was(weights: Path, photo: np.ndarray) -> None:
    """A model held in memory (just fine-tuned, or built and loaded by hand) segments as its file does; the caller's
    model keeps its mode and its parameters (the Segmenter works on a copy)."""
    model = port.load(weights).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with one_thread():
        held = port.Segmenter(model, base_size=BASE, device="cpu")(photo)
        from_file = port.Segmenter(weights, base_size=BASE, device="cpu")(photo)
    np.testing.assert_array_equal(held.labels, from_file.labels)
    torch.testing.assert_close(held.probabilities, from_file.probabilities, atol=0, rtol=0)
    assert held.classes == from_file.classes and model.training
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="^Segmenter takes a PSANet, a weights file or an exported graph, not a Conv2d"):
        port.Segmenter(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="^family, config and backend are for files; a PSANet object carries its"):
        port.Segmenter(model, family="mmseg")


@pytest.mark.parametrize("bad, words", [
    (np.zeros((5, 5, 3), np.float32), "uint8"), (np.zeros((5, 5, 4), np.uint8), "H×W×3"), (3, "expected a path"),
    (np.zeros((0, 5, 3), np.uint8), "empty: 0x5"), (Image.new("RGB", (4, 0)), "empty: 0x4"),
])
def test_segmenter_refuses_what_is_not_an_image(weights: Path, bad: object, words: str) -> None:
    seg = port.Segmenter(weights, base_size=BASE, device="cpu")
    with pytest.raises((ValueError, TypeError), match=words):
        seg(bad)


@pytest.mark.parametrize("options, words", [
    ({"base_size": 0}, "base_size must be at least 1, got 0"), ({"scales": []}, "one or more positive numbers"),
    ({"scales": [1.0, 0.0]}, "one or more positive numbers, got \\[1.0, 0.0\\]"),
    ({"device": "tpu"}, "device must be 'cpu' or 'cuda', got 'tpu'"),
    pytest.param({"device": "cuda"}, "device 'cuda' asked for, but CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
])
def test_segmenter_refuses_options_it_cannot_honour(weights: Path, options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):  # base_size 0 and scale 0 ran before; devices raised torch's errors
        port.Segmenter(weights, **options)


def test_overlay_blends_and_legend_lists_the_classes_present() -> None:
    table = ClassTable(("a", "b", "c"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    image = np.full((20, 30, 3), 100, np.uint8)
    labels = np.zeros((20, 30), np.int64)
    labels[:, 20:] = 2
    np.testing.assert_array_equal(np.asarray(overlay(image, labels, table, 0.0)), image)
    full = np.asarray(overlay(image, labels, table, 1.0))
    assert tuple(full[0, 0]) == (255, 0, 0) and tuple(full[0, 25]) == (0, 0, 255)
    assert tuple(np.asarray(overlay(image, labels, table, 0.5))[0, 0]) == (178, 50, 50)  # rint(0.5*100 + 0.5*255)
    indexed = label_image(labels, table)
    assert indexed.mode == "P" and tuple(np.asarray(indexed.convert("RGB"))[0, 25]) == (0, 0, 255)
    legend = np.asarray(with_legend(Image.fromarray(image), labels, table))
    assert legend.shape[0] == 20 and legend.shape[1] > 30
    panel = legend[:, 30:].reshape(-1, 3)
    colours = {tuple(c) for c in panel}
    assert (255, 0, 0) in colours and (0, 0, 255) in colours and (0, 255, 0) not in colours  # class b absent


def _video(path: Path, frames: int, size: tuple[int, int]) -> None:
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.height, stream.width, stream.pix_fmt = *size, "yuv420p"
        for _ in range(frames):
            picture = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _run(args: list[str], capsys) -> tuple[int, str, str]:
    with one_thread():
        try:
            code = main(args)
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_every_output_and_lists_the_unreadable(
    weights: Path, photo: np.ndarray, tmp_path: Path, capsys
) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(tmp_path / "in" / "a.jpg")
    Image.fromarray(photo[:31, :45]).save(tmp_path / "in" / "sub" / "b.png")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a JPEG")
    (tmp_path / "in" / "notes.txt").write_text("not read")
    _video(tmp_path / "clip.mp4", 3, (30, 42))
    out = tmp_path / "out"
    inputs = [str(tmp_path / "in"), str(tmp_path / "clip.mp4")]
    options = ["--base-size", str(BASE), "--legend", "--probabilities", "--device", "cpu"]
    code, stdout, stderr = _run([*inputs, "--weights", str(weights), "-o", str(out), *options], capsys)
    assert code == 2
    assert "broken.jpg" in stderr and "1 input(s) could not be read" in stderr
    assert "3 of 4 input(s)" in stdout and "1 file(s) in the folders are neither" in stdout
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a_labels.png", "a_overlay.jpg", "a_probs.npy", "clip_overlay.mp4",
                       "sub/b_labels.png", "sub/b_overlay.jpg", "sub/b_probs.npy"]
    labels = Image.open(out / "a_labels.png")
    assert labels.mode == "P" and labels.size == (70, 50)
    assert tuple(labels.getpalette()[:6]) == (120, 120, 120, 180, 120, 120)  # ADE20K's wall, building
    probs = np.load(out / "a_probs.npy")
    assert probs.shape == (150, 50, 70) and probs.dtype == np.float16
    chosen = np.take_along_axis(probs, np.asarray(labels).astype(np.int64)[None], 0)[0]
    np.testing.assert_array_equal(chosen, probs.max(0))  # each label is a most probable class (fp16 ties allowed)
    assert Image.open(out / "a_overlay.jpg").width > 70  # the legend panel
    import av

    with av.open(str(out / "clip_overlay.mp4")) as video:
        stream = video.streams.video[0]
        assert (stream.height, stream.width) == (30, 42) and sum(1 for _ in video.decode(stream)) == 3


@pytest.mark.parametrize("args, words", [
    (["missing.jpg"], "missing.jpg does not exist"),
    (["IMG", "--opacity", "1.5"], "--opacity"),
    (["IMG", "--scales", "x"], "--scales"),
    (["IMG", "--weights-override"], "unrecognized"),
])
def test_cli_bad_arguments_give_one_line_and_write_nothing(weights: Path, photo: np.ndarray, tmp_path: Path, capsys,
                                                         args: list[str], words: str) -> None:
    Image.fromarray(photo).save(tmp_path / "p.png")
    args = [str(tmp_path / "p.png") if a == "IMG" else str(tmp_path / a) if a.endswith(".jpg") else a for a in args]
    out = tmp_path / "out"
    code, _, stderr = _run([*args, "--weights", str(weights), "-o", str(out), "--base-size", str(BASE)], capsys)
    assert code == 2 and stderr.count("\n") == 1 and stderr.startswith("port.predict: error: ") and words in stderr
    assert not out.exists()


def test_cli_bad_weights_file(tmp_path: Path, photo: np.ndarray, capsys) -> None:
    Image.fromarray(photo).save(tmp_path / "p.png")
    (tmp_path / "w.safetensors").write_bytes(b"\x00" * 64)
    args = [str(tmp_path / "p.png"), "--weights", str(tmp_path / "w.safetensors"), "-o", str(tmp_path / "o")]
    code, _, stderr = _run(args, capsys)
    assert code == 2 and stderr.count("\n") == 1 and "w.safetensors" in stderr and not (tmp_path / "o").exists()


def test_console_script_runs_as_a_process(weights: Path, photo: np.ndarray, tmp_path: Path) -> None:
    Image.fromarray(photo).save(tmp_path / "p.png")
    done = subprocess.run([sys.executable, "-m", "port.predict", str(tmp_path / "p.png"), "--weights", str(weights),
                           "-o", str(tmp_path / "o"), "--base-size", str(BASE), "--no-flip"],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "p_labels.png").is_file()


def test_a_broken_video_is_listed_and_leaves_no_file(weights: Path, tmp_path: Path, capsys) -> None:
    _video(tmp_path / "clip.mp4", 6, (30, 42))
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) is at the end: unreadable
    (tmp_path / "noise.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    out = tmp_path / "out"
    code, _, stderr = _run([str(tmp_path / "cut.mp4"), str(tmp_path / "noise.mp4"), "--weights", str(weights), "-o",
                            str(out), "--base-size", str(BASE), "--device", "cpu"], capsys)
    assert code == 2 and "cut.mp4" in stderr and "noise.mp4" in stderr
    assert not [p for p in out.rglob("*") if p.is_file()]
