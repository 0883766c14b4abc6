"""Gray-Scott: the kernel against closed forms and an independent NumPy step, regimes."""

import numpy as np
import pytest
from scipy import ndimage

from rdlens import grayscott as gs
from rdlens.errors import ConfigError, SimulationDiverged


def fourier_mode(n, length, mx, my):
    x = np.arange(n) * length / n
    X, Y = np.meshgrid(x, x, indexing="ij")
    kx, ky = 2 * np.pi * mx / length, 2 * np.pi * my / length
    # eigenvalue of the periodic 5-point Laplacian for this mode
    h = length / n
    lam = (2 * np.cos(kx * h) - 2 + 2 * np.cos(ky * h) - 2) / h**2
    return np.sin(kx * X) * np.cos(ky * Y), lam


@pytest.mark.parametrize("mx,my", [(1, 0), (3, 2), (7, 5)])
def test_reference_laplacian_of_a_fourier_mode_is_its_eigenvalue(mx, my):
    f, lam = fourier_mode(32, 0.32, mx, my)
    np.testing.assert_allclose(gs.laplacian(f, 0.01), lam * f, atol=1e-9 * abs(lam))


@pytest.mark.parametrize("mx,my", [(1, 0), (3, 2), (7, 5)])
def test_kernel_laplacian_of_a_fourier_mode_is_its_eigenvalue(mx, my):
    # with F = k = 0 and v = 0 one step is u + dt * Du * lap(u): read lap(u) off it
    p = gs.GrayScott(F=0.0, k=0.0, Du=1e-5, Dv=1e-5, size=32, length=0.32, dt=1.0)
    f, lam = fourier_mode(32, 0.32, mx, my)
    st = gs.Stepper(p, 1.0 + 0.1 * f, np.zeros_like(f))
    st.advance(1)
    lap = (st.u - (1.0 + 0.1 * f)) / (p.dt * p.Du) / 0.1
    np.testing.assert_allclose(lap, lam * f, atol=1e-6 * abs(lam))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_homogeneous_state_stays_exactly_put_with_zero_reaction(dtype):
    p = gs.GrayScott(F=0.055, size=16, length=0.16, dtype=dtype)
    st = gs.Stepper(p, np.ones((16, 16)), np.zeros((16, 16)))
    norms = st.advance(50)
    assert np.all(st.u == 1.0) and np.all(st.v == 0.0)
    assert np.all(norms[:, 0] == 0.0) and np.all(norms[:, 1] == 0.0)


