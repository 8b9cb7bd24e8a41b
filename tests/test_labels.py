"""Label-guided style (issue 30, step 3): colour-coded label images to mask pairs
(jaxnst.pipeline.labels) and the style's regions' Grams as targets (the CLI's flags:
tests/test_labels_cli.py)."""

import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.pipeline import labels, prepare
from jaxnst.pipeline.options import make_options
from jaxnst.stylize import stylize

RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)
KW = dict(optimizer="adam", iterations=6, chunk=6, learning_rate=0.05, tv_weight=0.0)


def halves(h, w, top, bottom, dtype=np.uint8):
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2], a[h // 2 :] = top, bottom
    return a if dtype == np.uint8 else (a / 255).astype(dtype)


def test_shared_colours_become_mask_pairs_and_the_rest_is_reported():
    c = halves(40, 40, RED, GREEN)
    c[:4, :4] = WHITE  # 16 px: tiny
    c[-2:, :] = BLUE  # in the content only
    s = halves(32, 48, RED, GREEN)
    s[:10, :10] = WHITE  # (present on both sides, but 16 px in the content)
    s[0, 0] = (9, 9, 9)  # in the style only
    got = labels.label_masks(c, s, (40, 40), (32, 48))
    assert got.colours == (GREEN, RED)
    assert got.content.shape == (2, 40, 40) and got.style.shape == (2, 32, 48)
    np.testing.assert_array_equal(got.content[1], np.all(c == RED, -1))
    np.testing.assert_array_equal(got.style[0], np.all(s == GREEN, -1))
    note = got.left_out
    assert note.count("\n") == 0 and "guiding 2 region(s)" in note
    assert "#0000ff (not in the style labels)" in note
    assert "#090909 (not in the content labels)" in note
    assert "#ffffff (16 px in the content, under 64)" in note


def test_areas_more_than_100x_apart_are_left_out():
    c = halves(40, 40, RED, GREEN)
    s = np.zeros((100, 100, 3), np.uint8)
    s[:] = GREEN
    s[:8, :9] = RED  # 0.72 % of the style against 50 % of the content: 69x, kept
    assert labels.label_masks(c, s, (40, 40), (100, 100)).left_out is None
    s2 = np.full((300, 300, 3), GREEN, np.uint8)
    s2[:8, :8] = RED  # 0.07 %: 703x
    got = labels.label_masks(c, s2, (40, 40), (300, 300))
    assert got.colours == (GREEN,) and "areas 703x apart, over 100x" in got.left_out


def test_wrong_sizes_are_resized_by_nearest_neighbours():
    c = halves(20, 30, RED, GREEN, np.float32)  # float labels in [0, 1] too
    got = labels.label_masks(c, c, (40, 60), (10, 15))
    assert got.content.shape == (2, 40, 60) and got.style.shape == (2, 10, 15)
    assert set(np.unique(got.content)) == {0.0, 1.0}
    np.testing.assert_array_equal(got.content[1, :20], 1.0)  # red: the top half
    np.testing.assert_array_equal(got.content[1, 20:], 0.0)


@pytest.mark.parametrize(
    "content, style, message",
    [
        ("photo", "ok", "content_labels has .* distinct colours; expected a colour-coded"),
        ("ok", "photo", "style_labels has .* distinct colours"),
        ("ok", "grey", r"style_labels must be an \(H, W, 3\)"),
        ("ok", "blue", "share no usable colour"),
    ],
)
def test_bad_label_images_are_refused(content, style, message):
    rng = np.random.default_rng(0)
    images = {
        "ok": halves(32, 32, RED, GREEN),
        "photo": (rng.random((32, 32, 3)) * 255).astype(np.uint8),
        "grey": np.zeros((32, 32), np.uint8),
        "blue": np.full((32, 32, 3), BLUE, np.uint8),
    }
    with pytest.raises(ValueError, match=message):
        labels.label_masks(images[content], images[style], (32, 32), (32, 32))


def pooled(m, times):
    for _ in range(times):
        h, w = m.shape
        m = m[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2).mean((1, 3))
    return m


def test_each_region_takes_the_gram_of_the_style_region_of_its_colour(small_vars):
    rng = np.random.default_rng(3)
    content, style = smooth_image(rng, 32, 32), smooth_image(rng, 48, 32)
    lm = labels.label_masks(halves(32, 32, RED, GREEN), halves(48, 32, GREEN, RED), (32, 32),
                            (48, 32))  # fmt: skip
    o = make_options(style_layers=("conv1_1", "conv2_1", "conv3_1"))
    p = prepare.prepare(content, style, o, variables=small_vars, content_masks=lm.content,
                        style_masks=lm.style)  # fmt: skip
    feats = prepare.features(style, o.style_layers, variables=small_vars)
    for n, f in feats.items():
        f = np.asarray(f, np.float64)
        for r in range(2):
            m = pooled(lm.style[r], int(n[4]) - 1)
            x = f.reshape(-1, f.shape[-1]) * m.reshape(-1, 1)
            ref = x.T @ x / np.sum(m * m)
            np.testing.assert_allclose(p.targets.grams[n][r], ref, rtol=2e-5, atol=1e-6)
        k = int(n[4]) - 1  # the content's masks, pooled to the layer
        np.testing.assert_allclose(p.targets.masks[n][0], pooled(lm.content[0], k), atol=1e-6)


def test_one_colour_on_both_sides_is_the_plain_run(small_vars):
    rng = np.random.default_rng(4)
    content, style = smooth_image(rng, 24, 24), smooth_image(rng, 28, 24)
    plain = stylize(content, style, variables=small_vars, **KW)
    one = np.full((24, 24, 3), 128, np.uint8)
    r = stylize(content, style, variables=small_vars, content_labels=one,
                style_labels=one[:20], **KW)  # fmt: skip
    np.testing.assert_allclose(r.image, plain.image, atol=1e-4)
    assert r.labels_left_out is None


def test_what_labels_do_not_combine_with_is_refused(small_vars):
    rng = np.random.default_rng(5)
    content, style = smooth_image(rng, 24, 24), smooth_image(rng, 24, 24)
    one = np.full((24, 24, 3), 128, np.uint8)
    for kw, message in [
        (dict(content_labels=one), "go together"),
        (dict(content_labels=one, style_labels=one, style_loss="remd"), "style_loss='gram'"),
        (dict(content_labels=one, style_labels=one, content_masks=one[..., 0]), "one or the"),
    ]:
        with pytest.raises(ValueError, match=message):
            stylize(content, style, variables=small_vars, **KW, **kw)
