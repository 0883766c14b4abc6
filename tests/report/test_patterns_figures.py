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
