"""Figures drawn from saved results (never from anything that is not in the run directory)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

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


def plot_predictions(inputs: np.ndarray, outputs: np.ndarray, eval_mode: str, path: str | os.PathLike,
                     n: int = 3, title: str = "") -> Path:
    """Held-out sequences against the model: one-step predictions (teacher) or the
    continuation generated after warming up on the whole sequence (free)."""
    plt = _plt()
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
    plt = _plt()
    names = list(gates)
    fig, axes = plt.subplots(len(names) + 1, 1, figsize=(8, 1.6 * len(names) + 2.6), dpi=120, sharex=True)
    for ax, name in zip(axes, names):
        vmin, vmax = (-1, 1) if name == "g" else (0, 1)
        ax.imshow(gates[name].T, aspect="auto", origin="lower", vmin=vmin, vmax=vmax, interpolation="nearest",
                  cmap="RdBu_r" if name == "g" else "viridis")
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
    plt = _plt()
    h, w = tiled.shape[:2]
    fig, ax = plt.subplots(figsize=(max(3.0, w / 60), max(3.0, h / 60) + 0.4), dpi=120)
    ax.imshow(tiled[..., 0] if tiled.shape[2] == 1 else tiled, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


# ---- Table 1, Fig. 2, Fig. 3 of a reproduce folder ------------------------------------------

ESTIMATES = ("M_react", "M_diff", "R", "final_R")
TABLE_COLUMNS = ("row", "system", "setting", "data", "status", "n_seeds",
                 *[c for q in ESTIMATES for c in (q, f"{q}_low", f"{q}_high")],
                 "paper_M_react", "paper_M_diff", "paper_R", "rel_diff_M_react", "rel_diff_M_diff", "rel_diff_R",
                 "note")
LINESTYLES = {"rd": "-", "lstm": "--", "ddpm": "-."}


def _rel(ours: float | None, paper: float) -> float | None:
    return None if ours is None else ours / paper - 1.0


def _seed_dirs(folder: Path, row: dict, seeds: list[int]) -> list[Path]:
    return [folder / row["dir"] / f"seed{s}" for s in seeds]


def table_rows(folder: str | os.PathLike) -> list[dict]:
    """One record per row of a reproduce folder: each quantity's mean over the seeds and its
    95 % Student-t interval (None with one seed), from rows.json and each seed's trace."""
    import json

    from rdlens.balance import combine
    from rdlens.paper import TABLE1

    folder = Path(folder)
    info = json.loads((folder / "rows.json").read_text())
    records = []
    for r in info["rows"]:
        paper = TABLE1[r["id"]]
        rec = {"row": r["id"], "system": paper.system, "setting": r["setting"], "data": r["data"],
               "status": r["status"], "n_seeds": 0,
               "paper_M_react": paper.M_react, "paper_M_diff": paper.M_diff, "paper_R": paper.R,
               "note": r["reason"] or ""}
        for q in ESTIMATES:
            rec[q] = rec[f"{q}_low"] = rec[f"{q}_high"] = None
        if r["status"] != "skipped":
            comb = combine([BalanceTrace.load(d / "trace.csv") for d in _seed_dirs(folder, r, info["seeds"])])
            rec["n_seeds"] = len(comb.traces)
            for q in ESTIMATES:
                est = getattr(comb, q)
                rec[q] = est.mean
                rec[f"{q}_low"], rec[f"{q}_high"] = (est.low, est.high) if est.n >= 2 else (None, None)
            if r["status"] == "stand-in data":
                rec["note"] = f"{r['setting']} absent: measured on the offline {r['data']} data set instead"
        rec["rel_diff_M_react"] = _rel(rec["M_react"], paper.M_react)
        rec["rel_diff_M_diff"] = _rel(rec["M_diff"], paper.M_diff)
        rec["rel_diff_R"] = _rel(rec["R"], paper.R)
        records.append(rec)
    return records


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _est(r: dict, q: str) -> str:
    """A mean with its interval when there is one: 1.0104 [1.0101, 1.0107]."""
    if r[q] is None or r[f"{q}_low"] is None:
        return _num(r[q])
    return f"{r[q]:.4f} [{r[q + '_low']:.4f}, {r[q + '_high']:.4f}]"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1%}"


