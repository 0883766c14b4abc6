"""The paper's figures from a reproduce folder: Fig. 2 (R(tau) of every row), Fig. 3 (final R
per row) and patterns.png (what each row produced). Line styles, colours and panels come from
each row's system (:class:`rdlens.systems.System`), so a new system needs no edit here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rdlens.core import layout
from rdlens.plot import pyplot, r_tau, save_formats
from rdlens.core.rundir import save_figure
from rdlens.systems import style_of


def _label(r: dict[str, Any], sep: str = " ") -> str:
    stand_in = f"{sep}({r['data']} stand-in)" if r["status"] == "stand-in data" else ""
    return f"{r['system']}{sep}{r['setting']}{stand_in}"


ROW_STYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
"""line styles of the rows of one system, in order (a system has its colour in every figure)"""


def row_styles(kinds: list[str]) -> list[Any]:
    """The line style of each row: the rows of one system take ROW_STYLES in turn."""
    seen: dict[str, int] = {}
    out = []
    for k in kinds:
        out.append(ROW_STYLES[seen.get(k, 0) % len(ROW_STYLES)])
        seen[k] = seen.get(k, 0) + 1
    return out


def plot_fig2(pairs: list[tuple[dict, Any]], stem: Path) -> None:
    """R(tau) of every row in one plot: one colour per system (the colour it has in every figure
    of the report), one line style per row of that system; the mean over seeds, the pointwise
    95 % interval shaded."""
    from matplotlib.lines import Line2D

    plt = pyplot()
    fig, (ax, zoom) = plt.subplots(1, 2, figsize=(12, 5.8), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    near_one = []
    styles = row_styles([r["kind"] for r, _ in pairs])
    for (r, comb), ls in zip(pairs, styles):
        label = f"{r['system']} {r['setting']}" + (f" ({r['data']})" if r["status"] == "stand-in data" else "")
        for a in (ax, zoom):
            r_tau(comb, a, label=label, color=style_of(r["kind"]).color, ls=ls)
        late = comb.R_tau_mean[comb.tau >= 0.2]
        if np.isfinite(late).any() and abs(np.nanmedian(late) - 1) < 0.5:
            near_one.append(np.nanmax(np.abs(late - 1)))
    half = min(0.5, max(0.02, 1.15 * max(near_one, default=0.1)))
    for a in (ax, zoom):
        a.set_xlabel("normalised time tau", fontsize=10)
        a.set_ylabel("")
        a.tick_params(labelsize=9)
    ax.set_ylabel("R(tau) = reaction / diffusion", fontsize=10)
    ax.set_ylim(0, 2)
    zoom.set_xlim(0.2, 1.0)
    zoom.set_ylim(1 - half, 1 + half)
    zoom.set_title(f"zoom: tau >= 0.2, R in [{1 - half:.2f}, {1 + half:.2f}]", fontsize=10)
    n = len(pairs[0][1].traces) if pairs else 0
    ax.set_title("Dynamic Balance Ratio over time (Fig. 2); y clipped to [0, 2]"
                 + (f"\nmean of {n} seeds, 95 % interval shaded" if n >= 2 else ""), fontsize=11)
    rows = ax.legend(fontsize=9, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13), handlelength=3)
    ax.add_artist(rows)
    kinds = list(dict.fromkeys(r["kind"] for r, _ in pairs))
    zoom.legend([Line2D([], [], color=style_of(k).color, lw=3) for k in kinds], [style_of(k).title for k in kinds],
                fontsize=9, title="colour = system", title_fontsize=9, loc="upper center",
                bbox_to_anchor=(0.5, -0.13))
    fig.tight_layout()
    save_formats(fig, stem)


def plot_fig3(pairs: list[tuple[dict, Any]], path: Path) -> Path:
    """Final R per row as labelled bars (Fig. 3), coloured by system."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    names = [_label(r, "\n") for r, _ in pairs]
    values = np.array([comb.final_R.mean for _, comb in pairs], dtype=float)
    low = np.array([comb.final_R.low for _, comb in pairs], dtype=float)
    high = np.array([comb.final_R.high for _, comb in pairs], dtype=float)
    colors = [style_of(r["kind"]).color for r, _ in pairs]
    positive = values[np.isfinite(values) & (values > 0)]
    log = len(positive) > 1 and positive.max() / positive.min() > 10
    floor = positive.min() / 3 if log else 0.0
    bars = ax.bar(range(len(values)), np.where(np.isfinite(values), values, floor) - floor, bottom=floor, color=colors)
    has_ci = np.isfinite(low) & np.isfinite(high)
    if has_ci.any():
        idx = np.flatnonzero(has_ci)
        ax.errorbar(idx, values[idx], yerr=[values[idx] - low[idx], high[idx] - values[idx]], fmt="none", ecolor="k",
                    capsize=4, lw=1, label="95 % interval over seeds")
        ax.legend(fontsize=7, loc="upper right")
    for b, v, h in zip(bars, values, np.where(has_ci, high, values)):
        text = f"{v:.3f}" if np.isfinite(v) else "undefined\n(norms vanish)"
        ax.annotate(text, (b.get_x() + b.get_width() / 2, h if np.isfinite(h) else floor), ha="center",
                    va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    if log:
        ax.set_yscale("log")
    ax.set_xticks(range(len(values)), names, fontsize=8)
    ax.set_ylabel("final R" + (" (log scale: values span decades)" if log else ""))
    n = len(pairs[0][1].traces) if pairs else 0
    ax.set_title("Final Dynamic Balance Ratio (Fig. 3)" + (f", mean of {n} seeds" if n >= 2 else ""))
    fig.tight_layout()
    return save_figure(fig, path)


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
    return save_figure(fig, path)
