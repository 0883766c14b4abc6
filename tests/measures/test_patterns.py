"""Pattern measures against fields whose answers are known by construction."""

import numpy as np
import pytest

from rdlens import grayscott as gs
from rdlens import patterns as P

N = 64


def grid():
    x = np.arange(N)
    return np.meshgrid(x, x, indexing="ij")


@pytest.mark.parametrize("period_cells", [4, 8, 16, 32])
def test_wavelength_of_a_cosine_is_its_period(period_cells):
    X, Y = grid()
    field = np.cos(2 * np.pi * (X + 0.3 * Y * 0) / period_cells)
    assert P.dominant_wavelength(field, length=0.64) == pytest.approx(0.64 * period_cells / N)


def test_spectral_entropy_is_low_for_one_wave_and_high_for_noise():
    X, _ = grid()
    assert P.spectral_entropy(np.cos(2 * np.pi * X / 8)) < 0.05
    assert P.spectral_entropy(np.random.default_rng(0).standard_normal((N, N))) > 0.9


def discs(centres, radius=3.0):
    X, Y = grid()
    f = np.zeros((N, N))
    for cx, cy in centres:
        dx = np.minimum(np.abs(X - cx), N - np.abs(X - cx))  # periodic distance
        dy = np.minimum(np.abs(Y - cy), N - np.abs(Y - cy))
        f[dx**2 + dy**2 <= radius**2] = 1.0
    return f


def test_component_count_of_discs_including_ones_cut_by_the_edge():
    centres = [(10, 10), (10, 40), (40, 25), (0, 0), (63, 32)]  # the last two straddle the edges
    c = P.components(discs(centres))
    assert c.count == 5
    assert c.mean_area == pytest.approx(29.0)  # a radius-3 digital disc has 29 cells
    assert c.mean_elongation == pytest.approx(1.0, abs=1e-9)


def test_spots_and_stripes_are_told_apart():
    rng = np.random.default_rng(1)
    spots = discs([tuple(rng.integers(0, N, 2)) for _ in range(12)], radius=2.5)
    X, Y = grid()
    stripes = (np.cos(2 * np.pi * (X + 0.5 * Y) / 10) > 0.3).astype(float)
    assert P.label(spots) == "spots"
    assert P.label(stripes) == "stripes"
    assert P.label(np.zeros((N, N))) == "none"
    assert P.components(stripes).area_fraction_elongated == 1.0


def test_residual_is_small_at_a_steady_state_and_large_for_noise():
    m = gs.GrayScott(F=0.029, k=0.062, size=48, length=0.48)
    res = gs.run(m, 400_000, seed=0, stop_tol=1e-8)  # run until the RMS change per step < 1e-8
    assert res.stopped_early
    steady = P.relative_residual(res.u, res.v, m)
    assert steady < 1e-5
    rng = np.random.default_rng(0)
    u, v = 1 - 0.3 * rng.random((48, 48)), 0.3 * rng.random((48, 48))
    noise = P.relative_residual(u, v, m)
    assert noise > 0.1 and noise > 1e4 * steady


def test_gray_scott_spot_regime_is_labelled_spots():
    m = gs.GrayScott(F=0.029, k=0.062, size=64, length=0.64)
    res = gs.run(m, 10000, seed=0)
    out = P.measure(res.v, m.length)
    assert out["label"] == "spots" and out["components"] >= 3
    assert 0.05 < out["wavelength"] < 0.3


def test_a_fields_correlation_with_itself_is_one_not_one_plus_rounding():
    rng = np.random.default_rng(0)
    fields = [rng.random((32, 32)) for _ in range(200)]
    raw = [float(((f - f.mean()) ** 2).sum() / np.linalg.norm(f - f.mean()) ** 2) for f in fields]
    assert max(raw) > 1  # the plain formula rounds past 1 for some of these fields
    assert all(P.pattern_correlation(f, f) == pytest.approx(1, abs=1e-15) and P.pattern_correlation(f, f) <= 1
               for f in fields)
    a, b = fields[0], fields[1]
    assert P.pattern_correlation(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-12)
    assert P.pattern_correlation(a, -a) == pytest.approx(-1) and P.pattern_correlation(a, -a) >= -1
    assert np.isnan(P.pattern_correlation(a, np.ones_like(a)))
    assert np.isnan(P.pattern_correlation(a, np.full_like(a, np.nan)))
