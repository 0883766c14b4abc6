"""Measure any diffusers model as it is: a ``UNet2DModel`` (or any callable ``model(x, t)``)
with its ``DDPMScheduler`` or ``DDIMScheduler``, through diffusers' own ``scheduler.step``.

diffusers is an optional extra (``pip install "rdlens[diffusers]"``). The sampling loop is
diffusers' (``set_timesteps``, then ``step`` per timestep), so whatever the scheduler does is
what is measured: epsilon, v or sample prediction, clipping or thresholding of the x0
prediction, the ``linear``, ``scaled_linear`` or ``squaredcos_cap_v2`` schedule, its variance
type. Per step and image rdlens splits the update ``prev_sample - x_t`` exactly:

- DDPM: ``step`` draws its own noise, so the deterministic mean is rebuilt from the x0
  prediction that ``step`` returns, mu = c0 x0 + c1 x_t with diffusers' coefficients, and
  diffusion = prev_sample - mu (the noise it added, whatever its variance type);
- DDIM: ``step`` is called once with zero ``variance_noise`` (that is mu) and once with the
  noise rdlens draws; diffusion is their difference.

reaction = ||mu - x_t||, as for rdlens's own sampler. Mind diffusers' defaults: they are not
the paper's. ``DDPMScheduler()`` uses ``variance_type="fixed_small"`` (the posterior variance;
the paper adds sqrt(beta_t) z, diffusers' ``"fixed_large"``) and ``clip_sample=True`` (x0
clipped to [-1, 1], which the paper does not do); :func:`settings` reports which were used.
The scheduler keeps alphas_cumprod in float32, and a product of 1000 float32 factors moves
final R by a lot for an untrained model; ``float64=True`` (the default) recomputes the
products from its betas in float64 and runs the loop in float64.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from rdlens.core import threads
from rdlens.core.balance import BalanceTrace
from rdlens.core.errors import ConfigError

INSTALL = 'diffusers is not installed: pip install "rdlens[diffusers]"'
PAPER_SETTINGS = {"variance_type": "fixed_large", "clip_sample": False, "prediction_type": "epsilon",
                  "beta_schedule": "linear", "thresholding": False}
"""the scheduler settings that match the paper's sampler"""


def require() -> Any:
    """The diffusers module, or a one-line ConfigError saying how to install it."""
    try:
        import diffusers
    except ImportError:
        raise ConfigError(INSTALL) from None
    return diffusers


@dataclass
class Measured:
    """The samples, the balance trace (one row per timestep, sampling order) and the settings."""

    samples: torch.Tensor
    trace: BalanceTrace
    settings: dict[str, Any]


def settings(scheduler: Any, float64: bool) -> dict[str, Any]:
    """The scheduler's settings that change what is measured, and how they differ from the paper."""
    cfg = scheduler.config
    out = {"scheduler": type(scheduler).__name__, "num_train_timesteps": int(cfg.num_train_timesteps),
           "num_inference_steps": int(len(scheduler.timesteps)), "schedule_arithmetic": "float64" if float64 else
           "float32 (diffusers' own)"}
    for key in ("beta_schedule", "prediction_type", "clip_sample", "clip_sample_range", "thresholding",
                "variance_type"):
        if key in cfg:
            out[key] = cfg[key]
    out["differs_from_paper"] = {k: out[k] for k, v in PAPER_SETTINGS.items() if k in out and out[k] != v}
    return out


def _to_float64(scheduler: Any) -> Any:
    s = copy.deepcopy(scheduler)
    s.betas = s.betas.double()
    s.alphas = 1.0 - s.betas
    s.alphas_cumprod = torch.cumprod(s.alphas, dim=0)
    if hasattr(s, "final_alpha_cumprod"):  # DDIM: abar before the first step
        s.final_alpha_cumprod = (torch.tensor(1.0, dtype=torch.float64) if s.config.set_alpha_to_one
                                 else s.alphas_cumprod[0])
    s.one = torch.tensor(1.0, dtype=torch.float64)
    return s


