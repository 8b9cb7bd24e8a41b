"""The Laplacian-pyramid image parametrisation (issue 21): the pyramid's arithmetic against NumPy
and finite differences, and runs that descend it in every front end's configuration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxnst
from jaxnst import stylize
from jaxnst.optim import param

# The pyramid's functions as one compiled program per shape (as the descent runs them): called
# op by op, build's transposed upsampling compiled ~140 small programs per shape (~6 s each).
build = jax.jit(param.build, static_argnums=(1, 2, 3))
render = jax.jit(param.render, static_argnums=(1, 2))


def _np_upsample_axis(x, n_out, axis, wrap):
    """Bilinear resampling, half-pixel centres, written as explicit weights per output sample."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    n_in = x.shape[0]
    out = np.zeros((n_out, *x.shape[1:]))
    for i in range(n_out):
        s = (i + 0.5) * n_in / n_out - 0.5
        lo = int(np.floor(s))
        f = s - lo
        for j, wgt in ((lo, 1 - f), (lo + 1, f)):
            j = j % n_in if wrap else min(max(j, 0), n_in - 1)
            out[i] += wgt * x[j]
    return np.moveaxis(out, 0, axis)


@pytest.mark.parametrize("wrap", [False, True])
def test_upsample_matches_numpy(rng, wrap):
    x = rng.random((5, 7, 3)).astype(np.float32)
    for shape in ((10, 14), (9, 13), (5, 20)):
        want = _np_upsample_axis(_np_upsample_axis(x, shape[0], 0, wrap), shape[1], 1, wrap)
        got = np.asarray(param.upsample(jnp.asarray(x), shape, wrap))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # Clamped and wrapped borders differ: the test can tell them apart.
    a = param.upsample(jnp.asarray(x), (10, 14), False)
    b = param.upsample(jnp.asarray(x), (10, 14), True)
    assert float(jnp.abs(a - b).max()) > 1e-2


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("hw", [(32, 48), (37, 50), (3, 5)])
def test_pyramid_reproduces_the_image(rng, hw, wrap):
    x = rng.random((2, *hw, 3)).astype(np.float32)  # a batch: leading axes are kept
    levels = param.levels_for(*hw)
    pyr = build(x, levels, wrap)
    assert len(pyr) == levels + 1
    assert [p.shape[1:3] for p in pyr] == list(param.level_shapes(*hw, levels))
    np.testing.assert_allclose(np.asarray(render(pyr, wrap)), x, atol=2e-6)
    # The coarsest level is a low-pass of the image: its mean is the image's (up to the border).
    assert abs(float(pyr[-1].mean()) - float(x.mean())) < 0.05
    # Pixels pass through untouched.
    assert param.to_param(x, "pixels") is x


def _np_downsample_matrix(n_in, n_out, wrap):
    """(n_out, n_in): the transpose of the (n_in, n_out) upsampling matrix (the NumPy upsampling
    above applied to the identity), each row divided by its sum so that constants are kept."""
    up = _np_upsample_axis(np.eye(n_out), n_in, 0, wrap)  # (n_in, n_out)
    down = up.T
    return down / down.sum(axis=1, keepdims=True)


def _np_downsample(x, shape, wrap):
    """(N, H, W, C) -> (N, h, w, C) with the matrices above, one per axis."""
    rows = _np_downsample_matrix(x.shape[1], shape[0], wrap)
    cols = _np_downsample_matrix(x.shape[2], shape[1], wrap)
    return np.einsum("ia,jb,nabc->nijc", rows, cols, x)


