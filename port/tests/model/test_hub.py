"""hubconf.py through torch.hub itself (source="local"): every variant listed, local weights loaded, no download."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from port.io import WeightsFileError, save_weights
from port.model import create_model
from port.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[3]
SMALL = {"width_divisor": 32, "crop": 33}


def test_every_variant_and_the_released_short_names_are_listed() -> None:
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # what torch.hub.list reports (it has no source="local"): the module's public callables
    listed = {name for name in dir(hubconf) if callable(getattr(hubconf, name)) and not name.startswith("_")}
    released = {"psanet50_ade20k", "psanet101_ade20k", "psanet50_voc2012", "psanet101_voc2012", "psanet50_cityscapes",
                "psanet101_cityscapes", "pspnet50_ade20k", "pspnet101_voc2012", "pspnet101_cityscapes"}
    assert listed == set(VARIANTS) | released


@pytest.mark.parametrize("name", ["psanet50_ade20k_465", "psanet50_ade20k"])
def test_loads_local_weights_exactly(name: str, tmp_path: Path) -> None:
    torch.manual_seed(3)
    model = create_model("psanet50_ade20k_465", **SMALL)
    path = save_weights(tmp_path / "w.safetensors", model.state_dict(), model.cfg)
    hub = torch.hub.load(str(ROOT), name, source="local", weights=str(path), **SMALL)
    assert hub.variant is VARIANTS["psanet50_ade20k_465"] and not hub.training
    expected = model.state_dict()
    assert hub.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[key]) for key, value in hub.state_dict().items())


def test_weights_of_another_variant_are_refused(tmp_path: Path) -> None:
    model = create_model("psanet50_voc2012_465", **SMALL)
    path = save_weights(tmp_path / "voc.safetensors", model.state_dict(), model.cfg)
    with pytest.raises(WeightsFileError, match=r"voc.safetensors holds another model than psanet50_ade20k_465: "
                       r"num_classes 21 \(asked 150\), shrink_factor 1 \(asked 2\); port.load"):
        torch.hub.load(str(ROOT), "psanet50_ade20k", source="local", weights=str(path), **SMALL)


def test_pretrained_asks_for_a_converted_file_instead_of_downloading() -> None:
    with pytest.raises(ValueError, match="nothing is downloaded.*caffe2torch"):
        torch.hub.load(str(ROOT), "psanet101_ade20k", source="local", pretrained=True)


def test_an_unknown_name_suggests_the_nearest_variant() -> None:
    """The hub's short name (psanet101_ade20k) given to create_model: it names the full one."""
    with pytest.raises(KeyError, match=r"^\"unknown PSANet variant 'psanet101_ade20k'; did you mean "
                                       r"psanet101_ade20k_465\? known: psanet101_ade20k_465, "):
        create_model("psanet101_ade20k")
    with pytest.raises(KeyError, match=r"^\"unknown PSANet variant 'resnet50'; known: "):
        create_model("resnet50")
