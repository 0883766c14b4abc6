"""``rdlens sweep``: R over a grid of Gray-Scott (F, k) values, run on Dask.

Every point is a Gray-Scott run from the same seeded Pearson start; per point the sweep
records the balance (R, final R, M_react, M_diff), how stationary the end state is (the
relative residual ||dv/dt|| / ||reaction|| of the last step, and the variability of the mean
of v over the last part of the run), the pattern measures of :mod:`rdlens.measures.patterns`, a class
and a thumbnail of v.

Engine. Points are grouped into tiles; a tile is one task, computed by one call of the
batched kernel (:class:`rdlens.systems.grayscott.model.BatchStepper`: many (F, k) in one compiled loop). A
point's numbers do not depend on its tile or worker (bit for bit). Tasks run on a Dask
cluster: an embedded ``LocalCluster`` on this machine (loopback only, one single-threaded
worker per core) unless ``--scheduler ADDRESS`` names an existing one. Each finished tile
is written to ``tiles/`` at once (atomically), so Ctrl-C or a lost worker loses no finished
point; a lost worker's tasks are retried elsewhere, and ``--resume DIR`` computes only the
missing tiles. Dask is the optional extra ``rdlens[sweep]``: the other commands do not need it.

Outputs: ``points.csv`` (one row per point), ``thumbnails.npz``, ``maps.png/.svg`` (log10 |R - 1|,
final R, residual and class over (F, k), with named points marked), ``mosaic.png`` (the
thumbnails in place), ``summary.json`` (written last: the fractions of stationary and
non-stationary points with |final R - 1| < 1e-3, wall time), ``config.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import time
import zipfile
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rdlens.core.errors import ConfigError, RunInterrupted, check_memory
from rdlens.core.options import seed_setting, setting, validate
from rdlens.systems.grayscott.model import GrayScott
from rdlens.core.rundir import RunDir, atomic_write_bytes, atomic_write_text, check_writable, timestamp, write_json
from rdlens.studies.tasks import dask_client

NAMED_POINTS: dict[str, tuple[float, float]] = {
    "paper: spots": (0.029, 0.062),
    "paper: stripes": (0.055, 0.062),
    "chaotic (R 1.08)": (0.014, 0.054),
    "chaotic (R 1.21)": (0.010, 0.047),
    "chaotic (R 4.7)": (0.020, 0.045),
    "dies": (0.020, 0.070),
    "Munafo: clovers": (0.058, 0.063),
    "Munafo: clovers, loops": (0.046, 0.063),
    "Munafo: Hilbert loop": (0.062, 0.063),
}
"""Points marked on the maps: the paper's two settings; the regimes measured for issue 12 at
20,000 steps; examples named in R. Munafo's Gray-Scott glossary (xmorphia)."""

CLASSES = ("died", "uniform", "non-stationary", "none", "spots", "stripes", "mixed")
"""point classes: v vanished everywhere; v uniform but not 0 (a homogeneous steady state: both
norms vanish there too, so R is undefined at the end); a state still changing; the stationary
patterns by shape"""

NUMERIC = ("F", "k", "M_react", "M_diff", "R", "final_R", "residual", "variability", "mean_v", "wavelength",
           "spectral_entropy", "components", "mean_area", "elongation", "elongated_fraction", "diverged_step")
TEXT = ("label", "class", "degenerate")
COLUMNS = ("index", *NUMERIC[:2], "class", *NUMERIC[2:], "label", "degenerate")


def parse_range(text: str, name: str) -> np.ndarray:
    """``START:STOP:COUNT`` -> COUNT evenly spaced values from START to STOP (COUNT 1: START)."""
    parts = str(text).split(":")
    try:
        start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        if len(parts) != 3:
            raise ValueError
    except (ValueError, IndexError):
        raise ConfigError(f"{name} must be START:STOP:COUNT (e.g. 0.01:0.10:32), got {text!r}") from None
    if not (math.isfinite(start) and math.isfinite(stop)) or not 0 <= start <= stop <= 1:
        raise ConfigError(f"{name} = {text!r}: need 0 <= START <= STOP <= 1")
    if not 1 <= count <= 1024:
        raise ConfigError(f"{name} = {text!r}: COUNT must be in [1, 1024], got {count}")
    if count > 1 and start == stop:
        raise ConfigError(f"{name} = {text!r}: START == STOP with COUNT > 1 repeats one value")
    return np.linspace(start, stop, count) if count > 1 else np.array([start])


