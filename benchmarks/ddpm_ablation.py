"""Does conditioning on (F, k), or a physics term in the loss, make a DDPM draw steady states?

Makes the patterns study's ground truth once (stationary Gray-Scott fields at each setting),
then trains one DDPM per variant on it (the study's U-Net and training, the same seed and
steps) and judges every sample as the study does (rdlens.studies.patterns.measure_fields):
steady = relative residual under the true dynamics < 0.05 and correlation >= 0.9 after 2,000
more true steps; an unconditioned sample is judged at the setting where its residual is
smallest, a conditioned one at its own.

    python benchmarks/ddpm_ablation.py --steps 3000

Prints one line per variant (steady share, residual, wavelength, class mix and its total
variation from Gray-Scott's, R of the reverse process, training time) and writes
``ablation.json`` to ``--out`` when given.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from _ablation import judge, line, record, save

from rdlens.measures import patterns as P
from rdlens.studies.patterns import PatternsConfig, sample_settings, steady_residual
from rdlens.systems.ddpm import model as ddpm

VARIANTS = {
    "unconditioned": {"conditions": 0, "physics_weight": 0.0},
    "conditioned": {"conditions": 2, "physics_weight": 0.0},
    "conditioned+physics": {"conditions": 2, "physics_weight": 10.0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3000, help="optimiser steps per variant")
    ap.add_argument("--patterns", type=int, default=32, help="ground-truth fields per setting")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--T", type=int, default=1000, help="diffusion steps")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--physics-weight", type=float, default=None, help="override the physics variant's weight")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    study = PatternsConfig(patterns=args.patterns)
    t0 = time.perf_counter()
    models, u, v, _ = P.starts(study.data.model, study.setting_pairs, 1_000_000 + args.seed, args.patterns,
                               study.data.start_squares)
    (u_end, v_end, _), = P.advance(models, u, v, study.steps)
    F, k = np.array([m.F for m in models]), np.array([m.k for m in models])
    print(f"ground truth: {len(F)} fields, {study.steps} Gray-Scott steps: {time.perf_counter() - t0:.0f} s", flush=True)
    reference = judge(study, u_end, v_end, F, k)
    print(line("Gray-Scott", reference), flush=True)
    results = {"gray-scott": reference}
    images = torch.from_numpy(P.to_unit(u_end, v_end))
    for name in args.variants.split(","):
        values = dict(VARIANTS[name])
        if args.physics_weight is not None and values["physics_weight"]:
            values["physics_weight"] = args.physics_weight
        base = study.ddpm_config(args.seed)
        cfg = replace(base, steps=args.steps, samples=args.samples, physics_weight=values["physics_weight"],
                      schedule=replace(base.schedule, T=args.T),
                      unet=replace(base.unet, conditions=values["conditions"]))
        t1 = time.perf_counter()
        conditioned = cfg.unet.conditions > 0
        result = ddpm.train(cfg, images, None, conditions=torch.from_numpy(P.conditions(F, k)) if conditioned else None,
                            physics=steady_residual(study, F, k) if cfg.physics_weight else None)
        train_s = time.perf_counter() - t1
        eps_model, at = result.ema_model, (None, None)
        if conditioned:
            sF, sk = sample_settings(study, cfg.samples)
            cond = torch.from_numpy(P.conditions(sF, sk))
            eps_model, at = (lambda x, s: result.ema_model(x, s, cond)), (sF, sk)
        n = study.data.model.size
        out = ddpm.sample(eps_model, (cfg.samples, 2, n, n), cfg.schedule, seed=args.seed + 2, sigma=cfg.sigma)
        su, sv = P.from_unit(out.samples.double().numpy())
        res = judge(study, su, sv, *at)
        record(results, name, res, reference, R=out.trace.R, train_s=train_s,
               final_loss=float(np.mean(result.losses[-50:])))
    save(args, results)


if __name__ == "__main__":
    main()
