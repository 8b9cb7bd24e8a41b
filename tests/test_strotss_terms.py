"""The STROTSS terms (jaxnst.loss.strotss) against float64 NumPy references written here with
loops and broadcasting, and their gradients against central finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst.loss import strotss as st

YUV = np.array(
    [
        [0.577350, 0.577350, 0.577350],
        [-0.577350, 0.788675, -0.211325],
        [-0.577350, -0.211325, 0.788675],
    ]
)


def np_cos(x, y):
    c = np.empty((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            c[i, j] = 1 - x[i] @ y[j] / (np.linalg.norm(x[i]) * np.linalg.norm(y[j]))
    return c


def np_euc(x, y):
    d2 = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return np.sqrt(np.clip(d2, 1e-5, 1e5) / x.shape[1])


def np_remd(x, y, cost=np_cos):
    c = cost(x, y)
    return max(c.min(1).mean(), c.min(0).mean())


def np_palette(x, y):
    return np_remd(x @ YUV.T, y @ YUV.T, lambda a, b: np_cos(a, b) + np_euc(a, b))


def np_moments(x, y):
    def cov(a):
        d = a - a.mean(0)
        return np.einsum("ni,nj->ij", d, d) / (len(a) - 1)

    return np.abs(x.mean(0) - y.mean(0)).mean() + np.abs(cov(x) - cov(y)).mean()


def np_self_sim(x, c):
    mx, mc = np_cos(x, x), np_cos(c, c)
    return np.abs(mx / mx.sum(0) - mc / mc.sum(0)).mean()  # paper: D_ij / sum_i D_ij


def np_strotss(o, c, s, alpha, mw):
    content = np_self_sim(o, c)
    pal = np_palette(o[:, :3], s[:, :3])
    style = np_remd(o, s) + mw * (np_moments(o, s) + pal / max(alpha, 1))
    return (alpha * content + style) / (alpha + 1 + mw), content, style


def np_bilinear(fmap, y, x):
    h, w = fmap.shape[:2]
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    fy, fx = y - y0, x - x0
    out = 0
    for yi, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for xi, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            out = out + wy * wx * fmap[min(max(yi, 0), h - 1), min(max(xi, 0), w - 1)]
    return out


@pytest.fixture
def sets(rng):
    x, y = rng.uniform(-1, 1, (7, 5)), rng.uniform(-1, 1, (11, 5))
    return x.astype(np.float32), y.astype(np.float32)


def f32(*a):
    return [jnp.asarray(v, jnp.float32) for v in a]


def test_costs_match_numpy(sets):
    x, y = sets
    np.testing.assert_allclose(st.cosine_cost(*f32(x, y)), np_cos(x, y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(st.euclidean_cost(*f32(x, y)), np_euc(x, y), rtol=1e-5)
    z = np.zeros((1, 5), np.float32)  # a zero vector is guarded: finite, cosine cost 1
    np.testing.assert_allclose(st.cosine_cost(*f32(z, y)), 1.0)
    assert np.isfinite(np.asarray(jax.grad(lambda a: st.cosine_cost(a, a).sum())(z))).all()
    # identical points: the clip's floor, not a rounding error's square root
    np.testing.assert_allclose(st.euclidean_cost(*f32(y, y))[0, 0], np.sqrt(1e-5 / 5), rtol=1e-3)


@pytest.mark.parametrize("chunk", [None, 1, 4, 11, 50])
def test_remd_matches_numpy(sets, chunk):
    x, y = sets
    for cost, np_cost in [(st.cosine_cost, np_cos), (st.euclidean_cost, np_euc)]:
        got = st.remd(*f32(x, y), cost_fn=cost, chunk=chunk)
        np.testing.assert_allclose(got, np_remd(x, y, np_cost), rtol=1e-5)
        got = st.remd(*f32(y, x), cost_fn=cost, chunk=chunk)  # the other side of the max
        np.testing.assert_allclose(got, np_remd(y, x, np_cost), rtol=1e-5)
    with pytest.raises(ValueError):
        st.remd(*f32(x, y), chunk=0)


def test_remd_takes_the_larger_side(rng):
    x = rng.uniform(0.5, 1, (3, 4))  # a few points, all near the many y: rows cheap, columns not
    y = np.concatenate([x + 0.01, rng.uniform(-1, 1, (20, 4))])
    c = np_cos(x, y)
    assert c.min(0).mean() > 3 * c.min(1).mean()
    np.testing.assert_allclose(st.remd(*f32(x, y), chunk=6), c.min(0).mean(), rtol=1e-5)


def test_palette_moments_self_similarity_match_numpy(rng):
    x, y = rng.uniform(0, 1, (7, 3)), rng.uniform(0, 1, (11, 3))
    np.testing.assert_allclose(st.palette(*f32(x, y)), np_palette(x, y), rtol=1e-5)
    np.testing.assert_allclose(st.palette(*f32(x, y), chunk=3), np_palette(x, y), rtol=1e-5)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((11, 5))
    np.testing.assert_allclose(st.moments(*f32(a, b)), np_moments(a, b), rtol=1e-5)
    c = rng.standard_normal((7, 5))
    np.testing.assert_allclose(st.self_similarity(*f32(a, c)), np_self_sim(a, c), rtol=1e-5)


def test_self_similarity_normalises_by_column_sums(rng):
    # The cosine self-distance is symmetric, so row normalisation is the transpose of column
    # normalisation and mean |.| cannot tell them apart; a total-sum normalisation or none can be.
    # One point opposite the rest makes the column sums unequal.
    x, c = rng.standard_normal((6, 4)), rng.standard_normal((6, 4))
    x[0] = -x[1:].sum(0)
    mx, mc = np_cos(x, x), np_cos(c, c)
    by_total = np.abs(mx / mx.sum() - mc / mc.sum()).mean()
    unnormalised = np.abs(mx - mc).mean()
    got = float(st.self_similarity(*f32(x, c)))
    np.testing.assert_allclose(got, np_self_sim(x, c), rtol=1e-5)
    assert abs(got - by_total) > 1e-3 and abs(got - unnormalised) > 1e-3
    # The matrix itself: every column sums to 1, the rows do not.
    m = np.asarray(st._column_normalised(st.cosine_cost(*f32(x, x))))
    np.testing.assert_allclose(m.sum(0), 1.0, rtol=1e-5)
    assert np.ptp(m.sum(1)) > 0.1


@pytest.mark.parametrize("alpha, mw", [(16.0, 1.0), (0.5, 2.0)])
def test_strotss_loss_matches_numpy(rng, alpha, mw):
    o, c, s = rng.uniform(0, 1, (7, 6)), rng.uniform(0, 1, (7, 6)), rng.uniform(0, 1, (11, 6))
    got = st.strotss_loss(*f32(o, c, s), alpha, moment_weight=mw)
    for g, e in zip(got, np_strotss(o, c, s, alpha, mw)):
        assert g.dtype == jnp.float32
        np.testing.assert_allclose(g, e, rtol=1e-5)
    chunked = st.strotss_loss(*f32(o, c, s), alpha, moment_weight=mw, chunk=4)
    np.testing.assert_allclose(chunked, got, rtol=1e-6)


def hc_inputs(rng):
    image = rng.uniform(0, 1, (8, 12, 3))
    feats = [rng.standard_normal(shape) for shape in [(8, 12, 2), (4, 6, 3), (2, 3, 4)]]
    pts = [(0, 0), (7, 11), (7, 0), (0, 11), (3, 5), (6, 9), (5, 10), (2.5, 7.25), (7.0, 10.5)]
    return image, feats, np.array(pts, np.float32)


def test_hypercolumns_match_numpy_bilinear(rng):
    image, feats, pts = hc_inputs(rng)
    got = st.hypercolumns(jnp.asarray(image), [jnp.asarray(f) for f in feats], jnp.asarray(pts))
    assert got.shape == (len(pts), 3 + 2 + 3 + 4)
    for p, (y, x) in enumerate(pts):
        want = [np_bilinear(image, y, x)] + [
            np_bilinear(f, y / s, x / s) for f, s in zip(feats, [1, 2, 4])
        ]
        np.testing.assert_allclose(got[p], np.concatenate(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[0, 3:5], feats[0][0, 0], rtol=1e-6)  # integer point, stride 1
    np.testing.assert_allclose(got[1, -4:], feats[2][1, 2], rtol=1e-6)  # clamped corner


def test_hypercolumn_stride_with_odd_sizes(rng):
    # VGG's VALID pooling of a 9 x 13 image: 4 x 6, then 2 x 3; the strides stay 2 and 4.
    image = rng.uniform(0, 1, (9, 13, 3))
    f2, f4 = rng.standard_normal((4, 6, 2)), rng.standard_normal((2, 3, 2))
    pts = np.array([[8, 12], [5, 6]], np.float32)
    got = st.hypercolumns(*f32(image), f32(f2, f4), jnp.asarray(pts))
    for p, (y, x) in enumerate(pts):
        np.testing.assert_allclose(got[p, 3:5], np_bilinear(f2, y / 2, x / 2), rtol=1e-5)
        np.testing.assert_allclose(got[p, 5:], np_bilinear(f4, y / 4, x / 4), rtol=1e-5)
    with pytest.raises(ValueError):
        st.hypercolumns(*f32(image), f32(rng.standard_normal((10, 13, 2))), jnp.asarray(pts))


def assert_grad_matches_fd(f, args, rng, h=1e-6, rtol=1e-5):
    """d f / d args[k] along random directions against central differences, in float64."""
    args = [jnp.asarray(a, jnp.float64) for a in args]
    grads = jax.jit(jax.grad(f, argnums=tuple(range(len(args)))))(*args)
    f = jax.jit(f)
    for k, g in enumerate(grads):
        for _ in range(2):
            v = rng.standard_normal(args[k].shape)
            plus, minus = list(args), list(args)
            plus[k], minus[k] = args[k] + h * v, args[k] - h * v
            fd = (f(*plus) - f(*minus)) / (2 * h)
            np.testing.assert_allclose(np.sum(np.asarray(g) * v), fd, rtol=rtol, atol=1e-8)


def test_gradients_match_finite_differences(rng):
    x, y = rng.uniform(0, 1, (7, 5)), rng.uniform(0, 1, (11, 5))
    with jax.enable_x64(True):
        assert_grad_matches_fd(lambda a, b: st.remd(a, b), [x, y], rng)
        assert_grad_matches_fd(lambda a, b: st.remd(a, b, st.euclidean_cost, chunk=4), [x, y], rng)
        assert_grad_matches_fd(st.moments, [x, y], rng)
        assert_grad_matches_fd(lambda a, b: st.palette(a, b, chunk=5), [x[:, :3], y[:, :3]], rng)
        assert_grad_matches_fd(st.self_similarity, [x, y[:7]], rng)
        loss = lambda o, c, s: st.strotss_loss(o, c, s, 4.0, chunk=3)[0]  # noqa: E731
        assert_grad_matches_fd(loss, [x, y[:7], y], rng)


def test_hypercolumn_gradients_match_finite_differences(rng):
    image, feats, pts = hc_inputs(rng)
    w = rng.standard_normal((len(pts), 12))

    def f(img, a, b, c):
        return jnp.sum(w * st.hypercolumns(img, [a, b, c], jnp.asarray(pts)))

    with jax.enable_x64(True):
        assert_grad_matches_fd(f, [image, *feats], rng)


def test_sample_points(rng):
    key = jax.random.PRNGKey(3)
    p = np.asarray(st.sample_points(key, 5, 7, 20))
    assert p.shape == (20, 2) and p.dtype == np.float32
    assert (
        (p == np.round(p)).all() and (p >= 0).all() and (p[:, 0] < 5).all() and (p[:, 1] < 7).all()
    )
    assert len({tuple(q) for q in p}) == 20
    np.testing.assert_array_equal(st.sample_points(key, 5, 7, 20), p)
    assert not np.array_equal(st.sample_points(jax.random.PRNGKey(4), 5, 7, 20), p)
    every = np.asarray(st.sample_points(key, 5, 7, 35))
    assert len({tuple(q) for q in every}) == 35
    with pytest.raises(ValueError):
        st.sample_points(key, 5, 7, 36)
