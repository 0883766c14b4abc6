"""Controls: what would R be without learning, or without a pattern?

Each control is measured with the row's own code path (the same probe, sampler or kernel,
the same inputs and protocol); only the thing under test changes:

- RD: the relative residual ||dv/dt|| / ||reaction|| over time (R = 1 holds exactly at a
  steady state, where this is 0) and the bound it implies: dv/dt = reaction + diffusion, so
  with B = mean_t ||dv/dt|| / M_react, R lies in [1 / (1 + B), 1 / (1 - B)]; and a run from the
  homogeneous state plus the same noise, with no seed square (no pattern forms).
- LSTM: the same architecture untrained (PyTorch's init; the paper's N(0, 1) init); the
  trained model fed white noise; and two identities of the cell update
  C_t - C_{t-1} = r_t - d_t (r = i*g, d = (1-f)*C_{t-1}):
    telescoping residual  ||C_T - C_0|| / sum_t ||r_t||      (mean over sequences)
    bound B = mean_t ||C_t - C_{t-1}|| / M_react, and since | ||r|| - ||d|| | <= ||r - d||,
    |M_react - M_diff| <= B M_react, so R lies in [1 / (1 + B), 1 / (1 - B)] whatever the weights.
- DDPM: the untrained eps-network; closed-form oracle denoisers for a data set of one point
  (the data mean) and for a Gaussian fitted to the data; and the schedule-only prediction of
  the score ratio, assuming ||eps_theta|| = ||z||:
    R_score = mean_t [beta_t / (sqrt(alpha_t) sqrt(1 - abar_t))] / mean_t sqrt(beta_t).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rdlens.balance import BalanceTrace, score_ratio
from rdlens.errors import ConfigError

ControlResult = dict[str, Any]


def trace_numbers(trace: BalanceTrace) -> dict[str, float]:
    return {"M_react": trace.M_react, "M_diff": trace.M_diff, "R": trace.R, "final_R": trace.final_R}


# ---- RD -----------------------------------------------------------------------------------


def rd_controls(cfg: Any, trace: BalanceTrace) -> tuple[ControlResult, dict[str, BalanceTrace]]:
    """Relative steady-state residual of the row's own trace, and a homogeneous-start run."""
    from rdlens import grayscott

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
        "identities": _range(bound, trace.R),
        "homogeneous": trace_numbers(homog),
    }
    return results, {"homogeneous": homog}


# ---- LSTM ---------------------------------------------------------------------------------


def lstm_identities(record: Any) -> dict[str, float]:
    """The telescoping residual and the bound B of a gate record (see module doc)."""
    r = record.reaction.double()
    d = record.diffusion.double()
    r_norm = torch.linalg.vector_norm(r, dim=-1)  # (time, batch)
    d_norm = torch.linalg.vector_norm(d, dim=-1)
    delta = torch.linalg.vector_norm(record.c.double() - record.c_prev.double(), dim=-1)
    net = torch.linalg.vector_norm(record.c[-1].double() - record.c0.double(), dim=-1)  # (batch,)
    telescoping = float((net / r_norm.sum(0)).mean())
    m_react = float(r_norm.mean())
    bound = float(delta.mean()) / m_react
    return {"telescoping_residual": telescoping, **_range(bound, m_react / float(d_norm.mean()))}


def _range(bound: float, r_ratio: float) -> dict[str, float | bool]:
    """R's range [1/(1+B), 1/(1-B)] implied by |M_react - M_diff| <= B M_react."""
    low = 1.0 / (1.0 + bound)
    high = 1.0 / (1.0 - bound) if bound < 1 else math.inf
    return {"bound_B": bound, "R_range_low": low, "R_range_high": high, "R_within_range": bool(low <= r_ratio <= high)}


def lstm_controls(cfg: Any, model: Any, data: Any, evaluation: Any, device: Any = "cpu"
                  ) -> tuple[ControlResult, dict[str, BalanceTrace]]:
    """Untrained models (both inits), the trained model on white noise, and the identities."""
    from dataclasses import replace

    from rdlens import lstm

    traces: dict[str, BalanceTrace] = {}
    results: ControlResult = {}
    for name, init in (("untrained_pytorch", "pytorch"), ("untrained_normal", "normal")):
        untrained = lstm.build_model(replace(cfg, init=init), device).eval()
        traces[name] = lstm.evaluate(cfg, untrained, data, device).trace
    rng = np.random.default_rng(cfg.seed + 7)
    noise = replace(data, test=rng.standard_normal(data.test.shape))
    traces["white_noise"] = lstm.evaluate(cfg, model, noise, device).trace
    for name, tr in traces.items():
        results[name] = trace_numbers(tr)
    results["identities"] = lstm_identities(evaluation.record)
    return results, traces


