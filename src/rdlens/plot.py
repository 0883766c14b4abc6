"""Figures of one run: fields, balance traces, R(tau) with seed bands, predictions, gates,
image grids.

Two kinds of function. ``field``, ``balance``, ``r_tau`` and ``fk_map`` draw into a matplotlib axis
(``ax=None``: a new figure) and return it, for a notebook or a paper's own figure::

    fig, (a, b) = plt.subplots(1, 2)
    rdlens.plot.r_tau(traces_of_three_seeds, ax=a, label="LSTM, sine")
    rdlens.plot.balance(trace, ax=b)

``plot_*`` write a finished figure to a file (what a run directory holds); they are built on
the first kind. Below the systems and the report (it imports only the core): a system draws
its own run's figures with these, and the report draws its pages with them.

Drawn from what a run saved (never from anything that is not in its run directory); every
figure is written atomically. matplotlib is imported on first use, with the Agg backend
unless one was chosen.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rdlens.core.balance import BalanceTrace, CombinedBalance
from rdlens.core.rundir import save_figure


def pyplot():
    """matplotlib.pyplot, imported on first use (Agg backend unless one was chosen)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def field(values: np.ndarray, ax: Any = None, *, cmap: str = "viridis", colorbar: bool = True,
          title: str = "") -> Any:
    """A 2-D field (e.g. the Gray-Scott v) as an image with a colour bar; returns the axis."""
    ax = ax if ax is not None else pyplot().subplots(figsize=(5.2, 4.5), dpi=120)[1]
    im = ax.imshow(np.asarray(values), cmap=cmap, origin="lower", interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def balance(trace: BalanceTrace, ax: Any = None, *, norms_ax: Any = None, color: str = "k",
            label: str | None = None) -> Any:
    """R(tau) of one trace with the line R = 1 on ``ax`` (y clipped to its 1-99 % quantiles);
    with ``norms_ax``, the reaction and diffusion norms over tau there too. Returns ``ax``."""
    ax = ax if ax is not None else pyplot().subplots(figsize=(7, 3), dpi=120)[1]
    ax.plot(trace.tau, trace.R_tau, color=color, lw=1.0, label=label)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("normalised time tau")
    ax.set_ylabel("R(tau)")
    _robust_ylim(ax, trace.R_tau)
    if norms_ax is not None:
        norms_ax.plot(trace.tau, trace.reaction, label="reaction", lw=1.2)
        norms_ax.plot(trace.tau, trace.diffusion, label="diffusion", lw=1.2, ls="--")
        norms_ax.set_ylabel("L2 norm")
        norms_ax.legend(loc="best")
    return ax


def r_tau(traces: "BalanceTrace | Sequence[BalanceTrace] | CombinedBalance", ax: Any = None, *,
          label: str | None = None, color: str | None = None, ls: Any = "-", band: bool = True,
          level: float = 0.95, grid: int = 201) -> Any:
    """R(tau) of one setting: the mean over seeds (traces of independent seeds, or their
    :func:`rdlens.core.balance.combine`) with the pointwise ``level`` Student-t band shaded (from two
    seeds on); a single trace is drawn as it is. Returns the axis."""
    from rdlens.core.balance import CombinedBalance, combine

    ax = ax if ax is not None else pyplot().subplots(figsize=(7, 3.5), dpi=120)[1]
    if isinstance(traces, BalanceTrace):
        traces = [traces]
    comb = traces if isinstance(traces, CombinedBalance) else combine(list(traces), grid=grid, level=level)
    first = not ax.lines
    line, = ax.plot(comb.tau, comb.R_tau_mean, color=color, ls=ls, lw=1.3, label=label)
    if band and np.isfinite(comb.R_tau_low).any():
        ax.fill_between(comb.tau, comb.R_tau_low, comb.R_tau_high, color=line.get_color(), alpha=0.2, lw=0)
    if first:  # the line R = 1 and the labels once per axis, not once per curve
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("normalised time tau")
        ax.set_ylabel("R(tau) = reaction / diffusion")
    return ax


def fk_extent(F: Sequence[float], k: Sequence[float]) -> list[float]:
    """imshow's extent for a grid of (F, k) values: k to the right, F up, each value centred
    on its cell."""
    def edges(v: np.ndarray) -> tuple[float, float]:
        step = (v[-1] - v[0]) / (len(v) - 1) if len(v) > 1 else max(1e-4, 0.05 * abs(v[0]))
        return float(v[0] - step / 2), float(v[-1] + step / 2)

    (k0, k1), (f0, f1) = edges(np.asarray(k, float)), edges(np.asarray(F, float))
    return [k0, k1, f0, f1]


def fk_map(values: np.ndarray, F: Sequence[float], k: Sequence[float], ax: Any = None, *, title: str = "",
           cmap: str = "viridis", log: bool = False, label: str | None = None, colorbar: bool = True) -> Any:
    """A map over the (F, k) plane (``values`` of shape (len(F), len(k)), as a sweep's
    ``points.csv`` column on its grid): k to the right, F up; undefined values (NaN, and with
    ``log`` those <= 0) grey. Returns the axis."""
    import matplotlib
    from matplotlib.colors import LogNorm

    ax = ax if ax is not None else pyplot().subplots(figsize=(5.5, 4.5), dpi=120)[1]
    data = np.asarray(values, dtype=float)
    if data.shape != (len(F), len(k)):
        raise ValueError(f"values must have shape (len(F), len(k)) = ({len(F)}, {len(k)}), got {data.shape}")
    shown = np.where(data > 0, data, np.nan) if log else data
    finite = shown[np.isfinite(shown)]
    norm = LogNorm(vmin=finite.min(), vmax=finite.max()) if log and finite.size else None
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.8")
    im = ax.imshow(np.ma.masked_invalid(shown), origin="lower", extent=fk_extent(F, k), aspect="auto", cmap=colours,
                   norm=norm, interpolation="nearest")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label=label)
    ax.set_xlabel("kill rate k")
    ax.set_ylabel("feed rate F")
    ax.set_title(title, fontsize=9)
    return ax


