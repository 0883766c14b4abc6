"""The paper's claim about the LSTM as a measurement (``rdlens reproduce --claims``).

1. "peaks of R(t) where the input gate encodes, valleys where the forget gate erases":
   :func:`gate_correlations` (per sequence, the Pearson correlation over time of R_t with the
   mean input-gate activity i and the mean erase activity 1 - f, averaged over sequences).
The verdict sentence is made from these numbers by :mod:`rdlens.report.claims`.
"""

from __future__ import annotations

import math

import numpy as np


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return math.nan
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def gate_correlations(reaction: np.ndarray, diffusion: np.ndarray, input_gate: np.ndarray, forget_gate: np.ndarray,
                      skip: float = 0.1) -> dict[str, float]:
    """How R_t = reaction_t / diffusion_t of each sequence moves with that sequence's mean
    input-gate activity i_t and erase activity 1 - f_t (means over units): the Pearson
    correlation over time per sequence, averaged over sequences. All arrays are (steps,
    sequences); the first ``skip`` share of steps (the state filling up from zero) is left out."""
    r = np.asarray(reaction, dtype=np.float64) / np.where(np.asarray(diffusion) > 0, diffusion, np.nan)
    i, f = (np.asarray(a, dtype=np.float64) for a in (input_gate, forget_gate))
    first = int(round(skip * r.shape[0]))
    per = {"input": [], "erase": []}
    for b in range(r.shape[1]):
        per["input"].append(_corr(r[first:, b], i[first:, b]))
        per["erase"].append(_corr(r[first:, b], 1.0 - f[first:, b]))
    out = {k: float(np.nanmean(v)) if np.isfinite(v).any() else math.nan for k, v in per.items()}
    return {**out, "sequences": int(r.shape[1]), "steps": int(r.shape[0] - first), "skipped_steps": first}
