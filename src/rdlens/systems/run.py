"""One run-directory lifecycle for every system.

    check inputs  ->  config.json  ->  the system's work and files  ->  manifest.json  ->  summary.json

:func:`run` owns the order; a :class:`~rdlens.systems.System` owns only the middle step.
Inputs are checked (and data loaded) before the folder exists, so bad input leaves
nothing. ``summary.json`` is written last and marks the run finished: a run that fails or is
interrupted never looks finished. A fresh run that fails before leaving a checkpoint removes
its folder; one with a checkpoint keeps it so that ``--resume`` can continue it.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rdlens.core import threads
from rdlens.core.errors import ConfigError, RunInterrupted, SimulationDiverged, check_memory
from rdlens.core.progress import Bar, Bars, no_bars
from rdlens.core.rundir import RunContext, RunDir, check_writable, timestamp, to_jsonable
from rdlens.core.study import checksums, verify
from rdlens.systems import System

__all__ = ["Bar", "Bars", "RunContext", "no_bars", "run", "checksums", "verify", "config_json", "begin_threads",
           "saved_torch_threads", "default_runs_root", "resolve", "open_unfinished"]

CHECKPOINT = "checkpoint.pt"


def default_runs_root() -> Path:
    """Where run directories go unless ``--out`` says otherwise: ``./runs`` (or $RDLENS_RUNS)."""
    return Path(os.environ.get("RDLENS_RUNS", "runs"))


TORCH_THREADS = "torch_threads"
"""the config.json key of a torch run's thread count (its numbers depend on it: rdlens.core.threads)"""


def config_json(system: System, config: Any) -> dict[str, Any]:
    """The ``config.json`` content of a run: the system's name, every resolved field and, for a
    system that uses torch, the torch thread count its numbers are computed with."""
    out = {"system": system.name, **asdict(config)}
    if system.uses_torch:
        out[TORCH_THREADS] = threads.POLICY.torch_threads()
    return to_jsonable(out)


def open_unfinished(system: System, folder: str | os.PathLike) -> tuple[RunDir, Any]:
    """An interrupted run directory of ``system`` and its saved configuration, or a clear error."""
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"--resume {folder}: no such run directory")
    rd = RunDir(path)
    if rd.is_finished():
        raise ConfigError(f"{folder} holds a finished run (summary.json exists); nothing to resume")
    import json

    cfg_file = rd.file("config.json")
    try:
        saved = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    except ValueError:
        raise ConfigError(f"{cfg_file} is damaged (not JSON); the run cannot be resumed") from None
    if not isinstance(saved, dict) or saved.get("system") != system.name:
        raise ConfigError(f"{folder} is not an unfinished rdlens {system.name} run directory (no matching config.json)")
    return rd, system.from_json(saved, str(cfg_file))


OLD_THREADS = "threads.json"
"""where runs written before ``torch_threads`` was part of config.json kept their count"""


def saved_torch_threads(folder: str | os.PathLike) -> int | None:
    """The torch thread count a run directory's numbers were computed with, if it records one."""
    import json

    for name, key in (("config.json", TORCH_THREADS), (OLD_THREADS, "torch_threads")):
        try:
            n = json.loads((Path(folder) / name).read_text())[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= threads.MAX_THREADS:
            return n
    return None


def begin_threads(rd: RunDir, resume: bool) -> None:
    """The run's torch thread count: a resumed run keeps the one it started with (torch sums
    in a thread-dependent order, so this keeps a resume bit-identical)."""
    threads.POLICY.begin_run(saved_torch_threads(rd.path) if resume else None)


def resolve(system: System, device: str) -> Any:
    """The device a system runs on: a torch device if it uses torch, else "cpu"."""
    if not system.uses_torch:
        return "cpu"
    from rdlens.core.torchutil import resolve_device

    return resolve_device(device)


def run(
    system: System,
    config: Any = None,
    *,
    out: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    device: str = "auto",
    bars: Bars | None = None,
    setting: str | None = None,
) -> tuple[RunDir, dict[str, Any]]:
    """Run ``config`` of ``system`` into a run directory; return (directory, summary).

    The directory is a new one under ``out`` (named by the system, seed and time), or exactly
    ``run_dir``. With ``resume``, ``run_dir`` must be an unfinished run of this system: its
    saved config is used and training continues from its checkpoint.
    """
    dev = resolve(system, device)
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run directory to continue")
        rd, config = open_unfinished(system, run_dir)
    if config is None:
        raise ConfigError(f"no configuration given for {system.name}")
    check_memory(f"this {system.name} run", system.memory_bytes(config))
    if not resume:
        check_writable(run_dir if run_dir is not None else (out or default_runs_root()))
    t0 = time.perf_counter()
    prepared = system.prepare(config, dev)
    prepare_s = time.perf_counter() - t0
    created = False
    if not resume:
        if run_dir is not None:
            rd, created = RunDir(run_dir), True
        else:
            rd = RunDir.create(out or default_runs_root(), f"{system.run_name(config)}-{timestamp()}")
            created = True
        rd.write_config(config_json(system, config))
    rd.timings["prepare"] = prepare_s
    ctx = RunContext(rd, dev, resume, bars or no_bars, setting=setting)
    begin_threads(rd, resume)
    try:
        # one thread unless a stage inside asks for more (see rdlens.core.threads)
        t1 = time.perf_counter()
        with threads.stage("run", parallel=False):
            fields = system.execute(config, prepared, ctx)
        execute_s = time.perf_counter() - t1
        if set(rd.timings) == {"prepare"}:  # a system that times no stages of its own (a plug-in)
            rd.timings["execute"] = execute_s
        used = threads.record()
    except KeyboardInterrupt:
        if not rd.file(CHECKPOINT).exists():
            if created:
                shutil.rmtree(rd.path, ignore_errors=True)
            raise RunInterrupted("interrupted; no finished result was written") from None
        raise RunInterrupted(f"interrupted after step {_checkpoint_step(rd.file(CHECKPOINT))} (the last checkpoint); "
                             f"continue with: rdlens {system.name} --resume {rd.path}") from None
    except BaseException:
        if created and not rd.file(CHECKPOINT).exists():
            shutil.rmtree(rd.path, ignore_errors=True)
        raise
    finally:
        threads.POLICY.end_run()
    bad = [k for k in ("M_react", "M_diff", "R") if not _finite(fields.get(k))]
    if bad:
        raise SimulationDiverged(system.name, int(fields.get("steps") or 0),
                                 f"{', '.join(bad)} not finite (the model or its output went NaN)")
    seed = getattr(config, "seed", None)
    wall = fields.pop("wall_time_s", None)
    summary = {"system": system.name, "setting": setting or system.setting(config), **fields, "seed": seed,
               "wall_time_s": prepare_s + execute_s if wall is None else wall, "run_dir": str(rd.path)}
    rd.write_manifest(seed=seed, device=str(dev), threads=used, **ctx.manifest)
    summary["files"] = checksums(rd.path)
    rd.write_summary(summary)
    return rd, summary


def _checkpoint_step(path: Path) -> str:
    try:
        from rdlens.core.torchutil import load_checkpoint

        return str(int(load_checkpoint(path)["step"]))
    except (ConfigError, KeyError, TypeError, ValueError):
        return "?"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


