"""Method photoreal's start (issue 30): the content recoloured to the style, region by region
(jaxnst.loss.recolour). Checked by the properties the map must have, computed in float64 NumPy:
each region's colour mean and covariance are the style region's, the map is affine within a
region, and the Matting Laplacian smoothing leaves a whole-image affine map unchanged."""

import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.loss import matting, recolour
from jaxnst.stylize import stylize


def stats(pixels):
    p = np.asarray(pixels, np.float64).reshape(-1, 3)
    return p.mean(0), np.cov(p.T)


def affine_residual(src, dst):
    """RMS residual of the least-squares affine map from src rows to dst rows."""
    a = np.c_[np.asarray(src, np.float64).reshape(-1, 3), np.ones(src.size // 3)]
    b = np.asarray(dst, np.float64).reshape(-1, 3)
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return float(np.sqrt(np.mean((a @ coef - b) ** 2)))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    content = smooth_image(rng, 24, 32)
    style = np.clip(0.35 + 0.4 * smooth_image(rng, 20, 28) ** 2, 0, 1).astype(np.float32)
    return content, style


def halves(h, w, split):
    m = np.zeros((2, h, w), np.float32)
    m[0, :, :split] = 1
    m[1, :, split:] = 1
    return m


def test_without_labels_the_colours_take_the_styles_mean_and_covariance(images):
    content, style = images
    out = recolour.region_maps(content, style)
    mean, cov = stats(out)
    s_mean, s_cov = stats(style)
    np.testing.assert_allclose(mean, s_mean, atol=1e-5)
    np.testing.assert_allclose(cov, s_cov, atol=2e-5)
    assert affine_residual(content, out) < 1e-5  # one affine map of the content's colours


def test_each_region_takes_its_own_style_regions_statistics(images):
    content, style = images
    cm, sm = halves(24, 32, 12), halves(20, 28, 20)
    out = recolour.region_maps(content, style, cm, sm)
    for r in range(2):
        got, want = stats(out[cm[r] > 0]), stats(style[sm[r] > 0])
        np.testing.assert_allclose(got[0], want[0], atol=1e-5)
        np.testing.assert_allclose(got[1], want[1], atol=2e-5)
        assert affine_residual(content[cm[r] > 0], out[cm[r] > 0]) < 1e-5
    # the two regions' maps differ: one map for the whole image does not fit
    assert affine_residual(content, out) > 1e-2


def test_pixels_in_no_region_follow_the_whole_image_map(images):
    content, style = images
    cm, sm = halves(24, 32, 12), halves(20, 28, 20)
    cm[1, :, 28:] = 0  # the last four columns are in no region
    out = recolour.region_maps(content, style, cm, sm)
    whole = recolour.region_maps(content, style)
    np.testing.assert_allclose(out[:, 28:], whole[:, 28:], atol=1e-6)
    assert not np.allclose(out[:, 12:28], whole[:, 12:28], atol=1e-3)


def test_smoothing_keeps_a_whole_image_map_and_mends_region_borders(images):
    content, style = images
    plain = recolour.region_maps(content, style)
    assert 0 < plain.min() and plain.max() < 1  # (so the clip does not act)
    np.testing.assert_allclose(recolour.recolour(content, style, smooth=10.0), plain, atol=2e-3)
    cm, sm = halves(24, 32, 12), halves(20, 28, 20)
    raw = recolour.recolour(content, style, cm, sm, smooth=0.0)
    mended = recolour.recolour(content, style, cm, sm, smooth=10.0)
    share = [float(matting.unexplained_share(content, x)) for x in (raw, mended)]
    assert share[1] < 0.5 * share[0], share


def test_mismatched_masks_are_refused_in_one_line(images):
    content, style = images
    with pytest.raises(ValueError, match="masks must be"):
        recolour.region_maps(content, style, halves(24, 30, 12), halves(20, 28, 20))
    with pytest.raises(ValueError, match="give both or neither"):
        recolour.region_maps(content, style, halves(24, 32, 12))


def test_init_recolour_starts_the_descent_from_the_recoloured_content(small_vars, images):
    content, style = images
    kw = dict(variables=small_vars, optimizer="adam", learning_rate=1e-9, iterations=1, chunk=1)
    r = stylize(content, style, init="recolour", **kw)
    np.testing.assert_allclose(r.image, recolour.recolour(content, style), atol=1e-4)
    with pytest.raises(ValueError, match="one content image and one style image"):
        stylize(content, [style, style], init="recolour", **kw)
