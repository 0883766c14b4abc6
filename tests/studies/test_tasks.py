"""A study's stages in worker processes or on a Dask cluster: same results, messages relayed,
errors raised here, bad settings refused before any folder exists."""

from __future__ import annotations

import contextlib
import json
import os

import pytest

from rdlens import tasks
from rdlens.errors import ConfigError, SimulationDiverged
from rdlens.run import no_bars


def square(x: int, *, bars, log) -> dict[str, float]:
    """A task: logs, shows a bar of x steps, reports which process ran it."""
    log(f"square {x} in {os.getpid()}")
    with bars(f"square {x}", x) as bar:
        for _ in range(x):
            bar.update(1)
    return {f"square {x}": float(x * x)}


def diverge(*, bars, log) -> None:
    raise SimulationDiverged("toy", 7, "on purpose")


def refuse(*, bars, log) -> None:
    raise ConfigError("x must be in [0, 1], got 2")


def die(*, bars, log) -> None:
    import signal

    os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def bars(self, desc: str, total: int):
        rec = self

        class Bar:
            def update(self, n: int = 1) -> None:
                rec.events.append(("update", desc, n))

        @contextlib.contextmanager
        def cm():
            rec.events.append(("open", desc, total))
            yield Bar()
            rec.events.append(("close", desc))

        return cm()


def nap(name: str, *, bars, log) -> dict[str, float]:
    """A task that says when it starts and takes a second."""
    import time

    log(f"start {name}")
    time.sleep(1.0)
    return {name: 1.0}


def test_heaviest_first_orders_by_weight_keeping_ties_in_order():
    work = [tasks.Task(n, nap, (n,), weight=w) for n, w in (("a", 0), ("b", 5), ("c", 0), ("d", 7.5), ("e", 5))]
    assert [t.name for t in tasks.heaviest_first(work)] == ["d", "b", "e", "a", "c"]


def test_workers_start_the_heaviest_tasks_first_and_the_light_one_last():
    """Two workers, three one-second tasks listed lightest first: the light one starts only
    when a heavy one has ended."""
    lines: list[str] = []
    work = [tasks.Task("light", nap, ("light",), weight=1.0), tasks.Task("heavy", nap, ("heavy",), weight=3.0),
            tasks.Task("middle", nap, ("middle",), weight=2.0)]
    assert tasks.run_tasks(work, 2, bars=no_bars, log=lines.append) == {"light": 1.0, "heavy": 1.0, "middle": 1.0}
    assert sorted(lines[:2]) == ["start heavy", "start middle"] and lines[2] == "start light"


@pytest.mark.parametrize("jobs", [1, 2])
def test_tasks_give_the_same_results_here_and_in_workers_and_relay_logs_and_bars(jobs):
    rec, lines = Recorder(), []
    got = tasks.run_tasks([tasks.Task(f"t{x}", square, (x,)) for x in (3, 5)], jobs, bars=rec.bars, log=lines.append)
    assert got == {"square 3": 9.0, "square 5": 25.0}
    pids = {int(line.rsplit(" ", 1)[1]) for line in lines}
    assert (pids == {os.getpid()}) if jobs == 1 else (os.getpid() not in pids)
    for x in (3, 5):
        assert ("open", f"square {x}", x) in rec.events and ("close", f"square {x}") in rec.events
        assert sum(e[2] for e in rec.events if e[0] == "update" and e[1] == f"square {x}") == x


@pytest.mark.parametrize("func, kind, text", [(diverge, SimulationDiverged, "toy run diverged at step 7"),
                                              (refuse, ConfigError, "x must be in [0, 1], got 2")])
def test_an_error_in_a_worker_is_raised_here_with_its_message(func, kind, text):
    work = [tasks.Task("ok", square, (2,)), tasks.Task("bad", func)]
    with pytest.raises(kind, match=text.replace("[", r"\[").replace("]", r"\]")):
        tasks.run_tasks(work, 2, bars=no_bars, log=lambda line: None)


def test_a_worker_that_dies_is_one_clear_error():
    from rdlens.errors import StageFailed

    with pytest.raises(StageFailed, match="a worker process ended unexpectedly"):
        tasks.run_tasks([tasks.Task("dies", die), tasks.Task("ok", square, (2,))], 2, bars=no_bars,
                        log=lambda line: None)


