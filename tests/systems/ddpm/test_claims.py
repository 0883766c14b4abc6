"""The claims' measurements against closed forms, and claims.md end to end on the smoke profile."""

import json
import math

import numpy as np
import pytest
import torch

from rdlens import ddpm
from rdlens.systems.ddpm import claims
from rdlens.systems.lstm.claims import gate_correlations
from rdlens.cli import main


def test_decreasing_stretches_are_counted_and_sized():
    r = np.array([1.0, 0.9, 0.8, 0.85, 0.849, 0.95, 1.2, 1.1, 1.3])
    out = claims.decreasing_stretches(r)
    # falls: 1.0 -> 0.8 (20 %; 0.85 -> 0.849 lies inside it: R is not back at 1.0 until 1.2), 1.2 -> 1.1 (8.3 %)
    assert out["count"] == 2 and not out["monotonic"]
    assert out["largest_drop"] == pytest.approx(0.2)
    assert (out["largest_from_tau"], out["largest_to_tau"]) == (0.0, pytest.approx(0.25))
    assert claims.decreasing_stretches(np.linspace(0.1, 1, 50))["monotonic"]
    assert claims.decreasing_stretches(np.array([1.0, np.nan, 2.0, 3.0]))["count"] == 0


def test_jitter_does_not_count_as_a_fall_but_a_trend_does():
    rng = np.random.default_rng(0)
    tau = np.linspace(0, 1, 1000)
    trend = 0.07 - 0.01 * np.sin(np.pi * np.minimum(tau / 0.9, 1))  # falls 0.070 -> 0.060, then rises
    noisy = trend * (1 + 0.02 * rng.standard_normal(1000))
    out = claims.decreasing_stretches(noisy)
    assert out["smoothing_steps"] == 21 and 1 <= out["count"] <= 2  # the trend (and at most one wiggle where it is flat)
    assert out["largest_drop"] == pytest.approx(1 / 7, abs=0.03) and out["largest_to_tau"] == pytest.approx(0.45, abs=0.1)
    assert claims.decreasing_stretches(noisy, window=1)["count"] > 2  # raw per-step jitter adds falls


def test_schedule_only_curve_is_its_closed_form_and_falls_before_it_rises():
    """sqrt(beta_t / (alpha_t (1 - abar_t))) in sampling order: while 1 - abar_t ~ 1 it follows
    the falling beta_t, then the vanishing 1 - abar_t takes over; one falling stretch, from
    tau = 0 to the minimum."""
    s = ddpm.Schedule(T=1000)
    curve = claims.schedule_only_curve(s)
    b, ab = s.betas.numpy(), s.alpha_bars.numpy()
    assert len(curve) == 999
    assert curve[0] == pytest.approx(math.sqrt(b[-1] / (1 - b[-1]) / (1 - ab[-1])))
    assert curve[-1] == pytest.approx(math.sqrt(b[1] / (1 - b[1]) / (1 - ab[1])))
    ratio = (b / ((1 - b) * (1 - ab)))[1:][::-1]
    out = claims.decreasing_stretches(curve, window=1)
    assert out["count"] == 1 and out["largest_from_tau"] == 0.0
    assert out["largest_to_R"] == pytest.approx(math.sqrt(ratio.min()))
    assert out["largest_drop"] == pytest.approx(1 - math.sqrt(ratio.min() / ratio[0]))


def test_scaled_schedules_keep_the_total_noise():
    base = ddpm.Schedule()
    for T in claims.T_VALUES:
        s = claims.scaled_schedule(T, base)
        assert s.T == T and float(s.betas.sum()) == pytest.approx(float(base.betas.sum()), rel=1e-12)


