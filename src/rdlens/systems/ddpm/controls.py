"""Controls of a DDPM row: what would R be without learning?

The untrained eps-network; closed-form oracle denoisers for a data set of one point (the data
mean) and for a Gaussian fitted to the data; and the schedule-only prediction of the score
ratio, assuming ||eps_theta|| = ||z||:
  R_score = mean_t [beta_t / (sqrt(alpha_t) sqrt(1 - abar_t))] / mean_t sqrt(beta_t).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rdlens.core.balance import BalanceTrace, score_ratio, trace_numbers
from rdlens.core.errors import ConfigError

ControlResult = dict[str, Any]
"""a control's numbers, by name"""


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
    from rdlens.systems.ddpm import model as ddpm

    mean, cov = data_moments(images)
    return {"oracle_one_point": ddpm.one_point_oracle(mean.reshape(1, *images.shape[1:]).float(), schedule),
            "oracle_gaussian": gaussian_oracle(mean, cov, schedule)}


def schedule_only_R(schedule: Any) -> dict[str, float]:
    """R predicted from beta alone if ||eps_theta|| = ||z||: the score part over the noise
    (per sqrt(D)), the last, noise-free step excluded as in the measured traces.

    ``schedule`` is an :class:`rdlens.systems.ddpm.model.Schedule` or anything with ``betas``, ``alphas``
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
    from rdlens.systems.ddpm import model as ddpm
    from rdlens.systems.ddpm.unet import build as build_unet

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
