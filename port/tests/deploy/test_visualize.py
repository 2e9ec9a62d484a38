"""`python -m port.visualize` on a real tiny PSANet: figure layout, attention maps, errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from port.io import save_weights
from port.model import PSANet
from port.variants import dataset_config
from port.visualize import attention_columns, attention_maps, main

CROP = 129


def _weights(tmp_path: Path, **changes: object) -> Path:
    torch.manual_seed(0)
    cfg = dataset_config("ade20k", 50, width_divisor=32, **changes).with_(crop=CROP)
    path = tmp_path / "tiny.safetensors"
    save_weights(path, PSANet(cfg).state_dict(), cfg)
    return path


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(path)
    return path


def test_figure_has_image_and_both_branches(tmp_path: Path, image: Path) -> None:
    out = tmp_path / "fig.png"
    assert (
        main(["--weights", str(_weights(tmp_path)), "--image", str(image), "--pixel", "30", "40", "--out", str(out)])
        == 0
    )
    figure = Image.open(out)
    assert figure.size == (3 * 80, 60 + 18)


def _eq9_column(mask: torch.Tensor, branch: str, y: int, x: int) -> torch.Tensor:
    """Softmaxed weights that target (y, x) gives each source (a, b), written from paper Eq. 9 with loops.

    COLLECT reads the target's own mask at offset (a - y, b - x); DISTRIBUTE reads the source's
    mask at offset (y - a, x - b). Sources outside the mask window get 0 before the softmax.
    """
    channels, h, w = mask.shape[1:]
    side = int(round(channels**0.5))
    half = (side - 1) // 2
    raw = torch.zeros(h, w)
    for a in range(h):
        for b in range(w):
            if branch == "COLLECT":
                dy, dx, at = a - y + half, b - x + half, (y, x)
            else:
                dy, dx, at = y - a + half, x - b + half, (a, b)
            if 0 <= dy < side and 0 <= dx < side:
                raw[a, b] = mask[0, dy * side + dx, at[0], at[1]]
    return torch.softmax(raw.reshape(-1), 0).reshape(h, w)


def test_attention_columns_follow_eq9(tmp_path: Path, image: Path) -> None:
    import port.model

    net = port.model.load(_weights(tmp_path))
    rgb = np.asarray(Image.open(image))
    masks = {}
    for name in ("COLLECT", "DISTRIBUTE"):
        net.psa[name].fc2.register_forward_hook(lambda _m, _i, out, name=name: masks.__setitem__(name, out.clone()))
    # 60x80 fits the 129 crop as 97x129; pixel (30, 40) -> (48.5, 64.5) input -> grid 9x9 step 16 -> (3, 4).
    columns, size = attention_columns(net, rgb, (30, 40))
    assert size == (97, 129)
    for name, grid in columns.items():
        torch.testing.assert_close(grid, _eq9_column(masks[name], name, 3, 4))
    maps = attention_maps(net, rgb, (30, 40))
    assert set(maps) == {"COLLECT", "DISTRIBUTE"} and all(m.shape == (60, 80) for m in maps.values())


def test_model_without_psa_branch_is_refused(tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = _weights(tmp_path, branches=())
    code = main(
        ["--weights", str(weights), "--image", str(image), "--pixel", "1", "1", "--out", str(tmp_path / "f.png")]
    )
    assert code == 2 and "no PSA branch" in capsys.readouterr().err
    assert not (tmp_path / "f.png").exists()


def test_pixel_outside_the_image_is_refused(tmp_path: Path, image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--weights", str(_weights(tmp_path)), "--image", str(image), "--pixel", "60", "0",
                 "--out", str(tmp_path / "f.png")])
    assert code == 2 and "outside" in capsys.readouterr().err


def test_an_exported_graph_is_refused_naming_the_weights(tmp_path: Path, image: Path, capsys) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"not read: the suffix says what it is")
    code = main(["--weights", str(graph), "--image", str(image), "--pixel", "1", "1", "--out", str(tmp_path / "f.png")])
    err = capsys.readouterr().err
    assert code == 2 and "exported graph" in err and "PyTorch weights" in err and err.count("\n") == 1
    assert not (tmp_path / "f.png").exists()