def measure(model: Callable[..., Any], scheduler: Any, shape: tuple[int, ...], seed: int = 0, *,
            num_inference_steps: int | None = None, eta: float = 0.0, float64: bool = True,
            device: torch.device | str = "cpu", progress: Callable[[int], None] | None = None) -> Measured:
    """Sample with diffusers' loop from x_T ~ N(0, I) (seeded) and record reaction and
    diffusion per step and image. ``model(x, t)`` may return a tensor or an object with
    ``.sample`` (a ``UNet2DModel``). ``eta`` is DDIM's noise level (DDIMScheduler only).
    ``progress(n)`` is called after each step with n = 1 (e.g. a tqdm bar's ``update``).

    The loop runs under rdlens's thread policy (:mod:`rdlens.core.threads`): torch uses
    ``RDLENS_THREADS`` threads, else one, and the caller's count is restored afterwards; on a
    busy machine this is what keeps a measurement from slowing down tenfold."""
    diffusers = require()
    if not isinstance(scheduler, (diffusers.DDPMScheduler, diffusers.DDIMScheduler)):
        raise ConfigError(f"scheduler must be a diffusers DDPMScheduler or DDIMScheduler, got {type(scheduler).__name__}")
    ddim = isinstance(scheduler, diffusers.DDIMScheduler)
    sched = _to_float64(scheduler) if float64 else copy.deepcopy(scheduler)
    sched.set_timesteps(num_inference_steps or sched.config.num_train_timesteps)
    dtype = torch.float64 if float64 else torch.float32
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    n, steps = shape[0], len(sched.timesteps)
    norms = np.zeros((2, steps, n))
    dims = tuple(range(1, len(shape)))
    with torch.no_grad(), threads.stage("diffusers sampling", parallel=True):
        for row, t in enumerate(sched.timesteps):
            out = model(x.to(_param_dtype(model)), t)
            out = (out.sample if hasattr(out, "sample") else out).to(dtype)
            if ddim:
                mu = sched.step(out, t, x, eta=eta, variance_noise=torch.zeros_like(x)).prev_sample
                z = torch.randn(shape, generator=gen, dtype=dtype).to(device)
                prev = sched.step(out, t, x, eta=eta, variance_noise=z).prev_sample
            else:
                res = sched.step(out, t, x, generator=gen)
                prev, mu = res.prev_sample, _ddpm_mean(sched, int(t), res.pred_original_sample, x)
            norms[0, row] = torch.linalg.vector_norm(mu - x, dim=dims).double().cpu().numpy()
            norms[1, row] = torch.linalg.vector_norm(prev - mu, dim=dims).double().cpu().numpy()
            x = prev
            if progress is not None:
                progress(1)
    counted = norms[1].mean(axis=1) > 0  # the last step adds no noise: kept, not counted
    trace = BalanceTrace.from_samples(norms[0], norms[1], counted=counted,
                                      extra={"t": sched.timesteps.cpu().numpy().astype(np.int64)})
    return Measured(x, trace, settings(sched, float64))


def _param_dtype(model: Any) -> torch.dtype:
    try:
        return next(model.parameters()).dtype
    except (AttributeError, StopIteration):
        return torch.float32


def _ddpm_mean(sched: Any, t: int, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The mean of diffusers' DDPM step from its own x0 prediction: the posterior mean
    sqrt(abar_prev) beta_t / (1 - abar_t) x0 + sqrt(alpha_t) (1 - abar_prev) / (1 - abar_t) x_t."""
    prev_t = sched.previous_timestep(t)
    ab = sched.alphas_cumprod[t]
    ab_prev = sched.alphas_cumprod[prev_t] if prev_t >= 0 else sched.one
    alpha = ab / ab_prev
    c0 = ab_prev.sqrt() * (1 - alpha) / (1 - ab)
    c1 = alpha.sqrt() * (1 - ab_prev) / (1 - ab)
    return c0.to(x) * x0 + c1.to(x) * x


__all__ = ["INSTALL", "Measured", "PAPER_SETTINGS", "measure", "require", "settings"]
