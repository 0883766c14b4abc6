"""The patterns study's ablation: which stabiliser or loss made the learned patterns what they are.

``rdlens patterns --ablation`` trains, beside the study's own models and with the study's first
seed, data and training length, one more model per variant of what the study switched on:

- the ConvLSTM's stabilisers (:data:`CONVLSTM_SWITCHES`: input noise, the window curriculum, the
  pool of its own states, a gate stencil wider than 3 x 3) and the DDPM's conditioning on (F, k)
  and physics term (:data:`DDPM_SWITCHES`);
- variants: ``none`` (every switch the study set turned off), ``only NAME`` for each switch on
  its own (when the study set more than one), and ``all``, which is the study's own model of
  the first seed (not trained again).

Every variant is judged as the study judges its own models (the ConvLSTM at its long horizon
against Gray-Scott from the same starts, the DDPM against the stationary ground truth): steady
and blown-up shares, residual, wavelength, class mix (total variation from the reference's)
and R. This module holds what the variants are and how their rows become a table; the stages
are run and measured by :mod:`rdlens.studies.patterns`.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

from rdlens.core.balance import bootstrap_interval

CONVLSTM_SWITCHES = {"input_noise": 0.0, "window_final": 0, "pool": 0, "kernel": 3}
"""the ConvLSTM's switches and the value that turns each off"""
DDPM_SWITCHES = {"conditions": 0, "physics_weight": 0.0}
"""the DDPM's switches (``conditions`` is its U-Net's) and the value that turns each off"""
JUDGED = {"convlstm": ("convlstm-long", "gray-scott-long"), "ddpm": ("ddpm", "gray-scott")}
"""per learned system: the study's rows its variants are judged as, and their reference"""
LABELS = ("spots", "stripes", "mixed", "none", "blown up")


@dataclass(frozen=True)
class Variant:
    """One model of the ablation: which system, its name and the settings that make it."""

    system: str
    """convlstm or ddpm"""
    name: str
    """none, only NAME or all"""
    off: dict[str, Any]
    """the switches this variant turns off (all: none of them)"""

    @property
    def folder(self) -> str:
        """Its stage, relative to the study folder (``all`` is the study's own first seed)."""
        return f"ablation/{self.system}-{self.name.replace(' ', '-')}"


def switched_on(values: dict[str, Any], switches: dict[str, Any]) -> list[str]:
    """The switches whose value in ``values`` is not the one that turns them off."""
    return [name for name, off in switches.items() if values[name] != off]


def variants(convlstm: dict[str, Any], ddpm: dict[str, Any]) -> list[Variant]:
    """The variants of the switches set in the study's ConvLSTM and DDPM settings (name: value)."""
    out = []
    for system, values, switches in (("convlstm", convlstm, CONVLSTM_SWITCHES), ("ddpm", ddpm, DDPM_SWITCHES)):
        on = switched_on(values, switches)
        if not on:
            continue
        out.append(Variant(system, "none", {name: switches[name] for name in on}))
        if len(on) > 1:
            out += [Variant(system, f"only {keep}", {name: switches[name] for name in on if name != keep})
                    for keep in on]
        out.append(Variant(system, "all", {}))
    return out


def total_variation(a: dict[str, float], b: dict[str, float]) -> float:
    """Half the L1 distance of two class mixes (0: the same mix, 1: disjoint)."""
    return 0.5 * sum(abs(a.get(c, 0.0) - b.get(c, 0.0)) for c in set(a) | set(b))


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Steady and blown-up shares, residual and wavelength (mean and bootstrap interval over the
    fields Gray-Scott can continue) and the class mix of one variant's (or a reference's) rows."""
    n = len(rows)
    labels = Counter(r.get("label") for r in rows)
    out: dict[str, Any] = {"n": n, "steady": sum(bool(r.get("steady")) for r in rows) / n,
                           "blown_up": labels.get("blown up", 0) / n,
                           "labels": {lab: labels.get(lab, 0) / n for lab in LABELS}}
    for key in ("residual", "wavelength"):
        values = [float(r[key]) for r in rows if r.get(key) is not None and math.isfinite(float(r[key]))]
        out[key] = bootstrap_interval(values).as_dict() if values else None
    return out


def entry(variant: Variant, rows: list[dict[str, Any]], reference: dict[str, Any], **numbers: Any) -> dict[str, Any]:
    """A variant's line of the table: its summary, its class mix's distance from the reference's,
    what it turned off and the numbers of its training (R, final loss, wall time)."""
    s = summary(rows)
    return {"system": variant.system, "variant": variant.name, "off": variant.off, **s,
            "class_tv": total_variation(s["labels"], reference["labels"]), **numbers}


def _fmt(e: dict[str, Any] | None) -> str:
    if e is None:
        return "—"
    if math.isnan(e["low"]):
        return f"{e['mean']:.3g}"
    return f"{e['mean']:.3g} [{e['low']:.3g}, {e['high']:.3g}]"


def markdown(entries: list[dict[str, Any]], references: dict[str, dict[str, Any]], seed: int) -> str:
    """The ablation tables, one per learned system, with their reference first."""
    lines = ["# Ablation: each stabiliser and loss of the patterns study on and off", ""]
    for system, title, judged in (("convlstm", "ConvLSTM, rollouts at the long horizon", "gray-scott-long"),
                                  ("ddpm", "DDPM samples", "gray-scott")):
        mine = [e for e in entries if e["system"] == system]
        if not mine:
            continue
        ref = references[judged]
        lines += [f"## {title}", "",
                  "| variant | turned off | steady | blown up | residual | wavelength | class mix (TV) | R | "
                  "final loss | stage (s) |", "|---|---|---|---|---|---|---|---|---|---|",
                  f"| Gray-Scott (reference) | | {ref['steady']:.0%} | {ref['blown_up']:.0%} | {_fmt(ref['residual'])} | "
                  f"{_fmt(ref['wavelength'])} | {_mix(ref['labels'])} | | | |"]
        for e in mine:
            off = ", ".join(f"{k} = {v}" for k, v in e["off"].items()) or "nothing (the study's model)"
            lines.append(f"| {e['variant']} | {off} | {e['steady']:.0%} | {e['blown_up']:.0%} | {_fmt(e['residual'])} | "
                         f"{_fmt(e['wavelength'])} | {_mix(e['labels'])} ({e['class_tv']:.0%}) | {e['R']:.4g} | "
                         f"{e['final_loss']:.3g} | {e['train_s']:.0f} |")
        lines.append("")
    lines.append(f"Seed {seed} for every variant (the same data, starts and sampling noise). Mean [95 % interval] "
                 "over the fields Gray-Scott can continue (percentile bootstrap); steady, residual and class mix as in "
                 "table.md; class mix (TV): the labels' shares and their total variation from the reference's. "
                 "Final loss: the mean of the last 50 training losses (the DDPM's includes its physics term); stage: the wall "
                 "time of its training and of its rollouts or sampling.")
    return "\n".join(lines) + "\n"


def _mix(labels: dict[str, float]) -> str:
    return ", ".join(f"{lab} {share:.0%}" for lab, share in labels.items() if share) or "—"


__all__ = ["CONVLSTM_SWITCHES", "DDPM_SWITCHES", "JUDGED", "Variant", "entry", "markdown", "summary",
           "switched_on", "total_variation", "variants"]
