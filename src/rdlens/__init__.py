"""rdlens: reaction and diffusion inside Gray-Scott, LSTM and DDPM dynamics, on one scale.

Two layers (docs/architecture.md has the map and where each SPEC equation lives):

- lower: the physics and data of each system (``grayscott``, ``lstm``, ``ddpm`` + ``unet``,
  ``sequences``, ``images``), the measurement shared by all (``balance``), ``controls``,
  the one training loop (``training``) and run-directory files (``rundir``);
- upper: ``systems`` (one adapter file per system and a registry: the only place that knows
  a system's name), ``run`` (one run-directory lifecycle), ``reproduce`` (Table 1's rows as
  data), ``report`` (tables and figures from saved results) and ``cli`` (generated from the
  systems' config fields, see ``options``).

Submodules are imported on demand so that ``import rdlens`` stays cheap (torch is only
loaded by the learned systems)::

    from rdlens import grayscott, balance
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "balance", "grayscott", "lstm", "sequences", "ddpm", "unet", "images", "controls", "torchutil", "training",
    "rundir", "errors", "options", "systems", "run", "layout", "reproduce", "report", "paper", "cli",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rdlens.{name}")
    raise AttributeError(f"module 'rdlens' has no attribute {name!r}")
