"""The photorealism term tile by tile (issue 30): tiles with a halo of 2r give the untiled
Matting Laplacian's product, energy and gradients to float rounding, alone and inside the tiled
objective; a tiled run with the term follows the untiled one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.loss import losses, matting, matting_tiles
from jaxnst.model import vgg
from jaxnst.optim import optimize
from jaxnst.pipeline.options import CONTENT_LAYERS, STYLE_LAYERS
from jaxnst.stylize import stylize


def _pair(hw, seed=0):
    rng = np.random.default_rng(seed)
    content = jnp.asarray(smooth_image(rng, *hw))
    return content, jnp.asarray(rng.uniform(size=(*hw, 3)), jnp.float32)


@pytest.mark.parametrize(
    "hw,tile,radius",
    [((37, 29), 8, 1), ((23, 31), 5, 2), ((20, 20), 64, 1)],
)  # ragged last tiles, odd sides, a wider window, one tile larger than the image
def test_tiles_equal_the_whole_product_energy_and_gradients(hw, tile, radius):
    content, x = _pair(hw)
    s = matting.matting_stats(content, radius=radius)
    # (jit: eagerly, each of the unrolled window sums compiled on its own took seconds)
    want = jax.jit(matting.matting_apply)(s, x)
    got = jax.jit(matting_tiles.apply, static_argnums=2)(s, x, tile)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * float(jnp.abs(want).max()))
    e0, g0 = jax.jit(jax.value_and_grad(matting.matting_energy, 1))(s, x)
    e1, g1 = jax.jit(jax.value_and_grad(matting_tiles.energy, 1), static_argnums=2)(s, x, tile)
    np.testing.assert_allclose(float(e1), float(e0), rtol=2e-6)
    np.testing.assert_allclose(g1, g0, rtol=0, atol=2e-6 * float(jnp.abs(g0).max()))


def test_the_statistics_cotangent_is_the_untiled_one():
    """As matting_energy's, exact (unused in a descent, where XLA drops it)."""
    content, x = _pair((21, 18), seed=2)
    s = matting.matting_stats(content)
    want = jax.jit(jax.grad(matting.matting_energy))(s, x)
    got = jax.jit(jax.grad(matting_tiles.energy), static_argnums=2)(s, x, 8)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * float(jnp.abs(b).max()))


@pytest.mark.parametrize("hw,tile,radius", [((37, 29), 8, 1), ((20, 23), 64, 2)])
def test_the_statistics_tile_by_tile_are_the_whole_images(hw, tile, radius):
    content, _ = _pair(hw, seed=5)
    want = jax.jit(matting.matting_stats, static_argnums=(1, 2))(content, 1e-7, radius)
    got = jax.jit(matting_tiles.stats, static_argnums=(1, 2, 3))(content, tile, 1e-7, radius)
    for a, b in zip(got, want):  # (the same arithmetic per window: measured bit for bit)
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * float(jnp.abs(b).max()))


def test_a_tile_sees_only_its_halo():
    """Changing content and image beyond 2r of a tile leaves its product unchanged: the halo is
    all it reads (here: a pixel 2r + 1 outside moves nothing, one 2r outside does)."""
    content, x = _pair((24, 24), seed=3)
    s = matting.matting_stats(content)
    assert matting_tiles.halo(s) == 2
    base = matting.matting_apply(s, x)[8:16, 8:16]
    far = matting.matting_apply(s, x.at[5, 10].add(0.5))[8:16, 8:16]
    near = matting.matting_apply(s, x.at[6, 10].add(0.5))[8:16, 8:16]
    np.testing.assert_array_equal(far, base)
    assert float(jnp.abs(near - base).max()) > 1e-3


def test_the_tiled_objective_adds_the_term_exactly(small_vars):
    """optimize.parts_fn with tile= and the term: values and the image's gradient equal the
    untiled objective's (the network's tiles and the term's tiles together)."""
    layers = CONTENT_LAYERS + STYLE_LAYERS
    content, img = _pair((48, 37), seed=1)
    style = jnp.asarray(smooth_image(np.random.default_rng(2), 40, 40))
    net = vgg.VGG19(channels=vgg.channels_of(small_vars))
    apply = jax.jit(net.apply, static_argnums=2)
    t = losses.make_targets(
        apply(small_vars, content, layers), apply(small_vars, style, layers),
        CONTENT_LAYERS, STYLE_LAYERS,
    )._replace(matting=matting.matting_stats(content))  # fmt: skip
    w = losses.Weights(*(jnp.float32(v) for v in (1.0, 30.0, 0.5)), photoreal=jnp.float32(2e6))
    cfg = optimize.Config(layers=layers, channels=vgg.channels_of(small_vars))
    run_vars = vgg.with_backward_kernels(small_vars)

    def total(x, c):
        return optimize.parts_fn(x, run_vars, t, w, c).total

    v0, g0 = jax.jit(jax.value_and_grad(lambda x: total(x, cfg)))(img)
    v1, g1 = jax.jit(jax.value_and_grad(lambda x: total(x, cfg._replace(tile=32))))(img)
    plain = optimize.parts_fn(img, run_vars, t._replace(matting=None), w, cfg).total
    assert float(v0 - plain) > 0.1 * float(v0)  # (the term is a sizeable part of the total)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-5)
    assert float(jnp.linalg.norm(g1 - g0) / jnp.linalg.norm(g0)) <= 1e-5


def test_a_tiled_run_with_the_term_equals_the_untiled_run(small_vars):
    """Through the API, as tests/test_print_tiled.py compares Gatys runs: the same seeded L-BFGS
    descent with tile=32 (2 x 2 tiles) and without, the photorealism term on."""
    content, _ = _pair((64, 50), seed=4)
    style = smooth_image(np.random.default_rng(5), 48, 48)
    kw = dict(variables=small_vars, iterations=6, style_weight=30.0, photoreal_weight=1e6)
    a = stylize(np.asarray(content), style, **kw)
    b = stylize(np.asarray(content), style, tile=32, **kw)
    zero = stylize(np.asarray(content), style, **{**kw, "photoreal_weight": 0.0})
    np.testing.assert_allclose(b.history["total"], a.history["total"], rtol=1e-5)
    # Measured 4e-7 apart, while the term moves the image by 1.2e-2 (the zero run).
    np.testing.assert_allclose(np.asarray(b.image), np.asarray(a.image), atol=1e-5)
    assert np.abs(np.asarray(zero.image) - np.asarray(a.image)).max() > 5e-3
