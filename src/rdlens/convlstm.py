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

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rdlens.balance import BalanceTrace
from rdlens.errors import ConfigError


@dataclass
class RolloutRecord:
    """What a rollout measured per step and sequence, each (steps, batch): the reaction and
    diffusion norms and the mean input- and forget-gate activity."""

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
    in training too and the model learns to correct them)."""
    return F.mse_loss(model(frames[:, :-1], cond, free=free), frames[:, 1:])


__all__ = ["ConvLSTM", "RolloutRecord", "n_params", "step_loss"]
