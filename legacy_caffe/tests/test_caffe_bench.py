"""legacy_caffe/bench: the self-contained caffe_bench bundle times what the benchmark workers time through pycaffe."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bench import caffe_binary
from bench.common import run_worker
from bench.end_to_end import WORKER as E2E_WORKER
from bench.end_to_end import prepare as prepare_deploy
from bench.train_step import WORKER as TRAIN_WORKER
from bench.train_step import prepare as prepare_train

pytestmark = pytest.mark.caffe

ROOT = Path(__file__).resolve().parents[2]
GLIBC = ("linux-vdso", "ld-linux", "libc.", "libm.", "libdl.", "libpthread.", "librt.", "libresolv.")
VARIANT = "psanet101_ade20k_465"
WIDTH = 16  # a thin network: the calls and files are the benchmark's, the FLOPs 1/256 of them


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bundle") / "caffe_bench"
    subprocess.run(["bash", str(ROOT / "legacy_caffe/bench/bundle.sh"), str(folder)], check=True, capture_output=True)
    return folder


def run(bundle: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {"GLOG_minloglevel": "2", "OPENBLAS_NUM_THREADS": "1"}  # nothing else: no Python, no library paths
    return subprocess.run([str(bundle / "caffe_bench"), *map(str, args)], capture_output=True, text=True, env=env)


def test_bundle_needs_only_the_c_library_from_the_host(bundle: Path) -> None:
    import caffe._caffe

    listing = subprocess.run(
        ["ldd", str(bundle / "lib/caffe_bench")], capture_output=True, text=True, check=True,
        env={"LD_LIBRARY_PATH": str(bundle / "lib")},
    ).stdout
    resolved = [line.split() for line in listing.splitlines() if "=>" in line]
    inside = f"{bundle}/lib/"
    outside = [name for name, _, path, *_ in resolved if not path.startswith(inside) and not name.startswith(GLIBC)]
    assert not outside and len(resolved) > 20, listing
    assert any(name.startswith("libopenblas") for name, *_ in resolved)
    assert (bundle / "lib/_caffe.so").read_bytes() == Path(caffe._caffe.__file__).read_bytes()


@pytest.mark.skipif(os.geteuid() != 0, reason="chroot needs root")
def test_bundle_runs_in_a_root_holding_only_the_c_library(bundle: Path, deploy: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(bundle, root / "cb", copy_function=os.link)
    listing = subprocess.run(["ldd", str(bundle / "lib/caffe_bench"), "/bin/sh"], capture_output=True, text=True,
                             env={"LD_LIBRARY_PATH": str(bundle / "lib")}, check=True).stdout
    host = {Path(word) for word in listing.split()  # the libraries resolved outside the bundle, not ldd's file headers
            if word.startswith("/") and not word.endswith(":") and not word.startswith(str(bundle))}
    assert host and all(path.name.startswith(GLIBC) for path in host), host  # the C library's, and nothing else
    for path in (*host, Path("/bin/sh")):
        (root / path.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path.resolve(), root / path.relative_to("/"))
    for name in ("deploy.prototxt", "weights.caffemodel", "input.npy"):
        os.link(deploy / name, root / name)

    def args(folder: str) -> list[str]:
        return ["forward", "--model", f"{folder}/deploy.prototxt", "--weights", f"{folder}/weights.caffemodel",
                "--input", f"data={folder}/input.npy", "--save", f"conv6_zoom={folder}/out.npy", "--warmup", "0"]

    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    env = {"GLOG_minloglevel": "2", "OPENBLAS_NUM_THREADS": "1"}
    inside = subprocess.run([chroot, str(root), "/cb/caffe_bench", *args("")], capture_output=True, text=True, env=env)
    assert inside.returncode == 0 and inside.stdout.startswith("RESULT "), inside.stderr
    chrooted = np.load(root / "out.npy")
    outside = run(bundle, *args(str(root)))  # the same files, on this host's paths
    assert outside.returncode == 0, outside.stderr
    assert chrooted.shape == (1, 150, 465, 465) and np.abs(chrooted).max() > 0
    np.testing.assert_array_equal(chrooted, np.load(root / "out.npy"))


def worker_run(job: dict, worker: str, binary: Path | None, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The worker process's caffe row as the benchmarks run it, one OpenBLAS thread: through `binary` or pycaffe."""
    if binary is None:
        monkeypatch.delenv(caffe_binary.ENV, raising=False)
    else:
        monkeypatch.setenv(caffe_binary.ENV, str(binary / "caffe_bench"))
    result = run_worker(worker, {**job, "mode": "caffe", "threads": 1}, 1)
    assert "error" not in result, result
    return result


