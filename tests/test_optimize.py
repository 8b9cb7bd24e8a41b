import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.optim import optimize
from jaxnst.stylize import compile_stats, stylize

st = importlib.import_module("jaxnst.stylize")  # the module; jaxnst.stylize is the function

TINY = dict(style_weight=1e-2, tv_weight=1.0, content_weight=1.0)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(3)
    return smooth_image(rng, 32, 32), smooth_image(rng, 40, 36)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_descent_lowers_the_loss(small_vars, pair, optimizer):
    r = stylize(
        *pair,
        variables=small_vars,
        optimizer=optimizer,
        iterations=30,
        chunk=10,
        init="noise",
        learning_rate=0.05,
        **TINY,
    )
    assert r.iterations == 30 and r.diverged_at is None
    assert r.history["total"][-1] < 0.5 * r.history["total"][0]
    assert r.image.shape == (32, 32, 3) and r.image.min() >= 0 and r.image.max() <= 1
    assert list(r.history["step"]) == [0, 10, 20, 30]
    if optimizer == "adam":
        assert r.evaluations == 31  # the start, then the image after each step
    else:
        assert r.evaluations >= 31  # one at the start, at least one per iteration


def test_evaluation_count_matches_a_counter_inside_the_program(small_vars, pair, monkeypatch):
    """Every call of the loss+gradient is counted by a host callback compiled into the program;
    the reported evaluation count must equal it (line-search trials included)."""
    calls = []
    real_parts = optimize.parts_fn

    def counted(image, variables, targets, weights, config):
        jax.debug.callback(lambda: calls.append(1))
        return real_parts(image, variables, targets, weights, config)

    monkeypatch.setattr(optimize, "parts_fn", counted)
    # A distinct static config (lbfgs_memory=7) forces a fresh trace that sees the counter.
    r = stylize(
        *pair, variables=small_vars, iterations=12, chunk=5, lbfgs_memory=7, init="noise", **TINY
    )
    jax.effects_barrier()
    assert r.evaluations == len(calls)
    assert r.evaluations > r.iterations


def test_no_recompilation_between_chunks_or_weight_values(small_vars, pair):
    kw = dict(variables=small_vars, iterations=9, chunk=3, init="noise", optimizer="lbfgs")
    before = optimize.run_chunk._cache_size()
    stylize(*pair, **kw, **TINY)  # three chunks (may compile once)
    assert optimize.run_chunk._cache_size() - before <= 1
    c0 = compile_stats()["compiles"]
    stylize(*pair, **kw, style_weight=3e-2, content_weight=0.5, tv_weight=0.0)
    assert compile_stats()["compiles"] == c0, "changing only weight values recompiled"
    # A different count of iterations is a value too (steps past it are no-ops).
    stylize(*pair, **{**kw, "iterations": 5}, **TINY)
    assert compile_stats()["compiles"] == c0


def test_chunking_does_not_change_the_result(small_vars, pair):
    a = stylize(
        *pair, variables=small_vars, optimizer="adam", iterations=12, chunk=12, init="noise", **TINY
    )
    b = stylize(
        *pair, variables=small_vars, optimizer="adam", iterations=12, chunk=5, init="noise", **TINY
    )
    np.testing.assert_allclose(a.image, b.image, atol=1e-5)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-5)


def _reference(small_vars, content, style, o):
    """The objective written from its parts (VGG19 apply, losses.objective) and the seeded noise
    start: the second code path of the tests below."""
    targets = st.prepare_targets(jnp.asarray(content), jnp.asarray(style), small_vars, o)
    model = vgg.VGG19(channels=vgg.channels_of(small_vars))
    w = losses.Weights(*(jnp.float32(x) for x in (o.content_weight, o.style_weight, o.tv_weight)))

    def loss(img):
        feats = model.apply(small_vars, img, vgg.LAYERS[:13])
        return losses.objective(img, feats, targets, w).total

    return loss, jax.random.uniform(jax.random.PRNGKey(o.seed), content.shape, jnp.float32)


def test_adam_matches_a_plain_python_loop(small_vars, pair):
    """Second code path: optax.adam stepped from Python with jax.grad of the objective."""
    import optax

    content, style = pair
    o = st.make_options(optimizer="adam", iterations=6, init="noise", learning_rate=0.05, **TINY)
    r = stylize(
        content,
        style,
        variables=small_vars,
        **{
            k: getattr(o, k)
            for k in (
                "optimizer",
                "iterations",
                "init",
                "learning_rate",
                "style_weight",
                "content_weight",
                "tv_weight",
            )
        },
    )
    loss, img = _reference(small_vars, content, style, o)
    opt = optax.adam(o.learning_rate)
    s = opt.init(img)
    for _ in range(6):
        g = jax.grad(loss)(img)
        u, s = opt.update(g, s, img)
        img = img + u
    np.testing.assert_allclose(r.image, np.clip(img, 0, 1), atol=1e-4)


