"""The temporal term (Ruder et al.) inside the compiled objective: against NumPy, finite
differences, per-member targets through vmap, and no change when absent."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image
from jax.test_util import check_grads

from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.optim import optimize

LAYERS = ("conv1_1", "conv2_1", "conv4_2")


def _np_temporal(x, w, c):
    x, w, c = (np.asarray(a, np.float64) for a in (x, w, c))
    return float((c[..., None] * (x - w) ** 2).sum() / x.size)


def test_temporal_loss_matches_numpy_and_finite_differences(rng):
    x, w = rng.random((9, 11, 3)), rng.random((9, 11, 3))
    c = (rng.random((9, 11)) > 0.3).astype(np.float32)
    ours = float(
        losses.temporal_loss(
            jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), jnp.asarray(c)
        )
    )
    assert ours == pytest.approx(_np_temporal(x, w, c), rel=1e-5)

    def f(a):
        return losses.temporal_loss(a, jnp.asarray(w), jnp.asarray(c, jnp.float64))

    with jax.enable_x64(True):
        check_grads(f, (jnp.asarray(x, jnp.float64),), order=2, modes=["rev"])


@pytest.fixture(scope="module")
def setup(small_vars):
    rng = np.random.default_rng(5)
    content, style = smooth_image(rng, 32, 32), smooth_image(rng, 32, 32)
    model = vgg.VGG19(channels=vgg.channels_of(small_vars))
    cf = model.apply(small_vars, jnp.asarray(content), LAYERS)
    sf = model.apply(small_vars, jnp.asarray(style), LAYERS)
    targets = losses.make_targets(cf, sf, ("conv4_2",), ("conv1_1", "conv2_1"))
    return content, targets, model


def test_objective_adds_the_weighted_term_and_is_unchanged_without_it(small_vars, setup, rng):
    _, targets, model = setup
    x = jnp.asarray(rng.random((32, 32, 3)), jnp.float32)
    feats = model.apply(small_vars, x, LAYERS)
    w3 = losses.Weights(jnp.float32(1.0), jnp.float32(1e-2), jnp.float32(0.5))
    base = losses.objective(x, feats, targets, w3)
    warped = rng.random((32, 32, 3)).astype(np.float32)
    c = (rng.random((32, 32)) > 0.5).astype(np.float32)
    t = targets._replace(warped=jnp.asarray(warped), reliability=jnp.asarray(c))
    # Absent (either half missing): bit-identical to the still-image objective.
    for tt, ww in [(targets, w3._replace(temporal=jnp.float32(7.0))), (t, w3)]:
        same = losses.objective(x, feats, tt, ww)
        for a, b in zip(same, base):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
    p = losses.objective(x, feats, t, w3._replace(temporal=jnp.float32(7.0)))
    assert float(p.total) == pytest.approx(
        float(base.total) + 7.0 * _np_temporal(x, warped, c), rel=1e-5
    )
    assert float(p.style) == float(base.style) and float(p.content) == float(base.content)
    # The rematerialised path assembles the same total from per-layer terms.
    terms = {n: losses.layer_terms(n, feats[n], t) for n in LAYERS}
    q = losses.objective_from_terms(x, terms, t, w3._replace(temporal=jnp.float32(7.0)))
    assert float(q.total) == pytest.approx(float(p.total), rel=1e-5)


def _batch(targets, n, warped, c, w_t):
    content = {k: jnp.broadcast_to(v, (n,) + v.shape) for k, v in targets.content.items()}
    t = targets._replace(content=content, warped=jnp.asarray(warped), reliability=jnp.asarray(c))
    w = losses.Weights(
        *(jnp.full((n,), v, jnp.float32) for v in (1.0, 1e-2, 0.5)),
        temporal=jnp.asarray(w_t, jnp.float32),
    )
    return t, w


def test_per_member_temporal_targets_through_the_compiled_loop(small_vars, setup, rng):
    """Each member of a vmapped batch sees its own warped frame, reliability and weight: its loss
    equals the same member run alone; a strong term pulls reliable pixels to the warped frame."""
    content, targets, _ = setup
    n = 3
    warped = rng.random((n, 32, 32, 3)).astype(np.float32)
    c = np.ones((n, 32, 32), np.float32)
    c[:, :, :16] = 0.0
    t, w = _batch(targets, n, warped, c, [0.0, 1e3, 1e4])
    config = optimize.Config(
        layers=LAYERS,
        channels=vgg.channels_of(small_vars),
        chunk=10,
        batched_content=True,
        linesearch="backtracking",
    )
    hyper = optimize.Hyper(w, jnp.float32(0.02), jnp.int32(20))
    images = jnp.broadcast_to(jnp.asarray(content), (n, 32, 32, 3))
    run_vars = vgg.with_backward_kernels(small_vars)
    state, _ = optimize.init_state(images, run_vars, t, hyper, config)
    for i in range(n):

        def one(tree, i=i):
            return jax.tree.map(lambda a, i=i: a[i : i + 1], tree)

        ti = t._replace(
            content=one(t.content), warped=one(t.warped), reliability=one(t.reliability)
        )  # (the Grams are shared)
        wi = one(w)
        si, _ = optimize.init_state(
            images[i : i + 1], run_vars, ti, hyper._replace(weights=wi), config
        )
        assert float(si.value[0]) == pytest.approx(float(state.value[i]), rel=1e-5)
    prog = optimize.descend(images, run_vars, t, hyper, config)
    out = np.asarray(prog.state.image)
    # Pulled towards the warped frame where c = 1, the more the stronger the term. How far 20
    # steps get depends on how hard the network's content and style terms pull back (keys 0-7:
    # far[2] / far[0] = 0.19-0.70), so the bounds are relative to the run without the term.
    far = [np.abs(out[i] - warped[i])[:, 16:].mean() for i in range(n)]
    assert far[2] < far[1] < far[0] and far[2] < 0.8 * far[0], far
    # where c = 0 the strong term does not act: the image stays as far from the warped frame as
    # the run without it (0.85-0.97 of it for keys 0-7)
    assert np.abs(out[2] - warped[2])[:, :16].mean() > 0.8 * far[0]
