"""DDPM (Ho et al. 2020): noise schedule, training loss, and an instrumented reverse sampler.

Reverse step t = T ... 1 (Algorithm 2), with schedule index s = t - 1 as diffusers counts:

    mu_theta = (x_t - beta_t / sqrt(1 - abar_t) * eps_theta(x_t, s)) / sqrt(alpha_t)
    x_{t-1}  = mu_theta + sigma_t z,        z ~ N(0, I), z = 0 at t = 1

Per step and per image the sampler records (SPEC.md)

    reaction  = || mu_theta - x_t ||        the whole drift of the update (the paper's Eq. 10)
    diffusion = || sigma_t z ||             sigma_t = sqrt(beta_t), or the posterior sigma
    score     = || beta_t / (sqrt(alpha_t) sqrt(1 - abar_t)) eps_theta ||   the learned part alone
    eps_norm  = || eps_theta ||             the paper's Eq. 14 read literally

and averages them over the batch. The last step (t = 1) adds no noise: its row is kept in the
trace but excluded from M_react, M_diff, R and R(tau) (``counted`` = 0).

Any callable ``eps_model(x_t, s) -> eps`` can be measured, with ``s`` a long tensor of
0-based schedule indices, one per image.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Callable, Sequence

import numpy as np
import torch

from rdlens.core import threads
from rdlens.core.balance import BalanceTrace, compact_repr
from rdlens.core.errors import ConfigError
from rdlens.core.options import seed_setting, setting, validate
from rdlens.systems.ddpm.images import DATASETS
from rdlens.systems.ddpm.unet import UNet, UNetConfig
from rdlens.systems.ddpm.unet import build as build_unet

SCHEDULES = ("linear", "cosine")
SIGMAS = ("beta", "posterior")
SCHEDULE_DTYPES = ("float64", "float32")

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Schedule:
    """The forward-process noise schedule; tensors are float64 on the CPU (cast on use), computed
    in ``dtype``."""

    T: int = setting(1000, low=2)
    """number of diffusion steps"""
    kind: str = setting("linear", choices=SCHEDULES, label="schedule")
    """linear (Ho et al.: beta from beta_start to beta_end) or cosine (Nichol & Dhariwal)"""
    beta_start: float = 1e-4
    beta_end: float = 0.02
    dtype: str = setting("float64", choices=SCHEDULE_DTYPES, label="schedule_dtype")
    """precision the betas, alphas and their products are computed in: float64, or float32 as
    the public code (a quirk; its effect on R is in differences.md)"""

    def __post_init__(self) -> None:
        validate(self)
        if not (0 < self.beta_start <= self.beta_end < 1):
            raise ConfigError(f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}")

    @cached_property
    def _chain(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """beta, alpha = 1 - beta and abar = cumprod(alpha), computed in ``dtype``, kept as float64."""
        betas = self._betas(torch.float64 if self.dtype == "float64" else torch.float32)
        alphas = 1.0 - betas
        return betas.double(), alphas.double(), torch.cumprod(alphas, dim=0).double()

    @property
    def alphas(self) -> torch.Tensor:
        return self._chain[1]

    @property
    def alpha_bars(self) -> torch.Tensor:
        """abar_t = prod_{s <= t} alpha_s."""
        return self._chain[2]

    @cached_property
    def posterior_variance(self) -> torch.Tensor:
        """Variance of q(x_{t-1} | x_t, x_0): beta_t (1 - abar_{t-1}) / (1 - abar_t)."""
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alpha_bars[:-1]])
        return self.betas * (1.0 - ab_prev) / (1.0 - self.alpha_bars)

    @property
    def betas(self) -> torch.Tensor:
        """beta_t for t = 1 ... T (index t - 1)."""
        return self._chain[0]

    def _betas(self, dtype: torch.dtype) -> torch.Tensor:
        if self.kind == "linear":
            return torch.linspace(self.beta_start, self.beta_end, self.T, dtype=dtype)
        s = 0.008
        steps = torch.arange(self.T + 1, dtype=dtype) / self.T
        f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
        return torch.clamp(1 - f[1:] / f[:-1], max=0.999)

    def sigmas(self, kind: str = "beta") -> torch.Tensor:
        """Noise scale of each reverse step: sqrt(beta_t) or the posterior standard deviation."""
        if kind not in SIGMAS:
            raise ConfigError(f"sigma must be one of {', '.join(SIGMAS)}, got {kind!r}")
        return self.betas.sqrt() if kind == "beta" else self.posterior_variance.sqrt()

    def abar_at(self, s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """abar_s of each image (s 0-based, one per image), shaped to broadcast over ``like``."""
        return self.alpha_bars.to(like.device)[s].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Forward noising x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s) eps, s 0-based per image."""
        ab = self.abar_at(s, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps


Physics = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``physics(x0_hat, idx)``: the squared residual (batch,) of predicted clean images under the
physics of the training images ``idx`` (rdlens patterns: the Gray-Scott steady-state residual)"""


def loss(eps_model: Callable[..., torch.Tensor], schedule: Schedule, x0: torch.Tensor,
         generator: torch.Generator | None = None, *, cond: torch.Tensor | None = None,
         physics: Physics | None = None, idx: torch.Tensor | None = None, weight: float = 0.0) -> torch.Tensor:
    """The simple loss E || eps - eps_theta(x_s, s[, cond]) ||^2 (mean over pixels and images),
    plus, with ``physics``, ``weight`` times the mean over images of abar_s times the residual of
    the clean image the network predicts, x0_hat = (x_s - sqrt(1 - abar_s) eps_theta) / sqrt(abar_s)
    (physics-informed diffusion, Bastek et al. 2025; abar_s weighs out the steps where x0_hat is
    mostly noise)."""
    s = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device="cpu").to(x0.device)
    eps = torch.randn(x0.shape, generator=generator, device="cpu", dtype=x0.dtype).to(x0.device)
    x_s = schedule.q_sample(x0, s, eps)
    predicted = eps_model(x_s, s) if cond is None else eps_model(x_s, s, cond)
    simple = torch.mean((eps - predicted) ** 2)
    if physics is None or weight == 0:
        return simple
    ab = schedule.abar_at(s, predicted)
    x0_hat = (x_s - (1 - ab).sqrt() * predicted) / ab.sqrt()
    return simple + weight * torch.mean(ab.flatten() * physics(x0_hat.float(), idx))


LAST_STEPS = ("exclude", "public-code")
OPTIMIZERS = ("adamw", "adam")
PIXELS = ("signed", "unit")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("float32", "bfloat16", "auto")
BATCHES = ("random", "epochs")
FIELDS = "fields"
"""the dataset name of images the caller supplies, of any channel count (rdlens patterns trains
on Gray-Scott (u, v) states this way); nothing is loaded by name"""


@dataclass
class SampleResult:

    __repr__ = compact_repr
    samples: torch.Tensor
    trace: BalanceTrace


def sample(
    eps_model: EpsModel,
    shape: tuple[int, ...],
    schedule: Schedule | None = None,
    seed: int = 0,
    *,
    sigma: str = "beta",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
    last_step: str = "exclude",
    eta: float | None = None,
    precision: str = "float32",
) -> SampleResult:
    """Run the reverse process from x_T ~ N(0, I) of ``shape`` (batch first) to x_0, and
    record reaction, diffusion, score and eps_norm per step and image (see module doc).

    Rows of the trace are in sampling order: step 1 is t = T (tau = 0, pure noise), step T
    is t = 1 (tau = 1), whose diffusion is 0 and which is not counted. ``last_step =
    "public-code"`` records that row as the authors' sampler does (a quirk): the drift from the
    previous step's eps and coefficients applied to the current x, and a diffusion norm of
    sqrt(beta) z for a fresh z that is never added; the row is then counted. The samples are
    the same either way.

    ``eta`` (0 <= eta <= 1) samples with DDIM (Song et al. 2021) over all T steps instead:
    x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), sigma_t = eta sqrt(posterior variance),
    x_{t-1} = sqrt(abar_{t-1}) x0 + sqrt(1 - abar_{t-1} - sigma_t^2) eps + sigma_t z; reaction is
    the deterministic part minus x_t, diffusion ||sigma_t z|| (0 at eta = 0: R is then undefined).
    eta = 1 is the DDPM sampler with the posterior sigma (the same samples for the same seed).

    ``precision = "bfloat16"`` calls the network under bfloat16 autocast (``auto``: where native,
    :func:`effective_precision`); x, the update and the norms stay in ``dtype``. On a CPU with AMX
    this samples 2.2x faster and moved R by -6.7e-4 relative (benchmarks/bench_sampler_options.py).
    """
    if last_step not in LAST_STEPS:
        raise ConfigError(f"last_step must be one of {', '.join(LAST_STEPS)}, got {last_step!r}")
    schedule = schedule or Schedule()
    if eta is not None and (isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0 <= eta <= 1):
        raise ConfigError(f"DDIM eta must be a number in [0, 1], got {eta!r}")
    if eta is not None and last_step != "exclude":
        raise ConfigError("last_step = public-code describes the authors' DDPM sampler, not DDIM")
    if len(shape) < 2:
        raise ConfigError(f"shape must be (batch, ...) with at least one data dimension, got {shape}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    device = torch.device(device)
    mixed = effective_precision(precision, device) == "bfloat16"
    gen = torch.Generator(device="cpu").manual_seed(seed)
    n, T = shape[0], schedule.T
    sig = schedule.sigmas(sigma) if eta is None else eta * schedule.posterior_variance.sqrt()
    learned = (schedule.betas / (schedule.alphas.sqrt() * (1 - schedule.alpha_bars).sqrt())).flip(0).numpy()
    if eta is not None:  # the eps coefficient of the DDIM update, per step in sampling order
        ab = schedule.alpha_bars
        ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
        learned = ((ab_prev / ab).sqrt() * (1 - ab).sqrt() - (1 - ab_prev - sig**2).clamp(min=0).sqrt()).flip(0).numpy()
    x = torch.randn(shape, generator=gen, dtype=dtype).to(device)
    # per step and image: reaction, diffusion, eps_norm; kept on the device, copied once at the end
    norms = torch.zeros(T, 3, n, dtype=dtype, device=device)
    dims = tuple(range(1, len(shape)))
    previous: tuple[torch.Tensor, float, float] | None = None  # eps and coefficients of the step before
    # torch stages keep their thread count (torch sums in a thread-dependent order)
    with torch.no_grad(), threads.stage("DDPM sample", parallel=True):
        for row, s in enumerate(range(T - 1, -1, -1)):
            beta, alpha, ab = (float(v[s]) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
                eps = eps_model(x, torch.full((n,), s, dtype=torch.long, device=device))
            eps = eps.to(dtype)
            coef = beta / math.sqrt(1.0 - ab)
            if eta is None:
                drift = (x - coef * eps) / math.sqrt(alpha) - x
            else:
                ab_prev = float(schedule.alpha_bars[s - 1]) if s > 0 else 1.0
                x0 = (x - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)
                keep = max(0.0, 1.0 - ab_prev - float(sig[s]) ** 2)
                drift = math.sqrt(ab_prev) * x0 + math.sqrt(keep) * eps - x
            if s == 0 and last_step == "public-code" and previous is not None:
                stale_eps, stale_coef, stale_sqrt_alpha = previous
                stale = (x - stale_coef * stale_eps) / stale_sqrt_alpha - x
                torch.linalg.vector_norm(stale, dim=dims, out=norms[row, 0])
                ghost = float(schedule.betas[1]) ** 0.5 * torch.randn(shape, generator=gen, dtype=dtype).to(device)
                torch.linalg.vector_norm(ghost, dim=dims, out=norms[row, 1])
            else:
                torch.linalg.vector_norm(drift, dim=dims, out=norms[row, 0])
            previous = (eps, coef, math.sqrt(alpha))
            torch.linalg.vector_norm(eps, dim=dims, out=norms[row, 2])
            x += drift
            if s > 0:
                noise = float(sig[s]) * torch.randn(shape, generator=gen, dtype=dtype).to(device)
                torch.linalg.vector_norm(noise, dim=dims, out=norms[row, 1])
                x += noise
            if progress is not None:
                progress(1)
    norms = norms.double().cpu().numpy()
    cols = {"reaction": norms[:, 0], "diffusion": norms[:, 1], "eps_norm": norms[:, 2],
            "score": np.abs(learned)[:, None] * norms[:, 2]}
    counted = np.ones(T, dtype=bool)
    counted[-1] = last_step == "public-code" and T > 1
    trace = BalanceTrace.from_samples(
        cols["reaction"], cols["diffusion"], counted=counted,
        extra={"t": np.arange(T, 0, -1), "score": cols["score"].mean(1), "eps_norm": cols["eps_norm"].mean(1)},
    )
    return SampleResult(x, trace)


def one_point_oracle(point: torch.Tensor, schedule: Schedule) -> EpsModel:
    """The exact eps-prediction for data that is a single point: eps = (x_s - sqrt(abar_s) a) /
    sqrt(1 - abar_s). A closed-form denoiser to check the sampler against, and a control."""

    def eps_model(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        ab = schedule.alpha_bars.to(x.device)[s].to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
        return (x - ab.sqrt() * point.to(x)) / (1 - ab).sqrt()

    return eps_model


# ---- training -----------------------------------------------------------------------------


# Presets are data. "paper": the paper's public code (U-Net widths per level with attention
# at the two lowest resolutions, GroupNorm 8, dropout 0.1; lr 2e-5, batch 128, 5 epochs of
# 60,000 images, EMA 0.9999; 3 images). "default": a small network that trains on a CPU.
SETTINGS: dict[str, dict] = {
    "default": {"unet": {"channels": (16, 32, 64), "res_blocks": 1, "attention": (2,), "dropout": 0.0},
                "steps": 1500, "batch_size": 32, "lr": 1e-3, "ema": 0.995, "samples": 16},
    "paper": {"unet": {"channels": (32, 64, 128, 256), "res_blocks": 2, "attention": (2, 3), "dropout": 0.1},
              "steps": 2345, "batch_size": 128, "lr": 2e-5, "ema": 0.9999, "samples": 3},
}


@dataclass(frozen=True)
class DDPMConfig:
    """Data, network, schedule, training and sampling of one DDPM run."""

    dataset: str = setting("digits", choices=DATASETS, internal=(FIELDS,))
    """digits | turing (offline) | mnist | fashion-mnist | cifar10 (need --data-dir)"""
    data_dir: str | None = None
    """folder holding the real data sets in torchvision's layout"""
    unet: UNetConfig = field(default_factory=UNetConfig)
    schedule: Schedule = field(default_factory=Schedule)
    steps: int = setting(1500, low=0)
    """optimiser steps"""
    batch_size: int = setting(32, low=1)
    """training images per optimiser step"""
    batches: str = setting("random", choices=BATCHES)
    """random: every step draws its images with replacement; epochs: every epoch is a fresh
    permutation of the images cut into full batches, the rest dropped (the public code's
    DataLoader(shuffle=True, drop_last=True))"""
    lr: float = setting(1e-3, low=0, open=(True, False))
    """learning rate"""
    lr_schedule: str = setting("constant", choices=LR_SCHEDULES)
    """constant, or cosine: lr * (1 + cos(pi * step / steps)) / 2, from lr down to 0 at the last step
    (a cosine row cannot be extended to more steps: its schedule depends on the total)"""
    optimizer: str = setting("adamw", choices=OPTIMIZERS)
    """adamw or adam (the public code: Adam)"""
    weight_decay: float = setting(0.0, low=0)
    """weight decay of the optimiser"""
    grad_clip: float = setting(1.0, low=0)
    """clip the gradient norm to this (0: none)"""
    ema: float = setting(0.995, low=0, high=1, open=(False, True))
    """decay of the exponential moving average of the weights that sampling uses (0: none)"""
    ema_warmup: bool = True
    """ramp the EMA decay up as (1 + step) / (10 + step) (off in the public code: at decay 0.9999
    about 0.79 of the random initial weights remain after 2340 steps)"""
    pixels: str = setting("signed", choices=PIXELS)
    """signed: images in [-1, 1], padding at -1 (Ho et al.); unit: in [0, 1], zero padding (the
    public code); samples are saved and judged in [-1, 1] either way"""
    last_step: str = setting("exclude", choices=LAST_STEPS)
    """exclude the noise-free last reverse step from the balance (rdlens) or record it as the
    public code did (public-code, a quirk: stale coefficients, a noise never added, counted)"""
    samples: int = setting(16, low=1)
    """images sampled by the instrumented reverse process"""
    sigma: str = setting("beta", choices=SIGMAS)
    """noise of the reverse step: beta (sigma_t^2 = beta_t, the paper) or posterior"""
    grid_every: int = setting(0, low=0)
    """write a sample grid every this many training steps (0: none; costs a full sampling run)"""
    track_every: int = setting(0, low=0)
    """measure R, final R, R_score and sample quality every this many training steps, and at
    steps 0 and the last, sampling with the same noise each time (0: none; each point costs a full
    sampling run); writes training_curve.csv and training_curve.png"""
    channels_last: bool = False
    """train in the channels-last memory layout (faster on CPU for widths >= 32; benchmarks/bench_training.py)"""
    precision: str = setting("float32", choices=PRECISIONS)
    """float32, or bfloat16: the training forward pass under bfloat16 autocast (mixed precision:
    weights, gradients, optimiser state, EMA and every sampling run, hence every R, stay float32;
    faster on CPUs with bfloat16 instructions and on GPUs; benchmarks/bench_training.py), or
    auto: bfloat16 where it is native (:func:`native_bfloat16`), else float32; a run keeps the
    precision it started with when resumed elsewhere"""
    sample_precision: str = setting("float32", choices=PRECISIONS)
    """float32, or bfloat16: every sampling run calls the network under bfloat16 autocast (the
    reverse update and the norms stay float32; 2.2x faster on a CPU with AMX, R -6.7e-4 relative:
    benchmarks/bench_sampler_options.py), or auto: bfloat16 where native; recorded in the
    summary and manifest.json"""
    quality_samples: int = setting(0, low=0)
    """judge sample quality on this many images (0: the row's ``samples`` only): the row's samples
    plus batches of ``samples`` more drawn with other noise, which R does not use. 64 images are a
    noisy verdict (MNIST: 75 % confident where 256 of the same model gave 85 %)"""
    physics_weight: float = setting(0.0, low=0)
    """weight of the physics residual of the predicted clean image in the loss (physics-informed
    diffusion, Bastek et al. 2025; rdlens patterns: the Gray-Scott steady-state residual at each
    field's (F, k); 0: the simple loss alone)"""
    checkpoint_every: int = setting(200, low=1)
    """optimiser steps between two checkpoints (an interrupted run resumes from the last)"""
    max_images: int = setting(0, low=0)
    """use at most this many training images (0: all)"""
    turing_images: int = setting(512, low=1)
    """size of the generated Turing-pattern data set"""
    seed: int = seed_setting()
    """seeds data order, initial weights, training noise and sampling"""
    setting: str = setting("default", choices=tuple(SETTINGS))
    """the preset the other values start from: default (a small U-Net for a CPU) or paper (the
    paper's sizes and training)"""

    def __post_init__(self) -> None:
        validate(self)
        if self.dataset != FIELDS and (self.unet.conditions or self.physics_weight):
            raise ConfigError("conditions and physics_weight need data that carry their (F, k) and physics: the "
                              f"patterns study's Gray-Scott fields (rdlens patterns), not {self.dataset}")
        channels = 3 if self.dataset == "cifar10" else 1
        if self.dataset != FIELDS and self.unet.in_channels != channels:
            raise ConfigError(f"{self.dataset} has {channels} channel(s) but the U-Net expects {self.unet.in_channels}")