def test_same_seed_same_result_and_seed_matters(small_vars, pair):
    kw = dict(variables=small_vars, iterations=5, chunk=5, init="noise", **TINY)
    a = stylize(*pair, seed=1, **kw)
    b = stylize(*pair, seed=1, **kw)
    c = stylize(*pair, seed=2, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    assert np.abs(a.image - c.image).max() > 1e-3


def test_divergence_is_detected_and_the_last_finite_image_kept(small_vars, pair):
    r = stylize(
        *pair,
        variables=small_vars,
        optimizer="adam",
        iterations=40,
        chunk=10,
        learning_rate=1e30,
        init="noise",
        **TINY,
    )
    assert r.diverged_at is not None and r.diverged_at < 40
    assert r.iterations == r.diverged_at
    assert np.all(np.isfinite(r.image))
    assert np.all(np.isfinite(r.losses[: r.diverged_at])) and np.isnan(r.losses[-1])


def test_texture_and_reconstruction_modes(small_vars, pair):
    t = stylize(*pair, variables=small_vars, content_layers=(), init="noise", iterations=10, **TINY)
    assert t.history["content"][-1] == 0 and t.history["style"][-1] < t.history["style"][0]
    c = stylize(*pair, variables=small_vars, style_layers=(), init="noise", iterations=10, **TINY)
    assert c.history["style"][-1] == 0 and c.history["content"][-1] < c.history["content"][0]


@pytest.mark.parametrize(
    "bad, msg",
    [
        (dict(iterations=0), "iterations must be a positive integer"),
        (dict(style_weight=-1.0), "style_weight must be a finite number >= 0"),
        (dict(content_weight=float("nan")), "content_weight must be a finite number"),
        (dict(tv_weight=float("inf")), "tv_weight must be a finite number"),
        (dict(optimizer="sgd"), "unknown optimizer 'sgd'"),
        (dict(style_layers=("conv9_1",)), "unknown style layer 'conv9_1'"),
        (dict(init="zeros"), "init must be 'content', 'noise', 'recolour' or an image array"),
        (dict(colour=1), "unknown option 'colour'"),
    ],
)
def test_bad_options_are_named(small_vars, pair, bad, msg):
    with pytest.raises(ValueError, match=msg):
        stylize(*pair, variables=small_vars, **bad)


def test_tiny_image_is_refused(small_vars):
    with pytest.raises(ValueError, match="at least 16 px"):
        stylize(
            np.zeros((8, 40, 3), np.float32),
            np.zeros((32, 32, 3), np.float32),
            variables=small_vars,
        )


@pytest.mark.slow  # optax's search compiles the objective in both branches, twice (13 s)
def test_lbfgs_matches_optax_lbfgs_with_its_zoom_line_search(small_vars, pair):
    """Second code path: optax.lbfgs (its own zoom line search, which evaluates inside a cond)
    stepped from Python. Our loop evaluates once per trial and decides afterwards; the trials,
    the accepted steps and the evaluation count must be the same."""
    import optax

    content, style = pair
    o = st.make_options(iterations=8, init="noise", **TINY)
    r = stylize(content, style, variables=small_vars, iterations=8, init="noise", **TINY)
    loss, img = _reference(small_vars, content, style, o)
    # The first search starts at Nocedal & Wright's (3.60) step with half the loss as the
    # expected decrease, -f / <g, d> for optax's first direction d = -g min(1, 1/|g|): optax's
    # zoom search with initial_guess_strategy="keep" and that step in its state, then "one".
    keep = optax.lbfgs(linesearch=optax.scale_by_zoom_linesearch(20, initial_guess_strategy="keep"))
    opt = optax.lbfgs()
    s = opt.init(img)
    vg = optax.value_and_grad_from_state(loss)
    steps = [
        jax.jit(lambda g, s, x, v, o=o: o.update(g, s, x, value=v, grad=g, value_fn=loss))
        for o in (keep, opt)
    ]
    evals, values = 1, []
    for i in range(8):
        v, g = vg(img, state=s)
        if i == 0:
            gn = float(jnp.linalg.norm(g))
            s = optax.tree.set(s, learning_rate=float(v) / (gn * gn * min(1.0, 1.0 / gn)))
        u, s = steps[min(i, 1)](g, s, img, v)
        img = img + u
        evals += int(optax.tree.get(s, "num_linesearch_steps"))
        values.append(float(optax.tree.get(s, "value")))
    np.testing.assert_allclose(r.losses, values, rtol=2e-3)
    np.testing.assert_allclose(r.image, np.clip(img, 0, 1), atol=2e-3)
    assert r.evaluations == evals


def _count(text: str, op: str) -> int:
    return sum(line.count(f" {op}(") for line in text.splitlines())


@pytest.mark.parametrize(
    "optimizer, linesearch, n",
    [("lbfgs", "zoom", 1), ("lbfgs", "backtracking", 1), ("adam", "zoom", 1), ("lbfgs", "zoom", 3)],
)
def test_the_compiled_loop_holds_one_evaluation(small_vars, pair, optimizer, linesearch, n):
    """Compile time follows the size of the program: the chunk program must contain the VGG19
    forward and backward exactly once, as many convolutions as one value_and_grad (optax's zoom
    search compiled it three times: in both branches of its cond and at the start)."""
    content, style = pair
    o = st.make_options(**TINY)
    targets = st.prepare_targets(jnp.asarray(content), jnp.asarray(style), small_vars, o)
    config = optimize.Config(
        optimizer=optimizer, linesearch=linesearch, chunk=4, layers=vgg.LAYERS[:13],
        channels=vgg.channels_of(small_vars), batched_content=False,
    )  # fmt: skip
    w = losses.Weights(*(jnp.full((n,), x, jnp.float32) for x in (1.0, 1e-2, 1.0)))
    hyper = optimize.Hyper(w, jnp.float32(0.05), jnp.int32(4))
    images = jnp.broadcast_to(jnp.asarray(content), (n,) + content.shape)
    state, _ = optimize.init_state(images, small_vars, targets, hyper, config)
    chunk = optimize.run_chunk.lower(state, small_vars, targets, hyper, config, np.int32(4))
    one = jax.jit(jax.value_and_grad(optimize._total), static_argnums=4).lower(
        jnp.asarray(content), small_vars, targets, jax.tree.map(lambda a: a[0], w), config
    )
    n_chunk = _count(chunk.compile().as_text(), "convolution")
    n_one = _count(one.compile().as_text(), "convolution")
    assert n_one >= 26 and n_chunk == n_one, (n_chunk, n_one)
