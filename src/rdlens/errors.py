"""Error types that the command line turns into one readable line instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting or input file: the message names the value and the allowed range.

    Raised before any work starts; the CLI prints it and exits with status 2.
    """


class SimulationDiverged(RuntimeError):
    """A run produced NaN or inf; ``step`` is the first step whose update was not finite."""

    def __init__(self, system: str, step: int, detail: str = "") -> None:
        self.system = system
        self.step = step
        msg = f"{system} run diverged at step {step} (non-finite values)"
        super().__init__(msg + (f": {detail}" if detail else ""))
