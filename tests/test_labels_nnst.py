"""Labels beyond one Gram scale (issues 30 and 31): label-guided NNST (a region's positions match
only the style's same region; the targets against a NumPy search restricted by hand-made
regions), labels through a coarse-to-fine run (the style's masks follow the style to each
stage's size), and ``style_masks`` given as masks. Tiny images and the small random VGG."""

import dataclasses

import jax
import numpy as np
import pytest
from conftest import smooth_image

from jaxnst.loss import neighbours
from jaxnst.pipeline import labels, multiscale, prepare
from jaxnst.pipeline.options import make_options
from jaxnst.stylize import stylize

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
NNST = dict(method="nnst", scales=None, nnst_final_steps=0)


def rows(h, w, *bands):
    """(h, w, 3) uint8 labels: horizontal bands of equal height, one colour each."""
    a = np.zeros((h, w, 3), np.uint8)
    for i, colour in enumerate(bands):
        a[i * h // len(bands) : (i + 1) * h // len(bands)] = colour
    return a


def np_columns(image, variables):
    """(Q, D) hypercolumns of an image, in NumPy from the network's activations: each layer
    divided by its channels and resized bilinearly with aligned corners to a quarter."""
    import jaxnst

    h, w = image.shape[:2]
    feats = jaxnst.features(image, neighbours.LAYERS, variables=variables)
    cols = [np_resize(np.asarray(feats[n], np.float64), h // 4, w // 4) / feats[n].shape[-1]
            for n in neighbours.LAYERS]  # fmt: skip
    return np.concatenate(cols, -1).reshape((h // 4) * (w // 4), -1)


def np_resize(f, gh, gw):
    def weights(n_out, n_in):
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            y = i * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
            y0 = min(int(np.floor(y)), n_in - 1)
            y1 = min(y0 + 1, n_in - 1)
            m[i, y0] += 1 - (y - y0)
            m[i, y1] += y - y0
        return m

    return np.einsum("yh,hwc,xw->yxc", weights(gh, f.shape[0]), f, weights(gw, f.shape[1]))


def unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def grid_region(h, w, bands):
    """Each quarter-size grid position's band (the bands are whole grid rows here)."""
    gh, gw = h // 4, w // 4
    return np.repeat(np.arange(gh) * bands // gh, gw)


def test_labelled_nnst_matches_only_the_same_region_of_the_style(small_vars):
    """Content: red over green; style: green over red. Each content position's target is the
    nearest style row of its own colour (a NumPy search over that region's rows only), and the
    unguided search would have crossed over."""
    rng = np.random.default_rng(0)
    content, style = smooth_image(rng, 32, 32), smooth_image(rng, 32, 32)
    lm = labels.label_masks(rows(32, 32, RED, GREEN), rows(32, 32, GREEN, RED), (32, 32), (32, 32))
    p = prepare.prepare(content, style, make_options(**NNST), variables=small_vars,
                        content_masks=lm.content, style_masks=lm.style)  # fmt: skip
    q, k = np_columns(content, small_vars), np_columns(style, small_vars)
    sim = unit(q - q.mean(0)) @ unit(k - k.mean(0)).T
    # Regions by colour: label_masks orders the shared colours; map each band to its region.
    region_of = {tuple(c): i for i, c in enumerate(lm.colours)}
    qr = np.array([region_of[RED], region_of[GREEN]])[grid_region(32, 32, 2)]
    kr = np.array([region_of[GREEN], region_of[RED]])[grid_region(32, 32, 2)]
    idx = np.where(qr[:, None] == kr[None, :], sim, -np.inf).argmax(1)
    np.testing.assert_allclose(np.asarray(p.targets.nnst.target[0]), unit(k[idx]), atol=1e-5)
    assert (kr[sim.argmax(1)] != qr).any()  # (unguided, some would cross over)


def test_labelled_nnst_with_rotations_keeps_each_match_in_its_region(small_vars):
    """The style's masks turn with the style: with the bank's 90/180/270 degree rotations, every
    target is a row of the query's own region (the regions of the rotated bank found by rotating
    the label image with NumPy and sampling it at each rotated grid's positions)."""
    rng = np.random.default_rng(1)
    content, style = smooth_image(rng, 32, 32), smooth_image(rng, 32, 48)
    s_labels = np.zeros((32, 48, 3), np.uint8)
    s_labels[:, :24], s_labels[:, 24:] = GREEN, RED  # left green, right red
    lm = labels.label_masks(rows(32, 32, RED, GREEN), s_labels, (32, 32), (32, 48))
    o = make_options(**NNST, nnst_rotations=True)
    p = prepare.prepare(content, style, o, variables=small_vars, content_masks=lm.content,
                        style_masks=lm.style)  # fmt: skip
    region_of = {tuple(c): i for i, c in enumerate(lm.colours)}
    keys, key_region = [], []
    for turn in range(4):
        im, lab = np.rot90(style, turn), np.rot90(s_labels, turn)
        keys.append(np_columns(np.ascontiguousarray(im), small_vars))
        h, w = im.shape[:2]
        ys = np.round(np.arange(h // 4) * (h - 1) / (h // 4 - 1)).astype(int)
        xs = np.round(np.arange(w // 4) * (w - 1) / (w // 4 - 1)).astype(int)
        key_region.append([region_of[tuple(c)] for c in lab[ys][:, xs].reshape(-1, 3)])
    k, kr = np.concatenate(keys), np.concatenate(key_region)
    qr = np.array([region_of[RED], region_of[GREEN]])[grid_region(32, 32, 2)]
    got = np.asarray(p.targets.nnst.target[0])
    best = (got @ unit(k).T).argmax(1)  # which key each target is
    np.testing.assert_allclose(got, unit(k[best]), atol=1e-5)
    assert (kr[best] == qr).all()


def test_a_position_in_no_region_searches_the_whole_bank(small_vars):
    """A content colour absent from the style is left out: its positions match anywhere (the
    unguided NumPy search), the guided ones only their region."""
    rng = np.random.default_rng(2)
    content, style = smooth_image(rng, 48, 32), smooth_image(rng, 32, 32)
    lm = labels.label_masks(rows(48, 32, RED, GREEN, BLUE), rows(32, 32, GREEN, RED), (48, 32),
                            (32, 32))  # fmt: skip
    assert "#0000ff" in lm.left_out
    p = prepare.prepare(content, style, make_options(**NNST), variables=small_vars,
                        content_masks=lm.content, style_masks=lm.style)  # fmt: skip
    q, k = np_columns(content, small_vars), np_columns(style, small_vars)
    sim = unit(q - q.mean(0)) @ unit(k - k.mean(0)).T
    region_of = {tuple(c): i for i, c in enumerate(lm.colours)}
    qr = np.array([region_of[RED], region_of[GREEN], -1])[grid_region(48, 32, 3)]
    kr = np.array([region_of[GREEN], region_of[RED]])[grid_region(32, 32, 2)]
    idx = np.where((qr[:, None] == kr[None, :]) | (qr[:, None] < 0), sim, -np.inf).argmax(1)
    np.testing.assert_allclose(np.asarray(p.targets.nnst.target[0]), unit(k[idx]), atol=1e-5)


def test_stage_masks_follow_the_style_by_nearest_neighbours():
    content = np.zeros((160, 160, 3), np.float32)
    style = np.zeros((120, 60, 3), np.float32)
    sm = np.zeros((3, 120, 60), np.float32)
    sm[0, :, :25], sm[1, :, 25:] = 1.0, 1.0
    sm[:2, 7::11] = sm[1::-1, 7::11]  # (rows that tell which source row was read)
    sm[:, 1, 1] = 0, 0, 1  # region 2: one pixel, which no nearest neighbour reads at 80 px
    eye = np.eye(160, dtype=np.float32)
    cm = np.stack([eye, 1 - eye, np.ones_like(eye)])
    o = make_options(scales=(80,), iterations=2)
    base = dataclasses.asdict(o) | {"scales": None, "scale_iterations": None}
    c, st, (m, s), _ = multiscale._stage(content, [style], (cm, sm), base, o, 80, 2)
    assert c.shape == (80, 80, 3) and st[0].shape == (80, 40, 3) and m.shape == (3, 80, 80)
    ys = np.floor((np.arange(80) + 0.5) * 120 / 80).astype(int)  # nearest source rows, columns
    xs = np.floor((np.arange(40) + 0.5) * 60 / 40).astype(int)
    np.testing.assert_array_equal(np.asarray(s), sm[:, ys][:, :, xs])
    assert np.asarray(m[:2]).any(axis=(1, 2)).all()
    assert not np.asarray(m[2]).any()  # its style region vanished: no zero Gram target


def test_labels_run_coarse_to_fine_with_the_gram_and_the_nnst_losses(small_vars):
    """Labels no longer need one scale: a Gram run with scales and an NNST run (its stages) both
    finish, guided, and say which colour they left out; style_masks as masks need content
    masks of as many regions, at the style's size."""
    rng = np.random.default_rng(3)
    content, style = smooth_image(rng, 48, 48), smooth_image(rng, 48, 40)
    cl, sl = rows(48, 48, RED, GREEN), rows(48, 40, GREEN, RED, BLUE)
    kw = dict(variables=small_vars, content_labels=cl, style_labels=sl)
    prev = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)  # (paths, not numbers)
    try:
        g = stylize(content, style, scales=(32,), iterations=2, optimizer="adam", **kw)
        n = stylize(content, style, method="nnst", scales=(32,), iterations=2, **kw)
    finally:
        jax.config.update("jax_disable_most_optimizations", prev)
    for r in (g, n):
        assert r.image.shape == (48, 48, 3) and np.isfinite(r.image).all()
        assert r.labels_left_out and "#0000ff" in r.labels_left_out
    masks = np.ones((1, 48, 48), np.float32)
    with pytest.raises(ValueError, match="style_masks must be"):
        stylize(content, style, variables=small_vars, content_masks=masks,
                style_masks=np.ones((2, 48, 40)), iterations=1)  # fmt: skip
    with pytest.raises(ValueError, match="give both"):
        stylize(content, style, variables=small_vars, style_masks=np.ones((1, 48, 40)))
