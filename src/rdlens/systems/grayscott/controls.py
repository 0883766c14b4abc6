"""Controls of a Gray-Scott run: what would R be without a pattern?

The relative residual ||dv/dt|| / ||reaction|| over time (R = 1 holds exactly at a steady
state, where this is 0) and the bound it implies: dv/dt = reaction + diffusion, so with
B = mean_t ||dv/dt|| / M_react, R lies in [1 / (1 + B), 1 / (1 - B)]; and a run from the
homogeneous state plus the same noise, with no seed square (no pattern forms).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rdlens.core.balance import BalanceTrace, identity_range, trace_numbers

ControlResult = dict[str, Any]
"""a control's numbers, by name"""


def rd_controls(cfg: Any, trace: BalanceTrace) -> tuple[ControlResult, dict[str, BalanceTrace]]:
    """Relative steady-state residual of the row's own trace, and a homogeneous-start run."""
    from rdlens.systems.grayscott import model as grayscott

    rel = trace.extra["residual"] / np.where(trace.reaction > 0, trace.reaction, np.nan)
    rng = np.random.default_rng(cfg.seed)
    n = cfg.model.size
    u = 1.0 + 0.01 * rng.standard_normal((n, n))
    v = 0.01 * rng.standard_normal((n, n))
    homog = grayscott.run(cfg.model, cfg.steps, cfg.seed, init=(u, v), residual=True).trace
    bound = float(np.mean(trace.extra["residual"])) / trace.M_react
    results = {
        "relative_residual_final": float(rel[-1]),
        "relative_residual_mean": float(np.nanmean(rel)),
        "identities": identity_range(bound, trace.R),
        "homogeneous": trace_numbers(homog),
    }
    return results, {"homogeneous": homog}