@pytest.mark.parametrize("wrap", [False, True])
def test_downsample_matches_numpy(rng, wrap):
    """``downsample`` (the pyramid's low-pass and the STROTSS content band's) against the
    row-normalised transpose of the upsampling matrix, written out in NumPy. ``render(build(x))
    == x`` holds for any downsample and constants survive plain decimation: only this test sees a
    wrong filter, a lost normalisation or a clamped border where the run wraps."""
    x = rng.random((2, 13, 19, 3))  # a batch: leading axes are kept
    for (h, w), small in (((13, 19), (7, 10)), ((12, 16), (6, 8)), ((13, 19), (4, 5))):
        got = param.downsample(jnp.asarray(x[:, :h, :w], jnp.float32), small, wrap)
        want = _np_downsample(x[:, :h, :w], small, wrap)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    # The pyramid is built with it: its levels 1.. sum to the image's first low-pass.
    pyr = build(jnp.asarray(x, jnp.float32), 2, wrap)
    want = _np_downsample(x, (7, 10), wrap)
    np.testing.assert_allclose(np.asarray(render(pyr[1:], wrap)), want, rtol=1e-5, atol=1e-6)
    # The reference tells the borders apart, and the filter from decimation.
    other = _np_downsample(x, (7, 10), not wrap)
    assert np.abs(want - other).max() > 0.05
    assert np.abs(want - x[:, ::2, ::2]).max() > 0.05


def test_downsample_keeps_constants_and_levels_are_capped():
    np.testing.assert_allclose(
        np.asarray(param.downsample(jnp.ones((9, 11, 3)), (5, 6))), 1.0, rtol=1e-6
    )
    assert param.levels_for(512, 384) == 5 and param.levels_for(20, 40) == 4
    assert param.levels_for(1, 1) == 0 and param.levels_for(64, 64, 2) == 2


@pytest.mark.parametrize("wrap", [False, True])
def test_gradient_through_the_pyramid_matches_finite_differences(rng, wrap):
    x = rng.random((9, 12, 3))
    target = rng.random((9, 12, 3))
    with jax.enable_x64(True):
        pyr = build(jnp.asarray(x, jnp.float64), 3, wrap)

        @jax.jit
        def loss(p):
            img = param.render(p, wrap)
            return jnp.sum(jnp.sin(3 * img) * target) + jnp.sum(img**2)

        grads = jax.jit(jax.grad(loss))(pyr)
        for k in range(len(pyr)):
            flat = np.asarray(pyr[k]).ravel()
            for i in rng.choice(flat.size, 4, replace=False):
                e = np.zeros_like(flat)
                e[i] = 1e-6
                up = list(pyr)
                dn = list(pyr)
                up[k] = jnp.asarray((flat + e).reshape(pyr[k].shape))
                dn[k] = jnp.asarray((flat - e).reshape(pyr[k].shape))
                fd = (float(loss(tuple(up))) - float(loss(tuple(dn)))) / 2e-6
                assert abs(float(grads[k].ravel()[i]) - fd) < 1e-5 * max(1.0, abs(fd))


def _pair(rng, h=32, w=32):
    from conftest import smooth_image

    return smooth_image(rng, h, w), smooth_image(np.random.default_rng(7), h, w)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_laplacian_run_starts_at_the_pixel_runs_loss_and_descends(small_vars, rng, optimizer):
    content, style = _pair(rng)
    start = np.random.default_rng(3).random(content.shape).astype(np.float32)
    kw = dict(variables=small_vars, iterations=6, optimizer=optimizer, init=start)
    a = stylize(content, style, param="pixels", **kw)
    b = stylize(content, style, param="laplacian", **kw)
    # Iteration 0 evaluates the same image (the pyramid's sum is the starting image).
    np.testing.assert_allclose(b.history["total"][0], a.history["total"][0], rtol=1e-5)
    # (Adam's levels share its learning rate: each moves 1/6 as far, a slower start.)
    assert b.history["total"][-1] < (0.8 if optimizer == "lbfgs" else 0.95) * b.history["total"][0]
    assert b.image.shape == a.image.shape and np.isfinite(b.image).all()
    assert not np.allclose(a.image, b.image, atol=1e-3)  # it is another descent


