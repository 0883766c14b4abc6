"""The LSTM as an rdlens system (model, probe and training: :mod:`rdlens.systems.lstm.model`).

Settings are the fields of :class:`rdlens.systems.lstm.model.LSTMConfig` and of its data,
:class:`rdlens.systems.lstm.sequences.SequenceConfig` (``dataset``, ``n_sequences``, ``length`` ...).
``--setting default|paper`` picks a preset (``rdlens.systems.lstm.model.SETTINGS``) that explicit values
override. A run writes ``checkpoint.pt``, ``trace.csv`` (+ ``trace_samples.npz``, the norms of
every sequence), ``losses.csv``, ``predictions.png``/``.npz`` and ``gates.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rdlens.core.rundir import RunContext
from rdlens.core.rundir import save_losses, save_npz
from rdlens.systems.base import System

SETTING_NAMES = {"sine": "sine waves", "lorenz": "Lorenz", "vanderpol": "Van der Pol"}


class LSTM(System):
    name = "lstm"
    title = "LSTM"
    help = "train an LSTM on sequence data and measure the balance of its cell-state update"
    description = ("Train one torch.nn.LSTM layer (1 input, 16 hidden units, linear read-out) for next-step\n"
                   "prediction, then measure reaction ||i*g|| and diffusion ||(1-f)*C_prev|| of its gates on\n"
                   "held-out sequences. Interrupt with Ctrl-C and continue with --resume RUN_DIR.")
    color = "C1"
    uses_torch = True
    resumable = True
    hidden = ("data.seed",)
    aliases = {"n_sequences": ("--sequences",)}
    help_overrides = {"noise": "observation noise std (default: from --setting for sine: default 0.0, paper 0.05; "
                               "0 for lorenz and vanderpol)"}
    control_labels = {"untrained_pytorch": "untrained, PyTorch init", "untrained_normal": "untrained, N(0, 1) init",
                      "white_noise": "trained, white-noise input"}

    def config_type(self) -> type:
        from rdlens.systems.lstm.model import LSTMConfig

        return LSTMConfig

    def presets(self) -> dict[str, dict[str, Any]]:
        from rdlens.systems.lstm.model import SETTINGS

        return {name: {k: v for k, v in values.items() if k != "sine_noise"} for name, values in SETTINGS.items()}

    def build(self, values: dict[str, Any]) -> Any:
        """The preset named by ``setting``, then the explicit values (see ``lstm.config_for``)."""
        from rdlens.systems.lstm.model import config_for

        rest = dict(values)
        setting, dataset = rest.pop("setting", "default"), rest.pop("dataset", "sine")
        data_names = {o.name for o in self.options if o.path[0] == "data"}
        data = {k: rest.pop(k) for k in list(rest) if k in data_names}
        return config_for(setting, dataset, data=data, **rest)

    def run_name(self, config: Any) -> str:
        return f"lstm-{config.data.dataset}-{config.setting}-seed{config.seed}"

    def setting(self, config: Any) -> str:
        return SETTING_NAMES[config.data.dataset]

    def data_label(self, config: Any) -> str:
        return config.data.dataset

    def memory_bytes(self, config: Any) -> float:
        """Data (float64 and a float32 copy), weights with Adam's state, what autograd keeps
        per step of a training batch, and the gate record of the evaluation."""
        d, h, layers = config.data, config.hidden, config.layers
        data = d.n_sequences * d.length * (8 * 3 + 4)
        params = layers * 4 * h * (h + h + 2) + h + 1
        n_train = config.n_train
        batch = config.batch_size or n_train
        train = batch * d.length * layers * h * 4 * 12
        steps = d.length + (config.generate_steps if config.eval_mode == "free" else 0)
        n_eval = config.eval_sequences or (d.n_test if config.split == "held-out" else n_train)
        evaluate = n_eval * steps * layers * h * 4 * 10
        return data + 4.0 * params * 5 + train + evaluate

    def validate(self, config: Any) -> None:
        """Generate two sequences: an ODE that diverges with these settings (e.g. a stiff Van
        der Pol mu) is refused before any row runs."""
        from dataclasses import replace

        from rdlens.systems.lstm import sequences

        with np.errstate(all="ignore"):
            sequences.make_sequences(replace(config.data, n_sequences=2, test_fraction=0.5))

    def prepare(self, config: Any, device: Any) -> Any:
        from rdlens.systems.lstm import sequences

        return sequences.make_sequences(config.data)

    def execute(self, config: Any, prepared: Any, ctx: RunContext) -> dict[str, Any]:
        from rdlens.systems.lstm import model as lstm
        from rdlens.plot import plot_gates, plot_predictions

        rd, data = ctx.dir, prepared
        with ctx.bars(f"LSTM {config.data.dataset}", config.steps) as bar, rd.stage("train"):
            trained = lstm.train(config, data, rd.path, device=ctx.device, resume=ctx.resume, progress=bar.update)
        with rd.stage("evaluate"):
            ev = lstm.evaluate(config, trained.model, data, ctx.device)
        name = SETTING_NAMES[config.data.dataset]
        measured = "held-out sequences" if config.split == "held-out" else "training sequences (split none)"
        with rd.stage("write"):
            ev.trace.save(rd.file("trace.csv"))
            save_losses(rd.file("losses.csv"), trained.losses)
            save_npz(rd.file("predictions.npz"), inputs=ev.inputs, outputs=ev.outputs, eval_mode=np.array(ev.eval_mode))
            plot_predictions(ev.inputs, ev.outputs, ev.eval_mode, rd.file("predictions.png"),
                             title=f"LSTM on {name}: {measured} ({ev.eval_mode} mode)")
            plot_gates({k: getattr(ev.record, k)[:, 0].cpu().numpy() for k in ("i", "f", "g", "o")},
                       ev.trace, rd.file("gates.png"), title=f"LSTM gates, {name}, {measured[:-1]} 0")
        protocol = (f"teacher-forced over {measured}, state from zeros" if ev.eval_mode == "teacher"
                    else f"free-running: warm-up on each of the {measured}, then {config.generate_steps} fed-back steps")
        return {**ev.trace.summary(), "eval_mode": ev.eval_mode, "eval_protocol": protocol,
                "eval_sequences": ev.n_sequences, "train_mse": ev.train_mse, "test_mse": ev.test_mse,
                "naive_mse": ev.naive_mse, "steps": trained.steps_done, "resumed_from_step": trained.resumed_from,
                "stopped_early": trained.stopped_early}

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [f"test MSE = {summary['test_mse']:.5f}   repeat-last-value MSE = {summary['naive_mse']:.5f}   "
                f"({summary['eval_mode']} mode)"]

    def controls(self, config: Any, run_dir: Path, device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from rdlens.systems.lstm import controls
        from rdlens.systems.lstm import model as lstm
        from rdlens.systems.lstm import sequences
        from rdlens.core.torchutil import load_checkpoint

        data = sequences.make_sequences(config.data)
        model = lstm.build_model(config, device)
        model.load_state_dict(load_checkpoint(run_dir / lstm.CHECKPOINT, device)["model"])
        model.eval()
        return controls.lstm_controls(config, model, data, lstm.evaluate(config, model, data, device), device)

    def claims(self, config: Any, run_dir: Path, device: Any) -> dict[str, Any]:
        """Claim 1: R(t) against the gates' activity, for the trained model and an untrained one
        (PyTorch's initialisation), on the row's held-out sequences."""
        from dataclasses import replace

        import torch

        from rdlens.systems.lstm import claims
        from rdlens.systems.lstm import model as lstm
        from rdlens.systems.lstm import sequences
        from rdlens.core.torchutil import load_checkpoint

        data = sequences.make_sequences(config.data)
        trained = lstm.build_model(config, device)
        trained.load_state_dict(load_checkpoint(run_dir / lstm.CHECKPOINT, device)["model"])
        out = {}
        for name, model in (("trained", trained), ("untrained", lstm.build_model(replace(config, init="pytorch"),
                                                                                 device))):
            ev = lstm.evaluate(config, model.eval(), data, device)
            i, f = (getattr(ev.record, k).mean(dim=2).double().cpu().numpy() for k in ("i", "f"))
            reaction, diffusion = (torch.linalg.vector_norm(x, dim=-1).double().cpu().numpy()
                                   for x in (ev.record.reaction, ev.record.diffusion))
            out[name] = claims.gate_correlations(reaction, diffusion, i, f)
        return {"gates": out}

    def control_sentence(self, controls: dict[str, Any], bound: str) -> str:
        return (f"; the update identity bounds R to {bound} for any weights (telescoping residual "
                f"{controls['identities']['telescoping_residual']['mean']:.3f})")

    def draw_panel(self, ax: Any, run_dir: Path) -> str:
        ax.set_axis_on()
        with np.load(run_dir / "predictions.npz") as z:
            x, y, mode = z["inputs"][0], z["outputs"][0], str(z["eval_mode"])
        ax.plot(np.arange(len(x)), x, "k", lw=0.8)
        start = 1 if mode == "teacher" else len(x)
        ax.plot(np.arange(start, start + len(y)), y, ls="--", lw=0.8, color="C1" if mode == "teacher" else "C3")
        ax.tick_params(labelsize=8)
        return f" ({mode})"
