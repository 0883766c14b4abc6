"""``rdlens reproduce``: the paper's eight Table 1 rows, run under a profile, into one folder.

The rows are fixed (they are the paper's); how each is run comes from a profile, a TOML file
of settings (``profiles/quick.toml``, ``paper.toml``, ``smoke.toml`` or the user's own).
Each row writes its own run directory under ``rows/<row-id>/`` with the system's usual
files. A row is reused when its ``summary.json`` exists and its saved configuration equals
the one asked for; an unfinished LSTM or DDPM row resumes from its checkpoint; anything else
is recomputed from scratch. A DDPM row whose data set is absent is not silently replaced:
the MNIST row falls back to the offline digits and is labelled so, the other rows are
skipped with the command that makes them runnable.

Kept apart from experiment.py, which runs one system; this module composes those runs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from rdlens import experiment
from rdlens.errors import ConfigError
from rdlens.rundir import RunDir, to_jsonable, write_json

PROFILES = ("quick", "paper", "smoke")


@dataclass(frozen=True)
class Row:
    """One row of the paper's Table 1."""

    id: str
    system: str
    label: str
    F: float | None = None
    dataset: str | None = None
    fallback: str | None = None
    """offline data set used, and said, when the row's own is absent"""


ROWS: tuple[Row, ...] = (
    Row("rd-spot", "rd", "spot regime", F=0.029),
    Row("rd-stripe", "rd", "stripe regime", F=0.055),
    Row("lstm-sine", "lstm", "sine waves", dataset="sine"),
    Row("lstm-lorenz", "lstm", "Lorenz", dataset="lorenz"),
    Row("lstm-vanderpol", "lstm", "Van der Pol", dataset="vanderpol"),
    Row("ddpm-mnist", "ddpm", "MNIST", dataset="mnist", fallback="digits"),
    Row("ddpm-fashion-mnist", "ddpm", "FashionMNIST", dataset="fashion-mnist"),
    Row("ddpm-cifar10", "ddpm", "CIFAR10", dataset="cifar10"),
)
ROW_IDS = tuple(r.id for r in ROWS)

RD_KEYS = {"steps", "size", "length", "dt", "k", "Du", "Dv", "dtype", "stop_tol", "stop_after", "residual"}
LSTM_DATA_KEYS = {"n_sequences", "length", "test_fraction", "noise", "mu", "substeps", "transient", "dt"}
LSTM_KEYS = {"setting", "steps", "batch_size", "lr", "init", "eval_mode", "hidden", "layers", "grad_clip",
             "generate_steps", "eval_sequences", "checkpoint_every"} | LSTM_DATA_KEYS
DDPM_UNET_KEYS = {"channels", "res_blocks", "attention", "dropout", "groups"}
DDPM_SCHEDULE_KEYS = {"T", "schedule", "beta_start", "beta_end"}
DDPM_KEYS = {"setting", "steps", "batch_size", "lr", "ema", "samples", "sigma", "grid_every", "checkpoint_every",
             "max_images", "turing_images", "weight_decay", "grad_clip"} | DDPM_UNET_KEYS | DDPM_SCHEDULE_KEYS
