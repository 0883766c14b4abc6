"""How many threads torch and numba use, decided in one place.

Measured on a 2-core machine (benchmarks/bench_contention.py repeats it): alone, two threads
make U-Net training 1.5x and the Gray-Scott kernel 2x faster than one; beside two busy
processes, two threads make them 80x and 400x *slower* than alone, one thread about 2.4x.
The cause is the barrier at the end of every parallel region: each of thousands of small
ops needs all its threads on a core at once, and OpenMP threads spin while they wait, so a
thread that the scheduler parks stalls the others for a time slice. (Passive waiting,
``OMP_WAIT_POLICY=PASSIVE``, removes the spinning but still leaves a 10x collapse.)

torch's CPU results depend on its thread count, at float rounding level (a oneDNN 1x1
convolution sums in a thread-dependent order: 1.5e-7 absolute in a U-Net output, about 1e-9
relative in R; trained weights drift further apart). So the policy keeps two kinds of stage
apart:

- **torch stages** (training, sampling, rollouts, the quality classifier) run on the run's
  torch thread count, which is a *setting*: ``--threads N`` (or ``RDLENS_THREADS`` /
  ``OMP_NUM_THREADS``), else :data:`DEFAULT_TORCH_THREADS` (one). It never depends on how busy
  the machine is; it is saved in the run's ``config.json`` (``torch_threads``) and a resumed
  run keeps it, so the same command gives the same numbers alone or beside other work, and a
  resumed run is bit-identical to an uninterrupted one. Speed on a quiet machine comes from
  running independent stages (rows x seeds, training stages) side by side in single-threaded
  worker processes (:mod:`rdlens.studies.tasks`), which also degrade gracefully under contention;
- **exact kernels** (Gray-Scott, ``adapt=True``), whose row sums are added in a fixed order so
  that their numbers do not depend on the thread count, use as many threads as there are
  cores that other processes leave free, and re-check every :data:`RECHECK_S` seconds
  (stepping down when competitors arrive and back up when they leave). The free cores are
  read without waiting: from the CPU time since the previous reading of this process, or,
  at the first reading, from the number of runnable tasks (``procs_running`` in /proc/stat);
- the cores counted are those this process may use: ``os.sched_getaffinity`` and a cgroup
  CPU quota (``cpu.max``), whichever is smaller;
- a fixed ``--threads N`` applies to every stage (and is never undone by a later stage).

Every choice is recorded and lands in ``manifest.json`` (:func:`record`).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from rdlens.core.errors import ConfigError

RECHECK_S = 2.0
"""seconds between re-measurements of the free cores inside an adaptive (exact-kernel) stage"""
MAX_READING_AGE_S = 10.0
"""an earlier reading older than this says nothing about the load now"""
DEFAULT_TORCH_THREADS = 1
"""torch's thread count unless a setting says otherwise (see the module doc)"""
MAX_THREADS = 4096


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
            if not 1 <= n <= MAX_THREADS:
                raise ConfigError(f"{name} must be a whole number of threads in [1, {MAX_THREADS}], got {n}")
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

    @staticmethod
    def runnable_others() -> float | None:
        """Busy cores of other processes right now, from the runnable tasks in /proc/stat less
        this process's own (its spinning worker threads included), scaled to the cores this
        process may use; no waiting."""
        try:
            with open("/proc/stat") as fh:
                running = next(int(line.split()[1]) for line in fh if line.startswith("procs_running"))
        except (OSError, ValueError, IndexError, StopIteration):
            return None
        scale = available_cores() / (os.cpu_count() or 1)
        return max(0.0, running - _own_running()) * scale

    def others_busy(self, max_age: float = math.inf) -> float | None:
        """Mean busy cores of other processes since the last reading, if it lies between 50 ms
        and ``max_age`` seconds back (else None: too short to measure, or too old to be "now")."""
        now = self._read()
        last, self.last = self.last, now
        if now is None or last is None or not 0.05 <= now[0] - last[0] <= max_age:
            return None
        wall = now[0] - last[0]
        busy_all = (now[1] - last[1]) / wall
        busy_self = (now[2] - last[2]) / wall
        # /proc/stat counts every core of the machine; scale to the ones we may use
        scale = available_cores() / (os.cpu_count() or 1)
        return max(0.0, busy_all - busy_self) * scale


