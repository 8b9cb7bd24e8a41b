"""NNST's final pass (Kolkin et al. 2022; issue 31): matches recomputed per layer at every step
(or every ``nnst_refresh`` steps, held between), on a strided grid whose offsets come from
``jax.random`` keyed by the run's seed and the step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image

import jaxnst
from jaxnst.loss import neighbours
from jaxnst.model import vgg
from jaxnst.optim import optimize, param
from jaxnst.pipeline import layout, multiscale, prepare
from jaxnst.pipeline.options import make_options

# (H, W) of each layer's output and style maps: the first two above 64 px (strides 2 and 3)
_SHAPES = {"conv1_1": (130, 40), "conv1_2": (40, 200), "conv2_1": (20, 30)}


def _feats(rng, shapes, c=6):
    return {
        n: jnp.asarray(rng.standard_normal((*shapes.get(n, (9, 7)), c)), jnp.float32)
        for n in neighbours.LAYERS
    }


def _np_rows(f, s, a, b):
    f = np.asarray(f, np.float64)
    h, w = f.shape[:2]
    if s == 1:
        return f.reshape(-1, f.shape[-1])
    return f[a::s, b::s][: max(1, h // s), : max(1, w // s)].reshape(-1, f.shape[-1])


def _np_unit(x):
    x = x - x.mean(0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_final_pass_matches_a_numpy_brute_force_on_the_same_draws(rng):
    """At a step, each layer's grid (offsets = the step's draws mod the layer's stride, the
    stride max(H, W) // 64 above 64 px), centred rows and nearest style rows (two style maps,
    as with a second style or rotations) equal a NumPy float64 brute force; the term is the
    mean over layers of the mean cosine distance to those neighbours."""
    out = _feats(rng, _SHAPES)
    styles = [_feats(rng, {"conv1_1": (96, 70), "conv1_2": (66, 140)}), _feats(rng, {})]
    t = neighbours.Final(tuple(tuple(s[n] for s in styles) for n in neighbours.LAYERS))
    t = neighbours.pick(t, jnp.asarray([0, 7], jnp.uint32), 3)
    got = jax.jit(neighbours.final_matches)(out, t)
    term = float(jax.jit(neighbours.final_term)(out, t))
    draws = np.asarray(t.draws)
    dists = []
    for i, n in enumerate(neighbours.LAYERS):
        s = neighbours.stride(*out[n].shape[:2])
        assert s == {"conv1_1": 2, "conv1_2": 3}.get(n, 1)
        a, b = (int(d) % s for d in draws[i])
        q = _np_unit(_np_rows(out[n], s, a, b))
        k = _np_unit(np.concatenate([_np_rows(st[n], s, a, b) for st in styles]))
        sim = q @ k.T
        idx = np.asarray(got[i][2])
        np.testing.assert_allclose(np.asarray(got[i][0]), q, atol=1e-5)
        np.testing.assert_allclose(np.asarray(got[i][1]), k, atol=1e-5)
        np.testing.assert_array_equal(idx, sim.argmax(1))
        dists.append(np.mean(1.0 - sim.max(1)))
    assert term == pytest.approx(np.mean(dists), abs=1e-5)


def test_the_draws_follow_the_key_and_the_step():
    """Same key and step: the same bits; another step or key: others; offsets stay in range."""
    t = neighbours.Final(())
    key = jnp.asarray([0, 1], jnp.uint32)

    def draws(k, step):
        return np.asarray(neighbours.pick(t, k, step).draws)

    np.testing.assert_array_equal(draws(key, 5), draws(key, 5))
    assert (draws(key, 5) != draws(key, 6)).any()
    assert (draws(key, 5) != draws(jnp.asarray([0, 2], jnp.uint32), 5)).any()
    off = np.asarray(neighbours.offsets(jnp.asarray(draws(key, 5)), [3] * len(neighbours.LAYERS)))
    assert off.shape == (len(neighbours.LAYERS), 2) and off.min() >= 0 and off.max() <= 2


def test_a_final_pass_reruns_bit_identically_and_another_seed_differs(small_vars, rng):
    """The final pass alone (scales none, nnst_final_steps > 0) at 128 x 16 px (conv1 on a
    stride-2 grid): the same seed twice gives the same bits, another seed other offsets and
    another image (the start is the content, so the seed only moves the draws)."""
    content, style = smooth_image(rng, 128, 16), smooth_image(np.random.default_rng(3), 32, 32)
    kw = dict(variables=small_vars, method="nnst", scales=None, iterations=2, nnst_final_steps=2)
    kw |= dict(preserve_color="none", learning_rate=0.1)
    a, b = (np.asarray(jaxnst.stylize(content, style, seed=1, **kw).image) for _ in range(2))
    c = np.asarray(jaxnst.stylize(content, style, seed=2, **kw).image)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0


def test_objective_of_the_final_pass_reads_step_0s_grid(small_vars, rng):
    """jaxnst.objective with nnst_final_steps (single-scale: the pass alone): its targets carry
    step 0's draws of the seed's key, and its loss is finite."""
    content, style = smooth_image(rng, 128, 16), smooth_image(np.random.default_rng(3), 32, 32)
    kw = dict(variables=small_vars, method="nnst", nnst_final_steps=2)
    obj = jaxnst.objective(content, style, seed=4, **kw)
    want = neighbours.pick(obj.targets.nnst_final, jnp.asarray([0, 4], jnp.uint32), 0).draws
    np.testing.assert_array_equal(np.asarray(obj.targets.nnst_final.draws), np.asarray(want))
    total, parts = obj.loss_fn(obj.init_image)
    assert obj.targets.nnst.target is None and np.isfinite(float(total)) and float(parts.style) > 0


def test_the_recipe_runs_the_final_pass_and_bad_values_are_refused():
    """method="nnst": 1.5x as many final steps as each scale's (None resolved), 0 turns it off,
    other methods have none; a single-scale NNST run still gets its final pass (one stage, then it);
    a bad value is a one-line ValueError naming the option."""
    shape = (512, 512, 3)
    assert multiscale.resolve(make_options(method="nnst"), shape).nnst_final_steps == 150
    assert multiscale.resolve(make_options(), shape).nnst_final_steps == 0
    o = multiscale.resolve(make_options(method="nnst", nnst_final_steps=0), (100, 90, 3))
    assert o.nnst_final_steps == 0 and o.scales is None
    o = multiscale.resolve(make_options(method="nnst", iterations=7), (100, 90, 3))
    assert o.nnst_final_steps == 10 and o.scales == (100,)
    o = multiscale.resolve(make_options(method="nnst", scales="none"), shape)  # single-scale
    assert o.nnst_final_steps == 0 and o.scales is None
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ValueError, match="nnst_final_steps") as e:
            multiscale.resolve(make_options(method="nnst", nnst_final_steps=bad), shape)
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("every", [1, 2])
def test_held_matches_change_only_at_multiples_of_nnst_refresh(small_vars, rng, every):
    """nnst_refresh K, the loop taken one step a call: each evaluation's style term equals a
    NumPy float64 computation on the images (VGG features, grid rows, centred cosines), its
    matches searched on the image of step i // K * K, on that step's grid (K = 1: on the
    evaluated image itself, the authors' pass); with K > 1 the held indices are that search's."""
    content, style = smooth_image(rng, 128, 16), smooth_image(np.random.default_rng(3), 32, 32)
    kw = dict(scales=None, iterations=3, nnst_final_steps=3, preserve_color="none")
    o = make_options(method="nnst", nnst_refresh=every, learning_rate=0.1, **kw)
    p = prepare.prepare(content, style, o, variables=small_vars)
    batch = layout.place(p, layout.make_layout(p))
    v, t, hyper, config = batch.variables, batch.targets, batch.hyper, batch.config
    assert config.nnst_refresh == every and p.options.nnst_rotations is False
    net = vgg.VGG19(pooling=config.pooling, channels=config.channels)
    style_f = net.apply(v, jnp.asarray(p.styles[0], jnp.float32), neighbours.LAYERS)
    state, _ = optimize.init_state(batch.images0, v, t, hyper, config)
    images = {}
    for step in range(4):  # the starting image's evaluation, then one step a call
        before = int(state.step[0])
        state, *_ = optimize.run_chunk(state, v, t, hyper, config, np.int32(min(step, 1)))
        after = int(state.step[0])  # the evaluated image's step (0: the fresh evaluation)
        images[after] = np.asarray(param.render_for(state.image, config))[0]
        src = before // every * every
        draws = np.asarray(neighbours.pick(t.nnst_final, hyper.keys[0], src).draws)
        at = (
            after if every == 1 else src
        )  # (K = 1 searches at the evaluation, on step before's grid)
        feats = [net.apply(v, jnp.asarray(images[j]), neighbours.LAYERS) for j in (at, after)]
        dists, found = [], []
        for i, n in enumerate(neighbours.LAYERS):
            s = neighbours.stride(*feats[0][n].shape[:2])
            a, b = (int(d) % s for d in draws[i])
            key = _np_unit(_np_rows(style_f[n], s, a, b))
            sims = _np_unit(_np_rows(feats[0][n], s, a, b)) @ key.T
            idx = sims.argmax(1)
            q = _np_unit(_np_rows(feats[1][n], s, a, b))
            dists.append(np.mean(1.0 - np.sum(q * key[idx], 1)))
            found.append((idx, sims))
        assert float(state.parts.style[0]) == pytest.approx(np.mean(dists), abs=2e-5)
        if every == 1:
            assert state.held is None
            continue
        assert int(state.held.step[0]) == src
        for got, (want, sims) in zip(state.held.matches, found):
            got, rows = np.asarray(got)[0], np.arange(len(want))
            # float32 may break a float64 near-tie the other way: only within 1e-5 of the best
            assert np.mean(got == want) > 0.99, (got, want)
            assert np.all(sims[rows, got] >= sims[rows, want] - 1e-5)
