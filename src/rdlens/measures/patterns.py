"""Pattern measures, applied identically to any 2-D periodic field (Gray-Scott's v, a DDPM
sample, an LSTM's rollout): what the pattern looks like, in numbers.

- ``dominant_wavelength``: the peak of the radially averaged power spectrum, in domain units;
- ``spectral_entropy``: Shannon entropy of that spectrum, normalised to [0, 1] (0: one
  wavelength; 1: all equally strong, i.e. noise);
- ``components``: connected regions above a threshold on the periodic grid (4-neighbours,
  merged across the edges), with each one's area and elongation (square root of the ratio
  of the principal second moments; ``inf`` for a region that wraps around the domain);
- ``label``: spots / stripes / mixed / none from those numbers;
- ``relative_residual``: ||dv/dt|| / ||reaction|| of a Gray-Scott state (0 at a steady state).

Each is checked against a known answer in tests/test_patterns.py (a cosine of known period,
discs of known number, spots vs stripes, a stationary state vs noise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import math

import numpy as np

LABELS = ("none", "spots", "stripes", "mixed")
"""pattern classes, in the order used for class maps"""


def radial_spectrum(field: np.ndarray) -> np.ndarray:
    """Power of (field - mean) summed over rings of integer wavenumber m = 0, 1, ..., N // 2
    (cycles per domain side), for a square periodic field."""
    f = np.asarray(field, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] != f.shape[1]:
        raise ValueError(f"a square 2-D field is needed, got shape {f.shape}")
    n = f.shape[0]
    power = np.abs(np.fft.fft2(f - f.mean())) ** 2
    m = np.fft.fftfreq(n, d=1.0 / n)
    ring = np.rint(np.hypot(*np.meshgrid(m, m, indexing="ij"))).astype(int)
    return np.bincount(ring.ravel(), weights=power.ravel(), minlength=n)[: n // 2 + 1]


def dominant_wavelength(field: np.ndarray, length: float = 1.0) -> float:
    """The wavelength (in the units of ``length``, the domain side) of the strongest ring of
    the power spectrum; nan for a uniform field."""
    spec = radial_spectrum(field)[1:]
    if not np.any(spec > 0):
        return float("nan")
    return float(length / (1 + int(np.argmax(spec))))


def spectral_entropy(field: np.ndarray) -> float:
    """Entropy of the normalised radial power spectrum (DC excluded), divided by its maximum:
    0 for a single wavelength, near 1 for white noise; nan for a uniform field."""
    spec = radial_spectrum(field)[1:]
    total = spec.sum()
    if total <= 0:
        return float("nan")
    p = spec[spec > 0] / total
    return float(-(p * np.log(p)).sum() / np.log(len(spec)))


def _periodic_labels(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components of ``mask`` with 4-neighbours on a torus: labels 1..n."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)
    parent = list(range(n + 1))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a_edge, b_edge in ((lab[0, :], lab[-1, :]), (lab[:, 0], lab[:, -1])):
        for a, b in zip(a_edge, b_edge):
            if a and b:
                ra, rb = find(int(a)), find(int(b))
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n + 1)])
    uniq = {r: k for k, r in enumerate(sorted(set(roots[1:].tolist())), start=1)}
    relabel = np.array([0] + [uniq[r] for r in roots[1:]], dtype=np.int64)
    return relabel[lab], len(uniq)


def _elongation(cells: np.ndarray, n: int) -> float:
    """sqrt(largest / smallest principal second moment) of one component's cells, after
    shifting it so that it does not cross the periodic edge; inf if it wraps around."""
    coords = []
    for axis in (0, 1):
        occupied = np.zeros(n, dtype=bool)
        occupied[cells[:, axis]] = True
        if occupied.all():
            return float("inf")
        gap = int(np.flatnonzero(~occupied)[0])
        coords.append((cells[:, axis] - gap - 1) % n)
    xy = np.stack(coords, axis=1).astype(np.float64)
    if len(xy) < 2:
        return 1.0
    ev = np.linalg.eigvalsh(np.cov(xy.T) + np.eye(2) / 12.0)  # + a pixel's own second moment
    return float(np.sqrt(ev[-1] / ev[0]))


@dataclass(frozen=True)
class Components:
    count: int
    mean_area: float
    """cells per component"""
    mean_elongation: float
    """area-weighted mean of the finite elongations (nan if none)"""
    area_fraction_elongated: float
    """share of the above-threshold area in components with elongation >= 3 or that wrap"""
    threshold: float


def components(field: np.ndarray, threshold: float | None = None) -> Components:
    """Connected regions of ``field`` above ``threshold`` (default: halfway between its
    minimum and maximum) on the periodic grid."""
    f = np.asarray(field, dtype=np.float64)
    lo, hi = float(f.min()), float(f.max())
    thr = 0.5 * (lo + hi) if threshold is None else float(threshold)
    if hi - lo <= 1e-9 * max(1.0, abs(hi)):
        return Components(0, 0.0, float("nan"), 0.0, thr)
    lab, n = _periodic_labels(f > thr)
    if n == 0:
        return Components(0, 0.0, float("nan"), 0.0, thr)
    areas = np.bincount(lab.ravel())[1:]
    idx = np.argwhere(lab > 0)
    order = np.argsort(lab[lab > 0], kind="stable")
    groups = np.split(idx[order], np.cumsum(areas)[:-1])
    elong = np.array([_elongation(g, f.shape[0]) for g in groups])
    finite = np.isfinite(elong)
    mean_el = float(np.average(elong[finite], weights=areas[finite])) if finite.any() else float("nan")
    elongated = float(areas[(elong >= 3.0) | ~finite].sum() / areas.sum())
    return Components(int(n), float(areas.mean()), mean_el, elongated, thr)


def label(field: np.ndarray, comps: Components | None = None) -> str:
    """spots (most of the pattern in compact components), stripes (most in elongated or
    wrapping ones), mixed, or none (a uniform field)."""
    c = comps or components(field)
    if c.count == 0:
        return "none"
    if c.area_fraction_elongated >= 0.7:
        return "stripes"
    if c.area_fraction_elongated <= 0.3:
        return "spots"
    return "mixed"


def measure(field: np.ndarray, length: float = 1.0) -> dict[str, Any]:
    """Every measure of one field, as a flat dict (for tables)."""
    c = components(field)
    return {"wavelength": dominant_wavelength(field, length), "spectral_entropy": spectral_entropy(field),
            "components": c.count, "mean_area": c.mean_area, "elongation": c.mean_elongation,
            "elongated_fraction": c.area_fraction_elongated, "label": label(field, c)}


def relative_residual(u: np.ndarray, v: np.ndarray, model: Any) -> float:
    """||dv/dt|| / ||reaction|| of a Gray-Scott state (``model``: a GrayScott): 0 at a steady
    state, where reaction and diffusion cancel; nan where there is no reaction at all."""
    from rdlens.systems.grayscott.model import reference_step

    _, v_next, reaction, _ = reference_step(u, v, model)  # one explicit step: dv/dt = (v_next - v) / dt
    dvdt = float(np.linalg.norm(v_next - v)) / model.dt
    return dvdt / reaction if reaction > 0 else float("nan")


def state_ratio(u: np.ndarray, v: np.ndarray, model: Any) -> float:
    """||reaction|| / ||diffusion|| of v at one Gray-Scott state (``model``: a GrayScott): R(tau)
    of a run at the step it reaches this state, i.e. a true run's final R when it is the last."""
    from rdlens.systems.grayscott.model import reference_step

    _, _, reaction, diffusion = reference_step(u, v, model)
    return reaction / diffusion if diffusion > 0 else float("nan")


