"""DDPM speed on this machine: training and sampling throughput of the default U-Net, the
training step's achieved FLOP/s against measured dense matmul FLOP/s, and what the sampler's
instrumentation (four norms per step and image) costs against a plain Algorithm-2 loop.

    python benchmarks/bench_ddpm.py [--batch 32] [--sample-batch 16] [--T 100] [--repeat 3]

Everything is measured in this process; FLOPs of one training step are counted by
torch.utils.flop_counter (convolutions and matmuls, forward and backward).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from rdlens import ddpm
from rdlens.unet import UNet, n_params


def matmul_flops(n: int = 2048, repeat: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def plain_sample(model, shape, schedule: ddpm.Schedule, seed: int) -> torch.Tensor:
    """Ho et al. Algorithm 2 with nothing measured: the baseline for the instrumented sampler."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen)
    sig = schedule.sigmas("beta")
    with torch.no_grad():
        for s in range(schedule.T - 1, -1, -1):
            b, a, ab = (float(v[s]) for v in (schedule.betas, schedule.alphas, schedule.alpha_bars))
            eps = model(x, torch.full((shape[0],), s, dtype=torch.long))
            x = (x - b / math.sqrt(1 - ab) * eps) / math.sqrt(a)
            if s > 0:
                x = x + float(sig[s]) * torch.randn(shape, generator=gen)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=32, help="training batch (the default preset's)")
    ap.add_argument("--sample-batch", type=int, default=16)
    ap.add_argument("--T", type=int, default=100, help="reverse steps timed (per-step cost is what matters)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cfg = ddpm.config_for("default")
    torch.manual_seed(0)
    model = UNet(cfg.unet)
    schedule = ddpm.Schedule()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    x0 = torch.randn(args.batch, 1, 32, 32)

    def train_step() -> None:
        loss = ddpm.loss(model, schedule, x0)
        opt.zero_grad()
        loss.backward()
        opt.step()

    train_step()
    with FlopCounterMode(display=False) as counter:
        train_step()
    flops = counter.get_total_flops()
    t_train = min(_timed(train_step) for _ in range(args.repeat))
    peak = matmul_flops()

    model.eval()
    short = ddpm.Schedule(T=args.T)
    shape = (args.sample_batch, 1, 32, 32)
    plain_sample(model, shape, short, 0)  # warm-up: allocator, kernels, caches
    ddpm.sample(model, shape, short, seed=0)
    t_plain, t_instr = float("inf"), float("inf")
    for _ in range(args.repeat):  # interleaved, so a passing load hits both alike
        t_plain = min(t_plain, _timed(lambda: plain_sample(model, shape, short, 0)))
        t_instr = min(t_instr, _timed(lambda: ddpm.sample(model, shape, short, seed=0)))

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, default U-Net {cfg.unet.channels}, "
          f"{n_params(model):,} parameters, best of {args.repeat}")
    print(f"training:  {args.batch / t_train:8.1f} images/s  (batch {args.batch}, {t_train * 1e3:.0f} ms/step)")
    print(f"           {flops / t_train / 1e9:8.1f} GFLOP/s achieved = {flops / t_train / peak:.1%} of "
          f"dense matmul {peak / 1e9:.1f} GFLOP/s  ({flops / 1e9:.2f} GFLOP per step)")
    per_image_run = t_instr / args.sample_batch * schedule.T / args.T
    print(f"sampling:  {args.sample_batch * args.T / t_instr:8.1f} image-steps/s = "
          f"{1 / per_image_run:.3f} images/s at T = {schedule.T} (batch {args.sample_batch})")
    print(f"instrumentation: {t_instr / t_plain - 1:+.1%} time over the plain sampler "
          f"({t_plain * 1e3 / args.T:.1f} vs {t_instr * 1e3 / args.T:.1f} ms/step)")


if __name__ == "__main__":
    main()
