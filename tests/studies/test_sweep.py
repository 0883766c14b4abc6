"""The (F, k) sweep: the batched kernel, Dask execution against point-by-point runs, lost
workers, interruption and resume, and bad ranges."""

from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np
import pytest

from rdlens import grayscott as gs
from rdlens import sweep
from rdlens.cli import main
from rdlens.errors import ConfigError, RunInterrupted

SMALL = dict(F="0.02:0.06:4", k="0.055:0.065:4", steps=1500, model=gs.GrayScott(size=32, length=0.32), samples=10,
             thumbnail=16)


def test_batched_kernel_gives_each_grid_exactly_what_it_gives_alone():
    models = [gs.GrayScott(F=F, k=k, size=32, length=0.32) for F, k in [(0.029, 0.062), (0.055, 0.062), (0.02, 0.07)]]
    u, v = gs.pearson_init(models[0], 0)
    batch = gs.BatchStepper(models, np.stack([u] * 3), np.stack([v] * 3))
    together = np.concatenate([batch.advance(300), batch.advance(101)], axis=1)
    for j, m in enumerate(models):
        alone = gs.BatchStepper([m], u[None], v[None])
        assert np.array_equal(alone.advance(401)[0], together[j])
        assert np.array_equal(alone.v[0], batch.v[j])
        # and the single-grid kernel to the last bit but one (fastmath contraction may differ per loop)
        single = gs.Stepper(m, u, v).advance(401, residual=True)
        np.testing.assert_allclose(single, together[j], rtol=1e-12, atol=1e-15)


def test_norms_of_the_batched_kernel_match_a_numpy_step():
    m = gs.GrayScott(F=0.04, k=0.06, size=16, length=0.16)
    u, v = gs.pearson_init(m, 3)
    norms = gs.BatchStepper([m], u[None], v[None]).advance(1)[0, 0]
    _, _, react, diff = gs.reference_step(u, v, m)
    assert norms[0] == pytest.approx(react, rel=1e-12) and norms[1] == pytest.approx(diff, rel=1e-12)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    import logging

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def reference():
    return sweep.reference_table(sweep.SweepConfig(**SMALL))


