"""Controls: the LSTM identities, the oracle denoisers and the schedule-only prediction,
each against an independent computation; and the controls outputs of `rdlens reproduce`."""

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from rdlens import ddpm, lstm
from rdlens.systems.ddpm import controls as ddpm_controls
from rdlens.systems.grayscott import controls as rd_controls
from rdlens.systems.lstm import controls as lstm_controls
from rdlens.cli import main


def _record(seed, init_normal=False, steps=120, batch=6):
    torch.manual_seed(seed)
    m = nn.LSTM(1, 16).double()
    if init_normal:
        with torch.no_grad():
            for name, p in m.named_parameters():
                p.normal_() if name.startswith("weight") else p.zero_()
    return lstm.probe(m, torch.randn(steps, batch, 1, dtype=torch.float64))[0]


def test_telescoping_residual_matches_a_direct_computation():
    rec = _record(0)
    i, f, g, c = (getattr(rec, k).numpy() for k in "ifgc")
    c_prev = np.concatenate([rec.c0.numpy()[None], c[:-1]])
    r, d = i * g, (1 - f) * c_prev
    per_seq = np.linalg.norm((r - d).sum(0), axis=-1) / np.linalg.norm(r, axis=-1).sum(0)
    assert lstm_controls.lstm_identities(rec)["telescoping_residual"] == pytest.approx(per_seq.mean(), rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("init_normal", [False, True])
def test_identity_bound_contains_R_whatever_the_weights(seed, init_normal):
    rec = _record(seed, init_normal)
    ident = lstm_controls.lstm_identities(rec)
    R = lstm.balance_trace(rec).R
    assert ident["R_range_low"] <= R <= ident["R_range_high"]
    assert ident["R_within_range"]
    # B computed independently: mean over steps and sequences of ||C_t - C_{t-1}||, over M_react
    c = rec.c.numpy()
    delta = np.linalg.norm(c - np.concatenate([rec.c0.numpy()[None], c[:-1]]), axis=-1).mean()
    assert ident["bound_B"] == pytest.approx(delta / lstm.balance_trace(rec).M_react, rel=1e-12)


def test_rd_residual_bound_contains_R_and_is_the_mean_residual_over_M_react():
    from rdlens import grayscott

    cfg = grayscott.RDRun(model=grayscott.GrayScott(F=0.055, size=48, length=0.48), steps=500, seed=3,
                           residual=True)
    res = grayscott.run(cfg.model, cfg.steps, cfg.seed, residual=True)
    out, traces = rd_controls.rd_controls(cfg, res.trace)
    ident = out["identities"]
    assert ident["R_range_low"] <= res.trace.R <= ident["R_range_high"] and ident["R_within_range"]
    # the residual recomputed from the fields of the first step: ||reaction + diffusion||
    p = cfg.model
    u, v = grayscott.pearson_init(p, seed=3)
    first = np.linalg.norm(u * v * v - (p.F + p.k) * v + p.Dv * grayscott.laplacian(v, p.h))
    assert res.trace.extra["residual"][0] == pytest.approx(first, rel=1e-12)
    assert ident["bound_B"] == pytest.approx(res.trace.extra["residual"].mean() / res.trace.M_react, rel=1e-12)
    assert traces["homogeneous"].M_react < 0.1 * res.trace.M_react  # no pattern, little reaction


def test_one_point_oracle_at_the_origin_matches_the_schedule_recursion():
    s = ddpm.Schedule()
    d = 1024
    res = ddpm.sample(ddpm.one_point_oracle(torch.zeros(1, 1, 32, 32), s), (8, 1, 32, 32), s, seed=1,
                      dtype=torch.float64)
    # eps = x / sqrt(1 - abar): the drift is c_t x, and E||x_{t-1}||^2 = (1 + c_t)^2 E||x_t||^2 + beta_t D
    b = np.linspace(1e-4, 0.02, 1000)
    a = 1 - b
    ab = np.cumprod(a)
    c = (1 - b / (1 - ab)) / np.sqrt(a) - 1
    power, react = float(d), []
    for t in range(999, 0, -1):  # t = T ... 2 (0-based index), the counted steps
        react.append(abs(c[t]) * math.sqrt(power))
        power = (1 + c[t]) ** 2 * power + b[t] * d
    assert res.trace.M_react == pytest.approx(np.mean(react), rel=0.01)
    assert res.trace.M_diff == pytest.approx(np.sqrt(b[1:]).mean() * math.sqrt(d), rel=0.01)


def test_gaussian_oracle_is_the_closed_form_conditional_mean():
    s = ddpm.Schedule()
    mean = torch.full((1, 2, 2), 0.5, dtype=torch.float64)
    var = 0.25
    model = ddpm_controls.gaussian_oracle(mean.reshape(-1), var * torch.eye(4, dtype=torch.float64), s)
    x = torch.randn(3, 1, 2, 2, dtype=torch.float64)
    for idx in (0, 400, 999):
        ab = float(s.alpha_bars[idx])
        expected = math.sqrt(1 - ab) * (x - math.sqrt(ab) * 0.5) / (ab * var + 1 - ab)
        got = model(x, torch.full((3,), idx))
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    # with zero covariance it is the one-point oracle
    zero = ddpm_controls.gaussian_oracle(mean.reshape(-1), torch.zeros(4, 4, dtype=torch.float64), s)
    one = ddpm.one_point_oracle(mean.reshape(1, 1, 2, 2), s)
    idx = torch.full((3,), 250)
    torch.testing.assert_close(zero(x, idx), one(x, idx))


def test_schedule_only_prediction_from_beta_alone():
    b = np.linspace(1e-4, 0.02, 1000)[1:]
    ab = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[1:]
    expected = np.mean(b / np.sqrt((1 - b) * (1 - ab))) / np.mean(np.sqrt(b))
    got = ddpm_controls.schedule_only_R(ddpm.Schedule())
    assert got["R_score"] == pytest.approx(expected, rel=1e-12)
    assert got["M_diff_per_sqrtD"] == pytest.approx(0.0947, abs=2e-4)


def test_reproduce_with_seeds_and_controls_writes_intervals_and_sentences(tmp_path, capsys):
    args = ["reproduce", "--profile", "smoke", "--rows", "rd-spot,lstm-sine,ddpm-mnist", "--seeds", "2",
            "--controls", "--quiet", "--device", "cpu", "--out", str(tmp_path)]
    assert main(args) == 0
    folder = tmp_path / "reproduce-smoke"
    table = json.loads((folder / "table1.json").read_text())
    for row in table["rows"]:
        assert row["n_seeds"] == 2 and row["R_low"] < row["R"] < row["R_high"]
    md = (folder / "controls.md").read_text()
    assert md.count("\n- **") == 3
    for phrase in ("homogeneous start", "untrained, PyTorch init", "white-noise input", "oracle, Gaussian fit",
                   "bounds R to", "the residual alone bounds R", "schedule alone predicts",
                   "outside the 95 % interval of", "(measured "):
        assert phrase in md, phrase
    assert (folder / "controls.png").read_bytes()[:4] == b"\x89PNG"
    agg = json.loads((folder / "controls.json").read_text())
    assert agg["lstm-sine"]["identities"]["R_within_range"] is True
    assert "shaded" not in (folder / "table1.md").read_text()
    # one more seed later: the first two are reused, not recomputed
    capsys.readouterr()
    assert main(args[:6] + ["3"] + args[7:]) == 0
    err = capsys.readouterr().err
    assert err.count("reused") == 6 and "seed 2" in err
