import jax
import jax.numpy as jnp
import numpy as np
from jax.test_util import check_grads

from jaxnst.loss import losses


def np_gram_paper(f):
    x = f.reshape(-1, f.shape[-1]).astype(np.float64)
    return x.T @ x  # Gatys et al.: G_ij = sum_k F_ik F_jk (unnormalised)


def test_gram_matches_numpy(rng):
    f = rng.standard_normal((5, 7, 6)).astype(np.float32)
    np.testing.assert_allclose(losses.gram(jnp.asarray(f)), np_gram_paper(f) / 35, rtol=1e-5)


def test_style_layer_loss_equals_paper_formula(rng):
    f = rng.standard_normal((6, 4, 8)).astype(np.float32)
    s = rng.standard_normal((9, 3, 8)).astype(np.float32)  # the style may have another size
    n, m = f.shape[-1], f.shape[0] * f.shape[1]
    a_paper = np_gram_paper(s) * m / (s.shape[0] * s.shape[1])  # A for the same M
    expected = np.sum((np_gram_paper(f) - a_paper) ** 2) / (4 * n**2 * m**2)
    a = losses.gram(jnp.asarray(s))
    np.testing.assert_allclose(losses.style_layer_loss(jnp.asarray(f), a), expected, rtol=1e-4)


def test_content_loss_is_paper_half_sum_over_elements(rng):
    f, p = rng.standard_normal((2, 5, 4, 3)).astype(np.float32)
    expected = 0.5 * np.sum((f.astype(np.float64) - p) ** 2) / f.size
    np.testing.assert_allclose(
        losses.content_loss(jnp.asarray(f), jnp.asarray(p)), expected, rtol=1e-5
    )


def test_tv_loss(rng):
    img = rng.uniform(size=(6, 5, 3))
    dy = np.diff(img, axis=0)
    dx = np.diff(img, axis=1)
    expected = (dy**2).mean() + (dx**2).mean()
    np.testing.assert_allclose(losses.tv_loss(jnp.asarray(img, jnp.float32)), expected, rtol=1e-5)
    assert float(losses.tv_loss(jnp.ones((4, 4, 3)))) == 0.0


def test_style_loss_layer_weights_default_to_mean(rng):
    feats = {n: jnp.asarray(rng.standard_normal((4, 4, 3)), jnp.float32) for n in ("a", "b")}
    grams = {n: jnp.asarray(rng.standard_normal((3, 3)), jnp.float32) for n in ("a", "b")}
    each = [float(losses.style_layer_loss(feats[n], grams[n])) for n in ("a", "b")]
    np.testing.assert_allclose(losses.style_loss(feats, grams), np.mean(each), rtol=1e-6)


def test_objective_weights_and_empty_targets(rng):
    img = jnp.asarray(rng.uniform(size=(8, 8, 3)), jnp.float32)
    feats = {"c": jnp.asarray(rng.standard_normal((4, 4, 3)), jnp.float32)}
    p = jnp.asarray(rng.standard_normal((4, 4, 3)), jnp.float32)
    a = jnp.asarray(rng.standard_normal((3, 3)), jnp.float32)
    t = losses.Targets(content={"c": p}, grams={"c": a})
    w = losses.Weights(jnp.float32(2.0), jnp.float32(3.0), jnp.float32(5.0))
    parts = losses.objective(img, feats, t, w)
    lc = losses.content_loss(feats["c"], p)
    ls = losses.style_layer_loss(feats["c"], a)
    lt = losses.tv_loss(img)
    np.testing.assert_allclose(parts.total, 2 * lc + 3 * ls + 5 * lt, rtol=1e-6)
    texture = losses.objective(img, feats, t._replace(content={}), w)
    assert float(texture.content) == 0.0
    np.testing.assert_allclose(texture.total, 3 * ls + 5 * lt, rtol=1e-6)


def test_gradients_match_finite_differences(rng):
    f = jnp.asarray(
        rng.standard_normal((4, 3, 5)), jnp.float64 if jax.config.x64_enabled else jnp.float32
    )
    a = losses.gram(jnp.asarray(rng.standard_normal((3, 4, 5)), f.dtype))
    p = jnp.asarray(rng.standard_normal((4, 3, 5)), f.dtype)
    check_grads(
        lambda x: losses.style_layer_loss(x, a), (f,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2
    )
    check_grads(
        lambda x: losses.content_loss(x, p), (f,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2
    )
    check_grads(
        losses.tv_loss,
        (jnp.asarray(rng.uniform(size=(5, 4, 3)), f.dtype),),
        order=1,
        modes=["rev"],
        atol=2e-2,
        rtol=2e-2,
    )


def test_vmap_gram_equals_loop(rng):
    fs = jnp.asarray(rng.standard_normal((3, 4, 4, 5)), jnp.float32)
    batched = jax.vmap(losses.gram)(fs)
    for i in range(3):
        np.testing.assert_allclose(batched[i], losses.gram(fs[i]), rtol=1e-6)


def test_gram_gradient_matches_plain_autodiff_and_finite_differences(rng):
    # The custom VJP (one product X (D + D^T)) against autodiff of the plain formula, for a
    # non-symmetric cotangent, and against finite differences.
    f = jnp.asarray(rng.standard_normal((5, 7, 6)), jnp.float32)
    d = jnp.asarray(rng.standard_normal((6, 6)), jnp.float32)

    def plain(f):
        x = f.reshape(-1, f.shape[-1])
        return x.T @ x / x.shape[0]

    (got,) = jax.vjp(losses.gram, f)[1](d)
    (want,) = jax.vjp(plain, f)[1](d)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    check_grads(
        lambda f: jnp.sum(losses.gram(f) * d), (f,), order=1, modes=("rev",), atol=1e-2, rtol=1e-2
    )
