"""Run directories: atomic files, the resolved configuration and a provenance manifest.

Every command writes into one directory per run. Files are written to a temporary name and
renamed into place, so a reader never sees a half-written file; ``summary.json`` is written
last and is the mark that a run finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from rdlens.core.errors import ConfigError
from rdlens.core.progress import Bars, no_bars

SUMMARY = "summary.json"
DEVICES = ("auto", "cpu", "cuda")
"""What ``--device`` accepts (also ``cuda:N``); resolved by :func:`rdlens.core.torchutil.resolve_device`."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are ordinary files
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types: dataclasses become dicts, numpy scalars Python numbers, nan/inf null."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else None
    return obj


def dumps(obj: Any) -> str:
    """JSON text of ``obj`` (see :func:`to_jsonable`), indented, ending in a newline."""
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, dumps(obj))


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    """Write arrays to a compressed .npz atomically."""
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def save_losses(path: str | os.PathLike, losses: list[float]) -> Path:
    """``losses.csv``: the training loss of every step (exact float repr)."""
    return atomic_write_text(path, "step,loss\n" + "".join(f"{k + 1},{v!r}\n" for k, v in enumerate(losses)))


def read_losses(path: str | os.PathLike) -> list[float]:
    """The losses :func:`save_losses` wrote, in step order."""
    with open(path) as f:
        return [float(line.split(",")[1]) for line in f.read().splitlines()[1:] if line]


def save_figure(fig: Any, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Save a matplotlib figure atomically (format from the suffix) and close it; a PNG gets
    an SVG beside it (the same stem), for papers. No dates, versions or random ids go into the
    files: the same figure gives the same bytes (a study's summary vouches for them)."""
    import io

    import matplotlib.pyplot as plt

    path = Path(path)
    fmt = path.suffix.lstrip(".")
    quiet = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}, "pdf": {"CreationDate": None}}
    outputs = [(path, fmt, {"metadata": quiet.get(fmt), **kwargs})]
    if fmt == "png":
        outputs.append((path.with_suffix(".svg"), "svg", {"metadata": quiet["svg"]}))
    try:
        for target, kind, options in outputs:
            buf = io.BytesIO()
            with plt.rc_context({"svg.hashsalt": "rdlens"}):  # the same ids in every SVG of the same figure
                fig.savefig(buf, format=kind, **options)
            atomic_write_bytes(target, buf.getvalue())
    finally:
        plt.close(fig)
    return path


def git_revision(start: Path | None = None) -> str | None:
    """The git commit of the rdlens source tree, if it is a checkout (else None)."""
    where = start or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=where, capture_output=True,
            text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the libraries whose numbers can change ours."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("rdlens", "numpy", "scipy", "numba", "torch", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


NAME_MAX = 255
PATH_MAX = 4096
"""the longest file name and path (bytes) that Linux file systems hold"""


def check_path(path: str | os.PathLike, what: str = "--out") -> Path:
    """``path`` (user folder expanded), or a ConfigError if the file system could not hold it:
    a name longer than NAME_MAX bytes or a path of PATH_MAX bytes or more."""
    p = Path(path).expanduser()
    size = len(os.fsencode(str(p.absolute())))
    if size >= PATH_MAX:
        raise ConfigError(f"{what} {str(p)[:40]}...: the path is {size} bytes long; at most {PATH_MAX - 1} are allowed")
    for part in p.parts:
        n = len(os.fsencode(part))
        if n > NAME_MAX:
            raise ConfigError(f"{what}: the name {part[:40]}... is {n} bytes long; a file or folder name may have at "
                              f"most {NAME_MAX}")
    return p


def check_writable(folder: str | os.PathLike) -> None:
    """A ConfigError unless ``folder`` is (or can be made) a writable directory."""
    path = check_path(folder)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"{probe} is a file, not a folder; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"{probe} is not writable; choose another --out")


def timestamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class RunDir:
    """One run's output folder, with per-stage wall times for the manifest."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        self.started = _dt.datetime.now().isoformat(timespec="seconds")

    @classmethod
    def create(cls, root: str | os.PathLike, name: str) -> "RunDir":
        """A new, not yet existing folder ``root/name`` (``-2``, ``-3`` ... appended if taken)."""
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        candidate, n = root / name, 1
        while True:
            try:
                candidate.mkdir()
                return cls(candidate)
            except FileExistsError:
                n += 1
                candidate = root / f"{name}-{n}"

    def file(self, name: str) -> Path:
        return self.path / name

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time a stage of the run; the wall time lands in the manifest."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    def write_config(self, config: Any) -> Path:
        return write_json(self.file("config.json"), config)

    def write_manifest(self, *, seed: int | None, device: str = "cpu", **extra: Any) -> Path:
        manifest = {
            "rdlens_command": sys.argv,
            "started": self.started,
            "finished": _dt.datetime.now().isoformat(timespec="seconds"),
            "seed": seed,
            "device": device,
            "git_revision": git_revision(),
            "versions": package_versions(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "timings_s": dict(self.timings),
            **extra,
        }
        return write_json(self.file("manifest.json"), manifest)

    def write_summary(self, summary: dict[str, Any]) -> Path:
        """Write ``summary.json``: call this last, it marks the run as finished."""
        return write_json(self.file(SUMMARY), summary)

    def is_finished(self) -> bool:
        return self.file(SUMMARY).exists()


@dataclass
class RunContext:
    """What a system's ``execute`` gets besides its config: where to write and how."""

    dir: RunDir
    device: Any = "cpu"
    """a torch.device for systems that use torch, else "cpu" """
    resume: bool = False
    """continue from the checkpoint in ``dir``"""
    bars: Bars = no_bars
    manifest: dict[str, Any] = field(default_factory=dict)
    """extra manifest entries (kernel, threads, parameter count ...)"""
    setting: str | None = None
    """a label that replaces the system's own ``setting`` in the summary"""
