"""The ``rdlens`` command. It only parses arguments and calls the library.

Bad settings become one line on stderr and exit status 2 (before any work starts); a run
that diverges exits with 1; Ctrl-C exits with 130 and leaves no finished-looking result.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import MISSING, fields
from typing import Any, Sequence

from rdlens import __version__
from rdlens.errors import ConfigError, SimulationDiverged

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show every default, except where the help text already explains it."""

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


def _defaults(cls: type) -> dict[str, Any]:
    """Field defaults of a config dataclass, so the CLI never restates a default."""
    out = {}
    for f in fields(cls):
        if f.default is not MISSING:
            out[f.name] = f.default
    return out


def _add_rd(sub: argparse._SubParsersAction) -> None:
    from rdlens.experiment import RDRun
    from rdlens.grayscott import DTYPES, GrayScott

    m, r = _defaults(GrayScott), _defaults(RDRun)
    p = _subcommand(
        sub,
        "rd",
        help="run a Gray-Scott reaction-diffusion simulation and measure its balance",
        description="Gray-Scott reaction-diffusion on a periodic grid (explicit Euler, 5-point Laplacian).\n"
        "Writes the final v field, trace.csv, summary.json, config.json and manifest.json to a new run\n"
        "directory. Defaults are the paper's: --F 0.029 gives spots, --F 0.055 stripes.",
    )
    p.add_argument("--F", type=float, default=m["F"], help="feed rate")
    p.add_argument("--k", type=float, default=m["k"], help="kill rate")
    p.add_argument("--Du", type=float, default=m["Du"], help="diffusion coefficient of u")
    p.add_argument("--Dv", type=float, default=m["Dv"], help="diffusion coefficient of v")
    p.add_argument("--size", type=int, default=None,
                   help=f"grid points per side N (default: {m['size']}, or the --init file's size)")
    p.add_argument("--length", type=float, default=m["length"], help="side L of the periodic domain (h = L/N)")
    p.add_argument("--dt", type=float, default=m["dt"], help="time step; dt*max(Du,Dv)/h^2 must be <= 1/4")
    p.add_argument("--steps", type=int, default=r["steps"], help="number of time steps")
    p.add_argument("--seed", type=int, default=r["seed"], help="seed of the initial noise")
    p.add_argument("--dtype", choices=DTYPES, default=m["dtype"], help="floating-point type of the fields")
    p.add_argument("--init", default=r["init"], metavar="STATE.npz",
                   help="start from arrays u, v in this .npz (default: Pearson's centred square + noise)")
    p.add_argument("--save-state", action="store_true", help="also write the final u, v to state.npz (default: off)")
    p.add_argument("--snapshot-every", type=int, default=r["snapshot_every"],
                   help="keep v every K steps in snapshots.npz (0: none)")
    p.add_argument("--stop-tol", type=float, default=r["stop_tol"],
                   help="stop once the RMS change of v in one step < this (0: run all steps)")
    p.add_argument("--residual", action="store_true",
                   help="also record ||dv/dt|| per step in trace.csv, the distance from a steady state (default: off)")
    p.add_argument("--stop-after", type=int, default=r["stop_after"], help="earliest step for an early stop")
    p.add_argument("--out", default=None, help="folder for run directories (default: ./runs, or $RDLENS_RUNS)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: shown on a terminal)")
    p.set_defaults(func=_cmd_rd)


def _cmd_rd(args: argparse.Namespace) -> int:
    from rdlens import grayscott
    from rdlens.experiment import RDRun, run_rd

    size = args.size
    if args.init is not None and size is None:
        size = grayscott.load_state(args.init)[0].shape[0]
    model = grayscott.GrayScott(
        F=args.F, k=args.k, Du=args.Du, Dv=args.Dv, size=size if size is not None else grayscott.GrayScott.size,
        length=args.length, dt=args.dt, dtype=args.dtype,
    )
    cfg = RDRun(model=model, steps=args.steps, seed=args.seed, init=args.init, snapshot_every=args.snapshot_every,
                stop_tol=args.stop_tol, stop_after=args.stop_after, save_state=args.save_state,
                residual=args.residual)
    with _progress(cfg.steps, "Gray-Scott", args.quiet) as bar:
        rd, summary, _ = run_rd(cfg, args.out, progress=bar.update)
    _finish(summary, args.json)
    return 0


def _add_run_options(p: argparse.ArgumentParser, seed: int, seed_help: str) -> None:
    """Options every training command shares: seed, device, resume, output and reporting."""
    from rdlens.torchutil import DEVICES

    p.add_argument("--seed", type=int, default=seed, help=seed_help)
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available, else cpu")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue an interrupted run from its last checkpoint, with its saved settings (default: new run)")
    p.add_argument("--out", default=None, help="folder for run directories (default: ./runs, or $RDLENS_RUNS)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: shown on a terminal)")


