"""Sequence data for the LSTM: sine waves, and the x-component of Lorenz and Van der Pol.

ODEs are integrated with a fixed-step classical RK4 (vectorised over sequences) from random
initial conditions, after a discarded transient, and sampled every ``dt``. Every data set is
standardised with the mean and standard deviation of its training split only, so nothing
about the test split leaks into training. The same seed gives the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from rdlens.core.balance import compact_repr
from rdlens.core.errors import ConfigError
from rdlens.core.options import seed_setting, setting, validate

DATASETS = ("sine", "lorenz", "vanderpol")

# Sampling interval of each ODE when none is given: Lorenz as in the paper's public code;
# Van der Pol coarser so that a sequence of 200 samples spans about three limit cycles.
DEFAULT_DT = {"lorenz": 0.02, "vanderpol": 0.1}


FORMS = ("rdlens", "public-code")


@dataclass(frozen=True)
class SequenceConfig:
    """What data set to make, and how much of it."""

    dataset: str = setting("sine", choices=DATASETS)
    """sine | lorenz | vanderpol"""
    n_sequences: int = setting(1000, low=2, why="one to train, one to test")
    """number of sequences (train + test), the paper's 1000"""
    length: int = setting(200, low=3, label="sequence length", why="a step and its successor")
    """samples per sequence"""
    test_fraction: float = setting(0.2, low=0, high=1, open=(True, True))
    """share of the sequences held out for evaluation"""
    noise: float = setting(0.0, low=0)
    """standard deviation of Gaussian observation noise, added before standardising"""
    t_max: float = setting(10.0, low=0, open=(True, False))
    """sine: the sequence spans t in [0, t_max]"""
    freq_range: tuple[float, float] = (0.5, 2.0)
    """sine: frequency drawn uniformly from this range (x = sin(2 pi f t + phase))"""
    dt: float | None = setting(None, low=0, open=(True, False))
    """ODEs: sampling interval (default: 0.02 for Lorenz, 0.1 for Van der Pol)"""
    substeps: int = setting(4, low=1)
    """ODEs: RK4 steps per sample"""
    transient: float = setting(20.0, low=0)
    """ODEs: integration time discarded before the first sample"""
    mu: float = setting(1.0, low=0)
    """Van der Pol damping parameter"""
    form: str = setting("rdlens", choices=FORMS)
    """rdlens, or public-code (the authors' notebook, quirks: sine sin(f t + phase), not
    standardised; Lorenz by Euler steps of dt from N(0, 1) starts, no transient, z-scored with
    the statistics of all sequences; no Van der Pol data set there)"""
    seed: int = seed_setting()

    def __post_init__(self) -> None:
        validate(self)
        if self.form == "public-code" and self.dataset == "vanderpol":
            raise ConfigError("form = public-code: the public code has no Van der Pol data set; use form = rdlens")
        n_test = self.n_test
        if n_test < 1 or n_test >= self.n_sequences:
            raise ConfigError(
                f"test_fraction = {self.test_fraction} of {self.n_sequences} sequences leaves {n_test} for testing "
                f"and {self.n_sequences - n_test} for training; both must be >= 1"
            )
        lo, hi = self.freq_range
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise ConfigError(f"freq_range must satisfy 0 < low <= high, got {self.freq_range}")
        if self.dataset in DEFAULT_DT and self.sample_dt > 0:
            steps = (self.transient / self.sample_dt + self.length) * self.substeps
            if steps > MAX_ODE_STEPS:
                raise ConfigError(f"transient = {self.transient:g} and length = {self.length} are {steps:.3g} RK4 steps "
                                  f"of dt / substeps = {self.sample_dt / self.substeps:g}; at most {MAX_ODE_STEPS:.0e} "
                                  "are allowed (shorten --transient or raise --dt)")

    @property
    def n_test(self) -> int:
        return int(round(self.n_sequences * self.test_fraction))

    @property
    def sample_dt(self) -> float:
        """Sampling interval actually used by an ODE data set."""
        return self.dt if self.dt is not None else DEFAULT_DT.get(self.dataset, 0.0)


