"""Quality controls (issue 4): each checked by a measurable effect, not just that it runs."""

import importlib

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.loss import color
from jaxnst.pipeline import prepare
from jaxnst.stylize import stylize

st = importlib.import_module("jaxnst.stylize")


def np_gram(f):
    x = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
    return x.T @ x / x.shape[0]


def test_blended_grams_are_the_weighted_mean(small_vars, rng):
    c = smooth_image(rng, 32, 32)
    s1, s2 = smooth_image(rng, 40, 24), smooth_image(rng, 24, 48)  # other sizes and aspects
    o = st.make_options(style_blend_weights=[3.0, 1.0])
    t = st.prepare_targets(
        jnp.asarray(c), [jnp.asarray(s1), jnp.asarray(s2)], small_vars, o, o.style_blend_weights
    )
    f1 = st.features(s1, o.style_layers, variables=small_vars)  # one program per style
    f2 = st.features(s2, o.style_layers, variables=small_vars)
    for n in o.style_layers:
        np.testing.assert_allclose(
            t.grams[n],
            0.75 * np_gram(f1[n]) + 0.25 * np_gram(f2[n]),
            rtol=1e-4,
            atol=1e-4 * np.abs(np_gram(f1[n])).max(),
        )


def test_blend_weight_zero_equals_the_single_style(small_vars, rng):
    c, s1, s2 = smooth_image(rng, 32, 32), smooth_image(rng, 32, 40), smooth_image(rng, 36, 36)
    kw = dict(variables=small_vars, optimizer="adam", iterations=5, chunk=4, style_weight=1e-2)
    a = stylize(c, [s1, s2], style_blend_weights=[1.0, 0.0], **kw)
    b = stylize(c, s1, **kw)
    assert np.abs(a.image - b.image).max() <= 1e-5
    with pytest.raises(ValueError, match="2 values for 1 style"):
        stylize(c, s1, style_blend_weights=[1.0, 2.0], **kw)


def test_style_scale_resizes_relative_to_the_content(small_vars, rng):
    c, s = smooth_image(rng, 32, 32), smooth_image(rng, 64, 64)
    assert prepare.rescale(jnp.asarray(s), 0.5 * 32).shape == (16, 16, 3)
    kw = dict(variables=small_vars, optimizer="adam", iterations=3, chunk=4, style_weight=1e-2)
    a = stylize(c, s, style_scale=0.5, **kw)
    b = stylize(c, prepare.rescale(jnp.asarray(s), 16), **kw)
    assert np.abs(a.image - b.image).max() <= 1e-5  # same as resizing the style by hand
    assert np.abs(a.image - stylize(c, s, style_scale=2.0, **kw).image).max() > 1e-3


def test_histogram_matching_gives_the_style_the_contents_colour_statistics(rng):
    c = smooth_image(rng, 40, 40)
    s = np.clip(smooth_image(rng, 30, 50) * [0.3, 0.5, 1.0] + [0, 0.2, 0], 0, 1)
    m = np.asarray(color.match_color_histogram(jnp.asarray(s), jnp.asarray(c)))
    cm, mm = c.reshape(-1, 3), m.reshape(-1, 3)
    np.testing.assert_allclose(mm.mean(0), cm.mean(0), atol=0.02)
    np.testing.assert_allclose(np.cov(mm.T), np.cov(cm.T), atol=0.01)


def test_ycbcr_round_trip(rng):
    x = rng.uniform(size=(5, 5, 3)).astype(np.float32)
    np.testing.assert_allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(x)), x, atol=1e-5)


def chroma_error(image, content):
    a = np.asarray(color.rgb_to_ycbcr(jnp.asarray(image)))[..., 1:]
    b = np.asarray(color.rgb_to_ycbcr(jnp.asarray(content)))[..., 1:]
    return float(np.abs(a - b).mean())


@pytest.mark.slow  # real weights, 64 px, 30-40 iterations
def test_preserve_color_keeps_the_contents_chroma(real_vars):
    variables, _ = real_vars
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), 64)
    style = image_io.resize(image_io.load(sample_path("swirls.png")), 64)  # blue and yellow
    kw = dict(variables=variables, iterations=30, style_weight=1e-3)
    err = {
        pc: chroma_error(stylize(content, style, preserve_color=pc, **kw).image, content)
        for pc in ("none", "luminance", "histogram")
    }
    assert err["luminance"] < 0.01, err  # the content's chroma, by construction (up to clipping)
    assert err["histogram"] < 0.6 * err["none"], err


