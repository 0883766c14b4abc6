"""Figures of a patterns study (``rdlens patterns``), drawn from its saved stages only.

- ``patterns.png/.svg``: example v fields of every system side by side, one colour scale;
- ``distributions.png/.svg``: each measure's distribution per system (from measures.csv);
- ``balance.png/.svg``: each system's R(tau) on this task with R = 1 marked;
- ``drift.png/.svg``: the ConvLSTM's long rollout against the true dynamics, frame by frame.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from rdlens.core.balance import BalanceTrace, normalised_time
from rdlens.plot import pyplot, save_formats

COLORS = {"gray-scott": "C0", "gray-scott-1x": "C0", "gray-scott-long": "C0", "convlstm-1x": "C1",
          "convlstm-long": "C1", "ddpm": "C2"}


def figures(folder: Path, cfg: Any) -> None:
    """Write every figure of the study in ``folder``."""
    fields_figure(folder, cfg)
    distributions_figure(folder)
    balance_figure(folder, cfg)
    drift_figure(folder, cfg)


def fields_figure(folder: Path, cfg: Any) -> None:
    from rdlens.measures.patterns import TITLES, from_unit

    plt = pyplot()
    pairs = cfg.setting_pairs
    gt = np.load(folder / "ground-truth" / "fields.npz")
    truth = np.load(folder / "ground-truth" / "truth.npz")
    seed = cfg.seed
    roll = np.load(folder / "convlstm" / f"seed{seed}" / "rollouts.npz")["x"]
    with np.load(folder / "ddpm" / f"seed{seed}" / "samples.npz") as f:
        samples, conditioned = f["x"], "F" in f.files
    measures = {(r["system"], r["seed"], r["index"]): r for r in _rows(folder)}
    first_gt = [int(np.flatnonzero((gt["F"] == F) & (gt["k"] == k))[0]) for F, k in pairs]
    first_roll = [int(np.flatnonzero((truth["F"] == F) & (truth["k"] == k))[0]) for F, k in pairs]
    panels: list[tuple[str, list[tuple[np.ndarray, str]]]] = [
        ("gray-scott", [(gt["v"][j], _caption(measures.get(("gray-scott", -1, j)))) for j in first_gt])]
    for system, source, frame, s in (("gray-scott-1x", truth["x"], cfg.data.frames, -1),
                                     ("convlstm-1x", roll, cfg.data.frames, seed),
                                     ("gray-scott-long", truth["x"], -1, -1),
                                     ("convlstm-long", roll, -1, seed)):
        panels.append((system, [(from_unit(source[j, frame])[1], _caption(measures.get((system, s, j))))
                                for j in first_roll]))
    panels.append(("ddpm", [(from_unit(samples[j])[1], _caption(measures.get(("ddpm", seed, j))))
                            for j in range(min(len(pairs), len(samples)))]))
    vmax = float(np.max(gt["v"]))
    cols = len(pairs)
    fig, axes = plt.subplots(len(panels), cols, figsize=(1.9 * cols + 1.2, 1.9 * len(panels)), squeeze=False,
                             constrained_layout=True)
    im = None
    for r, (system, fields) in enumerate(panels):
        for c in range(cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(fields):
                field, caption = fields[c]
                im = ax.imshow(np.where(np.isfinite(field), field, np.nan), cmap="viridis", vmin=0.0, vmax=vmax)
                ax.set_title(caption, fontsize=7)
            else:
                ax.axis("off")
            if c == 0:
                ax.set_ylabel(TITLES[system], fontsize=8)
    for c, (F, k) in enumerate(pairs):
        axes[0, c].set_title(f"F = {F:g}, k = {k:g}\n" + axes[0, c].get_title(), fontsize=7)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.6, label="v (same scale in every panel)")
    ddpm = ("its first sample at each setting, drawn and judged there" if conditioned
            else "its first samples, judged at the setting of smallest residual")
    fig.suptitle(f"v fields: one start per setting (DDPM: {ddpm})", fontsize=9)
    save_formats(fig, folder / "patterns")


def _caption(row: dict[str, Any] | None) -> str:
    if row is None:
        return ""
    if row.get("label") == "blown up":
        return "blown up"
    res = row.get("residual")
    res_text = f", res {float(res):.2g}" if res not in (None, "") and math.isfinite(float(res)) else ""
    return f"{row.get('label', '')}{res_text}"


def _rows(folder: Path) -> list[dict[str, Any]]:
    with open(folder / "measures.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["seed"], r["index"] = int(r["seed"]), int(r["index"])
    return rows


def _numbers(rows: list[dict[str, Any]], system: str, key: str) -> np.ndarray:
    out = []
    for r in rows:
        if r["system"] == system and r.get(key) not in (None, ""):
            x = float(r[key])
            if math.isfinite(x):
                out.append(x)
    return np.array(out)


def _style(system: str) -> str:
    """Dash-dot for Gray-Scott's stationary fields (the DDPM's reference), solid for the DDPM and
    for both systems within the training horizon, dashed for the long horizon: no two curves of
    one colour share a style."""
    return "-." if system == "gray-scott" else "-" if system == "ddpm" or system.endswith("1x") else "--"


def _shares(ax: Any, values: np.ndarray, bins: np.ndarray, **style: Any) -> np.ndarray:
    """A step histogram of the share of ``values`` in each bin (values outside the bins in the
    end bins), and those shares: they add up to 1 whatever the bin widths, so a system whose
    values sit in the wide bins of a log axis is as visible as one in its narrow bins (a density
    was not)."""
    return ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, weights=np.full(len(values), 1.0 / len(values)),
            histtype="step", linewidth=1.4, **style)[0]


def distributions_figure(folder: Path) -> None:
    from rdlens.measures.patterns import SYSTEMS, TITLES

    plt = pyplot()
    rows = _rows(folder)
    keys = [("wavelength", "dominant wavelength (domain units)", False),
            ("spectral_entropy", "spectral entropy (0: one wavelength, 1: noise)", False),
            ("components", "connected components above the v threshold", False),
            ("elongation", "mean elongation of components", False),
            ("residual", "relative residual ||dv/dt|| / ||reaction||", True),
            ("correlation", "correlation with itself after continuing", False)]
    present = [s for s in SYSTEMS if any(r["system"] == s for r in rows)]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for ax, (key, label, log) in zip(axes.flat, keys):
        data = [_numbers(rows, s, key) for s in present]
        finite = np.concatenate([d for d in data if len(d)]) if any(len(d) for d in data) else np.array([1.0])
        if log:
            finite = finite[finite > 0] if (finite > 0).any() else np.array([1e-6, 1.0])
            bins = np.logspace(np.log10(finite.min()), np.log10(finite.max()) + 1e-9, 25)
            ax.set_xscale("log")
        else:
            lo, hi = float(finite.min()), float(finite.max())
            bins = np.linspace(lo, hi + max(1e-9, 1e-6 * abs(hi)), 25)
        for s, d in zip(present, data):
            if len(d):
                _shares(ax, d, bins, color=COLORS[s], linestyle=_style(s), label=f"{TITLES[s]} (n = {len(d)})")
        missing = [TITLES[s] for s, d in zip(present, data) if not len(d)]
        if missing:  # said on the panel, not left out silently
            ax.text(0.98, 0.97, "no values: " + ", ".join(missing), transform=ax.transAxes, ha="right", va="top",
                    fontsize=7, color="0.35", wrap=True)
        ax.set_xlabel(label)
        ax.set_ylabel("share of fields")
    from matplotlib.lines import Line2D

    fig.legend([Line2D([], [], color=COLORS[s], linestyle=_style(s), lw=1.4) for s in present],
               [TITLES[s] for s in present], loc="outside lower center", ncol=min(len(present), 5), fontsize=8)
    fig.suptitle("Distributions of each measure over patterns and seeds (dash-dot: Gray-Scott stationary; solid: "
                 "at the horizon and DDPM; dashed: long horizon)", fontsize=10)
    save_formats(fig, folder / "distributions")


def balance_figure(folder: Path, cfg: Any) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), constrained_layout=True)
    with np.load(folder / "ground-truth" / "fields.npz") as f:
        tau, r_tau = f["tau"], f["R_tau"]
    _band(ax, tau, r_tau, "C0", "-", "Gray-Scott (ground-truth runs, v)")
    grid = normalised_time(201)
    curves, longs = [], []
    for s in range(cfg.seed, cfg.seed + cfg.seeds):
        curves.append(BalanceTrace.load(folder / "ddpm" / f"seed{s}" / "trace.csv").resample(grid)[1])
        with np.load(folder / "convlstm" / f"seed{s}" / "rollouts.npz") as f:
            trace = BalanceTrace.from_samples(f["reaction"], f["diffusion"])
        longs.append(trace.resample(grid)[1])
    _band(ax, grid, np.array(curves), "C2", "-.", "DDPM reverse process")
    _band(ax, grid, np.array(longs), "C1", "--", f"ConvLSTM rollout ({cfg.data.long_factor}x horizon)")
    ax.axvline(1.0 / cfg.data.long_factor, color="C1", linewidth=0.8, linestyle=":", label="ConvLSTM training horizon")
    ax.axhline(1.0, color="0.5", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("normalised time tau (each system's own run)")
    ax.set_ylabel("R(tau) = reaction / diffusion (log)")
    ax.set_title("R(tau) on the Turing-pattern task (geometric mean over runs; band: 95 % interval of log R)",
                 fontsize=9)
    ax.legend(fontsize=7)
    save_formats(fig, folder / "balance")


def _band(ax: Any, tau: np.ndarray, curves: np.ndarray, color: str, style: str, label: str) -> None:
    """The geometric mean of positive ratio curves and a 95 % t-interval formed on their
    logarithm: on a log axis it is symmetric and it never reaches zero (an interval of the ratios
    themselves went below zero for three seeds and stretched the axis to 1e-6)."""
    logs = np.log(np.where(np.atleast_2d(curves) > 0, curves, np.nan))
    mean = np.nanmean(logs, axis=0)
    ax.plot(tau, np.exp(mean), color=color, linestyle=style, label=label)
    if logs.shape[0] > 1:
        from scipy import stats

        half = stats.t.ppf(0.975, logs.shape[0] - 1) * np.nanstd(logs, axis=0, ddof=1) / math.sqrt(logs.shape[0])
        ax.fill_between(tau, np.exp(mean - half), np.exp(mean + half), color=color, alpha=0.2, linewidth=0)


def drift_figure(folder: Path, cfg: Any) -> None:
    from rdlens.measures.patterns import from_unit

    plt = pyplot()
    with np.load(folder / "ground-truth" / "truth.npz") as f:
        _, v_true = from_unit(f["x"])
    frames = np.arange(v_true.shape[1])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    axes[0].plot(frames, v_true.std(axis=(2, 3)).mean(axis=0), color="C0", label="Gray-Scott")
    axes[1].plot(frames, v_true.mean(axis=(2, 3)).mean(axis=0), color="C0", label="Gray-Scott")
    for s in range(cfg.seed, cfg.seed + cfg.seeds):
        with np.load(folder / "convlstm" / f"seed{s}" / "rollouts.npz") as f:
            _, v = from_unit(f["x"])
        with np.errstate(invalid="ignore", over="ignore"):
            axes[0].plot(frames, v.std(axis=(2, 3)).mean(axis=0), color="C1", alpha=0.8,
                         label="ConvLSTM" if s == cfg.seed else None)
            axes[1].plot(frames, v.mean(axis=(2, 3)).mean(axis=0), color="C1", alpha=0.8)
            axes[2].plot(frames, np.sqrt(((v - v_true) ** 2).mean(axis=(2, 3))).mean(axis=0), color="C1", alpha=0.8)
    for ax, label in zip(axes, ("pattern amplitude: std of v", "mean of v", "RMS error of v vs the true run")):
        ax.axvline(cfg.data.frames, color="0.5", linestyle=":", linewidth=0.8)
        ax.set_xlabel(f"frame (x {cfg.data.frame_every} Gray-Scott steps)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=8)
    fig.suptitle("ConvLSTM rolled out on its own from unseen starts vs the true dynamics (mean over starts; "
                 "dotted: the training horizon)", fontsize=10)
    save_formats(fig, folder / "drift")