SECTION_KEYS = {"rd": RD_KEYS, "lstm": LSTM_KEYS, "ddpm": DDPM_KEYS}


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A profile by name (shipped with rdlens) or from a .toml file, with its keys checked."""
    if name_or_path in PROFILES:
        text = resources.files("rdlens").joinpath(f"profiles/{name_or_path}.toml").read_text()
        source = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)} or a .toml file; "
                              f"{name_or_path!r} is neither")
        text, source = path.read_text(), str(path)
    try:
        profile = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {source}: not valid TOML ({exc})") from None
    unknown = set(profile) - {"description", "rd", "lstm", "ddpm", "rows"}
    if unknown:
        raise ConfigError(f"profile {source}: unknown section(s) {sorted(unknown)}; allowed: rd, lstm, ddpm, rows")
    for section, allowed in SECTION_KEYS.items():
        _check_keys(source, section, profile.get(section, {}), allowed)
    for row_id, values in profile.get("rows", {}).items():
        if row_id not in ROW_IDS:
            raise ConfigError(f"profile {source}: [rows.{row_id}] is not a row; rows are {', '.join(ROW_IDS)}")
        _check_keys(source, f"rows.{row_id}", values, SECTION_KEYS[row_id.split("-")[0]])
    profile["name"] = source
    return profile


def _check_keys(source: str, section: str, values: dict, allowed: set[str]) -> None:
    bad = set(values) - allowed
    if bad:
        raise ConfigError(f"profile {source}: [{section}] has unknown key(s) {sorted(bad)}; allowed: {sorted(allowed)}")


@dataclass
class Plan:
    """What will happen to one row: its configuration, the data it uses, or why it is skipped."""

    row: Row
    config: Any | None
    data: str
    skip_reason: str | None = None

    @property
    def status(self) -> str:
        if self.skip_reason:
            return "skipped"
        return "stand-in data" if self.row.fallback and self.data == self.row.fallback else "ran"


def plan_row(row: Row, profile: dict[str, Any], seed: int, data_dir: str | None) -> Plan:
    """Resolve a row's configuration under ``profile``; decide its data (or skipping)."""
    values = dict(profile.get(row.system, {}))
    values.update(profile.get("rows", {}).get(row.id, {}))
    if row.system == "rd":
        from rdlens.grayscott import GrayScott

        model_keys = {"size", "length", "dt", "k", "Du", "Dv", "dtype"}
        model = GrayScott(F=row.F, **{k: v for k, v in values.items() if k in model_keys})
        run_keys = {k: v for k, v in values.items() if k not in model_keys}
        run_keys.setdefault("residual", True)  # the steady-state residual is one of the RD controls
        cfg = experiment.RDRun(model=model, seed=seed, snapshot_every=0, save_state=True, **run_keys)
        return Plan(row, cfg, f"F = {row.F}, k = {model.k}")
    if row.system == "lstm":
        from rdlens import lstm

        setting = values.pop("setting", "default")
        data = {k: values.pop(k) for k in list(values) if k in LSTM_DATA_KEYS}
        cfg = lstm.config_for(setting, row.dataset, data=data, seed=seed, **values)
        return Plan(row, cfg, row.dataset)
    from rdlens import ddpm, images

    dataset = row.dataset
    if not images.is_present(dataset, data_dir):
        where = f"under {data_dir}" if data_dir else "(no --data-dir given)"
        command = f"rdlens data download {dataset} --data-dir {data_dir or '~/data'}"
        if row.fallback is None:
            reason = f"{row.label} not found {where}; to run this row: {command}, then rerun with --data-dir"
            return Plan(row, None, dataset, reason)
        dataset = row.fallback
    setting = values.pop("setting", "default")
    unet = {k: (tuple(values.pop(k)) if isinstance(values[k], list) else values.pop(k))
            for k in list(values) if k in DDPM_UNET_KEYS}
    sched = {("kind" if k == "schedule" else k): values.pop(k) for k in list(values) if k in DDPM_SCHEDULE_KEYS}
    cfg = ddpm.config_for(setting, dataset, unet=unet, schedule=sched, seed=seed,
                          data_dir=data_dir if dataset not in images.OFFLINE else None, **values)
    return Plan(row, cfg, dataset)


def _config_json(plan: Plan) -> dict[str, Any]:
    return to_jsonable({"system": plan.row.system, **asdict(plan.config)})


def row_state(row_dir: Path, plan: Plan) -> str:
    """done (reuse), resume (unfinished, same config, has a checkpoint) or fresh."""
    cfg_file = row_dir / "config.json"
    if not cfg_file.exists():
        return "fresh"
    try:
        same = json.loads(cfg_file.read_text()) == _config_json(plan)
    except (OSError, ValueError):
        same = False
    if not same:
        return "fresh"
    if (row_dir / "summary.json").exists():
        return "done"
    return "resume" if plan.row.system != "rd" and (row_dir / "checkpoint.pt").exists() else "fresh"


def default_dir(profile: dict[str, Any], out: str | os.PathLike | None) -> Path:
    """``OUT/reproduce-PROFILE``: the same command finds its own earlier rows (and seeds) again."""
    name = Path(profile["name"]).stem
    return Path(out or experiment.default_runs_root()) / f"reproduce-{name}"


def seed_dir(folder: Path, row_id: str, seed: int) -> Path:
    return folder / "rows" / row_id / f"seed{seed}"


