"""STROTSS in jaxnst's objective and loop (issue 21): the sampled terms against an independent
NumPy computation from VGG19's activations, the point draws, the recipe and its schedule."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image
from test_strotss_terms import np_moments, np_palette, np_remd, np_self_sim

import jaxnst
from jaxnst.loss import sampled, strotss
from jaxnst.pipeline import multiscale
from jaxnst.pipeline.options import make_options


def _np_columns(image, feats, points):
    """Hypercolumns by hand: RGB in [-1, 1], then each layer scaled, bilinear at p / stride."""
    h, w = image.shape[:2]
    maps = [2.0 * np.asarray(image, np.float64) - 1.0]
    maps += [np.asarray(feats[n], np.float64) * sampled.FEATURE_SCALE for n in sampled.LAYERS]
    out = []
    for y, x in np.asarray(points, np.float64):
        row = []
        for m in maps:
            sy = 2 ** int(np.floor(np.log2(h / m.shape[0])))
            sx = 2 ** int(np.floor(np.log2(w / m.shape[1])))
            yy, xx = y / sy, x / sx
            y0, x0 = int(np.floor(yy)), int(np.floor(xx))
            fy, fx = yy - y0, xx - x0
            y1, x1 = min(y0 + 1, m.shape[0] - 1), min(x0 + 1, m.shape[1] - 1)
            y0, x0 = min(y0, m.shape[0] - 1), min(x0, m.shape[1] - 1)
            row.append(
                (1 - fy) * (1 - fx) * m[y0, x0] + (1 - fy) * fx * m[y0, x1]
                + fy * (1 - fx) * m[y1, x0] + fy * fx * m[y1, x1]
            )  # fmt: skip
        out.append(np.concatenate(row))
    return np.stack(out)


def test_sampled_terms_match_numpy_from_the_activations(small_vars, rng):
    content, style = smooth_image(rng, 40, 48), smooth_image(np.random.default_rng(5), 36, 36)
    image = np.clip(content + 0.1 * rng.standard_normal(content.shape), 0, 1).astype(np.float32)
    kw = dict(variables=small_vars, samples=60, style_samples=90, seed=4, content_weight=3.0)
    obj = jaxnst.objective(
        content, style, style_loss="remd", content_loss="self_similarity", tv_weight=0.0, **kw
    )
    # (loss_fn as one compiled program, as the loop runs it; op by op: ~200 small programs)
    total, parts = jax.jit(obj.loss_fn)(image)
    s = obj.targets.sampled
    points = np.asarray(s.points)[np.asarray(s.idx)]
    assert points.shape == (60, 2) and len(np.unique(np.asarray(s.idx))) == 60
    feats = {
        k: jaxnst.features(x, sampled.LAYERS, variables=small_vars)
        for k, x in (("out", image), ("content", content), ("style", style))
    }
    out = _np_columns(image, feats["out"], points)
    con = _np_columns(content, feats["content"], points)
    key = jax.random.fold_in(jax.random.PRNGKey(0), 0)  # the style's draw (loss.sampled.make)
    sty = _np_columns(style, feats["style"], strotss.sample_points(key, 36, 36, 90))
    lc = 60 * np_self_sim(out, con)  # times P, as the authors' dp_loss
    ls = np_remd(out, sty) + np_moments(out, sty) + np_palette(out[:, :3], sty[:, :3]) / 3.0
    np.testing.assert_allclose(float(parts.content), lc, rtol=2e-4)
    np.testing.assert_allclose(float(parts.style), ls, rtol=2e-4)
    np.testing.assert_allclose(float(total), 3.0 * lc + 1.0 * ls, rtol=2e-4)
    # Each term alone keeps the other one Gatys's.
    alone = jaxnst.objective(content, style, style_loss="remd", tv_weight=0.0, **kw)
    assert float(jax.jit(alone.loss_fn)(image)[1].style) == pytest.approx(ls, rel=2e-4)
    assert alone.targets.sampled.content is None and alone.targets.content


def test_draws_are_keyed_by_step_and_seed():
    key = np.array([0, 7], np.uint32)
    d = [np.asarray(sampled.draw(key, s, 2, 500, 50)) for s in range(4)]
    assert np.array_equal(d[0], d[1]) and np.array_equal(d[2], d[3])  # resample_every=2
    assert not np.array_equal(d[0], d[2])
    other = np.asarray(sampled.draw(np.array([0, 8], np.uint32), 0, 2, 500, 50))
    assert not np.array_equal(d[0], other)
    assert sampled.grid(512, 384).shape[0] == pytest.approx(128 * 128, rel=0.3)


@pytest.mark.slow  # four STROTSS runs, two programs (25 s on 2 cores)
def test_runs_are_deterministic_per_seed_and_sweep_as_one_batch(small_vars, rng):
    content, style = smooth_image(rng, 32, 32), smooth_image(np.random.default_rng(5), 32, 32)
    kw = dict(variables=small_vars, iterations=4, samples=64, style_samples=100, scales="none")
    a = jaxnst.stylize(content, style, method="strotss", seed=1, **kw)
    b = jaxnst.stylize(content, style, method="strotss", seed=1, **kw)
    c = jaxnst.stylize(content, style, method="strotss", seed=2, **kw)
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, c.image)  # the draws differ (the start does not)
    weights = (16.0, 1.0)
    sweep = jaxnst.stylize(content, style, method="strotss", content_weight=weights, seed=1, **kw)
    assert sweep.image.shape == (2, 32, 32, 3)
    for i, w in enumerate(weights):  # each member is the single run (its draws, its weight)
        one = a if w == 16.0 else jaxnst.stylize(
            content, style, method="strotss", content_weight=w, seed=1, **kw
        )  # fmt: skip
        assert np.abs(sweep.image[i] - one.image).max() <= 1e-4, i
        np.testing.assert_allclose(sweep.history["total"][i], one.history["total"], rtol=1e-4)


def test_a_strotss_descent_lowers_its_objective(small_vars, rng):
    """Six RMSprop steps on the pyramid from noise, one draw of points for all of them
    (resample_every): the loss falls at every chunk, and jaxnst.objective at the step-0 points
    agrees with the run at its start and at the image it returns (both terms lower there)."""
    content, style = smooth_image(rng, 32, 32), smooth_image(np.random.default_rng(5), 32, 32)
    kw = dict(variables=small_vars, samples=64, style_samples=100, seed=3, init="noise")
    kw |= dict(resample_every=100)
    r = jaxnst.stylize(content, style, method="strotss", scales="none", iterations=6, chunk=3, **kw)
    obj = jaxnst.objective(content, style, method="strotss", **kw)
    loss = jax.jit(lambda f, x: f(x))
    t0, p0 = loss(obj.loss_fn, obj.init_image)
    t1, p1 = loss(obj.loss_fn, jnp.asarray(r.image))
    total = r.history["total"]
    np.testing.assert_allclose([total[0], total[-1]], [t0, t1], rtol=1e-2)  # (t1: clipped)
    assert total[2] < total[1] < 0.7 * total[0], total
    assert float(p1.style) < float(p0.style) and float(p1.content) < float(p0.content)


def test_method_sets_the_recipe_and_explicit_options_win():
    o = make_options(method="strotss")
    assert (o.style_loss, o.content_loss, o.param, o.optimizer) == (
        "remd", "self_similarity", "laplacian", "rmsprop",
    )  # fmt: skip
    assert (o.content_weight, o.tv_weight, o.iterations, o.scales) == (16.0, 0.0, 200, "auto")
    assert make_options(method="strotss", content_weight=4.0, param="pixels").param == "pixels"
    assert make_options().method == "gatys" and make_options().style_loss == "gram"
    r = multiscale.resolve(o, (384, 512, 3))
    assert r.scales == (64, 128, 256) and r.scale_iterations == (200,) * 4
    for bad, match in (
        (dict(style_loss="remd", tile=64), "tile"),
        (dict(content_loss="self_similarity", remat=True), "remat"),
        (dict(method="nnsx"), "method"),
        (dict(style_loss="remd", samples=0), "samples"),
    ):
        with pytest.raises(ValueError, match=match):
            make_options(**bad)


def test_strotss_stages_halve_alpha_and_start_from_the_content_band(rng):
    o = make_options(method="strotss", content_weight=(16.0, 8.0))
    content = np.asarray(smooth_image(rng, 40, 40), np.float32)
    style = np.full((20, 20, 3), 0.25, np.float32)
    first = multiscale.strotss_stage(o, 0, 3, content, [style], None)
    mid = multiscale.strotss_stage(o, 1, 3, content, [style], content)
    last = multiscale.strotss_stage(o, 2, 3, content, [style], content)
    assert first["content_weight"] == (16.0, 8.0) and mid["content_weight"] == (8.0, 4.0)
    assert last["content_weight"] == (4.0, 2.0) and last["learning_rate"] == 3e-3
    assert "init" not in last and "learning_rate" not in mid
    # The first start: the content's finest band (zero mean) on the style's mean colour.
    assert abs(float(np.mean(first["init"])) - 0.25) < 0.02
    assert float(np.std(first["init"])) < float(np.std(content))
    o2 = dataclasses.replace(o, init="noise")
    assert "init" not in multiscale.strotss_stage(o2, 0, 3, content, [style], None)


def test_fast_remd_matches_autodiff_of_the_reference_terms(rng):
    """The custom backward pass (nearest neighbours only) against autodiff of
    :func:`jaxnst.loss.strotss.remd`, with the row side winning and with the column side."""
    with jax.enable_x64(True):
        x = jnp.asarray(rng.standard_normal((37, 9)))
        sides = set()
        for m in (12, 2 * sampled.CHUNK + 5):  # one block; several, the last one padded
            y = jnp.asarray(rng.standard_normal((m, 9)))
            c = np.asarray(strotss.cosine_cost(x, y))
            sides.add(bool(c.min(1).mean() >= c.min(0).mean()))
            # (each side one compiled program: op by op they compiled ~200 small ones, ~10 s)
            ref = jax.jit(jax.value_and_grad(strotss.remd, argnums=(0, 1)))(x, y)
            got = jax.jit(jax.value_and_grad(sampled.remd_cosine, argnums=(0, 1)))(x, y)
            np.testing.assert_allclose(float(got[0]), float(ref[0]), rtol=1e-12)
            for g, r in zip(got[1], ref[1]):
                np.testing.assert_allclose(np.asarray(g), np.asarray(r), atol=1e-12)
        assert sides == {True, False}


def test_the_preflight_counts_the_sampled_terms(monkeypatch):
    """Measured at 512 px (bundled pair): STROTSS's four stages peaked at 3.45 GiB RSS, its last
    stage alone at 1.89 GiB, Gatys at 1.46 GiB; the model must see the difference."""
    from jaxnst.pipeline import memory

    gatys = make_options()
    single = make_options(method="strotss", scales="none")
    staged = make_options(method="strotss")
    b = [memory.sampled_bytes(1, o, shape=(341, 512)) for o in (gatys, single, staged)]
    assert b[0] == 0 and 0.2 * 2**30 < b[1] < b[2]
    base = memory.step_bytes(341, 512, 1, ("conv5_1",)) + memory.OVERHEAD
    monkeypatch.setenv(memory.LIMIT_ENV, str(int(memory.resident_bytes() + base + 0.2 * 2**30)))
    assert memory.check(341, 512, 1, gatys) is not None
    with pytest.raises(memory.MemoryRefused, match="not enough memory"):
        memory.check(341, 512, 1, staged)
