"""Sequence data: RK4 against scipy's adaptive integrator, the Van der Pol limit cycle,
standardisation on the training split only, determinism and refusals."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from rdlens import sequences as S
from rdlens.errors import ConfigError


@pytest.mark.parametrize(
    "rhs, y0",
    [(S.lorenz_rhs(), np.array([1.0, 1.0, 20.0])), (S.vanderpol_rhs(1.5), np.array([2.0, 0.0]))],
)
def test_rk4_agrees_with_solve_ivp_and_converges_at_fourth_order(rhs, y0):
    dt, n = 0.01, 101
    ref = solve_ivp(lambda t, y: rhs(y), (0, dt * (n - 1)), y0, t_eval=np.arange(n) * dt,
                    method="DOP853", rtol=1e-13, atol=1e-13).y.T
    errors = [np.abs(S.rk4(rhs, y0, dt, n, substeps=k) - ref).max() for k in (2, 4)]
    assert errors[1] < 1e-6 * np.abs(ref).max()
    assert 12 < errors[0] / errors[1] < 20  # halving the step divides the error by 2^4


def test_van_der_pol_limit_cycle_has_amplitude_two_for_mu_one():
    y = S.rk4(S.vanderpol_rhs(1.0), np.array([[0.1, 0.0], [3.0, -2.0]]), 0.05, 1200, substeps=2)
    late = y[600:, :, 0]  # after the transient, both starts sit on the cycle
    np.testing.assert_allclose(np.abs(late).max(axis=0), 2.0, atol=0.02)


def test_lorenz_sequences_stay_on_the_attractor():
    data = S.make_sequences(S.SequenceConfig(dataset="lorenz", n_sequences=20, length=100))
    raw = data.raw(np.concatenate([data.train, data.test]))
    assert np.abs(raw).max() < 25 and raw.std() > 5  # x of Lorenz ranges over about +-20


@pytest.mark.parametrize("dataset", S.DATASETS)
def test_standardised_with_training_statistics_only(dataset):
    data = S.make_sequences(S.SequenceConfig(dataset=dataset, n_sequences=40, length=50, noise=0.05))
    assert data.train.shape == (32, 50) and data.test.shape == (8, 50)
    assert abs(data.train.mean()) < 1e-12 and data.train.std() == pytest.approx(1.0)
    raw_test = data.raw(data.test)
    assert data.test.mean() == pytest.approx((raw_test.mean() - data.mean) / data.std)


@pytest.mark.parametrize("dataset", S.DATASETS)
def test_same_seed_same_data_other_seed_other_data(dataset):
    cfg = S.SequenceConfig(dataset=dataset, n_sequences=10, length=30)
    a, b = S.make_sequences(cfg), S.make_sequences(cfg)
    c = S.make_sequences(S.SequenceConfig(dataset=dataset, n_sequences=10, length=30, seed=1))
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.allclose(a.train, c.train)


def test_sine_has_the_asked_frequency():
    cfg = S.SequenceConfig(n_sequences=4, length=2000, t_max=100.0, freq_range=(1.0, 1.0), test_fraction=0.5)
    x = S.make_sequences(cfg).train[0]
    spectrum = np.abs(np.fft.rfft(x))
    freqs = np.fft.rfftfreq(len(x), d=100.0 / 1999)
    assert freqs[spectrum.argmax()] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"length": 2}, "length must be an integer >= 3"),
        ({"n_sequences": 1}, "n_sequences must be an integer >= 2"),
        ({"n_sequences": 3, "test_fraction": 0.1}, "both must be >= 1"),
        ({"test_fraction": 1.0}, "test_fraction must be in (0, 1)"),
        ({"noise": -0.1}, "noise must be"),
        ({"dataset": "mackey"}, "dataset must be one of"),
        ({"dt": 0.0}, "dt must be"),
    ],
)
def test_impossible_sizes_are_refused(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        S.SequenceConfig(**kwargs)
