"""The paper's figures from a reproduce folder: Fig. 2 (R(tau) of every row), Fig. 3 (final R
per row) and patterns.png (what each row produced). Line styles, colours and panels come from
each row's system (:class:`rdlens.systems.System`), so a new system needs no edit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rdlens import layout
from rdlens.report.figures import pyplot, save_formats
from rdlens.rundir import save_figure
from rdlens.systems import style_of


def _label(r: dict[str, Any], sep: str = " ") -> str:
    stand_in = f"{sep}({r['data']} stand-in)" if r["status"] == "stand-in data" else ""
    return f"{r['system']}{sep}{r['setting']}{stand_in}"


def plot_fig2(pairs: list[tuple[dict, Any]], stem: Path) -> None:
    """R(tau) of every row in one plot, each system in its line style (the paper: RD solid,
    LSTM dashed, DDPM dash-dot); the mean over seeds, the pointwise 95 % interval shaded."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    for r, comb in pairs:
        line, = ax.plot(comb.tau, comb.R_tau_mean, ls=style_of(r["kind"]).linestyle, lw=1.2,
                        label=f"{r['system']} {r['setting']}" + (f" ({r['data']})" if r["status"] == "stand-in data" else ""))
        if np.isfinite(comb.R_tau_low).any():
            ax.fill_between(comb.tau, comb.R_tau_low, comb.R_tau_high, color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("normalised time tau")
    ax.set_ylabel("R(tau) = reaction / diffusion")
    ax.set_ylim(0, 2)
    n = len(pairs[0][1].traces) if pairs else 0
    ax.set_title("Dynamic Balance Ratio over time (Fig. 2); y clipped to [0, 2]"
                 + (f"\nmean of {n} seeds, 95 % interval shaded" if n >= 2 else ""))
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    save_formats(fig, stem)


def plot_fig3(pairs: list[tuple[dict, Any]], path: Path) -> Path:
    """Final R per row as labelled bars (Fig. 3), coloured by system."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    names = [_label(r, "\n") for r, _ in pairs]
    values = [comb.final_R.mean for _, comb in pairs]
    colors = [style_of(r["kind"]).color for r, _ in pairs]
    bars = ax.bar(range(len(values)), np.nan_to_num(values, nan=0.0), color=colors)
    for b, v in zip(bars, values):
        text = f"{v:.3f}" if np.isfinite(v) else "undefined\n(norms vanish)"
        ax.annotate(text, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(values)), names, fontsize=7)
    ax.set_ylabel("final R")
    ax.set_title("Final Dynamic Balance Ratio (Fig. 3)")
    fig.tight_layout()
    return save_figure(fig, path, metadata={"Software": None})


def plot_patterns(folder: Path, records: list[dict], seed: int, path: Path) -> Path:
    """What each row produced for ``seed``, one panel per row drawn by its system
    (RD: the final v field; LSTM: a held-out sequence and the model's output; DDPM: samples)."""
    plt = pyplot()
    done = [r for r in records if r["status"] != "skipped"]
    cols = 4
    rows = max(1, -(-len(done) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, r in zip(axes.flat, done):
        suffix = style_of(r["kind"]).draw_panel(ax, layout.seed_dir(folder, r["row"], seed))
        ax.set_title(_label(r, "\n").replace("\n", " ", 1) + suffix, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, metadata={"Software": None})
