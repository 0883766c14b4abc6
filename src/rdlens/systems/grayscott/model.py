"""Gray-Scott reaction-diffusion: parameters, initial state, a fused stepping kernel, run().

    du/dt = Du lap(u) - u v^2 + F (1 - u)
    dv/dt = Dv lap(v) + u v^2 - (F + k) v

on an N x N periodic grid of spacing h = L / N, 5-point Laplacian, explicit Euler (SPEC.md).
Per step the kernel records, on the state the update is computed from,

    reaction = || u v^2 - (F + k) v ||_2      diffusion = || Dv lap(v) ||_2

(the paper's Eq. 12 and 15) and, on request, the residual || dv/dt ||_2, which is 0 exactly at
a steady state, where reaction and diffusion cancel and R(tau) = 1.

The kernel (numba, parallel over rows) does stencil, update and all norms in one pass over
memory: the norms cost a few arithmetic operations per cell, not another sweep. Per-row
partial sums are added in a fixed order, so a seed gives the same trace whatever the number
of threads.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numba import get_num_threads, njit, prange

from rdlens.core import threads
from rdlens.core.balance import BalanceTrace, compact_repr
from rdlens.core.errors import ConfigError, SimulationDiverged
from rdlens.core.options import seed_setting, setting, validate

DTYPES = ("float32", "float64")
LENGTH_RANGE = (1e-9, 1e9)
"""allowed domain lengths: beyond them h^2 under- or overflows in the stability check"""
MAX_SIZE = 32768
"""largest grid side accepted (6 float64 fields of 32768^2 are 48 GiB)"""
STATE_MAX_CELLS = MAX_SIZE**2
PARALLEL_SIZE = 64
"""grids of at least this many points per side run on several threads (smaller: one)"""


@dataclass(frozen=True)
class GrayScott:
    """Model and discretisation. Defaults are the paper's (k, Du, Dv) and its public code's
    grid (N = 200 on a domain of length 2, spacing 0.01) and time step (dt = 2)."""

    F: float = setting(0.029, low=0)
    """feed rate (0.029: spot regime, 0.055: stripe regime)"""
    k: float = setting(0.062, low=0)
    """kill rate"""
    Du: float = setting(1e-5, low=0)
    """diffusion coefficient of u"""
    Dv: float = setting(0.5e-5, low=0)
    """diffusion coefficient of v"""
    size: int = setting(200, low=8)
    """grid points per side, N"""
    length: float = setting(2.0, low=LENGTH_RANGE[0], high=LENGTH_RANGE[1],
                            why="beyond, h^2 under- or overflows in the stability check")
    """side of the periodic square domain, L (spacing h = L / N)"""
    dt: float = setting(2.0, low=0, open=(True, False))
    """explicit Euler time step; must satisfy dt * max(Du, Dv) / h^2 <= 1/4"""
    dtype: str = setting("float64", choices=DTYPES)
    """floating-point type of the fields: float32 or float64"""

    def __post_init__(self) -> None:
        validate(self)
        if self.size > MAX_SIZE:
            raise ConfigError(f"size must be <= {MAX_SIZE} (a {self.size} x {self.size} grid needs "
                              f"{6 * 8 * self.size**2 / 2**30:.0f} GiB), got {self.size}")
        if self.courant > 0.25:
            limit = 0.25 * self.h**2 / max(self.Du, self.Dv)
            raise ConfigError(
                f"dt = {self.dt} is above the explicit-diffusion limit: dt * max(Du, Dv) / h^2 = "
                f"{self.courant:.4g} > 1/4 (with h = {self.h:.4g}, dt must be <= {limit:.4g})"
            )

    @property
    def h(self) -> float:
        """Grid spacing L / N."""
        return self.length / self.size

    @property
    def courant(self) -> float:
        """dt * max(Du, Dv) / h^2, the explicit diffusion number (stable up to 1/4)."""
        return self.dt * max(self.Du, self.Dv) / self.h**2

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


# ---- initial states -----------------------------------------------------------------------


def pearson_init(
    params: GrayScott, seed: int = 0, square: int | None = None, noise: float = 0.01, shift: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's (1993) start: u = 1, v = 0, a centred square set to u = 0.5, v = 0.25, and
    Gaussian noise of standard deviation ``noise`` on both fields (seeded).

    ``square`` is the side in grid points; by default N/10 (20 at the paper's N = 200).
    ``shift`` moves the square that many cells toward index 0 (the public code's sits one
    cell before the centre).
    """
    u, v = _pearson_start(params, seed, square, noise, shift)
    return u.copy(), v.copy()


