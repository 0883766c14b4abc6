"""One lifecycle for every study folder (``reproduce``, ``patterns``, ``sweep``).

A study is a folder that one command fills in named stages and finishes with a page of
results. :func:`claim` opens it for one command and everything a study does with its folder
goes through the :class:`Study` it yields:

1. **Claim.** The folder is locked (a second process is refused at once, with the name of the
   study and the process that holds it), its ``config.json`` (``{"study": KIND, ...settings}``)
   is compared with the settings asked for: other settings are refused unless ``force``,
   which starts the study over; a folder that holds anything else is refused. The study's
   old ``summary.json`` is removed: from here on the folder is not a finished study.
2. **Stages.** Each stage is a sub-folder finished by a ``summary.json`` holding the SHA-256 of
   every file in it (:func:`finish_stage`); a stage counts as done only when that
   verifies (:func:`stage_done`), so a stage that was interrupted, damaged or edited is
   redone and the same command resumes a study. Stages run here (:meth:`Study.timed`), in
   worker processes or on a Dask cluster (:func:`rdlens.studies.tasks.run_tasks`, given the study's
   ``where``); the study records how long each took and where it ran.
3. **Finish.** :meth:`Study.finish` writes ``manifest.json`` (command, versions, thread policy,
   jobs, scheduler, each stage's time and place, kept from earlier commands for reused stages) and then ``summary.json`` with the checksum of
   every file the study publishes. :func:`verify` checks those checksums: ``rdlens report``
   and a page that embeds the study trust nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from rdlens.core.errors import ConfigError
from rdlens.core.rundir import SUMMARY, RunDir, check_writable, write_json

CONFIG = "config.json"
LOCK = ".rdlens.lock"
KINDS = ("reproduce", "patterns", "sweep")
"""the studies rdlens has; ``config.json`` names one of them under the key ``study``"""


@contextlib.contextmanager
def lock(folder: str | os.PathLike, holder: str) -> Iterator[None]:
    """Hold an exclusive lock on a study folder, or refuse at once if another process holds it
    (two commands writing into one folder would mix their results)."""
    import fcntl

    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    fh = open(path / LOCK, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            other = fh.read().strip() or "another process"
            raise ConfigError(f"{path} is being written by {other}; wait for it to finish or choose "
                              "another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{holder} (pid {os.getpid()})\n")
        fh.flush()
        yield
    finally:
        fh.close()


def sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksums(folder: str | os.PathLike, names: Sequence[str] | None = None) -> dict[str, str]:
    """SHA-256 of the files ``names`` (paths relative to ``folder``), or of every file directly
    in ``folder`` but summary.json and hidden or temporary files."""
    folder = Path(folder)
    if names is None:
        names = [p.name for p in sorted(folder.iterdir())
                 if p.is_file() and p.name != SUMMARY and not p.name.startswith(".")]
    return {name: sha256(folder / name) for name in sorted(names)}


def verify(folder: str | os.PathLike) -> str | None:
    """Why ``folder`` (a run, a stage or a study) cannot be trusted as finished, or None: its
    summary.json is missing or damaged, or a file it lists is missing or differs from the
    checksum recorded with it."""
    path = Path(folder) / SUMMARY
    if not path.exists():
        return f"{path} is missing (it did not finish)"
    try:
        files = json.loads(path.read_text()).get("files", {})
        items = list(files.items())
    except (OSError, ValueError, AttributeError):
        return f"{path} is damaged"
    for name, digest in items:
        f = Path(folder) / str(name)
        if not f.is_file():
            return f"{f} is missing"
        if sha256(f) != digest:
            return f"{f} differs from the file that was written (damaged or edited)"
    return None


def listed_files(folder: str | os.PathLike) -> dict[str, str]:
    """The files (and checksums) that ``folder``'s summary.json vouches for; {} if none."""
    try:
        files = json.loads((Path(folder) / SUMMARY).read_text()).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return files if isinstance(files, dict) else {}


def add_files(folder: str | os.PathLike, names: Sequence[str]) -> Path:
    """Add the checksums of ``names`` (written after the run finished: its controls, its claims)
    to ``folder``'s summary.json, so that they are verified like the rest of the run."""
    path = Path(folder) / SUMMARY
    summary = json.loads(path.read_text())
    summary["files"] = {**summary.get("files", {}), **checksums(folder, names)}
    return write_json(path, summary)


