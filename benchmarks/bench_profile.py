"""A reproduce profile's wall time by row, against the same rows run one after another.

Reads a finished ``rdlens reproduce`` folder (or runs the profile first with ``--profile``)
and prints, from its manifests, each row's wall time and its stages, then three ratios:

  - rows one after another (the sum of the row times: ``--jobs 1`` on a quiet machine) over
    the study's wall time: what the worker processes gained;
  - the study's wall time over its longest row: 1.00 means nothing waited on anything else,
    the longest row being the floor that more workers cannot lower;
  - the study's wall time over ``--target`` minutes (issue 29: the ``cpu`` profile in 90).

    python benchmarks/bench_profile.py runs/reproduce-cpu [--target 90]
    python benchmarks/bench_profile.py --profile cpu --out /tmp/prof --data-dir ~/data   # run it first

The study's wall time is its manifest's ``started`` to ``finished`` (whole seconds): the rows,
the tables and figures, not the interpreter's start.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path


def wall_s(manifest: dict) -> float:
    """Seconds from a manifest's ``started`` to its ``finished``."""
    start, end = (datetime.fromisoformat(manifest[k]) for k in ("started", "finished"))
    return (end - start).total_seconds()


def row_stages(folder: Path, task: str) -> dict[str, float]:
    """The stage timings of the row behind a task named ``"<row> seed <n>"`` (empty if absent)."""
    row, _, seed = task.rpartition(" seed ")
    path = folder / "rows" / row / f"seed{seed}" / "manifest.json"
    return json.loads(path.read_text()).get("timings_s", {}) if path.exists() else {}


def report(folder: Path, target_min: float) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = {k: v for k, v in manifest["timings_s"].items() if " seed " in k}
    after = {k: v for k, v in manifest["timings_s"].items() if k not in rows}
    wall = wall_s(manifest)
    print(f"{folder}: profile {manifest.get('profile')}, {manifest.get('jobs')} worker(s), "
          f"{manifest.get('cpu_count')} cores, torch {manifest['versions'].get('torch')}")
    for task, t in sorted(rows.items(), key=lambda kv: -kv[1]):
        stages = row_stages(folder, task)
        parts = ", ".join(f"{k} {v / 60:.1f}" for k, v in stages.items() if v >= 30)
        print(f"  {task:<28} {t / 60:7.1f} min" + (f"   ({parts} min)" if parts else ""))
    for name, t in after.items():
        print(f"  {name:<28} {t / 60:7.1f} min")
    serial, longest = sum(rows.values()), max(rows.values())
    print(f"  {'study wall time':<28} {wall / 60:7.1f} min")
    print(f"rows one after another / study: {serial / wall:.2f}x   ({serial / 60:.1f} min of rows)")
    print(f"study / longest row:            {wall / longest:.2f}")
    print(f"study / target:                 {wall / 60 / target_min:.2f}   (target {target_min:g} min)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", type=Path, help="a finished reproduce folder")
    ap.add_argument("--profile", help="run this profile first (rdlens reproduce --download) into --out")
    ap.add_argument("--out", type=Path, default=Path("runs"), help="parent folder for --profile")
    ap.add_argument("--data-dir", default=None, help="image data folder for --profile")
    ap.add_argument("--target", type=float, default=90.0, help="minutes the study should take")
    args = ap.parse_args()
    if args.profile:
        from rdlens.studies.reproduce import reproduce

        folder = reproduce(args.profile, out=args.out, data_dir=args.data_dir, download=True, log=print)[0]
    elif args.folder is None:
        ap.error("give a finished reproduce folder, or --profile NAME to run one")
    else:
        folder = args.folder
    if not (Path(folder) / "manifest.json").exists():
        sys.exit(f"bench_profile: {folder} has no manifest.json: not a finished reproduce folder")
    report(Path(folder), args.target)


if __name__ == "__main__":
    main()
