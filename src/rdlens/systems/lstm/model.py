"""LSTM: a next-step sequence model on ``torch.nn.LSTM``, and an exact probe of its gates.

The cell-state update of an LSTM splits into a reaction and a diffusion part (SPEC.md):

    C_t - C_{t-1} = i_t * g_t - (1 - f_t) * C_{t-1}
    reaction_t = || i_t * g_t ||_2     diffusion_t = || (1 - f_t) * C_{t-1} ||_2

``torch.nn.LSTM`` does not expose its gates, so :func:`probe` replays them from the module's
own weights (PyTorch's gate order i, f, g, o) and returns them with the states; it
reproduces the module's outputs to float precision, so the gates measured are those of the
trained model, not of a look-alike. :func:`balance_trace` turns one layer's record into a
:class:`~rdlens.core.balance.BalanceTrace`, keeping the norm of every sequence.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from rdlens.core.balance import BalanceTrace, compact_repr
from rdlens.core.errors import ConfigError
from rdlens.core.options import seed_setting, setting, validate
from rdlens.systems.lstm.sequences import SequenceConfig, Sequences

# ---- the probe ----------------------------------------------------------------------------


@dataclass
class GateRecord:
    """One layer's gates and states, each a tensor of shape (time, batch, hidden).

    ``c`` and ``h`` are the states after each step; ``c0`` and ``h0`` (batch, hidden) the
    states before the first step. With ``proj_size`` > 0, ``h`` is the projected state.
    """

    __repr__ = compact_repr

    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor
    c: torch.Tensor
    h: torch.Tensor
    c0: torch.Tensor
    h0: torch.Tensor

    @property
    def c_prev(self) -> torch.Tensor:
        """C_{t-1} for every step t: (time, batch, hidden)."""
        return torch.cat([self.c0.unsqueeze(0), self.c[:-1]], dim=0)

    @property
    def reaction(self) -> torch.Tensor:
        """The reaction part i * g of every update (time, batch, hidden)."""
        return self.i * self.g

    @property
    def diffusion(self) -> torch.Tensor:
        """The diffusion part (1 - f) * C_{t-1} of every update (time, batch, hidden)."""
        return (1 - self.f) * self.c_prev


@dataclass(frozen=True)
class _LayerWeights:
    w_ih: torch.Tensor
    w_hh: torch.Tensor
    bias: torch.Tensor | None
    w_hr: torch.Tensor | None


def _weights(lstm: nn.LSTM, layer: int) -> _LayerWeights:
    get = lambda name: getattr(lstm, f"{name}_l{layer}", None)  # noqa: E731
    bias = None
    if lstm.bias:
        bias = get("bias_ih") + get("bias_hh")
    return _LayerWeights(get("weight_ih"), get("weight_hh"), bias, get("weight_hr") if lstm.proj_size > 0 else None)


def _cell(gates: torch.Tensor, c: torch.Tensor, hidden: int, w_hr: torch.Tensor | None):
    """PyTorch's LSTM cell from pre-activations (batch, 4 hidden): returns i, f, g, o, c, h."""
    i, f, g, o = gates.split(hidden, dim=1)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    g = torch.tanh(g)
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = h @ w_hr.T
    return i, f, g, o, c, h


def _check_lstm(lstm: nn.Module) -> None:
    if not isinstance(lstm, nn.LSTM):
        raise ConfigError(f"probe() needs a torch.nn.LSTM, got {type(lstm).__name__}")
    if lstm.bidirectional:
        raise ConfigError("probe() supports unidirectional LSTMs only (got bidirectional=True)")


