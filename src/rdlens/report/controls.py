"""controls.md, controls.json and controls.png of a reproduce folder run with --controls.

Every sentence is generated from the numbers: for each row, whether the trained (measured)
R lies outside the 95 % interval of each control, over the seeds. With one seed there is no
interval, and the text says so instead of guessing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rdlens.core import layout
from rdlens.core.balance import t_interval
from rdlens.plot import pyplot
from rdlens.core.rundir import atomic_write_text, dumps, save_figure
from rdlens.systems import style_of


def labels(record: dict) -> dict[str, str]:
    """The row's system's controls, in order: name -> label."""
    return dict(style_of(record["kind"]).control_labels)


def _estimate(values: list[float]) -> dict[str, float | int | None]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return {"mean": None, "low": None, "high": None, "n": 0}
    est = t_interval(finite)
    ok = est.n >= 2
    return {"mean": est.mean, "low": est.low if ok else None, "high": est.high if ok else None, "n": est.n}


def _fmt(e: dict, digits: int = 4) -> str:
    if e["mean"] is None:
        return "—"
    if e["low"] is None:
        return f"{e['mean']:.{digits}f}"
    return f"{e['mean']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def aggregate(folder: Path, record: dict, seeds: list[int]) -> dict[str, Any]:
    """Each control's M_react, M_diff, R (and extras) over the seeds of one row."""
    per_seed = [json.loads((layout.seed_dir(folder, record["row"], s) / "controls.json").read_text())
                for s in seeds]
    out: dict[str, Any] = {}
    for name in per_seed[0]:
        first = per_seed[0][name]
        if isinstance(first, dict):
            out[name] = {k: _estimate([p[name][k] for p in per_seed]) for k, v in first.items()
                         if isinstance(v, (int, float)) and not isinstance(v, bool)}
            bools = [k for k, v in first.items() if isinstance(v, bool)]
            for k in bools:
                out[name][k] = all(p[name][k] for p in per_seed)
        else:
            out[name] = _estimate([p[name] for p in per_seed])
    return out


def _rel(measured: float | None, control_R: dict) -> str:
    """The measured R relative to a control's R estimate, as a signed percentage."""
    if measured is None or not control_R["mean"]:
        return "n/a"
    return f"{measured / control_R['mean'] - 1:+.1%}"


def _outside(trained: dict, control: dict) -> bool | None:
    """Whether the trained mean lies outside the control's interval (None: no interval)."""
    if control.get("R") is None or control["R"]["low"] is None or trained["R"] is None:
        return None
    return not (control["R"]["low"] <= trained["R"] <= control["R"]["high"])


def sentence(record: dict, ctrl: dict[str, Any]) -> str:
    """One sentence (or two) per row, made from the numbers; the clause about the row's own
    identities or predictions comes from its system."""
    trained = {"R": record["R"]}
    r_text = _fmt({"mean": record["R"], "low": record["R_low"], "high": record["R_high"]})
    names = labels(record)
    comparable = [n for n in names if n in ctrl]
    verdicts = {n: _outside(trained, ctrl[n]) for n in comparable}
    parts = [f"**{record['row']}** ({record['setting']}): measured R = {r_text}"]
    ident = ctrl.get("identities")
    bound_text = ""
    if ident:
        hi = ident["R_range_high"]["mean"]
        hi_text = "inf" if hi is None or not math.isfinite(hi) else f"{hi:.3f}"
        bound_text = f"[{ident['R_range_low']['mean']:.3f}, {hi_text}] (B = {ident['bound_B']['mean']:.3f})"
    parts.append(style_of(record["kind"]).control_sentence(ctrl, bound_text))
    listed = ", ".join(f"{names[n]} {_fmt(ctrl[n]['R'])} (measured {_rel(record['R'], ctrl[n]['R'])})"
                       for n in comparable)
    parts.append(f". Controls: {listed}.")
    if any(v is None for v in verdicts.values()):
        parts.append(" With one seed there are no intervals, so no control can be ruled in or out "
                     "(run with --seeds 2 or more).")
    else:
        out = [names[n] for n, v in verdicts.items() if v]
        inside = [names[n] for n, v in verdicts.items() if not v]
        parts.append(f" The measured R lies outside the 95 % interval of {len(out)} of {len(verdicts)} controls"
                     + (f" ({', '.join(out)})" if out else "")
                     + (f"; inside that of {', '.join(inside)}" if inside else "") + ".")
    return "".join(parts)


