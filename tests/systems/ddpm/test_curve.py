"""R along training (--track-every): the curve's points are the model sampled with the row's
noise, its first point is the untrained network, and a resumed run keeps what it measured."""

import json
import math

import pytest
import torch

from rdlens import curve, ddpm
from rdlens.cli import main

TINY = ["--steps", "6", "--T", "20", "--samples", "3", "--channels", "8,16", "--batch-size", "4",
        "--checkpoint-every", "3", "--quiet", "--device", "cpu", "--dataset", "digits"]


def _run(tmp_path, capsys, *extra):
    assert main(["ddpm", *TINY, "--track-every", "3", "--out", str(tmp_path), "--json", *extra]) == 0
    summary = json.loads(capsys.readouterr().out)
    return summary, tmp_path / summary["run_dir"].split("/")[-1]


def test_curve_starts_at_the_untrained_network_and_ends_at_the_row_itself(tmp_path, capsys):
    summary, run = _run(tmp_path, capsys)
    rows = curve.read(run / "training_curve.csv")
    assert [r["step"] for r in rows] == [0, 3, 6]
    # the last point is the row's own sample (same model, same noise)
    assert rows[-1]["R"] == pytest.approx(summary["R"], rel=1e-12)
    assert rows[-1]["final_R"] == pytest.approx(summary["final_R"], rel=1e-12)
    # the U-Net's output layer starts at zero, so the untrained network predicts eps = 0: an
    # independent eps model that returns zeros must give the same first point
    sched = ddpm.Schedule(T=20)
    zero = ddpm.sample(lambda x, s: torch.zeros_like(x), (3, 1, 32, 32), sched, seed=2)
    assert rows[0]["R_score"] == 0.0
    assert rows[0]["R"] == pytest.approx(zero.trace.R, rel=1e-6)
    assert all(0 <= r["confident"] <= 1 and 0 <= r["coverage"] <= 1 for r in rows)  # digits carry labels
    tracked = summary["training_curve"]
    assert tracked["points"] == 3 and tracked["schedule_only_R_score"] > 0 and tracked["oracle_gaussian_R"] > 0
    assert (run / "training_curve.png").stat().st_size > 0


def test_a_tracking_point_at_the_last_step_is_the_rows_sample_not_a_second_sampling_run(tmp_path, capsys,
                                                                                        monkeypatch):
    calls = []
    real = ddpm.sample
    monkeypatch.setattr(ddpm, "sample", lambda *a, **k: calls.append(1) or real(*a, **k))
    _run(tmp_path / "a", capsys)  # points 0, 3, 6 and the Gaussian oracle
    assert len(calls) == 4
    calls.clear()
    assert main(["ddpm", *TINY, "--track-every", "4", "--out", str(tmp_path / "b"), "--json"]) == 0
    assert len(calls) == 4  # points 0 and 4, the row's sample at 6, the oracle


def test_a_resumed_run_keeps_its_curve_and_measures_the_same_points(tmp_path, capsys):
    summary, run = _run(tmp_path, capsys)
    before = curve.read(run / "training_curve.csv")
    (run / "summary.json").unlink()
    assert main(["ddpm", "--resume", str(run), "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    after = curve.read(run / "training_curve.csv")
    assert again["resumed_from_step"] == 6 and after == before


def test_points_after_a_resume_replace_those_measured_before_it(tmp_path):
    path = tmp_path / "training_curve.csv"
    c = curve.Curve(path)
    nan = {k: math.nan for k in ("frechet", "confident", "coverage")}
    for step in (0, 3, 6):
        c.add({"step": step, "M_react": 1.0, "M_diff": 2.0, "R": 0.5, "final_R": 0.4, "R_score": 0.1, **nan})
    resumed = curve.Curve(path, resume=True)
    assert resumed.steps() == [0, 3, 6]
    resumed.add({"step": 3, "M_react": 3.0, "M_diff": 2.0, "R": 1.5, "final_R": 0.4, "R_score": 0.1, **nan})
    assert curve.Curve(path, resume=True).steps() == [0, 3]
    assert curve.read(path)[1]["R"] == 1.5 and math.isnan(curve.read(path)[1]["confident"])
    assert "| 3 | 1.5000 |" in resumed.markdown()
    assert not curve.Curve(path).rows  # a fresh (not resumed) run starts empty


def test_a_damaged_curve_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "training_curve.csv"
    path.write_text("step,R\n0,1.0\n")
    with pytest.raises(ValueError, match="training_curve.csv lacks the columns"):
        curve.read(path)


def test_channels_last_training_is_the_same_computation(tmp_path):
    """The memory layout changes the kernels, not the maths: the losses agree to float rounding."""
    from rdlens import images

    data = images.load("digits")[:32]
    runs = [ddpm.train(ddpm.config_for("default", unet={"channels": (8, 16)}, schedule={"T": 20}, steps=4,
                                       batch_size=4, channels_last=cl), data) for cl in (False, True)]
    assert runs[0].losses == pytest.approx(runs[1].losses, rel=1e-4)
    assert runs[1].model.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