def probe(
    lstm: nn.LSTM, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None
) -> list[GateRecord]:
    """Replay ``lstm`` on input ``x`` from its own weights; one :class:`GateRecord` per layer.

    ``x`` is laid out as the module expects (``batch_first`` or not; an unbatched (time,
    features) input is treated as a batch of one). ``hx`` = (h0, c0), each (layers, batch,
    hidden), defaults to zeros. The replay is the module's evaluation-mode pass (no dropout
    between layers) and runs without gradients.
    """
    _check_lstm(lstm)
    if x.dim() == 2:
        x = x.unsqueeze(1 if not lstm.batch_first else 0)
    if x.dim() != 3 or x.shape[-1] != lstm.input_size:
        raise ConfigError(f"probe(): input must be (time, batch, {lstm.input_size}) or batch-first, got {tuple(x.shape)}")
    seq = x.transpose(0, 1) if lstm.batch_first else x
    steps, batch = seq.shape[0], seq.shape[1]
    hidden = lstm.hidden_size
    out_size = lstm.proj_size if lstm.proj_size > 0 else hidden
    w0 = lstm.weight_ih_l0
    if hx is None:
        h0 = torch.zeros(lstm.num_layers, batch, out_size, dtype=w0.dtype, device=w0.device)
        c0 = torch.zeros(lstm.num_layers, batch, hidden, dtype=w0.dtype, device=w0.device)
    else:
        h0, c0 = hx
    records = []
    with torch.no_grad():
        seq = seq.to(w0.dtype)
        for layer in range(lstm.num_layers):
            w = _weights(lstm, layer)
            # the input projection of all steps at once; only the recurrent part is sequential
            proj = seq @ w.w_ih.T
            if w.bias is not None:
                proj = proj + w.bias
            gates_all = torch.empty(steps, batch, 4, hidden, dtype=proj.dtype, device=proj.device)
            cs = torch.empty(steps, batch, hidden, dtype=proj.dtype, device=proj.device)
            hs = torch.empty(steps, batch, out_size, dtype=proj.dtype, device=proj.device)
            h, c = h0[layer], c0[layer]
            w_hh_t = w.w_hh.T
            for t in range(steps):
                i, f, g, o, c, h = _cell(torch.addmm(proj[t], h, w_hh_t), c, hidden, w.w_hr)
                gates_all[t] = torch.stack([i, f, g, o], dim=1)
                cs[t] = c
                hs[t] = h
            i, f, g, o = gates_all.unbind(dim=2)
            records.append(GateRecord(i, f, g, o, cs, hs, c0[layer].clone(), h0[layer].clone()))
            seq = hs
    return records


def balance_trace(record: GateRecord) -> BalanceTrace:
    """The balance trace of one layer: per step and per sequence, the L2 norm over hidden units
    of i * g (reaction) and of (1 - f) * C_{t-1} (diffusion); the series are their means."""
    reaction = torch.linalg.vector_norm(record.reaction, dim=-1)
    diffusion = torch.linalg.vector_norm(record.diffusion, dim=-1)
    return BalanceTrace.from_samples(
        reaction.detach().double().cpu().numpy(), diffusion.detach().double().cpu().numpy()
    )


# ---- the model ----------------------------------------------------------------------------


class SequenceModel(nn.Module):
    """``nn.LSTM`` (1 input feature) and a linear read-out predicting the next value."""

    def __init__(self, hidden: int = 16, layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, layers, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor, hx: tuple[torch.Tensor, torch.Tensor] | None = None):
        """x: (batch, time) -> (next-step predictions (batch, time), (h, c))."""
        out, state = self.lstm(x.unsqueeze(-1), hx)
        return self.readout(out).squeeze(-1), state


def init_paper_(model: SequenceModel) -> None:
    """The paper's public code: LSTM weights drawn from N(0, 1), biases zero."""
    with torch.no_grad():
        for name, p in model.lstm.named_parameters():
            if name.startswith("weight"):
                p.normal_(0.0, 1.0)
            else:
                p.zero_()


