"""What the ablation scripts share: judging fields as the patterns study does, one printed
line per variant, and the saved results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from rdlens.studies.ablation import summary, total_variation
from rdlens.studies.patterns import PatternsConfig, measure_fields


def judge(study: PatternsConfig, u: np.ndarray, v: np.ndarray, F: np.ndarray | None, k: np.ndarray | None) -> dict:
    """The fields measured as the patterns study measures them, summarised as its ablation does
    (rdlens.studies.ablation.summary: steady and blown-up shares, residual and wavelength, class mix)."""
    return summary(measure_fields(study, "x", 0, u, v, F, k))


def _mean(estimate: dict[str, Any] | None) -> float:
    return float("nan") if estimate is None else estimate["mean"]


def line(name: str, res: dict[str, Any]) -> str:
    """One variant's numbers, for the console."""
    text = (f"{name:20s} steady {res['steady']:5.0%}  blown up {res['blown_up']:4.0%}  "
            f"residual {_mean(res['residual']):.3g}  wavelength {_mean(res['wavelength']):.3g}")
    if "R" in res:
        text += (f"  class TV {res['class_tv']:.0%}  R {res['R']:.4f}  loss {res['final_loss']:.3g}  "
                 f"train {res['train_s']:.0f} s")
    return text + f"  classes {res['labels']}"


def record(results: dict[str, Any], name: str, res: dict[str, Any], reference: dict[str, Any], **numbers: Any) -> None:
    """Add a variant's numbers (and its class mix's distance from the reference) and print them."""
    res.update(numbers, class_tv=total_variation(res["labels"], reference["labels"]))
    results[name] = res
    print(line(name, res), flush=True)


def save(args: Any, results: dict[str, Any]) -> None:
    """``ablation.json`` in ``args.out`` (when given): the arguments and every variant's numbers."""
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ablation.json").write_text(json.dumps({"args": vars(args) | {"out": str(out)}, "results": results},
                                                      indent=1, default=float))
