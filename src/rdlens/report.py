"""Figures drawn from saved results (never from anything that is not in the run directory)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rdlens.balance import BalanceTrace
from rdlens.rundir import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_field(field: np.ndarray, path: str | os.PathLike, title: str = "", cmap: str = "viridis") -> Path:
    """A 2-D field as an image with a colour bar (e.g. the Gray-Scott v at the end of a run)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.5), dpi=120)
    im = ax.imshow(np.asarray(field), cmap=cmap, origin="lower", interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    return save_figure(fig, path)


def plot_balance(trace: BalanceTrace, path: str | os.PathLike, title: str = "") -> Path:
    """Reaction and diffusion norms over tau (top) and R(tau) with the line R = 1 (bottom)."""
    plt = _plt()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), dpi=120, sharex=True)
    top.plot(trace.tau, trace.reaction, label="reaction", lw=1.2)
    top.plot(trace.tau, trace.diffusion, label="diffusion", lw=1.2, ls="--")
    top.set_ylabel("L2 norm")
    top.legend(loc="best")
    top.set_title(title or f"R = {trace.R:.4f}, final R = {trace.final_R:.4f}")
    bottom.plot(trace.tau, trace.R_tau, color="k", lw=1.0)
    bottom.axhline(1.0, color="grey", lw=0.8, ls=":")
    bottom.set_xlabel("normalised time tau")
    bottom.set_ylabel("R(tau)")
    _robust_ylim(bottom, trace.R_tau)
    fig.tight_layout()
    return save_figure(fig, path)


def _robust_ylim(ax, values: Sequence[float] | np.ndarray) -> None:
    """Clip the y range to the 1-99 % quantiles so a start-up spike does not flatten the plot."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 10:
        return
    lo, hi = np.quantile(v, [0.01, 0.99])
    pad = 0.1 * (hi - lo) if hi > lo else 0.1 * max(abs(hi), 1.0)
    ax.set_ylim(lo - pad, hi + pad)
