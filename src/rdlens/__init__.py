"""rdlens: reaction and diffusion inside Gray-Scott, LSTM and DDPM dynamics, on one scale.

Layers, lowest first; a module imports only its own layer and those below it (docs/architecture.md
has the map, tests/test_layers.py holds it):

- core: ``balance`` (the measurement shared by all), ``options``, ``rundir``, ``study`` (one
  study-folder lifecycle), ``threads``, ``errors``, ``progress``, ``paper``, ``layout``;
- models: the physics, networks and data of each system (``grayscott``, ``lstm``, ``ddpm`` +
  ``unet``, ``convlstm``, ``sequences``, ``images``), ``quality``, ``controls``, ``claims``,
  ``patterns`` (pattern measures), ``training`` (the one training loop), ``plot``;
- systems: ``systems`` (one adapter file per system and a registry: the only place that knows
  a system's name), ``run`` (one run-directory lifecycle), ``tasks`` (stages in workers);
- report: tables, figures and the page, from saved and verified results;
- studies: ``reproduce`` (Table 1's rows as data), ``pattern_study``, ``sweep``;
- commands: ``studies`` (any study by name) and ``cli`` (generated from the config fields).

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
    "rundir", "errors", "options", "systems", "run", "layout", "reproduce", "report", "paper", "cli", "study",
    "studies", "plot", "tasks", "threads", "quality", "convlstm", "patterns", "pattern_study", "sweep", "claims",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rdlens.{name}")
    raise AttributeError(f"module 'rdlens' has no attribute {name!r}")
