"""Systems: the one place that knows a system's name, settings, run, controls and look.

A *system* is anything whose update splits into a reaction and a diffusion part (SPEC.md).
Each is described by one :class:`System` subclass in one file (``systems/rd.py``,
``systems/lstm.py``, ``systems/ddpm.py``, ``systems/convlstm.py``) on top of its physics module, and registered
here. Everything above — the run-directory lifecycle (:mod:`rdlens.systems.run`), ``rdlens
reproduce`` (:mod:`rdlens.studies.reproduce`), the report (:mod:`rdlens.report`) and the command
line (:mod:`rdlens.cli`) — knows systems only through this interface, so a new system is
one new file::

    from rdlens.systems import System, register

    class Decay(System):
        name, title, help = "decay", "Decay", "a linear relaxation"
        def config_type(self): return DecayConfig          # a frozen, documented dataclass
        def execute(self, config, prepared, ctx): ...       # write files, return the summary
    register(Decay())

Other packages register theirs through the ``rdlens.systems`` entry-point group (each entry
names a :class:`System` subclass or instance).

Adapter modules import nothing heavy at import time (torch and numba are loaded inside the
methods), so that ``rdlens --help`` stays fast.
"""

from __future__ import annotations

import os

from rdlens.core.errors import ConfigError
from rdlens.systems.base import ROLES, Checks, Data, Presentation, Runner, Settings, System

__all__ = ["System", "ROLES", "Presentation", "Settings", "Data", "Runner", "Checks", "register", "unregister", "get", "style_of", "names", "all_systems"]

_REGISTRY: dict[str, System] = {}
_LOADED = False


def register(system: System | type[System]) -> System:
    """Add a system (an instance or a class) to the registry; its name must be new."""
    if isinstance(system, type):
        system = system()
    if system.name == "unknown" or not system.name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"a system needs a simple name (letters, digits, - and _), got {getattr(system, 'name', None)!r}")
    existing = _REGISTRY.get(system.name)
    if existing is not None and type(existing) is not type(system):
        raise ValueError(f"a system named {system.name!r} is already registered ({type(existing).__name__})")
    _REGISTRY[system.name] = system
    return system


def unregister(name: str) -> None:
    """Remove a system (tests register toy systems and take them away again)."""
    _REGISTRY.pop(name, None)


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    from rdlens.systems.convlstm.system import ConvLSTM
    from rdlens.systems.ddpm.system import DDPM
    from rdlens.systems.lstm.system import LSTM
    from rdlens.systems.grayscott.system import RD

    for cls in (RD, LSTM, DDPM, ConvLSTM):
        register(cls)
    if os.environ.get("RDLENS_NO_PLUGINS"):
        return
    from importlib.metadata import entry_points

    for ep in entry_points(group="rdlens.systems"):
        register(ep.load())


def get(name: str) -> System:
    """The registered system called ``name``, or a ConfigError listing the known ones."""
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown system {name!r}; systems are {', '.join(names())}") from None


def style_of(name: str) -> System:
    """The registered system ``name``, or a neutral :class:`System` for one this process does
    not know (a report of rows made by a plugin that is not installed still draws)."""
    _load()
    return _REGISTRY.get(name) or System()


def names() -> tuple[str, ...]:
    """Names of the registered systems, built-in ones first."""
    _load()
    return tuple(_REGISTRY)


def all_systems() -> list[System]:
    _load()
    return list(_REGISTRY.values())
