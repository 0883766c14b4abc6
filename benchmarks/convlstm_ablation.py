"""Which stabiliser makes a ConvLSTM's rollouts settle into true Gray-Scott steady states?

Trains one ConvLSTM per variant (the same seed, data and steps; each stabiliser on alone, then
all together) on Gray-Scott trajectories at the given (F, k) settings, rolls each out from
starts it never saw to ``--factor`` times its training horizon, and judges every final field
as the patterns study does (rdlens.studies.patterns.measure_fields): steady = relative residual
under the true dynamics < 0.05 and correlation >= 0.9 with itself after 2,000 more true steps.
Gray-Scott itself from the same starts over the same time is the reference.

    python benchmarks/convlstm_ablation.py --steps 1500 --factor 10

Prints one line per variant (steady share, blown-up share, residual, wavelength, class mix
and its total variation from Gray-Scott's, R of the rollout, training time) and writes
``ablation.json`` to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _ablation import judge, line, record, save

from rdlens.core.balance import BalanceTrace
from rdlens.measures import patterns as P
from rdlens.studies.patterns import PatternsConfig
from rdlens.systems.convlstm import model as convlstm
from rdlens.systems.convlstm.model import SEED_OFFSETS, ConvLSTMConfig, Trajectories

VARIANTS = {
    "baseline": {},
    "noise": {"input_noise": 0.02},
    "curriculum": {"window_final": 20},
    "pool": {"pool": 256, "pool_share": 0.5},
    "all": {"input_noise": 0.02, "window_final": 20, "pool": 256, "pool_share": 0.5},
}
"""each stabiliser alone, then all of them; values as the patterns profiles set them"""


def data(d: Trajectories, seed: int, rollouts: int, factor: int) -> dict[str, np.ndarray]:
    pairs = P.parse_settings(d.settings)
    models, u, v, _ = P.starts(d.model, pairs, seed + SEED_OFFSETS["trajectory"], d.trajectories, d.start_squares)
    x, _ = P.trajectories(models, u, v, d.frame_every, d.frames)
    rmodels, ru, rv, _ = P.starts(d.model, pairs, seed + SEED_OFFSETS["rollout"], rollouts, d.start_squares)
    (tu, tv, _), = P.advance(rmodels, ru, rv, d.frame_every * d.frames * factor)
    return {"x": x, "settings": np.array([[m.F, m.k] for m in models]), "start": P.to_unit(ru, rv),
            "rsettings": np.array([[m.F, m.k] for m in rmodels]), "truth_u": tu, "truth_v": tv}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500, help="optimiser steps per variant")
    ap.add_argument("--factor", type=int, default=10, help="rollout length in training horizons")
    ap.add_argument("--rollouts", type=int, default=8, help="unseen starts per setting")
    ap.add_argument("--settings", default="0.029:0.062,0.055:0.062")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--kernel", type=int, default=3, help="side of the gate convolution")
    ap.add_argument("--hidden", type=int, default=32, help="hidden channels")
    ap.add_argument("--frame-every", type=int, default=50, help="Gray-Scott steps per ConvLSTM step")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = Trajectories(settings=args.settings, frame_every=args.frame_every)
    study = PatternsConfig(data=d)
    t0 = time.perf_counter()
    got = data(d, args.seed, args.rollouts, args.factor)
    print(f"data: {got['x'].shape[0]} trajectories of {d.frames} frames, {len(got['start'])} unseen starts, "
          f"Gray-Scott to {args.factor}x the horizon: {time.perf_counter() - t0:.0f} s", flush=True)
    reference = judge(study, got["truth_u"], got["truth_v"], got["rsettings"][:, 0], got["rsettings"][:, 1])
    print(line("Gray-Scott", reference), flush=True)
    results = {"gray-scott": reference}
    x = torch.from_numpy(got["x"])
    cond = torch.from_numpy(P.conditions(got["settings"][:, 0], got["settings"][:, 1]))
    rcond = torch.from_numpy(P.conditions(got["rsettings"][:, 0], got["rsettings"][:, 1]))
    for name in args.variants.split(","):
        cfg = replace(ConvLSTMConfig(data=d, steps=args.steps, seed=args.seed, kernel=args.kernel, hidden=args.hidden),
                      **VARIANTS[name])
        t1 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # a fresh start for every variant
            model, done = convlstm.train(cfg, x, cond, Path(tmp) / "checkpoint.pt", settings=got["settings"])
        train_s = time.perf_counter() - t1
        frames, rec = model.rollout(torch.from_numpy(got["start"]), d.frames * args.factor, rcond)
        u, v = P.from_unit(frames[:, -1].numpy())
        res = judge(study, u, v, got["rsettings"][:, 0], got["rsettings"][:, 1])
        record(results, name, res, reference, R=BalanceTrace.from_samples(rec.reaction, rec.diffusion).R,
               train_s=train_s, final_loss=float(np.mean(done.losses[-50:])))
    save(args, results)


if __name__ == "__main__":
    main()
