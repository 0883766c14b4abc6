"""R along training: the balance and sample quality of a model measured at several training
steps with the same sampling noise, so that the curve shows what training changes and nothing
else (``--track-every K``).

The paper explains the DDPM's R << 1 by "lack of training". The curve tests that directly:
if R rose towards 1 as the samples became recognisable, the reading would hold; if R stays
at the value the schedule fixes (``controls.schedule_only_R``) while quality climbs, it does
not. ``training_curve.csv`` holds one row per measured step; it is rewritten atomically after
each point, and on resume the rows of steps not yet re-reached are kept.
"""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path
from typing import Any

from rdlens.core.balance import BalanceTrace, score_ratio
from rdlens.core.rundir import atomic_write_text

COLUMNS = ("step", "M_react", "M_diff", "R", "final_R", "R_score", "frechet", "confident", "coverage")


def point(step: int, trace: BalanceTrace, quality: dict[str, Any] | None) -> dict[str, float]:
    """One row: the trace's numbers (R_score from its score part) and, if measured, quality."""
    q = quality or {}
    return {"step": step, "M_react": trace.M_react, "M_diff": trace.M_diff, "R": trace.R, "final_R": trace.final_R,
            "R_score": score_ratio(trace), **{k: float(q.get(k, math.nan)) for k in ("frechet", "confident", "coverage")}}


def read(path: str | os.PathLike) -> list[dict[str, float]]:
    """The rows of a ``training_curve.csv`` (step as int, the rest as float; '' = nan)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and set(COLUMNS) - set(rows[0]):
        raise ValueError(f"{path} lacks the columns {sorted(set(COLUMNS) - set(rows[0]))}")
    return [{k: (int(r[k]) if k == "step" else float(r[k] or "nan")) for k in COLUMNS} for r in rows]


class Curve:
    """The rows measured so far, kept in step order and written after every new point."""

    def __init__(self, path: str | os.PathLike, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, float]] = read(self.path) if resume and self.path.exists() else []

    def steps(self) -> list[int]:
        return [int(r["step"]) for r in self.rows]

    def add(self, row: dict[str, float]) -> None:
        """Add a point; points at or after its step (left from before a resume) are dropped."""
        self.rows = [r for r in self.rows if r["step"] < row["step"]] + [row]
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self.rows:
            writer.writerow([int(r["step"]) if k == "step" else ("" if math.isnan(r[k]) else repr(float(r[k])))
                             for k in COLUMNS])
        atomic_write_text(self.path, buf.getvalue())

    def markdown(self) -> str:
        """The curve as a Markdown table."""
        lines = ["| step | R | final R | R_score | confident | coverage | Fréchet |", "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            q = ("— | — | —" if math.isnan(r["confident"])
                 else f"{r['confident']:.0%} | {r['coverage']:.2f} | {r['frechet']:.1f}")
            lines.append(f"| {int(r['step'])} | {r['R']:.4f} | {r['final_R']:.4f} | {r['R_score']:.4f} | {q} |")
        return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, float]], path: str | os.PathLike, *, oracle_R: float, schedule_R_score: float,
         title: str = "") -> Path:
    """R and R_score against training step, with the exact (Gaussian-data) oracle's R and the
    schedule-only R_score as lines, and sample quality below when it was measured."""
    from rdlens.plot import pyplot
    from rdlens.core.rundir import save_figure

    plt = pyplot()
    quality = any(not math.isnan(r["confident"]) for r in rows)
    fig, axes = plt.subplots(3 if quality else 2, 1, figsize=(7, 7.5 if quality else 5.5), dpi=120, sharex=True)
    steps = [max(r["step"], 0) for r in rows]
    ax = axes[0]
    ax.plot(steps, [r["R"] for r in rows], "o-", label="R (trained model)")
    ax.plot(steps, [r["final_R"] for r in rows], "s--", ms=4, label="final R")
    ax.axhline(oracle_R, color="C3", ls=":", label=f"exact denoiser, Gaussian data: R = {oracle_R:.4f}")
    ax.set_ylabel("R")
    ax.set_yscale("log")
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title)
    ax = axes[1]
    ax.plot(steps, [r["R_score"] for r in rows], "o-", color="C2", label="R_score (trained model)")
    ax.axhline(schedule_R_score, color="k", ls=":", label=f"schedule only: {schedule_R_score:.4f}")
    ax.set_ylabel("R_score")
    ax.legend(loc="best", fontsize=8)
    if quality:
        ax = axes[2]
        ax.plot(steps, [r["confident"] for r in rows], "o-", label="confident share (p >= 0.9)")
        ax.plot(steps, [r["coverage"] for r in rows], "s--", label="class coverage")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("sample quality")
        ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("training step")
    fig.tight_layout()
    return save_figure(fig, path)