def _own_running() -> int:
    """Threads of this process that are runnable now (at least the caller)."""
    count = 0
    try:
        for task in os.scandir("/proc/self/task"):
            try:
                with open(f"{task.path}/stat") as fh:
                    count += fh.read().rsplit(")", 1)[1].split()[0] == "R"
            except (OSError, IndexError):
                continue
    except OSError:
        pass
    return max(1, count)


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

    def free_cores(self, meter: _CpuMeter | None = None) -> int:
        """Cores other processes leave free now, read without waiting: the busy time since
        ``meter``'s (default: this process's) last reading when that is at least 50 ms old,
        else the tasks runnable right now."""
        cores = available_cores()
        meter = meter or _process_meter()
        busy = meter.others_busy(max_age=MAX_READING_AGE_S)
        if busy is None:
            busy = _CpuMeter.runnable_others()
        return cores if busy is None else max(1, min(cores, int(cores - busy + 0.5)))

    def setting(self) -> int:
        """The torch thread count the settings ask for: the fixed one, else the default."""
        if not self.configured:
            self.configure()
        return self.fixed if self.fixed is not None else DEFAULT_TORCH_THREADS

    def torch_threads(self) -> int:
        """The torch thread count now: the current run's, else the setting."""
        return self.run_threads if self.run_threads is not None else self.setting()

    def state(self) -> tuple[int | None, str, int | None]:
        """What a worker process needs to follow this policy (see :meth:`adopt`)."""
        if not self.configured:
            self.configure()
        return self.fixed, self.source, self.run_threads

    def adopt(self, state: tuple[int | None, str, int | None]) -> None:
        """Follow another process's policy (its :meth:`state`)."""
        self.configured = True
        self.fixed, self.source, self.run_threads = state

    def _set(self, n: int, stage: str) -> None:
        import sys

        if (torch := _loaded_torch()) is not None:
            torch.set_num_threads(n)
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
        if torch_n is not None and (torch := _loaded_torch()) is not None:
            torch.set_num_threads(torch_n)
        if numba_n is not None and "numba" in sys.modules:
            sys.modules["numba"].set_num_threads(numba_n)

    def record(self) -> dict[str, object]:
        """What the manifest records: the policy, the cores available, the counts chosen per stage."""
        return {"policy": self.source if self.fixed is None else f"fixed {self.fixed} ({self.source})",
                "cores_available": available_cores(), "torch_threads_of_run": self.run_threads,
                "threads_by_stage": dict(self.choices)}

    def begin_run(self, saved: int | None = None) -> int:
        """Decide the torch thread count of a run: ``saved`` (what its config.json records),
        else the setting (see :meth:`torch_threads`). A fixed count that differs from a saved
        one is refused: it would change the numbers of the run being continued."""
        self.choices.clear()
        wanted = self.setting()
        if saved is not None and self.fixed is not None and saved != self.fixed:
            raise ConfigError(f"this run was started with {saved} torch thread(s) (torch_threads in its "
                              f"config.json); {self.source} asks for {self.fixed}, which would change its "
                              f"numbers: continue it with --threads {saved}, or start a new run")
        self.run_threads = saved if saved is not None else wanted
        return self.run_threads

    def end_run(self) -> None:
        self.run_threads = None

    @contextlib.contextmanager
    def running(self, saved: int | None = None) -> Iterator[int]:
        """``begin_run(saved)`` for the block, ``end_run()`` after it, however it ends."""
        try:
            yield self.begin_run(saved)
        finally:
            self.end_run()


def _loaded_torch() -> Any:
    """torch if this process has imported it (fully: another thread may be importing it now,
    as a Dask worker does while it unpacks the next task), else None."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not (hasattr(torch, "get_num_threads") and hasattr(torch, "set_num_threads")):
        return None
    return torch


def _current() -> tuple[int | None, int | None]:
    import sys

    torch = _loaded_torch()
    torch_n = torch.get_num_threads() if torch is not None else None
    numba_n = sys.modules["numba"].get_num_threads() if "numba" in sys.modules else None
    return torch_n, numba_n


_METER: _CpuMeter | None = None


def _process_meter() -> _CpuMeter:
    """One meter per process, so that each reading covers the time since the previous one."""
    global _METER
    if _METER is None:
        _METER = _CpuMeter()
    return _METER


class Stage:
    """One stage under the policy: sets its thread count now and, for an exact kernel
    (``adapt``), follows the free cores on ``tick()``."""

    def __init__(self, policy: Policy, name: str, parallel: bool, adapt: bool = False) -> None:
        self.policy, self.name, self.parallel = policy, name, parallel
        self.adapt = adapt and parallel and policy.fixed is None
        self.meter = _CpuMeter() if self.adapt else None
        self.next_check = time.monotonic() + RECHECK_S
        if policy.fixed is not None:  # --threads / RDLENS_THREADS / OMP_NUM_THREADS: everywhere
            self.threads = policy.fixed
        elif not parallel:
            self.threads = 1
        elif adapt:  # an exact kernel: its numbers do not depend on the count, so it may follow the load
            self.threads = policy.free_cores()
        else:  # torch: the run's setting, never the load
            self.threads = policy.torch_threads()
        policy._set(self.threads, name)

    def tick(self) -> None:
        """Re-measure the free cores if it is time; cheap otherwise (one clock read)."""
        if self.meter is None or time.monotonic() < self.next_check:
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
    """``with threads.stage("train", parallel=True) as st: ... st.tick()`` (see :class:`Policy`):
    ``adapt`` only for kernels whose numbers do not depend on the thread count."""
    return POLICY.stage(name, parallel, adapt)


def record() -> dict[str, object]:
    return POLICY.record()
