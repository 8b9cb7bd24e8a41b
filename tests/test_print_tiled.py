"""The exact tiled objective (issue 13): tile by tile, the same loss and gradient as untiled."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst.loss import losses, tiled
from jaxnst.model import vgg
from jaxnst.optim import optimize
from jaxnst.pipeline.options import CONTENT_LAYERS, STYLE_LAYERS
from jaxnst.stylize import stylize

LAYERS = CONTENT_LAYERS + STYLE_LAYERS


def test_halo_covers_the_measured_receptive_field(small_vars):
    # Independent of the formula: where does one conv5_1 activation's gradient reach?
    net = vgg.VGG19(channels=vgg.channels_of(small_vars))

    def centre(x):
        return jnp.sum(net.apply(small_vars, x, ("conv5_1",))["conv5_1"][8, 8])

    # jit: one program; eagerly, every operation was compiled on its own (1 s against 9 s).
    g = jax.jit(jax.grad(centre))(jax.random.uniform(jax.random.PRNGKey(0), (256, 256, 3)))
    rows = np.nonzero(np.abs(np.asarray(g)).sum((1, 2)))[0]
    reach = max(128 + 8 - rows.min(), rows.max() - (128 + 7))  # from the window's 16 px block
    assert reach <= tiled.radius("conv5_1") <= tiled.halo(LAYERS)
    assert tiled.radius("conv5_1") == 85 and tiled.halo(LAYERS) == 96


def _problem(variables, hw, layers=LAYERS, content_layers=CONTENT_LAYERS, seed=1):
    ks = jax.random.split(jax.random.PRNGKey(seed), 3)
    img, content = jax.random.uniform(ks[0], (*hw, 3)), jax.random.uniform(ks[1], (*hw, 3))
    style = jax.random.uniform(ks[2], (40, 56, 3))
    net = vgg.VGG19(channels=vgg.channels_of(variables))
    apply = jax.jit(net.apply, static_argnums=2)
    t = losses.make_targets(
        apply(variables, content, layers),
        apply(variables, style, layers),
        content_layers,
        [n for n in layers if n not in content_layers],
    )
    return img, t


def _compare(variables, img, targets, layers, tile, weights=(1.0, 30.0, 0.5)):
    run_vars = vgg.with_backward_kernels(variables)
    cfg = optimize.Config(layers=layers, channels=vgg.channels_of(variables))
    w = losses.Weights(*(jnp.float32(x) for x in weights))

    def plain(x):
        return optimize.parts_fn(x, run_vars, targets, w, cfg)

    def tiles(x):
        return optimize.parts_fn(x, run_vars, targets, w, cfg._replace(tile=tile))

    v0, g0 = jax.jit(plain)(img), jax.jit(jax.grad(lambda x: plain(x).total))(img)
    v1 = jax.jit(tiles)(img)
    g1 = jax.jit(jax.grad(lambda x: tiles(x).total))(img)
    for a, b in zip(v0, v1):
        assert abs(float(a) - float(b)) <= 1e-4 * abs(float(a)) + 1e-7, (v0, v1)
    err = float(jnp.linalg.norm(g1 - g0) / jnp.linalg.norm(g0))
    assert err <= 1e-4, err
    return err


@pytest.mark.parametrize(
    "hw,tile",
    [((64, 48), 32), ((70, 50), 32), ((48, 37), 64)],  # ragged last tile, odd sides; one tile
)
def test_tiled_equals_untiled_small_weights(small_vars, hw, tile):
    img, t = _problem(small_vars, hw)
    _compare(small_vars, img, t, LAYERS, tile)


def test_tiled_equals_untiled_shallow_layers(small_vars):
    layers = ("conv2_2", "conv1_1", "conv2_1", "conv3_1")
    img, t = _problem(small_vars, (96, 64), layers, ("conv2_2",))
    assert tiled.halo(layers) == 16
    _compare(small_vars, img, t, layers, 32)


@pytest.mark.slow  # real weights at 192x160
def test_tiled_equals_untiled_real_weights(real_vars):
    variables = real_vars[0] if isinstance(real_vars, tuple) else real_vars
    img, t = _problem(variables, (192, 160))
    _compare(variables, img, t, LAYERS, 96, weights=(1.0, 3e-4, 1e4))


def test_tiled_lbfgs_run_equals_untiled(small_vars):
    rng = np.random.default_rng(0)
    content = rng.uniform(size=(64, 50, 3)).astype(np.float32)
    style = rng.uniform(size=(48, 48, 3)).astype(np.float32)
    kw = dict(variables=small_vars, iterations=6, style_weight=30.0)
    a = stylize(content, style, **kw)
    b = stylize(content, style, tile=32, **kw)
    np.testing.assert_allclose(b.history["total"], a.history["total"], rtol=1e-3)
    np.testing.assert_allclose(np.asarray(b.image), np.asarray(a.image), atol=2e-3)


@pytest.mark.parametrize("hw", [(70, 50), (48, 37)])  # ragged last tiles, odd sides
def test_targets_tile_by_tile_equal_the_whole_image(small_vars, hw):
    """A tiled run's targets come from the same tiles (the whole image's forward pass was the
    run's peak at print size); they equal the untiled programs' within float rounding."""
    from jaxnst.pipeline import prepare

    ch = vgg.channels_of(small_vars)
    img = jnp.asarray(np.random.default_rng(1).uniform(size=(*hw, 3)), jnp.float32)
    want_g = prepare._style_grams(img, small_vars, LAYERS, "max", ch)
    got_g = tiled.grams(img, small_vars, LAYERS, "max", 32)
    content = ("conv4_2", "conv2_1")
    want_f = prepare._features(img, small_vars, content, "max", ch)
    got_f = tiled.features(img, small_vars, content, "max", 32)
    for n in LAYERS:
        np.testing.assert_allclose(
            got_g[n], want_g[n], rtol=1e-5, atol=1e-6 * float(jnp.abs(want_g[n]).max())
        )
    for n in content:
        assert got_f[n].shape == want_f[n].shape
        np.testing.assert_allclose(got_f[n], want_f[n], rtol=1e-5, atol=1e-5)


def test_tile_option_is_checked(small_vars):
    img = np.zeros((40, 40, 3), np.float32)
    with pytest.raises(ValueError, match="tile must be a positive multiple of 16"):
        stylize(img, img, variables=small_vars, iterations=1, tile=20)
    with pytest.raises(ValueError, match="(?i)gram style loss"):
        stylize(img, img, variables=small_vars, iterations=1, tile=16, style_loss="wasserstein")