@dataclass(frozen=True)
class Sequences:
    """Standardised train and test arrays, shape (sequences, length), and the statistics used."""

    __repr__ = compact_repr

    config: SequenceConfig
    train: np.ndarray
    test: np.ndarray
    mean: float
    std: float

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Undo the standardisation (back to the data set's own units)."""
        return x * self.std + self.mean


def lorenz_rhs(sigma: float = 10.0, rho: float = 28.0, beta: float = 8.0 / 3.0) -> Callable[[np.ndarray], np.ndarray]:
    """Right-hand side of the Lorenz system for states of shape (..., 3)."""

    def f(y: np.ndarray) -> np.ndarray:
        x, yy, z = y[..., 0], y[..., 1], y[..., 2]
        return np.stack([sigma * (yy - x), x * (rho - z) - yy, x * yy - beta * z], axis=-1)

    return f


def vanderpol_rhs(mu: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Right-hand side of the Van der Pol oscillator x'' = mu (1 - x^2) x' - x, states (..., 2)."""

    def f(y: np.ndarray) -> np.ndarray:
        x, v = y[..., 0], y[..., 1]
        return np.stack([v, mu * (1 - x * x) * v - x], axis=-1)

    return f


MAX_ODE_STEPS = 1e8
"""RK4 steps (transient and samples) one ODE data set may take: about 20 minutes of integration"""


def rk4(f: Callable[[np.ndarray], np.ndarray], y0: np.ndarray, dt: float, n_samples: int, substeps: int = 1,
        keep: bool = True) -> np.ndarray:
    """Classical fixed-step RK4 for an autonomous ODE; returns (n_samples, *y0.shape), the first
    sample being y0, one sample every ``dt`` made of ``substeps`` RK4 steps (with ``keep`` =
    False only the last sample, (1, *y0.shape): a transient needs no memory per step)."""
    h = dt / substeps
    out = np.empty((n_samples if keep else 1,) + y0.shape)
    y = np.array(y0, dtype=np.float64)
    out[0] = y
    for n in range(1, n_samples):
        for _ in range(substeps):
            k1 = f(y)
            k2 = f(y + 0.5 * h * k1)
            k3 = f(y + 0.5 * h * k2)
            k4 = f(y + h * k3)
            y = y + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4)
        out[n if keep else 0] = y
    return out


def _ode_x(cfg: SequenceConfig, rng: np.random.Generator) -> np.ndarray:
    n = cfg.n_sequences
    if cfg.dataset == "lorenz":
        f = lorenz_rhs()
        y0 = np.column_stack([rng.uniform(-15, 15, n), rng.uniform(-20, 20, n), rng.uniform(5, 40, n)])
    else:
        f = vanderpol_rhs(cfg.mu)
        y0 = rng.uniform(-3, 3, (n, 2))
    dt = cfg.sample_dt
    burn = max(1, int(round(cfg.transient / dt)))
    y_start = rk4(f, y0, dt, burn + 1, cfg.substeps, keep=False)[-1]
    path = rk4(f, y_start, dt, cfg.length, cfg.substeps)  # (length, n, dim)
    return path[:, :, 0].T.copy()


def euler_lorenz(n: int, length: int, dt: float, rng: np.random.Generator) -> np.ndarray:
    """The public code's Lorenz data: x after each of ``length`` Euler steps of ``dt`` from a
    N(0, 1) start (the start itself is not a sample), no transient; (n, length)."""
    f = lorenz_rhs()
    y = rng.standard_normal((n, 3))
    out = np.empty((n, length))
    for k in range(length):
        y = y + f(y) * dt
        out[:, k] = y[:, 0]
    return out


def make_sequences(cfg: SequenceConfig) -> Sequences:
    """Generate the data set described by ``cfg``: deterministic for its seed."""
    rng = np.random.default_rng(cfg.seed)
    public = cfg.form == "public-code"
    if cfg.dataset == "sine":
        t = np.linspace(0.0, cfg.t_max, cfg.length)
        freq = rng.uniform(*cfg.freq_range, cfg.n_sequences)
        phase = rng.uniform(0.0, 2 * np.pi, cfg.n_sequences)
        omega = freq if public else 2 * np.pi * freq  # the public code omits the 2 pi
        x = np.sin(omega[:, None] * t[None, :] + phase[:, None])
    elif public:
        x = euler_lorenz(cfg.n_sequences, cfg.length, cfg.sample_dt, rng)
    else:
        x = _ode_x(cfg, rng)
    if cfg.noise > 0:
        x = x + cfg.noise * rng.standard_normal(x.shape)
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{cfg.dataset}: the integration produced non-finite values; try a smaller dt")
    n_train = cfg.n_sequences - cfg.n_test
    train, test = x[:n_train], x[n_train:]
    if public and cfg.dataset == "sine":
        mean, std = 0.0, 1.0  # the public code does not standardise its sine waves
    else:
        # the public code z-scores its Lorenz data with the statistics of all sequences
        mean, std = (float(x.mean()), float(x.std())) if public else (float(train.mean()), float(train.std()))
    if std == 0:
        raise ConfigError(f"{cfg.dataset}: the training split is constant; it cannot be standardised")
    return Sequences(cfg, (train - mean) / std, (test - mean) / std, mean, std)
