"""Options that trade memory or precision for speed: rematerialisation and bfloat16."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.optim import optimize
from jaxnst.stylize import STYLE_LAYERS, stylize

LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv4_2", "conv5_1")


def _objective(variables, content, style, **config):
    model = vgg.VGG19(channels=vgg.channels_of(variables))
    cf = model.apply(variables, content, ("conv4_2",))
    sf = model.apply(variables, style, STYLE_LAYERS)
    targets = losses.make_targets(cf, sf, ("conv4_2",), STYLE_LAYERS)
    w = losses.Weights(jnp.float32(1.0), jnp.float32(1e-2), jnp.float32(1.0))
    cfg = optimize.Config(layers=LAYERS, channels=vgg.channels_of(variables), **config)
    return lambda x: optimize._total(x, variables, targets, w, cfg)


def test_remat_gives_the_same_value_and_gradient(small_vars, rng):
    content, style = smooth_image(rng, 48, 40), smooth_image(rng, 40, 48)
    plain = _objective(small_vars, content, style)
    remat = _objective(small_vars, content, style, remat=True)
    x = jnp.asarray(content) + 0.05
    v1, g1 = jax.jit(jax.value_and_grad(plain))(x)
    v2, g2 = jax.jit(jax.value_and_grad(remat))(x)
    np.testing.assert_allclose(v2, v1, rtol=1e-6)
    np.testing.assert_allclose(g2, g1, rtol=1e-5, atol=1e-6 * float(jnp.abs(g1).max()))
    # ...and it is really rematerialised: one checkpoint per block in the program.
    jaxpr = str(jax.make_jaxpr(jax.grad(remat))(x))
    assert jaxpr.count("checkpoint[") + jaxpr.count("remat") >= 5
    assert "checkpoint[" not in str(jax.make_jaxpr(jax.grad(plain))(x))


def test_remat_run_equals_plain_run(small_vars, rng):
    content, style = smooth_image(rng, 32, 32), smooth_image(rng, 32, 32)
    kw = dict(
        variables=small_vars,
        optimizer="adam",
        iterations=8,
        chunk=4,
        learning_rate=0.05,
        style_weight=1e-2,
        tv_weight=1.0,
    )
    a = stylize(content, style, **kw)
    b = stylize(content, style, remat=True, **kw)
    np.testing.assert_allclose(b.image, a.image, atol=1e-5)


def test_bf16_activations_are_bf16_and_close_to_fp32(real_vars, rng):
    real_vars = real_vars[0]  # (variables, digest)
    img = jnp.asarray(smooth_image(rng, 64, 64))
    f32 = vgg.VGG19().apply(real_vars, img, LAYERS)
    b16 = vgg.VGG19(precision="bf16").apply(real_vars, img, LAYERS)
    for name in LAYERS:
        assert b16[name].dtype == jnp.bfloat16
        err = float(
            jnp.abs(b16[name].astype(jnp.float32) - f32[name]).max() / jnp.abs(f32[name]).max()
        )
        assert err < 0.05, (name, err)
        g32, g16 = losses.gram(f32[name]), losses.gram(b16[name])
        assert g16.dtype == jnp.float32
        assert float(jnp.abs(g16 - g32).max() / jnp.abs(g32).max()) < 0.02, name


def test_bad_precision_is_named(small_vars, rng):
    img = smooth_image(rng, 32, 32)
    with pytest.raises(ValueError, match="precision 'fp16'"):
        stylize(img, img, variables=small_vars, precision="fp16", iterations=1)


@pytest.mark.parametrize("kind", ["gram", "wasserstein", "masks"])
def test_per_layer_terms_add_up_to_the_objective(rng, kind):
    """The rematerialised path assembles the loss from per-layer terms; it must equal
    losses.objective for every style-loss kind (and a layer used for content and style)."""
    names = ("a", "b", "c")
    feats = {n: jnp.asarray(rng.standard_normal((6, 5, 4)), jnp.float32) for n in names}
    other = {n: jnp.asarray(rng.standard_normal((7, 6, 4)), jnp.float32) for n in names}
    content = {"b": other["b"][:6, :5]}
    if kind == "gram":
        t = losses.Targets(content=content, grams={n: losses.gram(other[n]) for n in ("a", "b")})
    elif kind == "wasserstein":
        t = losses.Targets(
            content=content,
            grams={},
            moments={n: losses.wasserstein_target(other[n]) for n in ("a", "c")},
        )
    else:
        masks = {n: jnp.asarray(rng.uniform(size=(2, 6, 5)), jnp.float32) for n in ("a", "c")}
        grams = {n: jnp.stack([losses.gram(other[n])] * 2) for n in ("a", "c")}
        t = losses.Targets(content=content, grams=grams, masks=masks)
    w = losses.Weights(jnp.float32(0.7), jnp.float32(1.3), jnp.float32(0.2))
    img = jnp.asarray(rng.uniform(size=(8, 8, 3)), jnp.float32)
    want = losses.objective(img, feats, t, w)
    terms = {n: losses.layer_terms(n, feats[n], t) for n in names}
    got = losses.objective_from_terms(img, terms, t, w)
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-6)