def generate(
    model: SequenceModel, warmup: torch.Tensor, steps: int
) -> tuple[torch.Tensor, list[GateRecord]]:
    """Free-running generation: run the model over ``warmup`` (batch, time), then feed its
    own predictions back for ``steps`` steps. Returns the generated values (batch, steps + 1,
    the first being the prediction after the warm-up) and one gate record per layer over
    the ``steps`` fed-back steps, replayed with the same cell as :func:`probe`."""
    lstm = model.lstm
    _check_lstm(lstm)
    hidden = lstm.hidden_size
    with torch.no_grad():
        pred, (h, c) = model(warmup)
        x = pred[:, -1:]  # (batch, 1)
        values = [x[:, 0]]
        layer_w = [_weights(lstm, k) for k in range(lstm.num_layers)]
        gathered: list[list[tuple]] = [[] for _ in range(lstm.num_layers)]
        h0, c0 = h.clone(), c.clone()
        h, c = list(h.unbind(0)), list(c.unbind(0))
        for _ in range(steps):
            inp = x
            for k, w in enumerate(layer_w):
                pre = inp @ w.w_ih.T + h[k] @ w.w_hh.T
                if w.bias is not None:
                    pre = pre + w.bias
                i, f, g, o, c[k], h[k] = _cell(pre, c[k], hidden, w.w_hr)
                gathered[k].append((i, f, g, o, c[k], h[k]))
                inp = h[k]
            x = model.readout(inp)
            values.append(x[:, 0])
        records = []
        for k in range(lstm.num_layers):
            i, f, g, o, cs, hs = (torch.stack(z) for z in zip(*gathered[k]))
            records.append(GateRecord(i, f, g, o, cs, hs, c0[k], h0[k]))
    return torch.stack(values, dim=1), records


# ---- training -----------------------------------------------------------------------------

INITS = ("pytorch", "normal")
EVAL_MODES = ("teacher", "free")
WARMUPS = ("sequence", "first-value")
FIRST_CPREV = ("state", "zero")
BIASES = ("double", "single")
SPLITS = ("held-out", "none")


# Presets are data: the values of each named setting (see LSTMConfig for their meaning;
# sine_noise is the observation noise of the sine data set under that setting).
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {"init": "pytorch", "batch_size": 64, "lr": 3e-3, "steps": 1500, "grad_clip": 1.0,
                "eval_mode": "teacher", "sine_noise": 0.0},
    "paper": {"init": "normal", "batch_size": 0, "lr": 1e-2, "steps": 200, "grad_clip": 0.0,
              "eval_mode": "free", "sine_noise": 0.05},
}


@dataclass(frozen=True)
class LSTMConfig:
    """Model, training and evaluation of one LSTM run."""

    data: SequenceConfig = field(default_factory=SequenceConfig)
    hidden: int = setting(16, low=1)
    """hidden units per layer (the paper: 16)"""
    layers: int = setting(1, low=1)
    """stacked LSTM layers (the paper: 1); the metric is taken on the last"""
    init: str = setting("pytorch", choices=INITS)
    """initial weights: pytorch (its default uniform init) or normal (N(0, 1), zero biases: the paper's code)"""
    batch_size: int = setting(64, low=0)
    """sequences per optimiser step; 0 = the whole training set as one batch (the paper's code)"""
    lr: float = setting(3e-3, low=0, open=(True, False))
    """Adam learning rate"""
    steps: int = setting(1500, low=0)
    """optimiser steps"""
    grad_clip: float = setting(1.0, low=0)
    """clip the gradient norm to this (0: no clipping)"""
    eval_mode: str = setting("teacher", choices=EVAL_MODES)
    """teacher: gates over held-out sequences fed the true inputs; free: the paper's protocol,
    warm up on a held-out sequence and feed predictions back"""
    generate_steps: int = setting(199, low=1)
    """free mode: fed-back steps after the warm-up (the paper's code: 199)"""
    eval_sequences: int = setting(0, low=0)
    """held-out sequences to evaluate the metric on (0: all)"""
    warmup: str = setting("sequence", choices=WARMUPS)
    """free mode: warm up on the whole held-out sequence, or on its first value only
    (first-value: the public code, a quirk: its warm-up loop runs seed_data.size(1) = 1 times)"""
    first_cprev: str = setting("state", choices=FIRST_CPREV)
    """C_{t-1} of the first recorded step: the state the warm-up left (state), or zero as in the
    public code's metric (zero, a quirk: diffusion 0 at the first step)"""
    bias: str = setting("double", choices=BIASES)
    """double: PyTorch's two trained bias vectors b_ih + b_hh; single: one per gate, as the public
    code (b_hh held at zero)"""
    split: str = setting("held-out", choices=SPLITS)
    """held-out: train on the training sequences, measure on held-out ones; none: train on every
    sequence and measure on the first training sequences (the public code, a quirk)"""
    stop_tol: float = setting(0.0, low=0)
    """stop training once two consecutive losses differ by less than this (0: never; the public
    code: 1e-6)"""
    checkpoint_every: int = setting(100, low=1)
    """save a resumable checkpoint every this many steps"""
    seed: int = seed_setting()
    """seeds data, initial weights and batch order"""
    setting: str = setting("default", choices=tuple(SETTINGS))
    """name of the preset these values came from (default | paper)"""

    def __post_init__(self) -> None:
        validate(self)
        n_train = self.n_train
        if self.batch_size > n_train:
            raise ConfigError(f"batch_size = {self.batch_size} exceeds the {n_train} training sequences (0: all)")

    @property
    def n_train(self) -> int:
        """Sequences trained on: all of them without a split."""
        return self.data.n_sequences - (self.data.n_test if self.split == "held-out" else 0)


