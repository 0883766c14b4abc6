"""Fixed cost per call of ``grayscott.run``: a short run's cell rate against the bare kernel's.

A library user calls ``grayscott.run(model, steps=200)`` in a loop; every call pays the setup
(the start, the thread decision, the trace) on top of the kernel. This times, in one process
and in turn (so a load that comes and goes hits both alike), best of ``--repeat``:

  - kernel: ``Stepper.advance(steps)`` from Pearson's start on fields prepared (allocated and
    touched) before the timing, at the thread count ``run`` chooses: the same states ``run``
    steps through, so the same arithmetic (the kernel's speed depends on the state: advancing
    one stepper on and on times other states than a run's first steps)
  - run:    ``grayscott.run(model, steps=steps)`` end to end

and prints run / kernel (target >= 0.9 at 512^2 and 200 steps).

    python benchmarks/bench_call_overhead.py [--size 512] [--steps 200] [--repeat 7]
"""

from __future__ import annotations

import argparse

import numba
import numpy as np
from _timing import interleaved_best

from rdlens import grayscott as gs
from rdlens import threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    model = gs.GrayScott(size=args.size, length=args.size / 100)
    u0, v0 = gs.pearson_init(model, 0)
    cells = args.size**2 * args.steps

    def prepared() -> gs.Stepper:
        """A stepper at Pearson's start whose buffers have been touched (two steps, then rewound)."""
        stepper = gs.Stepper(model, u0, v0)
        stepper.advance_unmeasured(2)  # an even count: the fields are back in their first buffers
        np.copyto(stepper.u, u0)
        np.copyto(stepper.v, v0)
        stepper.step = 0
        return stepper

    ready = [prepared() for _ in range(args.repeat + 1)]  # one per timing, and the warm-up

    def kernel() -> None:
        """The kernel alone, at the thread count a run takes, decided per call as a run does
        (a stage around the whole timing would let each run's own stage reset it on exit)."""
        stepper = ready.pop()
        with threads.stage("Gray-Scott", parallel=model.size >= gs.PARALLEL_SIZE, adapt=True):
            stepper.advance(args.steps, 0.0, 100, False)

    def run() -> None:
        gs.run(model, steps=args.steps)

    kernel(), run()  # compile, warm caches and worker threads
    best = interleaved_best({"kernel": kernel, "run": run}, args.repeat)
    print(f"{args.size}^2, {args.steps} steps, numba threads up to {numba.config.NUMBA_NUM_THREADS}, "
          f"threads chosen {threads.record()['threads_by_stage'].get('Gray-Scott')}")
    for name, t in best.items():
        print(f"  {name:<7} {t * 1e3:8.1f} ms   {cells / t / 1e9:6.3f} G cell-updates/s")
    print(f"run / kernel rate: {best['kernel'] / best['run']:.3f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
