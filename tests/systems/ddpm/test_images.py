"""Image data: readers on files written here in the real formats and torchvision's layout,
downloads from a local HTTP server (checksums, interruptions), safe extraction, and the
restricted unpickler."""

import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import threading

import numpy as np
import pytest
import torch

from rdlens import images
from rdlens.errors import ConfigError


def idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_mnist(root, folder="MNIST/raw", n=5, gz=True):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    d = root / folder
    d.mkdir(parents=True)
    for prefix in ("train", "t10k"):
        for kind, arr in (("images-idx3", imgs), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (d / (name + ".gz")).write_bytes(gzip.compress(data))
            else:
                (d / name).write_bytes(data)
    return imgs


def cifar_batch_bytes(n=4, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return pickle.dumps({b"batch_label": b"x", b"data": data, b"labels": list(range(n))}, protocol=2), data


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name, folder", [("mnist", "MNIST/raw"), ("fashion-mnist", "FashionMNIST/raw")])
def test_mnist_like_read_from_torchvision_layout_padded_and_scaled(tmp_path, gz, name, folder):
    imgs = write_mnist(tmp_path, folder, gz=gz)
    x = images.load(name, tmp_path)
    assert x.shape == (5, 1, 32, 32) and x.dtype == torch.float32
    assert torch.all(x[:, :, :2] == -1) and torch.all(x[:, :, :, -2:] == -1)  # 2-pixel padding
    np.testing.assert_allclose(x[:, 0, 2:30, 2:30].numpy(), imgs / 255.0 * 2 - 1, atol=1e-6)
    assert images.is_present(name, tmp_path)


def test_idx_reader_checks_header_against_size(tmp_path):
    (tmp_path / "bad").write_bytes(idx_bytes(np.zeros((2, 3), np.uint8))[:-1])
    with pytest.raises(ConfigError, match="header says"):
        images.read_idx(tmp_path / "bad")
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ConfigError, match="not an IDX"):
        images.read_idx(tmp_path / "junk")


def test_cifar10_read_from_python_batches(tmp_path):
    folder = tmp_path / images.CIFAR_FOLDER
    folder.mkdir()
    first = None
    for k, name in enumerate(images.CIFAR_TRAIN + (images.CIFAR_TEST,)):
        raw, data = cifar_batch_bytes(seed=k)
        (folder / name).write_bytes(raw)
        first = data if first is None else first
    x = images.load("cifar10", tmp_path)
    assert x.shape == (20, 3, 32, 32)
    np.testing.assert_allclose(x[0].numpy(), first[0].reshape(3, 32, 32) / 255.0 * 2 - 1, atol=1e-6)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_imports_anything_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(ConfigError, match="refused to load"):
        images.read_cifar_batch(path)


def test_missing_dataset_names_the_folder_and_the_download_command(tmp_path):
    with pytest.raises(ConfigError) as info:
        images.load("fashion-mnist", tmp_path)
    msg = str(info.value)
    assert str(tmp_path / "FashionMNIST" / "raw") in msg and "rdlens data download fashion-mnist" in msg


def test_offline_digits_are_real_handwriting_in_range():
    x = images.load("digits")
    assert x.shape == (1797, 1, 32, 32) and x.min() == -1 and x.max() <= 1
    assert torch.all(x[:, :, :2] == -1)
    assert 0.1 < ((x + 1) / 2).mean() < 0.4  # dark background, bright strokes


def test_turing_images_are_patterns_in_range():
    x = images.make_turing(6, seed=1, steps=2000)
    assert x.shape == (6, 1, 32, 32) and x.min() == -1 and x.max() == 1
    assert all(img.std() > 0.2 for img in x)  # structured, not flat


# ---- downloads against a local server -------------------------------------------------------


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 serving {path: bytes}; '/short/...' lies about its length."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            claimed = len(body) * 2 if self.path.startswith("/short/") else len(body)
            self.send_header("Content-Length", str(claimed))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield files, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def fake_mnist_source(monkeypatch, payloads):
    names = [n for n, _ in images.SOURCES["mnist"].files]
    src = images.Source("MNIST/raw", ("unused",), tuple((n, md5(payloads[n])) for n in names))
    monkeypatch.setitem(images.SOURCES, "mnist", src)
    return names


def mnist_payloads():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    labels = np.array([1, 2, 3], np.uint8)
    return {f"{p}-{k}-ubyte.gz": gzip.compress(idx_bytes(a))
            for p in ("train", "t10k") for k, a in (("images-idx3", imgs), ("labels-idx1", labels))}


def test_download_with_good_checksums_puts_files_in_place(tmp_path, server, monkeypatch):
    files, url = server
    payloads = mnist_payloads()
    names = fake_mnist_source(monkeypatch, payloads)
    for n in names:
        files[f"/m/{n}"] = payloads[n]
    folder = images.download("mnist", tmp_path, mirror=url + "/m/")
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)
    assert images.load("mnist", tmp_path).shape == (3, 1, 32, 32)


def test_bad_checksum_is_an_error_and_leaves_nothing(tmp_path, server, monkeypatch):
    files, url = server
    payloads = mnist_payloads()
    names = fake_mnist_source(monkeypatch, payloads)
    for n in names:
        files[f"/m/{n}"] = payloads[n] + b"tampered"
    with pytest.raises(images.DownloadError, match="checksum mismatch"):
        images.download("mnist", tmp_path, mirror=url + "/m/")
    assert list(tmp_path.iterdir()) == []  # not even the empty MNIST/raw folders it made


def test_interrupted_transfer_is_an_error_and_leaves_nothing(tmp_path, server, monkeypatch):
    files, url = server
    payloads = mnist_payloads()
    names = fake_mnist_source(monkeypatch, payloads)
    for n in names:
        files[f"/short/{n}"] = payloads[n]
    with pytest.raises(images.DownloadError, match="interrupted|IncompleteRead|incomplete"):
        images.download("mnist", tmp_path, mirror=url + "/short/")
    assert list(tmp_path.iterdir()) == []


def tar_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cifar_archive_is_verified_and_extracted(tmp_path, server, monkeypatch):
    files, url = server
    members = {f"cifar-10-batches-py/{n}": cifar_batch_bytes(seed=k)[0]
               for k, n in enumerate(images.CIFAR_TRAIN + (images.CIFAR_TEST,))}
    archive = tar_bytes(members)
    monkeypatch.setitem(images.SOURCES, "cifar10", images.Source("", ("unused",),
                                                                   (("cifar-10-python.tar.gz", md5(archive)),), True))
    files["/c/cifar-10-python.tar.gz"] = archive
    folder = images.download("cifar10", tmp_path, mirror=url + "/c/")
    assert folder == tmp_path / "cifar-10-batches-py"
    assert images.load("cifar10", tmp_path).shape == (20, 3, 32, 32)


def test_archive_members_that_escape_are_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    archive.write_bytes(tar_bytes({"cifar-10-batches-py/../../escaped": b"x"}))
    with pytest.raises(images.DownloadError, match="unsafe member"):
        images.safe_extract(archive, tmp_path, "cifar-10-batches-py")
    assert not (tmp_path.parent / "escaped").exists()
    assert not (tmp_path / "cifar-10-batches-py").exists()


def test_cli_download_failure_exits_1_and_names_it(tmp_path, server, monkeypatch, capsys):
    from rdlens.cli import main

    files, url = server
    fake_mnist_source(monkeypatch, mnist_payloads())
    assert main(["data", "download", "mnist", "--data-dir", str(tmp_path), "--mirror", url + "/nothing/"]) == 1
    assert "nothing was left behind" in capsys.readouterr().err
