"""The photorealism term in the descent (issue 30, step 2): ``photoreal_weight`` adds the
content's Matting Laplacian energy (jaxnst.loss.matting) to the objective. Checked against the
explicit Levin Laplacian of tests/test_matting.py, on the small random VGG19 at 24 px."""

import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image
from test_matting import apply_ref, levin_laplacian

from jaxnst.loss import losses, matting
from jaxnst.stylize import stylize

KW = dict(optimizer="adam", iterations=12, chunk=6, learning_rate=0.05, init="noise",
          content_weight=1.0, tv_weight=0.0)  # fmt: skip


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(7)
    return smooth_image(rng, 24, 24), smooth_image(rng, 28, 24)


def energy(content, image):
    """x^T L x / N per channel, summed, with the explicit Laplacian (float64, eps 1e-7)."""
    lap = levin_laplacian(content, 1e-7)
    x = np.asarray(image, np.float64)
    return float(np.sum(x * apply_ref(lap, x)) / (x.shape[0] * x.shape[1]))


def test_the_objective_adds_lambda_times_the_energy(pair):
    content, _ = pair
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.uniform(size=content.shape), jnp.float32)
    t = losses.Targets(content={}, grams={}, matting=matting.matting_stats(jnp.asarray(content)))
    w = losses.Weights(*(jnp.float32(v) for v in (1.0, 1.0, 0.0)), photoreal=jnp.float32(30.0))
    with_term = losses.objective(x, {}, t, w).total
    without = losses.objective(x, {}, t._replace(matting=None), w).total
    np.testing.assert_allclose(float(with_term - without), 30.0 * energy(content, x), rtol=1e-4)


def test_a_run_with_the_term_ends_more_photographic(small_vars, pair):
    """The same seeded descent with photoreal_weight 0 and 1e3: the explicit Laplacian's energy of
    the result falls; weight 0 is bit-identical to not giving the option."""
    plain = stylize(*pair, variables=small_vars, **KW)
    zero = stylize(*pair, variables=small_vars, photoreal_weight=0.0, **KW)
    real = stylize(*pair, variables=small_vars, photoreal_weight=1e3, **KW)
    np.testing.assert_array_equal(plain.image, zero.image)
    e0, e1 = energy(pair[0], plain.image), energy(pair[0], real.image)
    assert e1 < 0.5 * e0, (e0, e1)


def test_a_sweep_of_weights_is_one_batch_equal_to_single_runs(small_vars, pair):
    r = stylize(*pair, variables=small_vars, photoreal_weight=[0.0, 1e3], **KW)
    assert r.image.shape == (2, 24, 24, 3)
    np.testing.assert_array_equal(r.sweep["photoreal_weight"], [0.0, 1e3])
    one = stylize(*pair, variables=small_vars, photoreal_weight=1e3, **KW)
    np.testing.assert_allclose(r.image[1], one.image, atol=2e-4)


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(photoreal_weight=-1.0), "photoreal_weight must be a finite number >= 0"),
        (dict(photoreal_weight=1.0, tile=16), "does not combine with tile"),
    ],
)
def test_bad_values_are_refused(small_vars, pair, kw, message):
    with pytest.raises(ValueError, match=message):
        stylize(*pair, variables=small_vars, **kw)
