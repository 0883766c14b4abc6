"""Gray-Scott stepping speed: rdlens's fused kernel against a plain NumPy implementation.

Measures, in one process, cell-updates per second for
  - numpy:    np.roll Laplacian, explicit Euler, both norms each step (grayscott.reference_step)
  - rdlens:   the fused numba kernel with all norms every step (what `rdlens rd` runs)
  - unmeasured: the same kernel with no norms (to show what measuring costs)
  - +residual: the kernel with both norms and the steady-state residual ||dv/dt||
at N = 256 and 1024, float32 and float64, and prints the ratios. Best of --repeat timings.

    python benchmarks/bench_grayscott.py [--repeat 7] [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import time

import numba

from rdlens import grayscott as gs


def best_rates(fns, cells: int, seconds: float, repeat: int) -> list[float]:
    """Cell-updates/s of each fn(nsteps), best of ``repeat`` rounds of about ``seconds`` each.

    The functions are timed in turn within every round, so a load that comes and goes on
    this shared machine hits all of them alike, and each timed run follows a short untimed
    one (warm caches and worker threads).
    """
    nsteps = []
    for fn in fns:
        fn(1)  # warm up (compilation, caches)
        t0 = time.perf_counter()
        fn(2)
        nsteps.append(max(2, int(seconds / max((time.perf_counter() - t0) / 2, 1e-7))))
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for j, fn in enumerate(fns):
            fn(max(1, nsteps[j] // 10))
            t0 = time.perf_counter()
            fn(nsteps[j])
            best[j] = min(best[j], time.perf_counter() - t0)
    return [cells * k / b for k, b in zip(nsteps, best)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3, help="target duration of one timed run")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    args = ap.parse_args()
    print(f"numba threads: {numba.get_num_threads()}, repeat: {args.repeat}, ~{args.seconds}s per timing")
    print(f"{'N':>5} {'dtype':>8} {'numpy Mcell/s':>14} {'rdlens Mcell/s':>15} {'unmeasured':>11} "
          f"{'rdlens/numpy':>13} {'norm cost':>10} {'+residual':>13}")
    for n in args.sizes:
        for dtype in ("float32", "float64"):
            p = gs.GrayScott(F=0.055, size=n, length=n * 0.01, dtype=dtype)
            u0, v0 = gs.pearson_init(p, seed=0, square=n // 4)

            def numpy_steps(k: int) -> None:
                u, v = u0.copy(), v0.copy()
                for _ in range(k):
                    u, v, _r, _d = gs.reference_step(u, v, p)

            stepper = gs.Stepper(p, u0, v0)
            # NumPy is timed on its own: interleaved with the kernels, its long single-threaded
            # runs leave the next kernel timing slow (idle workers, evicted caches).
            (rate_np,) = best_rates([numpy_steps], n * n, args.seconds, args.repeat)
            rate_measured, rate_resid, rate_plain = best_rates(
                [stepper.advance, lambda k: stepper.advance(k, residual=True), stepper.advance_unmeasured],
                n * n, args.seconds, args.repeat,
            )
            print(f"{n:>5} {dtype:>8} {rate_np / 1e6:>14.0f} {rate_measured / 1e6:>15.0f} {rate_plain / 1e6:>11.0f} "
                  f"{rate_measured / rate_np:>12.1f}x {rate_plain / rate_measured - 1:>+9.1%} "
                  f"{rate_plain / rate_resid - 1:>+13.1%}")
    print("norm cost = extra time per step of measuring both norms every step vs not measuring;")
    print("+residual = the same with ||dv/dt|| as well (rdlens rd --residual, early stopping)")


if __name__ == "__main__":
    main()