def test_a_4x4_sweep_on_two_workers_equals_the_points_run_one_by_one(client, reference, tmp_path):
    cfg = sweep.SweepConfig(**SMALL)
    summary = sweep.run_sweep(cfg, tmp_path, client=client)
    assert (tmp_path / "points.csv").read_text() == reference
    assert summary["points"] == 16 and sum(summary["classes"].values()) == 16
    for name in ("maps.png", "maps.svg", "mosaic.png", "thumbnails.npz", "summary.json", "config.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = reference.splitlines()
    assert rows[0].startswith("index,F,k,class,M_react") and len(rows) == 17


def test_a_worker_killed_mid_sweep_changes_nothing(client, reference, tmp_path):
    killed = []

    def kill_one(done, c):
        if not killed:
            pid = next(iter(c.run(os.getpid).values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    sweep.run_sweep(sweep.SweepConfig(**SMALL, tile=1), tmp_path, client=client, on_tile=kill_one)
    assert killed and (tmp_path / "points.csv").read_text() == reference


def test_an_interrupted_sweep_resumes_computing_only_the_missing_points(client, reference, tmp_path):
    cfg = sweep.SweepConfig(**SMALL, tile=2)

    def stop_after_3(done, c):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(RunInterrupted, match="finish with: rdlens sweep --resume"):
        sweep.run_sweep(cfg, tmp_path, client=client, on_tile=stop_after_3)
    saved = len(list((tmp_path / "tiles").glob("*.npz")))
    assert 3 <= saved < 8 and not (tmp_path / "summary.json").exists()
    (tmp_path / "tiles" / sorted(os.listdir(tmp_path / "tiles"))[0]).write_bytes(b"PK damaged")
    summary = sweep.run_sweep(cfg, tmp_path, client=client)
    assert summary["tasks_computed_now"] == 8 - saved + 1  # the missing ones and the damaged one
    assert (tmp_path / "points.csv").read_text() == reference


def test_cli_sweep_then_resume_recomputes_nothing(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    args = ["sweep", "--F", "0.03:0.05:2", "--k", "0.06:0.062:2", "--steps", "400", "--size", "16", "--length",
            "0.16", "--samples", "4", "--thumbnail", "8", "--workers", "2", "--quiet", "--out", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    folder = tmp_path / out.strip().splitlines()[-1].split(": ", 1)[1].split("/")[-1]
    assert "sweep  4 points" in out and (folder / "points.csv").exists()
    before = (folder / "points.csv").read_bytes()
    assert main(["sweep", "--resume", str(folder), "--workers", "1", "--quiet"]) == 0  # other workers: same tiles
    assert "0 of 4 tasks computed now" in capsys.readouterr().out
    assert (folder / "points.csv").read_bytes() == before
    assert main(["sweep", "--resume", str(folder), "--steps", "5", "--quiet"]) == 2
    assert "drop --steps" in capsys.readouterr().err
    from PIL import Image

    small = Image.open(folder / "maps.png").size
    assert main(["report", str(folder), "--dpi", "220"]) == 0  # a paper's resolution, redrawn from the tiles
    big = Image.open(folder / "maps.png").size
    assert big[0] == pytest.approx(2 * small[0], abs=2) and (folder / "points.csv").read_bytes() == before
    capsys.readouterr()
    assert main(["report", str(folder), "--dpi", "5000"]) == 2
    assert "dpi must be a whole number in [50, 1200], got 5000" in capsys.readouterr().err


@pytest.mark.parametrize("args, fragment", [
    (["--F", "0.1:0.01:4"], "need 0 <= START <= STOP <= 1"),
    (["--k", "0.05:0.06:0"], "COUNT must be in [1, 1024]"),
    (["--F", "abc"], "F must be START:STOP:COUNT"),
    (["--F", "0.01:0.02:2000"], "COUNT must be in [1, 1024]"),
    (["--dt", "30"], "explicit-diffusion limit"),
    (["--thumbnail", "7"], "must divide size"),
    (["--workers", "0"], "--workers must be in [1, 1024]"),
    (["--dpi", "10"], "dpi must be a whole number in [50, 1200], got 10"),
])
def test_bad_ranges_are_one_line_before_any_work(tmp_path, capsys, args, fragment):
    assert main(["sweep", *args, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_without_dask_the_sweep_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ConfigError, match=r"pip install 'rdlens\[sweep\]'"):
        sweep.run_sweep(sweep.SweepConfig(**SMALL), tmp_path)


def test_a_folder_of_other_settings_is_not_mixed_into(tmp_path, client):
    sweep.run_sweep(sweep.SweepConfig(**{**SMALL, "F": "0.03:0.03:1", "k": "0.06:0.06:1"}), tmp_path, client=client)
    with pytest.raises(ConfigError, match="holds a sweep study with other settings"):
        sweep.run_sweep(sweep.SweepConfig(**{**SMALL, "F": "0.04:0.04:1", "k": "0.06:0.06:1"}), tmp_path, client=client)
    assert json.loads((tmp_path / "config.json").read_text())["F"] == "0.03:0.03:1"


def test_undefined_final_R_is_undefined_in_the_table_the_summary_and_the_console(client, tmp_path):
    """A died or uniform point ends with both norms at roundoff level: its final R (a ratio of
    two such numbers) is blank in points.csv, and the count matches the summary's."""
    import csv
    import io

    summary = sweep.run_sweep(sweep.SweepConfig(**SMALL), tmp_path, client=client)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "points.csv").read_text())))
    blank = [r for r in rows if r["final_R"] == ""]
    degenerate = [r for r in rows if r["class"] in ("died", "uniform")]
    assert blank == degenerate and len(blank) == summary["degenerate_points"] > 0
    assert all(r["degenerate"] for r in blank)
    assert any(r["class"] == "uniform" for r in blank)  # not only the trivially dead ones


def test_the_named_points_labels_stay_inside_the_map():
    """The lowest named point sits on the map's lower edge (F = 0.010); its label used to hang
    below the axes."""
    from rdlens.plot import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0), dpi=100)
    sweep._mark(ax, sweep.SweepConfig())
    fig.canvas.draw()
    box = ax.get_window_extent()
    assert len(ax.texts) >= 3
    for text in ax.texts:
        bb = text.get_window_extent()
        assert box.y0 - 0.5 <= bb.y0 and bb.y1 <= box.y1 + 0.5, text.get_text()
    plt.close(fig)