def native_bfloat16(device: torch.device | str) -> bool:
    """Whether bfloat16 arithmetic is native on ``device``: any CUDA device, or a CPU with
    AVX512-BF16 or AMX; elsewhere oneDNN emulates it, slower than float32."""
    if torch.device(device).type != "cpu":
        return True
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def effective_precision(precision: str, device: torch.device | str) -> str:
    """The precision training uses: ``auto`` is bfloat16 where native on ``device``, else float32
    (emulated bfloat16 was 11x slower than float32 on an AVX2-only CPU)."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bfloat16(device) else "float32"


def lr_at(cfg: DDPMConfig) -> Callable[[int], float] | None:
    """The learning rate of optimiser step ``step`` (0-based) under ``cfg.lr_schedule``; None = constant."""
    if cfg.lr_schedule == "constant":
        return None
    return lambda step: cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / max(cfg.steps, 1)))


def config_for(setting: str, dataset: str = "digits", *, unet: dict | None = None, schedule: dict | None = None,
               **overrides) -> DDPMConfig:
    """A :class:`DDPMConfig` from a named preset, then explicit overrides (None = keep)."""
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
    values = {k: v for k, v in SETTINGS[setting].items() if k != "unet"}
    values.update({k: v for k, v in overrides.items() if v is not None})
    unet_values = dict(SETTINGS[setting]["unet"], in_channels=3 if dataset == "cifar10" else 1)
    unet_values.update({k: v for k, v in (unet or {}).items() if v is not None})
    if (unet or {}).get("attention") is None:
        # fewer levels than the preset: keep its attention levels that exist, else the lowest
        levels = len(unet_values["channels"])
        unet_values["attention"] = tuple(a for a in unet_values["attention"] if a < levels) or (levels - 1,)
    sched = Schedule(**{k: v for k, v in (schedule or {}).items() if v is not None})
    return DDPMConfig(dataset=dataset, unet=UNetConfig(**unet_values), schedule=sched, setting=setting, **values)


@dataclass
class TrainResult:

    __repr__ = compact_repr
    model: UNet
    ema_model: UNet
    losses: list[float]
    steps_done: int
    resumed_from: int
    wall_time_s: float
    precision: str = setting("float32", choices=PRECISIONS)
    """the precision training used (``auto`` resolved)"""


CHECKPOINT = "checkpoint.pt"


def batch_indices(cfg: DDPMConfig, n: int, gen: torch.Generator) -> Callable[[int], torch.Tensor]:
    """The image indices of each optimiser step. ``random`` draws from ``gen``; ``epochs``
    permutes the ``n`` images anew each epoch, the permutation seeded by (seed, epoch) alone, so
    a resumed or extended run draws the same batches."""
    if cfg.batches == "random":
        return lambda step: torch.randint(0, n, (cfg.batch_size,), generator=gen)
    per_epoch = n // cfg.batch_size
    if per_epoch < 1:
        raise ConfigError(f"batches = epochs needs batch_size <= the {n} training images, got {cfg.batch_size}")
    current: list = [None, None]  # (epoch, its permutation): drawn once per epoch

    def draw(step: int) -> torch.Tensor:
        epoch, k = divmod(step, per_epoch)
        if current[0] != epoch:
            seed = int(np.random.SeedSequence([cfg.seed, 2, epoch]).generate_state(1, np.uint64)[0])
            current[:] = epoch, torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        return current[1][k * cfg.batch_size : (k + 1) * cfg.batch_size]

    return draw


def train(
    cfg: DDPMConfig,
    images: torch.Tensor,
    checkpoint_dir: str | None = None,
    *,
    device: torch.device | str = "cpu",
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
    hooks: Sequence[tuple[int, Callable[[int, UNet], None]]] = (),
    conditions: torch.Tensor | None = None,
    physics: Physics | None = None,
) -> TrainResult:
    """Train eps-prediction with the simple loss through the shared loop
    (:func:`rdlens.training.fit`): AdamW, gradient clipping, EMA of the weights, a resumable
    checkpoint every ``cfg.checkpoint_every`` steps (and at the end). ``hooks`` are
    ``(every, fn)`` pairs: ``fn(step, ema_model)`` runs after every ``every``-th step (every > 0).
    A conditioned U-Net (``cfg.unet.conditions``) takes ``conditions`` (one row per image); with
    ``cfg.physics_weight`` > 0, ``physics`` gives the residual the loss adds (:func:`loss`)."""
    if cfg.unet.conditions and (conditions is None or tuple(conditions.shape) != (images.shape[0], cfg.unet.conditions)):
        raise ConfigError(f"a U-Net conditioned on {cfg.unet.conditions} numbers needs conditions of shape "
                          f"({images.shape[0]}, {cfg.unet.conditions}), got "
                          f"{None if conditions is None else tuple(conditions.shape)}")
    if cfg.physics_weight and physics is None:
        raise ConfigError("physics_weight > 0 needs the task's residual (rdlens patterns gives the Gray-Scott one)")
    import copy
    from pathlib import Path

    from rdlens.core.torchutil import load_checkpoint
    from rdlens.training import fit, plain

    torch.manual_seed(cfg.seed)
    model = build_unet(cfg.unet).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = optimizer(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    images = images.to(device)
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format

    ckpt = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    precision = effective_precision(cfg.precision, device)
    if resume and cfg.precision == "auto" and ckpt is not None and ckpt.exists():
        precision = load_checkpoint(ckpt)["config"].get("precision_used", precision)
    mixed = precision == "bfloat16"
    if mixed and cfg.precision == "bfloat16" and not native_bfloat16(device):
        import warnings

        warnings.warn("precision bfloat16 on a CPU without bfloat16 instructions (AVX512-BF16 or AMX) is emulated "
                      "and slower than float32: set precision = float32 (--precision float32)",
                      RuntimeWarning, stacklevel=2)

    draw = batch_indices(cfg, images.shape[0], gen)

    conditions = conditions.to(device) if cfg.unet.conditions else None

    def batch_loss(step: int) -> torch.Tensor:
        idx = draw(step).to(device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=mixed):
            return loss(model, cfg.schedule, images[idx].contiguous(memory_format=layout), gen,
                        cond=None if conditions is None else conditions[idx], physics=physics, idx=idx,
                        weight=cfg.physics_weight).float()

    def after_step(step: int) -> None:
        for every, fn in hooks:
            if every > 0 and step % every == 0:
                fn(step, ema_model.eval())

    done = fit(model, opt, batch_loss, steps=cfg.steps, generator=gen, name="DDPM training", grad_clip=cfg.grad_clip,
               ema=ema_model, ema_decay=cfg.ema, ema_warmup=cfg.ema_warmup,
               checkpoint=ckpt, checkpoint_every=cfg.checkpoint_every,
               config={**plain(asdict(cfg)), "precision_used": precision}, resume=resume,
               after_step=after_step, progress=progress, lr_at=lr_at(cfg))
    return TrainResult(model, ema_model if cfg.ema > 0 else model, done.losses, done.steps_done, done.resumed_from,
                       done.wall_time_s, precision)
