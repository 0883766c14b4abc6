"""Same command, same numbers, whatever else runs on the machine (README, "Reproducibility").

The commands run as a user runs them: in a fresh process under the default thread policy
(the suite's RDLENS_THREADS=1 is taken away), alone and beside two busy processes. Their
DDPM row is large enough that torch's numbers *do* depend on the thread count (checked here
too), so the tables match only because the count is a setting, not because the row is tiny.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rdlens import grayscott, threads

# a DDPM row whose U-Net oneDNN splits across threads (the smoke profile's is too small to show it)
PROFILE = """description = "reproducibility test: a DDPM row large enough for thread-dependent sums"
[ddpm]
setting = "default"
steps = 3
batch_size = 16
samples = 4
T = 20
channels = [32, 64]
max_images = 64
turing_images = 4
track_every = 0
[lstm]
steps = 10
batch_size = 8
n_sequences = 40
length = 40
[patterns]
patterns = 2
steps = 2000
frames = 4
frame_every = 50
long_factor = 2
trajectories = 2
rollouts = 1
continue_steps = 200
ddpm_steps = 2
ddpm_T = 10
ddpm_samples = 2
ddpm_channels = [32, 64]
convlstm_steps = 4
convlstm_window = 2
convlstm_hidden = 8
"""
ROWS = "lstm-sine,ddpm-mnist"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RDLENS_THREADS", "OMP_NUM_THREADS")}
    env["MPLBACKEND"] = "Agg"
    return env


def _rdlens(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "rdlens", *args], env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


class Busy:
    """Two processes that keep the cores busy while the block runs."""

    def __enter__(self) -> "Busy":
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "repro.toml"
    path.write_text(PROFILE)
    return path


def _tables(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in names}


def alone_and_busy(tmp_path: Path, *args: str) -> None:
    """The same command twice: alone into tmp_path/alone, beside two busy processes into tmp_path/busy."""
    _rdlens(*args, "--out", str(tmp_path / "alone"))
    with Busy():
        _rdlens(*args, "--out", str(tmp_path / "busy"))


def test_reproduce_gives_byte_identical_tables_alone_and_beside_busy_processes(profile, tmp_path):
    alone_and_busy(tmp_path, "reproduce", "--profile", str(profile), "--rows", "ddpm-mnist", "--quiet", "--device", "cpu")
    names = ("table1.csv", "table1.md", "table1.json")
    alone, busy = (_tables(tmp_path / n / "reproduce-repro", names) for n in ("alone", "busy"))
    assert alone == busy
    config = json.loads((tmp_path / "busy/reproduce-repro/rows/ddpm-mnist/seed0/config.json").read_text())
    assert config["torch_threads"] == threads.DEFAULT_TORCH_THREADS  # the setting, recorded


def test_rows_in_worker_processes_give_the_numbers_of_rows_run_one_after_another(profile, tmp_path):
    from rdlens.reproduce import reproduce

    for jobs in (1, 2):
        reproduce(str(profile), out=tmp_path / f"jobs{jobs}", rows=tuple(ROWS.split(",")), device="cpu", jobs=jobs,
                  log=lambda line: None)
    names = ("table1.csv", "table1.md", "table1.json")
    assert (_tables(tmp_path / "jobs1/reproduce-repro", names) == _tables(tmp_path / "jobs2/reproduce-repro", names))
    manifest = json.loads((tmp_path / "jobs2/reproduce-repro/manifest.json").read_text())
    assert manifest["jobs"] == 2 and set(manifest["timings_s"]) >= {"lstm-sine seed 0", "ddpm-mnist seed 0"}


def test_the_thread_count_changes_torch_numbers_within_the_stated_tolerance(profile, tmp_path):
    """The row does depend on the thread count (so the test above shows something), by less than
    the README's tolerance: R within 1e-6 relative, final R within 1e-4."""
    from rdlens.reproduce import reproduce

    summaries = {}
    for n in (1, 2):
        threads.POLICY.configure(n)
        try:
            folder, _, _ = reproduce(str(profile), out=tmp_path / f"t{n}", rows=("ddpm-mnist",), device="cpu",
                                     log=lambda line: None)
        finally:
            threads.POLICY.configure()
        summaries[n] = json.loads((folder / "rows/ddpm-mnist/seed0/summary.json").read_text())
    one, two = summaries[1], summaries[2]
    assert (one["M_react"], one["M_diff"]) != (two["M_react"], two["M_diff"])
    assert abs(one["R"] / two["R"] - 1) < 1e-6
    assert abs(one["final_R"] / two["final_R"] - 1) < 1e-4


def test_patterns_gives_byte_identical_tables_alone_and_beside_busy_processes(profile, tmp_path):
    alone_and_busy(tmp_path, "patterns", "--profile", str(profile), "--quiet", "--device", "cpu")
    names = ("table.md", "table.json", "measures.csv")
    assert _tables(tmp_path / "alone/patterns-repro", names) == _tables(tmp_path / "busy/patterns-repro", names)


def test_gray_scott_is_bit_identical_for_every_thread_count():
    """The kernel adds its row sums in a fixed order: its numbers never depend on the threads."""
    import numba

    model = grayscott.GrayScott(size=128, length=1.28, F=0.029, k=0.062)
    results = []
    for n in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
        threads.POLICY.configure(n)
        try:
            results.append(grayscott.run(model, steps=300, seed=1))
        finally:
            threads.POLICY.configure()
    for other in results[1:]:
        assert np.array_equal(other.v, results[0].v)
        assert np.array_equal(other.trace.reaction, results[0].trace.reaction)
        assert np.array_equal(other.trace.diffusion, results[0].trace.diffusion)


def _summary(args: list[str], env_extra: dict[str, str], out: Path) -> dict:
    env = {**_env(), "RDLENS_THREADS": "1", **env_extra}
    proc = subprocess.run([sys.executable, "-m", "rdlens", *args, "--quiet", "--json", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


# torch's and oneDNN's generic x86 kernels and numba's baseline x86-64 target: the arithmetic
# of a CPU without AVX, on this one
GENERIC_CPU = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "NUMBA_CPU_NAME": "generic"}


@pytest.mark.parametrize("args, tolerance", [
    (["rd", "--size", "64", "--length", "0.64", "--steps", "1000"], 1e-12),
    (["ddpm", "--dataset", "digits", "--steps", "5", "--batch-size", "16", "--samples", "8", "--T", "20",
      "--device", "cpu"], 1e-6),
])
def test_another_instruction_set_changes_the_numbers_within_the_stated_tolerance(args, tolerance, tmp_path):
    native = _summary(args, {}, tmp_path / "native")
    generic = _summary(args, GENERIC_CPU, tmp_path / "generic")
    for key in ("M_react", "M_diff", "R", "final_R"):
        assert abs(native[key] / generic[key] - 1) < tolerance, key
