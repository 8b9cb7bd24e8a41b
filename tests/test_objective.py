"""The research API (issue 16): ``jaxnst.objective`` is the objective ``stylize`` descends, as pure
JAX functions; ``extra_loss`` adds a term inside the compiled loop; ``optimizer=`` takes any optax
transformation. References: stylize's own history and one Adam step taken by hand with optax,
finite differences, ``jaxnst.features`` for the extra term, and the TV term it duplicates."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import smooth_image

import jaxnst
from jaxnst.loss import losses

W = dict(style_weight=1e-2, tv_weight=1.0, content_weight=1.0)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    return smooth_image(rng, 32, 32), smooth_image(rng, 40, 36)


@pytest.fixture(scope="module")
def obj(small_vars, pair):
    return jaxnst.objective(*pair, variables=small_vars, init="noise", seed=3, **W)


def test_loss_is_what_stylize_descends_one_adam_step(small_vars, pair, obj):
    lr = 0.05
    r = jaxnst.stylize(
        *pair,
        variables=small_vars,
        init="noise",
        seed=3,
        optimizer="adam",
        learning_rate=lr,
        iterations=1,
        chunk=4,  # as the suite's other small runs: their compiled program serves
        **W,
    )
    # (one compiled program; op by op it was ~260 small ones, ~10 s of a test run)
    (total, parts), g = jax.jit(obj.value_and_grad)(obj.init_image)
    # stylize's history starts at the loss of its starting image, which is objective's init_image.
    np.testing.assert_allclose(r.history["total"][0], total, rtol=1e-5)
    for f in ("content", "style", "tv"):
        np.testing.assert_allclose(r.history[f][0], getattr(parts, f), rtol=1e-5)
    # One Adam step by hand, with optax, on value_and_grad: the image stylize returns.
    opt = optax.adam(lr)
    updates, _ = opt.update(g, opt.init(obj.init_image), obj.init_image)
    mine = np.clip(np.asarray(optax.apply_updates(obj.init_image, updates)), 0, 1)
    assert np.abs(mine - obj.init_image).max() > 0.01  # the step moved the pixels
    np.testing.assert_allclose(r.image, mine, atol=2e-5)


def test_lbfgs_history_starts_at_the_same_loss(small_vars, pair, obj):
    kw = dict(variables=small_vars, init="noise", seed=3, iterations=1, chunk=4, **W)
    r = jaxnst.stylize(*pair, **kw)
    np.testing.assert_allclose(r.history["total"][0], obj.loss_fn(obj.init_image)[0], rtol=1e-5)


def test_jit_and_vmap_compose(obj):
    x = obj.init_image
    y = jnp.clip(x + 0.1 * jax.random.normal(jax.random.PRNGKey(1), x.shape), 0, 1)
    eager = obj.loss_fn(x)[0]
    # A Partial travels through jit as an argument (the weights are not baked in as constants).
    np.testing.assert_allclose(jax.jit(lambda f, im: f(im)[0])(obj.loss_fn, x), eager, rtol=1e-5)
    both = jax.vmap(obj.loss_fn)(jnp.stack([x, y]))[0]
    np.testing.assert_allclose(both, [eager, obj.loss_fn(y)[0]], rtol=1e-5)


def _float64(tree):
    return jax.tree.map(
        lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a,
        tree,
    )


def test_gradient_matches_finite_differences_in_float64(obj):
    """The gradient the descent uses (the VGG's hand-written input-gradient kernels, the Gram's
    custom VJP) against central differences along purely random directions, in float64.

    A random direction is nearly orthogonal to the gradient (|g . d| ~ |g| / sqrt(n)), so the
    differences are compared with |g|, not with g . d: in float64 they agree to ~1e-10 |g|
    (steps 1e-3..1e-5 alike, key 1 and others), and a gradient wrong by 10 % in any direction
    misses by ~1e-3 |g|. (In float32 the difference of two losses ~1e1 cannot resolve that; the
    check this replaces added g itself to each direction, so it mostly measured g . g.)"""
    with jax.enable_x64(True):
        loss_fn, value_and_grad = _float64(obj.loss_fn), _float64(obj.value_and_grad)
        x = jnp.asarray(obj.init_image, jnp.float64)
        value = jax.jit(lambda f, im: f(im)[0])
        (total, _), g = jax.jit(lambda f, im: f(im))(value_and_grad, x)
        assert g.dtype == total.dtype == jnp.float64  # float64 all the way through
        np.testing.assert_allclose(total, value(loss_fn, x), rtol=1e-12)
        norm = float(jnp.linalg.norm(g))
        for k in range(4):
            d = jax.random.normal(jax.random.PRNGKey(k), x.shape, jnp.float64)
            d = d / jnp.linalg.norm(d)
            eps = 1e-4
            fd = (value(loss_fn, x + eps * d) - value(loss_fn, x - eps * d)) / (2 * eps)
            assert abs(float(jnp.vdot(g, d)) - float(fd)) < 1e-7 * norm, k


def test_parts_fn_differentiates_with_respect_to_the_weights_and_targets(obj):
    x = obj.init_image

    def total(weights, targets):
        return obj.parts_fn(x, obj.variables, targets, weights).total

    gw, gt = jax.grad(total, argnums=(0, 1))(obj.weights, obj.targets)
    parts = obj.loss_fn(x)[1]
    # total = wc * content + ws * style + wt * tv: its weight-gradient is the unweighted parts.
    np.testing.assert_allclose(
        [gw.content, gw.style, gw.tv], [parts.content, parts.style, parts.tv], rtol=1e-5
    )
    assert set(gt.grams) == set(obj.targets.grams) and float(jnp.abs(gt.grams["conv1_1"]).max()) > 0


def test_objective_refuses_batches_and_scales(small_vars, pair):
    with pytest.raises(ValueError, match=r"one image, got a batch of 2 \(style_weight\)"):
        jaxnst.objective(*pair, variables=small_vars, style_weight=[1e-3, 1e-2])
    with pytest.raises(ValueError, match="scales"):
        jaxnst.objective(*pair, variables=small_vars, scales=(16,))


def test_extra_loss_that_duplicates_tv_equals_a_larger_tv_weight(small_vars, pair):
    """A term with a known effect: 2 * w * tv_loss added to tv_weight=w is tv_weight=3w."""
    w = 5.0
    extra = lambda image, feats: 2 * w * losses.tv_loss(image)  # noqa: E731
    kw = dict(
        variables=small_vars,
        init="noise",
        seed=1,
        optimizer="adam",
        learning_rate=0.05,
        iterations=6,
        chunk=4,
        style_weight=1e-2,
    )
    a = jaxnst.stylize(*pair, tv_weight=w, extra_loss=extra, **kw)
    b = jaxnst.stylize(*pair, tv_weight=3 * w, **kw)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-4)
    np.testing.assert_allclose(a.image, b.image, atol=1e-4)
    c = jaxnst.stylize(*pair, tv_weight=w, **kw)  # and without it, something else
    assert np.abs(c.image - b.image).max() > 1e-3


def test_extra_loss_sees_the_features_and_only_adds_to_total(small_vars, pair, obj):
    extra = lambda image, feats: 1e3 * jnp.mean(feats["conv1_1"])  # noqa: E731
    o2 = jaxnst.objective(*pair, variables=small_vars, init="noise", seed=3, extra_loss=extra, **W)
    x = obj.init_image
    t1, p1 = obj.loss_fn(x)
    t2, p2 = o2.loss_fn(x)
    ref = 1e3 * jnp.mean(jaxnst.features(x, ["conv1_1"], variables=small_vars)["conv1_1"])
    np.testing.assert_allclose(t2 - t1, ref, rtol=1e-3)
    np.testing.assert_allclose([p2.content, p2.style, p2.tv], [p1.content, p1.style, p1.tv])


def test_extra_loss_errors(small_vars, pair):
    with pytest.raises(ValueError, match="remat=True"):
        jaxnst.stylize(*pair, variables=small_vars, remat=True, extra_loss=lambda x, f: 0.0)
    with pytest.raises(ValueError, match="which tile= evaluates piece by piece"):
        jaxnst.stylize(*pair, variables=small_vars, tile=32, extra_loss=lambda x, f: 0.0)
    with pytest.raises(ValueError, match="extra_loss must be a function"):
        jaxnst.stylize(*pair, variables=small_vars, extra_loss=3.0)
    o = jaxnst.objective(*pair, variables=small_vars, extra_loss=lambda x, f: x.mean(0))
    with pytest.raises(ValueError, match=r"extra_loss must return a scalar, got shape \(32, 3\)"):
        o.loss_fn(o.init_image)


def test_any_optax_transformation_runs_in_the_compiled_loop(small_vars, pair):
    kw = dict(variables=small_vars, init="noise", seed=2, iterations=5, chunk=4, **W)
    ours = jaxnst.stylize(*pair, optimizer="adam", learning_rate=0.05, **kw)
    theirs = jaxnst.stylize(*pair, optimizer=optax.adam(0.05), **kw)
    np.testing.assert_allclose(theirs.image, ours.image, atol=1e-6)
    np.testing.assert_allclose(theirs.losses, ours.losses, rtol=1e-6)
    assert theirs.evaluations == ours.evaluations == 6  # the start, then after each step
    # A transformation with its own line search gets value_fn, and its trials are counted.
    lb = jaxnst.stylize(*pair, optimizer=optax.lbfgs(), **kw)
    assert lb.history["total"][-1] < 0.9 * lb.history["total"][0] and lb.evaluations >= 10
    with pytest.raises(ValueError, match="optimizer must be 'lbfgs', 'adam' or an optax"):
        jaxnst.stylize(*pair, optimizer=optax.adam, **kw)
