"""Table 1 of a reproduce folder: one record per row, as Markdown, CSV, JSON and LaTeX.

Each quantity is the mean over seeds with a 95 % Student-t interval (none with one seed),
computed from the rows' saved traces; the paper's values and the relative differences sit
beside ours when the row has paper values (a row added by a user need not).
"""

from __future__ import annotations

import math

import numpy as np
from typing import Any

from rdlens.core.balance import BalanceTrace, combine

ESTIMATES = ("M_react", "M_diff", "R", "final_R")
TABLE_COLUMNS = ("row", "system", "setting", "data", "status", "n_seeds",
                 *[c for q in ESTIMATES for c in (q, f"{q}_low", f"{q}_high")],
                 "paper_M_react", "paper_M_diff", "paper_R", "rel_diff_M_react", "rel_diff_M_diff", "rel_diff_R",
                 "note")


def _rel(ours: float | None, paper: float | None) -> float | None:
    return None if ours is None or paper is None else ours / paper - 1.0


def records(info: dict[str, Any], traces: dict[str, list[BalanceTrace]]) -> list[dict[str, Any]]:
    """One record per row of ``rows.json`` (``info``), from the traces of its seeds
    (``traces[row_id]``, absent for skipped rows)."""
    out = []
    for r in info["rows"]:
        paper = r.get("paper") or {}
        rec: dict[str, Any] = {
            "row": r["id"], "system": r["title"], "setting": r["setting"], "data": r["data"],
            "status": r["status"], "n_seeds": 0, "paper_M_react": paper.get("M_react"),
            "paper_M_diff": paper.get("M_diff"), "paper_R": paper.get("R"), "note": r["reason"] or "",
            "kind": r["system"],
        }
        for q in ESTIMATES:
            rec[q] = rec[f"{q}_low"] = rec[f"{q}_high"] = None
        if r["status"] != "skipped":
            comb = combine(traces[r["id"]])
            rec["n_seeds"] = len(comb.traces)
            for q in ESTIMATES:
                est = getattr(comb, q)
                defined = math.isfinite(est.mean)
                rec[q] = est.mean if defined else None
                rec[f"{q}_low"], rec[f"{q}_high"] = (est.low, est.high) if est.n >= 2 and defined else (None, None)
            if r["status"] == "stand-in data":
                rec["note"] = f"{r['setting']} absent: measured on the offline {r['data']} data set instead"
            if r["system"] == "ddpm":  # whether the noise-free last reverse step entered the numbers
                rec["last_step"] = "counted" if all(t.counted.all() for t in traces[r["id"]]) else "excluded"
            flags = [f"seed {s}: {t.degenerate}" for s, t in zip(info["seeds"], traces[r["id"]]) if t.degenerate]
            if flags:
                rec["note"] = "; ".join(filter(None, [rec["note"], "degenerate: " + "; ".join(flags)]))
        for q in ("M_react", "M_diff", "R"):
            rec[f"rel_diff_{q}"] = _rel(rec[q], rec[f"paper_{q}"])
        out.append(rec)
    return out


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
    """Table 1 as Markdown; the paper's columns and footnote only when a row has paper values."""
    paper = any(r["paper_R"] is not None for r in records)
    head = ("| row | system | setting | data | M_react | M_diff | R | final R | "
            + ("paper M_react | paper M_diff | paper R | Δ M_react | Δ M_diff | Δ R | " if paper else "") + "status |")
    lines = [f"# {title}", "", head, "|" + "---|" * (15 if paper else 9)]
    for r in records:
        status = r["status"] + (f": {r['note']}" if r["note"] else "")
        cells = [r["row"], r["system"], r["setting"], r["data"], *(_est(r, q) for q in ESTIMATES)]
        if paper:
            cells += [_num(r["paper_M_react"]), _num(r["paper_M_diff"]), _num(r["paper_R"]),
                      *(_pct(r[f"rel_diff_{q}"]) for q in ("M_react", "M_diff", "R"))]
        lines.append("| " + " | ".join([*cells, status]) + " |")
    n = max((r["n_seeds"] for r in records), default=0)
    notes = ("Δ = ours / paper − 1 (of the means). Paper values: Lo, Nishimura & Ikeda, Table 1." if paper else "")
    notes = (notes + last_step_note(records)).strip()
    if notes:
        lines += ["", notes]
    if n >= 2:
        lines.append(f"Values are means over {n} independent seeds (data, initial weights, noise and sampling all "
                     "seeded anew) with 95 % Student-t intervals [low, high]; R is the mean of per-seed ratios.")
    return "\n".join(lines) + "\n"


