"""Turing patterns made by Gray-Scott, by a DDPM and by a convolutional LSTM, compared.

``rdlens patterns`` (see :func:`run_study`) is the one experiment in which the three systems
work on the same data:

- ground truth: Gray-Scott at several (F, k) (spots, stripes and mixtures between the
  paper's two settings) from seeded Pearson starts (:func:`rdlens.systems.grayscott.model.pearson_spots`),
  run to near stationarity, u and v kept; and Gray-Scott trajectories sampled every
  ``frame_every`` steps, for the LSTM;
- a DDPM trained on the stationary states as 2-channel (u, v) images (circular padding;
  optionally conditioned on each field's (F, k) and with a Gray-Scott physics term in its loss),
  sampled with the instrumented reverse process;
- a convolutional LSTM (:mod:`rdlens.systems.convlstm.model`) trained for next-frame prediction on the
  trajectories, conditioned on (F, k), rolled out on its own from starts it never saw for the
  training horizon and for ``long_factor`` times longer.

Every field goes through the same measures (:mod:`rdlens.measures.patterns`): wavelength, spectral
entropy, components, elongation, label; and stability: the relative residual under the true
dynamics and the correlation of the pattern with itself after ``continue_steps`` more
Gray-Scott steps. An unconditioned DDPM sample has no (F, k): it is judged at the ground-truth
setting under which its residual is smallest (its best case), and that assignment is its
"class mix"; a conditioned one is judged at the setting it was drawn at.

The study folder holds one sub-folder per stage, each finished by a summary.json with the
checksums of its files (a stage is redone unless that verifies); the tables and figures are
written from those, and the folder's own summary.json last.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rdlens.measures import patterns as P
from rdlens.studies import ablation as A
from rdlens.measures.patterns import SYSTEMS, TITLES, from_unit, to_unit
from rdlens.core.balance import BalanceTrace, bootstrap_interval, combine, correlation_interval, t_interval
from rdlens.systems.convlstm.model import SEED_OFFSETS as CONVLSTM_SEED_OFFSETS
from rdlens.systems.convlstm.model import ConvLSTMConfig, Trajectories
from rdlens.systems.ddpm.model import FIELDS, DDPMConfig
from rdlens.core.errors import ConfigError, SimulationDiverged, check_memory
from rdlens.core.options import seed_setting, setting, validate
from rdlens.systems.grayscott.model import GrayScott
from rdlens.core.rundir import atomic_write_text, save_npz, write_json
from rdlens.core.study import claim, finish_stage, fresh_stage, stage_done

OPTION_HIDDEN = ("data.model.F", "data.model.k")
"""each setting gives its own F and k"""
STEADY_RESIDUAL = 0.05
"""a pattern counts as a steady state when its relative residual is below this ..."""
STEADY_CORRELATION = 0.9
"""... and it correlates at least this well with itself after continue_steps more steps"""
MIN_CONTRAST = 0.05
"""a field whose v spans less than this (Gray-Scott patterns here span ~0.35) is uniform: label none"""
SEED_OFFSETS = {"ground-truth": 1_000_000, "training-fields": 4_000_000, **CONVLSTM_SEED_OFFSETS}
"""the Pearson starts of each use come from disjoint seed ranges: no rollout start was seen in
training (the trajectories and rollouts seeded as for the ConvLSTM run alone)"""

Bars = Callable[[str, int], Any]


def _study_ddpm() -> DDPMConfig:
    """The DDPM of the study: the ``default`` preset's small U-Net on 2-channel (u, v) fields
    with circular padding, 3000 steps, 32 samples."""
    from rdlens.systems.ddpm.unet import UNetConfig

    return DDPMConfig(dataset=FIELDS, unet=UNetConfig(in_channels=2, image_size=32, channels=(16, 32, 64),
                                                      attention=(2,), padding="circular"),
                      steps=3000, batch_size=32, lr=1e-3, ema=0.995, samples=32)


DDPM_DERIVED = ("dataset", "data_dir", "unet.in_channels", "unet.image_size", "seed", "setting", "checkpoint_every",
                "max_images", "turing_images", "grid_every", "track_every", "pixels")
"""what the study sets in its DDPM's config: the data are its fields, the grid its grid, the seed each seed's"""
CONVLSTM_DERIVED = ("data", "seed")
"""what the study sets in its ConvLSTM's config: the trajectories are its own, the seed each seed's"""


@dataclass(frozen=True)
class PatternsConfig:
    """Ground truth, the two learned systems and the measures of one patterns study."""

    data: Trajectories = field(default_factory=lambda: Trajectories(
        settings="0.029:0.062,0.035:0.062,0.046:0.062,0.055:0.062"))
    """the (F, k) settings (default: the paper's spots and stripes at k = 0.062 and two mixtures
    between them), the grid, the starts, the trajectories the ConvLSTM learns from and the
    unseen starts it rolls out from, as for rdlens convlstm"""
    patterns: int = setting(32, low=1, high=10**5)
    """stationary ground-truth patterns per setting (the DDPM's training set)"""
    steps: int = setting(30000, low=1, high=10**8)
    """Gray-Scott steps to (near) stationarity of each ground-truth pattern"""
    continue_steps: int = setting(2000, low=1, high=10**8)
    """Gray-Scott steps each pattern is continued for the stability test"""
    seed: int = seed_setting()
    """first seed of the learned systems; the ground truth's starts derive from it too"""
    seeds: int = setting(1, low=1, high=100)
    """independently trained DDPMs and LSTMs (seed, seed + 1, ...)"""
    train_size: int = setting(0, low=0, high=8192)
    """grid points per side of the fields the DDPM and the ConvLSTM learn from, at the study's
    spacing h (0: the study's grid). Both networks are convolutional on a torus, so they can learn
    on a smaller periodic domain and then draw and roll out on the study's grid, judged there"""
    ddpm: DDPMConfig = field(default_factory=_study_ddpm,
                             metadata={"prefix": "ddpm_", "hidden": DDPM_DERIVED,
                                       "renames": {"schedule.kind": "schedule"}})
    """the DDPM (rdlens ddpm's settings, --ddpm-NAME here)"""
    convlstm: ConvLSTMConfig = field(default_factory=ConvLSTMConfig,
                                     metadata={"prefix": "convlstm_", "hidden": CONVLSTM_DERIVED})
    """the ConvLSTM (rdlens convlstm's settings, --convlstm-NAME here)"""

    def __post_init__(self) -> None:
        from rdlens.core.errors import check_seed

        validate(self)
        self.setting_pairs  # noqa: B018 - parses and checks
        check_seed(self.seed + self.seeds - 1 + max(SEED_OFFSETS.values()) + 10**5)
        if self.ddpm.unet.conditions not in (0, 2):
            raise ConfigError(f"ddpm_conditions must be 0 (unconditioned) or 2 (each field's F and k), "
                              f"got {self.ddpm.unet.conditions}")
        if self.ddpm.samples < 2:
            raise ConfigError(f"ddpm_samples must be at least 2 (the measures compare samples), got {self.ddpm.samples}")
        # the systems' configs as the study runs them (its grid, its trajectories, its first seed),
        # so that config.json shows what ran; building them checks that the U-Net fits the grid
        # and the ConvLSTM's window the trajectories
        if self.train_size and not 8 <= self.train_size <= self.data.model.size:
            raise ConfigError(f"train_size must be 0 (the study's grid) or in [8, {self.data.model.size}] (the "
                              f"study's grid, --size), got {self.train_size}")
        object.__setattr__(self, "ddpm", self._derived_ddpm())
        levels = 2 ** (len(self.ddpm.unet.channels) - 1)
        if self.data.model.size % levels:  # the DDPM draws on the study's grid
            raise ConfigError(f"size must be divisible by {levels} (the DDPM's {levels}-fold downsampling), "
                              f"got {self.data.model.size}")
        object.__setattr__(self, "convlstm", self._derived_convlstm())
        for F, k in self.setting_pairs:
            self.model_at(F, k)

    @property
    def setting_pairs(self) -> list[tuple[float, float]]:
        return P.parse_settings(self.data.settings)

    def model_at(self, F: float, k: float) -> GrayScott:
        return replace(self.data.model, F=F, k=k)

    @property
    def long_frames(self) -> int:
        return self.data.long_frames

    @property
    def learn_model(self) -> GrayScott:
        """The grid the learned systems train on: the study's, or ``train_size`` cells at its spacing."""
        m = self.data.model
        if not self.train_size or self.train_size == m.size:
            return m
        return replace(m, size=self.train_size, length=m.h * self.train_size)

    @property
    def separate_training_fields(self) -> bool:
        """Whether the DDPM learns from fields of their own (on the smaller training grid)."""
        return self.train_size not in (0, self.data.model.size)

    def _derived_ddpm(self) -> DDPMConfig:
        """The DDPM on this study's grid and first seed."""
        from rdlens.training import checkpoint_every

        return replace(self.ddpm, seed=self.seed, checkpoint_every=checkpoint_every(self.ddpm.steps),
                       unet=replace(self.ddpm.unet, image_size=self.learn_model.size))

    def _derived_convlstm(self) -> ConvLSTMConfig:
        """The ConvLSTM on this study's trajectories (on the training grid) and first seed."""
        return replace(self.convlstm, seed=self.seed, data=replace(self.data, model=self.learn_model))

    def ddpm_config(self, seed: int) -> DDPMConfig:
        """The DDPM of training seed ``seed``."""
        return replace(self.ddpm, seed=seed)

    def convlstm_config(self, seed: int) -> ConvLSTMConfig:
        """The ConvLSTM of training seed ``seed``."""
        return replace(self.convlstm, seed=seed)

    def memory_bytes(self) -> float:
        """Peak memory estimate: the fields kept (float64 ground truth, float32 trajectories
        and rollouts) and the networks' activations."""
        cells = 2 * self.data.model.size**2
        n = len(self.setting_pairs)
        kept = (n * self.patterns * cells * 8 + n * self.data.trajectories * (self.data.frames + 1) * cells * 4
                + 3 * n * self.data.rollouts * (self.long_frames + 1) * cells * 4)
        lstm = self.convlstm_config(self.seed).memory_bytes()
        width = max(self.ddpm.unet.channels)
        unet = 40 * self.ddpm.batch_size * self.data.model.size**2 * width * 4
        sample = 40 * min(self.ddpm.samples, 256) * self.data.model.size**2 * width * 4
        return kept + max(lstm, unet, sample)


def _starts(cfg: PatternsConfig, use: str, per_setting: int, model: GrayScott | None = None
            ) -> tuple[list[GrayScott], np.ndarray, np.ndarray, np.ndarray]:
    return P.starts(model or cfg.data.model, cfg.setting_pairs, cfg.seed + SEED_OFFSETS[use], per_setting,
                    cfg.data.start_squares)


def _stationary(cfg: PatternsConfig, use: str, model: GrayScott) -> dict[str, np.ndarray]:
    """``cfg.patterns`` Gray-Scott patterns per setting run ``cfg.steps`` steps from seeded starts
    on ``model``'s grid, with each one's balance."""
    models, u, v, seeds = _starts(cfg, use, cfg.patterns, model)
    (u_end, v_end, norms), = P.advance(models, u, v, cfg.steps)
    if not np.isfinite(v_end).all():
        raise SimulationDiverged("Gray-Scott ground truth", cfg.steps, "a field went NaN")
    traces = [BalanceTrace.from_series(n[:, 0], n[:, 1]) for n in norms]
    tau, r_tau = _curves(traces)
    return dict(u=u_end, v=v_end, F=np.array([m.F for m in models]), k=np.array([m.k for m in models]), seed=seeds,
                M_react=np.array([t.M_react for t in traces]), M_diff=np.array([t.M_diff for t in traces]),
                R=np.array([t.R for t in traces]), final_R=np.array([t.final_R for t in traces]), tau=tau, R_tau=r_tau)


def ground_truth(cfg: PatternsConfig, stage: Path) -> None:
    """Stationary patterns (fields.npz, with each one's balance), training trajectories
    (trajectories.npz) and the true continuation of the rollout starts (truth.npz); with a
    smaller training grid, the DDPM's own stationary patterns on it (training-fields.npz) and
    the trajectories on it."""
    fresh_stage(stage)
    t0 = time.perf_counter()
    fields = _stationary(cfg, "ground-truth", cfg.data.model)
    save_npz(stage / "fields.npz", **fields)
    if cfg.separate_training_fields:
        save_npz(stage / "training-fields.npz", **_stationary(cfg, "training-fields", cfg.learn_model))
    for use, per, frames, name, model in (
            ("trajectory", cfg.data.trajectories, cfg.data.frames, "trajectories.npz", cfg.learn_model),
            ("rollout", cfg.data.rollouts, cfg.long_frames, "truth.npz", cfg.data.model)):
        models, u, v, seeds = _starts(cfg, use, per, model)
        x, norms = P.trajectories(models, u, v, cfg.data.frame_every, frames)
        horizon = cfg.data.frame_every * cfg.data.frames
        R = {f"R_{part}": np.array([BalanceTrace.from_series(n[:upto, 0], n[:upto, 1]).R for n in norms])
             for part, upto in (("horizon", horizon), ("all", norms.shape[1]))}
        save_npz(stage / name, x=x, F=np.array([m.F for m in models]), k=np.array([m.k for m in models]), seed=seeds,
                 **R)
    finish_stage(stage, {"wall_time_s": time.perf_counter() - t0, "patterns": len(fields["F"])})


def _curves(traces: list[BalanceTrace], grid: int = 201) -> tuple[np.ndarray, np.ndarray]:
    c = combine(traces, grid=grid)
    return c.tau, np.stack([t.resample(c.tau)[1] for t in traces])


def steady_residual(cfg: PatternsConfig, F: np.ndarray, k: np.ndarray) -> Callable[[Any, Any], Any]:
    """The physics term of a DDPM's loss on the study's fields: for predicted clean fields
    (B, 2, N, N) in the networks' scale and their indices into (F, k), the mean square of what one
    explicit Gray-Scott step would change in them, in the same scale (0 at a steady state)."""
    import torch

    m = cfg.data.model
    Fs, ks = torch.as_tensor(F, dtype=torch.float32), torch.as_tensor(k, dtype=torch.float32)

    def lap(a: torch.Tensor) -> torch.Tensor:
        return (torch.roll(a, 1, -1) + torch.roll(a, -1, -1) + torch.roll(a, 1, -2) + torch.roll(a, -1, -2) - 4 * a) / m.h**2

    def residual(x0: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        u, v = (x0[:, 0] + 1) / 2, (x0[:, 1] + 1) * P.V_MAX / 2
        f, kk = Fs.to(x0.device)[idx].view(-1, 1, 1), ks.to(x0.device)[idx].view(-1, 1, 1)
        uvv = u * v * v
        du = m.dt * (m.Du * lap(u) - uvv + f * (1 - u)) * 2
        dv = m.dt * (m.Dv * lap(v) + uvv - (f + kk) * v) * 2 / P.V_MAX
        return (du**2 + dv**2).mean(dim=(-2, -1))

    return residual


def sample_settings(cfg: PatternsConfig, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """The (F, k) each conditioned DDPM sample is drawn at: the settings in turn."""
    pairs = cfg.setting_pairs
    return (np.array([pairs[j % len(pairs)][0] for j in range(samples)]),
            np.array([pairs[j % len(pairs)][1] for j in range(samples)]))


def stage_work(cfg: PatternsConfig, system: str) -> float:
    """Floating-point operations of one training stage, roughly, to start the longest first: the
    DDPM's training on the training grid and its samples on the study's; the ConvLSTM's
    unrolled frames in training (about three forward passes each, at the curriculum's mean
    window) and its rollouts. Each network's cost per image or frame is counted on one forward pass."""
    import torch

    from rdlens.core.torchutil import forward_flops
    from rdlens.systems.ddpm.unet import image_flops

    size, train = cfg.data.model.size, cfg.learn_model.size
    if system == "ddpm":
        d = cfg.ddpm
        return (3 * d.batch_size * d.steps * image_flops(d.unet, train)
                + d.samples * d.schedule.T * image_flops(d.unet, size))
    from rdlens.systems.convlstm.model import ConvLSTM

    c = cfg.convlstm
    n = len(cfg.setting_pairs)
    model = ConvLSTM(2, c.hidden, c.kernel, conditions=2)
    frame = forward_flops(model, torch.zeros(1, 1, 2, train, train), torch.zeros(1, 2))
    window = (c.window + (c.window_final or c.window)) / 2
    return frame * (3 * c.batch_size * c.steps * window + n * cfg.data.rollouts * cfg.long_frames * (size / train) ** 2)


def train_ddpm(cfg: PatternsConfig, seed: int, gt: Path, stage: Path, device: Any, title: str = "", *, bars: Bars,
               log: Callable[[str], None]) -> dict[str, float]:
    """Train the DDPM on the stationary (u, v) states (conditioned on each one's (F, k), with the
    physics term, when set) and sample it with the instrumented sampler; ``title`` names the
    stage (default: DDPM seed SEED)."""
    import torch

    from rdlens.core.rundir import save_losses
    from rdlens.systems.ddpm import model as ddpm

    fresh_stage(stage)
    t0 = time.perf_counter()
    with np.load(gt / ("training-fields.npz" if cfg.separate_training_fields else "fields.npz")) as f:
        images = torch.from_numpy(to_unit(f["u"], f["v"]))
        F, k = f["F"], f["k"]
    dcfg = cfg.ddpm_config(seed)
    conditioned = dcfg.unet.conditions > 0
    title = title or f"DDPM seed {seed}"
    with bars(f"{title}: training on (u, v)", dcfg.steps) as bar:
        result = ddpm.train(dcfg, images, str(stage), device=device, resume=True, progress=bar.update,
                            conditions=torch.from_numpy(P.conditions(F, k)) if conditioned else None,
                            physics=steady_residual(cfg, F, k) if dcfg.physics_weight else None)
    eps_model, at = result.ema_model, {}
    if conditioned:  # each sample at its own setting, so that it is judged there
        sF, sk = sample_settings(cfg, dcfg.samples)
        cond = torch.from_numpy(P.conditions(sF, sk)).to(device)
        eps_model, at = (lambda x, s: result.ema_model(x, s, cond)), {"F": sF, "k": sk}
    with bars(f"{title}: sampling", dcfg.schedule.T) as bar:
        out = ddpm.sample(eps_model, (dcfg.samples, 2, cfg.data.model.size, cfg.data.model.size), dcfg.schedule,
                          seed=seed + 2, device=device, progress=bar.update, sigma=dcfg.sigma,
                          last_step=dcfg.last_step)
    x = out.samples.double().cpu().numpy()
    if not np.isfinite(x).all():
        raise SimulationDiverged("DDPM sampling", dcfg.schedule.T, "a sample went NaN")
    save_npz(stage / "samples.npz", x=x.astype(np.float32), **at)
    out.trace.save(stage / "trace.csv")
    save_losses(stage / "losses.csv", result.losses)
    finish_stage(stage, {"wall_time_s": time.perf_counter() - t0, **out.trace.summary(), "seed": seed,
                         "steps": result.steps_done})
    return {title: time.perf_counter() - t0}


def train_lstm(cfg: PatternsConfig, seed: int, gt: Path, stage: Path, device: Any, title: str = "", *, bars: Bars,
               log: Callable[[str], None]) -> dict[str, float]:
    """Train the ConvLSTM (:func:`rdlens.systems.convlstm.model.train`) on the trajectories and roll it out
    from the unseen starts; ``title`` names the stage (default: ConvLSTM seed SEED)."""
    import torch

    from rdlens.systems.convlstm import model as convlstm
    from rdlens.core import threads
    from rdlens.core.rundir import save_losses

    fresh_stage(stage)
    t0 = time.perf_counter()
    ccfg = cfg.convlstm_config(seed)
    with np.load(gt / "trajectories.npz") as f:
        x = torch.from_numpy(f["x"]).to(device)
        cond = torch.from_numpy(P.conditions(f["F"], f["k"])).to(device)
        settings = np.stack([f["F"], f["k"]], axis=-1)
    title = title or f"ConvLSTM seed {seed}"
    with bars(f"{title}: training on trajectories", ccfg.steps) as bar:
        model, done = convlstm.train(ccfg, x, cond, stage / "checkpoint.pt", settings=settings, progress=bar.update)
    with np.load(gt / "truth.npz") as f:
        start = torch.from_numpy(f["x"][:, 0]).to(device)
        rcond = torch.from_numpy(P.conditions(f["F"], f["k"])).to(device)
    with threads.stage("ConvLSTM rollout", parallel=True):
        frames, record = model.rollout(start, cfg.long_frames, rcond)
    save_npz(stage / "rollouts.npz", x=frames.cpu().numpy(), reaction=record.reaction, diffusion=record.diffusion,
             input_gate=record.input_gate, forget_gate=record.forget_gate)
    save_losses(stage / "losses.csv", done.losses)
    horizon = BalanceTrace.from_samples(record.reaction[: cfg.data.frames], record.diffusion[: cfg.data.frames])
    finish_stage(stage, {"wall_time_s": time.perf_counter() - t0, **horizon.summary(), "seed": seed,
                         "R_long": record.trace().R, "steps": done.steps_done})
    return {title: time.perf_counter() - t0}


# ---- measures -----------------------------------------------------------------------------


def measure_fields(cfg: PatternsConfig, system: str, seed: int, u: np.ndarray, v: np.ndarray,
                   F: np.ndarray | None, k: np.ndarray | None, truth_v: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One row per field: the pattern measures of v, and its stability under the true dynamics
    at (F, k); with F = None (DDPM samples) at the setting of smallest residual."""
    pairs = cfg.setting_pairs
    rows: list[dict[str, Any]] = []
    ok = [bool(b) for b in P.physical(u, v)]
    for j in range(len(u)):
        row: dict[str, Any] = {"system": system, "seed": seed, "index": j, "physical": ok[j]}
        if ok[j]:
            row.update(P.measure(v[j], cfg.data.model.length))
            if np.ptp(v[j]) < MIN_CONTRAST:  # noise on a uniform state is not a pattern
                row.update(label="none", components=0)
            if F is None:
                res = [P.relative_residual(u[j], v[j], cfg.model_at(*p)) for p in pairs]
                best = int(np.nanargmin(res)) if np.isfinite(res).any() else 0
                row.update(F=pairs[best][0], k=pairs[best][1], residual=res[best])
            else:
                row.update(F=float(F[j]), k=float(k[j]),
                           residual=P.relative_residual(u[j], v[j], cfg.model_at(float(F[j]), float(k[j]))))
        else:
            row.update(label="blown up", F=float(F[j]) if F is not None else math.nan,
                       k=float(k[j]) if k is not None else math.nan)
        row["amplitude"] = float(np.std(v[j])) if np.isfinite(v[j]).all() else math.nan
        if truth_v is not None:
            row["rmse_vs_truth"] = float(np.sqrt(np.mean((v[j] - truth_v[j]) ** 2))) if ok[j] else math.nan
        rows.append(row)
    idx = [j for j in range(len(u)) if ok[j]]
    if idx:
        models = [cfg.model_at(rows[j]["F"], rows[j]["k"]) for j in idx]
        (_, v_after, norms), = P.advance(models, u[idx], v[idx], cfg.continue_steps)
        for n, j in enumerate(idx):
            finite = np.isfinite(v_after[n]).all()
            rows[j]["correlation"] = P.pattern_correlation(v[j], v_after[n])
            rows[j]["steady"] = bool(finite and rows[j]["residual"] < STEADY_RESIDUAL
                                     and rows[j]["correlation"] >= STEADY_CORRELATION)
    return rows


NUMERIC = ("wavelength", "spectral_entropy", "components", "mean_area", "elongation", "residual", "correlation",
           "amplitude", "rmse_vs_truth")
LABEL_COLUMNS = ("spots", "stripes", "mixed", "none", "blown up")


def table(rows: list[dict[str, Any]], R: dict[str, list[float]]) -> list[dict[str, Any]]:
    """Per system: n, each numeric measure's mean and 95 % interval over patterns and seeds
    (finite values only, with how many were finite; a percentile bootstrap, which keeps a
    non-negative measure's interval non-negative, two-stage by training seed when there are
    several, and Fisher's z for the correlation), label shares, steady share and R (t-interval
    over seeds)."""
    out = []
    for system in SYSTEMS:
        mine = [r for r in rows if r["system"] == system]
        if not mine:
            continue
        entry: dict[str, Any] = {"system": system, "title": TITLES[system], "n": len(mine)}
        for key in NUMERIC:
            kept = [r for r in mine if key in r and r[key] is not None and math.isfinite(float(r[key]))]
            values = [float(r[key]) for r in kept]
            if not values:
                entry[key] = None
            elif key == "correlation":
                entry[key] = correlation_interval(values).as_dict()
            else:  # measures >= 0; resampled by training seed when there are several
                entry[key] = bootstrap_interval(values, groups=[r["seed"] for r in kept]).as_dict()
        for lab in LABEL_COLUMNS:
            entry[f"share_{lab}"] = sum(r.get("label") == lab for r in mine) / len(mine)
        entry["share_steady"] = sum(bool(r.get("steady")) for r in mine) / len(mine)
        settings: dict[str, int] = {}
        for r in mine:
            if math.isfinite(r["F"]):
                key = f"{r['F']:g}:{r['k']:g}"
                settings[key] = settings.get(key, 0) + 1
        entry["settings"] = {k: n / len(mine) for k, n in sorted(settings.items())}
        values = R.get(system, [])
        entry["R"] = t_interval(values).as_dict() if values else None
        out.append(entry)
    return out


def _fmt(e: dict[str, Any] | None, digits: int = 3) -> str:
    if e is None:
        return "—"
    if math.isnan(e["low"]):
        return f"{e['mean']:.{digits}g}"
    return f"{e['mean']:.{digits}g} [{e['low']:.{digits}g}, {e['high']:.{digits}g}]"


def table_markdown(entries: list[dict[str, Any]], cfg: PatternsConfig) -> str:
    """The comparison table and the class mix, as Markdown."""
    lines = ["| system | n | wavelength | spectral entropy | components | mean area (cells) | elongation | "
             "residual | correlation after continuing | steady | R |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['title']} | {e['n']} | {_fmt(e['wavelength'])} | {_fmt(e['spectral_entropy'])} | "
                     f"{_fmt(e['components'])} | {_fmt(e['mean_area'])} | {_fmt(e['elongation'])} | "
                     f"{_fmt(e['residual'])} | {_fmt(e['correlation'])} | {e['share_steady']:.0%} | "
                     f"{_fmt(e['R'], 4)} |")
    lines += ["", "| system | " + " | ".join(LABEL_COLUMNS) + " | settings (F:k share) |",
              "|---|" + "---|" * (len(LABEL_COLUMNS) + 1)]
    for e in entries:
        mix = ", ".join(f"{k} {v:.0%}" for k, v in e["settings"].items())
        lines.append(f"| {e['title']} | " + " | ".join(f"{e['share_' + lab]:.0%}" for lab in LABEL_COLUMNS)
                     + f" | {mix} |")
    by_seed = "two-stage by training seed, " if cfg.seeds > 1 else ""
    lines += ["", f"Mean [95 % interval] over patterns and seeds (percentile bootstrap of the mean, {by_seed}correlation: "
              f"Fisher z; R: t-interval over seeds). Wavelength in domain units (side "
              f"{cfg.data.model.length:g}); residual = ||dv/dt|| / ||reaction|| under the true dynamics at the pattern's "
              f"(F, k) (a DDPM sample: " + ("at the setting it was conditioned on" if cfg.ddpm.unet.conditions else
                                            "at the setting where it is smallest") + "); correlation of v with itself after "
              f"{cfg.continue_steps} more Gray-Scott steps; steady = residual < {STEADY_RESIDUAL} and correlation >= "
              f"{STEADY_CORRELATION}. R: the system's Dynamic Balance Ratio on this task (Gray-Scott: the "
              f"ground-truth runs; DDPM: its reverse process; ConvLSTM: its rollouts, over the training horizon and "
              f"over the long one). Horizon: the ConvLSTM's training horizon, {cfg.data.frames} frames of "
              f"{cfg.data.frame_every} Gray-Scott steps; long horizon: {cfg.data.long_factor} times that."]
    return "\n".join(lines) + "\n"


def verdicts(entries: list[dict[str, Any]]) -> list[str]:
    """Plain sentences from the numbers: does each learned system reproduce the ground truth's
    wavelength and class mix, and are its patterns steady states of the true dynamics?"""
    by = {e["system"]: e for e in entries}
    out = []
    for system, reference in (("ddpm", "gray-scott"), ("convlstm-1x", "gray-scott-1x"),
                              ("convlstm-long", "gray-scott-long")):
        if system not in by or reference not in by:
            continue
        e, ref = by[system], by[reference]
        w, wr = e["wavelength"], ref["wavelength"]
        if w is None:
            out.append(f"{e['title']}: no measurable pattern (all {e['n']} fields blown up or uniform).")
            continue
        same_w = wr is not None and _overlap(w, wr)
        tv = A.total_variation({lab: e[f"share_{lab}"] for lab in LABEL_COLUMNS},
                               {lab: ref[f"share_{lab}"] for lab in LABEL_COLUMNS})
        out.append(
            f"{e['title']}: wavelength {_fmt(w)} vs {_fmt(wr)} for {ref['title'].lower()} — "
            f"{'reproduced (intervals overlap)' if same_w else 'NOT reproduced'}; class mix differs by "
            f"{tv:.0%} (total variation; {'reproduced' if tv <= 0.2 else 'NOT reproduced'}, threshold 20 %); "
            f"{e['share_steady']:.0%} of its patterns are steady states of the true dynamics "
            f"({ref['share_steady']:.0%} of the reference's).")
    return out


def auc(positive: list[float], negative: list[float]) -> float:
    """The chance that a value from ``positive`` exceeds one from ``negative`` (ties count half):
    the area under the ROC curve of the value as a score for ``positive`` (Mann-Whitney)."""
    a, b = np.asarray(positive, dtype=np.float64)[:, None], np.asarray(negative, dtype=np.float64)[None, :]
    return float(((a > b) + 0.5 * (a == b)).mean())


def separation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per system, does R tell its steady outputs from the others? R and final R of the steady
    and the non-steady fields (mean and bootstrap interval), the AUC of |final R - 1| as a score
    for "not steady", and the Spearman correlation of final R with the residual."""
    from scipy import stats

    out = []
    for system in SYSTEMS:
        mine = [r for r in rows if r["system"] == system and math.isfinite(r.get("R", math.nan))]
        if not mine:
            continue
        steady = [r for r in mine if r.get("steady")]
        other = [r for r in mine if not r.get("steady")]
        e: dict[str, Any] = {"system": system, "title": TITLES[system], "n_steady": len(steady), "n_other": len(other)}
        for key in ("R", "final_R"):
            for name, group in (("steady", steady), ("other", other)):
                values = [r[key] for r in group if math.isfinite(r[key])]
                e[f"{key}_{name}"] = bootstrap_interval(values).as_dict() if values else None
        off = {name: [abs(r["final_R"] - 1) for r in group if math.isfinite(r["final_R"])]
               for name, group in (("steady", steady), ("other", other))}
        e["auc"] = auc(off["other"], off["steady"]) if off["other"] and off["steady"] else None
        pairs = np.array([(r["final_R"], r["residual"]) for r in mine
                          if math.isfinite(r["final_R"]) and math.isfinite(r.get("residual", math.nan))])
        e["spearman"] = None
        if len(pairs) >= 3 and np.ptp(pairs[:, 0]) > 0 and np.ptp(pairs[:, 1]) > 0:
            e["spearman"] = float(stats.spearmanr(pairs[:, 0], pairs[:, 1]).statistic)
        out.append(e)
    return out


def separation_markdown(entries: list[dict[str, Any]]) -> str:
    """The separation table and one plain sentence per learned system."""
    lines = ["## Does R tell steady from non-steady outputs?", "",
             "| system | steady / not | R: steady | R: not steady | final R: steady | final R: not steady | "
             "AUC of abs(final R - 1) | Spearman (final R, residual) |", "|---|---|---|---|---|---|---|---|"]
    for e in entries:
        lines.append(f"| {e['title']} | {e['n_steady']} / {e['n_other']} | {_fmt(e['R_steady'], 4)} | "
                     f"{_fmt(e['R_other'], 4)} | {_fmt(e['final_R_steady'], 4)} | {_fmt(e['final_R_other'], 4)} | "
                     f"{'—' if e['auc'] is None else format(e['auc'], '.2f')} | "
                     f"{'—' if e['spearman'] is None else format(e['spearman'], '.2f')} |")
    lines += ["", "R and final R of the run, rollout or sample that made each field (mean [95 % interval], percentile "
              "bootstrap); AUC: the chance that a non-steady output's |final R - 1| exceeds a steady one's (0.5: R "
              "says nothing, 1: it separates them); Spearman: rank correlation of final R with the residual over the "
              "fields Gray-Scott can continue.", ""]
    by = {e["system"]: e for e in entries}
    for system, references in (("ddpm", ("gray-scott",)), ("convlstm-long", ("gray-scott-long", "gray-scott"))):
        steady = [by[r] for r in references if r in by and by[r]["final_R_steady"] is not None]
        if system in by:
            lines.append(f"- {separation_sentence(by[system], steady[0] if steady else None)}")
    return "\n".join(lines) + "\n"


def separation_sentence(e: dict[str, Any], ref: dict[str, Any] | None) -> str:
    """Does R separate this learned system's steady outputs from the others, in words? ``ref``:
    the Gray-Scott row whose steady fields it is set beside (None: it has none)."""
    if e["auc"] is not None:
        how = ("separates them" if e["auc"] >= 0.8 else "separates them weakly" if e["auc"] >= 0.6
               else "does not separate them")
        return f"{e['title']}: |final R - 1| {how} (AUC {e['auc']:.2f} over {e['n_steady']} steady and {e['n_other']} other outputs)."
    if e["n_steady"] == 0:
        head = f"{e['title']}: no output is steady, so R has nothing to separate; their final R is {_fmt(e['final_R_other'], 4)}"
        if ref is None:
            return head + "."
        beside = f"{_fmt(ref['final_R_steady'], 4)} for the steady fields of {ref['title'].lower()}"
        if _near_one(e["final_R_other"]):
            return f"{head}, as near 1 as {beside}: an R near 1 does not mark a steady pattern."
        return (f"{head}, against {beside}: R tells this system from Gray-Scott, and without a steady output it "
                f"cannot show whether it tells steady from not.")
    return f"{e['title']}: every output is steady (final R {_fmt(e['final_R_steady'], 4)}); nothing to separate."


def _near_one(e: dict[str, Any] | None, tolerance: float = 0.1) -> bool:
    return e is not None and abs(e["mean"] - 1) <= tolerance


MIN_SEEDS = 3
"""training seeds below which the verdicts are called indicative"""


def caveat(cfg: PatternsConfig) -> str | None:
    """What the verdicts of a study with fewer than :data:`MIN_SEEDS` training seeds do not cover."""
    if cfg.seeds >= MIN_SEEDS:
        return None
    return (f"These verdicts are indicative only: {cfg.seeds} training seed{'s' if cfg.seeds > 1 else ''}, so the "
            "intervals of the learned systems cover the fields their models made, not the spread between "
            f"trainings (--seeds {MIN_SEEDS} or more, as in --profile cpu).")


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    lo_a, hi_a = (a["mean"], a["mean"]) if math.isnan(a["low"]) else (a["low"], a["high"])
    lo_b, hi_b = (b["mean"], b["mean"]) if math.isnan(b["low"]) else (b["low"], b["high"])
    return lo_a <= hi_b and lo_b <= hi_a


def rows_csv(rows: list[dict[str, Any]]) -> str:
    keys = ["system", "seed", "index", "F", "k", "label", "physical", *NUMERIC, "elongated_fraction", "steady", "R",
            "final_R"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in keys})
    return buf.getvalue()


# ---- the study ------------------------------------------------------------------------------


def profile_config(profile: str, overrides: dict[str, Any] | None = None) -> PatternsConfig:
    """The study's settings: a profile's ``[patterns]`` table (shipped or a TOML file), then
    ``overrides`` (flat option names, e.g. from the command line)."""
    from rdlens.core.options import check_values, flatten, from_dict, nest
    from rdlens.studies.reproduce import load_profile

    options = flatten(PatternsConfig, hidden=OPTION_HIDDEN)
    table = dict(load_profile(profile)["patterns"])
    for system in ("ddpm", "convlstm"):  # [patterns.ddpm] steps = 4 is ddpm_steps = 4
        nested = table.pop(system, {})
        if not isinstance(nested, dict):
            raise ConfigError(f"profile {profile} [patterns]: {system} must be a table of {system} settings, "
                              f"got {nested!r}")
        table.update({f"{system}_{k}": v for k, v in nested.items()})
    values = {**check_values(options, table, f"profile {profile} [patterns]"), **(overrides or {})}
    if "ddpm_channels" in values and "ddpm_attention" not in values:
        # fewer levels than the default U-Net: keep its attention levels that exist, else the
        # lowest (as rdlens ddpm does)
        levels = len(values["ddpm_channels"])
        values["ddpm_attention"] = tuple(a for a in _study_ddpm().unet.attention if a < levels) or (levels - 1,)
    return from_dict(PatternsConfig, nest(options, values))


def default_dir(profile: str, out: str | Path | None) -> Path:
    """``OUT/patterns-PROFILE``: the same command finds (and continues) its own study again."""
    from rdlens.systems.run import default_runs_root

    return Path(out or default_runs_root()) / f"patterns-{Path(profile).stem}"


def config_json(cfg: PatternsConfig) -> dict[str, Any]:
    """The study's settings as its config.json holds them (apart from the kind of study),
    with the torch thread count its numbers depend on."""
    from rdlens.core import threads

    return {**json.loads(json.dumps(asdict(cfg))), "torch_threads": threads.POLICY.torch_threads()}


def _completed(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config.json's settings with the defaults of settings added since it was written."""
    out = {k: v for k, v in config_json(from_json(saved)).items() if k != "torch_threads"}
    return {**out, **({"torch_threads": saved["torch_threads"]} if "torch_threads" in saved else {})}


def ablation_variants(cfg: PatternsConfig) -> list[A.Variant]:
    """The ablation's variants of what this study switches on (:func:`rdlens.studies.ablation.variants`)."""
    return A.variants({name: getattr(cfg.convlstm, name) for name in A.CONVLSTM_SWITCHES},
                      {"conditions": cfg.ddpm.unet.conditions, "physics_weight": cfg.ddpm.physics_weight})


def variant_config(cfg: PatternsConfig, variant: A.Variant) -> PatternsConfig:
    """The study's settings with the switches ``variant`` turns off."""
    if variant.system == "convlstm":
        return replace(cfg, convlstm=replace(cfg.convlstm, **variant.off))
    off = dict(variant.off)
    unet = replace(cfg.ddpm.unet, conditions=off.pop("conditions")) if "conditions" in off else cfg.ddpm.unet
    return replace(cfg, ddpm=replace(cfg.ddpm, unet=unet, **off))


def _ablation_stages(cfg: PatternsConfig) -> list[tuple[A.Variant, str]]:
    """The ablation's own stages (every variant but ``all``, the study's first seed) and their titles."""
    return [(v, f"ablation: {'ConvLSTM' if v.system == 'convlstm' else 'DDPM'} {v.name}")
            for v in ablation_variants(cfg) if v.name != "all"]


def check_ablation(cfg: PatternsConfig) -> None:
    """A ConfigError when ``--ablation`` has nothing to switch off."""
    if not ablation_variants(cfg):
        raise ConfigError("--ablation needs a stabiliser or loss switched on, e.g. --convlstm-input-noise 0.02 or "
                          "--ddpm-conditions 2 (this study switches on none of "
                          f"{', '.join([*A.CONVLSTM_SWITCHES, *A.DDPM_SWITCHES])})")


PUBLISHED = ("measures.csv", "table.json", "table.md")
"""the study's tables; its figures (:func:`rdlens.report.patterns.figures`) are published too"""


def run_study(cfg: PatternsConfig, folder: str | Path, *, device: str = "auto", force: bool = False, jobs: int = 1,
              scheduler: str | None = None, bars: Bars | None = None, log: Callable[[str], None] | None = None,
              ablation: bool = False) -> dict[str, Any]:
    """Run (or continue) the study into ``folder``; return its summary. Finished stages are
    reused, an interrupted training resumes from its checkpoint, tables and figures are
    rewritten from the saved stages, and summary.json is written last (:mod:`rdlens.core.study`).
    ``jobs`` > 1 trains the DDPMs and ConvLSTMs side by side in worker processes,
    ``scheduler`` on a Dask cluster's workers (:mod:`rdlens.studies.tasks`): the same numbers either way.
    ``ablation`` also trains the ablation's variants (:mod:`rdlens.studies.ablation`), side by side
    with the study's own models, and writes ablation.md / ablation.json."""
    from rdlens.core import threads
    from rdlens.systems.run import no_bars
    from rdlens.studies.tasks import Task, check_jobs, check_scheduler, run_tasks
    from rdlens.core.torchutil import resolve_device

    jobs = check_jobs(jobs)
    if ablation:
        check_ablation(cfg)
    bars = bars or no_bars
    log = log or (lambda line: None)
    folder = Path(folder)
    check_memory(f"this patterns study ({min(jobs, 2 * cfg.seeds)} training stage(s) at once)",
                 cfg.memory_bytes() * min(jobs, 2 * cfg.seeds))
    dev = resolve_device(device)
    if scheduler is not None:
        check_scheduler(scheduler, "patterns")
    # the study is one run for the thread policy; config.json records its torch thread count, and
    # a saved study with another count is refused unless --force
    with claim(folder, "patterns", config_json(cfg), force=force, complete=_completed) as study, \
            threads.POLICY.running():
        gt = folder / "ground-truth"
        if stage_done(gt):
            log("Gray-Scott ground truth: finished before, reused")
        else:
            log("Gray-Scott ground truth: running")
            with study.timed("Gray-Scott ground truth"):
                ground_truth(cfg, gt)
        work, weights = [], {}
        for s in range(cfg.seed, cfg.seed + cfg.seeds):
            for name, func, sub in ((f"DDPM seed {s}", train_ddpm, "ddpm"), (f"ConvLSTM seed {s}", train_lstm, "convlstm")):
                stage = folder / sub / f"seed{s}"
                if stage_done(stage):
                    log(f"{name}: finished before, reused")
                    continue
                log(f"{name}: running")
                if sub not in weights:  # the same for every seed
                    weights[sub] = stage_work(cfg, sub)
                work.append(Task(name, func, (cfg, s, gt, stage, dev), weight=weights[sub]))
        for variant, title in _ablation_stages(cfg) if ablation else ():
            stage = folder / variant.folder
            if stage_done(stage):
                log(f"{title}: finished before, reused")
                continue
            log(f"{title}: running")
            func = train_lstm if variant.system == "convlstm" else train_ddpm
            varied = variant_config(cfg, variant)
            work.append(Task(title, func, (varied, cfg.seed, gt, stage, dev, title),
                             weight=stage_work(varied, variant.system)))
        study.timings.update(run_tasks(work, jobs, bars=bars, log=log, scheduler=scheduler, where=study.where))
        with study.timed("measures and figures"):
            said = publish(cfg, folder)
        return study.finish({"device": str(dev), "wall_time_s": time.perf_counter() - study.started,
                             "stage_times_s": study.timings, "jobs": jobs, "scheduler": scheduler,
                             "threads": threads.record(), "verdicts": said},
                            published_files(folder), device=dev, seed=cfg.seed, jobs=jobs, scheduler=scheduler)


def publish(cfg: PatternsConfig, folder: Path) -> list[str]:
    """Measure the saved stages and write the study's tables and figures; return its verdicts."""
    rows, R = collect(cfg, folder)
    entries = table(rows, R)
    said = verdicts(entries)
    note = caveat(cfg)
    split = separation(rows)
    atomic_write_text(folder / "measures.csv", rows_csv(rows))
    write_json(folder / "table.json", {"systems": entries, "verdicts": said, "separation": split,
                                       **({"caveat": note} if note else {})})
    atomic_write_text(folder / "table.md", "# Turing patterns: Gray-Scott, DDPM, ConvLSTM\n\n"
                      + table_markdown(entries, cfg) + "\n" + "\n".join(f"- {v}" for v in said) + "\n"
                      + (f"\n{note}\n" if note else "") + "\n" + separation_markdown(split))
    from rdlens.report.patterns import figures

    figures(folder, cfg)
    publish_ablation(cfg, folder, rows, R)
    return said


def _ablation_done(cfg: PatternsConfig, folder: Path) -> list[tuple[A.Variant, str]]:
    """The ablation's stages this study has finished (none unless it ran with ``--ablation``)."""
    return [(v, t) for v, t in _ablation_stages(cfg) if (folder / v.folder / "summary.json").exists()]


def publish_ablation(cfg: PatternsConfig, folder: Path, rows: list[dict[str, Any]], R: dict[str, list[float]]) -> None:
    """ablation.md / ablation.json from the ablation's stages and the study's own first seed,
    when the study ran them."""
    from rdlens.core.rundir import read_losses

    done = {v.folder: v for v, _ in _ablation_done(cfg, folder)}
    if not done:
        return
    references = {ref: A.summary([r for r in rows if r["system"] == ref]) for _, ref in A.JUDGED.values()}
    truth = None
    if any(v.system == "convlstm" for v in done.values()):
        with np.load(folder / "ground-truth" / "truth.npz") as f:
            truth = (f["x"], f["F"], f["k"])
    entries = []
    for variant in ablation_variants(cfg):
        if variant.name != "all" and variant.folder not in done:
            continue
        judged, reference = A.JUDGED[variant.system]
        sub = "convlstm" if variant.system == "convlstm" else "ddpm"
        if variant.name == "all":  # the study's own first seed
            stage = folder / sub / f"seed{cfg.seed}"
            mine, r = [r for r in rows if r["system"] == judged and r["seed"] == cfg.seed], R[judged][0]
        else:
            stage = folder / variant.folder
            vcfg = variant_config(cfg, variant)
            mine, r = (_convlstm_rows(vcfg, stage, cfg.seed, truth, (judged,))[judged]
                       if variant.system == "convlstm" else _ddpm_rows(vcfg, stage, cfg.seed))
        losses = read_losses(stage / "losses.csv")
        entries.append(A.entry(variant, mine, references[reference], R=r,
                               final_loss=float(np.mean(losses[-50:])) if losses else math.nan,
                               train_s=float(json.loads((stage / "summary.json").read_text()).get("wall_time_s", math.nan))))
    write_json(folder / "ablation.json", {"seed": cfg.seed, "references": references, "variants": entries})
    atomic_write_text(folder / "ablation.md", A.markdown(entries, references, cfg.seed))


def published_files(folder: Path) -> list[str]:
    """What a finished study publishes: its tables, its figures and the summaries of its stages."""
    figures = [p.name for p in folder.iterdir() if p.suffix in (".png", ".svg")
               or p.name in ("ablation.md", "ablation.json")]
    stages = [str(p.relative_to(folder)) for p in folder.glob("*/**/summary.json")]
    return [*PUBLISHED, *figures, *stages]


def _verified_stages(cfg: PatternsConfig, folder: Path) -> None:
    """A ConfigError naming the first stage of the study that does not verify."""
    from rdlens.core.study import verify

    stages = [folder / "ground-truth"] + [folder / sub / f"seed{s}" for s in range(cfg.seed, cfg.seed + cfg.seeds)
                                          for sub in ("ddpm", "convlstm")]
    stages += [folder / v.folder for v, _ in _ablation_done(cfg, folder)]
    for stage in stages:
        damage = verify(stage)
        if damage is not None:
            raise ConfigError(f"stage {stage.relative_to(folder)} of the patterns study in {folder} cannot be "
                              f"trusted: {damage}; rerun rdlens patterns to redo it")


def from_json(saved: dict[str, Any], source: str | Path = "config.json") -> PatternsConfig:
    """The settings of a saved patterns study (its config.json), also as rdlens wrote it before
    the ConvLSTM's data settings were nested under ``data``; a key this rdlens does not know,
    or a value of the wrong type, is refused in one line naming it."""
    from dataclasses import fields

    from rdlens.systems.convlstm.model import Trajectories
    from rdlens.core.options import check_saved, from_dict

    values = {k: v for k, v in saved.items() if k not in ("study", "torch_threads")}
    if "data" not in values:  # the flat layout: the trajectories' settings at the top level
        names = {f.name for f in fields(Trajectories)}
        values["data"] = {k: values.pop(k) for k in list(values) if k in names}
    check_saved(PatternsConfig, values, str(source))
    return from_dict(PatternsConfig, values)


def rebuild(folder: str | Path) -> dict[str, Any]:
    """``rdlens report`` of a patterns study: verify every stage, rewrite the tables and figures
    from them (recomputing nothing, :func:`rdlens.core.study.rebuilt`); return its summary."""
    from rdlens.core.study import rebuilt

    folder = Path(folder)
    with rebuilt(folder, "patterns") as job:
        cfg = from_json(job.config, folder / "config.json")
        _verified_stages(cfg, folder)
        publish(cfg, folder)
    return job.summary


def _balanced(rows: list[dict[str, Any]], R: Any, final_R: Any) -> list[dict[str, Any]]:
    """``rows`` (one per field) with each field's own R and final R."""
    for row, r, f in zip(rows, R, final_R, strict=True):
        row.update(R=float(r), final_R=float(f))
    return rows


def _rollout_balance(reaction: np.ndarray, diffusion: np.ndarray, steps: int) -> tuple[list[float], list[float]]:
    """Each rollout's R and final R over its first ``steps`` steps (norms: (steps, rollouts))."""
    traces = [BalanceTrace.from_series(reaction[:steps, j], diffusion[:steps, j]) for j in range(reaction.shape[1])]
    return [t.R for t in traces], [t.final_R for t in traces]


def collect(cfg: PatternsConfig, folder: Path) -> tuple[list[dict[str, Any]], dict[str, list[float]]]:
    """Measure every saved field of the study (one row each, with the R and final R of the run,
    rollout or sample that made it) and gather each system's R."""
    gt = folder / "ground-truth"
    rows: list[dict[str, Any]] = []
    with np.load(gt / "fields.npz") as f:
        rows += _balanced(measure_fields(cfg, "gray-scott", -1, f["u"], f["v"], f["F"], f["k"]), f["R"], f["final_R"])
        R: dict[str, list[float]] = {"gray-scott": f["R"].tolist()}
    with np.load(gt / "truth.npz") as f:
        truth, tF, tk = f["x"], f["F"], f["k"]
        R["gray-scott-1x"], R["gray-scott-long"] = f["R_horizon"].tolist(), f["R_all"].tolist()
    models = [cfg.model_at(float(a), float(b)) for a, b in zip(tF, tk)]
    for system, frame in (("gray-scott-1x", cfg.data.frames), ("gray-scott-long", -1)):
        u, v = from_unit(truth[:, frame])
        final = [P.state_ratio(u[j], v[j], m) for j, m in enumerate(models)]  # the true run's last step
        rows += _balanced(measure_fields(cfg, system, -1, u, v, tF, tk), R[system], final)
    for s in range(cfg.seed, cfg.seed + cfg.seeds):
        for system, (mine, r) in _convlstm_rows(cfg, folder / "convlstm" / f"seed{s}", s, (truth, tF, tk)).items():
            rows += mine
            R.setdefault(system, []).append(r)
        mine, r = _ddpm_rows(cfg, folder / "ddpm" / f"seed{s}", s)
        rows += mine
        R.setdefault("ddpm", []).append(r)
    return rows, R


def _convlstm_rows(cfg: PatternsConfig, stage: Path, seed: int, truth: tuple[np.ndarray, np.ndarray, np.ndarray],
                   systems: tuple[str, ...] = ("convlstm-1x", "convlstm-long")) -> dict[str, tuple[list[dict[str, Any]], float]]:
    """A ConvLSTM stage's rollouts at the horizon and at the long horizon (``systems``): the
    fields measured against Gray-Scott from the same starts (``truth``: truth.npz's x, F, k),
    each with its rollout's R, and the R of all its rollouts."""
    truth, tF, tk = truth
    with np.load(stage / "rollouts.npz") as f:
        x, reaction, diffusion = f["x"], f["reaction"], f["diffusion"]
    out = {}
    for system, frame, steps in (("convlstm-1x", cfg.data.frames, cfg.data.frames),
                                 ("convlstm-long", -1, reaction.shape[0])):
        if system in systems:
            u, v = from_unit(x[:, frame])
            rows = measure_fields(cfg, system, seed, u, v, tF, tk, truth_v=from_unit(truth[:, frame])[1])
            out[system] = (_balanced(rows, *_rollout_balance(reaction, diffusion, steps)),
                           BalanceTrace.from_samples(reaction[:steps], diffusion[:steps]).R)
    return out


def _ddpm_rows(cfg: PatternsConfig, stage: Path, seed: int) -> tuple[list[dict[str, Any]], float]:
    """A DDPM stage's samples measured (a conditioned DDPM's at its own settings), each with its
    sample's R, and the R of its reverse process."""
    with np.load(stage / "samples.npz") as f:
        u, v = from_unit(f["x"])
        at = (f["F"], f["k"]) if "F" in f.files else (None, None)
    trace = BalanceTrace.load(stage / "trace.csv")
    samples = trace.per_sample()
    return _balanced(measure_fields(cfg, "ddpm", seed, u, v, *at), [t.R for t in samples],
                     [t.final_R for t in samples]), trace.R


__all__ = ["PatternsConfig", "SYSTEMS", "collect", "from_unit", "ground_truth", "measure_fields",
           "profile_config", "run_study", "table", "table_markdown", "to_unit", "verdicts"]