def revouch(folder: str | os.PathLike) -> dict[str, Any]:
    """After ``rdlens report`` rebuilt a verified study's tables and figures from its stages
    (a newer rdlens may draw them differently): its summary.json vouches for the files as they
    are now. Call only on a study that verified before the rebuild."""
    path = Path(folder) / SUMMARY
    summary = json.loads(path.read_text())
    summary["files"] = checksums(folder, list(summary["files"]))
    write_json(path, summary)
    return summary


@dataclass
class Rebuild:
    """What :func:`rebuilt` hands its block: the study's saved config, and its summary after."""

    config: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)


@contextlib.contextmanager
def rebuilt(folder: str | os.PathLike, kind: str) -> Iterator[Rebuild]:
    """For ``rdlens report`` of a finished study: verify it (a ConfigError if anything it
    publishes was damaged or edited), hold its lock while the block rewrites its tables and
    figures from its stages, then let its summary vouch for them as rewritten (a newer rdlens may
    draw them differently; the stages, which hold the numbers, are not touched)."""
    read_summary(folder, kind)
    with lock(folder, "rdlens report"):
        job = Rebuild(json.loads((Path(folder) / CONFIG).read_text()))
        yield job
        job.summary = revouch(folder)


def kind_of(folder: str | os.PathLike) -> str | None:
    """The kind of study in ``folder`` (read from its config.json, or from the files an older
    rdlens left), or None if it holds no study."""
    folder = Path(folder)
    try:
        saved = json.loads((folder / CONFIG).read_text())
    except (OSError, ValueError):
        saved = None
    if isinstance(saved, dict):
        if saved.get("study") in KINDS:
            return str(saved["study"])
        if saved.get("system") == "sweep":  # a sweep written before the study lifecycle
            return "sweep"
    if (folder / "rows.json").exists() or (folder / "plan.json").exists():
        return "reproduce"  # a reproduce folder written before the study lifecycle
    return None


def read_summary(folder: str | os.PathLike, kind: str) -> dict[str, Any]:
    """The summary of the finished, verified study of ``kind`` in ``folder``, or a ConfigError
    saying what is wrong (another kind, unfinished, a file damaged or edited)."""
    folder = Path(folder)
    found = kind_of(folder)
    if found != kind:
        what = f"a {found} study" if found else "no rdlens study"
        raise ConfigError(f"{folder} holds {what}, not a {kind} study")
    damage = verify(folder)
    if damage is not None:
        raise ConfigError(f"the {kind} study in {folder} cannot be trusted: {damage}; rerun its command to finish "
                          "or recompute it")
    return json.loads((folder / SUMMARY).read_text())


def stage_done(stage: str | os.PathLike) -> bool:
    """Whether ``stage`` is a folder holding a finished stage whose files verify."""
    return Path(stage).is_dir() and verify(stage) is None


def fresh_stage(stage: str | os.PathLike, keep: Sequence[str] = ("checkpoint.pt", "checkpoint.pt.sha256")) -> Path:
    """An empty folder for a stage to be (re)done; the files in ``keep`` stay (a training
    stage resumes from its checkpoint)."""
    path = Path(stage)
    if path.exists():
        for p in path.iterdir():
            if p.name not in keep:
                p.unlink() if p.is_file() or p.is_symlink() else shutil.rmtree(p)
    path.mkdir(parents=True, exist_ok=True)
    return path


