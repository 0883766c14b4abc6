"""Independent stages of a study, run one after another here or side by side in worker processes.

A study (``reproduce``: rows x seeds; ``patterns``: its training stages) hands
:func:`run_tasks` a list of :class:`Task`. With ``jobs`` = 1 they run in this process, in
order; with more, in up to ``jobs`` fresh worker processes (``spawn``: no state inherited
from this one), each on the study's torch thread count (one by default, see
:mod:`rdlens.core.threads`). A task's numbers are therefore the same wherever it runs, alone or
beside others: only its speed changes. Two single-threaded workers keep two cores busy on a
quiet machine and, unlike two threads of one process, do not stall each other when other
processes take the cores.

Workers send their log lines, warnings and progress bars here, where they are shown with the caller's
``log`` and ``bars``. An error in a task is raised here once the running tasks have ended;
Ctrl-C is passed on to the workers, which stop at their next step (keeping their checkpoints).

With ``scheduler`` (a Dask scheduler's address), the tasks run on that cluster's workers
instead, under the same thread policy, one task at a time per worker process (torch's global
random state is per process); the workers must see the study's folder (the same machine or a
shared file system) and have the same rdlens. Their log lines are shown as each task ends.
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

from rdlens.core import threads

Log = Callable[[str], None]
MAX_JOBS = 256


@dataclass(frozen=True)
class Task:
    """One stage: ``func(*args, bars=..., log=...)``; ``func`` a module-level function (it is
    sent to a worker by name), its arguments picklable. It returns a dict of stage timings."""

    name: str
    func: Callable[..., dict[str, float] | None]
    args: tuple[Any, ...] = ()
    weight: float = 0.0
    """expected work, in a unit shared by the tasks of one call (rdlens: floating-point
    operations, :meth:`rdlens.systems.base.System.work`); 0 where unknown"""


def heaviest_first(tasks: Sequence[Task]) -> list[Task]:
    """The order workers take tasks in: the heaviest first, ties in the given order. Started
    in list order, the cpu patterns study's last ConvLSTM training ran for minutes on one core
    while the other idled; with the longest first, what is left at the end is short."""
    return sorted(tasks, key=lambda t: -t.weight)


def default_jobs() -> int:
    """Worker processes unless told otherwise: one per core this process may use."""
    return threads.available_cores()


def check_jobs(jobs: object) -> int:
    """``jobs`` as an int in [1, MAX_JOBS], or a ConfigError naming the bad value."""
    from rdlens.core.errors import ConfigError

    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= MAX_JOBS:
        raise ConfigError(f"--jobs must be an integer in [1, {MAX_JOBS}], got {jobs!r}")
    return jobs


def run_tasks(tasks: Sequence[Task], jobs: int, *, bars: Any, log: Log, scheduler: str | None = None,
              where: dict[str, str] | None = None) -> dict[str, float]:
    """Run every task (see the module doc); return the stage timings they report, merged.
    ``where``, if given, receives where each task ran (by task name), for the manifest."""
    where = where if where is not None else {}
    timings: dict[str, float] = {}
    if scheduler is not None:
        return _on_dask(tasks, scheduler, log, where)
    stay = None if jobs <= 1 or len(tasks) <= 1 else _not_sendable(tasks)
    if stay:
        log(f"running in this process, one task at a time: {stay}")
    if jobs <= 1 or len(tasks) <= 1 or stay:
        for task in tasks:
            timings.update(task.func(*task.args, bars=bars, log=log) or {})
            where[task.name] = _place()
        return timings
    return _in_workers(tasks, min(jobs, len(tasks)), bars, log, where)


def _not_sendable(tasks: Sequence[Task]) -> str | None:
    """Why these tasks cannot go to fresh worker processes (None: they can). A system or config
    defined in a notebook or an interactive session exists only in this process; one defined in
    a script can be pickled only if the script's module can be imported again by name."""
    import pickle
    import sys

    main = sys.modules.get("__main__")
    interactive = main is None or not getattr(main, "__file__", None)
    for task in tasks:
        try:
            data = pickle.dumps(task.args)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            return (f"{task.name} cannot be sent to a worker process ({str(exc).splitlines()[0][:160]}); define "
                    "its system in an importable module to run tasks side by side")
        if interactive and b"__main__" in data:
            return (f"{task.name} uses a class defined in this interactive session, which a worker process "
                    "cannot import; define it in a module to run tasks side by side")
    return None


def _place() -> str:
    """Where this process is, in the words of the manifest."""
    import sys

    distributed = sys.modules.get("distributed")  # loaded where a Dask worker runs this; never imported here
    if distributed is not None:
        with contextlib.suppress(ValueError):
            return f"Dask worker {distributed.get_worker().address} (pid {os.getpid()})"
    return f"{'worker' if _QUEUE is not None else 'this'} process (pid {os.getpid()})"


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


def _in_workers(tasks: Sequence[Task], workers: int, bars: Any, log: Log, where: dict[str, str]
                ) -> dict[str, float]:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from rdlens.core.errors import StageFailed

    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    relay = _Relay(bars, log)

    def drain() -> None:
        while (msg := queue.get()) is not None:
            relay.handle(msg)

    shower = threading.Thread(target=drain, name="rdlens task relay", daemon=True)
    shower.start()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(queue, threads.POLICY.state(), _registered()))
    timings: dict[str, float] = {}
    first_error: BaseException | None = None
    try:
        names = {pool.submit(_worker_call, t.func, t.args): t.name for t in heaviest_first(tasks)}
        pending = set(names)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    reported, where[names[fut]] = fut.result()
                    timings.update(reported or {})
                except BrokenProcessPool:
                    raise
                except BaseException as exc:  # noqa: BLE001 - re-raised below, once the rest have ended
                    if first_error is None:
                        first_error = exc
                        for other in pending:
                            other.cancel()
    except KeyboardInterrupt:
        _interrupt(pool)  # the workers end their tasks; the shutdown below waits for them
        raise
    except BrokenProcessPool:
        raise StageFailed("a worker process ended unexpectedly (killed, or out of memory?); finished stages are "
                          "kept: run the same command again to continue") from None
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