@dataclass(frozen=True)
class SweepConfig:
    """The grid of (F, k) points and how each point is run and judged."""

    F: str = "0.01:0.10:32"
    """feed rates, START:STOP:COUNT (COUNT values, both ends included)"""
    k: str = "0.045:0.07:32"
    """kill rates, START:STOP:COUNT"""
    steps: int = setting(20000, low=1, high=10**9)
    """explicit Euler steps per point"""
    model: GrayScott = field(default_factory=lambda: GrayScott(size=64, length=0.64))
    """grid, spacing, time step and diffusion of every point (its own F and k are replaced by the grid's)"""
    seed: int = seed_setting()
    """seed of the Pearson start (the same start for every point)"""
    samples: int = setting(40, low=1, high=10**5)
    """how many times the mean of v is recorded over the run"""
    tail: float = setting(0.25, low=0, high=1, open=(True, False))
    """share of the run, at its end, over which the variability of the mean of v is measured"""
    stationary_tol: float = setting(1e-3, low=0, high=1, open=(True, True))
    """a point is stationary when its final relative residual and that variability are below this"""
    tile: int = setting(0, low=0, high=4096)
    """points per task (0: about four tasks per worker, at most 256 points each)"""
    thumbnail: int = setting(32, low=1, high=4096)
    """side of the v thumbnail kept per point (must divide size)"""

    def __post_init__(self) -> None:
        validate(self)
        Fs, ks = self.F_values, self.k_values
        if self.samples > self.steps:
            raise ConfigError(f"samples = {self.samples} exceeds steps = {self.steps}")
        if self.model.size % self.thumbnail:
            raise ConfigError(f"thumbnail = {self.thumbnail} must divide size = {self.model.size}")
        self.model_at(float(Fs[-1]), float(ks[-1]))  # a corner is a valid model (stability does not depend on F, k)

    @cached_property
    def F_values(self) -> np.ndarray:
        return parse_range(self.F, "F")

    @cached_property
    def k_values(self) -> np.ndarray:
        return parse_range(self.k, "k")

    def model_at(self, F: float, k: float) -> Any:
        return replace(self.model, F=F, k=k)

    @property
    def n_points(self) -> int:
        return len(self.F_values) * len(self.k_values)

    def point(self, index: int) -> tuple[float, float]:
        """(F, k) of a point; points run over k fastest."""
        nk = len(self.k_values)
        return float(self.F_values[index // nk]), float(self.k_values[index % nk])

    def model_of(self, index: int) -> Any:
        """The Gray-Scott model of point ``index``."""
        return self.model_at(*self.point(index))

    def digest(self) -> str:
        """A short hash of the settings that change the numbers (not the tiling)."""
        d = {k: v for k, v in asdict(self).items() if k != "tile"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# ---- one tile: pure and deterministic ------------------------------------------------------


def run_tile(cfg: SweepConfig, indices: list[int]) -> dict[str, Any]:
    """Run the points ``indices`` together in one batched kernel; return their records as
    columns (one entry per point, in the order given) plus thumbnails."""
    from rdlens.systems.grayscott import model as grayscott
    from rdlens.measures import patterns
    from rdlens.core import threads
    from rdlens.core.balance import BalanceTrace

    models = [cfg.model_of(i) for i in indices]
    u0, v0 = grayscott.pearson_init(models[0], cfg.seed)
    b = len(models)
    stepper = grayscott.BatchStepper(models, np.broadcast_to(u0, (b, *u0.shape)), np.broadcast_to(v0, (b, *v0.shape)))
    chunks = np.diff(np.linspace(0, cfg.steps, cfg.samples + 1).round().astype(int))
    norms, means = [], []
    with threads.stage("sweep tile", parallel=False):  # one worker per core: one thread each
        for n in chunks:
            norms.append(stepper.advance(int(n)))
            means.append(stepper.v.reshape(b, -1).mean(axis=1))
    norms_all = np.concatenate(norms, axis=1)
    means_all = np.stack(means, axis=1)
    tail_from = cfg.samples - max(2, int(round(cfg.tail * cfg.samples)))
    out: dict[str, list] = {name: [] for name in (*NUMERIC, *TEXT)}
    thumbs = []
    for j, (i, m) in enumerate(zip(indices, models)):
        tr = BalanceTrace.from_series(norms_all[j, :, 0], norms_all[j, :, 1], extra={"residual": norms_all[j, :, 2]})
        v = stepper.v[j]
        tail = means_all[j, max(0, tail_from):]
        mean_v = float(tail.mean())
        variability = float(tail.std() / abs(mean_v)) if mean_v != 0 else float("nan")
        last_r = tr.reaction[-1]
        ends_vanished = math.isnan(tr.final_R)  # a ratio of two vanishing norms is no number
        residual = float(tr.extra["residual"][-1] / last_r) if last_r > 0 and not ends_vanished else float("nan")
        measures = patterns.measure(v, m.length) if np.all(np.isfinite(v)) else {
            "wavelength": math.nan, "spectral_entropy": math.nan, "components": 0, "mean_area": math.nan,
            "elongation": math.nan, "elongated_fraction": math.nan, "label": "none"}
        degenerate = tr.degenerate or (f"diverged at step {stepper.failed[j]}" if stepper.failed[j] else None)
        stationary = residual < cfg.stationary_tol and variability < cfg.stationary_tol
        if degenerate:
            cls = "died" if not abs(mean_v) > 1e-9 else "uniform"
        else:
            cls = measures["label"] if stationary else "non-stationary"
        row = {"F": m.F, "k": m.k, "M_react": tr.M_react, "M_diff": tr.M_diff, "R": tr.R, "final_R": tr.final_R,
               "residual": residual, "variability": variability, "mean_v": mean_v,
               "diverged_step": int(stepper.failed[j]), **{k: measures[k] for k in measures if k != "label"},
               "label": measures["label"], "class": cls, "degenerate": degenerate or ""}
        for name in out:
            out[name].append(row[name])
        t = cfg.model.size // cfg.thumbnail
        thumbs.append(v.reshape(cfg.thumbnail, t, cfg.thumbnail, t).mean(axis=(1, 3)).astype(np.float32))
    cols: dict[str, Any] = {name: np.asarray(out[name], dtype=np.float64) for name in NUMERIC}
    cols.update({name: np.asarray(out[name], dtype=str) for name in TEXT})
    cols["index"] = np.asarray(indices, dtype=np.int64)
    cols["thumbnail"] = np.stack(thumbs)
    return cols


# ---- the folder: tiles, table, figures ------------------------------------------------------


def tiles(cfg: SweepConfig, workers: int) -> list[list[int]]:
    """The points of ``cfg`` cut into tasks (see ``SweepConfig.tile``)."""
    n = cfg.n_points
    size = cfg.tile or max(1, min(256, math.ceil(n / (4 * max(1, workers)))))
    return [list(range(s, min(n, s + size))) for s in range(0, n, size)]


def _tile_path(folder: Path, first: int) -> Path:
    return folder / "tiles" / f"points-{first:07d}.npz"


def _write_tile(folder: Path, cols: dict[str, Any]) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, **cols)
    atomic_write_bytes(_tile_path(folder, int(cols["index"][0])), buf.getvalue())


def _read_tile(path: Path, expected: list[int]) -> dict[str, Any] | None:
    """A finished tile's columns, or None if the file is absent, damaged or for other points."""
    try:
        with np.load(path, allow_pickle=False) as z:
            cols = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None
    if list(cols.get("index", [])) != expected or any(k not in cols for k in (*NUMERIC, *TEXT, "thumbnail")):
        return None
    return cols


def _fmt(x: Any) -> str:
    if isinstance(x, (float, np.floating)):
        return "" if math.isnan(x) else repr(float(x))
    return str(x)


def table_csv(cols: dict[str, Any]) -> str:
    """points.csv from all points' columns (ordered by index): exact float repr, '' for nan."""
    order = np.argsort(cols["index"])
    lines = [",".join(COLUMNS)]
    for i in order:
        lines.append(",".join(_fmt(cols[c][i]) if c != "index" else str(int(cols[c][i])) for c in COLUMNS))
    return "\n".join(lines) + "\n"


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """All points' columns. A died or uniform point ends with both norms at roundoff level: its
    final R (a ratio of two such numbers, 1e5 at two points of the default sweep) is undefined,
    in the table, the summary and the maps alike, whichever rdlens computed its tile."""
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cols["final_R"] = np.where(np.isin(cols["class"], ["died", "uniform"]), np.nan, cols["final_R"])
    return cols


def reference_table(cfg: SweepConfig) -> str:
    """points.csv computed point by point in this process (one kernel call per point): the
    check that batching, tiling and workers change nothing."""
    return table_csv(_merge([run_tile(cfg, [i]) for i in range(cfg.n_points)]))


# ---- running on Dask ------------------------------------------------------------------------


def run_sweep(
    cfg: SweepConfig,
    folder: str | os.PathLike,
    *,
    client: Any = None,
    scheduler: str | None = None,
    workers: int | None = None,
    bars: Callable[[str, int], Any] | None = None,
    on_tile: Callable[[int, Any], None] | None = None,
    dpi: int | None = None,
) -> dict[str, Any]:
    """Compute every missing tile of ``folder`` on Dask (``client``, or a cluster at
    ``scheduler``, or an embedded LocalCluster of ``workers`` processes), then write the
    table, figures and summary. Returns the summary. ``on_tile(done, client)`` is called after
    each tile is saved (tests use it to kill a worker or interrupt). ``dpi`` sets the
    resolution of the PNG maps (:func:`check_dpi`; the SVGs are vector)."""
    folder = Path(folder)
    dpi = check_dpi(dpi)
    check_writable(folder)
    connected = None
    if client is None and scheduler is not None:  # an unreachable scheduler is refused before the folder exists
        connected, _ = dask_client(scheduler, workers or 1, "sweep")
        client = connected
    try:
        return _sweep(cfg, folder, client, workers, bars, on_tile, dpi)
    finally:
        if connected is not None:
            connected.close()


def _sweep(cfg: SweepConfig, folder: Path, client: Any, workers: int | None, bars: Callable[[str, int], Any] | None,
           on_tile: Callable[[int, Any], None] | None, dpi: int | None = None) -> dict[str, Any]:
    """:func:`run_sweep` once the scheduler, if one was named, is connected."""
    from rdlens.core.study import claim

    hint = f"resume it with --resume {folder} (and no settings) or choose another --out"
    with claim(folder, "sweep", asdict(cfg), hint=hint, complete=lambda saved: asdict(from_json(saved))) as study:
        return _sweep_claimed(cfg, study, client, workers, bars, on_tile, dpi)


def _sweep_claimed(cfg: SweepConfig, study: Any, client: Any, workers: int | None,
                   bars: Callable[[str, int], Any] | None, on_tile: Callable[[int, Any], None] | None,
                   dpi: int | None = None) -> dict[str, Any]:
    """:func:`run_sweep` once the folder is claimed (:mod:`rdlens.core.study`): tiles are its stages."""
    from rdlens.core.progress import no_bars
    from rdlens.core.threads import available_cores

    folder = study.folder
    workers = workers or available_cores()
    plan_file = folder / "tiles.json"
    try:  # the tiling of the first run, so that a resume with other workers reuses its tiles
        plan = json.loads(plan_file.read_text())["tiles"]
        if sorted(i for t in plan for i in t) != list(range(cfg.n_points)):
            raise ValueError("the saved tiles do not cover the grid")
    except (OSError, ValueError, KeyError, TypeError):
        plan = tiles(cfg, workers)
        write_json(plan_file, {"tiles": plan})
    done = {t[0]: c for t in plan if (c := _read_tile(_tile_path(folder, t[0]), t)) is not None}
    todo = [t for t in plan if t[0] not in done]
    scheduler = None
    if todo:
        check_memory("one sweep task", 8 * 8 * cfg.model.size**2 * len(todo[0]))
        own = None
        if client is None:
            client, own = dask_client(None, workers, "sweep")
        scheduler = "embedded LocalCluster" if own is not None else client.scheduler.address
        try:
            _compute(cfg, study, todo, client, bars or no_bars, on_tile, len(plan) - len(todo), cfg.n_points)
        except KeyboardInterrupt:
            n_done = sum(1 for t in plan if _tile_path(folder, t[0]).exists())
            raise RunInterrupted(f"interrupted with {n_done} of {len(plan)} tasks saved; finish with: "
                                 f"rdlens sweep --resume {folder}") from None
        finally:
            if own is not None:
                client.close()
                own.close()
        done.update({t[0]: _read_tile(_tile_path(folder, t[0]), t) for t in todo})
    return _finish(cfg, study, [done[t[0]] for t in plan], len(todo), len(plan), scheduler, workers, dpi)


def _placed_tile(cfg: SweepConfig, indices: list[int]) -> tuple[dict[str, Any], str, float]:
    """:func:`run_tile` on a worker, with where it ran and how long it took (for the manifest)."""
    from rdlens.studies.tasks import _place

    t0 = time.perf_counter()
    cols = run_tile(cfg, indices)
    return cols, _place(), time.perf_counter() - t0


def _compute(cfg: SweepConfig, study: Any, todo: list[list[int]], client: Any, bars: Any,
             on_tile: Callable[[int, Any], None] | None, already: int, n_points: int) -> None:
    from dask.distributed import as_completed

    import uuid

    key = f"{cfg.digest()}-{uuid.uuid4().hex[:8]}"  # unique per call: a cancelled key is not reused
    futures = [client.submit(_placed_tile, cfg, t, key=f"rdlens-sweep-{key}-{t[0]}", retries=5, pure=False)
               for t in todo]
    count = 0
    try:
        with bars("sweep (points)", n_points) as bar:
            bar.update(n_points - sum(len(t) for t in todo))
            for fut in as_completed(futures):
                cols, place, seconds = fut.result()
                _write_tile(study.folder, cols)
                name = f"tile {int(cols['index'][0])}"
                study.where[name], study.timings[name] = place, seconds
                count += 1
                bar.update(len(cols["index"]))
                if on_tile is not None:
                    on_tile(already + count, client)
    finally:
        for f in futures:
            f.cancel()


def to_json(cfg: SweepConfig) -> dict[str, Any]:
    """The sweep's config.json."""
    return {"study": "sweep", **asdict(cfg)}


def from_json(saved: dict[str, Any]) -> SweepConfig:
    """The settings of a saved sweep (its config.json, also as an older rdlens wrote it)."""
    from rdlens.core.options import from_dict

    return from_dict(SweepConfig, {k: v for k, v in saved.items() if k not in ("system", "study")})


OPTION_HIDDEN = ("model.F", "model.k")
"""the model's own F and k are not settings of a sweep (the grid gives them)"""


def _finish(cfg: SweepConfig, study: Any, parts: list[dict[str, Any]], computed: int, total: int,
            scheduler: str | None, workers: int, dpi: int | None = None) -> dict[str, Any]:
    folder = study.folder
    cols = _merge(parts)
    _publish(cfg, folder, cols, dpi)
    stationary = cols["class"] != "non-stationary"
    alive = ~np.isin(cols["class"], ["died", "uniform"])
    near = np.abs(cols["final_R"] - 1) < 1e-3
    summary = {
        "points": int(len(cols["index"])),
        "classes": {c: int((cols["class"] == c).sum()) for c in CLASSES},
        "stationary_points": int((stationary & alive).sum()),
        "non_stationary_points": int((~stationary).sum()),
        "degenerate_points": int((~alive).sum()),
        "fraction_final_R_within_1e-3_of_1_stationary": _fraction(near, stationary & alive),
        "fraction_final_R_within_1e-3_of_1_non_stationary": _fraction(near, ~stationary),
        "tasks": total, "tasks_computed_now": computed, "wall_time_s": time.perf_counter() - study.started,
        "config_digest": cfg.digest(),
    }
    published = ["points.csv", "thumbnails.npz", "maps.png", "maps.svg", "mosaic.png", "mosaic.svg", "tiles.json"]
    published += [str(p.relative_to(folder)) for p in (folder / "tiles").glob("points-*.npz")]
    return study.finish(summary, published, seed=cfg.seed, device="cpu", kernel="numba batched stencil",
                        scheduler=scheduler, workers=workers)


DPI_RANGE = (50, 1200)
"""allowed resolutions of the PNG maps, dots per inch"""


def check_dpi(dpi: Any) -> int | None:
    """``dpi`` if it is a whole number in :data:`DPI_RANGE` (None: the figures' own, 110)."""
    if dpi is None:
        return None
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not DPI_RANGE[0] <= dpi <= DPI_RANGE[1]:
        raise ConfigError(f"dpi must be a whole number in [{DPI_RANGE[0]}, {DPI_RANGE[1]}], got {dpi!r}")
    return dpi


def _publish(cfg: SweepConfig, folder: Path, cols: dict[str, Any], dpi: int | None = None) -> None:
    """Write the sweep's table, thumbnails and figures from all points' columns."""
    atomic_write_text(folder / "points.csv", table_csv(cols))
    buf = io.BytesIO()
    np.savez_compressed(buf, index=cols["index"], F=cols["F"], k=cols["k"], thumbnail=cols["thumbnail"])
    atomic_write_bytes(folder / "thumbnails.npz", buf.getvalue())
    plot_maps(cfg, cols, folder / "maps", dpi=dpi)
    plot_mosaic(cfg, cols, folder / "mosaic.png", dpi=dpi)


def rebuild(folder: str | os.PathLike, dpi: int | None = None) -> dict[str, Any]:
    """``rdlens report`` of a sweep: rewrite its table and figures from its verified tiles
    (recomputing nothing, :func:`rdlens.core.study.rebuilt`), the PNGs at ``dpi``; return its summary."""
    from rdlens.core.study import rebuilt

    folder = Path(folder)
    dpi = check_dpi(dpi)
    with rebuilt(folder, "sweep") as job:
        cfg = from_json(job.config)
        plan = json.loads((folder / "tiles.json").read_text())["tiles"]
        _publish(cfg, folder, _merge([_read_tile(_tile_path(folder, t[0]), t) for t in plan]), dpi)
    return job.summary


def _fraction(mask: np.ndarray, among: np.ndarray) -> float | None:
    n = int(among.sum())
    return float((mask & among).sum() / n) if n else None


# ---- figures ----------------------------------------------------------------------------------


def _grid(cfg: SweepConfig, cols: dict[str, Any], name: str) -> np.ndarray:
    out = np.full(cfg.n_points, np.nan)
    out[cols["index"]] = cols[name]
    return out.reshape(len(cfg.F_values), len(cfg.k_values))


def _axes_extent(cfg: SweepConfig) -> list[float]:
    from rdlens.plot import fk_extent

    return fk_extent(cfg.F_values, cfg.k_values)


def _mark(ax: Any, cfg: SweepConfig) -> None:
    """The named points, labelled in legible type on a white ground, left or right of the point
    so that neighbours do not overlap."""
    ext = _axes_extent(cfg)
    ax.set_xlim(ext[0], ext[1])
    ax.set_ylim(ext[2], ext[3])
    inside = [(name, F, k) for name, (F, k) in NAMED_POINTS.items() if ext[0] <= k <= ext[1] and ext[2] <= F <= ext[3]]
    placed: dict[bool, list[float]] = {True: [], False: []}  # label heights (points) taken, per side
    points_per_F = ax.get_window_extent().height * 72 / ax.figure.dpi / (ext[3] - ext[2])
    for name, F, k in sorted(inside, key=lambda p: (p[1], p[2])):
        paper = name.startswith("paper")
        ax.plot(k, F, marker="*" if paper else "o", ms=10 if paper else 5, mfc="w" if paper else "none",
                mec="k", mew=0.9)
        right = (k - ext[0]) < 0.6 * (ext[1] - ext[0])
        y = max(F * points_per_F, ext[2] * points_per_F + 11)  # a label 6 pt below its point stays inside
        for taken in sorted(placed[right]):  # lift a label clear of the ones below it on its side
            if abs(y - taken) < 10:
                y = taken + 10
        placed[right].append(y)
        ax.annotate(name, (k, F), xytext=(6 if right else -6, y - F * points_per_F - 6),
                    textcoords="offset points", fontsize=7, ha="left" if right else "right", va="center",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})


def _final_R_panel(fig: Any, ax: Any, data: np.ndarray, ext: list[float]) -> None:
    """final R on a diverging scale centred on 1 (log), its range the 90th percentile of
    |log10 final R| (outliers drawn at the ends and marked x), undefined points grey."""
    import matplotlib as mpl
    from matplotlib.colors import TwoSlopeNorm

    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(data > 0, np.log10(data), np.nan)
    finite = np.abs(logs[np.isfinite(logs)])
    half = max(float(np.percentile(finite, 90)) if finite.size else 0.0, 1e-4)
    cmap = mpl.colormaps["RdBu_r"].with_extremes(bad="#b0b0b0")
    im = ax.imshow(np.clip(logs, -half, half), origin="lower", extent=ext, aspect="auto", cmap=cmap,
                   norm=TwoSlopeNorm(vcenter=0.0, vmin=-half, vmax=half), interpolation="nearest")
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, extend="both")
    ticks = np.linspace(-half, half, 5)
    bar.set_ticks(ticks, labels=[f"{10 ** t:.4g}" for t in ticks], fontsize=7)
    rows, cols = np.nonzero(np.isfinite(logs) & (np.abs(logs) > half))
    if len(rows):
        ks = ext[0] + (cols + 0.5) * (ext[1] - ext[0]) / data.shape[1]
        Fs = ext[2] + (rows + 0.5) * (ext[3] - ext[2]) / data.shape[0]
        ax.plot(ks, Fs, "x", color="k", ms=4, mew=0.8, label=f"{len(rows)} outside the colour range")
        ax.legend(fontsize=7, loc="upper right")
    undefined = int(np.isnan(data).sum())
    ax.set_title(f"final R (log scale centred on 1; grey: undefined, {undefined} points)", fontsize=9)


