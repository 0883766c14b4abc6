"""How many threads torch and numba use, decided in one place.

Measured on a 2-core machine (benchmarks/bench_contention.py repeats it): alone, two threads
make U-Net training 1.5x and the Gray-Scott kernel 2x faster than one; beside two busy
processes, two threads make them 80x and 400x *slower* than alone, one thread about 2.4x.
The cause is the barrier at the end of every parallel region: each of thousands of small
ops needs all its threads on a core at once, and OpenMP threads spin while they wait, so a
thread that the scheduler parks stalls the others for a time slice. (Passive waiting,
``OMP_WAIT_POLICY=PASSIVE``, removes the spinning but still leaves a 10x collapse.) A
16-unit LSTM gains 11 % from a second thread alone and loses a factor 1000 beside two busy
processes, so it runs on one.

So the policy, per stage:

- ``serial`` stages (tiny models: the LSTM rows, probes, evaluation) run on one thread;
- ``parallel`` stages (U-Net training and sampling, Gray-Scott on grids of 64^2 or more) use
  as many threads as there are cores *that other processes leave free*, measured from
  ``/proc/stat`` minus this process's own CPU time;
- the Gray-Scott kernel re-checks every few seconds (``adapt``), stepping down when
  competitors arrive and back up when they leave: its row sums are added in a fixed order,
  so its numbers do not depend on the thread count. torch's do, at float rounding level (a
  oneDNN 1x1 convolution sums in a thread-dependent order: 1.5e-7 absolute in a U-Net
  output, 1e-9 relative in R; LSTM weights after 300 steps differ too), so a run decides
  its torch thread count once, when it starts, keeps it for every torch stage, saves it in
  ``threads.json`` and uses it again when resumed: a resumed run is bit-identical to an
  uninterrupted one, and ``--threads N`` reproduces a run bit for bit on any machine;
- the cores counted are those this process may use: ``os.sched_getaffinity`` and a cgroup
  CPU quota (``cpu.max``), whichever is smaller;
- ``--threads N``, ``RDLENS_THREADS=N`` or ``OMP_NUM_THREADS=N`` fix the count instead
  (respected everywhere, never undone by a later stage).

Every choice is recorded and lands in ``manifest.json`` (:func:`record`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Iterator

from rdlens.errors import ConfigError

RECHECK_S = 2.0
"""seconds between re-measurements of the free cores inside a parallel stage"""


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup v2/v1 CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    """CPU quota in cores from cgroup v2 ``cpu.max`` or v1 ``cpu.cfs_*``, None if unlimited."""
    try:
        text = open("/sys/fs/cgroup/cpu.max").read().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
        return None
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int(open("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read())
        period = int(open("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read())
        return quota / period if quota > 0 else None
    except (OSError, ValueError):
        return None


def _fixed_from_env() -> tuple[int, str] | None:
    for name in ("RDLENS_THREADS", "OMP_NUM_THREADS"):
        text = os.environ.get(name, "").strip()
        if text:
            try:
                n = int(text)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number of threads >= 1, got {text!r}") from None
            if n < 1:
                raise ConfigError(f"{name} must be >= 1, got {n}")
            return n, name
    return None


class _CpuMeter:
    """Busy cores of *other* processes since the last reading (Linux /proc; None elsewhere)."""

    def __init__(self) -> None:
        self.last = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as fh:
                parts = fh.readline().split()[1:]
            ticks = [int(x) for x in parts]
            total, idle = sum(ticks[:8]), ticks[3] + ticks[4]
            own = os.times()
            return time.monotonic(), (total - idle) / os.sysconf("SC_CLK_TCK"), own.user + own.system
        except (OSError, ValueError, IndexError):
            return None

    def others_busy(self) -> float | None:
        now = self._read()
        last, self.last = self.last, now
        if now is None or last is None or now[0] - last[0] < 0.05:
            return None
        wall = now[0] - last[0]
        busy_all = (now[1] - last[1]) / wall
        busy_self = (now[2] - last[2]) / wall
        # /proc/stat counts every core of the machine; scale to the ones we may use
        scale = available_cores() / (os.cpu_count() or 1)
        return max(0.0, busy_all - busy_self) * scale


@dataclass
class Policy:
    """The process-wide thread policy (see module doc); one instance, :data:`POLICY`."""

    fixed: int | None = None
    source: str = "adaptive"
    choices: dict[str, list[int]] = field(default_factory=dict)
    configured: bool = False
    run_threads: int | None = None
    """the torch thread count of the current run (see :func:`begin_run`); None outside a run"""

    def configure(self, threads: int | None = None) -> None:
        """``threads`` from ``--threads`` (None: the environment's, else adaptive)."""
        self.configured = True
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 4096:
                raise ConfigError(f"--threads must be an integer in [1, 4096], got {threads!r}")
            self.fixed, self.source = threads, "--threads"
            return
        env = _fixed_from_env()
        self.fixed, self.source = (env[0], env[1]) if env else (None, "adaptive")

    def free_cores(self, meter: _CpuMeter | None = None, window: float = 0.1) -> int:
        """Cores other processes leave free now (measured over ``window`` seconds)."""
        cores = available_cores()
        meter = meter or _CpuMeter()
        if meter.last is None:
            return cores
        time.sleep(window)
        busy = meter.others_busy()
        return cores if busy is None else max(1, min(cores, int(cores - busy + 0.5)))

    def _set(self, n: int, stage: str) -> None:
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(n)
        if "numba" in sys.modules:
            numba = sys.modules["numba"]
            numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
        seen = self.choices.setdefault(stage, [])
        if not seen or seen[-1] != n:
            seen.append(n)

    @contextlib.contextmanager
    def stage(self, name: str, parallel: bool, adapt: bool = False) -> Iterator["Stage"]:
        """Threads for one stage; yields a :class:`Stage` whose ``tick()`` re-checks the free
        cores every :data:`RECHECK_S` seconds when ``adapt`` (call it once per step: it is cheap)."""
        if not self.configured:
            self.configure()
        before = _current()
        st = Stage(self, name, parallel, adapt)
        try:
            yield st
        finally:
            self._set_quiet(before)

    def _set_quiet(self, counts: tuple[int | None, int | None]) -> None:
        import sys

        torch_n, numba_n = counts
        if torch_n is not None and "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(torch_n)
        if numba_n is not None and "numba" in sys.modules:
            sys.modules["numba"].set_num_threads(numba_n)

    def record(self) -> dict[str, object]:
        """What the manifest records: the policy, the cores available, the counts chosen per stage."""
        return {"policy": self.source if self.fixed is None else f"fixed {self.fixed} ({self.source})",
                "cores_available": available_cores(), "torch_threads_of_run": self.run_threads,
                "threads_by_stage": dict(self.choices)}

    def begin_run(self, saved: int | None = None) -> int:
        """Decide the torch thread count of a run: ``saved`` (a resumed run's), else the fixed
        count, else the cores free now. Stages of the run then use it (see module doc)."""
        if not self.configured:
            self.configure()
        self.choices.clear()
        if saved is not None and self.fixed is None:
            self.run_threads = saved
        else:
            self.run_threads = self.fixed if self.fixed is not None else self.free_cores()
        return self.run_threads

    def end_run(self) -> None:
        self.run_threads = None


def _current() -> tuple[int | None, int | None]:
    import sys

    torch_n = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    numba_n = sys.modules["numba"].get_num_threads() if "numba" in sys.modules else None
    return torch_n, numba_n


class Stage:
    """One stage under the policy: sets its thread count now and adapts it on ``tick()``."""

    def __init__(self, policy: Policy, name: str, parallel: bool, adapt: bool = False) -> None:
        self.policy, self.name, self.parallel = policy, name, parallel
        self.meter = _CpuMeter() if parallel and policy.fixed is None else None
        self.adapt = adapt
        self.next_check = time.monotonic() + RECHECK_S
        if policy.fixed is not None:  # --threads / RDLENS_THREADS / OMP_NUM_THREADS: everywhere
            self.threads = policy.fixed
        elif not parallel:
            self.threads = 1
        elif policy.run_threads is not None:  # measured when the run began; adaptive stages re-check on tick()
            self.threads = policy.run_threads
        else:
            self.threads = policy.free_cores(self.meter)
        policy._set(self.threads, name)

    def tick(self) -> None:
        """Re-measure the free cores if it is time; cheap otherwise (one clock read)."""
        if self.meter is None or not self.adapt or time.monotonic() < self.next_check:
            return
        self.next_check = time.monotonic() + RECHECK_S
        busy = self.meter.others_busy()
        if busy is None:
            return
        cores = available_cores()
        # our own threads are excluded from `busy`, so this does not oscillate with our count
        want = max(1, min(cores, int(cores - busy + 0.5)))
        if want != self.threads:
            self.threads = want
            self.policy._set(want, self.name)


POLICY = Policy()


def stage(name: str, parallel: bool, adapt: bool = False) -> contextlib.AbstractContextManager[Stage]:
    """``with threads.stage("train", parallel=True) as st: ... st.tick()`` (see :class:`Policy`)."""
    return POLICY.stage(name, parallel, adapt)


def record() -> dict[str, object]:
    return POLICY.record()
