"""The DDPM as an rdlens system (schedule, sampler, training: :mod:`rdlens.systems.ddpm.model`; network:
:mod:`rdlens.systems.ddpm.unet`; data: :mod:`rdlens.systems.ddpm.images`).

Settings are the fields of :class:`rdlens.systems.ddpm.model.DDPMConfig`, its
:class:`~rdlens.systems.ddpm.unet.UNetConfig` (``channels``, ``attention`` ...) and its
:class:`~rdlens.systems.ddpm.model.Schedule` (``T``, ``schedule`` for the kind, ``beta_start``,
``beta_end``). ``--setting default|paper`` picks a preset (``rdlens.systems.ddpm.model.SETTINGS``). A run
writes ``checkpoint.pt``, ``samples.png``/``.npz``, ``trace.csv`` (+ ``trace_samples.npz``),
``balance.png``, ``losses.csv``, with ``grid_every`` ``grid-stepN.png``, and with
``track_every`` ``training_curve.csv``/``.png`` (R and quality along training, :mod:`rdlens.systems.ddpm.curve`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rdlens.core.errors import ConfigError
from rdlens.core.rundir import RunContext, save_losses, save_npz
from rdlens.systems.base import System

SETTING_NAMES = {"digits": "digits (scikit-learn, offline)", "turing": "Turing patterns (Gray-Scott)",
                 "mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10"}


def quality_batches(cfg: Any) -> list[tuple[int, int]]:
    """The extra sampling runs behind ``quality_samples``: (images kept, noise seed) per batch of
    ``samples``, the last one cut to the total; none when the row's samples suffice."""
    more, batches = max(0, cfg.quality_samples - cfg.samples), []
    while more > 0:
        batches.append((min(more, cfg.samples), 10_000 * (cfg.seed + 1) + len(batches)))
        more -= batches[-1][0]
    return batches


def sampled_images(cfg: Any) -> int:
    """Images a run samples: its own, those of each tracking point (step 0, every
    ``track_every``; the last step's is the row's own) and sample grid, and the quality batches."""
    points = 1 + (cfg.steps - 1) // cfg.track_every if cfg.track_every else 0
    grids = cfg.steps // cfg.grid_every if cfg.grid_every else 0
    return cfg.samples * (1 + points + grids) + sum(n for n, _ in quality_batches(cfg))


