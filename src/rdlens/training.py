"""One training loop for every learned system (the LSTM, the DDPM, and any added later).

The loop owns what both systems need and what is easy to get subtly wrong twice:
gradient clipping, an exponential moving average of the weights, a non-finite loss
stopping the run with its step, and checkpoints that make an interrupted run resume to
bit-identical weights. A checkpoint holds the model, the EMA, the optimiser, the
data-order generator and torch's global generator (dropout draws from it), the step and
the loss history, and nothing that ``torch.load(weights_only=True)`` would refuse.
The system supplies only ``batch_loss``: how one batch is drawn and scored.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from rdlens.core import threads
from rdlens.core.balance import compact_repr
from rdlens.core.errors import SimulationDiverged
from rdlens.core.torchutil import restore_training, save_training


@dataclass
class Fit:
    """What a training loop did: the loss of every step, where it stopped and started."""

    __repr__ = compact_repr

    losses: list[float]
    steps_done: int
    resumed_from: int
    wall_time_s: float
    stopped_early: bool = False
    """the loss settled (``stop_tol``) before the last step"""


def checkpoint_every(steps: int) -> int:
    """Every 100 steps, or twice in a shorter training (so an interrupted one has a checkpoint)."""
    return max(1, min(100, steps // 2))


def settled(losses: list[float], stop_tol: float) -> bool:
    """The public code's LSTM stopping rule: at least three losses, the last two closer than
    ``stop_tol`` (0: never)."""
    return stop_tol > 0 and len(losses) > 2 and abs(losses[-1] - losses[-2]) < stop_tol


def plain(obj: Any) -> Any:
    """Tuples to lists, recursively, so that a configuration fits a weights-only checkpoint."""
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_loss: Callable[[int], torch.Tensor],
    *,
    steps: int,
    generator: torch.Generator,
    name: str,
    grad_clip: float = 0.0,
    ema: nn.Module | None = None,
    ema_decay: float = 0.0,
    ema_warmup: bool = True,
    checkpoint: Path | None = None,
    checkpoint_every: int = 100,
    config: dict[str, Any] | None = None,
    resume: bool = False,
    after_step: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    parallel: bool = True,
    lr_at: Callable[[int], float] | None = None,
    stop_tol: float = 0.0,
    state: dict[str, nn.Module] | None = None,
) -> Fit:
    """Run optimiser steps until ``steps``; return the loss history.

    ``batch_loss(step)`` draws the batch of 0-based optimiser step ``step`` (from ``generator``,
    or from the step itself for epoch-wise orders) and returns its scalar loss. With
    ``ema``, its weights follow ``decay = min(ema_decay, (1 + step) / (10 + step))`` (a short
    warm-up of the average; with ``ema_warmup`` = False, ``ema_decay`` from the first step).
    A checkpoint is written every ``checkpoint_every`` steps and at
    the end; with ``resume`` the loop continues from the one at ``checkpoint``.
    ``after_step(step)`` runs after each step (e.g. a sample grid); ``progress(n)`` counts steps.
    ``parallel`` = False keeps a tiny model on one thread (see :mod:`rdlens.core.threads`).
    ``lr_at(step)`` sets the learning rate of each step (a function of the step alone, so a
    resumed run follows the same schedule); None keeps the optimiser's.
    ``stop_tol`` > 0 ends training once two consecutive losses differ by less (:func:`settled`);
    the checkpoint is written at that step, and resuming a settled run trains no further.
    ``state`` names further modules whose buffers the batches change (a pool of states): they
    are checkpointed and restored with the weights.
    """
    stateful: dict[str, Any] = {"model": model, "optimizer": optimizer}
    if ema is not None:
        stateful["ema"] = ema
    stateful.update(state or {})
    losses: list[float] = []
    step = 0
    device = next(model.parameters()).device
    if resume and checkpoint is not None and checkpoint.exists():
        step, losses = restore_training(checkpoint, device, generator, steps, **stateful)
    resumed_from = step
    stopped = settled(losses, stop_tol)
    if progress is not None and step:
        progress(step)
    t0 = time.perf_counter()
    model.train()
    with threads.stage(name, parallel) as st:
        while step < steps and not stopped:
            st.tick()
            if lr_at is not None:
                for group in optimizer.param_groups:
                    group["lr"] = lr_at(step)
            loss = batch_loss(step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if ema is not None:
                with torch.no_grad():
                    decay = min(ema_decay, (1 + step) / (10 + step)) if ema_warmup else ema_decay
                    for pe, p in zip(ema.parameters(), model.parameters()):
                        pe.lerp_(p, 1 - decay)
            step += 1
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                raise SimulationDiverged(name, step, f"loss = {losses[-1]}")
            stopped = settled(losses, stop_tol)
            if checkpoint is not None and (step % checkpoint_every == 0 or step == steps or stopped):
                save_training(checkpoint, generator, step, losses, plain(config or {}), **stateful)
            if after_step is not None:
                after_step(step)
                model.train()
            if progress is not None:
                progress(1)
    model.eval()
    if ema is not None:
        ema.eval()
    for label, module in (("weights", model), ("EMA weights", ema)):
        if module is not None and not all(bool(torch.isfinite(p).all()) for p in module.parameters()):
            raise SimulationDiverged(name, step, f"the {label} are not finite after the last step")
    return Fit(losses, step, resumed_from, time.perf_counter() - t0, stopped and step < steps)
