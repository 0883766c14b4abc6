"""The Dynamic Balance Ratio: everything derived from per-step reaction and diffusion norms.

Every system in rdlens (Gray-Scott, LSTM, DDPM) reduces its run to two series, the L2 norm
of the reaction part and of the diffusion part of each update. This module is the one place
where those series become the paper's numbers (SPEC.md, "Derived quantities"):

    M_react = mean_t reaction_t        M_diff = mean_t diffusion_t
    R = M_react / M_diff               R(tau) = reaction_t / diffusion_t
    final R = R(tau) at the last step that has both parts

A step can be kept in the trace but left out of every derived number (``counted`` false):
the DDPM's last reverse step adds no noise, so its diffusion is zero by construction.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from rdlens.core.errors import ConfigError
from rdlens.core.rundir import atomic_write_bytes

BASE_COLUMNS = ("step", "tau", "reaction", "diffusion")


VANISH = 1e-12
"""a norm below this fraction of the trace's largest norm counts as vanished"""


def normalised_time(n: int) -> np.ndarray:
    """tau in [0, 1] for ``n`` consecutive steps: 0 at the first, 1 at the last."""
    if n <= 1:
        return np.zeros(n)
    return np.linspace(0.0, 1.0, n)


def _brief(value: object) -> str:
    """One field's value in a few characters: arrays and tensors by shape, long lists by length."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (int, float)):
        return f"{type(value).__name__}{tuple(shape)}:{getattr(value, 'dtype', '')}".replace("torch.", "")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"[{len(value)} items]"
    if isinstance(value, dict) and len(value) > 4:
        return f"{{{len(value)} keys}}"
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def compact_repr(obj: object) -> str:
    """A dataclass's repr that fits a notebook line or two: arrays and tensors as their shape,
    long lists as their length, nested results by their own (short) repr."""
    import dataclasses

    fields = ", ".join(f"{f.name}={_brief(getattr(obj, f.name))}" for f in dataclasses.fields(obj) if f.repr)
    return f"{type(obj).__name__}({fields})"


@dataclass(frozen=True, eq=False)
class BalanceTrace:
    """Per-step reaction and diffusion norms of one run, and what follows from them.

    ``reaction`` and ``diffusion`` are the batch-averaged norms (one value per step).
    ``reaction_samples`` / ``diffusion_samples`` optionally keep the norm of every sequence
    or image, shape (steps, samples), so that intervals over samples can be formed later.
    ``extra`` holds further per-step columns (e.g. the DDPM's ``score`` and ``eps_norm``).
    """

    step: np.ndarray
    tau: np.ndarray
    reaction: np.ndarray
    diffusion: np.ndarray
    counted: np.ndarray
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    reaction_samples: np.ndarray | None = None
    diffusion_samples: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.reaction)
        for name in ("step", "tau", "diffusion", "counted"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"trace column {name!r} has {len(getattr(self, name))} rows, reaction has {n}")
        for name, col in self.extra.items():
            if len(col) != n:
                raise ValueError(f"extra column {name!r} has {len(col)} rows, trace has {n}")
            if name in BASE_COLUMNS or name == "counted":
                raise ValueError(f"extra column name {name!r} clashes with a base column")
        for name in ("reaction_samples", "diffusion_samples"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} steps, trace has {n}")

    @classmethod
    def from_series(
        cls,
        reaction: Sequence[float] | np.ndarray,
        diffusion: Sequence[float] | np.ndarray,
        *,
        step: Sequence[int] | np.ndarray | None = None,
        tau: Sequence[float] | np.ndarray | None = None,
        counted: Sequence[bool] | np.ndarray | None = None,
        extra: Mapping[str, Sequence[float] | np.ndarray] | None = None,
        reaction_samples: np.ndarray | None = None,
        diffusion_samples: np.ndarray | None = None,
    ) -> "BalanceTrace":
        """Build a trace from two norm series; steps default to 1..T, tau to [0, 1]."""
        r = np.asarray(reaction, dtype=np.float64).reshape(-1)
        d = np.asarray(diffusion, dtype=np.float64).reshape(-1)
        n = len(r)
        return cls(
            step=np.arange(1, n + 1) if step is None else np.asarray(step, dtype=np.int64),
            tau=normalised_time(n) if tau is None else np.asarray(tau, dtype=np.float64),
            reaction=r,
            diffusion=d,
            counted=np.ones(n, dtype=bool) if counted is None else np.asarray(counted, dtype=bool),
            extra={k: np.asarray(v, dtype=np.float64) for k, v in (extra or {}).items()},
            reaction_samples=None if reaction_samples is None else np.asarray(reaction_samples, np.float64),
            diffusion_samples=None if diffusion_samples is None else np.asarray(diffusion_samples, np.float64),
        )

    @classmethod
    def from_samples(cls, reaction_samples: np.ndarray, diffusion_samples: np.ndarray, **kwargs) -> "BalanceTrace":
        """Build a trace from per-sample norms, shape (steps, samples); the series are their means."""
        rs = np.asarray(reaction_samples, dtype=np.float64)
        ds = np.asarray(diffusion_samples, dtype=np.float64)
        if rs.ndim != 2 or rs.shape != ds.shape:
            raise ValueError(f"per-sample norms must both be (steps, samples); got {rs.shape} and {ds.shape}")
        return cls.from_series(
            rs.mean(axis=1), ds.mean(axis=1), reaction_samples=rs, diffusion_samples=ds, **kwargs
        )

    def __len__(self) -> int:
        return len(self.reaction)

    def __repr__(self) -> str:
        samples = "" if self.reaction_samples is None else f", samples={self.reaction_samples.shape[1]}"
        extra = f", extra={sorted(self.extra)}" if self.extra else ""
        return (f"BalanceTrace({len(self)} steps, R={self.R:.6g}, final_R={self.final_R:.6g}, "
                f"M_react={self.M_react:.6g}, M_diff={self.M_diff:.6g}{extra}{samples})")

    @property
    def M_react(self) -> float:
        """Mean reaction norm over the counted steps (the paper's Eq. 12-14, 19)."""
        return float(np.mean(self.reaction[self.counted])) if self.counted.any() else math.nan

    @property
    def M_diff(self) -> float:
        """Mean diffusion norm over the counted steps (the paper's Eq. 15-17, 19)."""
        return float(np.mean(self.diffusion[self.counted])) if self.counted.any() else math.nan

    @property
    def R(self) -> float:
        """Mean Dynamic Balance Ratio M_react / M_diff (Eq. 18); nan when M_diff is 0."""
        m_diff = self.M_diff
        return self.M_react / m_diff if m_diff > 0 else math.nan

    @property
    def R_tau(self) -> np.ndarray:
        """Per-step ratio reaction_t / diffusion_t (Eq. 20, corrected); nan where not defined."""
        out = np.full(len(self), np.nan)
        ok = self.counted & (self.diffusion > 0)
        out[ok] = self.reaction[ok] / self.diffusion[ok]
        return out

    @property
    def final_R(self) -> float:
        """R(tau) at the last counted step that has both a reaction and a diffusion part;
        nan when the run ends with both norms vanished (a ratio of two zeros is no number)."""
        if self.counted.any():
            last = np.flatnonzero(self.counted)[-1]
            if self._vanishing()[last]:
                return math.nan
        r_tau = self.R_tau
        ok = np.flatnonzero(np.isfinite(r_tau))
        return float(r_tau[ok[-1]]) if len(ok) else math.nan

    def _vanishing(self) -> np.ndarray:
        """Steps whose reaction and diffusion are both below 1e-12 of the largest norm."""
        finite = np.isfinite(self.reaction) & np.isfinite(self.diffusion)
        scale = max(np.max(self.reaction[finite], initial=0.0), np.max(self.diffusion[finite], initial=0.0))
        tiny = VANISH * scale
        return finite & (self.reaction <= tiny) & (self.diffusion <= tiny)

    @property
    def degenerate(self) -> str | None:
        """Why this trace's numbers should not be read as a balance, or None: non-finite norms,
        or steps on which both norms vanish (e.g. a Gray-Scott pattern that died)."""
        counted = self.counted
        m = int(counted.sum())
        if m == 0:
            return "no counted steps"
        bad = int((~(np.isfinite(self.reaction) & np.isfinite(self.diffusion)) & counted).sum())
        if bad:
            return f"non-finite norms on {bad} of {m} counted steps"
        gone = int((self._vanishing() & counted).sum())
        if gone:
            end = " including the last, so final R is undefined" if math.isnan(self.final_R) else ""
            return f"reaction and diffusion both vanish on {gone} of {m} counted steps{end}"
        return None

    def per_sample(self) -> list["BalanceTrace"]:
        """Each kept sequence's own trace (same steps, tau and counted steps), e.g. for the R of
        every sample or rollout; empty when the per-sample norms were not kept."""
        if self.reaction_samples is None or self.diffusion_samples is None:
            return []
        return [BalanceTrace.from_series(self.reaction_samples[:, j], self.diffusion_samples[:, j], step=self.step,
                                         tau=self.tau, counted=self.counted)
                for j in range(self.reaction_samples.shape[1])]

    def resample(self, grid: np.ndarray | int = 201) -> tuple[np.ndarray, np.ndarray]:
        """R(tau) linearly interpolated onto a common tau grid (for plots and seed averages).

        ``grid`` is an array of tau values or a number of equally spaced points in [0, 1].
        Only steps where R(tau) is defined are used as nodes.
        """
        taus = normalised_time(grid) if isinstance(grid, (int, np.integer)) else np.asarray(grid, np.float64)
        r_tau = self.R_tau
        ok = np.isfinite(r_tau)
        if ok.sum() == 0:
            return taus, np.full(len(taus), np.nan)
        if ok.sum() == 1:
            return taus, np.full(len(taus), r_tau[ok][0])
        return taus, np.interp(taus, self.tau[ok], r_tau[ok])

    def summary(self) -> dict[str, float | int]:
        """The derived numbers as a plain dict (for summary.json)."""
        return {
            "M_react": self.M_react,
            "M_diff": self.M_diff,
            "R": self.R,
            "final_R": self.final_R,
            "steps_in_trace": len(self),
            "steps_counted": int(self.counted.sum()),
            "degenerate": self.degenerate,
        }

    # ---- persistence ---------------------------------------------------------------------

    def to_csv(self) -> str:
        """CSV text: ``step,tau,reaction,diffusion``, then the extra columns, then
        ``counted`` only if some step is excluded from the derived numbers."""
        columns = list(BASE_COLUMNS) + list(self.extra)
        write_counted = not bool(self.counted.all())
        if write_counted:
            columns.append("counted")
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for i in range(len(self)):
            row = [int(self.step[i]), _fmt(self.tau[i]), _fmt(self.reaction[i]), _fmt(self.diffusion[i])]
            row += [_fmt(col[i]) for col in self.extra.values()]
            if write_counted:
                row.append(int(self.counted[i]))
            writer.writerow(row)
        return buf.getvalue()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the trace as CSV (atomically); per-sample norms go to ``<stem>_samples.npz``."""
        path = Path(path)
        atomic_write_bytes(path, self.to_csv().encode())
        if self.reaction_samples is not None and self.diffusion_samples is not None:
            buf = io.BytesIO()
            np.savez_compressed(buf, reaction=self.reaction_samples, diffusion=self.diffusion_samples)
            atomic_write_bytes(_samples_path(path), buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BalanceTrace":
        """Read a trace written by :meth:`save` (and its per-sample norms, if present)."""
        path = Path(path)
        with open(path, newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or tuple(rows[0][:4]) != BASE_COLUMNS:
            raise ValueError(f"{path}: not a balance trace (header must start with {','.join(BASE_COLUMNS)})")
        header, body = rows[0], rows[1:]
        short = next((n for n, r in enumerate(body, start=2) if len(r) != len(header)), None)
        if short is not None:
            raise ValueError(f"{path}: line {short} has {len(body[short - 2])} values, the header {len(header)}")
        cols = {name: [r[j] for r in body] for j, name in enumerate(header)}
        extra = {k: np.array(v, dtype=np.float64) for k, v in cols.items() if k not in BASE_COLUMNS + ("counted",)}
        samples = _samples_path(path)
        rs = ds = None
        if samples.exists():
            with np.load(samples) as z:
                rs, ds = z["reaction"], z["diffusion"]
        return cls.from_series(
            np.array(cols["reaction"], dtype=np.float64),
            np.array(cols["diffusion"], dtype=np.float64),
            step=np.array(cols["step"], dtype=np.int64),
            tau=np.array(cols["tau"], dtype=np.float64),
            counted=None if "counted" not in cols else np.array(cols["counted"], dtype=np.int64).astype(bool),
            extra=extra,
            reaction_samples=rs,
            diffusion_samples=ds,
        )


def _fmt(x: float) -> str:
    """Shortest round-tripping text for a float, so save -> load is exact."""
    return repr(float(x))


def _samples_path(path: Path) -> Path:
    return path.with_name(path.stem + "_samples.npz")


# ---- combining independent runs (seeds) ---------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """Mean of ``n`` independent values with a two-sided 95 % Student-t interval."""

    mean: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n}


def _interval_values(values: Iterable[float], level: float) -> np.ndarray:
    """The values an interval is formed from, refused when empty or not finite, and the level checked."""
    x = np.asarray(list(values), dtype=np.float64)
    if len(x) == 0:
        raise ValueError("cannot form an interval from zero values")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"cannot form an interval from non-finite values: {x.tolist()}")
    if not 0 < level < 1:
        raise ConfigError(f"confidence level must be in (0, 1), got {level}")
    return x


def t_interval(values: Iterable[float], level: float = 0.95) -> Estimate:
    """Mean and Student-t confidence interval of independent values (nan interval for n < 2).

    Non-finite values are an error: a seed that produced no number must be reported, not
    silently dropped from the interval.
    """
    from scipy import stats

    x = _interval_values(values, level)
    mean = float(x.mean())
    if len(x) < 2:
        return Estimate(mean, math.nan, math.nan, len(x))
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Estimate(mean, mean - half, mean + half, len(x))


def bootstrap_interval(values: Iterable[float], level: float = 0.95, resamples: int = 4000, seed: int = 0,
                       groups: Iterable[Any] | None = None) -> Estimate:
    """Mean and percentile-bootstrap confidence interval of the mean of independent values (nan
    interval for n < 2): the interval of a non-negative measure never reaches below its smallest
    value (a t-interval of skewed areas went negative). Seeded, so the same values always give
    the same interval.

    ``groups`` (one label per value, e.g. the training seed that made each field) makes it a
    two-stage (cluster) bootstrap when there are two groups or more: each resample draws groups
    with replacement, then values within each drawn group, so the interval covers the spread
    between trainings and not only between the fields of one trained model."""
    x = _interval_values(values, level)
    mean = float(x.mean())
    if len(x) < 2:
        return Estimate(mean, math.nan, math.nan, len(x))
    rng = np.random.default_rng(seed)
    if groups is not None:
        labels = np.asarray(list(groups))
        if labels.shape != x.shape:
            raise ValueError(f"groups must give one label per value: {labels.shape} for {x.shape}")
        members = [x[labels == g] for g in dict.fromkeys(labels.tolist())]
        if len(members) > 1:
            means = np.empty(resamples)
            for i in range(resamples):
                drawn = [members[j] for j in rng.integers(0, len(members), len(members))]
                means[i] = np.concatenate([m[rng.integers(0, len(m), len(m))] for m in drawn]).mean()
            low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
            return Estimate(mean, float(low), float(high), len(x))
    chunk = max(1, 2**22 // len(x))  # about 32 MiB of indices at a time
    means = np.concatenate([x[rng.integers(0, len(x), (min(chunk, resamples - i), len(x)))].mean(axis=1)
                            for i in range(0, resamples, chunk)])
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return Estimate(mean, float(low), float(high), len(x))


def correlation_interval(values: Iterable[float], level: float = 0.95) -> Estimate:
    """Mean and confidence interval of independent correlation coefficients, formed on Fisher's
    z = atanh(r) (where the Student-t interval is apt) and mapped back with tanh: the
    Fisher-averaged r, and an interval that stays inside [-1, 1]."""
    r = np.asarray(list(values), dtype=np.float64)
    if not np.all(np.isfinite(r)) or np.any(np.abs(r) > 1):
        raise ValueError(f"correlations must be finite and in [-1, 1], got {r.tolist()}")
    z = t_interval(np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15)), level)
    return Estimate(math.tanh(z.mean), math.tanh(z.low), math.tanh(z.high), z.n)


def _interval_or_undefined(values: list[float], level: float) -> Estimate:
    """As :func:`t_interval`, but undefined (nan) when any seed has no number: a quantity
    such as final R is not defined for a run whose norms vanished, and the mean of the
    others would hide that seed."""
    if all(math.isfinite(v) for v in values):
        return t_interval(values, level)
    return Estimate(math.nan, math.nan, math.nan, len(values))


@dataclass(frozen=True)
class CombinedBalance:
    """Several independent runs of one setting (one per seed) and their intervals."""

    traces: tuple[BalanceTrace, ...]
    M_react: Estimate
    M_diff: Estimate
    R: Estimate
    final_R: Estimate
    tau: np.ndarray
    R_tau_mean: np.ndarray
    R_tau_low: np.ndarray
    R_tau_high: np.ndarray

    def summary(self) -> dict[str, dict[str, float | int]]:
        return {k: getattr(self, k).as_dict() for k in ("M_react", "M_diff", "R", "final_R")}

    def __repr__(self) -> str:
        return (f"CombinedBalance({len(self.traces)} traces, R={self.R.mean:.6g} [{self.R.low:.6g}, "
                f"{self.R.high:.6g}], final_R={self.final_R.mean:.6g} [{self.final_R.low:.6g}, "
                f"{self.final_R.high:.6g}], {len(self.tau)}-point R(tau))")


def score_ratio(trace: BalanceTrace) -> float:
    """R_score of a DDPM trace: the mean norm of the learned (score) part of the drift over the
    counted steps, over M_diff (nan when the trace has no ``score`` column)."""
    score = trace.extra.get("score")
    return float(np.mean(score[trace.counted]) / trace.M_diff) if score is not None else math.nan


def combine(traces: Sequence[BalanceTrace], grid: int = 201, level: float = 0.95) -> CombinedBalance:
    """Combine runs of independent seeds: per-quantity mean and 95 % t-interval, and R(tau)
    resampled on a common tau grid with a pointwise interval.

    R is combined as the mean of per-seed ratios (each seed is one measurement of R).
    """
    if len(traces) == 0:
        raise ValueError("combine() needs at least one trace")
    taus = normalised_time(grid)
    curves = np.stack([t.resample(taus)[1] for t in traces])
    mean = curves.mean(axis=0)
    low = np.full(grid, np.nan)
    high = np.full(grid, np.nan)
    if len(traces) >= 2:
        from scipy import stats

        half = stats.t.ppf(0.5 + level / 2, len(traces) - 1) * curves.std(axis=0, ddof=1) / math.sqrt(len(traces))
        low, high = mean - half, mean + half
    return CombinedBalance(
        traces=tuple(traces),
        M_react=t_interval([t.M_react for t in traces], level),
        M_diff=t_interval([t.M_diff for t in traces], level),
        R=t_interval([t.R for t in traces], level),
        final_R=_interval_or_undefined([t.final_R for t in traces], level),
        tau=taus,
        R_tau_mean=mean,
        R_tau_low=low,
        R_tau_high=high,
    )


def trace_numbers(trace: BalanceTrace) -> dict[str, float]:
    """M_react, M_diff, R and final R of a trace, as a control reports them."""
    return {"M_react": trace.M_react, "M_diff": trace.M_diff, "R": trace.R, "final_R": trace.final_R}


def identity_range(bound: float, r_ratio: float) -> dict[str, float | bool]:
    """R's range [1/(1+B), 1/(1-B)] implied by |M_react - M_diff| <= B M_react."""
    low = 1.0 / (1.0 + bound)
    high = 1.0 / (1.0 - bound) if bound < 1 else math.inf
    return {"bound_B": bound, "R_range_low": low, "R_range_high": high, "R_within_range": bool(low <= r_ratio <= high)}