def test_kernel_matches_a_direct_numpy_step_to_1e_12():
    p = gs.GrayScott(F=0.037, k=0.06, size=48, length=0.48)
    rng = np.random.default_rng(7)
    u, v = rng.uniform(0.2, 1.0, (48, 48)), rng.uniform(0.0, 0.5, (48, 48))
    st = gs.Stepper(p, u, v)
    norms = st.advance(300)
    react, diff = [], []
    for _ in range(300):
        u, v, r, d = gs.reference_step(u, v, p)
        react.append(r)
        diff.append(d)
    np.testing.assert_allclose(st.u, u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(st.v, v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(norms[:, 0], react, rtol=1e-12)
    np.testing.assert_allclose(norms[:, 1], diff, rtol=1e-12)


def test_float32_kernel_follows_float64_closely():
    p64 = gs.GrayScott(F=0.055, size=48, length=0.48)
    p32 = gs.GrayScott(F=0.055, size=48, length=0.48, dtype="float32")
    r64 = gs.run(p64, steps=500, seed=3)
    r32 = gs.run(p32, steps=500, seed=3)
    assert r32.u.dtype == np.float32
    assert r64.trace.reaction[-1] > 0.01  # a pattern is growing, not decaying to nothing
    np.testing.assert_allclose(r32.trace.reaction, r64.trace.reaction, rtol=1e-4)
    np.testing.assert_allclose(r32.v, r64.v, atol=1e-4)


def test_residual_is_the_norm_of_reaction_plus_diffusion():
    p = gs.GrayScott(F=0.055, size=32, length=0.32)
    u, v = gs.pearson_init(p, seed=2)
    res = gs.run(p, steps=1, init=(u, v), residual=True)
    reaction = u * v * v - (p.F + p.k) * v
    diffusion = p.Dv * gs.laplacian(v, p.h)
    assert res.trace.extra["residual"][0] == pytest.approx(np.linalg.norm(reaction + diffusion), rel=1e-12)
    assert "residual" not in gs.run(p, steps=1, init=(u, v)).trace.extra


def test_run_in_chunks_equals_one_call():
    p = gs.GrayScott(F=0.029, size=32, length=0.32)
    a = gs.run(p, steps=777, seed=1, chunk=50, snapshot_every=100)
    b = gs.run(p, steps=777, seed=1, chunk=10_000)
    np.testing.assert_array_equal(a.trace.reaction, b.trace.reaction)
    np.testing.assert_array_equal(a.v, b.v)
    assert [s for s, _ in a.snapshots] == [100, 200, 300, 400, 500, 600, 700]


def test_near_steady_state_reaction_balances_diffusion():
    res = gs.run(gs.GrayScott(F=0.029, size=64, length=0.64), steps=20_000, seed=0, residual=True)
    tr = res.trace
    # the residual ||dv/dt|| is ||diffusion + reaction||: small relative to either part
    assert tr.extra["residual"][-1] < 1e-2 * tr.reaction[-1]
    assert abs(tr.final_R - 1) < 1e-3
    assert abs(tr.R_tau[10] - 1) > 10 * abs(tr.final_R - 1)


def _components(v):
    labels, n = ndimage.label(v > 0.2)
    sizes = ndimage.sum(np.ones_like(v), labels, range(1, n + 1))
    spans = [max(s[0].stop - s[0].start, s[1].stop - s[1].start) for s in ndimage.find_objects(labels)]
    return n, sizes, spans


def test_spot_regime_gives_many_small_components_and_stripes_a_few_long_ones():
    n = 64
    spots = gs.run(gs.GrayScott(F=0.029, size=n, length=n * 0.01), steps=5000, seed=0).v
    stripes = gs.run(gs.GrayScott(F=0.055, size=n, length=n * 0.01), steps=5000, seed=0).v
    n_spot, size_spot, span_spot = _components(spots)
    n_stripe, size_stripe, span_stripe = _components(stripes)
    assert n_spot >= 20 and max(size_spot) < 0.02 * n * n and max(span_spot) < n / 8
    assert n_stripe <= 10 and max(span_stripe) >= n / 2 and max(size_stripe) > 20 * max(size_spot)


def test_early_stop_once_stationary():
    p = gs.GrayScott(F=0.055, size=16, length=0.16)
    res = gs.run(p, steps=1000, init=(np.ones((16, 16)), np.zeros((16, 16))), stop_tol=1e-6, stop_after=100)
    assert res.stopped_early and res.steps == 101 and len(res.trace) == 101


def test_same_seed_same_trace_and_other_seed_differs():
    p = gs.GrayScott(F=0.055, size=32, length=0.32)
    a, b, c = (gs.run(p, steps=300, seed=s) for s in (4, 4, 5))
    np.testing.assert_array_equal(a.trace.reaction, b.trace.reaction)
    np.testing.assert_array_equal(a.v, b.v)
    assert not np.array_equal(a.trace.reaction, c.trace.reaction)


def test_blow_up_stops_with_the_step_number():
    p = gs.GrayScott(F=0.055, size=16, length=0.16)
    with pytest.raises(SimulationDiverged, match=r"step \d+") as info:
        gs.run(p, steps=100, init=(np.full((16, 16), 1e3), np.full((16, 16), 1e3)))
    assert 1 <= info.value.step <= 100


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"dt": 3.0}, "explicit-diffusion limit"),
        ({"F": -0.01}, "F must be >= 0"),
        ({"k": -1.0}, "k must be >= 0"),
        ({"Du": -1e-5}, "Du must be >= 0"),
        ({"size": 4}, "size must be an integer >= 8"),
        ({"F": float("nan")}, "finite"),
        ({"dt": float("inf")}, "finite"),
        ({"dtype": "float16"}, "dtype must be one of"),
        ({"length": 0.0}, "length must be in \\[1e-09, 1e\\+09\\], got 0.0"),
    ],
)
def test_bad_parameters_are_refused_with_value_and_limit(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        gs.GrayScott(**kwargs)


def test_wrong_init_shape_is_refused():
    p = gs.GrayScott(size=16, length=0.16)
    with pytest.raises(ConfigError, match=r"shape \(8, 8\), expected \(16, 16\)"):
        gs.run(p, steps=1, init=(np.ones((8, 8)), np.zeros((8, 8))))


def test_public_code_norms_count_every_state_and_take_diffusion_over_the_inner_cells():
    """The authors' notebook measures the saved states 0..steps (steps + 1 of them) and takes
    the Laplacian of the ghost-free interior, so its diffusion norm covers the inner (N-2)^2
    cells only. Replayed here with np.roll steps and the periodic Laplacian cut to the inner cells."""
    p = gs.GrayScott(size=21, length=0.21, F=0.0545)
    res = gs.run(p, steps=10, seed=3, norms="public-code")
    u, v = gs.pearson_init(p, 3)
    want = []
    for step in range(11):
        reaction = u * v * v - (p.F + p.k) * v
        inner = (p.Dv * gs.laplacian(v, p.h))[1:-1, 1:-1]
        want.append((np.linalg.norm(reaction), np.linalg.norm(inner)))
        u, v, _, _ = gs.reference_step(u, v, p)
    want = np.array(want)
    assert len(res.trace) == 11 and res.steps == 10
    np.testing.assert_allclose(res.trace.reaction, want[:, 0], rtol=1e-9)
    np.testing.assert_allclose(res.trace.diffusion, want[:, 1], rtol=1e-9)
    # the rdlens measurement differs: all cells, states 0..9
    ours = gs.run(p, steps=10, seed=3)
    assert len(ours.trace) == 10 and ours.trace.diffusion[0] > res.trace.diffusion[0]


def test_public_code_norms_refuse_what_the_notebook_could_not_measure():
    with pytest.raises(ConfigError, match="public-code"):
        gs.RDRun(norms="public-code", residual=True)
    with pytest.raises(ConfigError, match="norms must be one of"):
        gs.RDRun(norms="authors")


@pytest.mark.parametrize("n, dtype", [(200, "float64"), (64, "float32")])
def test_pearson_start_is_the_formula_and_a_cached_start_cannot_be_changed_by_a_caller(n, dtype):
    """The start is drawn once per (grid, type, seed) and reused by later runs over (F, k):
    it must equal the formula written out here, and what a caller does to it stays theirs."""
    model = gs.GrayScott(size=n, length=n / 100, dtype=dtype)
    rng = np.random.default_rng(3)
    side = max(2, round(n / 10))
    lo = (n - side) // 2
    u = np.ones((n, n))
    v = np.zeros((n, n))
    u[lo:lo + side, lo:lo + side] = 0.5
    v[lo:lo + side, lo:lo + side] = 0.25
    u = u + 0.01 * rng.standard_normal((n, n))
    v = v + 0.01 * rng.standard_normal((n, n))
    got_u, got_v = gs.pearson_init(model, 3)
    assert np.array_equal(got_u, u.astype(dtype)) and np.array_equal(got_v, v.astype(dtype))
    got_u[:] = 7.0
    again = gs.pearson_init(model, 3)[0]
    assert np.array_equal(again, u.astype(dtype))
    first = gs.run(model, steps=20, seed=3)
    assert np.array_equal(gs.run(gs.GrayScott(size=n, length=n / 100, dtype=dtype), steps=20, seed=3).v, first.v)


def test_a_dying_v_is_flushed_to_zero_instead_of_decaying_into_subnormal_numbers():
    """Subnormal floats cost x86 cores up to 17x per step; the kernel sets |v| < 1.2e-38 to 0,
    so a run whose v dies holds exact zeros, never a subnormal, while a live run is untouched
    (the kernel against NumPy's reference step is tested above)."""
    m = gs.GrayScott(F=0.01, k=0.07, size=16, length=0.16)
    res = gs.run(m, steps=20000, seed=0)
    tiny = np.finfo(np.float64).tiny
    assert not ((np.abs(res.v) > 0) & (np.abs(res.v) < tiny)).any() and (res.v == 0).all()
    assert np.isnan(res.trace.final_R)  # both norms vanished: undefined, as before