# ---- DDPM ---------------------------------------------------------------------------------


def gaussian_oracle(mean: torch.Tensor, cov: torch.Tensor, schedule: Any):
    """The exact eps-prediction when the data are N(mean, cov) (mean: image shape, cov: D x D):
    x_s ~ N(sqrt(abar) mean, abar cov + (1 - abar) I), so
    E[eps | x_s] = sqrt(1 - abar) (abar cov + (1 - abar) I)^{-1} (x_s - sqrt(abar) mean).
    Computed in the eigenbasis of cov, once."""
    evals, evecs = torch.linalg.eigh(cov.double())
    evals = evals.clamp(min=0)
    m = mean.reshape(-1).double()

    def eps_model(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ab = float(schedule.alpha_bars[int(s[0])])
        flat = x.reshape(x.shape[0], -1).double() - math.sqrt(ab) * m
        coef = math.sqrt(1 - ab) / (ab * evals + (1 - ab))
        out = ((flat @ evecs) * coef) @ evecs.T
        return out.reshape(x.shape).to(x.dtype)

    return eps_model


def data_moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and covariance (D, D) of a set of images, in float64."""
    flat = images.reshape(images.shape[0], -1).double()
    mean = flat.mean(0)
    centred = flat - mean
    return mean, centred.T @ centred / max(1, flat.shape[0] - 1)


def data_oracles(images: torch.Tensor, schedule: Any) -> dict[str, Any]:
    """The exact denoisers of two stand-ins for the data: all mass at its mean (one point) and
    a Gaussian with its mean and covariance."""
    from rdlens import ddpm

    mean, cov = data_moments(images)
    return {"oracle_one_point": ddpm.one_point_oracle(mean.reshape(1, *images.shape[1:]).float(), schedule),
            "oracle_gaussian": gaussian_oracle(mean, cov, schedule)}


def schedule_only_R(schedule: Any) -> dict[str, float]:
    """R predicted from beta alone if ||eps_theta|| = ||z||: the score part over the noise
    (per sqrt(D)), the last, noise-free step excluded as in the measured traces.

    ``schedule`` is an :class:`rdlens.ddpm.Schedule` or anything with ``betas``, ``alphas``
    and ``alpha_bars`` or ``alphas_cumprod`` over the training steps (a diffusers
    ``DDPMScheduler`` or ``DDIMScheduler``), so a model's R can be read against what its
    schedule alone implies."""
    cumprod = getattr(schedule, "alpha_bars", None)
    if cumprod is None:
        cumprod = getattr(schedule, "alphas_cumprod", None)
    if cumprod is None or not hasattr(schedule, "betas") or not hasattr(schedule, "alphas"):
        raise ConfigError(f"schedule_only_R needs betas, alphas and alpha_bars (or alphas_cumprod); "
                          f"{type(schedule).__name__} has not all of them")
    b, a, ab = (np.asarray(torch.as_tensor(v).double().cpu())[1:] for v in (schedule.betas, schedule.alphas, cumprod))
    score = np.mean(b / (np.sqrt(a) * np.sqrt(1 - ab)))
    noise = np.mean(np.sqrt(b))
    return {"R_score": float(score / noise), "M_score_per_sqrtD": float(score), "M_diff_per_sqrtD": float(noise)}


def ddpm_controls(cfg: Any, images: torch.Tensor, device: Any = "cpu") -> tuple[ControlResult, dict[str, BalanceTrace]]:
    """Untrained network and the two oracles, sampled exactly like the row; schedule-only R."""
    from rdlens import ddpm
    from rdlens.unet import build as build_unet

    shape = (cfg.samples, cfg.unet.in_channels, cfg.unet.image_size, cfg.unet.image_size)
    torch.manual_seed(cfg.seed)
    models = {"untrained": build_unet(cfg.unet).to(device).eval(), **data_oracles(images, cfg.schedule)}
    traces = {}
    for name, model in models.items():
        res = ddpm.sample(model, shape, cfg.schedule, seed=cfg.seed + 2, sigma=cfg.sigma, device=device)
        traces[name] = res.trace
    results: ControlResult = {name: {**trace_numbers(tr), "R_score": score_ratio(tr)} for name, tr in traces.items()}
    results["schedule_only"] = schedule_only_R(cfg.schedule)
    return results, traces