def dask_client(scheduler: str | None, workers: int, command: str, timeout_s: int = 20) -> tuple[Any, Any]:
    """(client, the cluster started here or None): the scheduler at ``scheduler``, else an
    embedded LocalCluster of ``workers`` single-threaded processes on the loopback; a missing
    Dask or an unreachable scheduler is a ConfigError naming what to do."""
    from rdlens.core.errors import ConfigError

    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError(f"rdlens {command} needs Dask: pip install 'rdlens[sweep]' "
                          "(or: pip install 'dask[distributed]')") from None
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler is not None:
        if not scheduler.strip():
            raise ConfigError("--scheduler must be a Dask scheduler's address (e.g. tcp://127.0.0.1:8786), got ''")
        try:
            return Client(scheduler, timeout=f"{timeout_s}s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler!r} ({type(exc).__name__}: {exc})") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    return Client(cluster), cluster


def check_scheduler(scheduler: str, command: str) -> None:
    """Refuse an unreachable scheduler before any folder is made (connect, then close)."""
    client, _ = dask_client(scheduler, 1, command, timeout_s=5)
    client.close()


def _on_dask(tasks: Sequence[Task], scheduler: str, log: Log, where: dict[str, str]) -> dict[str, float]:
    from dask.distributed import as_completed

    client, _ = dask_client(scheduler, 1, "")
    state = (threads.POLICY.state(), _registered())
    timings: dict[str, float] = {}
    first_error: BaseException | None = None
    try:
        ordered = heaviest_first(tasks)
        futures = [client.submit(_dask_call, t.func, t.args, state, pure=False, key=f"rdlens-{t.name}-{os.getpid()}-{i}",
                                 priority=len(ordered) - i) for i, t in enumerate(ordered)]
        names = {f.key: t.name for f, t in zip(futures, ordered)}
        for fut in as_completed(futures):
            try:
                done, lines, where[names[fut.key]] = fut.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, once the rest have ended
                if isinstance(exc, KeyboardInterrupt):
                    raise
                first_error = first_error or exc
                continue
            for line in lines:
                log(line)
            timings.update(done or {})
    except KeyboardInterrupt:
        client.cancel(futures)
        raise
    finally:
        client.close()
    if first_error is not None:
        raise first_error
    return timings


_ONE_AT_A_TIME = threading.Lock()


def _dask_call(func: Callable[..., dict[str, float] | None], args: tuple[Any, ...],
               state: tuple[tuple[int | None, str, int | None], list[bytes]]
               ) -> tuple[dict[str, float] | None, list[str], str]:
    """A task on a Dask worker: the caller's thread policy and systems, one task per process at
    a time, its log lines returned with its timings."""
    from rdlens.core.progress import no_bars

    policy_state, plugins = state
    lines: list[str] = []
    with _ONE_AT_A_TIME:
        threads.POLICY.adopt(policy_state)
        _register(plugins)
        return func(*args, bars=no_bars, log=lines.append), lines, _place()


def _register(plugins: list[bytes]) -> None:
    """Register the caller's systems that this process does not know (by class)."""
    import pickle

    from rdlens import systems

    known = set(systems.names())
    for blob in plugins:
        with contextlib.suppress(Exception):
            cls = pickle.loads(blob)
            if cls().name not in known:
                systems.register(cls)


def _interrupt(pool: Any) -> None:
    """Pass an interrupt on to the workers (a terminal's Ctrl-C reaches all of them; SIGTERM or
    ``kill -INT`` only this process). They stop their task at its next step, once."""
    for proc in list(getattr(pool, "_processes", {}).values()):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.kill(proc.pid, signal.SIGTERM)


# ---- the worker's side ------------------------------------------------------------------------

_QUEUE: Any = None
_KEYS = itertools.count()
_BUSY = False
"""a task is running in this worker (an interrupt stops it; an idle worker just exits)"""
_STOPPING = False


def _stop(signum: int, frame: Any) -> None:
    """SIGINT or SIGTERM in a worker: the running task ends as if Ctrl-C was pressed (once:
    a terminal's Ctrl-C and the parent's SIGTERM may both arrive); an idle worker exits."""
    global _STOPPING
    if _STOPPING:
        return
    _STOPPING = True
    if not _BUSY:
        os._exit(0)
    raise KeyboardInterrupt


def _worker_init(queue: Any, policy_state: tuple[int | None, str, int | None], plugins: list[bytes]) -> None:
    """A worker takes the parent's thread policy (the torch thread count is a setting) and systems."""
    global _QUEUE
    _QUEUE = queue
    for sig in (signal.SIGINT, signal.SIGTERM):  # even where the parent was started with SIGINT ignored
        signal.signal(sig, _stop)
    threads.POLICY.adopt(policy_state)
    import warnings

    warnings.showwarning = lambda message, *_, **__: _QUEUE.put(("warning", str(message)))
    _register(plugins)


def _worker_call(func: Callable[..., dict[str, float] | None], args: tuple[Any, ...]
                 ) -> tuple[dict[str, float] | None, str]:
    global _BUSY
    _BUSY = True
    try:
        return func(*args, bars=_remote_bars, log=_remote_log), _place()
    finally:
        _BUSY = False


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
