"""The matrix-free Matting Laplacian (issue 30) against an explicit one written independently here
from Levin, Lischinski & Weiss 2008 (eq. for L_ij, windows fully inside the image), in float64
with SciPy's sparse matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from conftest import smooth_image

from jaxnst.loss import matting


def levin_laplacian(img, eps, r=1):
    """L_ij = sum over windows k holding i and j of
    delta_ij - (1 + (I_i - mu_k)^T (S_k + eps/|w| I)^-1 (I_j - mu_k)) / |w|."""
    img = np.asarray(img, np.float64)
    h, w, c = img.shape
    n = (2 * r + 1) ** 2
    idx = np.arange(h * w).reshape(h, w)
    rows, cols, vals = [], [], []
    for y in range(r, h - r):
        for x in range(r, w - r):
            win = idx[y - r : y + r + 1, x - r : x + r + 1].ravel()
            d = img[y - r : y + r + 1, x - r : x + r + 1].reshape(n, c)
            d = d - d.mean(0)
            inv = np.linalg.inv(d.T @ d / n + eps / n * np.eye(c))
            block = np.eye(n) - (1 + d @ inv @ d.T) / n
            rows.append(np.repeat(win, n))
            cols.append(np.tile(win, n))
            vals.append(block.ravel())
    data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    return sp.csr_matrix(data, shape=(h * w, h * w))  # duplicates (overlapping windows) summed


def apply_ref(lap, x):
    x = np.asarray(x, np.float64)
    return np.stack([lap @ x[..., c].ravel() for c in range(x.shape[-1])], -1).reshape(x.shape)


def rel_err(got, ref):
    return np.linalg.norm(np.asarray(got, np.float64) - ref) / np.linalg.norm(ref)


def photo_like(h=12, w=10):
    """Flat colours, a gentle ramp, a hard edge, 8-bit levels: windows whose covariance is nearly
    singular, the float32 hard case at eps 1e-7."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([0.6 + 0.01 * yy, 0.3 + 0.004 * xx, 0.5 + 0 * xx], -1)
    img[:, w // 2 + 1 :] = [0.9, 0.1, 0.2]
    return (np.round(img * 255) / 255).astype(np.float32)


apply_jit = jax.jit(matting.matting_apply)


@pytest.mark.parametrize("eps", [1e-7, 1e-4, 1e-2])
@pytest.mark.parametrize("shape", [(7, 9), (10, 8)])
def test_apply_equals_explicit_levin_laplacian(rng, shape, eps):
    img = rng.random((*shape, 3)).astype(np.float32)
    x = rng.standard_normal((*shape, 2)).astype(np.float32)
    ref = apply_ref(levin_laplacian(img, eps), x)
    got = apply_jit(matting.matting_stats(img, eps), x)
    assert rel_err(got, ref) <= 1e-5  # measured ~1e-7
    np.testing.assert_allclose(got, ref, atol=1e-5 * np.abs(ref).max())


def test_apply_on_nearly_singular_windows():
    """8-bit photo-like content at DPST's eps. Rounding the float32 content by one ulp moves the
    exact L x by ~5e-6 here (measured in float64), so no float32 method does much better than
    ~1e-5; storing (S + eps/9 I)^-1 as a float32 matrix gave 4e-3, the factorised form 2e-5."""
    img = photo_like()
    x = np.random.default_rng(1).standard_normal(img.shape).astype(np.float32)
    ref = apply_ref(levin_laplacian(img, 1e-7), x)
    assert rel_err(apply_jit(matting.matting_stats(img, 1e-7), x), ref) <= 1e-4


def test_energy_gradient_is_2_lx_over_n_and_matches_finite_differences(rng):
    img = rng.random((7, 9, 3)).astype(np.float32)
    x = rng.standard_normal((7, 9, 3)).astype(np.float32)
    stats = matting.matting_stats(img, 1e-4)
    energy = jax.jit(matting.matting_energy)
    g = np.asarray(jax.grad(matting.matting_energy, argnums=1)(stats, x))
    ref = 2 * apply_ref(levin_laplacian(img, 1e-4), x) / (7 * 9)
    assert rel_err(g, ref) <= 1e-5
    # The energy is quadratic, so central differences have no truncation error: only rounding.
    h = 1e-2
    for v in rng.standard_normal((3, *x.shape)).astype(np.float32):
        fd = (float(energy(stats, x + h * v)) - float(energy(stats, x - h * v))) / (2 * h)
        np.testing.assert_allclose(fd, np.vdot(g, v), rtol=1e-3)
    assert float(energy(stats, x)) == pytest.approx(np.vdot(x, ref) / 2, rel=1e-5)


@pytest.mark.parametrize("eps", [1e-7, 1e-2])
def test_constant_and_affine_recolouring_have_zero_energy(rng, eps):
    img = rng.random((7, 9, 3)).astype(np.float32)
    stats = matting.matting_stats(img, eps)
    # Rounding: a few ulps of |x|^2 (measured 1.9e-7 for the constant, 4.5e-7 for the affine map).
    const = np.broadcast_to(np.float32([0.2, 0.7, 1.0]), img.shape)
    assert abs(float(matting.matting_energy(stats, const))) <= 2e-6 * np.mean(const**2)
    a = rng.standard_normal((3, 3)).astype(np.float32)
    affine = img @ a.T + np.float32([0.1, -0.3, 0.5])
    # Levin's L leaves affine maps only up to the eps penalty on a: eps |a|^2 per window.
    bound = 2e-6 * np.mean(affine**2) + eps * np.sum(a**2) * (5 * 7) / (7 * 9)
    assert abs(float(matting.matting_energy(stats, affine))) <= bound
    noise = rng.standard_normal(img.shape).astype(np.float32)  # and the test can fail:
    assert float(matting.matting_energy(stats, noise)) > 0.1


def test_symmetric_positive_semidefinite(rng):
    img = rng.random((10, 8, 3)).astype(np.float32)
    stats = matting.matting_stats(img, 1e-5)
    for _ in range(3):
        x, y = rng.standard_normal((2, 10, 8, 3)).astype(np.float32)
        xly = np.vdot(x, apply_jit(stats, y))
        ylx = np.vdot(y, apply_jit(stats, x))
        assert xly == pytest.approx(ylx, rel=1e-5, abs=1e-4)
        assert np.vdot(x, apply_jit(stats, x)) >= 0


def test_smooth_solves_the_system(rng):
    img = rng.random((9, 8, 3)).astype(np.float32)
    x = rng.random((9, 8, 3)).astype(np.float32)
    lam, eps = 0.5, 1e-4
    out = matting.smooth(img, x, lam, eps=eps, tol=1e-6, max_iter=300)
    a = (sp.identity(9 * 8) + lam * levin_laplacian(img, eps)).tocsc()
    ref = np.stack([spla.spsolve(a, x[..., c].astype(np.float64).ravel()) for c in range(3)], -1)
    assert float(out.residual) <= 1e-5
    assert 0 < int(out.iterations) < 300
    assert rel_err(out.y, ref.reshape(x.shape)) <= 1e-5
    assert rel_err(x, ref.reshape(x.shape)) > 1e-2  # (the smoothing did something)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="content"):
        matting.matting_stats(np.zeros((5, 5)))
    with pytest.raises(ValueError, match="radius 1"):
        matting.matting_stats(np.zeros((2, 5, 3)))
    stats = matting.matting_stats(np.zeros((5, 5, 3)))
    with pytest.raises(ValueError, match="x: expected"):
        matting.matting_apply(stats, jnp.zeros((4, 5, 3)))


def share_ref(content, output, eps, r=1):
    """The measure with a least-squares fit per window in float64 NumPy: ridge-regularised
    slopes on the centred colours, residual energy R, variance energy V, and the fit's
    degrees of freedom tr(2H - H^2) from its hat matrix H."""
    c, x = np.asarray(content, np.float64), np.asarray(output, np.float64)
    h, w, _ = c.shape
    s = 2 * r + 1
    num = den = 0.0
    for y0 in range(h - s + 1):
        for x0 in range(w - s + 1):
            d = c[y0 : y0 + s, x0 : x0 + s].reshape(s * s, 3)
            t = x[y0 : y0 + s, x0 : x0 + s].reshape(s * s, -1)
            d, t = d - d.mean(0), t - t.mean(0)
            m = np.linalg.inv(d.T @ d + eps * np.eye(3))
            hat = d @ m @ d.T
            resid = np.sum((t - hat @ t) ** 2)
            dof = np.trace(2 * hat - hat @ hat)
            num += resid * (s * s - 1) / (s * s - 1 - dof)
            den += np.sum(t**2)
    return num / den


@pytest.mark.parametrize("eps, r", [(1e-4, 1), (1e-2, 1), (1e-4, 2)])
def test_unexplained_share_matches_per_window_least_squares(rng, eps, r):
    content = smooth_image(rng, 9, 11)
    output = np.clip(content @ rng.uniform(-1, 1, (3, 3)) + 0.2 * rng.random((9, 11, 3)), 0, 1)
    got = float(matting.unexplained_share(content, output, eps, radius=r))
    assert got == pytest.approx(share_ref(content, output, eps, r), rel=1e-4)


def test_unexplained_share_is_zero_for_recolourings_and_one_for_noise(rng):
    content = smooth_image(rng, 32, 40)
    yy = np.linspace(0, 1, 32)[:, None, None]
    recoloured = content @ rng.uniform(-1, 1, (3, 3)) + 0.3
    assert float(matting.unexplained_share(content, content)) < 1e-4
    assert float(matting.unexplained_share(content, recoloured)) < 1e-4
    # b drifting across the image: within a window the drift is what no colour fit explains
    assert float(matting.unexplained_share(content, recoloured + 0.2 * yy)) < 1e-2
    noise = rng.random(content.shape)
    assert float(matting.unexplained_share(content, noise)) == pytest.approx(1.0, abs=0.05)
    half = 0.5 * recoloured + 0.1 * noise  # (some detail explained, some not)
    assert 0.05 < float(matting.unexplained_share(content, half)) < 0.95
    assert float(matting.unexplained_share(content, np.full_like(content, 0.4))) == 0.0


def test_the_fits_minimum_is_the_matting_energy(rng):
    content, x = smooth_image(rng, 10, 12), rng.random((10, 12, 3)).astype(np.float32)
    stats = matting.matting_stats(content, 1e-4)
    r, v, e = matting.affine_residuals(stats, x, 1e-4)
    energy = float(matting.matting_energy(stats, x)) * 10 * 12
    assert float(np.sum(e)) == pytest.approx(energy, rel=1e-4)
    assert np.all(np.asarray(r) <= np.asarray(e) + 1e-6) and np.all(np.asarray(e) <= v + 1e-6)


def test_the_energys_custom_gradient_is_autodiffs_for_the_statistics_too(rng):
    """The VJP takes the image's gradient from the forward pass; the content statistics' one
    (for whoever differentiates the targets) must still be the autodiff of x^T L x / N."""
    stats = matting.matting_stats(rng.random((7, 8, 3)).astype(np.float32), 1e-3)
    x = jnp.asarray(rng.random((7, 8, 3)), jnp.float32)
    plain = jax.grad(lambda s, v: jnp.vdot(v, matting.matting_apply(s, v)) / 56, (0, 1))
    for a, b in zip(jax.tree.leaves(plain(stats, x)), jax.tree.leaves(
            jax.grad(matting.matting_energy, (0, 1))(stats, x))):  # fmt: skip
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