def training_set(cfg: LSTMConfig, data: Sequences) -> np.ndarray:
    """The sequences ``cfg`` trains on: the training part, or every sequence (split none)."""
    return data.train if cfg.split == "held-out" else np.concatenate([data.train, data.test])


def measured_set(cfg: LSTMConfig, data: Sequences) -> np.ndarray:
    """The sequences the metric is measured on: held-out ones, or (split none, as the public
    code) the first training sequences; ``eval_sequences`` of them (0: all)."""
    pool = data.test if cfg.split == "held-out" else training_set(cfg, data)
    return pool if cfg.eval_sequences == 0 else pool[: cfg.eval_sequences]


def config_for(setting: str, dataset: str = "sine", *, data: dict[str, Any] | None = None,
               **overrides: Any) -> LSTMConfig:
    """An :class:`LSTMConfig` from a named preset, then explicit overrides (None = keep the
    preset). ``data`` overrides :class:`SequenceConfig` fields; its seed follows ``seed``."""
    if setting not in SETTINGS:
        raise ConfigError(f"setting must be one of {', '.join(SETTINGS)}, got {setting!r}")
    values = dict(SETTINGS[setting])
    sine_noise = values.pop("sine_noise")
    values.update({k: v for k, v in overrides.items() if v is not None})
    data_values = {"dataset": dataset, "noise": sine_noise if dataset == "sine" else 0.0,
                   "seed": values.get("seed", 0)}
    data_values.update({k: v for k, v in (data or {}).items() if v is not None})
    return LSTMConfig(data=SequenceConfig(**data_values), setting=setting, **values)


@dataclass
class TrainResult:

    __repr__ = compact_repr
    model: SequenceModel
    losses: list[float]
    steps_done: int
    resumed_from: int
    wall_time_s: float
    stopped_early: bool = False
    """training ended before ``steps`` because the loss settled (``stop_tol``)"""


CHECKPOINT = "checkpoint.pt"


def build_model(cfg: LSTMConfig, device: torch.device | str = "cpu") -> SequenceModel:
    """The model of ``cfg`` with its seeded initial weights."""
    torch.manual_seed(cfg.seed)
    model = SequenceModel(cfg.hidden, cfg.layers)
    if cfg.init == "normal":
        init_paper_(model)
    if cfg.bias == "single":
        for k in range(cfg.layers):
            getattr(model.lstm, f"bias_hh_l{k}").data.zero_()
            getattr(model.lstm, f"bias_hh_l{k}").requires_grad_(False)
    return model.to(device)