def table_markdown(records: list[dict], title: str) -> str:
    head = ("| row | system | setting | data | M_react | M_diff | R | final R | paper M_react | paper M_diff "
            "| paper R | Δ M_react | Δ M_diff | Δ R | status |")
    lines = [f"# {title}", "", head, "|" + "---|" * 15]
    for r in records:
        status = r["status"] + (f": {r['note']}" if r["note"] else "")
        lines.append(
            f"| {r['row']} | {r['system']} | {r['setting']} | {r['data']} | {_est(r, 'M_react')} | "
            f"{_est(r, 'M_diff')} | {_est(r, 'R')} | {_est(r, 'final_R')} | {_num(r['paper_M_react'])} | "
            f"{_num(r['paper_M_diff'])} | {_num(r['paper_R'])} | {_pct(r['rel_diff_M_react'])} | "
            f"{_pct(r['rel_diff_M_diff'])} | {_pct(r['rel_diff_R'])} | {status} |")
    n = max((r["n_seeds"] for r in records), default=0)
    lines += ["", "Δ = ours / paper − 1 (of the means). Paper values: Lo, Nishimura & Ikeda, Table 1. "
                  "DDPM rows exclude the last reverse step, which adds no noise."]
    if n >= 2:
        lines.append(f"Values are means over {n} independent seeds (data, initial weights, noise and sampling all "
                     "seeded anew) with 95 % Student-t intervals [low, high]; R is the mean of per-seed ratios.")
    return "\n".join(lines) + "\n"


def table_csv(records: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=TABLE_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: ("" if r[k] is None else (repr(r[k]) if isinstance(r[k], float) else r[k])) for k in TABLE_COLUMNS})
    return buf.getvalue()


def _tex_escape(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("—", "--"), ("→", r"$\to$")):
        s = s.replace(a, b)
    return s