def reproduce(
    profile_name: str = "quick",
    *,
    out: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    rows: tuple[str, ...] = ROW_IDS,
    seed: int = 0,
    seeds: int = 1,
    controls: bool = False,
    data_dir: str | None = None,
    device: str = "auto",
    force: bool = False,
    bars: experiment.Bars | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Path, str, bool]:
    """Run (or reuse) the requested rows for seeds ``seed ... seed + seeds - 1`` (and their
    controls), then write the tables and figures.

    Returns (folder, Markdown table, whether every requested row ran).
    """
    bad = [r for r in rows if r not in ROW_IDS]
    if bad:
        raise ConfigError(f"unknown row(s) {bad}; rows are {', '.join(ROW_IDS)}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an integer >= 1, got {seeds!r}")
    profile = load_profile(profile_name)
    seed_list = list(range(seed, seed + seeds))
    plans = {s: [plan_row(r, profile, s, data_dir) for r in ROWS if r.id in rows] for s in seed_list}
    from rdlens.torchutil import resolve_device

    resolve_device(device)  # refuse a missing GPU before any work
    folder = Path(run_dir) if run_dir is not None else default_dir(profile, out)
    top = RunDir(folder)
    write_json(folder / "plan.json", {"profile": profile["name"], "seeds": seed_list, "data_dir": data_dir,
                                      "controls": controls, "rows": list(rows)})
    for s in seed_list:
        for plan in plans[s]:
            tag = f"{plan.row.id} seed {s}"
            if plan.skip_reason:
                log(f"{tag:<28} skipped: {plan.skip_reason}")
                continue
            row_dir = seed_dir(folder, plan.row.id, s)
            state = "fresh" if force else row_state(row_dir, plan)
            if state == "done":
                log(f"{tag:<28} reused (finished, same configuration)")
            else:
                if state == "fresh" and row_dir.exists():
                    shutil.rmtree(row_dir)
                row_dir.mkdir(parents=True, exist_ok=True)
                note = " (offline stand-in: " + plan.data + ")" if plan.status == "stand-in data" else ""
                log(f"{tag:<28} {'resuming' if state == 'resume' else 'running'}{note}")
                t0 = time.perf_counter()
                with top.stage(tag):
                    _run_row(plan, row_dir, state == "resume", device, bars)
                log(f"{tag:<28} done in {time.perf_counter() - t0:.1f} s")
            if controls and not (row_dir / "controls.json").exists():
                t0 = time.perf_counter()
                with top.stage(f"{tag} controls"):
                    _run_controls(plan, row_dir, device)
                log(f"{tag:<28} controls done in {time.perf_counter() - t0:.1f} s")
    first = plans[seed_list[0]]
    rows_info = [{"id": p.row.id, "system": p.row.system, "setting": p.row.label, "data": p.data,
                  "status": p.status, "reason": p.skip_reason, "dir": f"rows/{p.row.id}"} for p in first]
    write_json(folder / "rows.json", {"profile": profile["name"], "description": profile.get("description", ""),
                                      "seeds": seed_list, "controls": controls, "rows": rows_info})
    from rdlens import report

    table = report.build_report(folder)
    top.write_manifest(seed=seed, device=device, profile=profile["name"], seeds=seed_list,
                       rows=[p.row.id for p in first], controls=controls)
    return folder, table, all(p.skip_reason is None for p in first)


def _run_controls(plan: Plan, row_dir: Path, device: str) -> None:
    """Compute the row's controls from its saved results; write their traces, then controls.json."""
    from rdlens import controls
    from rdlens.balance import BalanceTrace
    from rdlens.torchutil import load_checkpoint, resolve_device

    cfg, dev = plan.config, resolve_device(device)
    if plan.row.system == "rd":
        results, traces = controls.rd_controls(cfg, BalanceTrace.load(row_dir / "trace.csv"))
    elif plan.row.system == "lstm":
        from rdlens import lstm, sequences

        data = sequences.make_sequences(cfg.data)
        model = lstm.build_model(cfg, dev)
        model.load_state_dict(load_checkpoint(row_dir / lstm.CHECKPOINT, dev)["model"])
        model.eval()
        results, traces = controls.lstm_controls(cfg, model, data, lstm.evaluate(cfg, model, data, dev), dev)
    else:
        from rdlens import images

        data = images.load(cfg.dataset, cfg.data_dir, seed=cfg.seed, turing_images=cfg.turing_images)
        if cfg.max_images:
            data = data[: cfg.max_images]
        results, traces = controls.ddpm_controls(cfg, data, dev)
    for name, tr in traces.items():
        tr.save(row_dir / f"control-{name}.csv")
    write_json(row_dir / "controls.json", results)


def _run_row(plan: Plan, row_dir: Path, resume: bool, device: str, bars: experiment.Bars | None) -> None:
    label = f"{plan.row.label} ({plan.data}, offline stand-in)" if plan.status == "stand-in data" else plan.row.label
    if plan.row.system == "rd":
        experiment.run_rd(plan.config, run_dir=row_dir, setting=label)
    elif plan.row.system == "lstm":
        if resume:
            experiment.run_lstm(plan.config, resume_dir=row_dir, device=device)
        else:
            experiment.run_lstm(plan.config, run_dir=row_dir, device=device)
    elif resume:
        experiment.run_ddpm(plan.config, resume_dir=row_dir, device=device, bars=bars)
    else:
        experiment.run_ddpm(plan.config, run_dir=row_dir, device=device, bars=bars)
