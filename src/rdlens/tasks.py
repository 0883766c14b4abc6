"""Independent stages of a study, run one after another here or side by side in worker processes.

A study (``reproduce``: rows x seeds; ``patterns``: its training stages) hands
:func:`run_tasks` a list of :class:`Task`. With ``jobs`` = 1 they run in this process, in
order; with more, in up to ``jobs`` fresh worker processes (``spawn``: no state inherited
from this one), each on the study's torch thread count (one by default, see
:mod:`rdlens.threads`). A task's numbers are therefore the same wherever it runs, alone or
beside others: only its speed changes. Two single-threaded workers keep two cores busy on a
quiet machine and, unlike two threads of one process, do not stall each other when other
processes take the cores.

Workers send their log lines, warnings and progress bars here, where they are shown with the caller's
``log`` and ``bars``. An error in a task is raised here once the running tasks have ended;
Ctrl-C is passed on to the workers, which stop at their next step (keeping their checkpoints).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from rdlens import threads

Log = Callable[[str], None]
MAX_JOBS = 256


@dataclass(frozen=True)
class Task:
    """One stage: ``func(*args, bars=..., log=...)``; ``func`` a module-level function (it is
    sent to a worker by name), its arguments picklable. It returns a dict of stage timings."""

    name: str
    func: Callable[..., dict[str, float] | None]
    args: tuple[Any, ...] = ()
    memory_bytes: float = 0.0
    """what the task needs at its peak, to check that ``jobs`` of them fit at once"""


def default_jobs() -> int:
    """Worker processes unless told otherwise: one per core this process may use."""
    return threads.available_cores()


def check_jobs(jobs: object) -> int:
    """``jobs`` as an int in [1, MAX_JOBS], or a ConfigError naming the bad value."""
    from rdlens.errors import ConfigError

    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"--jobs must be an integer in [1, {MAX_JOBS}], got {jobs!r}")
    return jobs


def memory_at_once(tasks: Sequence[Task], jobs: int) -> float:
    """Peak memory of ``jobs`` tasks running together (the largest ones)."""
    return sum(sorted((t.memory_bytes for t in tasks), reverse=True)[:max(1, jobs)])


def run_tasks(tasks: Sequence[Task], jobs: int, *, bars: Any, log: Log) -> dict[str, float]:
    """Run every task (see the module doc); return the stage timings they report, merged."""
    timings: dict[str, float] = {}
    if jobs <= 1 or len(tasks) <= 1:
        for task in tasks:
            timings.update(task.func(*task.args, bars=bars, log=log) or {})
        return timings
    return _in_workers(tasks, min(jobs, len(tasks)), bars, log)


# ---- the parent's side ------------------------------------------------------------------------


@dataclass
class _Relay:
    """Shows what the workers send: log lines and progress bars."""

    bars: Any
    log: Log
    open: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "log":
            self.log(msg[1])
        elif kind == "warning":
            import warnings

            warnings.warn(msg[1], stacklevel=1)  # shown as the caller shows warnings (the CLI: one line)
        elif kind == "open":
            cm = self.bars(msg[2], msg[3])
            self.open[msg[1]] = (cm, cm.__enter__())
        elif kind == "update" and msg[1] in self.open:
            self.open[msg[1]][1].update(msg[2])
        elif kind == "close" and msg[1] in self.open:
            self.open.pop(msg[1])[0].__exit__(None, None, None)

    def close_all(self) -> None:
        for cm, _ in self.open.values():
            cm.__exit__(None, None, None)
        self.open.clear()


def _in_workers(tasks: Sequence[Task], workers: int, bars: Any, log: Log) -> dict[str, float]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    relay = _Relay(bars, log)

    def drain() -> None:
        while (msg := queue.get()) is not None:
            relay.handle(msg)

    shower = threading.Thread(target=drain, name="rdlens task relay", daemon=True)
    shower.start()
    policy = threads.POLICY
    if not policy.configured:
        policy.configure()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(queue, policy.fixed, policy.source, policy.run_threads, _registered()))
    timings: dict[str, float] = {}
    first_error: BaseException | None = None
    try:
        pending = {pool.submit(_worker_call, t.func, t.args) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    timings.update(fut.result() or {})
                except BaseException as exc:  # noqa: BLE001 - re-raised below, once the rest have ended
                    if first_error is None:
                        first_error = exc
                        for other in pending:
                            other.cancel()
    except KeyboardInterrupt:
        _interrupt(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        queue.put(None)
        shower.join(timeout=10)
        relay.close_all()
        queue.close()
    if first_error is not None:
        raise first_error
    return timings


def _registered() -> list[bytes]:
    """The systems registered here, by class, so that a worker knows one registered at run time."""
    import pickle

    from rdlens import systems

    out = []
    for system in systems.all_systems():
        with contextlib.suppress(Exception):  # a class defined where a worker cannot import it
            out.append(pickle.dumps(type(system)))
    return out


def _interrupt(pool: Any) -> None:
    """Pass Ctrl-C on to the workers (a terminal sends it to all; ``kill -INT`` only to us)."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.kill(proc.pid, signal.SIGINT)


# ---- the worker's side ------------------------------------------------------------------------

_QUEUE: Any = None
_KEYS = itertools.count()


def _worker_init(queue: Any, fixed: int | None, source: str, run_threads: int | None, plugins: list[bytes]) -> None:
    """A worker takes the parent's thread policy (the torch thread count is a setting) and systems."""
    import pickle

    from rdlens import systems

    global _QUEUE
    _QUEUE = queue
    policy = threads.POLICY
    policy.configured, policy.fixed, policy.source, policy.run_threads = True, fixed, source, run_threads
    import warnings

    warnings.showwarning = lambda message, *_, **__: _QUEUE.put(("warning", str(message)))
    known = set(systems.names())
    for blob in plugins:
        with contextlib.suppress(Exception):
            cls = pickle.loads(blob)
            if cls().name not in known:
                systems.register(cls)


def _worker_call(func: Callable[..., dict[str, float] | None], args: tuple[Any, ...]) -> dict[str, float] | None:
    return func(*args, bars=_remote_bars, log=_remote_log)


def _remote_log(line: str) -> None:
    _QUEUE.put(("log", line))


class _RemoteBar:
    """Counts steps and sends them at most every 0.2 s (a queue message per step is wasteful)."""

    def __init__(self, key: str) -> None:
        self.key, self.pending, self.sent = key, 0, time.monotonic()

    def update(self, n: int = 1) -> None:
        self.pending += n
        if time.monotonic() - self.sent >= 0.2:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            _QUEUE.put(("update", self.key, self.pending))
            self.pending, self.sent = 0, time.monotonic()


@contextlib.contextmanager
def _remote_bars(desc: str, total: int) -> Iterator[_RemoteBar]:
    key = f"{os.getpid()}-{next(_KEYS)}"
    _QUEUE.put(("open", key, desc, total))
    bar = _RemoteBar(key)
    try:
        yield bar
    finally:
        bar.flush()
        _QUEUE.put(("close", key))
