"""rdlens: reaction and diffusion inside Gray-Scott, LSTM and DDPM dynamics, on one scale.

A package per concept (docs/architecture.md has the map, tests/test_layers.py holds its
import contract), lowest layer first:

- ``core``: ``balance`` (the measurement shared by all), ``options``, ``rundir``, ``study``
  (one study-folder lifecycle), ``layout``, ``threads``, ``torchutil``, ``errors``,
  ``progress``; beside it ``paper`` (the paper's values);
- ``systems/<name>/``: everything about one system (``grayscott``, ``lstm``, ``ddpm``,
  ``convlstm``): its ``model``, data, ``controls``, ``claims`` and ``system`` (the adapter
  that registers it); ``measures`` (pattern measures of any field), ``training`` (the one
  training loop), ``plot`` (figures in matplotlib's ``ax=None`` style), ``public_code``;
- ``systems`` itself: the ``System`` contract, the registry, ``run`` (one run-directory
  lifecycle);
- ``report``: tables, figures and the page, from saved and verified results;
- ``studies``: ``reproduce``, ``patterns``, ``sweep`` and ``tasks`` (stages in workers);
- ``cli``: the ``rdlens`` command, generated from the config fields.

The modules most used from Python have short names here, imported on demand so that
``import rdlens`` stays cheap (torch is only loaded by the learned systems)::

    from rdlens import grayscott, balance     # rdlens.systems.grayscott.model, rdlens.core.balance
    import rdlens.ddpm                        # rdlens.systems.ddpm.model

A short name is the same module object as its home (patching one patches the other), so code
written against the flat layout of rdlens <= 0.1 keeps working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

__version__ = "0.1.0"

SHORT_NAMES: dict[str, str] = {
    **{m: f"core.{m}" for m in ("balance", "errors", "layout", "options", "progress", "rundir", "study", "threads",
                                "torchutil")},
    "patterns": "measures.patterns",
    "grayscott": "systems.grayscott.model",
    "lstm": "systems.lstm.model", "sequences": "systems.lstm.sequences",
    "ddpm": "systems.ddpm.model",
    **{m: f"systems.ddpm.{m}" for m in ("unet", "unet_public", "images", "quality", "curve", "diffusers_adapter")},
    "convlstm": "systems.convlstm.model",
    "run": "systems.run",
    "reproduce": "studies.reproduce", "pattern_study": "studies.patterns", "sweep": "studies.sweep",
    "tasks": "studies.tasks",
    "systems.rd": "systems.grayscott.system",
}
"""short (and rdlens <= 0.1) module names -> their home under the package"""

_TOP_LEVEL = {"core", "measures", "systems", "studies", "report", "paper", "plot", "training", "public_code", "cli"}
"""the package's own top-level modules and packages, loaded on first attribute access"""


class _ShortNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import rdlens.grayscott`` finds the module at its home and binds the same object."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if not fullname.startswith("rdlens.") or fullname[len("rdlens."):] not in SHORT_NAMES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        module = importlib.import_module(f"rdlens.{SHORT_NAMES[spec.name[len('rdlens.'):]]}")
        spec.loader_state = module.__spec__
        return module

    def exec_module(self, module: Any) -> None:
        """The module ran at its home already; the import machinery gave it the short name's
        spec, so give its own back."""
        home = getattr(module.__spec__, "loader_state", None)
        if home is not None:
            module.__spec__ = home


if not any(isinstance(f, _ShortNames) for f in sys.meta_path):
    sys.meta_path.append(_ShortNames())


def __getattr__(name: str) -> Any:
    if name in SHORT_NAMES:
        return importlib.import_module(f"rdlens.{SHORT_NAMES[name]}")
    if name in _TOP_LEVEL:
        return importlib.import_module(f"rdlens.{name}")
    raise AttributeError(f"module 'rdlens' has no attribute {name!r}")
