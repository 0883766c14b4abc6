"""Gray-Scott reaction-diffusion as an rdlens system (physics: :mod:`rdlens.systems.grayscott.model`).

Settings are the fields of :class:`rdlens.systems.grayscott.model.RDRun` and its model
:class:`~rdlens.systems.grayscott.model.GrayScott` (``F``, ``k``, ``steps``, ``size`` ...). A run writes
the final v field (``v.png``), ``balance.png``, ``trace.csv``, ``snapshots.npz`` (with
``snapshot_every``) and ``state.npz`` (with ``save_state``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rdlens.core.errors import ConfigError
from rdlens.core.rundir import RunContext
from rdlens.core.rundir import save_npz
from rdlens.systems.base import System


class RD(System):
    name = "rd"
    title = "RD"
    help = "run a Gray-Scott reaction-diffusion simulation and measure its balance"
    description = ("Gray-Scott reaction-diffusion on a periodic grid (explicit Euler, 5-point Laplacian).\n"
                   "Writes the final v field, trace.csv, summary.json, config.json and manifest.json to a new run\n"
                   "directory. Defaults are the paper's: --F 0.029 gives spots, --F 0.055 stripes.")
    color = "C0"
    help_overrides = {"size": "grid points per side N (default: 200, or the --init file's size)"}
    # a reproduce row keeps the final state (for patterns.png) and the residual (for its controls)
    reproduce_defaults = {"snapshot_every": 0, "save_state": True, "residual": True}
    control_labels = {"homogeneous": "homogeneous start (no pattern)"}

    def config_type(self) -> type:
        from rdlens.systems.grayscott.model import RDRun

        return RDRun

    def build(self, values: dict[str, Any]) -> Any:
        """As the base class, except that an ``init`` file sets ``size`` and ``length`` (the
        grid spacing) unless they are given, and a given pair that changes its spacing is refused."""
        init = values.get("init")
        if init is None:
            return super().build(values)
        from rdlens.systems.grayscott.model import GrayScott, load_state, state_metadata

        size = load_state(init)[0].shape[0]
        meta = state_metadata(init)
        values = {**values, "size": values.get("size", size)}
        if "length" in meta:
            values.setdefault("length", meta["length"])
            h_file, h_run = meta["length"] / size, values["length"] / values["size"]
            if not math.isclose(h_file, h_run, rel_tol=1e-12):
                raise ConfigError(f"{init} was saved on a grid of spacing h = {h_file:g} (length {meta['length']:g}, "
                                  f"{size} x {size}); this run's length {values['length']:g} and size "
                                  f"{values['size']} give h = {h_run:g}: drop --length/--size to keep the spacing")
        elif "length" not in values and size != GrayScott.size:
            raise ConfigError(f"{init} records no domain length; with the default length {GrayScott.length:g} its "
                              f"{size} x {size} grid would have spacing {GrayScott.length / size:g} instead of "
                              f"{GrayScott.length / GrayScott.size:g}: give --length")
        return super().build(values)

    def run_name(self, config: Any) -> str:
        return f"rd-F{config.model.F:g}-k{config.model.k:g}-seed{config.seed}"

    def setting(self, config: Any) -> str:
        return f"F={config.model.F:g}, k={config.model.k:g}"

    def data_label(self, config: Any) -> str:
        return f"F = {config.model.F}, k = {config.model.k}"

    def memory_bytes(self, config: Any) -> float:
        """Four fields and two work arrays, the snapshots, and the trace."""
        cells = config.model.size ** 2
        item = 4 if config.model.dtype == "float32" else 8
        snaps = config.steps // config.snapshot_every if config.snapshot_every else 0
        return cells * (6 * item + 8 * snaps) + 40.0 * config.steps

    def prepare(self, config: Any, device: Any) -> Any:
        if config.init is None:
            return None
        from rdlens.systems.grayscott import model as grayscott

        init = grayscott.load_state(config.init)
        grayscott.check_state(config.model, *init, source=str(config.init))
        return init

    def execute(self, config: Any, prepared: Any, ctx: RunContext) -> dict[str, Any]:
        import numba

        from rdlens.systems.grayscott import model as grayscott
        from rdlens.plot import plot_balance, plot_field

        rd = ctx.dir
        with ctx.bars("Gray-Scott", config.steps) as bar, rd.stage("simulate"):
            result = grayscott.run(config.model, config.steps, config.seed, init=prepared,
                                   snapshot_every=config.snapshot_every, stop_tol=config.stop_tol,
                                   stop_after=config.stop_after, residual=config.residual, norms=config.norms,
                                   square_shift=config.square_shift, progress=bar.update)
        with rd.stage("write"):
            result.trace.save(rd.file("trace.csv"))
            plot_field(result.v, rd.file("v.png"),
                       title=f"Gray-Scott v, F={config.model.F:g}, k={config.model.k:g}, step {result.steps}")
            plot_balance(result.trace, rd.file("balance.png"))
            if result.snapshots:
                save_npz(rd.file("snapshots.npz"), step=np.array([s for s, _ in result.snapshots]),
                         v=np.stack([v for _, v in result.snapshots]))
            if config.save_state:
                m = config.model
                save_npz(rd.file("state.npz"), u=result.u, v=result.v,
                         **{k: np.float64(getattr(m, k)) for k in ("length", "F", "k", "Du", "Dv", "dt")})
        ctx.manifest.update(kernel="numba fused stencil", numba_threading_layer=numba.threading_layer())
        fields = {**result.trace.summary(), "steps": result.steps, "stopped_early": result.stopped_early,
                  "init": config.init or "pearson", "wall_time_s": result.wall_time_s, "norms": config.norms}
        if "residual" in result.trace.extra:
            fields["final_residual"] = float(result.trace.extra["residual"][-1])
        return fields

    def controls(self, config: Any, run_dir: Path, device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        from rdlens.systems.grayscott import controls
        from rdlens.core.balance import BalanceTrace

        return controls.rd_controls(config, BalanceTrace.load(run_dir / "trace.csv"))

    def claims(self, config: Any, run_dir: Path, device: Any) -> dict[str, Any] | None:
        """Claim 6: how far the residual identity alone confines R at the end of the run
        (dv/dt = reaction + diffusion, so |R_t - 1| <= ||dv/dt|| / ||diffusion||)."""
        from rdlens.core.balance import BalanceTrace

        trace = BalanceTrace.load(run_dir / "trace.csv")
        if "residual" not in trace.extra or not trace.reaction[-1] > 0:
            return None
        e = float(trace.extra["residual"][-1] / trace.reaction[-1])
        return {"final_R": trace.final_R, "relative_residual_final": e,
                "final_R_bounds": [1 / (1 + e), 1 / (1 - e) if e < 1 else math.inf]}

    def control_sentence(self, controls: dict[str, Any], bound: str) -> str:
        end = controls["relative_residual_final"]["mean"]
        end_high = f"{1 / (1 - end):.3f}" if end < 1 else "inf"
        return (f"; since dv/dt = reaction + diffusion, the residual alone bounds R to {bound} whatever the "
                f"pattern; the relative residual ||dv/dt|| / ||reaction|| ends at {end:.2g}, which confines "
                f"final R to [{1 / (1 + end):.3f}, {end_high}]")

    def draw_panel(self, ax: Any, run_dir: Path) -> str:
        with np.load(run_dir / "state.npz") as z:
            im = ax.imshow(z["v"], cmap="viridis", origin="lower")
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="v")
        return ""