def plot_field(values: np.ndarray, path: str | os.PathLike, title: str = "", cmap: str = "viridis") -> Path:
    """A 2-D field as an image with a colour bar (e.g. the Gray-Scott v at the end of a run)."""
    ax = field(values, cmap=cmap, title=title)
    ax.figure.tight_layout()
    return save_figure(ax.figure, path)


def plot_balance(trace: BalanceTrace, path: str | os.PathLike, title: str = "") -> Path:
    """Reaction and diffusion norms over tau (top) and R(tau) with the line R = 1 (bottom)."""
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.5), dpi=120, sharex=True)
    balance(trace, bottom, norms_ax=top)
    top.set_title(title or f"R = {trace.R:.4f}, final R = {trace.final_R:.4f}")
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


def plot_predictions(inputs: np.ndarray, outputs: np.ndarray, eval_mode: str, path: str | os.PathLike,
                     n: int = 3, title: str = "") -> Path:
    """Held-out sequences against the model: one-step predictions (teacher) or the
    continuation generated after warming up on the whole sequence (free)."""
    plt = pyplot()
    n = min(n, len(inputs))
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.2 * n), dpi=120, squeeze=False)
    for k, ax in enumerate(axes[:, 0]):
        length = inputs.shape[1]
        ax.plot(np.arange(length), inputs[k], color="k", lw=1.0, label="truth")
        if eval_mode == "teacher":
            ax.plot(np.arange(1, length + 1), outputs[k], color="C1", lw=1.0, ls="--", label="one-step prediction")
        else:
            ax.axvline(length - 1, color="grey", lw=0.8, ls=":")
            ax.plot(np.arange(length, length + outputs.shape[1]), outputs[k], color="C3", lw=1.0,
                    label="free-running generation")
        ax.set_ylabel(f"seq {k}")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_gates(gates: dict[str, np.ndarray], trace: BalanceTrace, path: str | os.PathLike, title: str = "") -> Path:
    """Gate activations (hidden unit x time, one sequence) and the reaction/diffusion series."""
    plt = pyplot()
    names = list(gates)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(8, 1.6 * len(names) + 2.6), dpi=120, sharex=True)
    for ax, name in zip(axes, names):
        vmin, vmax = (-1, 1) if name == "g" else (0, 1)
        im = ax.imshow(gates[name].T, aspect="auto", origin="lower", vmin=vmin, vmax=vmax, interpolation="nearest",
                       cmap="RdBu_r" if name == "g" else "viridis")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label=f"{name} (activation)")
        ax.set_ylabel(f"{name} [{vmin}, {vmax}]\nunit")
    ax = axes[-1]
    steps = np.arange(len(trace))
    ax.plot(steps, trace.reaction, lw=1.0, label="reaction ||i*g||")
    ax.plot(steps, trace.diffusion, lw=1.0, ls="--", label="diffusion ||(1-f)*C_prev||")
    ax.set_xlabel("step")
    ax.set_ylabel("L2 norm\n(mean)")
    ax.legend(loc="lower right", fontsize=8)
    axes[0].set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_images(tiled: np.ndarray, path: str | os.PathLike, title: str = "") -> Path:
    """A tiled image grid (H, W, C) in [0, 1] as a PNG."""
    plt = pyplot()
    h, w = tiled.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3.0, w / 60), max(3.0, h / 60) + 0.4), dpi=120)
    im = ax.imshow(tiled[..., 0] if tiled.shape[2] == 1 else tiled, cmap="gray", vmin=0, vmax=1,
                   interpolation="nearest")
    if tiled.shape[2] == 1:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="pixel (the model's [-1, 1] shown as [0, 1])")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def tile(images: Any, nrow: int | None = None) -> np.ndarray:
    """Tile (N, C, H, W) images in [-1, 1] (a NumPy array or a torch tensor) into one
    (H', W', C) array in [0, 1] for a PNG, with a 2-pixel white border between images."""
    if hasattr(images, "detach"):
        images = images.detach().float().cpu().numpy()
    x = np.asarray(images, dtype=np.float32)
    n, c, h, w = x.shape
    nrow = nrow or int(np.ceil(np.sqrt(n)))
    ncol = int(np.ceil(n / nrow))
    out = np.ones((ncol * (h + 2) + 2, nrow * (w + 2) + 2, c), dtype=np.float32)
    x = ((np.clip(x, -1, 1) + 1) / 2).transpose(0, 2, 3, 1)
    for k in range(n):
        r, q = divmod(k, nrow)
        out[2 + r * (h + 2): 2 + r * (h + 2) + h, 2 + q * (w + 2): 2 + q * (w + 2) + w] = x[k]
    return out


def save_formats(fig: Any, stem: Path, dpi: int | None = None) -> None:
    """Save one figure as ``stem.png`` (at ``dpi``, default the figure's) and ``stem.svg`` (no
    dates or versions in the files), atomically, and close it: :func:`rdlens.core.rundir.save_figure`."""
    save_figure(fig, Path(stem).with_suffix(".png"), **({"dpi": dpi} if dpi else {}))
