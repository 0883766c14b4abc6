"""rdlens's thread policy against torch's defaults, alone and beside busy competitors.

Part 1, one stage: two stages of `rdlens reproduce` (quick profile), the LSTM row's training
(Lorenz, 16 units) and a DDPM training stage (the quick profile's U-Net, batch 32). Each is
timed per step (a) alone and (b) beside N busy processes that this script starts and stops
itself, with (1) rdlens's policy (rdlens.threads: torch on its setting, one thread by
default) and (2) torch's default (as many threads as cores, fixed).

Part 2, a study: two such DDPM trainings (the quick profile's two DDPM rows), (1) as rdlens
runs them now, side by side in two single-threaded worker processes (rdlens.tasks), and
(2) as rdlens ran them before its numbers stopped depending on the load: one after another
in one process on as many torch threads as there were free cores when the run began. Timed
alone and beside the competitors, in the same run.

A measurement stops at its deadline and reports the rate it reached, so a collapse shows
without taking hours.

    python benchmarks/bench_contention.py [--competitors 2] [--deadline 60] [--study-steps 20]

Targets: beside the competitors, rdlens's study is at most 3x slower than alone (issue 30;
a single stage at most 2.5x, issue 14); alone, the study is no slower than the old
load-dependent policy.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

from rdlens import ddpm, images, lstm, sequences, threads


class Deadline(Exception):
    pass


def per_step(train, deadline: float) -> tuple[float, int]:
    """Seconds per step of ``train(progress)``, stopping at ``deadline`` seconds."""
    done = [0]
    t0 = time.perf_counter()

    def progress(n: int) -> None:
        done[0] += n
        if time.perf_counter() - t0 > deadline:
            raise Deadline

    try:
        train(progress)
    except Deadline:
        pass
    return (time.perf_counter() - t0) / max(done[0], 1), done[0]


def lstm_stage(progress) -> None:
    cfg = lstm.config_for("default", "lorenz", steps=300, checkpoint_every=10_000)
    lstm.train(cfg, sequences.make_sequences(cfg.data), progress=progress)


DIGITS = images.load("digits")


def ddpm_stage(progress) -> None:
    cfg = ddpm.config_for("default", "digits", steps=40, batch_size=32, checkpoint_every=10_000)
    ddpm.train(cfg, DIGITS, progress=progress)


def study_training(seed: int, steps: int, *, bars, log) -> dict[str, float]:
    """One of the study's DDPM trainings (a module-level function: a worker runs it by name)."""
    t0 = time.perf_counter()
    cfg = ddpm.config_for("default", "digits", steps=steps, batch_size=32, checkpoint_every=10_000, seed=seed)
    ddpm.train(cfg, DIGITS)
    return {f"training {seed}": time.perf_counter() - t0}


def study_new(steps: int) -> float:
    """Seconds for two trainings side by side in single-threaded workers (rdlens now)."""
    from rdlens.run import no_bars
    from rdlens.tasks import Task, run_tasks

    threads.POLICY.configure(None)
    threads.POLICY.fixed, threads.POLICY.source = None, "adaptive"
    t0 = time.perf_counter()
    run_tasks([Task(f"training {s}", study_training, (s, steps)) for s in (0, 1)], 2, bars=no_bars,
              log=lambda line: None)
    return time.perf_counter() - t0