def _preset_help(settings: dict[str, dict[str, Any]], key: str, text: str) -> str:
    """Help text naming each preset's value of ``key`` (the default comes from --setting)."""
    values = ", ".join(f"{name} {preset[key]}" for name, preset in settings.items())
    return f"{text} (default: from --setting: {values})"


def _add_lstm(sub: argparse._SubParsersAction) -> None:
    from rdlens.lstm import EVAL_MODES, INITS, SETTINGS, LSTMConfig
    from rdlens.sequences import DATASETS, SequenceConfig

    c, d = _defaults(LSTMConfig), _defaults(SequenceConfig)
    p = _subcommand(
        sub,
        "lstm",
        help="train an LSTM on sequence data and measure the balance of its cell-state update",
        description="Train one torch.nn.LSTM layer (1 input, 16 hidden units, linear read-out) for next-step\n"
        "prediction, then measure reaction ||i*g|| and diffusion ||(1-f)*C_prev|| of its gates on\n"
        "held-out sequences. Interrupt with Ctrl-C and continue with --resume RUN_DIR.",
    )
    p.add_argument("--dataset", choices=DATASETS, default=d["dataset"], help="sequence data set")
    p.add_argument("--setting", choices=list(SETTINGS), default="default",
                   help="preset: default (PyTorch init, mini-batches, teacher-forced metric) or paper "
                        "(its public code: N(0,1) init, whole set as one batch, lr 1e-2, 200 steps, free-running metric)")
    p.add_argument("--steps", type=int, default=None, help=_preset_help(SETTINGS, "steps", "optimiser steps"))
    p.add_argument("--batch-size", type=int, default=None, help=_preset_help(SETTINGS, "batch_size", "sequences per step, 0 = all"))
    p.add_argument("--lr", type=float, default=None, help=_preset_help(SETTINGS, "lr", "Adam learning rate"))
    p.add_argument("--init", choices=INITS, default=None, help=_preset_help(SETTINGS, "init", "initial weights"))
    p.add_argument("--eval-mode", choices=EVAL_MODES, default=None,
                   help=_preset_help(SETTINGS, "eval_mode", "teacher-forced over held-out sequences, or free-running generation"))
    p.add_argument("--hidden", type=int, default=c["hidden"], help="hidden units")
    p.add_argument("--layers", type=int, default=c["layers"], help="stacked LSTM layers (metric on the last)")
    p.add_argument("--sequences", type=int, default=d["n_sequences"], help="sequences in the data set (train + test)")
    p.add_argument("--length", type=int, default=d["length"], help="samples per sequence")
    p.add_argument("--test-fraction", type=float, default=d["test_fraction"], help="share held out for evaluation")
    p.add_argument("--noise", type=float, default=None,
                   help=_preset_help(SETTINGS, "sine_noise", "observation noise std (sine; 0 for the ODEs unless given)"))
    p.add_argument("--mu", type=float, default=d["mu"], help="Van der Pol damping parameter")
    p.add_argument("--eval-sequences", type=int, default=c["eval_sequences"], help="held-out sequences measured (0: all)")
    p.add_argument("--checkpoint-every", type=int, default=c["checkpoint_every"], help="checkpoint interval in steps")
    _add_run_options(p, c["seed"], "seeds data, initial weights and batch order")
    p.set_defaults(func=_cmd_lstm)


def _cmd_lstm(args: argparse.Namespace) -> int:
    from rdlens import lstm
    from rdlens.experiment import run_lstm

    cfg = lstm.config_for(
        args.setting, args.dataset,
        data={"n_sequences": args.sequences, "length": args.length, "test_fraction": args.test_fraction,
              "noise": args.noise, "mu": args.mu},
        steps=args.steps, batch_size=args.batch_size, lr=args.lr, init=args.init, eval_mode=args.eval_mode,
        hidden=args.hidden, layers=args.layers, eval_sequences=args.eval_sequences,
        checkpoint_every=args.checkpoint_every, seed=args.seed,
    )
    with _progress(cfg.steps, f"LSTM {cfg.data.dataset}", args.quiet) as bar:
        _, summary = run_lstm(cfg, args.out, resume_dir=args.resume, device=args.device, progress=bar.update)
    _finish(summary, args.json)
    return 0


