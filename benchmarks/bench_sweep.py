"""The (F, k) sweep's speed, as ratios against baselines measured in the same run.

1. the batched kernel against a Python loop of single runs over the same points (64x64);
2. the batched kernel's cell-updates/s against the single-run kernel's at 256x256;
3. a sweep on the embedded Dask cluster against the batched kernel alone in this process
   (the same points; with and without the cluster's start-up);
4. the single-run kernel at 1024x1024 float64 as a fraction of this machine's copy bandwidth
   (the kernel reads u, v and writes them once per step: 4 arrays of 8 MiB; a plain copy of
   two such arrays moves the same bytes).

    python benchmarks/bench_sweep.py [--points 16] [--steps 2000] [--repeat 3]

Targets (issue 12): (1) >= 3x, (2) >= 90 %, (3) overhead <= 10 %, (4) >= 90 %.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numba
import numpy as np

from bench_lstm_probe import best_time  # the same best-of-N timer (warm-up call first)

from rdlens import grayscott as gs
from rdlens import sweep, threads


def models_for(n: int, size: int) -> list[gs.GrayScott]:
    Fs = np.linspace(0.02, 0.06, n)
    return [gs.GrayScott(F=float(F), k=0.06, size=size, length=size * 0.01) for F in Fs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sweep-side", type=int, default=16, help="benchmark 3: a side x side grid of (F, k)")
    ap.add_argument("--sweep-steps", type=int, default=20000, help="benchmark 3: steps per point")
    args = ap.parse_args()
    cores = threads.available_cores()
    numba.set_num_threads(min(cores, numba.config.NUMBA_NUM_THREADS))
    print(f"cores available {cores}, numba threads {numba.get_num_threads()}")

    # 1. batched vs a loop of single runs, 64x64
    ms = models_for(args.points, 64)
    u, v = gs.pearson_init(ms[0], 0)
    loop = lambda: [gs.Stepper(m, u, v).advance(args.steps, residual=True) for m in ms]  # noqa: E731
    batch = lambda: gs.BatchStepper(ms, np.stack([u] * len(ms)), np.stack([v] * len(ms))).advance(args.steps)  # noqa: E731
    loop(), batch()  # compile
    t_loop, t_batch = best_time(loop, args.repeat), best_time(batch, args.repeat)
    print(f"1. {args.points} points x {args.steps} steps at 64x64: loop of single runs {t_loop:.3f} s, "
          f"batched {t_batch:.3f} s -> batched is {t_loop / t_batch:.2f}x faster (target >= 3x)")

    # 2. cell-updates/s at 256x256: batched (4 grids) vs single runs
    ms = models_for(4, 256)
    u, v = gs.pearson_init(ms[0], 0)
    steps = max(100, args.steps // 8)
    single = lambda: [gs.Stepper(m, u, v).advance(steps, residual=True) for m in ms]  # noqa: E731
    batched = lambda: gs.BatchStepper(ms, np.stack([u] * 4), np.stack([v] * 4)).advance(steps)  # noqa: E731
    cells = 4 * 256**2 * steps
    r_single, r_batch = cells / best_time(single, args.repeat), cells / best_time(batched, args.repeat)
    print(f"2. 256x256: single-run kernel {r_single / 1e9:.2f} G cell-updates/s, batched {r_batch / 1e9:.2f} G "
          f"-> {r_batch / r_single:.0%} (target >= 90 %)")

    # 2b. a point whose v dies against a live one (the kernel flushes subnormal v to 0)
    dying, live = (gs.GrayScott(F=F, k=k, size=64, length=0.64) for F, k in ((0.01, 0.07), (0.055, 0.062)))
    times = []
    for m in (dying, live):
        u0, v0 = gs.pearson_init(m, 0)
        st = gs.Stepper(m, u0, v0)
        st.advance(15000)  # by now the dying v has decayed below 1e-300
        times.append(best_time(lambda: st.advance(1000), args.repeat))
    print(f"2b. 64x64, 1000 steps after step 15000: a dying point {times[0] * 1e3:.1f} ms, a live one "
          f"{times[1] * 1e3:.1f} ms -> {times[0] / times[1]:.2f}x (subnormal v would make it ~17x)")

    # 3. the sweep on the embedded cluster vs the batched kernel alone (same points; both timed
    #    from a fresh process, so both pay numba's compile once: the workers compile in parallel)
    side = args.sweep_side
    cfg = sweep.SweepConfig(F=f"0.02:0.06:{side}", k=f"0.055:0.065:{side}", steps=args.sweep_steps, samples=40)
    code = ("import time, sys; t0 = time.perf_counter(); from rdlens import sweep, threads; "
            f"threads.POLICY.configure({cores}); cfg = sweep.from_json({asdict(cfg)!r}); "
            "sweep.run_tile(cfg, list(range(cfg.n_points))); print(time.perf_counter() - t0)")
    alone = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import time; t0 = time.perf_counter(); from rdlens import sweep; "
                f"cfg = sweep.from_json({asdict(cfg)!r}); sweep.run_sweep(cfg, {str(Path(tmp) / 'sweep')!r}, "
                f"workers={cores}); "
                "print(time.perf_counter() - t0)")
        script = Path(tmp) / "run.py"  # the workers are spawned: the main module must be a file
        script.write_text(f"if __name__ == '__main__':\n    exec({code!r})\n")
        total = float(subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                                     check=True).stdout.split()[-1])
    print(f"3. {cfg.n_points} points x {cfg.steps} steps, each from a fresh process: batched kernel alone on "
          f"{cores} threads {alone:.1f} s; sweep on the embedded cluster ({cores} workers) {total:.1f} s "
          f"-> overhead {total / alone - 1:+.1%} (target <= 10 %)")

    # 4. 1024x1024 float64 single-run kernel vs copy bandwidth
    m = gs.GrayScott(size=1024, length=10.24)
    u, v = gs.pearson_init(m, 0)
    st = gs.Stepper(m, u, v)
    st.advance_unmeasured(2)
    t_step = best_time(lambda: st.advance_unmeasured(20), args.repeat) / 20
    a, b = np.random.rand(2, 1024, 1024), np.empty((2, 1024, 1024))
    t_copy = best_time(lambda: np.copyto(b, a), args.repeat * 5)
    bytes_step = 4 * 1024**2 * 8
    print(f"4. 1024x1024 float64: kernel {bytes_step / t_step / 1e9:.1f} GB/s effective, plain copy "
          f"{bytes_step / t_copy / 1e9:.1f} GB/s -> {t_copy / t_step:.0%} of copy bandwidth (target >= 90 %)")


if __name__ == "__main__":
    main()
