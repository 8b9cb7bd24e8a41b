"""Content masks with STROTSS's sampled style term (issue 21): region k of the output is compared
with style k only (jaxnst.loss.sampled's notes: region-wise sampling). The region split and the
weighting against NumPy, the draws, an end-to-end run through coarse-to-fine, and the draw
without masks unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image
from test_strotss import _np_columns
from test_strotss_terms import np_moments, np_palette, np_remd, np_self_sim

import jaxnst
from jaxnst.loss import sampled, strotss
from jaxnst.pipeline import memory
from jaxnst.pipeline.options import make_options

KEY = np.array([0, 11], np.uint32)


def _masks(h, w):
    """Three soft masks: a left region, a right one overlapping it (argmax decides), a third
    holding one pixel (too few points: no region), and pixels in no region (all masks ~0)."""
    x = np.arange(w)[None, :].repeat(h, 0).astype(np.float32)
    m = np.stack([np.clip((w / 2 - x) / 4, 0, 1) * 0.8, np.clip((x - w / 2 + 2) / 4, 0, 1), 0 * x])
    m[2, 5, w // 2] = 1.0  # mask 1 is 0.5 there: region 2, of a single point
    m[:, :3, :3] = 0.0  # no region
    m[:, h - 1, w - 1] = [0.03, 0.0, 0.0]  # below NO_REGION (0.05): no region
    return m


def _np_region(masks, points):
    """Each grid point's region by hand (-1: none): argmax (first on ties) of values >= 0.05;
    regions with fewer than 2 grid points are none."""
    out = []
    for y, x in np.asarray(points).astype(int):
        v = [float(masks[k, y, x]) for k in range(len(masks))]
        out.append(v.index(max(v)) if max(v) >= 0.05 else -1)
    out = np.array(out)
    for k in range(len(masks)):
        if (out == k).sum() < 2:
            out[out == k] = -1
    return out


def _targets(masks, points, styles, content=None):
    cands = tuple(jnp.asarray(c) for c in sampled.regions(masks, points))
    regions = sampled.Regions(cands, tuple(styles), tuple(strotss.mean_cov(y) for y in styles))
    return sampled.Sampled(jnp.asarray(points), content, regions=regions)


def test_region_wise_terms_match_numpy(rng):
    h = w = 16  # grid(16, 16): every pixel
    image = rng.uniform(size=(h, w, 3)).astype(np.float32)
    feats = {
        n: jnp.asarray(rng.standard_normal((h >> (int(n[4]) - 1), w >> (int(n[4]) - 1), 3)))
        for n in sampled.LAYERS
    }
    d = 3 + 3 * len(sampled.LAYERS)
    styles = [jnp.asarray(rng.standard_normal((n, d)), jnp.float32) for n in (30, 25, 20)]
    masks, points = _masks(h, w), sampled.grid(h, w)
    content = jnp.asarray(rng.standard_normal((len(points), d)), jnp.float32)
    t = sampled.pick(_targets(masks, points, styles, content), KEY, 0, 1, 40)
    # (one compiled program, as the loop runs it; op by op it compiled ~200 small ones)
    c, s = jax.jit(sampled.terms)(jnp.asarray(image), feats, t, jnp.float32(3.0))

    idx = np.concatenate([np.asarray(i) for i in t.idx])
    out = _np_columns(image, {k: np.asarray(v) for k, v in feats.items()}, points[idx])
    region = _np_region(masks, points)[idx]
    assert sorted(set(region)) == [-1, 0, 1]  # the one-point region 2 is none
    counts = {k: (region == k).sum() for k in (0, 1)}
    assert counts[0] != counts[1]  # the weights are the shares, not 1/2 each
    want = 0.0
    for k in (0, 1):
        x, y = out[region == k], np.asarray(styles[k], np.float64)
        term = np_remd(x, y) + np_moments(x, y) + np_palette(x[:, :3], y[:, :3]) / 3.0
        want += counts[k] / (counts[0] + counts[1]) * term
    np.testing.assert_allclose(float(s), want, rtol=2e-4)
    # The content term: all drawn points, those in no region included.
    want_c = len(idx) * np_self_sim(out, np.asarray(content, np.float64)[idx])
    np.testing.assert_allclose(float(c), want_c, rtol=2e-4)


def test_draws_stay_in_their_regions_with_documented_counts():
    h, w, samples = 40, 48, 100
    masks, points = _masks(h, w), sampled.grid(h, w)
    styles = [jnp.zeros((4, 3))] * 3
    t0 = _targets(masks, points, styles)
    region = _np_region(masks, points)
    n = np.array([(region == k).sum() for k in (0, 1, 2, -1)])
    assert n[2] == 0 and n[3] > 0
    t = sampled.pick(t0, KEY, 0, 1, samples)
    q = np.array([i.shape[0] for i in t.idx])
    for k, i in zip((0, 1, 2, -1), t.idx):
        assert np.all(region[np.asarray(i)] == k)
    everything = np.concatenate([np.asarray(i) for i in t.idx])
    assert len(np.unique(everything)) == len(everything) == samples
    # Quotas: 2 reserved per non-empty region, the rest split by the shares, rounded.
    reserve = np.array([2, 2, 0, 0])
    share = (samples - 4) * (n - reserve) / (n - reserve).sum()
    assert np.all(np.floor(share) <= q - reserve) and np.all(q - reserve <= np.ceil(share))
    # Deterministic for a key and a step; re-drawn every `every` steps; another key, other points.
    same = sampled.pick(t0, KEY, 1, 2, samples)
    later = sampled.pick(t0, KEY, 2, 2, samples)
    other = sampled.pick(t0, KEY + 1, 0, 1, samples)
    for a, b in zip(t.idx, same.idx):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(t.idx[0]), np.asarray(later.idx[0]))
    assert not np.array_equal(np.asarray(t.idx[0]), np.asarray(other.idx[0]))
    # Fewer grid points than samples: all of them.
    every = sampled.pick(t0, KEY, 0, 1, 10**5)
    assert [i.shape[0] for i in every.idx] == list(n)


@pytest.mark.slow  # end to end through two stages (~20-40 s)
def test_left_and_right_regions_take_their_own_style(small_vars, rng):
    """Red noise for the left mask, blue for the right, at 64 px through two stages (32 and 64
    px: the masks are resized per stage). Mean red - blue: +0.67 left and -0.69 right; with
    ``content_masks=None`` both halves came out alike (-0.05 and -0.00), failing the test."""
    content = smooth_image(rng, 64, 64)

    def noise(channel):
        a = rng.uniform(0, 0.2, (48, 48, 3))
        a[..., channel] = rng.uniform(0.7, 1.0, (48, 48))
        return a.astype(np.float32)

    masks = np.zeros((2, 64, 64), np.float32)
    masks[0, :, :32], masks[1, :, 32:] = 1.0, 1.0
    r = jaxnst.stylize(
        content,
        [noise(0), noise(2)],
        content_masks=masks,
        variables=small_vars,
        method="strotss",
        scales=(32,),
        scale_iterations=(10, 10),
        samples=64,
        style_samples=100,
        learning_rate=0.05,
        content_weight=1.0,
    )
    x = np.asarray(r.image)
    red = x[..., 0] - x[..., 2]
    left, right = float(red[:, :32].mean()), float(red[:, 32:].mean())
    assert left > 0.25 and right < -0.25, (left, right)


def test_without_masks_the_draw_is_unchanged(small_vars, rng):
    points = jnp.asarray(sampled.grid(40, 48))
    t = sampled.Sampled(points)
    for key, step, every, p in ((KEY, 0, 1, 50), (KEY, 5, 2, 50), (KEY + 3, 7, 1, 10**4)):
        np.testing.assert_array_equal(
            np.asarray(sampled.pick(t, key, step, every, p).idx),
            np.asarray(sampled.draw(key, step, every, len(points), p)),
        )
    # One all-ones mask for one style: the unmasked points, targets and objective.
    content, style = smooth_image(rng, 32, 32), smooth_image(np.random.default_rng(5), 32, 32)
    kw = dict(variables=small_vars, samples=60, style_samples=90, seed=4, tv_weight=0.0)
    kw |= dict(style_loss="remd", content_loss="self_similarity")
    plain = jaxnst.objective(content, style, **kw)
    ones = jaxnst.objective(content, style, content_masks=np.ones((1, 32, 32)), **kw)
    np.testing.assert_array_equal(
        np.concatenate(ones.targets.sampled.idx), plain.targets.sampled.idx
    )
    total = jax.jit(lambda f, x: f(x)[0])  # (the Partials as arguments: one program per shape)
    a, b = total(plain.loss_fn, content + 0.0), total(ones.loss_fn, content + 0.0)
    np.testing.assert_allclose(float(b), float(a), rtol=1e-6)
    # What is still refused, and the preflight's count of the per-style arrays.
    two = np.stack([np.ones((32, 32)), np.zeros((32, 32))])
    for bad, match in ((dict(style_loss="wasserstein"), "wasserstein"), (dict(samples=3), "2 per")):
        with pytest.raises(ValueError, match=match):
            jaxnst.objective(content, [style, style], content_masks=two, **(kw | bad))
    o = make_options(method="strotss", scales="none")
    assert memory.sampled_bytes(1, o, regions=2) > memory.sampled_bytes(1, o)
