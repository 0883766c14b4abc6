"""Sampling speed: rdlens's instrumented samplers against plain loops of the same network.

One diffusers ``UNet2DModel`` and the paper's sampler (linear betas, sigma_t^2 = beta_t, no
clipping), timed in this process, interleaved, best of --repeat:

- plain:     Ho et al.'s Algorithm 2 in a bare torch loop (the floor: nothing but the network);
- pipeline:  diffusers' own ``DDPMPipeline`` (its loop over ``scheduler.step``);
- rdlens:    ``rdlens.ddpm.sample`` on the same network (four norms per step and image);
- adapter:   ``rdlens.diffusers_adapter.measure`` (diffusers' ``scheduler.step`` loop, measured;
             in float32 like the others, ``float64=False``).

Every loop runs on the same torch thread count (``--threads``; rdlens's policy is set to it).

    python benchmarks/bench_sampler.py [--batch 16] [--T 100] [--width 32] [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os

from _timing import interleaved_best
from bench_ddpm import plain_sample  # Ho et al.'s Algorithm 2, nothing measured


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--T", type=int, default=100, help="reverse steps (per-step cost is what matters)")
    ap.add_argument("--width", type=int, default=32, help="channels of the U-Net's first level")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["RDLENS_THREADS"] = str(args.threads)

    import diffusers
    import torch

    from rdlens import ddpm, diffusers_adapter

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    w = args.width
    unet = diffusers.UNet2DModel(sample_size=32, in_channels=1, out_channels=1, layers_per_block=1,
                                 block_out_channels=(w, 2 * w, 2 * w),
                                 down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                                 up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
                                 norm_num_groups=min(32, w)).eval()
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=args.T, beta_schedule="linear",
                                        variance_type="fixed_large", clip_sample=False)
    schedule = ddpm.Schedule(T=args.T)
    shape = (args.batch, 1, 32, 32)

    def eps_model(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return unet(x, s).sample

    pipe = diffusers.DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    runs = {
        "plain": lambda: plain_sample(eps_model, shape, schedule, 0),
        "pipeline": lambda: pipe(batch_size=args.batch, num_inference_steps=args.T, output_type="np",
                                 generator=torch.Generator().manual_seed(0)),
        "rdlens": lambda: ddpm.sample(eps_model, shape, schedule, seed=0),
        "adapter": lambda: diffusers_adapter.measure(unet, scheduler, shape, seed=0, float64=False),
    }
    for fn in runs.values():  # warm-up: allocator, kernels, caches
        fn()
    best = interleaved_best(runs, args.repeat)
    print(f"torch {torch.__version__}, {args.threads} thread(s), UNet2DModel widths {(w, 2 * w, 2 * w)}, "
          f"batch {args.batch}, {args.T} steps, best of {args.repeat}")
    for name, t in best.items():
        print(f"  {name:9s} {t * 1e3 / args.T:7.2f} ms/step   vs plain {t / best['plain'] - 1:+7.1%}   "
              f"vs pipeline {t / best['pipeline'] - 1:+7.1%}")
    print("target: rdlens and adapter within 5 % of plain and of pipeline")


if __name__ == "__main__":
    main()
