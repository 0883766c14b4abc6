"""Effect on R of each protocol difference from the public code (the rows of differences.md).

Every switch is flipped from the public code's side (the `authors` profile's value) to
rdlens's, with everything else as the `authors` profile has it, on the same seed; the spread
over seeds of the public-code side is printed beside it, so that an effect can be read
against the noise the public code's unseeded start would add anyway.

    python benchmarks/measure_differences.py [--seeds 5] [--ddpm-steps 300] [--skip-ddpm]

RD rows: the authors' 201 x 201 grid, 5000 steps (seconds each). LSTM rows: the authors'
settings (200 full-batch epochs). DDPM: the `authors` U-Net is meant for a GPU, so the two
DDPM switches are measured on rdlens's small default U-Net on the offline digits (300 steps
of batch 32, about 5 epochs of its 1,797 images, as the public code trains 5 epochs): the
float32 schedule on the same trained weights and noise, the epoch-wise batches by training
both ways.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from rdlens import reproduce as R


def _configs() -> dict[str, object]:
    profile = R.load_profile("authors")
    return {row.id: R.plan_row(row, profile, 0, None).config for row in R.profile_rows(profile)
            if row.system in ("rd", "lstm")}


def _rd(config, **change) -> tuple[float, float, int]:
    from rdlens import grayscott

    c = replace(config, **change)
    res = grayscott.run(c.model, c.steps, c.seed, stop_tol=c.stop_tol, stop_after=c.stop_after, norms=c.norms,
                        square_shift=c.square_shift)
    return res.trace.R, res.trace.final_R, res.steps


def _lstm(config, **change) -> tuple[float, float, int]:
    from rdlens import lstm, sequences

    c = replace(config, **change)
    c = replace(c, data=replace(c.data, seed=c.seed))
    data = sequences.make_sequences(c.data)
    trained = lstm.train(c, data)
    ev = lstm.evaluate(c, trained.model, data)
    return ev.trace.R, ev.trace.final_R, trained.steps_done


def _line(row: str, area: str, public: tuple, ours: tuple, spread: float) -> None:
    print(f"{row:15s} {area:26s} R {public[0]:.6f} (public side, {public[2]} steps) -> {ours[0]:.6f} (rdlens, "
          f"{ours[2]} steps): dR = {ours[0] - public[0]:+.2e}; final R {public[1]:.6f} -> {ours[1]:.6f}; "
          f"seed s.d. of R {spread:.2e}")


def rd_and_lstm(seeds: int) -> None:
    for row, config in _configs().items():
        run = _rd if row.startswith("rd") else _lstm
        base = run(config)
        spread = statistics.stdev([run(config, seed=s)[0] for s in range(seeds)]) if seeds > 1 else float("nan")
        if row.startswith("rd"):
            _line(row, "start square (shift 1->0)", base, run(config, square_shift=0), spread)
            plain = replace(config, norms="rdlens", stop_tol=0.0, stop_measure="rms")
            _line(row, "  the same, rdlens norms", run(plain), run(plain, square_shift=0), spread)
            _line(row, "early stop (1e-6 -> none)", base, run(config, stop_tol=0.0), spread)
        else:
            _line(row, "split (none -> held-out)", base, run(config, split="held-out"), spread)
            _line(row, "early stop (1e-6 -> none)", base, run(config, stop_tol=0.0), spread)


def ddpm_effects(steps: int) -> None:
    import torch

    from rdlens import ddpm
    from rdlens.systems import get

    system = get("ddpm")
    base = system.build({"steps": steps, "samples": 8})
    images = system.prepare(base, "cpu")
    shape = (base.samples, *images.shape[1:])
    results = {}
    for batches in ("epochs", "random"):
        for seed in (0, 1):
            cfg = replace(base, batches=batches, seed=seed)
            t0 = time.perf_counter()
            trained = ddpm.train(cfg, images)
            torch.manual_seed(cfg.seed)
            draws = {dtype: ddpm.sample(trained.ema_model, shape, replace(cfg.schedule, dtype=dtype), seed=cfg.seed,
                                        sigma=cfg.sigma).trace for dtype in ("float32", "float64")}
            results[batches, seed] = draws
            a, b = draws["float32"], draws["float64"]
            rel = float(abs(a.reaction - b.reaction).max() / abs(b.reaction).max())
            print(f"ddpm digits batches={batches} seed={seed} ({time.perf_counter() - t0:.0f} s): "
                  f"R float32 schedule {a.R:.6f} -> float64 {b.R:.6f}: dR = {b.R - a.R:+.2e}, "
                  f"largest reaction-norm difference {rel:.1e} of the largest norm")
    for seed in (0, 1):
        e, r = results["epochs", seed]["float32"].R, results["random", seed]["float32"].R
        print(f"ddpm digits seed={seed}: R epochs {e:.4f} -> random {r:.4f}: dR = {r - e:+.4f}")
    seeds = [results["epochs", s]["float32"].R for s in (0, 1)]
    print(f"ddpm digits: seed-to-seed |dR| (epochs, seeds 0 and 1) {abs(seeds[1] - seeds[0]):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5, help="seeds for the spread of the public-code side")
    ap.add_argument("--ddpm-steps", type=int, default=300)
    ap.add_argument("--skip-ddpm", action="store_true")
    args = ap.parse_args()
    rd_and_lstm(args.seeds)
    if not args.skip_ddpm:
        ddpm_effects(args.ddpm_steps)


if __name__ == "__main__":
    main()