def test_forward_row_equals_pycaffe(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_deploy(tmp_path, VARIANT, batch=2, seed=0, width_divisor=WIDTH)  # two images: the first is the input
    job = {"workdir": str(tmp_path), "warmup": 0, "reps": 2}
    outputs = []
    for binary in (None, bundle):
        result = worker_run(job, E2E_WORKER, binary, monkeypatch)
        assert result["seconds"]["1"] > 0 and result["peak_rss"] > 50e6 and result["roof"]["fp32"] > 0
        outputs.append(np.load(tmp_path / "caffe.npy"))
        (tmp_path / "caffe.npy").unlink()
    assert outputs[0].shape == (1, 150, 465, 465) and np.abs(outputs[0]).max() > 0
    np.testing.assert_array_equal(outputs[1], outputs[0])  # the same Caffe library, input and thread count


def test_step_row_equals_pycaffe(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = prepare_train(tmp_path, VARIANT, seed=0, width_divisor=WIDTH, batch=1)
    with open(tmp_path / "solver.prototxt", "a") as solver:
        solver.write("random_seed: 7\n")  # the same dropout masks in both processes
    job = {"workdir": str(tmp_path), "warmup": 1, "reps": 2, "config": config, "dataset": "ade20k"}
    pycaffe, binary = (worker_run(job, TRAIN_WORKER, binary, monkeypatch) for binary in (None, bundle))
    # The loss of the third step depends on the first two updates: the same loss means the same solver.
    assert np.isfinite(pycaffe["loss"]) and pycaffe["loss"] > 1.0
    assert binary["loss"] == pycaffe["loss"]
    assert binary["peak_rss"] > 50e6 and binary["seconds"] > 0


@pytest.fixture(scope="module")
def deploy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("deploy")
    prepare_deploy(work, VARIANT, batch=1, seed=0, width_divisor=WIDTH)
    return work


@pytest.mark.parametrize(
    "case, message",
    [
        ("wrong shape", "input data from {input}: shape (1, 3, 400, 465) does not fit the blob's (1, 3, 465, 465)"),
        ("float64", "{input}: dtype '<f8', caffe_bench reads float32 ('<f4') arrays only"),
        ("truncated", "{input}: truncated ((1, 3, 465, 465) float32 values announced)"),
        ("not npy", "{input}: not a .npy file"),
        ("no weights", "weights {work}/missing.caffemodel: cannot be read"),
        ("unknown blob", "the net has no blob 'nope'"),
        ("bad flag", "unknown flag --rep"),
        ("bad count", "--reps wants a count, got 'two'"),
    ],
)
def test_bad_input_is_one_error_line(bundle: Path, deploy: Path, tmp_path: Path, case: str, message: str) -> None:
    image = np.load(deploy / "input.npy")
    bad = tmp_path / "input.npy"
    weights = deploy / "weights.caffemodel"
    if case == "wrong shape":
        np.save(bad, image[:, :, :400])
    elif case == "float64":
        np.save(bad, image.astype(np.float64))
    elif case == "truncated":
        np.save(bad, image)
        bad.write_bytes(bad.read_bytes()[:-4])
    elif case == "not npy":
        bad.write_text("not an array\n")
    else:
        np.save(bad, image)
    if case == "no weights":
        weights = tmp_path / "missing.caffemodel"
    flags = {"unknown blob": ["--save", f"nope={tmp_path / 'x.npy'}"], "bad flag": ["--rep", "2"],
             "bad count": ["--reps", "two"]}
    done = run(bundle, "forward", "--model", deploy / "deploy.prototxt", "--weights", weights, "--input", f"data={bad}",
               "--warmup", "0", *flags.get(case, []))
    assert done.returncode == 2 and not done.stdout
    assert done.stderr == f"caffe_bench: error: {message.format(input=bad, work=tmp_path)}\n"
    assert not (tmp_path / "x.npy").exists()


def test_worker_names_the_failing_binary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundle: Path) -> None:
    monkeypatch.setenv(caffe_binary.ENV, str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="PSANET_CAFFE_BENCH=.*absent: no executable there"):
        caffe_binary.binary()
    monkeypatch.setenv(caffe_binary.ENV, str(bundle / "caffe_bench"))
    failed = r"caffe_bench forward failed \(exit 2\): caffe_bench: error: model .*none.prototxt: cannot be read"
    with pytest.raises(RuntimeError, match=failed):
        caffe_binary.run(bundle / "caffe_bench", "forward", "--model", str(tmp_path / "none.prototxt"),
                         "--weights", os.devnull, warmup=0, reps=1)


def test_failed_bundle_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    done = subprocess.run(["bash", str(ROOT / "legacy_caffe/bench/bundle.sh"), str(target), "--tar"],
                          capture_output=True, text=True, env={**os.environ, "CXX": "false"})
    assert done.returncode == 2
    assert done.stderr == "[caffe-bundle] error: compiling caffe_bench.cpp failed\n"
    assert list(tmp_path.iterdir()) == []
