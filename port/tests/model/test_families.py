"""hszhao/semseg and mmsegmentation PSANet checkpoints: the key tables both ways, the configuration inferred from
keys and shapes, each family's forward against an independent functional oracle of its own code (reduced width,
BN-calibrated random weights), their input contracts, and one-line refusals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import port
from port.calibrate import calibrate_bn
from port.config import PSANetConfig
from port.contracts import CAFFE, IMAGENET_RGB, contract_of
from port.evaluate.inference import InferenceSettings, predict, to_network_input
from port.io import WeightsFileError
from port.model.family_names import key_table, to_ours, to_theirs
from port.model.psanet import PSANet
from port.tests.support.families import family_forward

pytestmark = pytest.mark.usefixtures("extension")

CONFIGS = {  # reduced-width models with each family's released layout (ADE20K: 150 classes)
    "semseg": PSANetConfig(family="semseg", depth=50, num_classes=150, crop=465, width_divisor=16, aux=True,
                           bn_momentum=0.9),
    "mmseg": PSANetConfig(family="mmseg", depth=50, num_classes=150, crop=512, width_divisor=16, aux=True,
                          bn_momentum=0.9, stem_widths=(32, 32, 64), mask_size=(66, 66)),
}
SIZES = {"semseg": [(65, 65), (81, 97)], "mmseg": [(64, 64), (65, 65), (72, 65), (97, 80)]}


def _calibrated(family: str) -> PSANet:
    torch.manual_seed(0)
    model = PSANet(CONFIGS[family]).double()
    calibrate_bn(model, torch.randn(2, 3, 65, 65, dtype=torch.float64))  # the contract's unit-scale inputs
    return model.eval()


def _checkpoint(model: PSANet, path: Path) -> Path:
    """The model as its family's training script saves it."""
    theirs = {k: v.float() if v.is_floating_point() else v for k, v in to_theirs(model.state_dict(), model.cfg).items()}
    if model.cfg.family == "semseg":  # train.py: DataParallel names, epoch and optimizer beside the state_dict
        blob = {"epoch": 100, "state_dict": {f"module.{k}": v for k, v in theirs.items()}, "optimizer": {"state": {}}}
    else:
        blob = {"meta": {"dataset_meta": {"classes": [f"c{i}" for i in range(150)]}}, "state_dict": theirs}
    torch.save(blob, path)
    return path


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def family_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[PSANet, Path]:
    model = _calibrated(request.param)
    return model, _checkpoint(model, tmp_path_factory.mktemp(request.param) / "model.pth")


@pytest.mark.parametrize("family", sorted(CONFIGS))
def test_key_table_is_one_to_one(family: str) -> None:
    cfg = CONFIGS[family]
    ours = PSANet(cfg).state_dict()
    table = key_table(cfg)
    assert len(set(table.values())) == len(table) == len(ours) and set(table.values()) == set(ours)
    theirs = to_theirs(ours, cfg)
    assert sum(k.endswith("num_batches_tracked") for k in theirs) == sum(k.endswith("running_var") for k in ours)
    back = to_ours(theirs, cfg)
    assert back.keys() == ours.keys() and all(back[k] is ours[k] for k in ours)
    with pytest.raises(ValueError, match="lacks"):
        to_ours({k: v for k, v in theirs.items() if "conv_seg" not in k and "cls.4" not in k}, cfg)
    with pytest.raises(ValueError, match="has tensors no"):
        to_ours({**theirs, "decode_head.extra.weight": torch.zeros(1)}, cfg)


def test_their_key_names() -> None:
    """Spot checks of the tables against the names in the families' sources."""
    semseg, mmseg = key_table(CONFIGS["semseg"]), key_table(CONFIGS["mmseg"])
    assert semseg["layer0.6.weight"] == "conv1_3_3x3.conv.weight"
    assert semseg["layer3.0.downsample.1.running_var"] == "conv4.1.proj.bn.running_var"
    assert semseg["psa.attention_p.3.weight"] == "psa.DISTRIBUTE.fc2.weight"
    assert semseg["psa.proj.1.bias"] == "conv_post_PSA.bn.bias" and semseg["aux.4.bias"] == "conv6_aux.bias"
    assert mmseg["backbone.stem.4.weight"] == "conv1_2_3x3.bn.weight"
    assert mmseg["decode_head.attention.0.conv.weight"] == "psa.COLLECT.fc1.conv.weight"
    assert mmseg["decode_head.attention_p.1.weight"] == "psa.DISTRIBUTE.fc2.weight"
    assert mmseg["decode_head.bottleneck.bn.running_mean"] == "conv5_4.bn.running_mean"
    assert mmseg["auxiliary_head.convs.0.conv.weight"] == "conv4_aux_3x3.conv.weight"


