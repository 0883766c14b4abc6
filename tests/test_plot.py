"""The axis-level plotting functions (``ax=None`` style): they draw into the axis they are given,
and what they draw is the numbers of the traces."""

import numpy as np
import pytest

from rdlens import plot
from rdlens.balance import BalanceTrace, combine


def _traces(n: int) -> list[BalanceTrace]:
    rng = np.random.default_rng(1)
    return [BalanceTrace.from_series(1 + rng.random(50), 1 + rng.random(50)) for _ in range(n)]


def test_r_tau_draws_the_mean_over_seeds_with_its_band_into_the_given_axis():
    plt = plot.pyplot()
    fig, ax = plt.subplots()
    traces = _traces(3)
    assert plot.r_tau(traces, ax, label="three seeds", color="C2") is ax
    comb = combine(traces)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), comb.R_tau_mean)
    assert line.get_label() == "three seeds" and len(ax.collections) == 1  # the 95 % band
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == pytest.approx(np.nanmin(comb.R_tau_low)) and band.max() == pytest.approx(np.nanmax(comb.R_tau_high))
    one = plot.r_tau(traces[0])  # ax=None: a new figure; one trace has no band
    assert one is not ax and len(one.collections) == 0
    plt.close("all")


def test_balance_and_field_draw_what_they_are_given():
    plt = plot.pyplot()
    fig, (a, b, c) = plt.subplots(1, 3)
    trace = _traces(1)[0]
    plot.balance(trace, a, norms_ax=b)
    np.testing.assert_allclose(a.get_lines()[0].get_ydata(), trace.R_tau)
    np.testing.assert_allclose(b.get_lines()[0].get_ydata(), trace.reaction)
    v = np.arange(12.0).reshape(3, 4)
    plot.field(v, c, colorbar=False)
    np.testing.assert_array_equal(c.get_images()[0].get_array(), v)
    plt.close("all")


def test_fk_map_puts_each_value_on_its_cell_and_leaves_undefined_ones_grey():
    plt = plot.pyplot()
    F, k = np.array([0.02, 0.04, 0.06]), np.array([0.05, 0.06])
    values = np.array([[1.0, 2.0], [np.nan, 4.0], [5.0, 0.0]])
    ax = plot.fk_map(values, F, k, log=True)
    image = ax.get_images()[0]
    assert image.get_extent() == pytest.approx([0.045, 0.065, 0.01, 0.07])
    shown = image.get_array()
    assert shown.mask.tolist() == [[False, False], [True, False], [False, True]]  # NaN, and 0 on a log scale
    assert image.norm.vmin == 1.0 and image.norm.vmax == 5.0
    with pytest.raises(ValueError, match=r"shape \(len\(F\), len\(k\)\) = \(3, 2\)"):
        plot.fk_map(values.T, F, k)
    plt.close("all")