def build(folder: Path, records: list[dict], seeds: list[int]) -> str:
    """Write controls.md, controls.json and controls.png; return the Markdown."""
    done = [r for r in records if r["status"] != "skipped" and _has_controls(folder, r, seeds)]
    agg = {r["row"]: aggregate(folder, r, seeds) for r in done}
    lines = ["# Controls: is R learned, or fixed by the structure of each update?", "",
             f"Seeds: {len(seeds)}; intervals are 95 % Student-t intervals over seeds "
             "(each seed draws data, initial weights, noise and sampling anew). "
             "Controls use the rows' own code paths and protocol.", "",
             "| row | measured or control | M_react | M_diff | R | measured R vs control | measured R outside? |",
             "|---|---|---|---|---|---|---|"]
    for r in done:
        lines.append(f"| {r['row']} | measured | "
                     f"{_fmt({'mean': r['M_react'], 'low': r['M_react_low'], 'high': r['M_react_high']})} | "
                     f"{_fmt({'mean': r['M_diff'], 'low': r['M_diff_low'], 'high': r['M_diff_high']})} | "
                     f"{_fmt({'mean': r['R'], 'low': r['R_low'], 'high': r['R_high']})} | | |")
        for name, label in labels(r).items():
            if name in agg[r["row"]]:
                c = agg[r["row"]][name]
                v = _outside({"R": r["R"]}, c)
                lines.append(f"| {r['row']} | {label} | {_fmt(c['M_react'])} | {_fmt(c['M_diff'])} | "
                             f"{_fmt(c['R'])} | {_rel(r['R'], c['R'])} | {'—' if v is None else ('yes' if v else 'no')} |")
    lines += ["", *[f"- {sentence(r, agg[r['row']])}" for r in done]]
    lines += [f"- **{r['row']}** ({r['setting']}): no controls: {_why_none(r)}." for r in records
              if r["status"] != "skipped" and r not in done]
    lines.append("")
    md = "\n".join(lines)
    atomic_write_text(folder / "controls.md", md)
    atomic_write_text(folder / "controls.json", dumps(agg))
    if done:
        plot_controls(done, agg, folder / "controls.png")
    return md


def _why_none(record: dict) -> str:
    """Why a row that ran has no controls: its system defines none, or they were not measured."""
    from rdlens.systems import System

    system = style_of(record["kind"])
    if type(system).controls is System.controls:
        return (f"its system ({system.name}) defines none (a plug-in system adds them by overriding "
                "System.controls)")
    return "not measured for every seed (rdlens reproduce --controls measures them)"


def _has_controls(folder: Path, record: dict, seeds: list[int]) -> bool:
    """Whether every seed of the row has controls (a system without controls has none)."""
    return all((layout.seed_dir(folder, record["row"], s) / "controls.json").exists() for s in seeds)


def plot_controls(records: list[dict], agg: dict[str, Any], path: Path) -> Path:
    """Each row's measured R beside its controls' R (log scale, 95 % intervals as bars)."""
    plt = pyplot()
    cols = 3
    rows = -(-len(records) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, records):
        ax.set_visible(True)
        row_labels = labels(r)
        names = ["measured"] + [n for n in row_labels if n in agg[r["row"]]]
        ests = [{"mean": r["R"], "low": r["R_low"], "high": r["R_high"]}] + [agg[r["row"]][n]["R"] for n in names[1:]]
        for k, e in enumerate(ests):
            if e["mean"] is None or e["mean"] <= 0:
                continue
            err = None
            if e["low"] is not None:
                err = [[max(e["mean"] - e["low"], 0)], [max(e["high"] - e["mean"], 0)]]
            ax.errorbar([k], [e["mean"]], yerr=err, fmt="o", color="C3" if k == 0 else "C0", capsize=3)
        ident = agg[r["row"]].get("identities")
        if ident:
            lo, hi = ident["R_range_low"]["mean"], ident["R_range_high"]["mean"]
            ax.axhspan(lo, hi if hi is not None and math.isfinite(hi) else lo * 10, color="grey", alpha=0.15,
                       label="identity bound")
            ax.legend(fontsize=8, loc="best")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xticks(range(len(names)), [row_labels.get(n, n).replace(", ", ",\n") for n in names], fontsize=8,
                      rotation=30, ha="right")
        ax.set_title(f"{r['system']} {r['setting']}", fontsize=9)
        ax.set_ylabel("R", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)