def test_load_infers_the_configuration(family_model: tuple[PSANet, Path]) -> None:
    model, path = family_model
    loaded = port.load(path)
    assert loaded.cfg == model.cfg.with_(mask_size=loaded.cfg.mask_size)
    assert loaded.cfg.resolved_mask_size == model.cfg.resolved_mask_size
    assert loaded.source["family"] == model.cfg.family and loaded.source["dataset"] == "ade20k"
    if model.cfg.family == "mmseg":
        assert loaded.source["class_names"][:2] == ["c0", "c1"]
    assert all(torch.equal(loaded.state_dict()[k], v.float()) for k, v in model.state_dict().items())


def test_forward_matches_their_code(family_model: tuple[PSANet, Path]) -> None:
    """Logits of the loaded model and of the oracle of the family's own forward, at sizes that take each branch of
    mmseg's resize rule (even, odd, mixed sides)."""
    model, path = family_model
    loaded = port.load(path).double()
    theirs = {k.removeprefix("module."): v.double() if v.is_floating_point() else v
              for k, v in torch.load(path, weights_only=True)["state_dict"].items()}
    for rows, cols in SIZES[model.cfg.family]:
        x = torch.randn(1, 3, rows, cols, dtype=torch.float64, generator=torch.Generator().manual_seed(rows))
        with torch.no_grad():
            got, expected = loaded(x), family_forward(theirs, x, model.cfg.family, model.cfg.resolved_mask_size)
        assert got.shape == expected.shape
        scale = expected.abs().max().item()
        assert scale > 1e-3 and (got - expected).abs().max().item() <= 1e-9 * scale, (rows, cols)


def test_fast_path_and_float32_on_imported_models(family_model: tuple[PSANet, Path]) -> None:
    from port.optimize import for_inference

    model, path = family_model
    loaded = port.load(path)
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        reference, fast = model(x.double()), for_inference(loaded)(x)
    assert (fast.double() - reference).abs().max() <= 1e-4 * reference.abs().max()


def test_contracts() -> None:
    assert contract_of(CONFIGS["semseg"]) is contract_of(CONFIGS["mmseg"]) is IMAGENET_RGB
    assert contract_of(PSANetConfig()) is CAFFE
    image = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    got = to_network_input(image, 9, IMAGENET_RGB).numpy()
    expected = (image.astype(np.float32) - np.float32([123.675, 116.28, 103.53])) / np.float32([58.395, 57.12, 57.375])
    np.testing.assert_array_equal(got[:, :, :7], expected[:, :7].transpose(2, 0, 1))
    assert np.all(got[:, :, 7:] == 0)  # padded with the mean
    caffe = to_network_input(image, 9).numpy()
    np.testing.assert_array_equal(caffe[:, :, :7], (image.astype(np.float32) - np.float32(CAFFE.mean_rgb))[..., ::-1]
                                  .transpose(2, 0, 1))


def test_the_wrong_contract_changes_the_labels(family_model: tuple[PSANet, Path]) -> None:
    """The procedure with the family's contract gives the oracle's labels on the contract's input; the Caffe
    release's contract (BGR, mean only) fed to the same weights gives other labels."""
    model, path = family_model
    loaded = port.load(path)
    image = np.random.default_rng(1).integers(0, 256, (65, 65, 3), dtype=np.uint8)
    settings = InferenceSettings(65, 150, 64, flip=False, contract=contract_of(loaded.cfg))
    right = predict(loaded, image, settings, torch.device("cpu"))
    wrong = predict(loaded, image, InferenceSettings(65, 150, 64, flip=False), torch.device("cpu"))
    theirs = {k: v.double() if v.is_floating_point() else v
              for k, v in to_theirs(loaded.state_dict(), loaded.cfg).items()}
    x = torch.from_numpy((image - np.float64(IMAGENET_RGB.mean_rgb)) / np.float64(IMAGENET_RGB.std_rgb))
    with torch.no_grad():
        oracle = family_forward(theirs, x.permute(2, 0, 1)[None], model.cfg.family, model.cfg.resolved_mask_size)
    assert (right == oracle[0].argmax(0).numpy()).mean() > 0.999
    assert (wrong != right).mean() > 0.05


