"""The paper's claims about the DDPM as measurements (``rdlens reproduce --claims``).

Each function measures what one claim says, for one row and seed; the verdict sentences are
made from these numbers by :mod:`rdlens.report.claims`.

2. DDPM, "the ratio is an increasing, monotonic function of time": :func:`decreasing_stretches`
   of R(tau) for the trained model, the exact Gaussian-data denoiser and the schedule alone
   (:func:`schedule_only_curve`: for the linear schedule it falls by 30 % until tau = 0.65 before
   it rises, so a dip is predicted by beta_t alone).
3. DDPM, "R is low because of too few time steps": :func:`r_versus_T` (T = 50 ... 4000, beta
   scaled by 1000 / T so that the total noise stays the same).
4. DDPM, "without the noise term the reverse process collapses to one mode": :func:`ddim_sweep`.
5. and 6. need no new measurement (final R per data set; the RD residual bound and the
   sweep's fractions) and are read by the report. 1. is the LSTM's (:mod:`rdlens.systems.lstm.claims`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch


STRETCH_TOLERANCE = 0.01
"""a decreasing stretch counts when R falls by more than this share of its value at its start"""
T_VALUES = (50, 100, 250, 500, 1000, 2000, 4000)
"""diffusion lengths of the R-versus-T claim"""
ETAS = (0.0, 0.25, 0.5, 1.0)
"""DDIM noise levels of the mode-collapse claim"""


def smooth(r: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` (odd) points, the ends averaged over what exists."""
    if window <= 1:
        return r
    kernel = np.ones(window)
    return np.convolve(r, kernel, "same") / np.convolve(np.ones_like(r), kernel, "same")


def decreasing_stretches(r_tau: np.ndarray, tau: np.ndarray | None = None,
                         tolerance: float = STRETCH_TOLERANCE, window: int | None = None) -> dict[str, Any]:
    """The stretches over which R(tau) falls: from a peak to the lowest point before R is back
    at that peak (a drawdown). Counted when the fall exceeds ``tolerance`` of the peak; the
    largest, with where it lies. The curve is first smoothed over ``window`` steps (default:
    2 % of them, odd), so that the step-to-step jitter of a sampled trace is not a trend."""
    r = np.asarray(r_tau, dtype=np.float64)
    tau = np.linspace(0.0, 1.0, len(r)) if tau is None else np.asarray(tau, dtype=np.float64)
    ok = np.isfinite(r)
    r, tau = r[ok], tau[ok]
    window = (len(r) // 50) | 1 if window is None else window
    r = smooth(r, window)
    stretches = []
    peak = trough = 0
    for i in range(1, len(r) + 1):
        if i == len(r) or r[i] >= r[peak]:
            if trough != peak:
                stretches.append((peak, trough, (r[peak] - r[trough]) / abs(r[peak]) if r[peak] else math.inf))
            peak = trough = i
        elif r[i] < r[trough]:
            trough = i
    big = [x for x in stretches if x[2] > tolerance]
    worst = max(stretches, key=lambda x: x[2], default=None)
    return {"count": len(big), "largest_drop": float(worst[2]) if worst else 0.0,
            "largest_from_tau": float(tau[worst[0]]) if worst else math.nan,
            "largest_to_tau": float(tau[worst[1]]) if worst else math.nan,
            "largest_from_R": float(r[worst[0]]) if worst else math.nan,
            "largest_to_R": float(r[worst[1]]) if worst else math.nan,
            "monotonic": len(big) == 0, "tolerance": tolerance, "smoothing_steps": window}


def schedule_only_curve(schedule: Any) -> np.ndarray:
    """R_score(tau) predicted by the schedule alone (||eps|| = ||z||): the learned part of the
    drift over the noise, beta_t / (sqrt(alpha_t) sqrt(1 - abar_t)) / sqrt(beta_t), in sampling
    order, without the last (noise-free) step."""
    b, a, ab = (v.numpy() for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
    curve = b / (np.sqrt(a) * np.sqrt(1 - ab)) / np.sqrt(b)
    return curve[::-1][:-1]


def scaled_schedule(T: int, base: Any) -> Any:
    """``base`` with T steps and its betas scaled by base.T / T (the same total noise)."""
    from dataclasses import replace

    scale = base.T / T
    return replace(base, T=T, beta_start=base.beta_start * scale, beta_end=base.beta_end * scale)


def r_versus_T(images: torch.Tensor, base: Any, samples: int, seed: int,
               Ts: Sequence[int] = T_VALUES) -> list[dict[str, Any]]:
    """For each T: R and final R of the exact Gaussian-data denoiser (fit to ``images``),
    sampled with T steps, and the schedule-only R_score. T whose scaled beta_end >= 1 is skipped."""
    from rdlens.systems.ddpm import model as ddpm
    from rdlens.systems.ddpm.controls import data_moments, gaussian_oracle, schedule_only_R

    out = []
    shape = (samples, *images.shape[1:])
    mean, cov = data_moments(images)  # once: the data do not change with T
    for T in Ts:
        if base.beta_end * base.T / T >= 1:
            continue
        schedule = scaled_schedule(T, base)
        oracle = gaussian_oracle(mean, cov, schedule)
        trace = ddpm.sample(oracle, shape, schedule, seed=seed).trace
        out.append({"T": T, "beta_end": schedule.beta_end, "oracle_R": trace.R, "oracle_final_R": trace.final_R,
                    "schedule_only_R_score": schedule_only_R(schedule)["R_score"]})
    return out


def diversity(features: np.ndarray) -> float:
    """Mean pairwise Euclidean distance between samples (rows of ``features``)."""
    from scipy.spatial.distance import pdist

    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    return float(pdist(x).mean()) if len(x) >= 2 else math.nan


def ddim_sweep(eps_model: Any, shape: tuple[int, ...], schedule: Any, seed: int, judge: Any = None,
               device: Any = "cpu", etas: Sequence[float] = ETAS, signed: Any = None,
               sigma: str = "beta") -> list[dict[str, Any]]:
    """The DDPM sampler and DDIM at each eta, all from the same x_T: R, final R, diversity
    (classifier features where ``judge`` is given, else pixels) and class coverage."""
    from rdlens.systems.ddpm import model as ddpm
    from rdlens.systems.ddpm import quality as q

    signed = signed or (lambda x: x)
    out = []
    for eta in (None, *etas):
        res = ddpm.sample(eps_model, shape, schedule, seed=seed, device=device, eta=eta,
                          sigma=sigma if eta is None else "beta")
        x = signed(res.samples.detach().float().cpu())
        tr = res.trace
        row: dict[str, Any] = {"sampler": f"DDPM (sigma = {sigma})" if eta is None else f"DDIM eta = {eta:g}",
                               "eta": eta, "R": tr.R if tr.M_diff > 0 else math.nan,
                               "final_R": tr.final_R if tr.M_diff > 0 else math.nan, "M_react": tr.M_react,
                               "M_diff": tr.M_diff}
        if judge is not None:
            feats, probs = judge.features_and_probs(x)
            measured = q.measure(judge, x)
            row.update(diversity=diversity(feats), space="classifier features", coverage=measured["coverage"],
                       confident=measured["confident"])
        else:
            row.update(diversity=diversity(x.numpy()), space="pixels")
        out.append(row)
    return out


__all__ = ["ETAS", "STRETCH_TOLERANCE", "T_VALUES", "ddim_sweep", "decreasing_stretches", "diversity",
           "r_versus_T", "scaled_schedule", "schedule_only_curve"]
