"""Quality controls (issue 4): each checked by a measurable effect, not just that it runs."""
import importlib

import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst import color, image_io
from jaxnst.cli import sample_path
from jaxnst.stylize import stylize
from conftest import smooth_image

st = importlib.import_module("jaxnst.stylize")


def np_gram(f):
    x = np.asarray(f, np.float64).reshape(-1, f.shape[-1])
    return x.T @ x / x.shape[0]


def test_blended_grams_are_the_weighted_mean(small_vars, rng):
    c = smooth_image(rng, 32, 32)
    s1, s2 = smooth_image(rng, 40, 24), smooth_image(rng, 24, 48)  # other sizes and aspects
    o = st.make_options(style_blend_weights=[3.0, 1.0])
    t = st.prepare_targets(jnp.asarray(c), [jnp.asarray(s1), jnp.asarray(s2)], small_vars, o,
                           o.style_blend_weights)
    for n in o.style_layers:
        f1 = st.features(s1, [n], variables=small_vars)[n]
        f2 = st.features(s2, [n], variables=small_vars)[n]
        np.testing.assert_allclose(t.grams[n], 0.75 * np_gram(f1) + 0.25 * np_gram(f2),
                                   rtol=1e-4, atol=1e-4 * np.abs(np_gram(f1)).max())


def test_blend_weight_zero_equals_the_single_style(small_vars, rng):
    c, s1, s2 = smooth_image(rng, 32, 32), smooth_image(rng, 32, 40), smooth_image(rng, 36, 36)
    kw = dict(variables=small_vars, optimizer="adam", iterations=5, style_weight=1e-2)
    a = stylize(c, [s1, s2], style_blend_weights=[1.0, 0.0], **kw)
    b = stylize(c, s1, **kw)
    assert np.abs(a.image - b.image).max() <= 1e-5
    with pytest.raises(ValueError, match="2 values for 1 style"):
        stylize(c, s1, style_blend_weights=[1.0, 2.0], **kw)


def test_style_scale_resizes_relative_to_the_content(small_vars, rng):
    c, s = smooth_image(rng, 32, 48), smooth_image(rng, 64, 64)
    assert st._rescale(jnp.asarray(s), 0.5 * 48).shape == (24, 24, 3)
    kw = dict(variables=small_vars, optimizer="adam", iterations=3, style_weight=1e-2)
    a = stylize(c, s, style_scale=0.5, **kw)
    b = stylize(c, st._rescale(jnp.asarray(s), 24), **kw)
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


def test_preserve_color_keeps_the_contents_chroma(real_vars):
    variables, _ = real_vars
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), 64)
    style = image_io.resize(image_io.load(sample_path("swirls.png")), 64)  # blue and yellow
    kw = dict(variables=variables, iterations=30, style_weight=1e-3)
    err = {pc: chroma_error(stylize(content, style, preserve_color=pc, **kw).image, content)
           for pc in ("none", "luminance", "histogram")}
    assert err["luminance"] < 0.01, err  # the content's chroma, by construction (up to clipping)
    assert err["histogram"] < 0.6 * err["none"], err