class DDPM(System):
    name = "ddpm"
    title = "DDPM"
    help = "train a DDPM on images and measure the balance of its reverse process"
    description = ("Train an eps-prediction U-Net (Ho et al. 2020), sample a batch with the instrumented reverse\n"
                   "process and measure reaction ||mu_theta - x_t|| and diffusion ||sigma_t z|| at every step.\n"
                   "Offline data sets: digits (scikit-learn's handwritten digits) and turing (Gray-Scott patterns);\n"
                   "mnist, fashion-mnist and cifar10 are read from --data-dir (see: rdlens data download).")
    color = "C2"
    uses_torch = True
    resumable = True
    extendable = ("steps",)  # with a constant learning rate: the EMA warm-up and data order depend on the step only
    hidden = ("unet.in_channels", "unet.image_size")
    renames = {"schedule.kind": "schedule", "schedule.dtype": "schedule_dtype"}
    control_labels = {"untrained": "untrained network", "oracle_one_point": "oracle, one-point data",
                      "oracle_gaussian": "oracle, Gaussian fit"}

    def config_type(self) -> type:
        from rdlens.systems.ddpm.model import DDPMConfig

        return DDPMConfig

    def can_extend(self, config: dict[str, Any]) -> bool:
        return config.get("lr_schedule", "constant") == "constant"

    def presets(self) -> dict[str, dict[str, Any]]:
        from rdlens.systems.ddpm.model import SETTINGS

        return {name: {**{k: v for k, v in values.items() if k != "unet"}, **values["unet"]}
                for name, values in SETTINGS.items()}

    def build(self, values: dict[str, Any]) -> Any:
        """The preset named by ``setting``, then the explicit values (see ``ddpm.config_for``);
        ``data_dir`` is dropped for the offline data sets, which do not read it."""
        from rdlens.systems.ddpm.model import config_for
        from rdlens.systems.ddpm.images import OFFLINE

        rest = dict(values)
        setting, dataset = rest.pop("setting", "default"), rest.pop("dataset", "digits")
        groups: dict[str, dict[str, Any]] = {"unet": {}, "schedule": {}}
        for k in list(rest):
            path = self.option(k).path
            if path[0] in groups:
                groups[path[0]][path[1]] = rest.pop(k)
        if dataset in OFFLINE:
            rest["data_dir"] = None
        return config_for(setting, dataset, unet=groups["unet"], schedule=groups["schedule"], **rest)

    def run_name(self, config: Any) -> str:
        return f"ddpm-{config.dataset}-{config.setting}-seed{config.seed}"

    def setting(self, config: Any) -> str:
        return SETTING_NAMES[config.dataset]

    def data_label(self, config: Any) -> str:
        return config.dataset

    def missing_data(self, config: Any) -> tuple[str, str] | None:
        from rdlens.systems.ddpm import images

        if images.is_present(config.dataset, config.data_dir):
            return None
        where = f"under {config.data_dir}" if config.data_dir else "(no --data-dir given)"
        fetch = f"rdlens data download {config.dataset} --data-dir {config.data_dir or '~/data'}"
        return f"not found {where}", (f"rerun with --download, or {fetch}" if config.dataset in images.REGISTRY_ROUTE
                                      else f"{fetch} (official host only), then rerun")

    def fetch_data(self, config: Any) -> str | None:
        from rdlens.systems.ddpm import images

        if config.dataset not in images.SOURCES or not config.data_dir:
            return f"{config.dataset} cannot be downloaded"
        try:
            images.download(config.dataset, config.data_dir)
        except images.DownloadError as exc:
            return str(exc)
        return None

    def memory_bytes(self, config: Any) -> float:
        """Weights (model, EMA, gradients, two Adam moments), activations kept for the
        backward pass of a batch, the sampling batch, the per-step norms, the data and the
        images judged for quality (kept twice while they are joined)."""
        u = config.unet
        size = u.image_size
        params = sum(40 * c * c for c in u.channels) * (u.res_blocks + 1)
        pixels = sum(c * (size // 2**k) ** 2 for k, c in enumerate(u.channels))
        train = config.batch_size * pixels * 4 * 30 * (u.res_blocks + 1)
        sample = config.samples * pixels * 4 * 8
        norms = config.schedule.T * (3 * config.samples * 4 + 48)
        data = 60_000 * u.in_channels * size * size * 4
        judged = 2 * max(config.samples, config.quality_samples) * u.in_channels * size * size * 4
        return 4.0 * params * 5 + train + sample + norms + data + judged

    def work(self, config: Any) -> float:
        """Training (a forward and a backward pass, about three forwards, per image and step) and
        every sampling run: the row's, one per tracking point and sample grid, the quality batches."""
        from rdlens.systems.ddpm.unet import image_flops

        return image_flops(config.unet) * (3 * config.batch_size * config.steps
                                           + config.schedule.T * sampled_images(config))

    def validate(self, config: Any) -> None:
        """Read the data set once (a truncated or corrupt file is refused before any row runs),
        and check that epoch-wise batches fit in it."""
        if self.missing_data(config) is None:
            n = self.prepare(config, "cpu").shape[0]
            if config.batches == "epochs" and config.batch_size > n:
                raise ConfigError(f"batches = epochs needs batch_size <= the {n} training images, "
                                  f"got {config.batch_size}")

    def prepare(self, config: Any, device: Any) -> Any:
        from rdlens.systems.ddpm import images

        data = images.load(config.dataset, config.data_dir, seed=config.seed, turing_images=config.turing_images)
        data = data[: config.max_images] if config.max_images else data
        return (data + 1) / 2 if config.pixels == "unit" else data

    def _judge(self, config: Any, bars: Any = None) -> Any:
        """The sample-quality judge of the data set (:mod:`rdlens.systems.ddpm.quality`), None where the
        data set has no labels; ``bars`` shows its classifier's training when not cached."""
        from rdlens.systems.ddpm import quality as q

        if config.dataset not in q.LABELLED:
            return None
        from rdlens.systems.ddpm.images import default_data_dir

        return q.judge(config.dataset, config.data_dir, Path(config.data_dir or default_data_dir()).expanduser()
                       / "classifiers", bars)

    def execute(self, config: Any, prepared: Any, ctx: RunContext) -> dict[str, Any]:
        import torch

        from rdlens.plot import plot_balance, plot_images, tile
        from rdlens.systems.ddpm import controls, curve
        from rdlens.systems.ddpm import model as ddpm
        from rdlens.systems.ddpm import quality as q
        from rdlens.systems.ddpm.unet import build as build_unet, n_params

        rd, dev, cfg = ctx.dir, ctx.device, config
        shape = (cfg.samples, cfg.unet.in_channels, cfg.unet.image_size, cfg.unet.image_size)
        judge = self._judge(cfg, ctx.bars)
        sample_precision = ddpm.effective_precision(cfg.sample_precision, dev)

        def signed(samples: Any) -> Any:
            """Samples in [-1, 1], whatever the range the model works in."""
            samples = samples.detach().float().cpu()
            return samples * 2 - 1 if cfg.pixels == "unit" else samples

        def quality_of(samples: Any) -> dict[str, Any] | None:
            """Quality of samples already in [-1, 1] (None without a classifier)."""
            return None if judge is None else q.report(judge, samples)

        def draw(model: Any, progress: Any = None, seed: int = cfg.seed + 2) -> Any:
            """The row's samples: always the same noise (seed + 2), so that only the model differs."""
            return ddpm.sample(model, shape, cfg.schedule, seed=seed, sigma=cfg.sigma, device=dev, progress=progress,
                               last_step=cfg.last_step, precision=sample_precision)

        def more_samples(model: Any) -> list[Any]:
            """The samples ``quality_samples`` asks for beyond the row's, drawn with other noise
            (batch i: seed 10,000 (seed + 1) + i), which the balance does not use; none without
            a quality judge."""
            extra = quality_batches(cfg) if judge is not None else []
            if not extra:
                return []
            with ctx.bars(f"DDPM quality samples ({cfg.quality_samples})", len(extra) * cfg.schedule.T) as bar:
                return [signed(draw(model, bar.update, seed=seed).samples[:n]) for n, seed in extra]

        def grid_png(step: int, model: Any) -> None:
            res = draw(model, seed=cfg.seed)
            plot_images(tile(signed(res.samples)), rd.file(f"grid-step{step}.png"), title=f"samples at step {step}")

        track = curve.Curve(rd.file("training_curve.csv"), resume=ctx.resume) if cfg.track_every else None

        tracked_draw: dict[int, Any] = {}  # the latest tracking point's samples, by step

        def track_point(step: int, model: Any) -> None:
            with ctx.bars(f"DDPM sample at step {step} (R along training)", cfg.schedule.T) as bar:
                res = draw(model, bar.update)
            tracked_draw.clear()
            tracked_draw[step] = res
            track.add(curve.point(step, res.trace, quality_of(signed(res.samples))))

        if track is not None and 0 not in track.steps():
            with rd.stage("track"):
                torch.manual_seed(cfg.seed)  # the initial weights that training starts from
                track_point(0, build_unet(cfg.unet).to(dev).eval())
        with rd.stage("train"), ctx.bars(f"DDPM train {cfg.dataset}", cfg.steps) as bar:
            trained = ddpm.train(cfg, prepared, str(rd.path), device=dev, resume=ctx.resume, progress=bar.update,
                                 hooks=[(cfg.grid_every, grid_png), (cfg.track_every, track_point)])
        # a tracking point at the last step drew these very samples (same model, same noise)
        result = tracked_draw.get(trained.steps_done)
        if result is None:
            with rd.stage("sample"), ctx.bars("DDPM sample", cfg.schedule.T) as bar:
                result = draw(trained.ema_model, bar.update)
        tr, samples = result.trace, signed(result.samples)
        with rd.stage("quality"):
            row_quality = quality_of(samples)  # the tracking curve's last point judges the row's samples
            more = more_samples(trained.ema_model)
            quality = quality_of(torch.cat([samples, *more])) if more else row_quality
        with rd.stage("write"):
            tr.save(rd.file("trace.csv"))
            save_losses(rd.file("losses.csv"), trained.losses)
            save_npz(rd.file("samples.npz"), samples=samples.numpy())
            plot_images(tile(samples), rd.file("samples.png"),
                        title=f"DDPM samples, {SETTING_NAMES[cfg.dataset]}\n{trained.steps_done} training steps")
            plot_balance(tr, rd.file("balance.png"))
        ctx.manifest.update(parameters=n_params(trained.model), precision=trained.precision,
                            sample_precision=sample_precision)
        tracked = None
        if track is not None:
            with rd.stage("track"):
                if trained.steps_done not in track.steps():
                    track.add(curve.point(trained.steps_done, tr, row_quality))
                oracle = draw(controls.data_oracles(prepared, cfg.schedule)["oracle_gaussian"]).trace
                tracked = {"points": len(track.rows), "oracle_gaussian_R": oracle.R,
                           "schedule_only_R_score": controls.schedule_only_R(cfg.schedule)["R_score"],
                           "first": track.rows[0], "last": track.rows[-1]}
                curve.plot(track.rows, rd.file("training_curve.png"), oracle_R=tracked["oracle_gaussian_R"],
                           schedule_R_score=tracked["schedule_only_R_score"],
                           title=f"R along training, {SETTING_NAMES[cfg.dataset]}")
        return {**self._summary(cfg, tr, trained, int(prepared.shape[0]), quality, tracked),
                "sample_precision": sample_precision}

    def _summary(self, cfg: Any, tr: Any, trained: Any, train_images: int, quality: dict[str, Any] | None,
                 tracked: dict[str, Any] | None) -> dict[str, Any]:
        """The run's summary: the balance, the score part, what was sampled and trained."""
        from rdlens.core.balance import score_ratio

        counted = tr.counted
        return {
            **tr.summary(),
            "M_score": float(np.mean(tr.extra["score"][counted])),
            "M_eps": float(np.mean(tr.extra["eps_norm"][counted])),
            "R_score": score_ratio(tr),
            "last_step": ("t = 1 adds no noise (diffusion 0): kept in trace.csv with counted = 0, "
                          "excluded from M_react, M_diff, R, R(tau) and final_R") if cfg.last_step == "exclude" else
                         ("public-code quirk: the t = 1 row is recorded with the previous step's eps and "
                          "coefficients and the norm of a noise never added, and counted"),
            "T": cfg.schedule.T,
            "schedule": cfg.schedule.kind,
            "sigma": cfg.sigma,
            "samples": cfg.samples,
            "image_dim": cfg.unet.in_channels * cfg.unet.image_size ** 2,
            "train_images": train_images,
            "steps": trained.steps_done,
            "resumed_from_step": trained.resumed_from,
            "final_loss": float(np.mean(trained.losses[-50:])) if trained.losses else None,
            "quality": quality,
            "training_curve": tracked,
        }

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        loss = "—" if summary["final_loss"] is None else f"{summary['final_loss']:.4f}"
        lines = [f"score-only M = {summary['M_score']:.4f} (R_score = {summary['R_score']:.4f})   "
                 f"final loss = {loss}   "
                 + ("last step excluded (no noise)" if summary["last_step"].startswith("t = 1") else
                    "last step recorded as the public code did (quirk)")]
        q = summary.get("quality")
        if q:
            from rdlens.systems.ddpm import quality as qm

            r = q["real"]
            counted = f" ({q['images']} images)" if "images" in q else ""
            lines.append(f"sample quality{counted}: Frechet {q['frechet']:.1f} (real batches of as many: "
                         f"{qm.real_text(r, 'frechet', '.1f')}), confident {q['confident']:.0%} "
                         f"({qm.real_text(r, 'confident', '.0%')}), class coverage {q['coverage']:.2f} "
                         f"({qm.real_text(r, 'coverage', '.2f')}); classifier test accuracy "
                         f"{q['classifier_accuracy']:.1%}")
            if qm.converged(q) is False:
                lines.append(f"samples NOT converged (need a confident share >= {qm.CONVERGED_CONFIDENT:.0%} of the "
                             f"real images' and coverage >= {qm.CONVERGED_COVERAGE}): this R is that of an under-trained "
                             "model")
        curve = summary.get("training_curve")
        if curve:
            a, b = curve["first"], curve["last"]
            lines.append(f"along training ({curve['points']} points, training_curve.csv): R {a['R']:.4f} at step "
                         f"{a['step']} -> {b['R']:.4f} at step {b['step']}; exact Gaussian-data denoiser "
                         f"{curve['oracle_gaussian_R']:.4f}, schedule-only R_score {curve['schedule_only_R_score']:.4f}")
        return lines

    def claims(self, config: Any, run_dir: Path, device: Any) -> dict[str, Any]:
        """Claims 2-4: monotonicity of R(tau) (trained, exact Gaussian-data denoiser, schedule
        alone), R against the number of steps T (denoiser and schedule), and DDIM's eta from
        the row's trained model and noise."""
        import torch

        from rdlens.systems.ddpm import claims
        from rdlens.systems.ddpm import controls
        from rdlens.systems.ddpm import model as ddpm
        from rdlens.core.balance import BalanceTrace
        from rdlens.core.torchutil import load_checkpoint
        from rdlens.systems.ddpm.unet import build as build_unet

        cfg = config
        images = self.prepare(cfg, device)
        shape = (cfg.samples, cfg.unet.in_channels, cfg.unet.image_size, cfg.unet.image_size)
        torch.manual_seed(cfg.seed)
        model = build_unet(cfg.unet).to(device)
        state = load_checkpoint(run_dir / ddpm.CHECKPOINT, device)
        model.load_state_dict(state["ema"] if cfg.ema > 0 and "ema" in state else state["model"])
        model.eval()
        trained = BalanceTrace.load(run_dir / "trace.csv")
        oracle = ddpm.sample(controls.data_oracles(images, cfg.schedule)["oracle_gaussian"], shape, cfg.schedule,
                             seed=cfg.seed + 2, sigma=cfg.sigma, device=device).trace
        monotonic = {"trained": claims.decreasing_stretches(trained.R_tau, trained.tau),
                     "oracle_gaussian": claims.decreasing_stretches(oracle.R_tau, oracle.tau),
                     "schedule_only": claims.decreasing_stretches(claims.schedule_only_curve(cfg.schedule))}
        signed = (lambda x: x * 2 - 1) if cfg.pixels == "unit" else None
        return {"monotonic": monotonic,
                "steps": claims.r_versus_T(images.double(), cfg.schedule, cfg.samples, cfg.seed + 2),
                "trained_T": cfg.schedule.T, "trained_R": trained.R, "trained_final_R": trained.final_R,
                "ddim": claims.ddim_sweep(model, shape, cfg.schedule, cfg.seed + 2, self._judge(cfg), device,
                                          signed=signed, sigma=cfg.sigma)}

    def controls(self, config: Any, run_dir: Path, device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from rdlens.systems.ddpm import controls

        return controls.ddpm_controls(config, self.prepare(config, device), device)

    def control_sentence(self, controls: dict[str, Any], bound: str) -> str:
        sched = controls["schedule_only"]
        return (f"; the schedule alone predicts a score ratio R_score = {sched['R_score']['mean']:.4f}, "
                f"and M_diff = {sched['M_diff_per_sqrtD']['mean']:.4f} sqrt(D)")

    def draw_panel(self, ax: Any, run_dir: Path) -> str:
        from rdlens.plot import tile

        with np.load(run_dir / "samples.npz") as z:
            tiled = tile(z["samples"])
        ax.imshow(tiled[..., 0] if tiled.shape[2] == 1 else tiled, cmap="gray", vmin=0, vmax=1)
        return ""
