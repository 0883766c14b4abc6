"""BalanceTrace: derived numbers, the excluded last step, persistence, seed intervals."""

import math

import numpy as np
import pytest

from rdlens.balance import BalanceTrace, combine, normalised_time, t_interval


def test_means_and_ratio_follow_the_definitions():
    tr = BalanceTrace.from_series([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert tr.M_react == pytest.approx(2.0)
    assert tr.M_diff == pytest.approx(2.0)
    assert tr.R == pytest.approx(1.0)
    np.testing.assert_allclose(tr.R_tau, [0.5, 1.0, 1.5])
    assert tr.final_R == pytest.approx(1.5)
    np.testing.assert_allclose(tr.tau, [0.0, 0.5, 1.0])
    np.testing.assert_array_equal(tr.step, [1, 2, 3])


def test_uncounted_step_is_kept_but_excluded_from_every_derived_number():
    # a DDPM-like trace: the last step has reaction but no diffusion
    tr = BalanceTrace.from_series([1.0, 1.0, 5.0], [4.0, 2.0, 0.0], counted=[True, True, False])
    assert len(tr) == 3
    assert tr.M_react == pytest.approx(1.0)
    assert tr.M_diff == pytest.approx(3.0)
    assert tr.R == pytest.approx(1.0 / 3.0)
    assert math.isnan(tr.R_tau[-1])
    assert tr.final_R == pytest.approx(0.5)


def test_final_R_skips_trailing_steps_without_diffusion():
    tr = BalanceTrace.from_series([1.0, 3.0, 2.0], [2.0, 1.0, 0.0])
    assert tr.final_R == pytest.approx(3.0)


def test_per_sample_norms_average_into_the_series():
    rs = np.array([[1.0, 3.0], [2.0, 4.0]])
    ds = np.array([[1.0, 1.0], [2.0, 2.0]])
    tr = BalanceTrace.from_samples(rs, ds)
    np.testing.assert_allclose(tr.reaction, [2.0, 3.0])
    np.testing.assert_allclose(tr.diffusion, [1.0, 2.0])


def test_mismatched_columns_are_refused():
    with pytest.raises(ValueError, match="rows"):
        BalanceTrace.from_series([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="clashes"):
        BalanceTrace.from_series([1.0], [1.0], extra={"tau": [0.0]})


def test_save_load_roundtrip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    tr = BalanceTrace.from_samples(
        rng.random((7, 3)), rng.random((7, 3)) + 0.1, counted=[True] * 6 + [False], extra={"score": rng.random(7)}
    )
    path = tr.save(tmp_path / "trace.csv")
    header = path.read_text().splitlines()[0]
    assert header == "step,tau,reaction,diffusion,score,counted"
    back = BalanceTrace.load(path)
    for name in ("step", "tau", "reaction", "diffusion", "counted"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tr, name))
    np.testing.assert_array_equal(back.extra["score"], tr.extra["score"])
    np.testing.assert_array_equal(back.reaction_samples, tr.reaction_samples)
    assert back.R == tr.R


def test_plain_trace_has_exactly_the_four_base_columns(tmp_path):
    path = BalanceTrace.from_series([1.0], [1.0]).save(tmp_path / "t.csv")
    assert path.read_text().splitlines()[0] == "step,tau,reaction,diffusion"
    assert not (tmp_path / "t_samples.npz").exists()


def test_load_refuses_a_file_that_is_not_a_trace(tmp_path):
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a balance trace"):
        BalanceTrace.load(tmp_path / "x.csv")


def test_resample_interpolates_R_tau_onto_a_common_grid():
    tr = BalanceTrace.from_series([0.0, 2.0], [1.0, 1.0])  # R(tau) = 2 tau
    grid, r = tr.resample(5)
    np.testing.assert_allclose(grid, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(r, 2 * grid)


def test_t_interval_matches_the_tabulated_student_quantile():
    # t_{0.975, 2} = 4.302652729911275 (standard tables); values 1, 2, 3 have sd 1
    est = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert est.mean == pytest.approx(2.0)
    assert est.low == pytest.approx(2.0 - half)
    assert est.high == pytest.approx(2.0 + half)
    single = t_interval([5.0])
    assert single.mean == 5.0 and math.isnan(single.low)
    with pytest.raises(ValueError, match="non-finite"):
        t_interval([1.0, float("nan")])


def test_combine_gives_per_seed_means_and_pointwise_curves():
    a = BalanceTrace.from_series([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    b = BalanceTrace.from_series([3.0, 3.0, 3.0], [1.0, 1.0, 1.0])
    comb = combine([a, b], grid=11)
    assert comb.R.mean == pytest.approx(2.0)
    assert comb.M_react.n == 2
    np.testing.assert_allclose(comb.R_tau_mean, 2.0)
    half = 12.706204736174707 * math.sqrt(2.0) / math.sqrt(2)  # t_{0.975,1} * sd / sqrt(n)
    np.testing.assert_allclose(comb.R_tau_high, 2.0 + half)
    assert comb.R.high == pytest.approx(2.0 + half)


def test_normalised_time_spans_zero_to_one():
    np.testing.assert_allclose(normalised_time(3), [0, 0.5, 1])
    assert normalised_time(1).tolist() == [0.0]


def test_reprs_fit_a_notebook_line_and_name_the_numbers():
    """A 5000-step trace with per-sample norms, and the results that hold traces and fields,
    print in a line or two (before: 26,880 and 144,523 characters)."""
    from rdlens import grayscott as gs
    from rdlens.balance import BalanceTrace, combine

    rng = np.random.default_rng(0)
    trace = BalanceTrace.from_samples(rng.random((5000, 16)) + 1, rng.random((5000, 16)) + 1,
                                      extra={"score": rng.random(5000)})
    text = repr(trace)
    assert len(text) < 200 and f"R={trace.R:.6g}" in text and "5000 steps" in text and "samples=16" in text
    combined = combine([trace, trace, trace])
    assert len(repr(combined)) < 200 and "3 traces" in repr(combined)
    result = gs.run(gs.GrayScott(size=64, length=0.64), steps=20, snapshot_every=2)
    assert len(repr(result)) < 600 and "u=ndarray(64, 64):float64" in repr(result) and "[10 items]" in repr(result)


def test_the_bootstrap_interval_of_a_skewed_positive_measure_stays_positive():
    """Areas of a few patterns (one huge): the t-interval goes below zero, the bootstrap cannot
    go below the smallest value."""
    from rdlens.core.balance import bootstrap_interval, t_interval

    areas = [12.0, 15.0, 9.0, 380.0]
    assert t_interval(areas).low < 0
    boot = bootstrap_interval(areas)
    assert min(areas) <= boot.low < boot.mean < boot.high <= max(areas)
    assert bootstrap_interval(areas) == boot  # seeded: the same values, the same interval
    assert math.isnan(bootstrap_interval([3.0]).low)


def test_grouped_by_seed_the_bootstrap_covers_the_spread_between_trainings():
    """Three trainings whose fields sit at 0, 1 and 2 (100 fields each, spread 1e-3): pooled, the
    interval is as narrow as the fields; by seed, each resample's mean is the mean of three seeds
    drawn from {0, 1, 2}, whose 2.5 % and 97.5 % quantiles are 0 and 2 (P(all three 0) = 1/27 > 2.5 %)."""
    from rdlens.core.balance import bootstrap_interval

    rng = np.random.default_rng(1)
    x = np.concatenate([g + 1e-3 * rng.standard_normal(100) for g in (0.0, 1.0, 2.0)])
    seeds = np.repeat([7, 8, 9], 100)
    pooled, grouped = bootstrap_interval(x), bootstrap_interval(x, groups=seeds)
    assert pooled.high - pooled.low < 0.4 and grouped.mean == pooled.mean == pytest.approx(1.0, abs=1e-3)
    assert grouped.low == pytest.approx(0.0, abs=0.01) and grouped.high == pytest.approx(2.0, abs=0.01)
    assert bootstrap_interval(x[:100], groups=seeds[:100]) == bootstrap_interval(x[:100])  # one seed: plain
    with pytest.raises(ValueError, match="one label per value"):
        bootstrap_interval(x, groups=seeds[:5])


def test_the_bootstrap_interval_of_many_normal_values_is_the_t_interval():
    """For a large sample of a symmetric distribution both intervals estimate the same thing."""
    from rdlens.core.balance import bootstrap_interval, t_interval

    x = np.random.default_rng(5).normal(10.0, 2.0, 400)
    boot, t = bootstrap_interval(x, resamples=20000), t_interval(x)
    half = (t.high - t.low) / 2
    assert boot.low == pytest.approx(t.low, abs=0.08 * half) and boot.high == pytest.approx(t.high, abs=0.08 * half)
