"""The thread policy: cores available, free cores measured, stages, overrides, the manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch

from rdlens import threads
from rdlens.cli import main
from rdlens.errors import ConfigError


class FakeMeter:
    """Reports a fixed number of cores busy with other processes."""

    def __init__(self, busy: float) -> None:
        self.busy, self.last = busy, (0.0, 0.0, 0.0)

    def others_busy(self, max_age: float = 0.0) -> float:
        return self.busy


@pytest.fixture
def two_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)


@pytest.mark.parametrize("busy, expected", [(0.0, 2), (0.4, 2), (0.6, 1), (1.3, 1), (2.0, 1), (7.5, 1)])
def test_free_cores_is_what_other_processes_leave(two_cores, busy, expected):
    assert threads.Policy().free_cores(FakeMeter(busy)) == expected


def test_serial_stage_uses_one_thread_and_restores_the_previous_count():
    policy = threads.Policy(configured=True)  # adaptive, whatever the test environment says
    torch.set_num_threads(2)
    with policy.stage("lstm", parallel=False) as st:
        assert torch.get_num_threads() == 1 and st.threads == 1
    assert torch.get_num_threads() == 2
    assert policy.record()["threads_by_stage"]["lstm"] == [1]


@pytest.fixture
def quiet_then_watched(two_cores, monkeypatch):
    """An adaptive policy on 2 free cores whose meter the test controls, re-checked at every tick."""
    meter = FakeMeter(0.0)
    monkeypatch.setattr(threads, "_CpuMeter", lambda: meter)
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    monkeypatch.setattr(threads.Policy, "free_cores", lambda self, m=None: 2)
    return threads.Policy(configured=True), meter


def test_adaptive_stage_steps_down_when_competitors_arrive(quiet_then_watched):
    policy, meter = quiet_then_watched
    with policy.stage("Gray-Scott", parallel=True, adapt=True) as st:
        assert st.threads == 2
        meter.busy = 2.0
        st.tick()
        assert st.threads == 1 and torch.get_num_threads() == 1
        meter.busy = 0.0
        st.tick()
        assert st.threads == 2
    assert policy.choices["Gray-Scott"] == [2, 1, 2]


def test_torch_stage_uses_the_setting_never_the_load(quiet_then_watched):
    """torch's numbers depend on its thread count, so a torch stage never follows the load:
    one thread by default on a quiet machine, the run's count inside a run, whatever arrives."""
    policy, meter = quiet_then_watched
    with policy.stage("DDPM train", parallel=True) as st:
        assert st.threads == threads.DEFAULT_TORCH_THREADS == 1
        meter.busy = 2.0
        st.tick()
        assert st.threads == 1
    policy.run_threads = 2
    with policy.stage("DDPM train", parallel=True) as st:
        meter.busy = 2.0
        st.tick()
        assert st.threads == 2 and torch.get_num_threads() == 2


def test_reading_the_free_cores_does_not_wait():
    """The Gray-Scott kernel asks at every call: the answer must cost no sleep (it used to cost 0.1 s)."""
    policy = threads.Policy(configured=True)
    t0 = time.perf_counter()
    for _ in range(50):
        policy.free_cores()
    assert time.perf_counter() - t0 < 0.25


def test_an_old_reading_says_nothing_about_now(monkeypatch):
    meter = threads._CpuMeter()
    assert meter.others_busy(max_age=10.0) is None  # no time has passed: nothing to measure yet
    now = meter.last
    meter.last = (now[0] - 60.0, now[1], now[2])
    assert meter.others_busy(max_age=10.0) is None  # a minute's average is not the load now


