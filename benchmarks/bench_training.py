"""DDPM training speed: rdlens's training loop (`rdlens.ddpm.train`: EMA, gradient clipping,
checkpoints, NaN checks) against a plain PyTorch loop of the same network, batch and optimiser,
both in this process and interleaved, in images per second; and what the channels-last memory
layout and bfloat16 mixed precision (the forward pass under autocast) change for each.

    python benchmarks/bench_training.py [--profile cpu] [--steps 20] [--repeat 3] [--threads 2]

The network, batch size and learning rate are those of the profile's MNIST row. The plain loop
is what a user would write: AdamW, eps-prediction loss, backward, step; nothing else.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import torch

from rdlens import ddpm, reproduce, systems, threads
from rdlens.unet import UNet, n_params


def plain_loop(cfg: ddpm.DDPMConfig, images: torch.Tensor, steps: int, channels_last: bool,
               bf16: bool = False) -> float:
    """Seconds for ``steps`` optimiser steps of the bare loop (``bf16``: forward under autocast)."""
    torch.manual_seed(cfg.seed)
    model = UNet(cfg.unet)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    t0 = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=gen)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = ddpm.loss(model, cfg.schedule, images[idx].contiguous(memory_format=fmt), gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def rdlens_loop(cfg: ddpm.DDPMConfig, images: torch.Tensor, steps: int, channels_last: bool,
                bf16: bool = False) -> float:
    """Seconds for ``steps`` steps of rdlens's loop (with its checkpoint at the end)."""
    from dataclasses import replace

    run_cfg = replace(cfg, steps=steps, channels_last=channels_last, checkpoint_every=max(steps, 1),
                      precision="bfloat16" if bf16 else "float32")
    with tempfile.TemporaryDirectory() as tmp:
        return ddpm.train(run_cfg, images, tmp).wall_time_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="profile whose MNIST row's network is timed")
    ap.add_argument("--steps", type=int, default=20, help="optimiser steps per timing")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; the best of each is kept")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    threads.POLICY.configure(args.threads)  # rdlens's loop on the same count as the plain one
    profile = reproduce.load_profile(args.profile)
    row = next(r for r in reproduce.profile_rows(profile) if r.id == "ddpm-mnist")
    cfg = systems.get("ddpm").build({**reproduce.row_values(row, profile, 0, None), "dataset": "digits"})
    images = torch.rand(4096, 1, 32, 32) * 2 - 1  # speed does not depend on the pixels
    print(f"profile {args.profile}: U-Net {cfg.unet.channels}, {n_params(UNet(cfg.unet)):,} parameters, "
          f"batch {cfg.batch_size}, {args.steps} steps per timing, best of {args.repeat}, {args.threads} threads")
    bf_steps = args.steps if ddpm.native_bfloat16("cpu") else max(2, args.steps // 10)
    runs = {"plain, contiguous": lambda: plain_loop(cfg, images, args.steps, False),
            "plain, channels_last": lambda: plain_loop(cfg, images, args.steps, True),
            "rdlens, contiguous": lambda: rdlens_loop(cfg, images, args.steps, False),
            "rdlens, channels_last": lambda: rdlens_loop(cfg, images, args.steps, True),
            "plain, cl + bfloat16": lambda: plain_loop(cfg, images, bf_steps, True, True),
            "rdlens, cl + bfloat16": lambda: rdlens_loop(cfg, images, bf_steps, True, True)}
    steps = {k: bf_steps if "bfloat16" in k else args.steps for k in runs}
    if bf_steps != args.steps:
        print(f"bfloat16 is emulated on this CPU (no AVX512-BF16 or AMX): its loops are timed over {bf_steps} steps")
        warnings.filterwarnings("ignore", "precision bfloat16 on a CPU without", RuntimeWarning)
    plain_loop(cfg, images, 2, False)  # warm-up of the kernels
    best = {k: float("inf") for k in runs}
    for _ in range(args.repeat):
        for name, fn in runs.items():
            best[name] = min(best[name], fn())
    rate = {k: steps[k] * cfg.batch_size / v for k, v in best.items()}
    for name, r in rate.items():
        print(f"  {name:22s} {r:7.1f} images/s")
    mixed = ddpm.effective_precision(cfg.precision, "cpu") == "bfloat16"
    chosen = {(False, False): "rdlens, contiguous", (True, False): "rdlens, channels_last",
              (True, True): "rdlens, cl + bfloat16"}.get((cfg.channels_last, mixed))
    if chosen is None:
        raise SystemExit("this benchmark times bfloat16 only in the channels-last layout")
    print(f"rdlens as the profile runs it ({chosen}) / plain PyTorch loop (contiguous): "
          f"{rate[chosen] / rate['plain, contiguous']:.2f}x")
    print(f"channels_last gain: plain {rate['plain, channels_last'] / rate['plain, contiguous']:.2f}x, "
          f"rdlens {rate['rdlens, channels_last'] / rate['rdlens, contiguous']:.2f}x")
    print(f"rdlens loop overhead at equal layout: "
          f"{rate['plain, contiguous'] / rate['rdlens, contiguous'] - 1:+.1%} (contiguous), "
          f"{rate['plain, channels_last'] / rate['rdlens, channels_last'] - 1:+.1%} (channels_last), "
          f"{rate['plain, cl + bfloat16'] / rate['rdlens, cl + bfloat16'] - 1:+.1%} (channels_last + bfloat16)")
    print(f"bfloat16 gain (channels_last): plain {rate['plain, cl + bfloat16'] / rate['plain, channels_last']:.2f}x, "
          f"rdlens {rate['rdlens, cl + bfloat16'] / rate['rdlens, channels_last']:.2f}x")


if __name__ == "__main__":
    main()
