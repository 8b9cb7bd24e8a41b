"""``key=`` (issue 16): a jax.random key wherever ``seed=`` goes; a batch of keys is a sweep whose
members equal the single runs; integer seeds stay integers in ``result.sweep``."""

import jax
import numpy as np
import pytest
from conftest import smooth_image

import jaxnst
from jaxnst.pipeline import options

# chunk=4 and batches of 4, as elsewhere in the suite: the same compiled programs serve.
KW = dict(init="noise", optimizer="adam", iterations=2, chunk=4, style_weight=1e-2, tv_weight=1.0)


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(11)
    return smooth_image(rng, 32, 32), smooth_image(rng, 32, 32)


def test_a_key_starts_where_the_same_seed_does(small_vars, pair):
    by_seed = jaxnst.stylize(*pair, variables=small_vars, seed=7, **KW)
    raw = jaxnst.stylize(*pair, variables=small_vars, key=jax.random.PRNGKey(7), **KW)
    typed = jaxnst.stylize(*pair, variables=small_vars, key=jax.random.key(7), **KW)
    np.testing.assert_array_equal(raw.image, by_seed.image)
    np.testing.assert_array_equal(typed.image, by_seed.image)
    other = jaxnst.objective(*pair, variables=small_vars, init="noise", key=jax.random.key(8))
    assert np.abs(np.asarray(other.init_image) - by_seed.image).mean() > 0.1


def test_a_batch_of_keys_is_a_sweep_of_the_single_runs(small_vars, pair):
    keys = jax.random.split(jax.random.key(0), 4)
    r = jaxnst.stylize(*pair, variables=small_vars, key=keys, **KW)
    assert r.image.shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(r.sweep["key"], jax.random.key_data(keys))
    for i in (0, 3):
        one = jaxnst.stylize(*pair, variables=small_vars, key=keys[i], **KW)
        np.testing.assert_allclose(r.image[i], one.image, atol=1e-5)
    # Keys are the fastest-varying axis of the grid, after the weights.
    g = jaxnst.stylize(*pair, variables=small_vars, key=keys[:2], **{**KW, "style_weight": [1, 2]})
    assert list(g.sweep["style_weight"]) == [1, 1, 2, 2]
    np.testing.assert_array_equal(g.sweep["key"], jax.random.key_data(keys)[np.array([0, 1, 0, 1])])


def test_integer_seeds_stay_integers(small_vars, pair):
    seeds = [3, 4_000_000_007, 5, 6]
    r = jaxnst.stylize(*pair, variables=small_vars, seed=seeds, **KW)
    assert r.sweep["seed"].dtype == np.int64 and r.sweep["seed"].tolist() == seeds
    assert isinstance(r.sweep["seed"].tolist()[0], int)


@pytest.mark.parametrize(
    "bad, match",
    [
        (3, "got int .for an int: seed=."),
        (np.zeros(2, np.float32), "dtype float32"),
        (np.zeros((2, 3, 2), np.uint32), r"shape \(2, 3, 2\)"),
        (jax.random.key(0, impl="rbg"), r"threefry"),
    ],
)
def test_bad_keys_are_refused(bad, match):
    with pytest.raises(ValueError, match="^key must be a jax.random key.*" + match):
        options.make_options(key=bad)
