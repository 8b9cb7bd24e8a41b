"""Seamless tiles (issue 13): circular convolutions, wrap-around TV, and the seam they remove."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.stylize import synthesize_texture


def _np_circular_conv(x, k):
    """Independent reference: (H, W, I) * (3, 3, I, O) on a torus, by rolling the input."""
    out = np.zeros(x.shape[:2] + (k.shape[-1],))
    for dy in range(3):
        for dx in range(3):
            shifted = np.roll(x, (1 - dy, 1 - dx), axis=(0, 1))  # shifted[i, j] = x[i+dy-1, j+dx-1]
            out += shifted @ k[dy, dx]
    return out


def test_circular_conv_matches_numpy_and_has_exact_gradient(rng):
    x = rng.standard_normal((1, 7, 9, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    kt = vgg.backward_kernel(jnp.asarray(k))
    got = vgg.conv3x3_wrap(jnp.asarray(x), jnp.asarray(k), kt)
    np.testing.assert_allclose(got[0], _np_circular_conv(x[0], k), rtol=1e-5, atol=1e-5)

    def f(x, k):
        return vgg.conv3x3_wrap(x, k, vgg.backward_kernel(k))

    check_grads(f, (jnp.asarray(x), jnp.asarray(k)), order=1, modes=("rev",), atol=2e-2, rtol=2e-2)


def test_wrapped_network_commutes_with_circular_shifts(small_vars):
    # On a torus whose sides are multiples of 16, shifting the image by 16 px shifts conv5_1 by one
    # position: nothing depends on where the border is. The plain network's SAME padding does.
    img = jax.random.uniform(jax.random.PRNGKey(1), (32, 48, 3))
    shifted = jnp.roll(img, (16, -16), axis=(0, 1))
    for wrap in (True, False):
        net = vgg.VGG19(channels=vgg.channels_of(small_vars), wrap=wrap)
        apply = jax.jit(net.apply, static_argnums=2)  # one program (op by op: ~50 small ones)
        a = apply(small_vars, img, ("conv5_1",))["conv5_1"]
        b = apply(small_vars, shifted, ("conv5_1",))["conv5_1"]
        err = float(jnp.max(jnp.abs(jnp.roll(a, (1, -1), axis=(0, 1)) - b)))
        if wrap:
            assert err < 1e-4 * float(jnp.max(jnp.abs(a)))
        else:
            assert err > 1e-2 * float(jnp.max(jnp.abs(a)))


def test_wrap_tv_loss_against_numpy(rng):
    x = rng.standard_normal((5, 6, 3)).astype(np.float32)
    dy = x - np.concatenate([x[-1:], x[:-1]], 0)
    dx = x - np.concatenate([x[:, -1:], x[:, :-1]], 1)
    want = np.mean(dy**2) + np.mean(dx**2)
    np.testing.assert_allclose(losses.tv_loss(jnp.asarray(x), wrap=True), want, rtol=1e-5)
    assert abs(float(losses.tv_loss(jnp.asarray(x))) - want) > 1e-3  # the plain one differs


def seam_ratio(x: np.ndarray) -> float:
    """Mean |neighbour difference| across the wrap edge over the largest of the interior's
    columns (rows), worst direction. On a torus the edge is one more column: a seamless image's
    ratio is about 1 or below (0.7-1.05 for the random networks of keys 0-7), a plain run's
    10-19. (Against the interior's mean instead, the edge column's own spread, one column of 32,
    gave 0.98-1.68 by key: a threshold there measured the draw, not the seam.)"""
    cols = np.abs(np.diff(x, axis=1)).mean(axis=(0, 2))
    rows = np.abs(np.diff(x, axis=0)).mean(axis=(1, 2))
    sx = np.abs(x[:, 0] - x[:, -1]).mean() / cols.max()
    sy = np.abs(x[0] - x[-1]).mean() / rows.max()
    return float(max(sx, sy))


@pytest.mark.parametrize("tileable", [True, False])
def test_texture_repeats_without_seam(small_vars, tileable):
    style = np.random.default_rng(0).uniform(size=(32, 32, 3)).astype(np.float32)
    r = synthesize_texture(
        style, (32, 32), variables=small_vars, iterations=100, chunk=100, tileable=tileable
    )
    ratio = seam_ratio(np.asarray(r.image))
    if tileable:
        assert ratio < 1.3
    else:
        assert ratio > 5.0  # the plain run's edge is clearly different from its interior


def test_tileable_stylization_runs_and_option_is_checked(small_vars, rng):
    content = rng.uniform(size=(32, 32, 3)).astype(np.float32)
    from jaxnst import stylize

    r = stylize(content, content, variables=small_vars, iterations=3, tileable=True, init="noise")
    assert np.isfinite(np.asarray(r.image)).all()
    with pytest.raises(ValueError, match="tileable"):
        stylize(content, content, variables=small_vars, iterations=1, tileable="yes")