def finish_stage(stage: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Write the stage's summary.json with the checksum of every file in it: the stage is done."""
    return write_json(Path(stage) / SUMMARY, {**summary, "files": checksums(stage)})


@dataclass
class Study:
    """A claimed study folder (see the module doc); made by :func:`claim`."""

    folder: Path
    kind: str
    where: dict[str, str] = field(default_factory=dict)
    """where each stage ran: this process, a worker process, a Dask worker"""
    started: float = field(default_factory=time.perf_counter)

    def __post_init__(self) -> None:
        self.run = RunDir(self.folder)

    @property
    def timings(self) -> dict[str, float]:
        """wall time of each stage, in seconds (the manifest's ``timings_s``)"""
        return self.run.timings

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Time a stage run here, in this process."""
        with self.run.stage(stage):
            yield
        self.where[stage] = f"this process (pid {os.getpid()})"

    def finish(self, summary: dict[str, Any], published: Sequence[str], **manifest: Any) -> dict[str, Any]:
        """Write manifest.json, then summary.json with the checksums of the ``published`` files
        (paths relative to the folder; the manifest is added): the study is finished."""
        from rdlens.core import threads

        earlier = self._earlier_manifest()  # stages reused now ran under an earlier command
        self.run.timings = {**earlier.get("timings_s", {}), **self.timings}
        self.run.write_manifest(seed=manifest.pop("seed", None), device=str(manifest.pop("device", "cpu")),
                           study=self.kind, threads=threads.record(),
                           stages_where={**earlier.get("stages_where", {}), **self.where},
                           wall_time_s=time.perf_counter() - self.started, **manifest)
        return self.vouch(summary, published)

    def _earlier_manifest(self) -> dict[str, Any]:
        """The stage times and places of the manifest an earlier command left, if readable."""
        try:
            old = json.loads((self.folder / "manifest.json").read_text())
            out = {k: dict(old[k]) for k in ("timings_s", "stages_where") if isinstance(old.get(k), dict)}
        except (OSError, ValueError, TypeError):
            return {}
        return out

    def vouch(self, summary: dict[str, Any], published: Sequence[str]) -> dict[str, Any]:
        """Write summary.json: ``summary`` with the checksums of the ``published`` files, the
        manifest and the config (after :meth:`finish`, or after a report rebuilt the files)."""
        names = sorted({*published, *(n for n in ("manifest.json", CONFIG) if (self.folder / n).is_file())})
        out = {"study": self.kind, **summary, "files": checksums(self.folder, names)}
        write_json(self.folder / SUMMARY, out)
        return out


def _belongs(folder: Path, kind: str) -> bool:
    """Whether ``folder`` is empty (but for its lock) or already holds a study of ``kind``."""
    found = kind_of(folder)
    if found is not None:
        return found == kind
    return not any(p.name != LOCK for p in folder.iterdir())


def _differences(saved: dict[str, Any], wanted: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two nested settings."""
    out = []
    for key in sorted(saved.keys() | wanted.keys()):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(prefix + key)
    return out


@contextlib.contextmanager
def claim(folder: str | os.PathLike, kind: str, settings: dict[str, Any], *, force: bool = False,
          compare: bool = True, hint: str = "add --force to start it over, or choose another --out",
          complete: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Iterator[Study]:
    """Open ``folder`` for a study of ``kind`` with ``settings`` (its config.json apart from the
    kind), holding its lock for the block. A folder holding anything else is refused; one
    holding the same study with other settings (when ``compare``) is refused with ``hint``
    unless ``force``, which clears the folder: the study starts over. ``compare`` is False for a study that compares settings
    stage by stage (``reproduce``: each row decides whether its saved result still holds).
    ``complete`` fills a saved config.json's settings with the defaults of settings added since it
    was written (their defaults keep what was computed before), so that an upgraded rdlens
    continues a study saved by an older one; a config it cannot read is compared as it is."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    folder = Path(folder)
    check_writable(folder)
    wanted = {"study": kind, **settings}
    with lock(folder, f"rdlens {kind}"):
        if not _belongs(folder, kind):  # --force never clears what another command wrote
            found = kind_of(folder)
            what = f"a {found} study" if found else "files that are not an rdlens study"
            raise ConfigError(f"{folder} holds {what}; choose another --out")
        if compare and not force and (folder / CONFIG).exists():
            try:
                saved = json.loads((folder / CONFIG).read_text())
            except (OSError, ValueError):
                saved = {}
            saved = saved if isinstance(saved, dict) else {}
            saved.pop("system", None)
            saved.setdefault("study", kind)
            if complete is not None and saved.get("study") == kind:
                try:
                    saved = {"study": kind, **complete({k: v for k, v in saved.items() if k != "study"})}
                except (ConfigError, TypeError, ValueError, KeyError, AttributeError):
                    pass
            if saved != wanted:
                differ = _differences(saved, wanted)
                raise ConfigError(f"{folder} holds a {kind} study with other settings ({', '.join(differ)}); {hint}")
        if force:
            for p in list(folder.iterdir()):
                if p.name != LOCK:
                    p.unlink() if p.is_file() or p.is_symlink() else shutil.rmtree(p)
        (folder / SUMMARY).unlink(missing_ok=True)
        write_json(folder / CONFIG, wanted)
        yield Study(folder, kind)


__all__ = ["CONFIG", "KINDS", "Rebuild", "Study", "add_files", "checksums", "claim", "finish_stage", "fresh_stage", "kind_of", "listed_files", "lock",
           "read_summary", "rebuilt", "revouch", "sha256", "stage_done", "verify"]