@pytest.mark.slow  # a masked colour sweep, its single run, a tileable run: ~25 s
def test_laplacian_in_a_sweep_with_masks_colour_and_tiles(small_vars, rng):
    """Checked against a second code path each: a masked, colour-preserving sweep's members
    against the single runs (batched pyramids, one per member), and each run's first loss
    against the pixels' objective at its starting image (the pyramid, wrapped for the tileable
    run and divided by its L-BFGS gains, sums to that image)."""
    content, style = _pair(rng)
    masks = np.stack([np.ones((32, 32)), np.zeros((32, 32))])
    masks[1, :, 16:] = 1
    masks[0, :, 16:] = 0
    common = dict(variables=small_vars, iterations=3, param="laplacian", chunk=3)
    kw = dict(content_masks=masks, preserve_color="luminance", **common)
    weights = (1e-3, 1e-2)
    r = stylize(content, [style, style[::-1]], style_weight=weights, **kw)
    assert r.image.shape == (2, 32, 32, 3) and np.isfinite(r.image).all()
    loss = jax.jit(lambda f, x: f(x)[0])
    for i, w in enumerate(weights):
        one = stylize(content, [style, style[::-1]], style_weight=w, **kw)
        assert np.abs(r.image[i] - one.image).max() <= 1e-3, i
        np.testing.assert_allclose(r.losses[i], one.losses, rtol=1e-3)
        pixels = jaxnst.objective(
            content, [style, style[::-1]], variables=small_vars, style_weight=w,
            content_masks=masks, preserve_color="luminance",
        )  # fmt: skip
        want = float(loss(pixels.loss_fn, pixels.init_image))
        np.testing.assert_allclose(r.history["total"][i][0], want, rtol=1e-5)
    assert np.abs(r.image[0] - r.image[1]).max() > 1e-3  # (the members differ)

    start = np.random.default_rng(4).random((32, 32, 3)).astype(np.float32)
    t = stylize(content, style, tileable=True, init=start, **common)
    pixels = jaxnst.objective(content, style, variables=small_vars, tileable=True, init=start)
    want = float(loss(pixels.loss_fn, pixels.init_image))
    np.testing.assert_allclose(t.history["total"][0], want, rtol=1e-5)
    assert t.history["total"][-1] < t.history["total"][0]


@pytest.mark.slow  # two stages, two pyramid programs, two objectives (~20 s)
def test_laplacian_coarse_to_fine_and_checks(small_vars, rng, monkeypatch):
    """Each stage's first loss is the pixels' objective at the image the stage starts from (the
    stage's own options and init, seen by a spy on the stylize each stage calls); the run
    returns the last stage's image."""
    import importlib

    st_mod = importlib.import_module("jaxnst.stylize")
    real, stages = st_mod.stylize, []

    def spy(c, st, **kw):
        stages.append((c, st, kw, real(c, st, **kw)))
        return stages[-1][-1]

    monkeypatch.setattr(st_mod, "stylize", spy)
    content, style = _pair(rng, 48, 64)
    r = real(content, style, variables=small_vars, iterations=3, scales=(32,), param="laplacian")
    assert r.image.shape == (48, 64, 3) and np.isfinite(r.image).all()
    assert [s[0].shape[:2] for s in stages] == [(24, 32), (48, 64)]
    np.testing.assert_array_equal(r.image, stages[-1][-1].image)
    loss = jax.jit(lambda f, x: f(x)[0])
    for c, st, kw, one in stages:
        assert kw["param"] == "laplacian"
        opts = {k: v for k, v in kw.items() if k not in ("callback", "content_masks")}
        pixels = jaxnst.objective(c, st, content_masks=kw.get("content_masks"), **opts)
        want = float(loss(pixels.loss_fn, pixels.init_image))
        np.testing.assert_allclose(one.history["total"][0], want, rtol=1e-5)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="unknown param"):
        stylize(content, style, variables=small_vars, param="wavelet")
    with pytest.raises(ValueError, match="pyramid_levels"):
        stylize(content, style, variables=small_vars, param="laplacian", pyramid_levels=-1)


