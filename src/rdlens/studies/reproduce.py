"""``rdlens reproduce``: the paper's Table 1 rows, run under a profile, into one folder.

A *row* is data: a system, the values that make it that row (``F = 0.029``,
``dataset = "mnist"``), an offline fallback for absent data, and the paper's values if it has
them. How rows are run comes from a *profile*, a TOML file (``profiles/quick.toml``,
``paper.toml``, ``smoke.toml`` or the user's own) whose keys are the systems' option names:

    [rd]                      # every row of a system
    steps = 5000
    [rows.rd-stripe]          # one row
    F = 0.0545
    [rows.my-row]             # a new row: any registered system, paper values optional
    system = "rd"
    F = 0.040
    paper = { M_react = 0.36, M_diff = 0.35, R = 1.01 }

Values apply in this order, later winning: the system's ``reproduce_defaults``, the profile's
``[system]`` table, the row's own values, the profile's ``[rows.ID]`` table, the seed. The
whole plan (every row and seed) is resolved and checked before the first row runs.

Each row and seed writes a run directory (see :mod:`rdlens.core.layout`). A row is reused when its
``summary.json`` exists and its saved configuration equals the one asked for; an unfinished
row of a resumable system continues from its checkpoint; anything else is recomputed. A row
whose data is absent is not silently replaced: it runs on its declared offline fallback and
is labelled so, or is skipped with the command that makes it runnable.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from rdlens import systems

from rdlens.core import layout

from rdlens.core import threads
from rdlens.core.errors import MAX_SEED, ConfigError, check_memory
from rdlens.core.options import check_values
from rdlens.paper import TABLE1
from rdlens.systems.run import (TORCH_THREADS, Bars, config_json, default_runs_root, no_bars, resolve, run,
                        saved_torch_threads, verify)
from rdlens.core.rundir import check_writable, write_json
from rdlens.core.study import Study, add_files, claim, listed_files
from rdlens.studies.tasks import Task, check_jobs, check_scheduler, run_tasks

PROFILES = ("quick", "cpu", "paper", "authors", "smoke")
MAX_SEEDS = 1000
"""most independent seeds one command may ask for"""
CLAIMS = "claims.json"
CONTROLS = "controls.json"
"""what a row's claims measured (each system's claims module), beside its summary"""


@dataclass(frozen=True)
class Row:
    """One row of the table: which system, with which values."""

    id: str
    system: str
    label: str
    """what the row measures, in words (the table's ``setting`` column)"""
    values: dict[str, Any] = field(default_factory=dict)
    """option values that make this row (e.g. ``{"F": 0.029}``)"""
    fallback: dict[str, Any] | None = None
    """values used instead, and said, when the row's data is absent (e.g. offline digits)"""
    paper: dict[str, float] | None = None
    """the paper's M_react, M_diff and R for this row, if it has them"""


def _table1(row_id: str, system: str, values: dict[str, Any], fallback: dict[str, Any] | None = None) -> Row:
    paper = TABLE1[row_id]
    return Row(row_id, system, paper.setting, values, fallback,
               {"M_react": paper.M_react, "M_diff": paper.M_diff, "R": paper.R})


ROWS: tuple[Row, ...] = (
    _table1("rd-spot", "rd", {"F": 0.029}),
    _table1("rd-stripe", "rd", {"F": 0.055}),
    _table1("lstm-sine", "lstm", {"dataset": "sine"}),
    _table1("lstm-lorenz", "lstm", {"dataset": "lorenz"}),
    _table1("lstm-vanderpol", "lstm", {"dataset": "vanderpol"}),
    _table1("ddpm-mnist", "ddpm", {"dataset": "mnist"}, fallback={"dataset": "digits"}),
    _table1("ddpm-fashion-mnist", "ddpm", {"dataset": "fashion-mnist"}),
    _table1("ddpm-cifar10", "ddpm", {"dataset": "cifar10"}),
)
"""The paper's Table 1 (the RD stripe row uses the paper's F = 0.055; its public code used 0.0545)."""
ROW_IDS = tuple(r.id for r in ROWS)


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A profile by name (shipped with rdlens) or from a .toml file, every key and value checked.

    Returns ``{"name", "description", SYSTEM: {values}, "rows": {ID: {values}}, "extra_rows": [Row],
    "patterns": {values}}`` (the last: settings of ``rdlens patterns``, checked by its config).
    """
    if name_or_path in PROFILES:
        text = resources.files("rdlens").joinpath(f"profiles/{name_or_path}.toml").read_text()
        source = name_or_path
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"profile must be one of {', '.join(PROFILES)} or a .toml file; "
                              f"{name_or_path!r} is neither")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"profile {path}: cannot be read ({exc})") from None
        source = str(path)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"profile {source}: not valid TOML ({exc})") from None
    names = systems.names()
    unknown = set(raw) - {"description", "paper_rows", "rows", "patterns", *names}
    if unknown:
        raise ConfigError(f"profile {source}: unknown section(s) {sorted(unknown)}; allowed: "
                          f"{', '.join(names)}, rows, patterns, description, paper_rows")
    paper_rows = raw.get("paper_rows", True)
    if not isinstance(paper_rows, bool):
        raise ConfigError(f"profile {source}: paper_rows must be true or false, got {paper_rows!r}")
    profile: dict[str, Any] = {"name": source, "description": str(raw.get("description", "")), "rows": {},
                               "extra_rows": [], "patterns": dict(_table(raw, "patterns", source)),
                               "paper_rows": paper_rows}
    for name in names:
        section = _table(raw, name, source)
        profile[name] = check_values(systems.get(name).options, section, f"profile {source} [{name}]")
    for row_id, values in _table(raw, "rows", source).items():
        if not isinstance(values, dict):
            raise ConfigError(f"profile {source}: rows.{row_id} must be a table, got {values!r}")
        where = f"profile {source} [rows.{row_id}]"
        values = dict(values)
        if row_id in ROW_IDS:
            system = next(r.system for r in ROWS if r.id == row_id)
            if values.pop("system", system) != system:
                raise ConfigError(f"{where}: row {row_id} is a {system} row; its system cannot change")
            profile["rows"][row_id] = check_values(systems.get(system).options, values, where)
            continue
        if "system" not in values:
            raise ConfigError(f"{where}: a new row needs system = one of {', '.join(names)}")
        system = systems.get(values.pop("system")).name
        label = values.pop("label", row_id)
        paper = values.pop("paper", None)
        if paper is not None and (not isinstance(paper, dict) or set(paper) != {"M_react", "M_diff", "R"}
                                  or not all(isinstance(v, (int, float)) for v in paper.values())):
            raise ConfigError(f"{where}: paper must be {{ M_react = number, M_diff = number, R = number }}, got {paper!r}")
        checked = check_values(systems.get(system).options, values, where)
        profile["extra_rows"].append(Row(row_id, system, str(label), checked, None, paper))
    if not paper_rows:
        if not profile["extra_rows"]:
            raise ConfigError(f"profile {source}: paper_rows = false leaves no rows; add [rows.NAME] tables "
                              "with system = ...")
        settings = sorted(profile["rows"])
        if settings:
            raise ConfigError(f"profile {source}: paper_rows = false, yet it sets Table 1 row(s) {settings}")
    return profile


def _table(raw: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    section = raw.get(key, {})
    if not isinstance(section, dict):
        raise ConfigError(f"profile {source}: [{key}] must be a table, got {section!r}")
    return section


def profile_rows(profile: dict[str, Any]) -> tuple[Row, ...]:
    """The rows a profile runs: Table 1's (unless it sets ``paper_rows = false``), then those it adds."""
    return (ROWS if profile.get("paper_rows", True) else ()) + tuple(profile["extra_rows"])


@dataclass
class Plan:
    """What will happen to one row and seed: its configuration, its data, or why it is skipped."""

    row: Row
    config: Any | None
    data: str
    skip_reason: str | None = None
    stand_in: bool = False

    @property
    def system(self) -> systems.System:
        return systems.get(self.row.system)

    @property
    def status(self) -> str:
        if self.skip_reason:
            return "skipped"
        return "stand-in data" if self.stand_in else "ran"

    @property
    def label(self) -> str:
        """The row's setting, with the stand-in data named when it ran on that."""
        return f"{self.row.label} ({self.data}, offline stand-in)" if self.stand_in else self.row.label


def row_values(row: Row, profile: dict[str, Any], seed: int, data_dir: str | None) -> dict[str, Any]:
    """A row's option values under ``profile`` (the order of precedence in the module doc)."""
    system = systems.get(row.system)
    values = {**system.reproduce_defaults, **profile.get(row.system, {}), **row.values,
              **profile["rows"].get(row.id, {}), "seed": seed}
    if data_dir is not None and any(o.name == "data_dir" for o in system.options):
        values["data_dir"] = data_dir
    return values


def plan_row(row: Row, profile: dict[str, Any], seed: int, data_dir: str | None) -> Plan:
    """Resolve a row's configuration under ``profile``; decide its data (or skipping)."""
    system = systems.get(row.system)
    values = row_values(row, profile, seed, data_dir)
    config = system.build(values)
    missing = system.missing_data(config)
    if missing is None:
        return Plan(row, config, system.data_label(config))
    if row.fallback is not None:
        config = system.build({**values, **row.fallback})
        return Plan(row, config, system.data_label(config), stand_in=True)
    what, how = missing
    reason = f"{row.label} {what}; to run this row: {how}"
    return Plan(row, None, system.data_label(config), reason)


def row_state(row_dir: Path, plan: Plan) -> tuple[str, str]:
    """(state, why): done (finished, same config, every result file as written), resume
    (unfinished or damaged results, same config, a checkpoint to continue from), extend (the
    config differs only by larger values of the system's ``extendable`` fields, a checkpoint to
    continue from) or fresh."""
    cfg_file = row_dir / "config.json"
    if not cfg_file.exists():
        return "fresh", ""
    wanted = config_json(plan.system, plan.config)
    try:
        saved = json.loads(cfg_file.read_text())
    except (OSError, ValueError):
        return "fresh", ""
    if isinstance(saved, dict):
        if TORCH_THREADS in wanted and TORCH_THREADS not in saved:
            saved[TORCH_THREADS] = saved_torch_threads(row_dir)  # recorded beside it by older rdlens, or None
        defaults = config_json(plan.system, plan.system.config_type()())
        defaults.pop(TORCH_THREADS, None)  # a thread count is never assumed: torch's numbers depend on it
        saved = _with_new_defaults(saved, wanted, defaults)
    if saved != wanted:
        return _extension(row_dir, plan, saved, wanted)
    finished = (row_dir / "summary.json").exists()
    damage = verify(row_dir) if finished else None
    if finished and damage is None:
        return "done", ""
    why = f" ({damage})" if damage else ""
    checkpoint = row_dir / "checkpoint.pt"
    if plan.system.resumable and checkpoint.exists() and (damage is None or str(checkpoint) not in damage):
        return "resume", why
    return "fresh", why


def _with_new_defaults(saved: dict[str, Any], wanted: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``saved`` with the fields it lacks filled in where the wanted value is the field's
    default: a row written before rdlens had a setting ran as that setting's default does."""
    out = dict(saved)
    for key, value in wanted.items():
        if key not in out:
            if key in defaults and defaults[key] == value:
                out[key] = value
        elif isinstance(value, dict) and isinstance(out[key], dict) and isinstance(defaults.get(key), dict):
            out[key] = _with_new_defaults(out[key], value, defaults[key])
    return out


def _extension(row_dir: Path, plan: Plan, saved: dict[str, Any], wanted: dict[str, Any]) -> tuple[str, str]:
    """("extend", what grows) when only extendable fields grew and an intact checkpoint exists."""
    system = plan.system
    changed = {k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k)}
    checkpoint = row_dir / "checkpoint.pt"
    grows = (changed and system.resumable and changed <= set(system.extendable) and checkpoint.exists()
             and system.can_extend(wanted)
             and all(isinstance(saved.get(k), int) and isinstance(wanted.get(k), int) and wanted[k] > saved[k]
                     for k in changed))
    if not grows or ((row_dir / "summary.json").exists() and verify(row_dir) is not None):
        return "fresh", ""
    return "extend", ", ".join(f"{k} {saved[k]} -> {wanted[k]}" for k in sorted(changed))


def default_dir(profile: dict[str, Any], out: str | os.PathLike | None) -> Path:
    """``OUT/reproduce-PROFILE``: the same command finds its own earlier rows (and seeds) again."""
    return Path(out or default_runs_root()) / f"reproduce-{Path(profile['name']).stem}"


def reproduce(
    profile_name: str = "quick",
    *,
    out: str | os.PathLike | None = None,
    run_dir: str | os.PathLike | None = None,
    rows: tuple[str, ...] | None = None,
    seed: int = 0,
    seeds: int = 1,
    controls: bool = False,
    claims: bool = False,
    data_dir: str | None = None,
    download: bool = False,
    device: str = "auto",
    force: bool = False,
    jobs: int = 1,
    scheduler: str | None = None,
    embed: list[str | os.PathLike] | None = None,
    bars: Bars | None = None,
    log: Callable[[str], None] = print,
) -> tuple[Path, str, bool]:
    """Run (or reuse) the requested rows (default: all of the profile's) for seeds
    ``seed ... seed + seeds - 1`` (and their controls and claims' measurements), then write the
    tables, figures and the report page. ``jobs`` > 1 runs up to that many rows and seeds side
    by side in worker processes, ``scheduler`` (a Dask scheduler's address) on that cluster's
    workers (:mod:`rdlens.studies.tasks`): the same numbers either way. ``embed`` names the other
    studies (a patterns study, a sweep) whose results the page shows; each is verified first,
    and the list is kept for later reports (None keeps the folder's list, [] clears it).

    Returns (folder, Markdown table, whether every requested row ran).
    """
    jobs = check_jobs(jobs)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"seeds must be an integer in [1, {MAX_SEEDS}], got {seeds!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED - seeds + 1:
        raise ConfigError(f"seed must be an integer in [0, {MAX_SEED - seeds + 1}] (with --seeds {seeds}), got {seed!r}")
    profile = load_profile(profile_name)
    known = profile_rows(profile)
    ids = tuple(r.id for r in known)
    rows = ids if rows is None else rows
    if not rows:
        raise ConfigError(f"no rows asked for; rows are {', '.join(ids)}")
    bad = [r for r in rows if r not in ids]
    if bad:
        raise ConfigError(f"unknown row(s) {bad}; rows are {', '.join(ids)}")
    seed_list = list(range(seed, seed + seeds))
    chosen = [r for r in known if r.id in rows]
    if download:
        _download_missing(chosen, profile, seed, data_dir, log)
    plans = {s: [plan_row(r, profile, s, data_dir) for r in chosen] for s in seed_list}
    from rdlens.core.torchutil import resolve_device

    resolve_device(device)  # refuse a missing GPU before any work, even where no row would use it
    for r in {p.row.system for p in plans[seed_list[0]]}:
        resolve(systems.get(r), device)
    for p in plans[seed_list[0]]:
        if p.config is not None:
            check_memory(f"row {p.row.id}", p.system.memory_bytes(p.config))
            p.system.validate(p.config)
    needs = [p.system.memory_bytes(p.config) for s in seed_list for p in plans[s] if p.config is not None]
    check_memory(f"{min(jobs, max(1, len(needs)))} rows at once (--jobs {jobs})",
                 sum(sorted(needs, reverse=True)[:jobs]))
    folder = Path(run_dir) if run_dir is not None else default_dir(profile, out)
    check_writable(folder)
    if scheduler is not None:
        check_scheduler(scheduler, "reproduce")
    embedded = layout.check_embeds(folder, embed)
    with claim(folder, "reproduce", {}, compare=False) as study:  # each row compares its own settings
        if embed is not None:
            layout.write_embeds(folder, embedded)
        return _reproduce(study, profile, rows, plans, seed, seed_list, controls, claims, data_dir, device, force,
                          jobs, scheduler, bars, log)


def _download_missing(rows: list[Row], profile: dict[str, Any], seed: int, data_dir: str | None,
                      log: Callable[[str], None]) -> None:
    """``--download``: fetch the data each chosen row lacks (once per data set), before planning."""
    done: set[str] = set()
    for row in rows:
        system = systems.get(row.system)
        config = system.build(row_values(row, profile, seed, data_dir))
        label = system.data_label(config)
        if system.missing_data(config) is None or label in done:
            continue
        done.add(label)
        log(f"{row.id:<28} fetching {label} into {data_dir}")
        failure = system.fetch_data(config)
        log(f"{row.id:<28} " + ("fetched and verified" if failure is None else f"could not fetch: {failure}"))


def _reproduce(study: Study, profile: dict[str, Any], rows: tuple[str, ...], plans: dict[int, list[Plan]],
               seed: int, seed_list: list[int], controls: bool, claims: bool, data_dir: str | None, device: str,
               force: bool, jobs: int, scheduler: str | None, bars: Bars | None, log: Callable[[str], None]
               ) -> tuple[Path, str, bool]:
    """The work of :func:`reproduce` once the plan is checked and the folder claimed: rows x
    seeds are the study's stages."""
    folder = study.folder
    write_json(folder / layout.PLAN, {"profile": profile["name"], "seeds": seed_list, "data_dir": data_dir,
                                      "controls": controls, "claims": claims, "rows": list(rows)})
    for s in seed_list:
        for plan in plans[s]:
            if plan.skip_reason:
                log(f"{plan.row.id + ' seed ' + str(s):<28} skipped: {plan.skip_reason}")
    work = [Task(f"{p.row.id} seed {s}", _do_row, (p, s, folder, force, controls, claims, device),
                 weight=p.system.work(p.config))
            for s in seed_list for p in plans[s] if not p.skip_reason]
    study.timings.update(run_tasks(work, jobs, bars=bars or no_bars, log=log, scheduler=scheduler, where=study.where))
    first = plans[seed_list[0]]
    rows_info = [{"id": p.row.id, "system": p.row.system, "title": p.system.title, "setting": p.row.label,
                  "data": p.data, "status": p.status, "reason": p.skip_reason, "dir": f"rows/{p.row.id}",
                  "paper": p.row.paper} for p in first]
    layout.write_rows(folder, {"profile": profile["name"], "description": profile["description"],
                               "seeds": seed_list, "controls": controls, "claims": claims, "rows": rows_info})
    from rdlens.report import build_report, published_files

    with study.timed("tables, figures and page"):
        table = build_report(folder)
    complete = all(p.skip_reason is None for p in first)
    study.finish({"profile": profile["name"], "seeds": seed_list, "rows": {p.row.id: p.status for p in first},
                  "complete": complete}, published_files(folder),
                 seed=seed, device=device, profile=profile["name"], seeds=seed_list, rows=[p.row.id for p in first],
                 controls=controls, claims=claims, jobs=jobs, scheduler=scheduler,
                 torch_threads=threads.POLICY.torch_threads())
    return folder, table, complete


def _do_row(plan: Plan, seed: int, folder: Path, force: bool, controls: bool, claims: bool, device: str, *,
            bars: Bars, log: Callable[[str], None]) -> dict[str, float]:
    """Run, reuse or resume one row and seed; then its controls and claims if asked and not yet
    there. Returns the wall time of each stage it ran (for the study's manifest)."""
    tag = f"{plan.row.id} seed {seed}"
    timings: dict[str, float] = {}
    row_dir = layout.seed_dir(folder, plan.row.id, seed)
    state, why = ("fresh", "") if force else row_state(row_dir, plan)
    if state == "done":
        log(f"{tag:<28} reused (finished, same configuration)")
    else:
        if state == "fresh" and row_dir.exists():
            shutil.rmtree(row_dir)
        (row_dir / "summary.json").unlink(missing_ok=True)  # a damaged finished row resumes as unfinished
        for stale in (CONTROLS, CLAIMS, *(p.name for p in row_dir.glob("control-*.csv"))):
            (row_dir / stale).unlink(missing_ok=True)  # measured on the model before it was resumed or extended
        row_dir.mkdir(parents=True, exist_ok=True)
        note = f" (offline stand-in: {plan.data})" if plan.stand_in else ""
        if state == "extend":
            log(f"{tag:<28} extending from its checkpoint ({why}): the same result as a run of that length")
            write_json(row_dir / "config.json", config_json(plan.system, plan.config))
        elif why:
            log(f"{tag:<28} recomputing: the saved result cannot be trusted{why}")
        log(f"{tag:<28} {'running' if state == 'fresh' else 'resuming'}{note}")
        t0 = time.perf_counter()
        run(plan.system, plan.config, run_dir=row_dir, resume=state != "fresh", device=device, bars=bars,
            setting=plan.label)
        timings[tag] = time.perf_counter() - t0
        log(f"{tag:<28} done in {timings[tag]:.1f} s")
    if controls and CONTROLS not in listed_files(row_dir):
        t0 = time.perf_counter()
        measured = plan.system.controls(plan.config, row_dir, resolve(plan.system, device))
        timings[f"{tag} controls"] = time.perf_counter() - t0
        if measured is None:
            log(f"{tag:<28} no controls defined for the {plan.system.name} system")
        else:
            results, traces = measured
            for name, tr in traces.items():
                tr.save(row_dir / f"control-{name}.csv")
            write_json(row_dir / CONTROLS, results)
            add_files(row_dir, [CONTROLS, *(f"control-{name}.csv" for name in traces)])
            log(f"{tag:<28} controls done in {time.perf_counter() - t0:.1f} s")
    if claims and CLAIMS not in listed_files(row_dir):
        t0 = time.perf_counter()
        measured = plan.system.claims(plan.config, row_dir, resolve(plan.system, device))
        timings[f"{tag} claims"] = time.perf_counter() - t0
        if measured is not None:
            write_json(row_dir / CLAIMS, measured)
            add_files(row_dir, [CLAIMS])
            log(f"{tag:<28} claims measured in {timings[f'{tag} claims']:.1f} s")
    return timings
