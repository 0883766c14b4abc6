"""What the instrumented sampler's time goes into, and what each speed option costs in R.

``rdlens.ddpm.sample`` on one U-Net (the ``cpu`` profile's widths 32-64-64 on 28 x 28 images
by default), timed in this process, interleaved, best of --repeat, each option against the
plain float32 run of the same samples (same x_T):

- inference_mode: the network under ``torch.inference_mode`` instead of ``no_grad``;
- channels_last:  network and inputs in the channels-last memory layout;
- bfloat16:       the network under bfloat16 autocast (its output cast back to float32; the
                  sampler's arithmetic and norms stay float32), with R's relative change, alone
                  and with channels_last;
- one batch:      all --samples in one batch against --chunks batches of the same total;
- compile:        ``torch.compile(model)`` where it works on this CPU (its compile time apart).

The U-Net's read-out is zero at initialisation (it predicts eps = 0); its weights are drawn at
random so that R is a number, or loaded from an rdlens DDPM checkpoint (--checkpoint, with its
--channels and --size). R's change under bfloat16 is about the arithmetic, not the model.

    python benchmarks/bench_sampler_options.py [--samples 64] [--chunks 4] [--T 50] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time

from _timing import interleaved_best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--chunks", type=int, default=4, help="batches the 'several batches' run splits samples into")
    ap.add_argument("--T", type=int, default=50, help="reverse steps timed (per-step cost is what matters)")
    ap.add_argument("--channels", default="32,64,64")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--checkpoint", default=None, help="an rdlens DDPM checkpoint.pt to load (its EMA weights)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    os.environ["RDLENS_THREADS"] = str(args.threads)

    import torch

    from rdlens import ddpm
    from rdlens.core import threads
    from rdlens.systems.ddpm.unet import UNetConfig, build

    threads.POLICY.configure(args.threads)
    torch.set_num_threads(args.threads)
    channels = tuple(int(c) for c in args.channels.split(","))
    model = build(UNetConfig(in_channels=1, image_size=args.size, channels=channels, attention=(2,))).eval()
    if args.checkpoint:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state.get("ema", state.get("model", state)))
    else:
        torch.manual_seed(0)
        torch.nn.init.normal_(model.conv_out.weight, std=0.02)
    schedule = ddpm.Schedule(T=args.T)
    shape = (args.samples, 1, args.size, args.size)

    def run(eps_model, n: int = args.samples, seed: int = 0):
        return ddpm.sample(eps_model, (n, *shape[1:]), schedule, seed=seed)

    cl_model = build(model.cfg).eval()
    cl_model.load_state_dict(model.state_dict())
    cl_model = cl_model.to(memory_format=torch.channels_last)

    def plain(x, s):
        return model(x, s)

    def inference(x, s):
        with torch.inference_mode():
            return model(x, s).clone()

    def channels_last(x, s):
        return cl_model(x.contiguous(memory_format=torch.channels_last), s).contiguous()

    def bfloat16(x, s):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(x, s).float()

    def both(x, s):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return cl_model(x.contiguous(memory_format=torch.channels_last), s).float().contiguous()

    def chunks():
        n = args.samples // args.chunks
        return [run(plain, n, seed=j) for j in range(args.chunks)]

    runs = {"float32, one batch": lambda: run(plain), "inference_mode": lambda: run(inference),
            "channels_last": lambda: run(channels_last), "bfloat16 autocast": lambda: run(bfloat16),
            "channels_last + bfloat16": lambda: run(both),
            f"{args.chunks} batches of {args.samples // args.chunks}": chunks}
    compiled, compile_s, why = None, None, ""
    try:
        t0 = time.perf_counter()
        compiled = torch.compile(model)
        run(lambda x, s: compiled(x, s), n=args.samples)  # compiles on the first call
        compile_s = time.perf_counter() - t0
        runs["torch.compile"] = lambda: run(lambda x, s: compiled(x, s))
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"
    for fn in runs.values():  # warm-up
        fn()
    best = interleaved_best(runs, args.repeat)
    base = best["float32, one batch"]
    print(f"{args.samples} samples, {args.T} reverse steps, U-Net {args.channels} on {args.size} x {args.size}, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    for name, t in best.items():
        print(f"  {name:24s} {t:7.3f} s   {base / t:5.2f}x the float32 run")
    if compile_s is not None:
        print(f"  (torch.compile's first call, compiling included: {compile_s:.1f} s)")
    else:
        print(f"  torch.compile does not work here: {why}")
    r32, r16 = run(plain).trace, run(bfloat16).trace
    print(f"R float32 {r32.R:.6g}, bfloat16 autocast {r16.R:.6g}: relative change {r16.R / r32.R - 1:+.2e}; "
          f"final R {r32.final_R:.6g} vs {r16.final_R:.6g}")


if __name__ == "__main__":
    main()