def test_laplacian_noise_starts_on_the_coarsest_level():
    """White noise would sit in the finest level and stay as speckle: the pyramid's noise start
    is drawn on its coarsest level and upsampled, so it has no pixel-scale energy."""
    from jaxnst.pipeline import layout
    from jaxnst.pipeline.options import make_options

    zeros = np.zeros((2, 64, 48, 3), np.float32)
    seeds = np.array([0, 1])
    white = np.asarray(layout.initial_images(zeros, seeds, make_options(init="noise")))
    o = make_options(init="noise", param="laplacian")
    coarse = np.asarray(layout.initial_images(zeros, seeds, o))
    hf = lambda x: np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert hf(coarse) < 0.05 * hf(white)
    assert coarse.std() > 0.1 and not np.allclose(coarse[0], coarse[1])  # colourful, seeded
    levels = param.level_shapes(64, 48, param.levels_for(64, 48))
    pyr = build(jnp.asarray(coarse), len(levels) - 1)
    assert float(jnp.abs(pyr[0]).max()) < 0.02  # (bilinear up and down are not exact inverses)


def test_lbfgs_levels_are_preconditioned_so_every_scale_moves_alike():
    """For L-BFGS level k is stored over its gain 2**-k: the image is the same, and a plain
    gradient step on a smooth gradient moves each scale of the image alike (unscaled, level k
    moved 4**k times as far: flat blotches at 1024 px)."""
    x = jnp.asarray(np.random.default_rng(3).uniform(size=(40, 48, 3)), jnp.float32)
    pre = build(x, 3, False, True)
    plain = build(x, 3, False, False)
    np.testing.assert_allclose(np.asarray(render(pre, False, True)), x, atol=2e-6)
    for k, (a, b) in enumerate(zip(pre, plain)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) * 2.0**k, rtol=1e-5, atol=1e-6)

    def step(p, precondition):  # the image moved by one plain step on loss = sum(image)
        g = jax.jit(jax.grad(lambda q: jnp.sum(param.render(q, precondition=precondition))))(p)
        return [
            np.asarray(
                render(
                    tuple(gi if i == k else 0 * gi for i, gi in enumerate(g)), False, precondition
                )
            ).mean()
            for k in range(len(g))
        ]

    per_level = step(pre, True)
    np.testing.assert_allclose(per_level, 1.0, rtol=0.05)  # each scale moves alike
    unscaled = step(plain, False)
    assert unscaled[-1] > 30 * unscaled[0]  # the coarsest moves ~4**3 times as far


@pytest.mark.slow  # video end to end: three clips
def test_video_descends_the_pyramid_and_its_temporal_term_acts(small_vars):
    """``stylize_video(..., param="laplacian")``: each frame's start (the warped previous result)
    becomes a pyramid, and the temporal term pulls through it: without that term the frames
    differ more from their warped neighbours."""
    pytest.importorskip("cv2")
    from jaxnst.video import synthetic
    from jaxnst.video.api import stylize_video

    clip = synthetic.moving_object(3, (24, 32))
    style = synthetic.sample_image("swirls.png", 32)
    kw = dict(variables=small_vars, iterations=6, style_weight=1e-2, tv_weight=1.0)
    lap = stylize_video(clip.frames, style, param="laplacian", temporal_weight=1e4, **kw)
    free = stylize_video(clip.frames, style, param="laplacian", temporal_weight=0.0, **kw)
    pix = stylize_video(clip.frames, style, param="pixels", temporal_weight=1e4, **kw)
    assert lap.frames.shape == clip.frames.shape and np.isfinite(lap.frames).all()
    assert np.abs(lap.frames - pix.frames).max() > 1e-3  # the pyramid changed the descent
    # (measured: frame 1's temporal loss 6.9e-5 without the term, 5.2e-5 with it)
    assert free.losses["temporal"][1] > 1.2 * lap.losses["temporal"][1]
    assert free.losses["temporal"][1:].sum() > lap.losses["temporal"][1:].sum()