@pytest.mark.parametrize("jobs", [0, -1, 10**6, 1.5, True, "2"])
def test_bad_jobs_are_refused_naming_the_value_and_the_range(jobs):
    with pytest.raises(ConfigError, match=r"--jobs must be an integer in \[1, 256\]"):
        tasks.check_jobs(jobs)


def test_bad_or_unreachable_schedulers_are_refused_before_any_folder_exists(tmp_path):
    pytest.importorskip("dask.distributed")
    from rdlens.reproduce import reproduce

    with pytest.raises(ConfigError, match="--scheduler must be a Dask scheduler's address"):
        reproduce("smoke", out=tmp_path, rows=("rd-spot",), scheduler=" ")
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        reproduce("smoke", out=tmp_path, rows=("rd-spot",), scheduler="tcp://127.0.0.1:9")
    assert list(tmp_path.iterdir()) == []


def test_reproduce_on_a_dask_cluster_gives_the_local_tables_byte_for_byte(tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    from rdlens.reproduce import reproduce

    rows = ("rd-spot", "lstm-sine", "ddpm-mnist")
    local, _, _ = reproduce("smoke", out=tmp_path / "local", rows=rows, device="cpu", log=lambda line: None)
    lines: list[str] = []
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        remote, _, _ = reproduce("smoke", out=tmp_path / "dask", rows=rows, device="cpu",
                                 scheduler=cluster.scheduler_address, log=lines.append)
    for name in ("table1.csv", "table1.md", "table1.json"):
        assert (local / name).read_bytes() == (remote / name).read_bytes(), name
    assert any(line.startswith("ddpm-mnist seed 0") and "done in" in line for line in lines)
    manifest = json.loads((remote / "manifest.json").read_text())
    assert manifest["scheduler"] == cluster.scheduler_address


@pytest.mark.parametrize("how", ["SIGTERM to rdlens", "SIGINT to its process group"])
def test_an_interrupt_stops_the_workers_and_ends_in_one_line(tmp_path, how):
    """A batch system's SIGTERM reaches only rdlens, a terminal's Ctrl-C every process of the
    group; either way the workers stop, rdlens says how to continue, and nothing is left running."""
    import signal
    import subprocess
    import sys
    import time

    profile = tmp_path / "long.toml"
    profile.write_text('[ddpm]\nsetting = "default"\nsteps = 100000\nbatch_size = 4\nsamples = 2\nT = 10\n'
                       'channels = [8, 16]\nmax_images = 64\ntrack_every = 0\n')
    env = {k: v for k, v in os.environ.items() if k != "RDLENS_THREADS"}
    proc = subprocess.Popen([sys.executable, "-m", "rdlens", "reproduce", "--profile", str(profile), "--rows",
                             "ddpm-mnist", "--seeds", "2", "--jobs", "2", "--quiet", "--out", str(tmp_path / "out")],
                            stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    rows = [tmp_path / "out/reproduce-long/rows/ddpm-mnist" / f"seed{s}" for s in (0, 1)]
    deadline = time.monotonic() + 120
    while not all(p.is_dir() for p in rows) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(p.is_dir() for p in rows), "the two workers did not start their rows"
    time.sleep(2.0)  # both workers inside their training
    if how.startswith("SIGTERM"):
        proc.send_signal(signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "run the same command again to continue" in err.splitlines()[-1]
    deadline = time.monotonic() + 10  # the workers and multiprocessing's resource tracker follow rdlens out
    while (left := subprocess.run(["pgrep", "-a", "-s", str(proc.pid)], capture_output=True, text=True).stdout.strip()):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert left == ""


def apply(fn, x, *, bars, log) -> dict:
    log(f"pid {os.getpid()}")
    return {"value": float(fn(x))}


def test_tasks_that_cannot_reach_a_worker_run_here_with_one_line_saying_why():
    """A system defined in a script or notebook (here: a lambda) cannot be pickled for a worker
    process: the tasks run in this process instead of ending in a PicklingError traceback."""
    lines: list[str] = []
    got = tasks.run_tasks([tasks.Task("a", apply, (lambda x: x + 1, 1)), tasks.Task("b", apply, (abs, -2))], 2,
                          bars=no_bars, log=lines.append)
    assert got == {"value": 2.0}  # both ran; the last one's timing wins the merge
    assert lines[0].startswith("running in this process, one task at a time: a cannot be sent to a worker")
    assert {int(line.split()[1]) for line in lines[1:]} == {os.getpid()}
