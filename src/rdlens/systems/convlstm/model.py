"""A convolutional LSTM (Shi et al. 2015) on periodic fields, measured with the paper's LSTM balance.

The paper's gate equations with the matrix products replaced by one small convolution over
the stacked input and hidden state (circular padding: the fields live on a torus):

    [a_i, a_f, a_g, a_o] = W * [x_t, p, h_{t-1}] + b        (p: constant condition planes)
    i, f, o = sigmoid(a_i, a_f, a_o)    g = tanh(a_g)
    C_t = f * C_{t-1} + i * g           h_t = o * tanh(C_t)

and a next-frame read-out ``x_{t+1} = x_t + V * h_t`` (a 1 x 1 convolution, zero at
initialisation: an untrained model predicts that nothing changes). As for ``nn.LSTM``
(SPEC.md), reaction_t = ||i_t * g_t|| and diffusion_t = ||(1 - f_t) * C_{t-1}||, here over all
cells and hidden channels of one field. The module records these norms from the very gate
tensors it computes with, so what is measured is the model that predicts, not a replay;
tests/test_convlstm.py checks them against an independent NumPy replay of the weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdlens.core.balance import BalanceTrace, compact_repr
from rdlens.core.errors import ConfigError, check_seed
from rdlens.core.options import seed_setting, setting, validate
from rdlens.systems.grayscott.model import GrayScott

OPTIMIZERS = ("adam", "adamw")
TRAININGS = ("free", "teacher")
SEED_OFFSETS = {"trajectory": 2_000_000, "rollout": 3_000_000}
"""the Pearson starts of the training trajectories and of the rollouts come from disjoint seed
ranges: no rollout start was seen in training"""


@dataclass(frozen=True)
class Trajectories:
    """Gray-Scott trajectories the ConvLSTM learns from, and the unseen starts it rolls out from."""

    settings: str = "0.029:0.062,0.055:0.062"
    """(F, k) pairs, F:k,F:k,... (0.029:0.062 and 0.055:0.062 are the paper's spots and stripes)"""
    model: GrayScott = field(default_factory=lambda: GrayScott(size=32, length=0.32))
    """grid, spacing, time step and diffusion (each setting gives its own F and k)"""
    start_squares: int = setting(3, low=1, high=1000)
    """Pearson squares placed at random in each start"""
    frame_every: int = setting(50, low=1, high=10**6)
    """Gray-Scott steps between two frames (one ConvLSTM step)"""
    frames: int = setting(40, low=2, high=10**4)
    """training horizon, in frames"""
    trajectories: int = setting(16, low=1, high=10**4)
    """training trajectories per setting"""
    rollouts: int = setting(4, low=1, high=10**4)
    """unseen starts per setting that the model rolls out from"""
    long_factor: int = setting(5, low=1, high=100)
    """the long rollout is this many times the training horizon"""

    def __post_init__(self) -> None:
        from rdlens.measures.patterns import parse_settings

        validate(self)
        parse_settings(self.settings)

    @property
    def long_frames(self) -> int:
        return self.frames * self.long_factor


@dataclass(frozen=True)
class ConvLSTMConfig:
    """Data, network and training of a convolutional LSTM on Gray-Scott fields."""

    data: Trajectories = field(default_factory=Trajectories)
    hidden: int = setting(32, low=1, high=1024)
    """hidden channels"""
    kernel: int = setting(3, low=1, high=31)
    """side of the gate convolution (odd)"""
    steps: int = setting(2000, low=0, high=10**7)
    """optimiser steps"""
    batch_size: int = setting(8, low=1, high=4096)
    """windows per optimiser step"""
    lr: float = setting(1e-3, low=0, open=(True, False))
    """learning rate"""
    optimizer: str = setting("adam", choices=OPTIMIZERS)
    """adam or adamw"""
    weight_decay: float = setting(0.0, low=0)
    """weight decay of the optimiser"""
    grad_clip: float = setting(1.0, low=0)
    """clip the gradient norm to this (0: none)"""
    window: int = setting(10, low=1, high=10**4)
    """frames per training window"""
    training: str = setting("free", choices=TRAININGS)
    """free: each window is rolled out from its first frame on the model's own predictions (as
    in use); teacher: every input is the true frame (teacher forcing; rollouts then drift)"""
    input_noise: float = setting(0.0, low=0, high=1)
    """standard deviation of Gaussian noise added to every training input, in the networks' scale
    (noise injection, Sanchez-Gonzalez et al. 2020: the model learns to pull perturbed states
    back; 0: none)"""
    window_final: int = setting(0, low=0, high=10**4)
    """curriculum of unrolled windows (pushforward, Brandstetter et al. 2022): the window grows
    linearly from ``window`` frames at the first step to this many at the last (0: fixed)"""
    pool: int = setting(0, low=0, high=65536)
    """states kept from the model's own predictions (a pool, Mordvintsev et al. 2020) whose true
    continuations under Gray-Scott are training windows, so that the model learns the dynamics
    on the states its own rollouts reach, however far (0: none)"""
    pool_share: float = setting(0.5, low=0, high=1)
    """share of each batch drawn from the pool (with pool > 0)"""
    seed: int = seed_setting()
    """seeds the initial weights and the batches (and, run alone, the data's starts)"""

    def __post_init__(self) -> None:
        validate(self)
        check_seed(self.seed + max(SEED_OFFSETS.values()) + 10**5)
        if self.kernel % 2 == 0:
            raise ConfigError(f"kernel must be odd, got {self.kernel}")
        if self.window > self.data.frames:
            raise ConfigError(f"window = {self.window} exceeds frames = {self.data.frames}")
        if self.window_final and not self.window <= self.window_final <= self.data.frames:
            raise ConfigError(f"window_final must be in [window = {self.window}, frames = {self.data.frames}] "
                              f"(0: a fixed window), got {self.window_final}")

    def window_at(self, step: int) -> int:
        """Frames unrolled at optimiser step ``step`` (0-based) under the window curriculum."""
        if not self.window_final or self.steps <= 1:
            return self.window
        return self.window + (self.window_final - self.window) * step // (self.steps - 1)

    def memory_bytes(self) -> float:
        """Peak memory of training: the window's activations and gates, kept for the backward pass."""
        cells = 2 * self.data.model.size**2
        return 8.0 * self.batch_size * max(self.window, self.window_final) * cells * self.hidden * 4 * 2


@dataclass
class RolloutRecord:
    """What a rollout measured per step and sequence, each (steps, batch): the reaction and
    diffusion norms and the mean input- and forget-gate activity."""

    __repr__ = compact_repr

    reaction: np.ndarray
    diffusion: np.ndarray
    input_gate: np.ndarray
    forget_gate: np.ndarray

    def trace(self) -> BalanceTrace:
        """The balance trace of the rollout, every sequence kept (as for the LSTM rows)."""
        return BalanceTrace.from_samples(self.reaction, self.diffusion)


class ConvLSTM(nn.Module):
    """Next-frame model of C-channel periodic fields, optionally conditioned on a few numbers
    (e.g. the Gray-Scott F and k) given to every cell as constant input planes."""

    def __init__(self, channels: int, hidden: int = 16, kernel: int = 3, conditions: int = 0) -> None:
        super().__init__()
        for name, value, low in (("channels", channels, 1), ("hidden", hidden, 1), ("kernel", kernel, 1),
                                 ("conditions", conditions, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"ConvLSTM {name} must be an integer >= {low}, got {value!r}")
        if kernel % 2 == 0:
            raise ConfigError(f"ConvLSTM kernel must be odd (a centred stencil), got {kernel}")
        self.channels, self.hidden, self.kernel, self.conditions = channels, hidden, kernel, conditions
        self.gates = nn.Conv2d(channels + conditions + hidden, 4 * hidden, kernel, padding=kernel // 2,
                               padding_mode="circular")
        self.readout = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    def _planes(self, cond: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
        if self.conditions == 0:
            return x[:, :0]
        if cond is None or cond.shape != (x.shape[0], self.conditions):
            raise ConfigError(f"ConvLSTM needs conditions of shape ({x.shape[0]}, {self.conditions}), "
                              f"got {None if cond is None else tuple(cond.shape)}")
        return cond.to(x)[:, :, None, None].expand(-1, -1, *x.shape[-2:])

    def cell(self, x: torch.Tensor, planes: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        """One step: (i, f, g, o, C_t, h_t) from x_t, the condition planes and (h, C)_{t-1}."""
        a = self.gates(torch.cat([x, planes, h], dim=1))
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
        c_new = f * c + i * g
        return i, f, g, o, c_new, o * torch.tanh(c_new)

    def forward(self, frames: torch.Tensor, cond: torch.Tensor | None = None, free: bool = False) -> torch.Tensor:
        """Next-frame predictions: (B, T, C, H, W) -> (B, T, C, H, W), output t predicting
        frame t + 1. Teacher-forced (input t is frame t), or with ``free`` fed back (input t
        is prediction t - 1 from frame 0 on), as in a rollout."""
        b, steps = frames.shape[:2]
        h = frames.new_zeros(b, self.hidden, *frames.shape[-2:])
        c = torch.zeros_like(h)
        planes = self._planes(cond, frames[:, 0])
        out = []
        x = frames[:, 0]
        for t in range(steps):
            if not free:
                x = frames[:, t]
            *_, c, h = self.cell(x, planes, h, c)
            x = x + self.readout(h)
            out.append(x)
        return torch.stack(out, dim=1)

    @torch.no_grad()
    def rollout(self, start: torch.Tensor, steps: int, cond: torch.Tensor | None = None,
                keep_every: int = 1) -> tuple[torch.Tensor, RolloutRecord]:
        """Run on its own predictions from ``start`` (B, C, H, W) for ``steps`` steps; return the
        frames 0, keep_every, 2 keep_every, ..., steps (B, K, C, H, W) and the per-step record."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"rollout steps must be an integer >= 1, got {steps!r}")
        b = start.shape[0]
        x = start
        h = start.new_zeros(b, self.hidden, *start.shape[-2:])
        c = torch.zeros_like(h)
        planes = self._planes(cond, start)
        # kept on the device and copied once at the end (no host sync per step)
        norms = torch.zeros(4, steps, b, dtype=start.dtype, device=start.device)
        kept = [start]
        for t in range(steps):
            i, f, g, _, c_new, h = self.cell(x, planes, h, c)
            torch.linalg.vector_norm((i * g).flatten(1), dim=1, out=norms[0, t])
            torch.linalg.vector_norm(((1 - f) * c).flatten(1), dim=1, out=norms[1, t])
            torch.mean(i.flatten(1), dim=1, out=norms[2, t])
            torch.mean(f.flatten(1), dim=1, out=norms[3, t])
            c = c_new
            x = x + self.readout(h)
            if (t + 1) % keep_every == 0 or t + 1 == steps:
                kept.append(x)
        return torch.stack(kept, dim=1), RolloutRecord(*(n.numpy() for n in norms.double().cpu()))


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def step_loss(model: ConvLSTM, frames: torch.Tensor, cond: torch.Tensor | None = None,
              free: bool = False) -> torch.Tensor:
    """Mean squared error of the next-frame predictions of a window (B, T+1, ...): teacher-forced,
    or ``free``-running from its first frame (what a rollout does, so errors it makes compound
    in training too and the model learns to correct them). :func:`train` computes the same
    loss, with noise on the inputs when set."""
    return F.mse_loss(model(frames[:, :-1], cond, free=free), frames[:, 1:])


def make_optimizer(cfg: ConvLSTMConfig, model: nn.Module) -> torch.optim.Optimizer:
    kind = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return kind(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)


class StatePool(nn.Module):
    """Fields the model predicted, each with the trajectory whose (F, k) it runs at (-1: empty);
    a module so that its buffers are checkpointed with the weights and a run resumes exactly."""

    def __init__(self, size: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.register_buffer("x", torch.zeros(size, *shape))
        self.register_buffer("source", torch.full((size,), -1, dtype=torch.long))


def true_windows(cfg: ConvLSTMConfig, x: torch.Tensor, settings: np.ndarray, frames: int) -> torch.Tensor:
    """The true Gray-Scott continuation of fields ``x`` (B, 2, N, N) in the networks' scale at
    ``settings`` (B, 2) = (F, k): (B, frames + 1, 2, N, N), frame 0 being ``x``."""
    from dataclasses import replace

    from rdlens.measures.patterns import from_unit, trajectories

    u, v = from_unit(x.detach().cpu().double().numpy())
    models = [replace(cfg.data.model, F=float(F), k=float(k)) for F, k in settings]
    out, _ = trajectories(models, u, v, cfg.data.frame_every, frames)
    return torch.from_numpy(out).to(x)


def train(cfg: ConvLSTMConfig, x: torch.Tensor, cond: torch.Tensor, checkpoint: Path, *,
          settings: np.ndarray | None = None, progress: Callable[[int], None] | None = None
          ) -> tuple[ConvLSTM, Any]:
    """Train next-frame prediction on trajectories ``x`` (B, T + 1, C, H, W) conditioned on
    ``cond`` (B, n), in windows of ``cfg.window`` frames (growing to ``window_final``), with
    ``input_noise``, and with a pool of its own predictions continued by the true dynamics at
    each trajectory's (F, k) (``settings``, (B, 2); needed with ``pool``); resume from
    ``checkpoint`` if it exists, keep it up to date. Returns the model (in eval mode) and the
    :class:`rdlens.training.Fit`."""
    from rdlens.measures.patterns import from_unit, physical
    from rdlens.training import checkpoint_every, fit

    if cfg.pool and (settings is None or len(settings) != x.shape[0]):
        raise ConfigError(f"a pool needs the (F, k) of each of the {x.shape[0]} trajectories")
    device = x.device
    torch.manual_seed(cfg.seed)
    model = ConvLSTM(x.shape[2], cfg.hidden, cfg.kernel, conditions=cond.shape[1]).to(device)
    opt = make_optimizer(cfg, model)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    frames = x.shape[1] - 1
    pool = StatePool(cfg.pool, tuple(x.shape[2:])).to(device) if cfg.pool else None
    from_pool = int(round(cfg.batch_size * cfg.pool_share)) if pool is not None else 0

    def batch_loss(step: int) -> torch.Tensor:
        window = cfg.window_at(step)
        n = cfg.batch_size - from_pool
        which = torch.randint(0, x.shape[0], (n,), generator=gen)
        first = torch.randint(0, frames - window + 1, (n,), generator=gen)
        rows = first[:, None] + torch.arange(window + 1)[None]
        batch, sources = x[which[:, None].to(device), rows.to(device)], which
        if from_pool:
            slots = torch.randint(0, cfg.pool, (from_pool,), generator=gen)
            refill = torch.randint(0, x.shape[0], (from_pool,), generator=gen)
            refill_frame = torch.randint(0, frames + 1, (from_pool,), generator=gen)
            empty = (pool.source[slots] < 0).cpu() | ~torch.from_numpy(physical(*from_unit(pool.x[slots].cpu().numpy())))
            pool.source[slots[empty]] = refill[empty].to(device)
            pool.x[slots[empty]] = x[refill[empty].to(device), refill_frame[empty].to(device)]
            src = pool.source[slots].cpu()
            truth = true_windows(cfg, pool.x[slots], settings[src.numpy()], window)
            batch, sources = torch.cat([batch, truth]), torch.cat([which, src])
        inputs = batch[:, :-1]
        if cfg.input_noise:
            inputs = inputs + cfg.input_noise * torch.randn(inputs.shape, generator=gen).to(device)
        predicted = model(inputs, cond[sources.to(device)], free=cfg.training == "free")
        if from_pool:
            with torch.no_grad():  # the pool moves along the model's own rollouts
                pool.x[slots] = predicted[n:, -1].detach()
        return F.mse_loss(predicted, batch[:, 1:])

    extra = {"pool": pool} if pool is not None else {}
    done = fit(model, opt, batch_loss, steps=cfg.steps, generator=gen, name="ConvLSTM training",
               grad_clip=cfg.grad_clip, checkpoint=checkpoint, checkpoint_every=checkpoint_every(cfg.steps),
               config=asdict(cfg), resume=True, progress=progress, state=extra)
    return model.eval(), done


__all__ = ["ConvLSTM", "ConvLSTMConfig", "RolloutRecord", "StatePool", "Trajectories", "make_optimizer",
           "n_params", "step_loss", "train", "true_windows"]