def plot_maps(cfg: SweepConfig, cols: dict[str, Any], stem: Path, dpi: int | None = None) -> None:
    """log10 |R - 1|, final R, the final relative residual and the class over (F, k); the PNG
    at ``dpi`` (default 110)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    from rdlens.plot import fk_map, pyplot, save_formats

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 9), dpi=110)
    ext = _axes_extent(cfg)
    with np.errstate(divide="ignore", invalid="ignore"):
        panels = [
            ("log10 |R - 1|", np.log10(np.abs(_grid(cfg, cols, "R") - 1)), "viridis", None),
            ("final ||dv/dt|| / ||reaction|| (log)", _grid(cfg, cols, "residual"), "cividis", "log"),
        ]
    _final_R_panel(fig, axes[0, 1], _grid(cfg, cols, "final_R"), ext)
    for ax, (title, data, cmap, scale) in zip((axes[0, 0], axes[1, 0]), panels):
        fk_map(data, cfg.F_values, cfg.k_values, ax, title=title, cmap=cmap, log=scale == "log")
    classes = np.full(cfg.n_points, -1.0)
    classes[cols["index"]] = [CLASSES.index(c) for c in cols["class"]]
    colors = ["#222222", "#8c564b", "#d62728", "#dddddd", "#1f77b4", "#2ca02c", "#9467bd"]
    cmap = ListedColormap(colors)
    im = axes[1, 1].imshow(classes.reshape(len(cfg.F_values), -1), origin="lower", extent=ext, aspect="auto",
                           cmap=cmap, norm=BoundaryNorm(np.arange(-0.5, len(CLASSES)), cmap.N), interpolation="nearest")
    bar = fig.colorbar(im, ax=axes[1, 1], fraction=0.046, pad=0.03, ticks=range(len(CLASSES)))
    bar.ax.set_yticklabels(CLASSES, fontsize=7)
    axes[1, 1].set_title("class (stationary patterns by shape)", fontsize=9)
    for ax in axes.flat:
        _mark(ax, cfg)
        ax.set_xlabel("kill rate k")
        ax.set_ylabel("feed rate F")
    fig.suptitle(f"Gray-Scott (F, k) sweep: {cfg.n_points} points, {cfg.steps} steps, {cfg.model.size}x{cfg.model.size} grid, "
                 f"h = {cfg.model.h:g}", fontsize=10)
    fig.tight_layout()
    save_formats(fig, stem, dpi=dpi)


def plot_mosaic(cfg: SweepConfig, cols: dict[str, Any], path: Path, dpi: int | None = None) -> Path:
    """Every point's v thumbnail in its place on the (F, k) grid (F up, k to the right)."""
    from rdlens.plot import pyplot
    from rdlens.core.rundir import save_figure

    nF, nk, t = len(cfg.F_values), len(cfg.k_values), cfg.thumbnail
    canvas = np.full((nF * (t + 1), nk * (t + 1)), np.nan, dtype=np.float32)
    for i, thumb in zip(cols["index"], cols["thumbnail"]):
        r, c = divmod(int(i), nk)
        canvas[r * (t + 1): r * (t + 1) + t, c * (t + 1): c * (t + 1) + t] = thumb
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(max(6, nk * 0.35), max(5, nF * 0.35)), dpi=110)
    im = ax.imshow(canvas, origin="lower", cmap="viridis", extent=_axes_extent(cfg), aspect="auto",
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, label="v")
    ax.set_xlabel("kill rate k")
    ax.set_ylabel("feed rate F")
    ax.set_title(f"v at step {cfg.steps} for every (F, k)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, **({"dpi": dpi} if dpi else {}))


def new_folder(out: str | os.PathLike | None) -> Path:
    """A fresh folder for a sweep: ``OUT/sweep-TIME``."""
    from rdlens.systems.run import default_runs_root

    return RunDir.create(out or default_runs_root(), f"sweep-{timestamp()}").path