def table_latex(records: list[dict]) -> str:
    lines = [r"\begin{tabular}{llllrrrrrrr}", r"\hline",
             r"System & Setting & Data & $\mathcal{M}_{\mathrm{react}}$ & $\mathcal{M}_{\mathrm{diff}}$ & $R$ & "
             r"final $R$ & paper $\mathcal{M}_{\mathrm{react}}$ & paper $\mathcal{M}_{\mathrm{diff}}$ & paper $R$ & "
             r"$\Delta R$ \\", r"\hline"]
    for r in records:
        cells = [r["system"], r["setting"], r["data"] + (" (skipped)" if r["status"] == "skipped" else ""),
                 _num(r["M_react"]), _num(r["M_diff"]), _num(r["R"]), _num(r["final_R"]), _num(r["paper_M_react"]),
                 _num(r["paper_M_diff"]), _num(r["paper_R"]), _pct(r["rel_diff_R"])]
        lines.append(" & ".join(_tex_escape(c) for c in cells) + r" \\")
    lines += [r"\hline", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def _traces(folder: Path, records: list[dict]) -> list[tuple[dict, Any]]:
    """(record, CombinedBalance over its seeds) for every row that ran."""
    import json

    from rdlens.balance import combine

    seeds = json.loads((folder / "rows.json").read_text())["seeds"]
    return [(r, combine([BalanceTrace.load(folder / "rows" / r["row"] / f"seed{s}" / "trace.csv") for s in seeds],
                        grid=1001))
            for r in records if r["status"] != "skipped"]


def plot_fig2(pairs: list[tuple[dict, Any]], stem: Path) -> None:
    """R(tau) of every row in one plot: RD solid, LSTM dashed, DDPM dash-dot (as the paper);
    the mean over seeds, with the pointwise 95 % interval shaded when there are several."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    for r, comb in pairs:
        line, = ax.plot(comb.tau, comb.R_tau_mean, ls=LINESTYLES[r["row"].split("-")[0]], lw=1.2,
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
    import io

    from rdlens.rundir import atomic_write_bytes

    for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata=meta)
        atomic_write_bytes(stem.with_suffix("." + fmt), buf.getvalue())
    plt.close(fig)


def plot_fig3(pairs: list[tuple[dict, Any]], path: Path) -> Path:
    """Final R per row as labelled bars (Fig. 3)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    names = [f"{r['system']}\n{r['setting']}" + (f"\n({r['data']} stand-in)" if r["status"] == "stand-in data" else "")
             for r, _ in pairs]
    values = [comb.final_R.mean for _, comb in pairs]
    colors = [{"rd": "C0", "lstm": "C1", "ddpm": "C2"}[r["row"].split("-")[0]] for r, _ in pairs]
    bars = ax.bar(range(len(values)), values, color=colors)
    for b, v in zip(bars, values):
        ax.annotate(f"{v:.3f}", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xticks(range(len(values)), names, fontsize=7)
    ax.set_ylabel("final R")
    ax.set_title("Final Dynamic Balance Ratio (Fig. 3)")
    fig.tight_layout()
    return save_figure(fig, path, metadata={"Software": None})


def plot_patterns(folder: Path, records: list[dict], path: Path) -> Path:
    """What each row produced (first seed): RD v fields, an LSTM prediction, DDPM sample grids."""
    import json

    import torch

    from rdlens.images import grid

    seed = json.loads((folder / "rows.json").read_text())["seeds"][0]
    plt = _plt()
    done = [r for r in records if r["status"] != "skipped"]
    cols = 4
    rows = max(1, -(-len(done) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.0 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, r in zip(axes.flat, done):
        d = folder / "rows" / r["row"] / f"seed{seed}"
        kind = r["row"].split("-")[0]
        title = f"{r['system']} {r['setting']}" + (f"\n({r['data']} stand-in)" if r["status"] == "stand-in data" else "")
        if kind == "rd":
            with np.load(d / "state.npz") as z:
                ax.imshow(z["v"], cmap="viridis", origin="lower")
        elif kind == "lstm":
            ax.set_axis_on()
            with np.load(d / "predictions.npz") as z:
                x, y, mode = z["inputs"][0], z["outputs"][0], str(z["eval_mode"])
            ax.plot(np.arange(len(x)), x, "k", lw=0.8)
            start = 1 if mode == "teacher" else len(x)
            ax.plot(np.arange(start, start + len(y)), y, ls="--", lw=0.8, color="C1" if mode == "teacher" else "C3")
            ax.tick_params(labelsize=6)
            title += f" ({mode})"
        else:
            with np.load(d / "samples.npz") as z:
                tiled = grid(torch.from_numpy(z["samples"]))
            ax.imshow(tiled[..., 0] if tiled.shape[2] == 1 else tiled, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, metadata={"Software": None})


def build_report(folder: str | os.PathLike) -> str:
    """Write table1.{md,csv,json,tex}, fig2.{png,svg}, fig3.png and patterns.png from the
    saved rows of a reproduce folder (recomputing nothing); return the Markdown table."""
    import json

    from rdlens.rundir import atomic_write_text, dumps

    folder = Path(folder)
    if not (folder / "rows.json").exists():
        from rdlens.errors import ConfigError

        raise ConfigError(f"{folder} has no rows.json: not a finished `rdlens reproduce` folder")
    info = json.loads((folder / "rows.json").read_text())
    records = table_rows(folder)
    seeds = info["seeds"]
    seed_text = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    md = table_markdown(records, f"Table 1 reproduced (profile {info['profile']}, {seed_text})")
    atomic_write_text(folder / "table1.md", md)
    atomic_write_text(folder / "table1.csv", table_csv(records))
    atomic_write_text(folder / "table1.json", dumps({"profile": info["profile"], "seeds": seeds, "rows": records}))
    atomic_write_text(folder / "table1.tex", table_latex(records))
    pairs = _traces(folder, records)
    if pairs:
        plot_fig2(pairs, folder / "fig2")
        plot_fig3(pairs, folder / "fig3.png")
        plot_patterns(folder, records, folder / "patterns.png")
    if info.get("controls"):
        from rdlens import report_controls

        md += "\n" + report_controls.build(folder, records, seeds)
    return md