def _int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_ddpm(sub: argparse._SubParsersAction) -> None:
    from rdlens.ddpm import SCHEDULES, SETTINGS, SIGMAS, DDPMConfig, Schedule
    from rdlens.images import DATASETS

    c, sch = _defaults(DDPMConfig), _defaults(Schedule)
    p = _subcommand(
        sub,
        "ddpm",
        help="train a DDPM on images and measure the balance of its reverse process",
        description="Train an eps-prediction U-Net (Ho et al. 2020), sample a batch with the instrumented reverse\n"
        "process and measure reaction ||mu_theta - x_t|| and diffusion ||sigma_t z|| at every step.\n"
        "Offline data sets: digits (scikit-learn's handwritten digits) and turing (Gray-Scott patterns);\n"
        "mnist, fashion-mnist and cifar10 are read from --data-dir (see: rdlens data download).",
    )
    p.add_argument("--dataset", choices=DATASETS, default=c["dataset"], help="image data set")
    p.add_argument("--data-dir", default=None, help="folder with the real data sets in torchvision's layout "
                   "(default: none; needed for mnist, fashion-mnist, cifar10)")
    p.add_argument("--setting", choices=list(SETTINGS), default="default",
                   help="preset: default (small U-Net for a CPU) or paper (its public code's sizes and training)")
    p.add_argument("--steps", type=int, default=None, help=_preset_help(SETTINGS, "steps", "training steps"))
    p.add_argument("--batch-size", type=int, default=None, help=_preset_help(SETTINGS, "batch_size", "images per step"))
    p.add_argument("--lr", type=float, default=None, help=_preset_help(SETTINGS, "lr", "AdamW learning rate"))
    p.add_argument("--ema", type=float, default=None, help=_preset_help(SETTINGS, "ema", "EMA decay of the weights"))
    p.add_argument("--samples", type=int, default=None, help=_preset_help(SETTINGS, "samples", "images sampled and measured"))
    p.add_argument("--channels", type=_int_tuple, default=None, metavar="C1,C2,...",
                   help="U-Net width per resolution level (default: from --setting: default 16,32,64, paper 32,64,128,256)")
    p.add_argument("--T", type=int, default=sch["T"], help="diffusion steps")
    p.add_argument("--schedule", choices=SCHEDULES, default=sch["kind"], help="beta schedule")
    p.add_argument("--sigma", choices=SIGMAS, default=c["sigma"], help="reverse-step noise: sqrt(beta_t) or posterior")
    p.add_argument("--grid-every", type=int, default=c["grid_every"], help="sample grid every N training steps (0: none)")
    p.add_argument("--checkpoint-every", type=int, default=c["checkpoint_every"], help="checkpoint interval in steps")
    p.add_argument("--max-images", type=int, default=c["max_images"], help="use at most N training images (0: all)")
    _add_run_options(p, c["seed"], "seeds data order, weights, noise and sampling")
    p.set_defaults(func=_cmd_ddpm)


def _cmd_ddpm(args: argparse.Namespace) -> int:
    from rdlens import ddpm
    from rdlens.experiment import run_ddpm

    cfg = ddpm.config_for(
        args.setting, args.dataset, unet={"channels": args.channels},
        schedule={"T": args.T, "kind": args.schedule},
        data_dir=args.data_dir, steps=args.steps, batch_size=args.batch_size, lr=args.lr, ema=args.ema,
        samples=args.samples, sigma=args.sigma, grid_every=args.grid_every, checkpoint_every=args.checkpoint_every,
        max_images=args.max_images, seed=args.seed,
    )
    _, summary = run_ddpm(cfg, args.out, resume_dir=args.resume, device=args.device,
                          bars=lambda desc, total: _progress(total, desc, args.quiet))
    _finish(summary, args.json)
    return 0


def _add_data(sub: argparse._SubParsersAction) -> None:
    from rdlens.images import SOURCES

    p = _subcommand(sub, "data", help="manage image data sets (download)")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    d = _subcommand(dsub, "download", help="download a data set's official files and verify their checksums",
                    description="Fetch the official files into --data-dir in torchvision's layout, verify MD5 checksums,\n"
                    "write atomically and extract safely. Needs network access to the official hosts.")
    d.add_argument("name", choices=list(SOURCES), help="data set")
    d.add_argument("--data-dir", required=True, help="destination folder (torchvision's layout underneath)")
    d.add_argument("--mirror", default=None, help="base URL to fetch the same file names from (default: official hosts)")
    d.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server")
    d.set_defaults(func=_cmd_download)


def _cmd_download(args: argparse.Namespace) -> int:
    from rdlens.images import DownloadError, download

    try:
        folder = download(args.name, args.data_dir, mirror=args.mirror, timeout=args.timeout)
    except DownloadError as exc:
        print(f"rdlens data download: {exc}; nothing was left behind", file=sys.stderr)
        return EXIT_FAILED
    print(f"{args.name}: verified files in {folder}")
    return 0


EXIT_PARTIAL = 3


