"""NNST's numerical core (issue 31) against independent NumPy references: the nearest-neighbour
search (ties, chunking, masks, bf16), global centring, the rotations, OkLab and the key draws."""

import jax
import numpy as np
import pytest

from jaxnst.loss import nnst


def _np_nearest(q, k, ql=None, kl=None):
    """Brute force in float64: the full cosine-similarity matrix, masked, then np.argmax."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-8)
    k = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-8)
    sim = q @ k.T
    if ql is not None:
        sim = np.where(np.asarray(ql)[:, None] == np.asarray(kl)[None, :], sim, -np.inf)
    return np.argmax(sim, axis=1)


def _np_centre(x):
    x = np.asarray(x, np.float64)
    x = x - x.mean(axis=0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16-rescore"])
@pytest.mark.parametrize("chunk", [1, 7, 16, 50, 1000])
def test_nearest_equals_brute_force_with_ties(chunk, precision):
    rng = np.random.default_rng(0)
    q = rng.normal(size=(50, 32)).astype(np.float32)
    k = rng.normal(size=(40, 32)).astype(np.float32)
    # Exact ties: key 30 duplicates key 3, and key 35 is key 12 scaled (same cosine); queries
    # 0..9 are those keys plus small noise, so the tied pair is each one's best match.
    k[30] = k[3]
    k[35] = 2.0 * k[12]
    q[:5] = k[3] + 0.01 * rng.normal(size=(5, 32))
    q[5:10] = k[12] + 0.01 * rng.normal(size=(5, 32))
    got = np.asarray(nnst.nearest(q, k, chunk=chunk, precision=precision))
    want = _np_nearest(q, k)
    np.testing.assert_array_equal(got, want)
    assert set(got[:5]) == {3} and set(got[5:10]) == {12}  # the lowest of each tied pair


def test_exact_duplicate_queries_of_duplicate_keys_take_the_lowest_index():
    k = np.eye(6, 8, dtype=np.float32)
    k = np.concatenate([k, k])  # every key twice: rows i and i + 6 tie exactly
    q = k[[7, 9, 2, 11]]
    np.testing.assert_array_equal(np.asarray(nnst.nearest(q, k, chunk=3)), [1, 3, 2, 5])


def test_centring_uses_global_means_and_is_chunk_invariant():
    rng = np.random.default_rng(1)
    c = rng.normal(1.5, 1.0, size=(61, 24)).astype(np.float32)
    s = rng.normal(-0.5, 2.0, size=(45, 24)).astype(np.float32)
    cc, sc = nnst.centre(c, s)
    np.testing.assert_allclose(np.asarray(cc), _np_centre(c), atol=1e-5)
    np.testing.assert_allclose(np.asarray(sc), _np_centre(s), atol=1e-5)
    small = np.asarray(nnst.nearest(cc, sc, chunk=7))
    whole = np.asarray(nnst.nearest(cc, sc, chunk=61))
    np.testing.assert_array_equal(small, whole)
    np.testing.assert_array_equal(small, _np_nearest(_np_centre(c), _np_centre(s)))
    # The centring matters here: un-centred, the shared offset changes some matches.
    assert (np.asarray(nnst.nearest(c, s)) != whole).any()


def test_replace_returns_the_raw_style_rows():
    rng = np.random.default_rng(2)
    c = rng.normal(size=(30, 16)).astype(np.float32)
    s = rng.normal(3.0, 1.0, size=(20, 16)).astype(np.float32)
    idx = _np_nearest(_np_centre(c), _np_centre(s))
    np.testing.assert_array_equal(np.asarray(nnst.replace(c, s, chunk=8)), s[idx])
    np.testing.assert_array_equal(np.asarray(nnst.replace(c, s, chunk=7)), s[idx])
    np.testing.assert_array_equal(np.asarray(nnst.replace(c, s, chunk=30)), s[idx])


def test_rotations_match_np_rot90():
    x = np.arange(5 * 3 * 2, dtype=np.float32).reshape(5, 3, 2)
    got = nnst.rotations(x)
    for n, r in enumerate(got):
        np.testing.assert_array_equal(np.asarray(r), np.rot90(x, n))
    assert got[1].shape == (3, 5, 2)


def test_bf16_agreement_is_measured_and_the_rescored_search_meets_999_per_mille():
    # ReLU-like features: non-negative, sparse, 256 channels, centred as NNST does. Measured
    # here (CPU): bf16 alone keeps 0.99463 of fp32's indices, short of issue 31's 99.9 % bar
    # (random features have close runners-up); re-scoring its top 8 in fp32 meets it.
    rng = np.random.default_rng(3)
    c = np.maximum(rng.normal(size=(2048, 256)), 0).astype(np.float32)
    s = np.maximum(rng.normal(size=(1024, 256)), 0).astype(np.float32)
    cc, sc = nnst.centre(c, s)
    bf16 = nnst.agreement(cc, sc, chunk=512)
    rescored = nnst.agreement(cc, sc, chunk=512, precision="bf16-rescore")
    print(f"bf16 agreement with fp32: {bf16:.5f}, re-scored: {rescored:.5f}")
    assert 0.99 <= bf16 < 1.0
    assert rescored >= 0.999


def test_masks_restrict_matches_to_their_region():
    rng = np.random.default_rng(4)
    c = rng.normal(size=(40, 16)).astype(np.float32)
    s = rng.normal(size=(30, 16)).astype(np.float32)
    cl = rng.integers(0, 3, 40)
    sl = rng.integers(0, 3, 30)
    cc, sc = nnst.centre(c, s)
    idx = np.asarray(nnst.nearest(cc, sc, chunk=9, query_labels=cl, key_labels=sl))
    np.testing.assert_array_equal(sl[idx], cl)
    kw = dict(chunk=9, precision="bf16-rescore", query_labels=cl, key_labels=sl)
    np.testing.assert_array_equal(sl[np.asarray(nnst.nearest(cc, sc, **kw))], cl)
    np.testing.assert_array_equal(idx, _np_nearest(_np_centre(c), _np_centre(s), cl, sl))
    assert (idx != np.asarray(nnst.nearest(cc, sc))).any()  # the mask changed something


def test_a_region_absent_from_the_style_keeps_its_unmasked_match():
    rng = np.random.default_rng(5)
    c = rng.normal(size=(12, 8)).astype(np.float32)
    s = rng.normal(size=(10, 8)).astype(np.float32)
    cl = np.array([0] * 6 + [7] * 6)
    sl = np.array([0] * 5 + [1] * 5)
    assert nnst.missing_regions(cl, sl) == [7]
    idx = np.asarray(nnst.nearest(c, s, chunk=5, query_labels=cl, key_labels=sl))
    np.testing.assert_array_equal(idx[6:], _np_nearest(c, s)[6:])
    assert (sl[idx[:6]] == 0).all()


def test_bad_arguments_name_themselves():
    x = np.ones((4, 3), np.float32)
    with pytest.raises(ValueError, match="precision"):
        nnst.nearest(x, x, precision="fp8")
    with pytest.raises(ValueError, match="chunk"):
        nnst.nearest(x, x, chunk=0)
    with pytest.raises(ValueError, match="labels"):
        nnst.nearest(x, x, query_labels=np.zeros(4, int))


def test_oklab_round_trips_and_matches_reference_values():
    rng = np.random.default_rng(6)
    x = rng.uniform(size=(16, 16, 3)).astype(np.float32)
    # float32: near black the sRGB curve's slope (~12) amplifies rounding, measured max 1.05e-5.
    np.testing.assert_allclose(
        np.asarray(nnst.from_oklab(nnst.to_oklab(x))), x, atol=1e-5, rtol=1e-4
    )
    # Björn Ottosson's table (bottosson.github.io/posts/oklab): sRGB white and red.
    white = np.asarray(nnst.to_oklab(np.ones(3, np.float32)))
    np.testing.assert_allclose(white, [1.0, 0.0, 0.0], atol=1e-4)
    red = np.asarray(nnst.to_oklab(np.array([1.0, 0.0, 0.0], np.float32)))
    np.testing.assert_allclose(red, [0.62796, 0.22486, 0.12585], atol=1e-4)
    # On linear light: mid-grey sRGB 0.5 is linear ~0.2140, so L = cbrt(0.2140) ~ 0.5981
    # (without undoing the gamma it would be cbrt(0.5) ~ 0.7937).
    grey = np.asarray(nnst.to_oklab(np.full(3, 0.5, np.float32)))
    np.testing.assert_allclose(grey[0], np.cbrt(((0.5 + 0.055) / 1.055) ** 2.4), atol=1e-4)


def _np_match(x, y):
    """Whiten x, colour with y's covariance, move to y's mean (float64, eigendecompositions)."""

    def sqrtm(c, p):
        w, v = np.linalg.eigh(c)
        return (v * np.maximum(w, 1e-8) ** p) @ v.T

    cx = np.cov(x.T) + 1e-5 * np.eye(x.shape[1])
    cy = np.cov(y.T) + 1e-5 * np.eye(x.shape[1])
    return (x - x.mean(0)) @ sqrtm(cx, -0.5) @ sqrtm(cy, 0.5) + y.mean(0)


def _lab(x):
    return np.asarray(nnst.to_oklab(x), np.float64)


def test_colour_correct_is_output_lightness_and_content_chroma_in_the_style_moments():
    rng = np.random.default_rng(7)
    out = rng.uniform(0.2, 0.8, size=(8, 8, 3)).astype(np.float32)
    content = rng.uniform(0.3, 0.7, size=(8, 8, 3)).astype(np.float32)
    style = rng.uniform(0.0, 1.0, size=(10, 6, 3)).astype(np.float32) * [1.0, 0.6, 0.3]
    s = _lab(style).reshape(-1, 3)
    lo, hi = s.min(0), s.max(0)
    ab = _np_match(_lab(content)[..., 1:].reshape(-1, 2), s[:, 1:]).reshape(8, 8, 2)
    lab = np.clip(np.concatenate([np.clip(_lab(out), lo, hi)[..., :1], ab], -1), lo, hi)
    want = np.clip(np.asarray(nnst.from_oklab(lab.astype(np.float32))), 0, 1)
    got = np.asarray(nnst.colour_correct(out, content, style, smooth=False))
    np.testing.assert_allclose(got, want, atol=2e-4)
    smoothed = np.asarray(nnst.colour_correct(out, content, style))
    assert smoothed.min() >= 0 and smoothed.max() <= 1 and not np.allclose(smoothed, got)


def test_smooth_chroma_matches_a_numpy_loop():
    rng = np.random.default_rng(9)
    lab = rng.normal(size=(6, 7, 3)).astype(np.float32)
    x = lab.astype(np.float64)
    lp = np.pad(x[..., 0], 1, mode="edge")
    ab = x[..., 1:]
    for _ in range(5):
        ap = np.pad(ab, ((1, 1), (1, 1), (0, 0)), mode="edge")
        num, den = np.zeros_like(ab), np.zeros((6, 7, 1))
        for i in range(3):
            for j in range(3):
                wt = np.exp(-10 * np.abs(x[..., 0] - lp[i : i + 6, j : j + 7]))[..., None]
                num += wt * ap[i : i + 6, j : j + 7]
                den += wt
        ab = num / den
    got = np.asarray(nnst.smooth_chroma(lab))
    np.testing.assert_allclose(got[..., 0], lab[..., 0])
    np.testing.assert_allclose(got[..., 1:], ab, atol=1e-5)


def test_a_grey_style_gives_a_grey_result():
    rng = np.random.default_rng(10)
    out = rng.uniform(size=(8, 8, 3)).astype(np.float32)
    style = np.repeat(rng.uniform(size=(8, 8, 1)), 3, axis=-1).astype(np.float32)
    s = _lab(style).reshape(-1, 3)
    lo, hi = s.min(0), s.max(0)
    lab = np.clip(_np_match(np.clip(_lab(out), lo, hi).reshape(-1, 3), s), lo, hi)
    want = np.clip(np.asarray(nnst.from_oklab(lab.reshape(8, 8, 3).astype(np.float32))), 0, 1)
    got = np.asarray(nnst.colour_correct(out, out, style))
    np.testing.assert_allclose(got, want, atol=2e-4)
    assert np.abs(_lab(got)[..., 1:]).max() < 1e-3


def test_reruns_with_the_same_key_are_bit_identical():
    rng = np.random.default_rng(8)
    s = rng.normal(size=(500, 8)).astype(np.float32)
    c = rng.normal(size=(64, 8)).astype(np.float32)

    def run(key):
        bank = nnst.sample_keys(key, s, 100)
        return np.asarray(bank), np.asarray(nnst.replace(c, bank, chunk=16))

    a, b = run(jax.random.key(3)), run(jax.random.key(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    other = run(jax.random.key(4))
    assert not np.array_equal(a[0], other[0])
    assert len({tuple(r) for r in a[0]}) == 100  # distinct rows, drawn without replacement