def study_old(steps: int) -> tuple[float, int]:
    """Seconds for two trainings one after another on the cores free at the start (rdlens before)."""
    meter = threads._CpuMeter()  # the old measurement: other processes' CPU time over 0.1 s
    time.sleep(0.1)
    busy = meter.others_busy()
    cores = threads.available_cores()
    n = cores if busy is None else max(1, min(cores, int(cores - busy + 0.5)))
    threads.POLICY.configured, threads.POLICY.fixed, threads.POLICY.source = True, n, "free cores at the start"
    t0 = time.perf_counter()
    for s in (0, 1):
        study_training(s, steps, bars=None, log=None)
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--competitors", type=int, default=2, help="busy processes started beside the stage")
    ap.add_argument("--deadline", type=float, default=60.0, help="seconds at most per measurement")
    ap.add_argument("--study-steps", type=int, default=20, help="training steps of each of the study's DDPMs")
    args = ap.parse_args()
    cores = threads.available_cores()
    print(f"cores available: {cores}; torch {torch.__version__}; default torch threads {torch.get_num_threads()}")
    policies = {"rdlens": None, "torch default": cores}
    results: dict[tuple[str, str, str], float] = {}
    lstm_stage(lambda n: None)  # warm-up: imports, allocations
    ddpm_stage(lambda n: None)
    for condition in ("alone", f"{args.competitors} competitors"):
        busy = []
        if condition != "alone":
            busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.competitors)]
            time.sleep(1.0)
        try:
            for stage_name, stage in (("LSTM row", lstm_stage), ("DDPM train", ddpm_stage)):
                for policy_name, fixed in policies.items():
                    threads.POLICY.configured = True
                    threads.POLICY.fixed = fixed
                    threads.POLICY.source = "adaptive" if fixed is None else "torch default"
                    threads.POLICY.choices.clear()
                    s, n = per_step(stage, args.deadline)
                    results[(stage_name, policy_name, condition)] = s
                    used = threads.POLICY.choices
                    print(f"{stage_name:<11} {policy_name:<14} {condition:<14} {s * 1e3:9.2f} ms/step "
                          f"({n} steps; threads {used})", flush=True)
            study_s = study_new(args.study_steps)
            results[("study", "rdlens", condition)] = study_s
            print(f"{'study':<11} {'rdlens':<14} {condition:<14} {study_s:9.2f} s "
                  f"(2 x {args.study_steps} steps in 2 single-threaded workers)", flush=True)
            old_s, n = study_old(args.study_steps)
            results[("study", "old policy", condition)] = old_s
            print(f"{'study':<11} {'old policy':<14} {condition:<14} {old_s:9.2f} s "
                  f"(2 x {args.study_steps} steps one after another on {n} thread(s))", flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()
    loaded = f"{args.competitors} competitors"
    print("\nratios (time per step):")
    for stage_name in ("LSTM row", "DDPM train"):
        r = {k[1:]: v for k, v in results.items() if k[0] == stage_name}
        print(f"{stage_name:<11} rdlens loaded / alone        = {r[('rdlens', loaded)] / r[('rdlens', 'alone')]:7.2f}"
              "   (target <= 2.5)")
        if stage_name == "DDPM train":
            print(f"{stage_name:<11} (alone on one thread, rdlens's torch default; the study below uses both cores)")
        print(f"{stage_name:<11} torch default loaded / alone = "
              f"{r[('torch default', loaded)] / r[('torch default', 'alone')]:7.2f}")
        print(f"{stage_name:<11} rdlens / torch default alone = "
              f"{r[('rdlens', 'alone')] / r[('torch default', 'alone')]:7.2f}   (target <= 1)")
        print(f"{stage_name:<11} torch default / rdlens loaded = "
              f"{r[('torch default', loaded)] / r[('rdlens', loaded)]:7.2f}")
    r = {k[1:]: v for k, v in results.items() if k[0] == "study"}
    print(f"study       rdlens loaded / alone          = {r[('rdlens', loaded)] / r[('rdlens', 'alone')]:7.2f}"
          "   (target <= 3)")
    print(f"study       old policy loaded / alone      = {r[('old policy', loaded)] / r[('old policy', 'alone')]:7.2f}")
    print(f"study       rdlens / old policy alone      = {r[('rdlens', 'alone')] / r[('old policy', 'alone')]:7.2f}"
          "   (target <= 1)")
    print(f"study       rdlens / old policy loaded     = {r[('rdlens', loaded)] / r[('old policy', loaded)]:7.2f}")


if __name__ == "__main__":
    main()
