"""The :class:`System` contract (see :mod:`rdlens.systems` for what a system is and how one
is registered). Adapters import it from here, the registry from the package."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rdlens.core.options import Option, flatten, from_dict, nest

if TYPE_CHECKING:
    from rdlens.core.balance import BalanceTrace
    from rdlens.core.rundir import RunContext


class Presentation:
    """How the system is named and drawn: its subcommand and help, its colour in every figure, its panel."""

    name: ClassVar[str] = "unknown"
    """registry key, subcommand and profile section: ``rdlens NAME``, ``[NAME]``"""
    title: ClassVar[str] = "system"
    """display name in tables and figures (``RD``, ``LSTM``)"""
    help: ClassVar[str] = ""
    """one line for ``rdlens --help``"""
    description: ClassVar[str] = ""
    """a paragraph for ``rdlens NAME --help``"""
    color: ClassVar[str] = "C4"
    """its colour in every figure of a report (its rows differ by line style in Fig. 2)"""

    def draw_panel(self, ax: Any, run_dir: Path) -> str:
        """Draw what one run produced on a matplotlib axis (patterns.png); return a title suffix."""
        ax.text(0.5, 0.5, self.title, ha="center", va="center")
        return ""

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """Extra lines the command prints under M_react, M_diff and R."""
        return []


class Settings:
    """What can be set: the config dataclass (its fields are the settings), presets, and how flat
    values, profiles and a saved ``config.json`` become a config."""

    hidden: ClassVar[tuple[str, ...]] = ()
    """dotted config paths that are derived, not settings (e.g. ``data.seed``)"""
    renames: ClassVar[dict[str, str]] = {}
    """flat names for dotted paths whose field name is ambiguous"""
    aliases: ClassVar[dict[str, tuple[str, ...]]] = {}
    """extra command-line spellings of an option (kept for old command lines)"""
    help_overrides: ClassVar[dict[str, str]] = {}
    """help text replacing an option's generated one (must state its default)"""
    reproduce_defaults: ClassVar[dict[str, Any]] = {}
    """values every ``rdlens reproduce`` row of this system starts from (a profile may override)"""
    extendable: ClassVar[tuple[str, ...]] = ()
    """config fields that nothing before their old value depends on (e.g. a training length with
    no schedule over it): a saved row whose config differs only by a larger value of these
    continues from its checkpoint instead of starting over, with the same result"""

    def config_type(self) -> type:
        """The frozen config dataclass of one run (imported lazily)."""
        raise NotImplementedError

    def presets(self) -> dict[str, dict[str, Any]]:
        """Named settings (``--setting NAME``): flat option name -> value; data, not code."""
        return {}

    @cached_property
    def options(self) -> list[Option]:
        """Every setting of this system, flattened from :meth:`config_type`."""
        return flatten(self.config_type(), hidden=self.hidden, renames=self.renames)

    def option(self, name: str) -> Option:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(name)

    def build(self, values: dict[str, Any]) -> Any:
        """A config from flat, type-checked values; unset fields keep their defaults.
        Systems with presets or derived fields override this."""
        return from_dict(self.config_type(), nest(self.options, values))

    def from_json(self, saved: dict[str, Any], source: str = "config.json") -> Any:
        """The config saved in a run's ``config.json`` (the inverse of ``asdict``), every value
        checked as its option is first: an edited file with a wrong type is a ConfigError
        naming ``source``, the key and the value, not a traceback."""
        from rdlens.core.options import check_saved

        data = {k: v for k, v in saved.items() if k not in ("system", "torch_threads")}
        check_saved(self.config_type(), data, source)
        return from_dict(self.config_type(), data)

    def can_extend(self, config: dict[str, Any]) -> bool:
        """Whether a row with this (flat JSON) config may grow its ``extendable`` fields."""
        return True


