"""Cost of measuring an LSTM's gates: rdlens.lstm.probe against the fused nn.LSTM forward.

Both run in this process on the same module and input (batch 64 x 200 steps, 1 input,
16 hidden units, float32 by default), best of --repeat timings, and the ratio is printed.

    python benchmarks/bench_lstm_probe.py [--batch 64] [--steps 200] [--hidden 16] [--repeat 20]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from rdlens.lstm import probe


def best_time(fn, repeat: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    lstm = nn.LSTM(1, args.hidden, args.layers, batch_first=True).to(dtype).eval()
    x = torch.randn(args.batch, args.steps, 1, dtype=dtype)

    def fused() -> None:
        with torch.no_grad():
            lstm(x)

    t_fused = best_time(fused, args.repeat)
    t_probe = best_time(lambda: probe(lstm, x), args.repeat)
    err = (probe(lstm, x)[-1].h.transpose(0, 1) - lstm(x)[0]).abs().max().item()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch} x {args.steps} steps, "
          f"hidden {args.hidden}, layers {args.layers}, {args.dtype}, best of {args.repeat}")
    print(f"fused nn.LSTM forward: {t_fused * 1e3:8.2f} ms")
    print(f"rdlens probe (gates):  {t_probe * 1e3:8.2f} ms")
    print(f"probe / fused:         {t_probe / t_fused:8.1f}x   (max |h - h_ref| = {err:.1e})")


if __name__ == "__main__":
    main()