def np_w2(f, g):
    """Independent NumPy 2-Wasserstein between Gaussians (per channel), eps as in the code."""
    x = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
    y = np.asarray(g, np.float64).reshape(-1, g.shape[-1])
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.cov(x.T, bias=True), np.cov(y.T, bias=True)
    w, v = np.linalg.eigh(cy)
    sy = (v * np.sqrt(np.maximum(w, 0))) @ v.T
    lam = np.linalg.eigvalsh(sy @ cx @ sy)
    tr = np.sum(np.sqrt(np.maximum(lam, 0) + 1e-3))
    return (np.sum((mx - my) ** 2) + np.trace(cx) + np.trace(cy) - 2 * tr) / x.shape[1]


def test_wasserstein_loss_matches_numpy_and_is_zero_at_the_target(rng):
    from jaxnst.loss import losses

    f = rng.standard_normal((6, 5, 4)).astype(np.float32)
    g = (rng.standard_normal((7, 3, 4)) * 2 + 1).astype(np.float32)
    t = losses.wasserstein_target(jnp.asarray(g))
    np.testing.assert_allclose(
        losses.wasserstein_layer_loss(jnp.asarray(f), t), np_w2(f, g), rtol=1e-3, atol=1e-3
    )
    same = float(losses.wasserstein_layer_loss(jnp.asarray(g), t))
    assert abs(same) < 0.02 * np_w2(f, g)  # only the eps term remains


def test_wasserstein_style_loss_descends(small_vars, rng):
    c, s = smooth_image(rng, 32, 32), smooth_image(rng, 36, 36)
    r = stylize(
        c,
        s,
        variables=small_vars,
        style_loss="wasserstein",
        iterations=15,
        style_weight=10.0,
        init="noise",
    )
    assert r.history["style"][-1] < 0.3 * r.history["style"][0]


def test_adam_ema_is_the_average_of_the_iterates(small_vars, rng):
    """Second path: optax.adam stepped from Python, the EMA kept in NumPy."""
    import jax
    import optax

    from jaxnst.loss import losses
    from jaxnst.model import vgg

    c, s = smooth_image(rng, 32, 32), smooth_image(rng, 32, 32)
    kw = dict(
        variables=small_vars,
        optimizer="adam",
        iterations=6,
        chunk=4,
        learning_rate=0.05,
        style_weight=1e-2,
        tv_weight=1.0,
    )
    r = stylize(c, s, ema_decay=0.8, **kw)
    o = st.make_options(optimizer="adam", style_weight=1e-2, tv_weight=1.0)
    t = st.prepare_targets(jnp.asarray(c), jnp.asarray(s), small_vars, o)
    model = vgg.VGG19(channels=vgg.channels_of(small_vars))
    w = losses.Weights(jnp.float32(1), jnp.float32(1e-2), jnp.float32(1.0))
    loss = lambda x: losses.objective(x, model.apply(small_vars, x, vgg.LAYERS[:13]), t, w).total  # noqa
    img, opt = jnp.asarray(c), optax.adam(0.05)
    state, ema = opt.init(img), np.zeros_like(c, np.float64)
    grad = jax.jit(jax.grad(loss))  # one program (op by op, ~250 small ones were compiled)
    for _ in range(6):
        u, state = opt.update(grad(img), state, img)
        img = img + u
        ema = 0.8 * ema + 0.2 * np.asarray(img, np.float64)
    expected = np.clip(ema / (1 - 0.8**6), 0, 1)
    assert np.abs(r.image - expected).max() <= 1e-4
    plain = stylize(c, s, **kw)
    assert np.abs(plain.image - r.image).max() > 1e-3
    with pytest.raises(ValueError, match="ema_decay is for optimizer='adam'"):
        stylize(c, s, variables=small_vars, optimizer="lbfgs", ema_decay=0.9)


def test_texture_and_reconstruction_modes(small_vars, rng):
    from jaxnst import reconstruct_content, synthesize_texture

    s = smooth_image(rng, 32, 40)
    t = synthesize_texture(s, (32, 32), variables=small_vars, iterations=15, style_weight=1e-2)
    assert t.image.shape == (32, 32, 3) and t.history["content"][-1] == 0  # not the style's
    assert t.history["style"][-1] < 0.2 * t.history["style"][0]
    r = reconstruct_content(s, "conv2_2", variables=small_vars, iterations=15, tv_weight=0.0)
    assert r.history["style"][-1] == 0 and r.history["content"][-1] < 0.2 * r.history["content"][0]