class Data:
    """The inputs of a run: what they are, whether they are here, how to fetch and check them, and
    how much memory the run needs, all before any folder is written."""

    def data_label(self, config: Any) -> str:
        """The data (or parameters) a run used, for the ``data`` column of Table 1."""
        return ""

    def missing_data(self, config: Any) -> tuple[str, str] | None:
        """(what is missing, the command that fetches it) when the run's data is absent."""
        return None

    def fetch_data(self, config: Any) -> str | None:
        """Fetch the run's missing data (``rdlens reproduce --download``); None when done,
        else why it could not be fetched."""
        return "this system has no data to fetch"

    def validate(self, config: Any) -> None:
        """Cheap checks of the inputs that ``rdlens reproduce`` runs for every row before the
        first one starts (a damaged data file found after an hour of other rows is a waste)."""

    def memory_bytes(self, config: Any) -> float:
        """A rough upper estimate of the memory a run needs, checked before any work so that
        absurd sizes are refused with the estimate instead of failing halfway (0: unknown)."""
        return 0.0

    def work(self, config: Any) -> float:
        """A rough count of the floating-point operations of a run, so that a study starts its
        longest stages first (:func:`rdlens.studies.tasks.heaviest_first`); 0: unknown or small."""
        return 0.0

    def prepare(self, config: Any, device: Any) -> Any:
        """Load and check the inputs (data, initial state) before any folder is written."""
        return None


class Runner:
    """The run itself: the device and resume it needs, its name, and the work that writes its files."""

    uses_torch: ClassVar[bool] = False
    """runs on a torch device: gets ``--device`` (and the device is resolved before work)"""
    resumable: ClassVar[bool] = False
    """keeps a checkpoint an interrupted run can continue from: gets ``--resume``"""

    def run_name(self, config: Any) -> str:
        """Stem of a new run directory's name (a timestamp is appended)."""
        return f"{self.name}-seed{getattr(config, 'seed', 0)}"

    def setting(self, config: Any) -> str:
        """What this run measures, in words (the summary's ``setting``)."""
        return self.title

    def execute(self, config: Any, prepared: Any, ctx: "RunContext") -> dict[str, Any]:
        """Do the work, write the system's files into ``ctx.dir`` and return the summary's
        fields (at least those of ``BalanceTrace.summary()``). The lifecycle writes
        ``config.json`` before, ``manifest.json`` and ``summary.json`` after."""
        raise NotImplementedError


class Checks:
    """What a finished run is checked against: its controls and the paper's claims about it."""

    control_labels: ClassVar[dict[str, str]] = {}
    """names of the controls :meth:`controls` measures -> their labels in controls.md"""

    def controls(self, config: Any, run_dir: Path, device: Any) -> tuple[dict[str, Any], dict[str, "BalanceTrace"]] | None:
        """Control measurements of a finished run (results, traces), or None if it has none."""
        return None

    def claims(self, config: Any, run_dir: Path, device: Any) -> dict[str, Any] | None:
        """Measurements of the paper's claims about this system for a finished run
        (e.g. :mod:`rdlens.systems.ddpm.claims`; ``rdlens reproduce --claims``), or None if it has none."""
        return None

    def judge_claims(self, row: str, measured: list[dict[str, Any]]) -> dict[str, str]:
        """The system's own claims about row ``row``, judged from what :meth:`claims` measured
        for each of its seeds: {claim: verdict sentence made from the numbers}. {} for a system
        that has none, or whose claims are the paper's (judged in :mod:`rdlens.report.claims`)."""
        return {}

    def control_sentence(self, controls: dict[str, Any], bound: str) -> str:
        """The system-specific clause of its controls.md sentence (``bound``: the identity
        bound in words, when the controls hold one)."""
        return ""


class System(Presentation, Settings, Data, Runner, Checks):
    """What rdlens needs to know about a system, in five roles (override what applies; the
    defaults do nothing): :class:`Presentation`, :class:`Settings`, :class:`Data`,
    :class:`Runner` and :class:`Checks`. Code that uses one role only may ask for that role.

    Settings are the fields of :meth:`config_type` (see :mod:`rdlens.core.options`): one name
    each, shared by profiles, the command line and ``config.json``.
    """


ROLES = (Presentation, Settings, Data, Runner, Checks)
"""the roles a system plays, each used by a different part of rdlens"""
