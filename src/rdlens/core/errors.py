"""Error types that the command line turns into one readable line instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad setting or input file: the message names the value and the allowed range.

    Raised before any work starts; the CLI prints it and exits with status 2.
    """


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run; the message says where it stopped and how to go on."""


class SimulationDiverged(RuntimeError):
    """A run produced NaN or inf; ``step`` is the first step whose update was not finite."""

    def __init__(self, system: str, step: int, detail: str = "") -> None:
        self.system = system
        self.step = step
        self.detail = detail
        msg = f"{system} run diverged at step {step} (non-finite values)"
        super().__init__(msg + (f": {detail}" if detail else ""))

    def __reduce__(self) -> tuple[type, tuple[str, int, str]]:
        """Picklable as it was made (a worker process raises it, the study reports it)."""
        return type(self), (self.system, self.step, self.detail)


class StageFailed(RuntimeError):
    """A stage of a study could not finish for a reason outside its inputs (a worker process
    was killed); the finished stages are kept and the same command continues."""


MAX_SEED = 2**32 - 1
"""largest seed accepted (NumPy's legacy generators and most tools take 32-bit seeds)"""


def check_seed(seed: object, name: str = "seed") -> None:
    """A ConfigError unless ``seed`` is an integer in [0, MAX_SEED]."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{name} must be an integer in [0, {MAX_SEED}], got {seed!r}")


def available_memory() -> int:
    """Bytes of memory available to a new allocation now (Linux MemAvailable; else physical)."""
    import os

    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def check_memory(what: str, needed: float, available: int | None = None) -> None:
    """A ConfigError, before any work, when ``needed`` bytes exceed what is available."""
    available = available_memory() if available is None else available
    if needed > available:
        raise ConfigError(f"{what} needs about {_size(needed)} of memory; {_size(available)} is available: "
                          "reduce the grid, model, batch, data or step counts")


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"