def square_side(n: int, square: int | None = None) -> int:
    """The side of Pearson's square on an n x n grid: ``square``, by default N/10 (at least 2)."""
    return max(2, round(n / 10)) if square is None else int(square)


def _pearson_start(params: GrayScott, seed: int = 0, square: int | None = None, noise: float = 0.01,
                   shift: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The fields of :func:`pearson_init`, cached and shared: never to be written to."""
    n = params.size
    side = square_side(n, square)
    if not 1 <= side <= n:
        raise ConfigError(f"initial square side must be in [1, {n}] grid points, got {side}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ConfigError(f"initial noise must be a finite number >= 0, got {noise}")
    lo = (n - side) // 2 - shift
    if not 0 <= shift <= (n - side) // 2:
        raise ConfigError(f"square_shift must be in [0, {(n - side) // 2}] cells on a {n} x {n} grid, got {shift}")
    key = (n, params.dtype, side, float(noise), seed, lo)
    cached = _STARTS.get(key)
    if cached is None:
        cached = _perturbed(params, [(lo, lo)], side, noise, np.random.default_rng(seed))
        if n * n <= _CACHE_CELLS:
            _STARTS[key] = cached
            while len(_STARTS) > _CACHE_ENTRIES:
                _STARTS.pop(next(iter(_STARTS)))
    return cached


_STARTS: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
"""recent Pearson starts: they depend on the grid, type, square, noise and seed, not on (F, k),
so a loop of runs over (F, k) draws each start once (a 512^2 start costs 10 ms, 200 steps 45 ms)"""
_CACHE_ENTRIES = 4
_CACHE_CELLS = 1024 * 1024


def _perturbed(params: GrayScott, corners: Any, side: int, noise: float, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray]:
    """u = 1, v = 0 with Pearson's squares (u = 0.5, v = 0.25; wrapping around the edges) at
    ``corners``, then Gaussian noise on u and then on v, drawn from ``rng``."""
    n = params.size
    u = np.ones((n, n))
    v = np.zeros((n, n))
    for r, c in corners:
        rows, cols = np.ix_(np.arange(r, r + side) % n, np.arange(c, c + side) % n)
        u[rows, cols] = 0.5
        v[rows, cols] = 0.25
    z = np.empty((n, n))
    for f in (u, v):  # u += noise * z, in place (the same numbers, no temporaries)
        rng.standard_normal(out=z)
        z *= noise
        f += z
    return u.astype(params.np_dtype, copy=False), v.astype(params.np_dtype, copy=False)


def pearson_spots(
    params: GrayScott, seed: int = 0, count: int = 3, square: int = 4, noise: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson's perturbation at ``count`` seeded random places instead of the centre: squares of
    ``square`` grid points set to u = 0.5, v = 0.25 (wrapping around the periodic edges) on u = 1,
    v = 0, plus Gaussian noise of standard deviation ``noise``. Different seeds give different
    patterns of one class, which a single centred square does not."""
    n = params.size
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= n * n:
        raise ConfigError(f"count of start squares must be an integer in [1, {n * n}], got {count!r}")
    if isinstance(square, bool) or not isinstance(square, int) or not 1 <= square <= n:
        raise ConfigError(f"start square side must be an integer in [1, {n}] grid points, got {square!r}")
    if not (math.isfinite(noise) and noise >= 0):
        raise ConfigError(f"initial noise must be a finite number >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    return _perturbed(params, rng.integers(0, n, (count, 2)), square, noise, rng)


def check_state(params: GrayScott, u: np.ndarray, v: np.ndarray, source: str = "initial state") -> None:
    """Refuse a user-supplied state of the wrong shape or with non-finite values."""
    want = (params.size, params.size)
    for name, arr in (("u", u), ("v", v)):
        arr = np.asarray(arr)
        if arr.shape != want:
            raise ConfigError(f"{source}: array {name!r} has shape {arr.shape}, expected {want} (size = {params.size})")
        if not np.issubdtype(arr.dtype, np.number):
            raise ConfigError(f"{source}: array {name!r} has non-numeric dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"{source}: array {name!r} contains NaN or inf")


def load_state(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``u`` and ``v`` from an .npz file (as written by ``--save-state``).

    Each array's header is read and checked (a real, 2-D, square grid of at most
    ``STATE_MAX_CELLS`` cells) before its data, so a damaged or hostile file is refused
    without allocating what its header claims.
    """
    import zipfile

    from rdlens.core.rundir import check_path

    path = check_path(path, "--init")
    if not path.is_file():
        raise ConfigError(f"initial state file {str(path)!r} does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {n.removesuffix(".npy"): n for n in zf.namelist()}
            missing = [k for k in ("u", "v") if k not in names]
            if missing:
                raise ConfigError(f"{path}: missing array(s) {missing}; an init file needs arrays 'u' and 'v'")
            arrays = []
            for key in ("u", "v"):
                with zf.open(names[key]) as fh:
                    version = np.lib.format.read_magic(fh)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(fh)
                if dtype.kind not in "fiu":
                    raise ConfigError(f"{path}: array {key!r} holds {dtype} values; an init file needs real numbers")
                if (len(shape) != 2 or shape[0] != shape[1] or not 8 <= shape[0] <= MAX_SIZE
                        or int(np.prod(shape)) > STATE_MAX_CELLS):
                    raise ConfigError(f"{path}: array {key!r} has shape {shape}; expected a square (N, N) grid "
                                      f"with 8 <= N <= {MAX_SIZE}")
                with zf.open(names[key]) as fh:
                    arrays.append(np.lib.format.read_array(fh, allow_pickle=False))
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a damaged archive trips the readers on
        raise ConfigError(f"{path}: not a readable .npz file with arrays u and v ({type(exc).__name__}: {exc})") from None
    u, v = arrays
    if v.shape != u.shape:
        raise ConfigError(f"{path}: array 'v' has shape {v.shape}, expected {u.shape} (the shape of 'u')")
    if not (np.all(np.isfinite(u)) and np.all(np.isfinite(v))):
        raise ConfigError(f"{path}: u and v must be finite everywhere")
    return u.astype(np.float64, copy=False), v.astype(np.float64, copy=False)


def state_metadata(path: str | Path) -> dict[str, float]:
    """The model values saved beside u and v (length, F, k, Du, Dv, dt), where present, each
    checked as the option of that name is (a NaN F or a negative dt is a ConfigError naming the
    file, the value and the range)."""
    import zipfile

    out: dict[str, float] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for key in STATE_METADATA:
                if f"{key}.npy" in zf.namelist():
                    with zf.open(f"{key}.npy") as fh:
                        value = np.lib.format.read_array(fh, allow_pickle=False)
                    if value.shape == () and value.dtype.kind == "f":
                        out[key] = float(value)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return {}
    for key, value in out.items():
        low = LENGTH_RANGE[0] if key == "length" else 0.0
        high = LENGTH_RANGE[1] if key == "length" else math.inf
        if not (math.isfinite(value) and low <= value <= high) or (key == "dt" and value == 0):
            allowed = (f"in [{low:g}, {high:g}]" if key == "length" else "> 0" if key == "dt" else ">= 0")
            raise ConfigError(f"{path}: its saved {key} = {value} is not a valid setting ({key} must be a finite "
                              f"number {allowed}); the file is damaged or was not written by rdlens")
    return out


STATE_METADATA = ("length", "F", "k", "Du", "Dv", "dt")
"""model values a saved state records, so that a run continuing from it keeps its grid spacing"""


# ---- the NumPy reference (obviously correct, slow) -----------------------------------------


def laplacian(a: np.ndarray, h: float) -> np.ndarray:
    """Periodic 5-point Laplacian divided by h^2 (np.roll; the reference for the kernel)."""
    return (np.roll(a, 1, 0) + np.roll(a, -1, 0) + np.roll(a, 1, 1) + np.roll(a, -1, 1) - 4 * a) / h**2


def reference_step(
    u: np.ndarray, v: np.ndarray, p: GrayScott
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """One explicit Euler step written directly from the equations, and the two norms.

    Used as the independent check of the kernel in tests and as the baseline in benchmarks.
    """
    uvv = u * v * v
    reaction = uvv - (p.F + p.k) * v
    diffusion = p.Dv * laplacian(v, p.h)
    u_new = u + p.dt * (p.Du * laplacian(u, p.h) - uvv + p.F * (1 - u))
    v_new = v + p.dt * (diffusion + reaction)
    return u_new, v_new, float(np.linalg.norm(reaction)), float(np.linalg.norm(diffusion))


# ---- the fused kernel ---------------------------------------------------------------------

# Reassociation lets the row sums vectorise; 'nnan'/'ninf' are left out on purpose, or the
# compiler would assume away the non-finite values that the divergence check looks for.
_FAST = {"nsz", "arcp", "contract", "afn", "reassoc"}


_TINY = np.float32(np.finfo(np.float32).tiny)
"""|v| below this (the smallest normal float32, 1.2e-38) is set to 0: a dying v otherwise decays
into subnormal numbers, which x86 cores compute up to 17x slower (a sweep's died points took 90 %
of its time); no number rdlens reports can see a v this small (norms below 1e-12 of the run's
largest count as vanished)"""


@njit(inline="always", fastmath=_FAST)
def _cell(uc, vc, nu, nv, cu, cu4, cv, cv4, F, Fk, dt):  # pragma: no cover - compiled
    # nu, nv: sum of the four neighbours; cu = Du/h^2, cu4 = 4 Du/h^2 (same for v).
    uvv = uc * vc * vc
    react = uvv - Fk * vc
    diff = cv * nv - cv4 * vc
    dv = diff + react
    un = uc + dt * (cu * nu - cu4 * uc - uvv + F - F * uc)
    vn = vc + dt * dv
    return un, vn if abs(vn) >= _TINY else vn * 0, react, diff, dv


def _make_row(measure: bool, residual: bool):
    """The update of one row, compiled with the flags frozen in (see :func:`_make_advance`);
    shared by the single and the batched loop, so both do the same arithmetic per cell."""

    @njit(inline="always", fastmath=_FAST)
    def row(u, v, u2, v2, i, cu, cu4, cv, cv4, F, Fk, dt):  # pragma: no cover - compiled
        # Update row i into (u2, v2); return the row's sums of squares of reaction,
        # diffusion and (if residual) dv/dt. Row sums stay in the fields' dtype (float32
        # sums vectorise twice as wide); rows are added up in float64 by the caller.
        n, m = u.shape
        im = i - 1 if i > 0 else n - 1
        ip = i + 1 if i < n - 1 else 0
        s_r = F - F
        s_d = F - F
        s_q = F - F
        # first and last column wrap around; the interior loop has no branches and vectorises
        for j in (0, m - 1):
            jm = j - 1 if j > 0 else m - 1
            jp = j + 1 if j < m - 1 else 0
            un, vn, r, d, q = _cell(u[i, j], v[i, j], u[im, j] + u[ip, j] + u[i, jm] + u[i, jp],
                                    v[im, j] + v[ip, j] + v[i, jm] + v[i, jp], cu, cu4, cv, cv4, F, Fk, dt)
            u2[i, j] = un
            v2[i, j] = vn
            if measure:
                s_r += r * r
                s_d += d * d
            if residual:
                s_q += q * q
        for j in range(1, m - 1):
            un, vn, r, d, q = _cell(u[i, j], v[i, j], u[im, j] + u[ip, j] + u[i, j - 1] + u[i, j + 1],
                                    v[im, j] + v[ip, j] + v[i, j - 1] + v[i, j + 1], cu, cu4, cv, cv4, F, Fk, dt)
            u2[i, j] = un
            v2[i, j] = vn
            if measure:
                s_r += r * r
                s_d += d * d
            if residual:
                s_q += q * q
        return s_r, s_d, s_q

    return row


def _make_advance(measure: bool, residual: bool):
    """Compile-time specialised stepping loops: the flags are frozen into the code, so each
    variant's inner loop is branch-free (a runtime flag there costs vectorisation)."""
    row = _make_row(measure, residual)

    @njit(parallel=True, fastmath=_FAST)
    def advance(a_u, a_v, b_u, b_v, nsteps, c, out, rows, stop_tol, stop_after, step0):  # pragma: no cover
        # Advance up to nsteps steps, ping-ponging between buffers a and b; write the sums of
        # squares of reaction, diffusion and dv/dt of every step to out. Return the number of
        # steps done, or -(k+1) if step k met a non-finite value. c = (cu, cu4, cv, cv4, F,
        # Fk, dt). Stop early once the RMS change of v in a step is below stop_tol.
        cu, cu4, cv, cv4, F, Fk, dt = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
        n = a_u.shape[0]
        cells = a_u.shape[0] * a_u.shape[1]
        for s in range(nsteps):
            if s % 2 == 0:
                src_u, src_v, dst_u, dst_v = a_u, a_v, b_u, b_v
            else:
                src_u, src_v, dst_u, dst_v = b_u, b_v, a_u, a_v
            for i in prange(n):
                r, d, q = row(src_u, src_v, dst_u, dst_v, i, cu, cu4, cv, cv4, F, Fk, dt)
                rows[i, 0] = r
                rows[i, 1] = d
                rows[i, 2] = q
            if measure:
                for col in range(3):
                    acc = 0.0
                    for i in range(n):
                        acc += rows[i, col]
                    out[s, col] = acc
                if not (np.isfinite(out[s, 0]) and np.isfinite(out[s, 1]) and np.isfinite(out[s, 2])):
                    return -(s + 1)
                if residual and stop_tol > 0 and step0 + s + 1 > stop_after:
                    if dt * np.sqrt(out[s, 2] / cells) < stop_tol:
                        return s + 1
        return nsteps

    return advance


def _make_advance_batch(by_grid: bool):
    """The batched loops: B independent grids (same size, own parameters), advanced together.

    ``by_grid``: each thread takes whole grids and runs each through all its steps while its
    fields stay in cache (for batches of at least as many grids as threads). Otherwise the
    work is split over (grid, row) pairs step by step, so that even one or two grids use every
    core. Either way each grid's row sums are added in row order by the same row update as
    :func:`_make_advance`, so a grid's numbers do not depend on its batch or on the loop."""
    row = _make_row(True, True)

    @njit(inline="always")
    def reduce_step(rows, out, failed, b, s, step0):  # pragma: no cover - compiled
        n = rows.shape[1]
        for col in range(3):
            acc = 0.0
            for i in range(n):
                acc += rows[b, i, col]
            out[b, s, col] = acc
        if failed[b] == 0 and not (np.isfinite(out[b, s, 0]) and np.isfinite(out[b, s, 1])):
            failed[b] = step0 + s + 1

    if by_grid:
        @njit(parallel=True, fastmath=_FAST)
        def advance(a_u, a_v, b_u, b_v, nsteps, c, out, rows, failed, step0):  # pragma: no cover - compiled
            nb, n = a_u.shape[0], a_u.shape[1]
            for b in prange(nb):
                for s in range(nsteps):
                    if s % 2 == 0:
                        su, sv, du, dv = a_u[b], a_v[b], b_u[b], b_v[b]
                    else:
                        su, sv, du, dv = b_u[b], b_v[b], a_u[b], a_v[b]
                    for i in range(n):
                        r, d, q = row(su, sv, du, dv, i, c[b, 0], c[b, 1], c[b, 2], c[b, 3], c[b, 4], c[b, 5],
                                      c[b, 6])
                        rows[b, i, 0] = r
                        rows[b, i, 1] = d
                        rows[b, i, 2] = q
                    reduce_step(rows, out, failed, b, s, step0)
            return nsteps

        return advance

    @njit(parallel=True, fastmath=_FAST)
    def advance(a_u, a_v, b_u, b_v, nsteps, c, out, rows, failed, step0):  # pragma: no cover - compiled
        # a_*, b_*: (B, n, n); c: (B, 7); out: (B, nsteps, 3) sums of squares; rows: (B, n, 3);
        # failed[b]: first step (1-based, global) at which grid b met a non-finite value, or 0.
        nb, n = a_u.shape[0], a_u.shape[1]
        for s in range(nsteps):
            if s % 2 == 0:
                src_u, src_v, dst_u, dst_v = a_u, a_v, b_u, b_v
            else:
                src_u, src_v, dst_u, dst_v = b_u, b_v, a_u, a_v
            for k in prange(nb * n):
                b = k // n
                i = k - b * n
                r, d, q = row(src_u[b], src_v[b], dst_u[b], dst_v[b], i, c[b, 0], c[b, 1], c[b, 2], c[b, 3],
                              c[b, 4], c[b, 5], c[b, 6])
                rows[b, i, 0] = r
                rows[b, i, 1] = d
                rows[b, i, 2] = q
            for b in prange(nb):
                reduce_step(rows, out, failed, b, s, step0)
        return nsteps

    return advance


# (measure, residual) -> compiled loop; compiled on first use (about a second each)
_KERNELS: dict[tuple[bool, bool], Callable] = {}
_BATCH: dict[bool, Callable] = {}


def _kernel(measure: bool, residual: bool) -> Callable:
    key = (measure, residual)
    if key not in _KERNELS:
        _KERNELS[key] = _make_advance(measure, residual)
    return _KERNELS[key]


def _coefficients(p: GrayScott) -> list[float]:
    """The constants the kernels take: (Du/h^2, 4 Du/h^2, Dv/h^2, 4 Dv/h^2, F, F + k, dt)."""
    cu, cv = p.Du / p.h**2, p.Dv / p.h**2
    return [cu, 4 * cu, cv, 4 * cv, p.F, p.F + p.k, p.dt]


class _Fields:
    """Two field buffers (a: current, b: next) that the compiled loops ping-pong between."""

    def _init_fields(self, p: GrayScott, u: np.ndarray, v: np.ndarray) -> None:
        dt = p.np_dtype
        self._a = (np.array(u, dtype=dt, order="C"), np.array(v, dtype=dt, order="C"))
        self._b = (np.empty_like(self._a[0]), np.empty_like(self._a[1]))
        self.step = 0

    @property
    def u(self) -> np.ndarray:
        return self._a[0]

    @property
    def v(self) -> np.ndarray:
        return self._a[1]

    def _swap_if(self, steps_done: int) -> None:
        if steps_done % 2 == 1:
            self._a, self._b = self._b, self._a


class Stepper(_Fields):
    """Holds the two fields (and a second buffer) and advances them with the fused kernel."""

    def __init__(self, params: GrayScott, u: np.ndarray, v: np.ndarray, *, check: bool = True) -> None:
        """``check = False`` skips :func:`check_state` for a state the caller has checked or made."""
        if check:
            check_state(params, u, v)
        self.params = params
        self._init_fields(params, u, v)
        self._c = np.array(_coefficients(params), dtype=params.np_dtype)
        self._rows = np.empty((params.size, 3))

    def advance(
        self, nsteps: int, stop_tol: float = 0.0, stop_after: int = 100, residual: bool = False
    ) -> np.ndarray:
        """Advance up to ``nsteps`` steps; return one row per step done with the L2 norms of
        reaction, diffusion and, if ``residual`` (or ``stop_tol`` > 0), of the residual dv/dt
        (columns 0, 1, 2; column 2 is 0 when not asked for: it costs ~6 % more per step).

        Stops early when ``stop_tol`` > 0, past step ``stop_after``, once the RMS change of v
        in one step, dt * ||dv/dt|| / N, is below ``stop_tol``.
        Raises :class:`SimulationDiverged` with the step number on NaN or inf.
        """
        out = np.empty((nsteps, 3))
        kernel = _kernel(True, bool(residual or stop_tol > 0))
        done = kernel(*self._a, *self._b, nsteps, self._c, out, self._rows, float(stop_tol), int(stop_after), self.step)
        if done < 0:
            raise SimulationDiverged("Gray-Scott", self.step - done)
        self._swap_if(done)
        self.step += done
        return np.sqrt(out[:done])

    def advance_unmeasured(self, nsteps: int) -> None:
        """Advance ``nsteps`` steps without recording norms (benchmark baseline)."""
        _kernel(False, False)(*self._a, *self._b, nsteps, self._c, np.empty((0, 3)), self._rows, 0.0, 0, self.step)
        self._swap_if(nsteps)
        self.step += nsteps


class BatchStepper(_Fields):
    """B Gray-Scott grids of one size and spacing, each with its own F and k (and fields),
    advanced together by one compiled loop; norms come out per grid, as from :class:`Stepper`."""

    def __init__(self, models: list[GrayScott], u: np.ndarray, v: np.ndarray) -> None:
        if not models:
            raise ConfigError("a batch needs at least one model")
        first = models[0]
        for m in models:
            if (m.size, m.length, m.dt, m.dtype, m.Du, m.Dv) != (first.size, first.length, first.dt, first.dtype,
                                                                  first.Du, first.Dv):
                raise ConfigError("a batch shares size, length, dt, dtype, Du and Dv; only F and k may differ")
        if u.shape != (len(models), first.size, first.size) or v.shape != u.shape:
            raise ConfigError(f"batch fields must be ({len(models)}, {first.size}, {first.size}), got {u.shape}, {v.shape}")
        self._init_fields(first, u, v)
        self.models = models
        self._c = np.array([_coefficients(m) for m in models], dtype=first.np_dtype)
        self._rows = np.empty((len(models), first.size, 3))
        self.failed = np.zeros(len(models), dtype=np.int64)

    def advance(self, nsteps: int) -> np.ndarray:
        """Advance every grid ``nsteps`` steps; return (B, nsteps, 3) L2 norms of reaction,
        diffusion and dv/dt. A grid that meets NaN/inf keeps going (as NaN) and its first bad
        step is in ``failed``; the others are unaffected."""
        by_grid = len(self.models) >= get_num_threads()
        if by_grid not in _BATCH:
            _BATCH[by_grid] = _make_advance_batch(by_grid)
        out = np.empty((len(self.models), nsteps, 3))
        _BATCH[by_grid](*self._a, *self._b, nsteps, self._c, out, self._rows, self.failed, self.step)
        self._swap_if(nsteps)
        self.step += nsteps
        return np.sqrt(out)


# ---- a full run ---------------------------------------------------------------------------


NORMS = ("rdlens", "public-code")
STOP_MEASURES = ("rms", "mean-abs")


def public_code_norms(u: np.ndarray, v: np.ndarray, p: GrayScott) -> tuple[float, float]:
    """The norms as the authors' notebook computes them from a saved state: the v reaction
    over all cells, the v diffusion from a Laplacian of the array without its periodic ghost
    cells, which exists only on the inner (N-2)^2 cells."""
    reaction = u * v * v - (p.F + p.k) * v
    inner = (v[2:, 1:-1] + v[1:-1, 2:] + v[:-2, 1:-1] + v[1:-1, :-2] - 4 * v[1:-1, 1:-1]) / p.h**2
    return float(np.linalg.norm(reaction)), float(np.linalg.norm(p.Dv * inner))


@dataclass(frozen=True)
class RDRun:
    """One Gray-Scott run: the model, how long to run it and what to keep."""

    model: GrayScott = field(default_factory=GrayScott)
    steps: int = setting(5000, low=1)
    """number of explicit Euler steps (the paper's public code: 5000)"""
    seed: int = seed_setting()
    """seed of the initial noise"""
    init: str | None = None
    """path of an .npz with arrays u and v to start from (default: Pearson's start)"""
    snapshot_every: int = setting(1000, low=0)
    """keep v every this many steps in snapshots.npz (0: none)"""
    stop_tol: float = setting(0.0, low=0)
    """stop early once the change of v in one step (stop_measure) < stop_tol (0: never)"""
    stop_after: int = setting(100, low=0)
    """stop early only after this step"""
    stop_measure: str = setting("rms", choices=STOP_MEASURES)
    """the change stop_tol bounds: rms (with norms rdlens) or mean-abs, the mean |change of v|
    (with norms public-code: the public code stops after step 101 once it is < 1e-6)"""
    square_shift: int = setting(0, low=0)
    """cells Pearson's square is moved toward index 0 (the public code's sits 1 cell before the centre)"""
    save_state: bool = False
    """write the final u, v to state.npz (usable as --init)"""
    residual: bool = False
    """also record ||dv/dt|| per step (column residual: the distance from a steady state)"""
    norms: str = setting("rdlens", choices=NORMS)
    """rdlens (both norms over all cells, the states the steps start from) or public-code (the
    authors' notebook, a quirk: the final state counted too, and the diffusion norm over the inner
    (N-2)^2 cells only, from a Laplacian of the ghost-free interior)"""

    def __post_init__(self) -> None:
        validate(self)
        if self.norms == "public-code" and self.residual:
            raise ConfigError("norms = public-code measures every state as the authors' notebook did; "
                              "it cannot be combined with residual")
        wanted = "mean-abs" if self.norms == "public-code" else "rms"
        if self.stop_tol > 0 and self.stop_measure != wanted:
            raise ConfigError(f"with norms = {self.norms} the early stop measures the change of v as {wanted}, "
                              f"got stop_measure = {self.stop_measure!r}: give --stop-measure {wanted}")
        room = (self.model.size - square_side(self.model.size)) // 2
        if self.square_shift > room:
            raise ConfigError(f"square_shift must be in [0, {room}] cells on a {self.model.size} x {self.model.size} "
                              f"grid, got {self.square_shift}")
        if self.square_shift and self.init is not None:
            raise ConfigError("square_shift moves Pearson's start square; a run from --init has none: drop it")


@dataclass
class GrayScottResult:
    """What :func:`run` returns: the balance trace, the final fields and the snapshots."""

    __repr__ = compact_repr

    params: GrayScott
    trace: BalanceTrace
    u: np.ndarray
    v: np.ndarray
    seed: int
    steps: int
    stopped_early: bool
    wall_time_s: float
    snapshots: list[tuple[int, np.ndarray]] = field(default_factory=list)


def run(
    params: GrayScott,
    steps: int = 5000,
    seed: int = 0,
    *,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    snapshot_every: int = 0,
    stop_tol: float = 0.0,
    stop_after: int = 100,
    residual: bool = False,
    norms: str = "rdlens",
    square_shift: int = 0,
    progress: Callable[[int], None] | None = None,
    chunk: int = 250,
) -> GrayScottResult:
    """Run the simulation and return its balance trace (one row per step).

    ``init`` is a user-supplied (u, v); by default Pearson's start seeded by ``seed``.
    ``snapshot_every`` > 0 keeps a copy of v every that many steps. ``stop_tol`` > 0 stops
    once the state is stationary (RMS change of v in one step below it, after ``stop_after``
    steps). ``residual`` adds the column ``residual`` = ||dv/dt||, the distance from a steady
    state (always on with ``stop_tol``). ``norms = "public-code"`` measures as the authors'
    notebook did (:func:`public_code_norms` of every state, the final one included: steps + 1
    rows), stepping with the same kernel, and stops as it did: once the mean |change of v| in a
    step past ``stop_after`` is below ``stop_tol``. ``square_shift`` moves Pearson's square.
    ``progress`` is called with the number of steps just done, for progress bars.
    """
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be an integer >= 1, got {steps!r}")
    if snapshot_every < 0:
        raise ConfigError(f"snapshot_every must be >= 0, got {snapshot_every}")
    if not (math.isfinite(stop_tol) and stop_tol >= 0):
        raise ConfigError(f"stop_tol must be a finite number >= 0, got {stop_tol}")
    if stop_after < 0:
        raise ConfigError(f"stop_after must be >= 0, got {stop_after}")
    if init is None:
        u0, v0 = _pearson_start(params, seed, shift=square_shift)  # the Stepper copies them
    else:
        check_state(params, *init)
        u0, v0 = init
    stepper = Stepper(params, u0, v0, check=False)  # checked above, or Pearson's start
    if norms == "public-code":
        return _run_public_code(stepper, steps, seed, snapshot_every, progress, stop_tol, stop_after)
    t0 = time.perf_counter()
    blocks: list[np.ndarray] = []
    snapshots: list[tuple[int, np.ndarray]] = []
    stopped = False
    block = min(chunk, snapshot_every) if snapshot_every else chunk
    # thread-count invariant (fixed-order row sums): free to follow the machine's load
    with threads.stage("Gray-Scott", parallel=params.size >= PARALLEL_SIZE, adapt=True) as st:
        while stepper.step < steps and not stopped:
            st.tick()
            want = min(block, steps - stepper.step)
            if snapshot_every:
                want = min(want, snapshot_every - stepper.step % snapshot_every)
            norms = stepper.advance(want, stop_tol, stop_after, residual)
            blocks.append(norms)
            stopped = len(norms) < want
            if snapshot_every and (stepper.step % snapshot_every == 0 or stopped):
                snapshots.append((stepper.step, stepper.v.copy()))
            if progress is not None:
                progress(len(norms))
    wall = time.perf_counter() - t0
    norms = np.concatenate(blocks)
    extra = {"residual": norms[:, 2]} if residual or stop_tol > 0 else {}
    trace = BalanceTrace.from_series(norms[:, 0], norms[:, 1], extra=extra)
    return GrayScottResult(
        params=params, trace=trace, u=stepper.u, v=stepper.v, seed=seed,  # the stepper's own: it ends here
        steps=stepper.step, stopped_early=stopped, wall_time_s=wall, snapshots=snapshots,
    )


def _run_public_code(stepper: Stepper, steps: int, seed: int, snapshot_every: int,
                     progress: Callable[[int], None] | None, stop_tol: float = 0.0,
                     stop_after: int = 100) -> GrayScottResult:
    """:func:`run` with the authors' measurement: every state from the initial to the final,
    stopping (with ``stop_tol``) once the mean |change of v| of a step past ``stop_after`` is
    below it, the stopping state included."""
    p = stepper.params
    t0 = time.perf_counter()
    rows = [public_code_norms(stepper.u, stepper.v, p)]
    snapshots: list[tuple[int, np.ndarray]] = []
    stopped = False
    with threads.stage("Gray-Scott", parallel=p.size >= PARALLEL_SIZE, adapt=True) as st:
        while stepper.step < steps and not stopped:
            st.tick()
            v_prev = stepper.v.copy() if stop_tol > 0 else None
            stepper.advance_unmeasured(1)
            if v_prev is not None and stepper.step > stop_after:
                stopped = float(np.mean(np.abs(stepper.v - v_prev))) < stop_tol
            rows.append(public_code_norms(stepper.u, stepper.v, p))
            if not math.isfinite(rows[-1][0] + rows[-1][1]):  # a NaN or inf anywhere in u v^2 or v shows here
                raise SimulationDiverged("Gray-Scott", stepper.step)
            if snapshot_every and stepper.step % snapshot_every == 0:
                snapshots.append((stepper.step, stepper.v.copy()))
            if progress is not None:
                progress(1)
    norms = np.array(rows)
    trace = BalanceTrace.from_series(norms[:, 0], norms[:, 1])
    return GrayScottResult(params=p, trace=trace, u=stepper.u, v=stepper.v, seed=seed, steps=stepper.step,
                           stopped_early=stopped, wall_time_s=time.perf_counter() - t0, snapshots=snapshots)
