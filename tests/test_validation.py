"""Input validation of the API (issue 16): non-finite values and values outside [0, 1] are refused
with a one-line ValueError naming the argument, like the shape errors."""

import numpy as np
import pytest
from conftest import smooth_image

import jaxnst
from jaxnst.pipeline import prepare


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(5)
    return smooth_image(rng, 32, 32), smooth_image(rng, 32, 32)


def _refused(match, *args, **kw):
    with pytest.raises(ValueError, match=match) as e:
        jaxnst.stylize(*args, iterations=1, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_nan_content_is_refused_before_any_step(small_vars, pair):
    c, s = pair
    msg = _refused(
        r"^content has non-finite values", np.full((32, 32, 3), np.nan), s, variables=small_vars
    )
    assert "[0, 1]" in msg
    bad = s.copy()
    bad[3, 4, 1] = np.inf
    _refused(r"^style has non-finite", c, bad, variables=small_vars)


def test_values_outside_0_1_are_refused_with_the_8bit_hint(small_vars, pair):
    c, s = pair
    msg = _refused(
        r"^content has values up to 255\.0; expected floats in \[0, 1\]",
        c * 255,
        s,
        variables=small_vars,
    )
    assert "divide an 8-bit image by 255" in msg
    _refused(
        r"^content has values up to 5\.0",
        np.linspace(0, 5, 32 * 32 * 3).reshape(32, 32, 3),
        s,
        variables=small_vars,
    )
    _refused(r"^style 2 has values down to -0\.5", c, [s, s - 0.5], variables=small_vars)
    _refused(r"^init has values up to", c, s, variables=small_vars, init=c + 0.5)


def test_a_batch_is_checked_beyond_its_first_image(small_vars, pair):
    c, s = pair
    batch = np.stack([c, c * 3])  # the first image is fine, the second is not
    _refused(r"^content has values up to", batch, s, variables=small_vars)


def test_tolerance_accepts_resampling_overshoot_and_clips_nothing(pair):
    c, _ = pair
    c = c.copy()
    c[0, 0, 0], c[0, 0, 1] = 1.0 + 5e-4, -5e-4
    out = prepare.as_image(c, "content")
    assert float(out.max()) == pytest.approx(1.0 + 5e-4) and float(out.min()) < 0
    with pytest.raises(ValueError, match="content has values up to 1.002"):
        prepare.as_image(np.where(c > 0.99, 1.002, c), "content")
