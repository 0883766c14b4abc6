"""The patterns study's figures: what their curves and bands are."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rdlens.report.patterns import _band  # noqa: E402


def test_a_ratio_band_is_the_geometric_mean_and_an_interval_of_log_r_that_stays_positive():
    from scipy import stats

    curves = np.array([[1.0, 2.0], [0.05, 1.0], [1.2, 4.0]])  # three seeds, two times; a t-interval of R goes < 0
    fig, ax = plt.subplots()
    _band(ax, np.array([0.0, 1.0]), curves, "C0", "-", "R")
    line, = ax.get_lines()
    logs = np.log(curves)
    np.testing.assert_allclose(line.get_ydata(), np.exp(logs.mean(axis=0)))
    half = stats.t.ppf(0.975, 2) * logs.std(axis=0, ddof=1) / np.sqrt(3)
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() > 0
    np.testing.assert_allclose(sorted(set(np.round(band, 12))),
                               sorted(set(np.round(np.concatenate([np.exp(logs.mean(0) - half),
                                                                   np.exp(logs.mean(0) + half)]), 12))))
    plain = curves.mean(axis=0) - stats.t.ppf(0.975, 2) * curves.std(axis=0, ddof=1) / np.sqrt(3)
    assert plain[0] < 0  # what the band of the ratios themselves would have drawn
    plt.close(fig)


def test_a_distribution_shows_shares_that_add_up_to_one_on_a_log_axis():
    from rdlens.report.patterns import _shares

    bins = np.logspace(-8, 0, 25)
    fig, ax = plt.subplots()
    narrow = _shares(ax, np.array([1e-7, 2e-7, 3e-7]), bins)
    wide = _shares(ax, np.array([0.5, 0.8, 0.9, 2.0]), bins)  # one value past the last edge
    assert narrow.sum() == 1 and wide.sum() == 1
    np.testing.assert_allclose(wide, np.histogram([0.5, 0.8, 0.9, 1.0], bins=bins)[0] / 4)
    density = np.histogram([0.5, 0.8, 0.9, 1.0], bins=bins, density=True)[0]
    assert density.max() < 0.01 * np.histogram([1e-7, 2e-7, 3e-7], bins=bins, density=True)[0].max()  # as it was
    plt.close(fig)
