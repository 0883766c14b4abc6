"""The convolutional LSTM as an rdlens system (model and training: :mod:`rdlens.systems.convlstm.model`).

Settings are the fields of :class:`rdlens.systems.convlstm.model.ConvLSTMConfig` and of its data,
:class:`rdlens.systems.convlstm.model.Trajectories` (``settings``, ``frames``, ``trajectories`` ...). A run
makes Gray-Scott trajectories at each (F, k) from seeded Pearson starts, trains next-frame
prediction on them (conditioned on F and k), rolls the model out on its own from unseen starts
for ``long_factor`` times the training horizon, and measures the paper's LSTM balance on its
gates at every step. It writes ``checkpoint.pt``, ``losses.csv``, ``trace.csv`` (the balance
over the training horizon; ``trace_samples.npz``: every rollout's norms), ``rollouts.npz``
(the frames, with the per-step norms and mean gate activity of the whole long rollout) and
``rollout.png``. ``rdlens patterns`` runs this same model and training inside its study.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rdlens.core.rundir import RunContext, save_losses, save_npz
from rdlens.systems.base import System


class ConvLSTM(System):
    name = "convlstm"
    title = "ConvLSTM"
    help = "train a convolutional LSTM on Gray-Scott trajectories and measure the balance of its rollouts"
    description = ("Make Gray-Scott trajectories at each (F, k), train a convolutional LSTM (the paper's gate\n"
                   "equations, a circular convolution for the matrix products) for next-frame prediction, roll\n"
                   "it out from unseen starts and measure reaction ||i*g|| and diffusion ||(1-f)*C_prev|| over\n"
                   "every cell and hidden channel at each step. Interrupt with Ctrl-C and continue with --resume.")
    color = "C6"
    uses_torch = True
    resumable = True
    hidden = ("data.model.F", "data.model.k")

    def config_type(self) -> type:
        from rdlens.systems.convlstm.model import ConvLSTMConfig

        return ConvLSTMConfig

    def run_name(self, config: Any) -> str:
        return f"convlstm-seed{config.seed}"

    def setting(self, config: Any) -> str:
        return f"Gray-Scott trajectories at {config.data.settings}"

    def data_label(self, config: Any) -> str:
        return "Gray-Scott trajectories"

    def memory_bytes(self, config: Any) -> float:
        """The trajectories and rollouts kept (float32) and the training window's activations."""
        from rdlens.measures.patterns import parse_settings

        d = config.data
        cells = 2 * d.model.size**2
        n = len(parse_settings(d.settings))
        kept = n * (d.trajectories * (d.frames + 1) + 2 * d.rollouts * (d.long_frames + 1)) * cells * 4
        return kept + config.memory_bytes()

    def prepare(self, config: Any, device: Any) -> dict[str, np.ndarray]:
        """The training trajectories and the true runs from the rollout starts (before the run
        folder exists: a diverging Gray-Scott setting is refused first)."""
        from rdlens.measures import patterns
        from rdlens.systems.convlstm.model import SEED_OFFSETS
        from rdlens.core.errors import SimulationDiverged

        d = config.data
        pairs = patterns.parse_settings(d.settings)
        out = {}
        for use, per, frames in (("trajectory", d.trajectories, d.frames), ("rollout", d.rollouts, d.long_frames)):
            models, u, v, _ = patterns.starts(d.model, pairs, config.seed + SEED_OFFSETS[use], per, d.start_squares)
            x, _ = patterns.trajectories(models, u, v, d.frame_every, frames)
            if not np.isfinite(x).all():
                raise SimulationDiverged("Gray-Scott trajectories", d.frame_every * frames, "a field went NaN")
            out[use] = x
            out[f"{use}_conditions"] = patterns.conditions(np.array([m.F for m in models]),
                                                           np.array([m.k for m in models]))
            out[f"{use}_settings"] = np.array([[m.F, m.k] for m in models])
        return out

    def execute(self, config: Any, prepared: dict[str, np.ndarray], ctx: RunContext) -> dict[str, Any]:
        import torch

        from rdlens.systems.convlstm import model as convlstm
        from rdlens.core import threads
        from rdlens.core.balance import BalanceTrace

        rd, dev = ctx.dir, ctx.device
        x = torch.from_numpy(prepared["trajectory"]).to(dev)
        cond = torch.from_numpy(prepared["trajectory_conditions"]).to(dev)
        with ctx.bars("ConvLSTM on Gray-Scott trajectories", config.steps) as bar, rd.stage("train"):
            model, done = convlstm.train(config, x, cond, rd.file("checkpoint.pt"),
                                         settings=prepared["trajectory_settings"], progress=bar.update)
        truth = prepared["rollout"]
        with rd.stage("rollout"), threads.stage("ConvLSTM rollout", parallel=True):
            frames, record = model.rollout(torch.from_numpy(truth[:, 0]).to(dev), config.data.long_frames,
                                           torch.from_numpy(prepared["rollout_conditions"]).to(dev))
        horizon = config.data.frames
        trace = BalanceTrace.from_samples(record.reaction[:horizon], record.diffusion[:horizon])
        x_out = frames.cpu().numpy()
        error = {f"rollout_mse_{name}": float(np.mean((x_out[:, t] - truth[:, t]) ** 2))
                 for name, t in (("horizon", horizon), ("long", -1))}
        with rd.stage("write"):
            trace.save(rd.file("trace.csv"))
            save_npz(rd.file("trace_samples.npz"), reaction=record.reaction[:horizon],
                     diffusion=record.diffusion[:horizon])
            save_npz(rd.file("rollouts.npz"), x=x_out, truth=truth.astype(np.float32), reaction=record.reaction,
                     diffusion=record.diffusion, input_gate=record.input_gate, forget_gate=record.forget_gate)
            save_losses(rd.file("losses.csv"), done.losses)
            self._plot(x_out, truth, horizon, rd.file("rollout.png"))
        return {**trace.summary(), "R_long": record.trace().R, **error, "steps": done.steps_done,
                "resumed_from_step": done.resumed_from, "parameters": convlstm.n_params(model)}

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [f"R over the long rollout = {summary['R_long']:.4f}   rollout MSE at the horizon = "
                f"{summary['rollout_mse_horizon']:.5f}, at the end = {summary['rollout_mse_long']:.5f}"]

    @staticmethod
    def _plot(x: np.ndarray, truth: np.ndarray, horizon: int, path: Any) -> None:
        from rdlens.measures.patterns import V_MAX, from_unit
        from rdlens.plot import pyplot
        from rdlens.core.rundir import save_figure

        plt = pyplot()
        columns = [("start", 0), ("horizon", horizon), ("end", x.shape[1] - 1)]
        fig, axes = plt.subplots(2, 3, figsize=(7.5, 5.2), dpi=110)
        for row, (label, fields) in enumerate((("true dynamics", truth), ("ConvLSTM", x))):
            for col, (when, t) in enumerate(columns):
                _, v = from_unit(fields[0, t])
                ax = axes[row, col]
                ax.imshow(v, cmap="viridis", vmin=0, vmax=V_MAX)
                ax.set_title(f"{label}, {when} (frame {t})", fontsize=8)
                ax.set_axis_off()
        fig.tight_layout()
        save_figure(fig, path)

    def draw_panel(self, ax: Any, run_dir: Any) -> str:
        from rdlens.measures.patterns import V_MAX, from_unit

        with np.load(run_dir / "rollouts.npz") as z:
            _, v = from_unit(z["x"][0, -1])
        ax.imshow(v, cmap="viridis", vmin=0, vmax=V_MAX)
        return " (v at the end of a rollout)"