def train(
    cfg: LSTMConfig,
    data: Sequences,
    checkpoint_dir: str | Path | None = None,
    *,
    device: torch.device | str = "cpu",
    resume: bool = False,
    progress: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train next-step prediction (per-step MSE) with Adam through the shared loop
    (:func:`rdlens.training.fit`); checkpoint every ``cfg.checkpoint_every`` steps into
    ``checkpoint_dir`` and, with ``resume``, continue from the checkpoint found there. The
    same seed gives the same weights, interrupted and resumed or not.
    """
    from rdlens.training import fit

    model = build_model(cfg, device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    x_train = torch.tensor(training_set(cfg, data), dtype=torch.float32, device=device)
    n = x_train.shape[0]

    def batch_loss(step: int) -> torch.Tensor:
        xb = x_train[torch.randint(0, n, (cfg.batch_size,), generator=gen).to(device)] if cfg.batch_size else x_train
        pred, _ = model(xb[:, :-1])
        return torch.mean((pred - xb[:, 1:]) ** 2)

    done = fit(model, opt, batch_loss, steps=cfg.steps, generator=gen, name="LSTM training", grad_clip=cfg.grad_clip,
               checkpoint=Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None,
               checkpoint_every=cfg.checkpoint_every, config=asdict(cfg), resume=resume, progress=progress,
               parallel=False, stop_tol=cfg.stop_tol)
    return TrainResult(model, done.losses, done.steps_done, done.resumed_from, done.wall_time_s, done.stopped_early)


# ---- evaluation ---------------------------------------------------------------------------


@dataclass
class Evaluation:
    """Errors of the trained model and the balance trace of its gates."""

    __repr__ = compact_repr

    trace: BalanceTrace
    record: GateRecord
    train_mse: float
    test_mse: float
    naive_mse: float
    eval_mode: str
    n_sequences: int
    inputs: np.ndarray
    """the sequences the metric was measured on (standardised), (batch, time)"""
    outputs: np.ndarray
    """teacher: one-step predictions (batch, time); free: generated values (batch, steps + 1)"""


def mse(model: SequenceModel, x: np.ndarray, device: torch.device | str = "cpu", batch: int = 1024) -> float:
    """Teacher-forced next-step mean squared error over all sequences and steps."""
    total, count = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(x), batch):
            xb = torch.tensor(x[s : s + batch], dtype=torch.float32, device=device)
            pred, _ = model(xb[:, :-1])
            total += float(torch.sum((pred - xb[:, 1:]) ** 2))
            count += pred.numel()
    return total / count


def naive_mse(x: np.ndarray) -> float:
    """Error of predicting each value by the one before it (the bar to beat)."""
    return float(np.mean((x[:, 1:] - x[:, :-1]) ** 2))


def evaluate(cfg: LSTMConfig, model: SequenceModel, data: Sequences, device: torch.device | str = "cpu") -> Evaluation:
    """Errors on train and test, and the balance trace of the last layer on held-out data (on
    training data with ``split`` none)."""
    model.eval()
    test = measured_set(cfg, data)
    x = torch.tensor(test, dtype=torch.float32, device=device)
    if cfg.eval_mode == "teacher":
        record = probe(model.lstm, x.unsqueeze(-1))[-1]
        with torch.no_grad():
            outputs = model.readout(record.h).squeeze(-1).T
    else:
        outputs, records = generate(model, x[:, :1] if cfg.warmup == "first-value" else x, cfg.generate_steps)
        record = records[-1]
    if cfg.first_cprev == "zero":
        record = dataclasses.replace(record, c0=torch.zeros_like(record.c0))
    return Evaluation(
        trace=balance_trace(record), record=record, train_mse=mse(model, training_set(cfg, data), device),
        test_mse=mse(model, data.test, device), naive_mse=naive_mse(data.test), eval_mode=cfg.eval_mode,
        n_sequences=len(test), inputs=test, outputs=outputs.detach().cpu().double().numpy(),
    )