def test_guided_gram_against_numpy(rng):
    from jaxnst.loss import losses

    f = rng.standard_normal((4, 6, 3)).astype(np.float32)
    m = rng.uniform(size=(4, 6)).astype(np.float32)
    x = f.reshape(-1, 3).astype(np.float64) * m.reshape(-1, 1)
    np.testing.assert_allclose(
        losses.guided_gram(jnp.asarray(f), jnp.asarray(m)),
        x.T @ x / np.sum(m.astype(np.float64) ** 2),
        rtol=1e-5,
    )
    ones = np.ones((4, 6), np.float32)
    np.testing.assert_allclose(
        losses.guided_gram(jnp.asarray(f), jnp.asarray(ones)),
        losses.gram(jnp.asarray(f)),
        rtol=1e-5,
    )


@pytest.mark.slow  # real weights, 64 px, 30-40 iterations
def test_masks_assign_regions_to_styles(real_vars):
    """Left half -> a red style, right half -> a blue one: each half takes its style's colour."""
    variables, _ = real_vars
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), 64)
    h, w = content.shape[:2]
    swirl = image_io.resize(image_io.load(sample_path("swirls.png")), 64)
    red, blue = swirl[..., [2, 0, 0]], swirl[..., [0, 0, 2]]  # same strokes, other colours
    left = np.zeros((h, w), np.float32)
    left[:, : w // 2] = 1
    r = stylize(
        content,
        [red, blue],
        variables=variables,
        content_masks=np.stack([left, 1 - left]),
        iterations=40,
        style_weight=1e-3,
    )
    img = r.image
    redness = lambda x: float(x[..., 0].mean() - x[..., 2].mean())  # noqa: E731
    assert redness(img[:, : w // 2 - 4]) > redness(img[:, w // 2 + 4 :]) + 0.15
    with pytest.raises(ValueError, match="2 regions for 1 style"):
        stylize(content, red, variables=variables, content_masks=np.stack([left, 1 - left]))


@pytest.mark.slow  # three stages, three programs (11 s)
def test_multiscale_runs_each_scale_from_the_previous_result(small_vars, rng, monkeypatch):
    c, s = smooth_image(rng, 64, 48), smooth_image(rng, 40, 40)
    seen = []
    real = st.stylize

    def spy(content, style, **kw):
        if kw.get("scales") is None:
            seen.append((tuple(np.shape(content)), kw["iterations"], np.shape(kw["init"])))
        return real(content, style, **kw)

    monkeypatch.setattr(st, "stylize", spy)
    r = real(
        c, s, variables=small_vars, scales=[24, 32], scale_iterations=[6, 4, 2], style_weight=1e-2
    )
    assert [x[:2] for x in seen] == [((24, 18, 3), 6), ((32, 24, 3), 4), ((64, 48, 3), 2)]
    assert seen[1][2] == (32, 24, 3) and seen[2][2] == (64, 48, 3)  # warm starts, upsampled
    assert r.image.shape == (64, 48, 3) and r.iterations == 12
    with pytest.raises(ValueError, match="one value per scale plus one"):
        real(c, s, variables=small_vars, scales=[16], scale_iterations=[1])


def test_controls_inside_a_sweep_equal_single_runs(small_vars, rng):
    c = smooth_image(rng, 32, 32)
    s1, s2 = smooth_image(rng, 32, 40), smooth_image(rng, 36, 36)
    left = np.zeros((32, 32), np.float32)
    left[:, :16] = 1
    kw = dict(
        variables=small_vars,
        optimizer="adam",
        iterations=4,
        preserve_color="luminance",
        content_masks=np.stack([left, 1 - left]),
        pooling="avg",
        ema_decay=0.5,
    )
    sweep = stylize(c, [s1, s2], style_weight=[1e-2, 3e-2], **kw)
    for i, w in enumerate([1e-2, 3e-2]):
        one = stylize(c, [s1, s2], style_weight=w, **kw)
        assert np.abs(sweep.image[i] - one.image).max() <= 1e-4