def _add_reproduce(sub: argparse._SubParsersAction) -> None:
    from rdlens.reproduce import PROFILES, ROW_IDS
    from rdlens.torchutil import DEVICES

    p = _subcommand(
        sub,
        "reproduce",
        help="run the paper's Table 1 rows and write its tables and figures beside the paper's values",
        description="Run the eight rows of the paper's Table 1 (RD spot/stripe; LSTM sine, Lorenz, Van der Pol;\n"
        "DDPM MNIST, FashionMNIST, CIFAR10) under a profile and write table1.{md,csv,json,tex},\n"
        "fig2.{png,svg}, fig3.png and patterns.png into one folder, each row's run directory under rows/.\n"
        "Re-running reuses finished rows and resumes unfinished ones. Exit status: 0 if every requested\n"
        "row ran, 3 if some were skipped for missing data (the table says how to get it).",
    )
    p.add_argument("--profile", default="quick", metavar="NAME|FILE.toml",
                   help=f"settings of every row: {', '.join(PROFILES)}, or your own TOML file")
    p.add_argument("--rows", default=",".join(ROW_IDS), metavar="ID,ID,...", help="rows to run")
    p.add_argument("--seed", type=int, default=0, help="first seed of every row (data, weights, noise, sampling)")
    p.add_argument("--seeds", type=int, default=1,
                   help="independent seeds per row (seed, seed+1, ...); tables give means and 95 %% intervals")
    p.add_argument("--controls", action="store_true",
                   help="also measure each row's controls (untrained models, oracles, identities, homogeneous "
                        "start) and write controls.md/.json/.png (default: off)")
    p.add_argument("--data-dir", default=os.environ.get("RDLENS_DATA"),
                   help="folder with MNIST/FashionMNIST/CIFAR10 in torchvision's layout (default: $RDLENS_DATA, "
                        "else none: the MNIST row uses the offline digits, the others are skipped)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="auto = cuda if available, else cpu")
    p.add_argument("--out", default=None,
                   help="parent folder (default: ./runs); the run goes to OUT/reproduce-PROFILE")
    p.add_argument("--force", action="store_true", help="recompute every row, even finished ones (default: reuse)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: shown on a terminal)")
    p.set_defaults(func=_cmd_reproduce)

    r = _subcommand(sub, "report", help="rebuild the tables and figures of a reproduce folder from its saved rows",
                    description="Rebuild table1.*, fig2.*, fig3.png and patterns.png from the saved traces and\n"
                    "summaries of a `rdlens reproduce` folder, recomputing nothing.")
    r.add_argument("run_dir", metavar="RUN_DIR", help="a folder written by rdlens reproduce")
    r.set_defaults(func=_cmd_report)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from rdlens.reproduce import reproduce

    rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
    log = lambda line: print(line, file=sys.stderr)  # noqa: E731
    folder, table, complete = reproduce(
        args.profile, out=args.out, rows=rows, seed=args.seed, seeds=args.seeds, controls=args.controls,
        data_dir=args.data_dir, device=args.device,
        force=args.force, bars=lambda desc, total: _progress(total, desc, args.quiet), log=log,
    )
    print(table)
    print(f"run directory: {folder}")
    return 0 if complete else EXIT_PARTIAL


def _cmd_report(args: argparse.Namespace) -> int:
    from rdlens.report import build_report

    print(build_report(args.run_dir))
    return 0


def _finish(summary: dict[str, Any], as_json: bool) -> None:
    """Print the summary (JSON on stdout, or a few readable lines) and the run directory."""
    from rdlens.rundir import dumps

    if as_json:
        sys.stdout.write(dumps(summary))
        return
    print(f"{summary['system']}  {summary['setting']}")
    print(f"  M_react = {summary['M_react']:.4f}   M_diff = {summary['M_diff']:.4f}   "
          f"R = {summary['R']:.4f}   final R = {summary['final_R']:.4f}")
    if "test_mse" in summary:
        print(f"  test MSE = {summary['test_mse']:.5f}   repeat-last-value MSE = {summary['naive_mse']:.5f}   "
              f"({summary['eval_mode']} mode)")
    if "M_score" in summary:
        print(f"  score-only M = {summary['M_score']:.4f} (R_score = {summary['R_score']:.4f})   "
              f"final loss = {summary['final_loss']:.4f}   last step excluded (no noise)")
    print(f"run directory: {summary['run_dir']}")


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=True if quiet else None, file=sys.stderr,
                dynamic_ncols=True, leave=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rdlens",
        formatter_class=_Formatter,
        description="Measure reaction and diffusion inside Gray-Scott, LSTM and DDPM dynamics and put them\n"
        "on one dimensionless scale, the Dynamic Balance Ratio R = M_react / M_diff.",
    )
    parser.add_argument("--version", action="version", version=f"rdlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_rd(sub)
    _add_lstm(sub)
    _add_ddpm(sub)
    _add_data(sub)
    _add_reproduce(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rdlens`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"rdlens {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except SimulationDiverged as exc:
        print(f"rdlens {args.command}: {exc}; no result was written", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\nrdlens {args.command}: interrupted; no finished result was written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