def test_r_versus_T_for_standard_normal_data_matches_the_closed_form():
    """Data ~ N(0, I): the exact denoiser's drift is (sqrt(alpha) - 1) x with ||x|| ~ ||z||, so
    R = mean(1 - sqrt(alpha_t)) / mean(sqrt(beta_t)) over the counted steps."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(40000, 1, 4, 4, generator=gen, dtype=torch.float64)
    rows = claims.r_versus_T(images, ddpm.Schedule(), samples=64, seed=1, Ts=(50, 1000))
    for row in rows:
        s = claims.scaled_schedule(row["T"], ddpm.Schedule())
        a, b = s.alphas.numpy()[1:], s.betas.numpy()[1:]
        assert row["oracle_R"] == pytest.approx(np.mean(1 - np.sqrt(a)) / np.mean(np.sqrt(b)), rel=0.03)
    assert rows[0]["oracle_R"] > rows[1]["oracle_R"]  # more steps, same total noise: a smaller R


def test_gate_correlations_read_the_sign_of_the_link_per_sequence():
    t = np.arange(1, 201, dtype=float)[:, None]
    phase = np.array([[0.0, 1.0, 2.5]])  # three sequences out of phase: a mean over them would wash out
    i = 0.5 + 0.3 * np.sin(t / 3 + phase)
    f = 0.5 + 0.3 * np.cos(t / 7 + 2 * phase)
    reaction, diffusion = 2.0 * i, np.ones_like(i)  # R_t = 2 i_t in every sequence
    out = gate_correlations(reaction, diffusion, i, f)
    assert out["input"] == pytest.approx(1.0) and abs(out["erase"]) < 0.3
    assert out["sequences"] == 3 and out["skipped_steps"] == 20 and out["steps"] == 180
    out = gate_correlations(1.0 / (1.0 - f), np.ones_like(f), i, f)  # R_t rises with f: falls with erasing
    assert out["erase"] < -0.9


def test_diversity_is_the_mean_pairwise_distance():
    x = np.random.default_rng(0).standard_normal((7, 5))
    pairs = [np.sqrt(((x[a] - x[b]) ** 2).sum()) for a in range(7) for b in range(a + 1, 7)]
    assert claims.diversity(x) == pytest.approx(np.mean(pairs), rel=1e-10)
    assert np.isnan(claims.diversity(x[:1]))


def test_ddim_sweep_of_one_point_data_gives_no_diversity_for_any_eta():
    s = ddpm.Schedule(T=40)
    point = torch.full((1, 1, 4, 4), -0.2)
    rows = claims.ddim_sweep(ddpm.one_point_oracle(point, s), (4, 1, 4, 4), s, seed=0)
    assert [r["eta"] for r in rows] == [None, *claims.ETAS]
    assert all(r["diversity"] < 1e-4 for r in rows)
    assert math.isnan(rows[1]["R"]) and rows[1]["M_diff"] == 0  # eta = 0: no noise, R undefined
    assert all(r["R"] > 0 for r in rows if r["eta"] != 0)


@pytest.fixture(scope="module")
def smoke_claims(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    args = ["reproduce", "--profile", "smoke", "--claims", "--quiet", "--device", "cpu", "--out", str(out),
            "--rows", "rd-spot,lstm-sine,ddpm-mnist"]
    assert main(args) == 0
    return out / "reproduce-smoke"


def test_reproduce_with_claims_writes_a_verdict_for_every_claim(smoke_claims):
    data = json.loads((smoke_claims / "claims.json").read_text())
    assert sorted(data, key=int) == ["1", "2", "3", "4", "5", "6", "7"]
    for n, claim in data.items():
        assert claim["verdict"] and "not measured" not in claim["verdict"], n
    assert "lstm-sine" in data["1"]["rows"] and "ddpm-mnist" in data["3"]["rows"]
    steps = data["3"]["rows"]["ddpm-mnist"]["steps"]
    assert [s["T"] for s in steps] == list(claims.T_VALUES)
    md = (smoke_claims / "claims.md").read_text()
    assert md.count("**Verdict.**") == 7 and "CIFAR10" in md
    assert "from training step 2 to 4" in data["7"]["verdict"]  # smoke tracks R at steps 0, 2, 4
    assert (smoke_claims / "index.html").exists()


def test_claims_are_measured_once_and_reused(smoke_claims, capsys):
    before = (smoke_claims / "rows" / "ddpm-mnist" / "seed0" / "claims.json").read_bytes()
    assert main(["reproduce", "--profile", "smoke", "--claims", "--quiet", "--device", "cpu", "--out",
                 str(smoke_claims.parent), "--rows", "rd-spot,lstm-sine,ddpm-mnist"]) == 0
    assert "claims measured" not in capsys.readouterr().err
    assert (smoke_claims / "rows" / "ddpm-mnist" / "seed0" / "claims.json").read_bytes() == before