def test_real_competitors_are_measured():
    """Busy processes on every core leave one thread for us; without them, all cores."""
    cores = threads.available_cores()
    if cores < 2:
        pytest.skip("one core: nothing to choose")
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        time.sleep(0.3)
        policy = threads.Policy()
        assert policy.free_cores() <= max(1, cores // 2)  # the runnable tasks, read at once
        time.sleep(0.3)
        assert policy.free_cores() <= max(1, cores // 2)  # the CPU time since that reading
    finally:
        for p in busy:
            p.kill()
            p.wait()


def test_affinity_limits_the_cores_available():
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from rdlens import threads; print(threads.available_cores())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"


def test_cgroup_quota_caps_the_cores(monkeypatch, tmp_path):
    files = {"/sys/fs/cgroup/cpu.max": "150000 100000\n"}

    def fake_open(path, *args, **kwargs):
        if path in files:
            from io import StringIO

            return StringIO(files[path])
        raise OSError(path)

    monkeypatch.setattr(threads, "open", fake_open, raising=False)
    assert threads._cgroup_quota() == 1.5
    files["/sys/fs/cgroup/cpu.max"] = "max 100000\n"
    assert threads._cgroup_quota() is None


@pytest.mark.parametrize("env, expected", [({"RDLENS_THREADS": "3"}, 3), ({"OMP_NUM_THREADS": "1"}, 1)])
def test_environment_fixes_the_count(monkeypatch, env, expected):
    monkeypatch.delenv("RDLENS_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    policy = threads.Policy()
    policy.configure()
    assert policy.fixed == expected and policy.source == next(iter(env))
    with policy.stage("x", parallel=True) as st:
        assert st.threads == expected


def test_bad_thread_counts_are_one_line_errors(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RDLENS_THREADS", "many")
    with pytest.raises(ConfigError, match="RDLENS_THREADS must be a whole number"):
        threads.Policy().configure()
    monkeypatch.setenv("RDLENS_THREADS", "1")
    assert main(["rd", "--threads", "0", "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--threads must be an integer in [1, 4096], got 0" in err and len(err.strip().splitlines()) == 1


def test_the_manifest_records_the_threads_used(tmp_path, capsys):
    assert main(["rd", "--size", "32", "--length", "0.32", "--steps", "50", "--quiet", "--json", "--threads", "1",
                 "--out", str(tmp_path)]) == 0
    run = tmp_path / json.loads(capsys.readouterr().out)["run_dir"].split("/")[-1]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["threads"]["policy"] == "fixed 1 (--threads)"
    assert manifest["threads"]["threads_by_stage"]["Gray-Scott"] == [1]
    assert manifest["threads"]["cores_available"] >= 1


def test_a_resumed_run_keeps_the_torch_thread_count_it_started_with(tmp_path, monkeypatch, capsys):
    """torch sums in a thread-dependent order: a resume must compute with the count the run
    started with (saved in its config.json), or it would not be bit-identical to an
    uninterrupted run; a --threads that asks for another count is refused."""
    args = ["lstm", "--dataset", "sine", "--n-sequences", "20", "--length", "20", "--steps", "4", "--batch-size", "4",
            "--quiet", "--json", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 0
    run = tmp_path / json.loads(capsys.readouterr().out)["run_dir"].split("/")[-1]
    saved = json.loads((run / "config.json").read_text())
    assert saved["torch_threads"] == 1  # RDLENS_THREADS=1 in tests
    (run / "summary.json").unlink()
    (run / "config.json").write_text(json.dumps({**saved, "torch_threads": 2}))
    assert main(["lstm", "--resume", str(run), "--quiet", "--threads", "1"]) == 2
    assert "started with 2 torch thread(s)" in capsys.readouterr().err
    monkeypatch.delenv("RDLENS_THREADS")  # the default from here on: the saved count must win
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # Dask sets it when it starts a cluster
    try:
        assert main(["lstm", "--resume", str(run), "--quiet", "--json"]) == 0
    finally:
        threads.POLICY.configure()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["threads"]["torch_threads_of_run"] == 2 and manifest["threads"]["policy"] == "adaptive"


def test_a_run_written_before_config_json_held_the_count_is_read_from_threads_json(tmp_path):
    from rdlens.run import saved_torch_threads

    (tmp_path / "config.json").write_text('{"system": "lstm"}')
    assert saved_torch_threads(tmp_path) is None
    (tmp_path / "threads.json").write_text('{"torch_threads": 2}')
    assert saved_torch_threads(tmp_path) == 2
    (tmp_path / "config.json").write_text('{"system": "lstm", "torch_threads": 3}')
    assert saved_torch_threads(tmp_path) == 3


def test_a_fixed_count_applies_to_serial_stages_too():
    policy = threads.Policy(fixed=2, source="--threads", configured=True)
    with policy.stage("LSTM training", parallel=False) as st:
        assert st.threads == 2 and torch.get_num_threads() == 2


def test_an_exact_kernel_follows_the_load_even_inside_a_run(quiet_then_watched):
    """Gray-Scott's numbers do not depend on its thread count: inside a run on one torch
    thread it still takes the free cores, and follows them."""
    policy, meter = quiet_then_watched
    policy.run_threads = 1
    with policy.stage("Gray-Scott", parallel=True, adapt=True) as st:
        assert st.threads == 2
        meter.busy = 2.0
        st.tick()
        assert st.threads == 1