# ---- the patterns study's systems and the networks' scale ---------------------------------

SYSTEMS = ("gray-scott", "gray-scott-1x", "convlstm-1x", "gray-scott-long", "convlstm-long", "ddpm")
"""rows of the table: stationary ground truth, true and learned states at the LSTM's training
horizon and at the long horizon, DDPM samples"""
TITLES = {"gray-scott": "Gray-Scott, stationary", "gray-scott-1x": "Gray-Scott at the horizon",
          "convlstm-1x": "ConvLSTM at the horizon", "gray-scott-long": "Gray-Scott, long horizon",
          "convlstm-long": "ConvLSTM, long horizon", "ddpm": "DDPM samples"}


V_MAX = 0.5
"""v is mapped from [0, V_MAX] (Gray-Scott's v stays below ~0.45 here) and u from [0, 1] to [-1, 1]"""


PHYSICAL_RANGE = (-0.5, 1.5)
"""u and v of a state the true dynamics can continue from (a generous range around [0, 1])"""


def physical(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Per field (the last two axes), whether Gray-Scott can continue from (u, v): both finite
    and within :data:`PHYSICAL_RANGE`. Every system's fields are held to this one test."""
    low, high = PHYSICAL_RANGE
    u, v = np.asarray(u), np.asarray(v)
    out = np.ones(u.shape[:-2], dtype=bool)
    for a in (u, v):  # a NaN anywhere makes the minimum NaN, which fails both comparisons
        out &= (a.min(axis=(-2, -1)) >= low) & (a.max(axis=(-2, -1)) <= high)
    return out


def pattern_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two fields over their cells, in [-1, 1] (the rounding of the sums
    can put a field's correlation with itself at 1 + 2e-16, which is clipped); NaN when either
    field is constant or not finite."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.nan
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.clip((a * b).sum() / denom, -1.0, 1.0)) if denom > 0 else math.nan


def to_unit(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(u, v) (..., H, W) each -> (..., 2, H, W) in about [-1, 1], the networks' scale."""
    return np.stack([2.0 * u - 1.0, 2.0 * v / V_MAX - 1.0], axis=-3).astype(np.float32)


def from_unit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`to_unit`: (..., 2, H, W) -> u, v in float64."""
    x = np.asarray(x, dtype=np.float64)
    return (x[..., 0, :, :] + 1.0) / 2.0, (x[..., 1, :, :] + 1.0) * V_MAX / 2.0


__all__ = ["LABELS", "SYSTEMS", "TITLES", "V_MAX", "Components", "components", "dominant_wavelength", "from_unit",
           "label", "measure", "physical", "radial_spectrum", "relative_residual", "spectral_entropy", "to_unit"]


# ---- Gray-Scott fields for the learned systems: starts, runs, trajectories -------------------


def parse_settings(text: str) -> list[tuple[float, float]]:
    """``F:k,F:k,...`` as (F, k) pairs, each in [0, 1], 1 to 100 of them; a ConfigError otherwise."""
    from rdlens.core.errors import ConfigError

    pairs = []
    for item in str(text).split(","):
        try:
            F, k = (float(x) for x in item.split(":"))
        except ValueError:
            raise ConfigError(f"settings must be F:k pairs separated by commas, e.g. 0.029:0.062,0.055:0.062; "
                              f"got {text!r}") from None
        if not (0 <= F <= 1 and 0 <= k <= 1):
            raise ConfigError(f"F and k of each setting must be in [0, 1], got {F}:{k}")
        pairs.append((F, k))
    if not 1 <= len(pairs) <= 100:
        raise ConfigError(f"settings must hold 1 to 100 pairs, got {len(pairs)}")
    return pairs


def starts(model: Any, pairs: list[tuple[float, float]], seed_base: int, per_setting: int, squares: int
           ) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray]:
    """Seeded Pearson starts (:func:`rdlens.systems.grayscott.model.pearson_spots`), ``per_setting`` for each
    (F, k): (models, u, v, seeds), start j of setting i seeded ``seed_base + 1000 i + j``."""
    from dataclasses import replace

    from rdlens.systems.grayscott.model import pearson_spots

    models, us, vs, seeds = [], [], [], []
    for i, (F, k) in enumerate(pairs):
        at = replace(model, F=F, k=k)
        for j in range(per_setting):
            seed = seed_base + 1000 * i + j
            u, v = pearson_spots(at, seed, count=squares)
            models.append(at)
            us.append(u)
            vs.append(v)
            seeds.append(seed)
    return models, np.stack(us), np.stack(vs), np.array(seeds)


def advance(models: list[Any], u: np.ndarray, v: np.ndarray, steps: int, chunks: int = 1,
            ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Advance a batch of grids ``steps`` steps in ``chunks`` equal parts; return (u, v, norms)
    after each part (norms: (B, steps per part, 3) reaction, diffusion, residual)."""
    from rdlens.systems.grayscott.model import BatchStepper

    stepper = BatchStepper(models, np.ascontiguousarray(u), np.ascontiguousarray(v))
    out = []
    for _ in range(chunks):
        norms = stepper.advance(steps // chunks)
        out.append((stepper.u.copy(), stepper.v.copy(), norms))
    return out


def trajectories(models: list[Any], u: np.ndarray, v: np.ndarray, frame_every: int, frames: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Frames 0, 1, ..., ``frames`` (``frame_every`` steps apart) of each grid in the networks'
    scale (B, frames + 1, 2, N, N), and the per-step norms of the whole run (B, steps, 3)."""
    parts = advance(models, u, v, frame_every * frames, chunks=frames)
    x = np.stack([to_unit(u, v)] + [to_unit(pu, pv) for pu, pv, _ in parts], axis=1)
    return x, np.concatenate([n for _, _, n in parts], axis=1)


def conditions(F: np.ndarray, k: np.ndarray) -> np.ndarray:
    """(F, k) scaled to order one for the ConvLSTM's condition planes."""
    return np.stack([(np.asarray(F) - 0.04) / 0.02, (np.asarray(k) - 0.062) / 0.004], axis=-1).astype(np.float32)
