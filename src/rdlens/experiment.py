"""Named runs that write a complete run directory: what the CLI commands call.

Each ``run_*`` function takes a frozen config, does the work, and writes its results into a
new run directory. Results are written only after the work succeeded, ``summary.json`` last,
so a run that failed or was interrupted never leaves something that looks finished.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from rdlens import grayscott
from rdlens.errors import ConfigError
from rdlens.rundir import RunDir, atomic_write_bytes, timestamp

if TYPE_CHECKING:
    from rdlens import ddpm, lstm


def default_runs_root() -> Path:
    """Where run directories go unless ``--out`` says otherwise: ``./runs``."""
    return Path(os.environ.get("RDLENS_RUNS", "runs"))


@dataclass(frozen=True)
class RDRun:
    """One Gray-Scott run: the model, how long to run it and what to keep."""

    model: grayscott.GrayScott = field(default_factory=grayscott.GrayScott)
    steps: int = 5000
    """number of explicit Euler steps (the paper's public code: 5000)"""
    seed: int = 0
    """seed of the initial noise"""
    init: str | None = None
    """path of an .npz with arrays u and v to start from (default: Pearson's start)"""
    snapshot_every: int = 1000
    """keep v every this many steps in snapshots.npz (0: none)"""
    stop_tol: float = 0.0
    """stop early once the RMS change of v in one step < stop_tol (0: never)"""
    stop_after: int = 100
    """never stop early before this step"""
    save_state: bool = False
    """write the final u, v to state.npz (usable as --init)"""
    residual: bool = False
    """also record ||dv/dt|| per step (column ``residual``: distance from a steady state)"""

    def __post_init__(self) -> None:
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be an integer >= 1, got {self.steps!r}")
        if self.snapshot_every < 0:
            raise ConfigError(f"snapshot_every must be >= 0, got {self.snapshot_every}")

    @property
    def name(self) -> str:
        return f"rd-F{self.model.F:g}-k{self.model.k:g}-seed{self.seed}"


def run_rd(
    cfg: RDRun,
    out: str | os.PathLike | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    setting: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[RunDir, dict[str, Any], grayscott.GrayScottResult]:
    """Run Gray-Scott as configured and write its run directory (a new one under ``out``, or
    exactly ``run_dir``); return (dir, summary, result).

    Files: ``v.png`` (final v), ``balance.png``, ``trace.csv``, ``summary.json``,
    ``config.json``, ``manifest.json``, ``snapshots.npz`` (if any), ``state.npz`` (if asked).
    """
    init = None
    if cfg.init is not None:
        init = grayscott.load_state(cfg.init)
        grayscott.check_state(cfg.model, *init, source=str(cfg.init))
    result = grayscott.run(
        cfg.model, cfg.steps, cfg.seed, init=init, snapshot_every=cfg.snapshot_every,
        stop_tol=cfg.stop_tol, stop_after=cfg.stop_after, residual=cfg.residual, progress=progress,
    )
    from rdlens import report

    rd = RunDir(run_dir) if run_dir is not None else RunDir.create(out or default_runs_root(), f"{cfg.name}-{timestamp()}")
    with rd.stage("write"):
        rd.write_config({"system": "rd", **asdict(cfg)})
        result.trace.save(rd.file("trace.csv"))
        report.plot_field(result.v, rd.file("v.png"), title=f"Gray-Scott v, F={cfg.model.F:g}, k={cfg.model.k:g}, "
                          f"step {result.steps}")
        report.plot_balance(result.trace, rd.file("balance.png"))
        if result.snapshots:
            _save_npz(rd.file("snapshots.npz"), step=np.array([s for s, _ in result.snapshots]),
                      v=np.stack([v for _, v in result.snapshots]))
        if cfg.save_state:
            _save_npz(rd.file("state.npz"), u=result.u, v=result.v)
    rd.timings["simulate"] = result.wall_time_s
    summary = {
        "system": "rd",
        "setting": setting or f"F={cfg.model.F:g}, k={cfg.model.k:g}",
        **result.trace.summary(),
        "steps": result.steps,
        "stopped_early": result.stopped_early,
        "seed": cfg.seed,
        "init": cfg.init or "pearson",
        "wall_time_s": result.wall_time_s,
        "run_dir": str(rd.path),
    }
    if "residual" in result.trace.extra:
        summary["final_residual"] = float(result.trace.extra["residual"][-1])
    rd.write_manifest(seed=cfg.seed, device="cpu", kernel="numba fused stencil", threads=_numba_threads())
    rd.write_summary(summary)
    return rd, summary, result


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def open_unfinished(resume_dir: str | os.PathLike, system: str) -> tuple[RunDir, dict[str, Any]]:
    """An interrupted run directory of ``system`` and its saved configuration, or a clear error."""
    rd = RunDir(resume_dir)
    if rd.is_finished():
        raise ConfigError(f"{resume_dir} holds a finished run (summary.json exists); nothing to resume")
    cfg_file = rd.file("config.json")
    saved = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
    if saved.get("system") != system:
        raise ConfigError(f"{resume_dir} is not an unfinished rdlens {system} run directory (no matching config.json)")
    return rd, saved


def _save_losses(path: Path, losses: list[float]) -> None:
    text = "step,loss\n" + "".join(f"{k + 1},{v!r}\n" for k, v in enumerate(losses))
    atomic_write_bytes(path, text.encode())


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


# ---- LSTM ---------------------------------------------------------------------------------

LSTM_SETTING_NAMES = {"sine": "sine waves", "lorenz": "Lorenz", "vanderpol": "Van der Pol"}


def run_lstm(
    cfg: "lstm.LSTMConfig",
    out: str | os.PathLike | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    resume_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> tuple[RunDir, dict[str, Any]]:
    """Train, evaluate and write an LSTM run directory; with ``resume_dir``, continue the
    unfinished run there from its last checkpoint (its own config.json is used).

    Files: ``checkpoint.pt``, ``trace.csv`` (+ ``trace_samples.npz``, the norm of every
    sequence), ``losses.csv``, ``predictions.png`` (and its data, ``predictions.npz``),
    ``gates.png``, ``config.json``,
    ``manifest.json`` and, last, ``summary.json``.
    """
    from rdlens import lstm, report, sequences
    from rdlens.torchutil import resolve_device

    dev = resolve_device(device)
    if resume_dir is not None:
        rd, saved = open_unfinished(resume_dir, "lstm")
        cfg = lstm_config_from_json(saved)
    else:
        rd = RunDir(run_dir) if run_dir is not None else RunDir.create(
            out or default_runs_root(), f"lstm-{cfg.data.dataset}-{cfg.setting}-seed{cfg.seed}-{timestamp()}")
        rd.write_config({"system": "lstm", **asdict(cfg)})
    with rd.stage("data"):
        data = sequences.make_sequences(cfg.data)
    with rd.stage("train"):
        trained = lstm.train(cfg, data, rd.path, device=dev, resume=resume_dir is not None, progress=progress)
    with rd.stage("evaluate"):
        ev = lstm.evaluate(cfg, trained.model, data, dev)
    with rd.stage("write"):
        ev.trace.save(rd.file("trace.csv"))
        _save_losses(rd.file("losses.csv"), trained.losses)
        _save_npz(rd.file("predictions.npz"), inputs=ev.inputs, outputs=ev.outputs, eval_mode=np.array(ev.eval_mode))
        name = LSTM_SETTING_NAMES[cfg.data.dataset]
        report.plot_predictions(ev.inputs, ev.outputs, ev.eval_mode, rd.file("predictions.png"),
                                title=f"LSTM on {name}: held-out sequences ({ev.eval_mode} mode)")
        rec = ev.record
        report.plot_gates({k: getattr(rec, k)[:, 0].cpu().numpy() for k in ("i", "f", "g", "o")},
                          ev.trace, rd.file("gates.png"), title=f"LSTM gates, {name}, held-out sequence 0")
    summary = {
        "system": "lstm",
        "setting": name,
        **ev.trace.summary(),
        "eval_mode": ev.eval_mode,
        "eval_protocol": ("teacher-forced over held-out sequences, state from zeros" if ev.eval_mode == "teacher"
                          else f"free-running: warm-up on each held-out sequence, then {cfg.generate_steps} "
                               "fed-back steps"),
        "eval_sequences": ev.n_sequences,
        "train_mse": ev.train_mse,
        "test_mse": ev.test_mse,
        "naive_mse": ev.naive_mse,
        "steps": trained.steps_done,
        "resumed_from_step": trained.resumed_from,
        "seed": cfg.seed,
        "wall_time_s": sum(rd.timings.values()),
        "run_dir": str(rd.path),
    }
    rd.write_manifest(seed=cfg.seed, device=str(dev), torch_threads=_torch_threads())
    rd.write_summary(summary)
    return rd, summary


def lstm_config_from_json(d: dict[str, Any]) -> "lstm.LSTMConfig":
    """Rebuild an LSTMConfig from its config.json (the inverse of asdict)."""
    from rdlens import lstm, sequences

    d = {k: v for k, v in d.items() if k != "system"}
    data = dict(d.pop("data"))
    data["freq_range"] = tuple(data["freq_range"])
    return lstm.LSTMConfig(data=sequences.SequenceConfig(**data), **d)


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


# ---- DDPM ---------------------------------------------------------------------------------

DDPM_SETTING_NAMES = {"digits": "digits (scikit-learn, offline)", "turing": "Turing patterns (Gray-Scott)",
                      "mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}

Bars = Callable[[str, int], Any]
"""A factory of progress bars: (description, total) -> context manager with .update(n)."""


def _no_bar(desc: str, total: int) -> Any:
    import contextlib

    class _Bar:
        def update(self, n: int = 1) -> None:
            pass

    return contextlib.nullcontext(_Bar())


def run_ddpm(
    cfg: "ddpm.DDPMConfig",
    out: str | os.PathLike | None = None,
    *,
    run_dir: str | os.PathLike | None = None,
    resume_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    bars: Bars | None = None,
) -> tuple[RunDir, dict[str, Any]]:
    """Train a DDPM, sample with the instrumented reverse process, write the run directory.

    Files: ``checkpoint.pt`` (weights, EMA, optimiser; safe to load), ``samples.png``,
    ``trace.csv`` (``step,tau,reaction,diffusion,t,score,eps_norm,counted``),
    ``trace_samples.npz``, ``samples.npz`` (the images), ``balance.png``, ``losses.csv``,
    ``grid-stepN.png`` (with
    grid_every), ``config.json``, ``manifest.json`` and, last, ``summary.json``.
    """
    from rdlens import ddpm, images, report
    from rdlens.torchutil import resolve_device

    bars = bars or _no_bar
    dev = resolve_device(device)
    if resume_dir is not None:
        rd, saved = open_unfinished(resume_dir, "ddpm")
        cfg = ddpm.config_from_json(saved)
    data = images.load(cfg.dataset, cfg.data_dir, seed=cfg.seed, turing_images=cfg.turing_images)
    if cfg.max_images:
        data = data[: cfg.max_images]
    if resume_dir is None:
        rd = RunDir(run_dir) if run_dir is not None else RunDir.create(
            out or default_runs_root(), f"ddpm-{cfg.dataset}-{cfg.setting}-seed{cfg.seed}-{timestamp()}")
        rd.write_config({"system": "ddpm", **asdict(cfg)})
    shape = (cfg.samples, cfg.unet.in_channels, cfg.unet.image_size, cfg.unet.image_size)

    def grid_png(step: int, model: Any) -> None:
        res = ddpm.sample(model, shape, cfg.schedule, seed=cfg.seed, sigma=cfg.sigma, device=dev)
        report.plot_images(images.grid(res.samples), rd.file(f"grid-step{step}.png"), title=f"samples at step {step}")

    with rd.stage("train"), bars(f"DDPM train {cfg.dataset}", cfg.steps) as bar:
        trained = ddpm.train(cfg, data, str(rd.path), device=dev, resume=resume_dir is not None,
                             progress=bar.update, on_grid=grid_png)
    with rd.stage("sample"), bars("DDPM sample", cfg.schedule.T) as bar:
        result = ddpm.sample(trained.ema_model, shape, cfg.schedule, seed=cfg.seed + 2, sigma=cfg.sigma,
                             device=dev, progress=bar.update)
    tr = result.trace
    name = DDPM_SETTING_NAMES[cfg.dataset]
    with rd.stage("write"):
        tr.save(rd.file("trace.csv"))
        _save_losses(rd.file("losses.csv"), trained.losses)
        _save_npz(rd.file("samples.npz"), samples=result.samples.detach().float().cpu().numpy())
        report.plot_images(images.grid(result.samples), rd.file("samples.png"),
                           title=f"DDPM samples, {name}\n{trained.steps_done} training steps")
        report.plot_balance(tr, rd.file("balance.png"))
    counted = tr.counted
    summary = {
        "system": "ddpm",
        "setting": name,
        **tr.summary(),
        "M_score": float(np.mean(tr.extra["score"][counted])),
        "M_eps": float(np.mean(tr.extra["eps_norm"][counted])),
        "R_score": float(np.mean(tr.extra["score"][counted]) / tr.M_diff),
        "last_step": "t = 1 adds no noise (diffusion 0): kept in trace.csv with counted = 0, "
                     "excluded from M_react, M_diff, R, R(tau) and final_R",
        "T": cfg.schedule.T,
        "schedule": cfg.schedule.kind,
        "sigma": cfg.sigma,
        "samples": cfg.samples,
        "image_dim": int(np.prod(shape[1:])),
        "train_images": int(data.shape[0]),
        "steps": trained.steps_done,
        "resumed_from_step": trained.resumed_from,
        "final_loss": float(np.mean(trained.losses[-50:])) if trained.losses else None,
        "seed": cfg.seed,
        "wall_time_s": sum(rd.timings.values()),
        "run_dir": str(rd.path),
    }
    from rdlens.unet import n_params

    rd.write_manifest(seed=cfg.seed, device=str(dev), torch_threads=_torch_threads(),
                      parameters=n_params(trained.model))
    rd.write_summary(summary)
    return rd, summary