def last_step_note(records: list[dict]) -> str:
    """What each DDPM row did with the noise-free last reverse step ('' when no DDPM row ran)."""
    by = {how: [r["row"] for r in records if r.get("last_step") == how] for how in ("excluded", "counted")}
    parts = []
    if by["excluded"]:
        parts.append(f"{', '.join(by['excluded'])} exclude the last reverse step, which adds no noise")
    if by["counted"]:
        parts.append(f"{', '.join(by['counted'])} count it, as the public code does (its diffusion norm is a "
                     "noise never added)")
    return (" DDPM rows: " + "; ".join(parts) + ".") if parts else ""


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


def quality_markdown(folder: Any, info: dict[str, Any]) -> str:
    """Sample quality of the rows whose summaries carry one (the DDPM rows on labelled data),
    beside that of as many real images; '' when none does."""
    import json
    from pathlib import Path

    from rdlens.systems.ddpm import curve
    from rdlens.core import layout
    from rdlens.systems.ddpm import quality
    from rdlens.systems.ddpm.quality import converged

    lines, curves = [], []
    for r in info["rows"]:
        if r["status"] == "skipped":
            continue
        vals, verdicts = [], []
        for s in info["seeds"]:
            path = layout.seed_dir(Path(folder), r["id"], s) / "summary.json"
            summary = json.loads(path.read_text()) if path.exists() else {}
            if summary.get("quality"):
                vals.append(summary["quality"])
                verdicts.append(converged(summary["quality"]))
            tracked = summary.get("training_curve")
            if tracked and s == info["seeds"][0] and (path.parent / "training_curve.csv").exists():
                c = curve.Curve(path.parent / "training_curve.csv", resume=True)
                curves += ["", f"### {r['id']}, seed {s}", "", c.markdown().rstrip("\n"), "",
                           f"Exact denoiser for Gaussian data with the set's mean and covariance: R = "
                           f"{tracked['oracle_gaussian_R']:.4f}; the schedule alone predicts R_score = "
                           f"{tracked['schedule_only_R_score']:.4f}."]
        if vals:
            def mean(key: str, sub: str | None = None) -> float:
                return float(np.mean([(v[sub] if sub else v)[key] for v in vals]))

            def real(key: str, spec: str) -> str:
                sds = [quality.real_sd(v["real"], key) for v in vals]
                sd = None if None in sds else float(np.mean(sds))
                return quality.spread(mean(key, "real"), sd, spec)

            verdict = "yes" if all(verdicts) else "no" if not any(v is None for v in verdicts) else "—"
            counts = sorted({v.get("images") for v in vals}, key=str)
            images = "—" if None in counts else "/".join(str(c) for c in counts)
            lines.append(f"| {r['id']} | {images} | {mean('frechet'):.1f} | {real('frechet', '.1f')} | "
                         f"{mean('confident'):.0%} | {real('confident', '.0%')} | {mean('coverage'):.2f} | "
                         f"{real('coverage', '.2f')} | {verdict} | {mean('classifier_accuracy'):.1%} |")
    if not lines and not curves:
        return ""
    head = ["", "## Sample quality of the DDPM rows", "",
            "Fréchet distance in the feature space of rdlens's own small classifier (not Inception-FID), the share "
            "of samples classified with probability >= 0.9, and the class coverage (entropy of predicted labels / "
            "log 10), each beside the same numbers for real held-out images in random batches of as many (mean ± "
            "standard deviation over the batches: what a perfect generator would score, and how much one batch "
            "varies). With fewer samples than the classifier's 64 features (the quick profile draws 8), the "
            "Fréchet distance mostly measures the sample size: compare it with the real batches, and read the "
            "confident share first. Converged: a confident share at least 80 % of the real images' and coverage "
            ">= 0.9, in every seed; a row that is not measures an under-trained model.", "",
            "| row | images | Fréchet | real | confident | real | coverage | real | converged | classifier accuracy |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    head_curve = ["", "## R along training", "",
                  "The same sampling noise at every point, so only the weights differ (training_curve.csv, "
                  "training_curve.png in the row's folder). If R were low for lack of training it would rise "
                  "towards 1 as the confident share rises."]
    return "\n".join((head + lines if lines else []) + (head_curve + curves if curves else [])) + "\n"