def test_refusals(family_model: tuple[PSANet, Path], tmp_path: Path) -> None:
    model, path = family_model
    other = "mmseg" if model.cfg.family == "semseg" else "semseg"
    with pytest.raises(WeightsFileError, match=f"is a {model.cfg.family} checkpoint, not {other}"):
        port.load(path, family=other)
    blob = torch.load(path, weights_only=True)
    state = {k: v for k, v in blob["state_dict"].items() if "reduce_p" not in k and "attention_p" not in k}
    proj = next(k for k in state if k.endswith(("psa.proj.0.weight", "decode_head.proj.conv.weight")))
    blob["state_dict"] = {**state, proj: state[proj][:, : state[proj].shape[1] // 2]}
    torch.save(blob, tmp_path / "one.pth")
    with pytest.raises(WeightsFileError, match="one PSA branch, COLLECT or DISTRIBUTE"):
        port.load(tmp_path / "one.pth")
    assert port.load(tmp_path / "one.pth", branches=("COLLECT",)).cfg.branches == ("COLLECT",)
    blob["state_dict"] = {k.replace("layer3.", "layer9."): v for k, v in blob["state_dict"].items()}
    torch.save(blob, tmp_path / "bad.pth")
    with pytest.raises(WeightsFileError, match="layer3 has 0 blocks"):
        port.load(tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="odd in the Caffe layer"):
        PSANetConfig(mask_size=(6, 6))  # the Caffe layer's CHECK: odd masks only in the Caffe release


def test_export_runs_in_onnxruntime(family_model: tuple[PSANet, Path], tmp_path: Path) -> None:
    """One dynamic export per family, run at two sizes of its side form (mmseg: its 512 crop's 16k), within the
    deploy issue's 1e-4 of max|logits|; the graph refuses the other parity."""
    pytest.importorskip("onnxruntime")
    from port.export.graph import ExportError, contract_for, export_onnx
    from port.export.runtime import procedure_net

    _, path = family_model
    model = port.load(path)
    contract = contract_for(model.cfg)
    assert contract.form == ("16k" if model.cfg.family == "mmseg" else "16k+1")
    graph = procedure_net(export_onnx(model, tmp_path / "m.onnx", contract, {"source": model.source}), None)
    assert graph.cfg == model.cfg
    for side in (64, 96) if model.cfg.family == "mmseg" else (65, 97):
        x = torch.randn(1, 3, side, side + 16)
        with torch.no_grad():
            expected, got = model(x), graph(x)
        assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()
    with pytest.raises(ExportError, match="is not 16k"):
        graph(torch.randn(1, 3, 65, 65)) if model.cfg.family == "mmseg" else graph(torch.randn(1, 3, 64, 64))


def test_the_trainer_refuses_other_families(family_model: tuple[PSANet, Path]) -> None:
    """The trainer trains the Caffe release's network: another family's weights as --init are refused by name."""
    from port.train.finetune import load_start, read_start

    _, path = family_model
    start = read_start(path)
    assert start is not None and start.config.family == CONFIGS[start.config.family].family
    target = PSANet(PSANetConfig(depth=50, num_classes=150, width_divisor=16))
    with pytest.raises(ValueError, match=f"is a {start.config.family} PSANet; the trainer trains the Caffe release"):
        load_start(target, start)


def test_evaluate_cli_reads_their_checkpoints(family_model: tuple[PSANet, Path], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m port.evaluate --weights their.pth` scores them by the authors' procedure, fed their contract."""
    from port.evaluate.cli import main
    from port.tests.support.evaluate import write_ade20k

    _, path = family_model
    write_ade20k(tmp_path / "ade", [(40, 30)])
    argv = ["--dataset", "ade20k", "--data-root", str(tmp_path / "ade"), "--weights", str(path), "--base-size", "48",
            "--out", str(tmp_path / "pred")]
    assert main(argv) == 0
    assert "mIoU" in capsys.readouterr().out
    assert main([*argv, "--config", '{"branches": 2}']) == 2
    assert "config branches=2 is not of type tuple[str, ...]" in capsys.readouterr().err
    assert main([*argv, "--config", '{"crops": 465}']) == 2
    assert "unknown config key 'crops'" in capsys.readouterr().err
