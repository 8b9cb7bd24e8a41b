"""The photorealism term in the descent (issue 30, step 2): ``photoreal_weight`` adds the
content's Matting Laplacian energy (jaxnst.loss.matting) to the objective. Checked against the
explicit Levin Laplacian of tests/test_matting.py, on the small random VGG19 at 24 px."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
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


def test_the_objective_api_adds_the_term(small_vars, pair):
    from jaxnst.objective import objective

    content, style = pair
    x = jnp.asarray(np.random.default_rng(2).uniform(size=content.shape), jnp.float32)
    on = objective(content, style, variables=small_vars, photoreal_weight=30.0).loss_fn(x)[0]
    off = objective(content, style, variables=small_vars).loss_fn(x)[0]
    np.testing.assert_allclose(float(on - off), 30.0 * energy(content, x), rtol=1e-3)


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
        (dict(photoreal_smooth=-1.0), "photoreal_smooth must be a finite number >= 0"),
        (dict(photoreal_smooth="a"), "photoreal_smooth must be a finite number >= 0"),
    ],
)
def test_bad_values_are_refused(small_vars, pair, kw, message):
    with pytest.raises(ValueError, match=message):
        stylize(*pair, variables=small_vars, **kw)


def smoothed_ref(content, image, lam):
    """(I + lam L)^-1 x per channel with SciPy's sparse direct solve, clipped to [0, 1]."""
    n = content.shape[0] * content.shape[1]
    a = (sp.identity(n) + lam * levin_laplacian(content, 1e-7)).tocsc()
    x = np.asarray(image, np.float64)
    y = np.stack([spla.spsolve(a, x[..., c].ravel()) for c in range(3)], -1)
    return np.clip(y.reshape(x.shape), 0, 1)


def test_smoothing_equals_a_sparse_solve(small_vars, pair):
    """photoreal_smooth: the run's image is (I + lam' L)^-1 of the unsmoothed run's, to the
    stated tolerance (clipping is 1-Lipschitz: ||y - y*|| <= tol ||x|| still holds)."""
    plain = stylize(*pair, variables=small_vars, **KW)
    r = stylize(*pair, variables=small_vars, photoreal_smooth=30.0, **KW)
    ref = smoothed_ref(pair[0], plain.image, 30.0)
    assert np.linalg.norm(r.image - ref) <= 1.2e-4 * np.linalg.norm(plain.image)
    assert np.linalg.norm(plain.image - ref) > 1e-2 * np.linalg.norm(plain.image)
    s = r.smoothing
    assert s["residual"] < 1e-3 and 0 < s["iterations"] < matting.SMOOTH_MAX_ITER
    assert s["weight"] == 30.0 and plain.smoothing is None
    off = stylize(*pair, variables=small_vars, photoreal_smooth=0.0, **KW)
    np.testing.assert_array_equal(off.image, plain.image)


@pytest.mark.parametrize("sweep", [True, False])
def test_smoothing_each_member_of_a_sweep_and_only_the_last_scale(
    small_vars, pair, monkeypatch, sweep
):
    from jaxnst.pipeline import collect

    calls = []
    real = matting.smooth
    monkeypatch.setattr(collect.matting, "smooth", lambda c, x, lam: calls.append(x.shape)
                        or real(c, x, lam))  # fmt: skip
    if sweep:
        r = stylize(*pair, variables=small_vars, photoreal_smooth=30.0, seed=[0, 1], **KW)
        assert calls == [(24, 24, 3)] * 2 and r.smoothing["iterations"].shape == (2,)
        return
    r = stylize(*pair, variables=small_vars, photoreal_smooth=30.0, scales=(16,), **KW)
    assert calls == [(24, 24, 3)] and r.smoothing["iterations"] > 0


def test_the_cli_reports_the_solve_in_its_json(tmp_path, capsys, real_vars):
    from PIL import Image

    from jaxnst.cli import command as cli

    rng = np.random.default_rng(0)
    for name, (h, w) in (("c.png", (24, 32)), ("s.png", (20, 20))):
        Image.fromarray((smooth_image(rng, h, w) * 255).astype(np.uint8)).save(tmp_path / name)
    argv = [tmp_path / "c.png", tmp_path / "s.png", "-o", tmp_path / "o.png", "--size", 32,
            "--iterations", 2, "--photoreal-smooth", 100,
            "--json", tmp_path / "r.json"]  # fmt: skip
    assert cli.main([str(a) for a in argv]) == 0
    err = capsys.readouterr().err
    assert "conjugate-gradient iterations" in err, err
    s = json.loads((tmp_path / "r.json").read_text())["smoothing"]
    assert s["weight"] == 100 and s["residual"] < 1e-2 and s["iterations"] > 0


def test_method_photoreal_is_dpsts_recipe_overridable_one_by_one():
    from jaxnst.cli import flags, inputs
    from jaxnst.pipeline.options import PHOTOREAL, make_options

    o = make_options(method="photoreal")
    for k, v in PHOTOREAL.items():
        assert getattr(o, k) == v, k
    assert (o.photoreal_weight, o.style_weight, o.init) == (1e10, 3e-3, "recolour")
    o = make_options(method="photoreal", photoreal_weight=0.0, iterations=7)
    assert (o.photoreal_weight, o.iterations, o.style_weight) == (0.0, 7, 3e-3)
    args = flags.build_parser().parse_args(["c", "s", "-o", "x.png", "--method", "photoreal",
                                            "--style-weight", "1e-2"])  # fmt: skip
    o = inputs.options_from_args(args, (32, 32))
    assert (o.method, o.style_weight, o.photoreal_weight) == ("photoreal", 1e-2, 1e10)
    assert o.photoreal_adapt  # the preset's own weight adapts to the start; a weight given is kept
    assert not make_options(method="photoreal", photoreal_weight=1e10).photoreal_adapt
    assert make_options(
        method="photoreal", photoreal_weight=1, photoreal_adapt=True
    ).photoreal_adapt


def test_the_presets_schedule_puts_two_fifths_of_the_iterations_at_half_the_side():
    """photoreal_schedule: 500 are 200 at half the longer side + 300 at it (0.7 of their cost
    single-scale); single-scale below 256 px; scales given are kept."""
    from jaxnst.pipeline import multiscale
    from jaxnst.pipeline.options import make_options

    o = multiscale.resolve(make_options(method="photoreal"), (341, 512, 3))
    assert (o.scales, o.scale_iterations) == ((256,), (200, 300))
    line = multiscale.describe(o, (341, 512, 3))
    assert "200 iterations at 256 px, 300 iterations at 512 px (~350 full-size" in line
    o = multiscale.resolve(make_options(method="photoreal", iterations=7), (256, 180, 3))
    assert (o.scales, o.scale_iterations) == ((128,), (3, 4))
    o = multiscale.resolve(make_options(method="photoreal"), (255, 170, 3))
    assert (o.scales, o.scale_iterations) == (None, None)
    o = multiscale.resolve(make_options(method="photoreal", scales="none"), (341, 512, 3))
    assert o.scales is None


def test_a_finer_stage_starts_from_the_coarse_result_plus_the_detail_it_could_not_hold():
    """with_detail: where the coarse stage changed nothing the finer stage starts at the
    recoloured start itself (the plain upsampling loses its detail); a change made at the
    coarse stage is carried up."""
    import jax

    from jaxnst.pipeline import multiscale

    init = 0.1 + 0.8 * smooth_image(np.random.default_rng(3), 24, 32)  # (noisy: fine detail)
    small = jax.image.resize(jnp.asarray(init), (12, 16, 3), "lanczos3")
    up = np.asarray(jax.image.resize(small, (24, 32, 3), "lanczos3"))
    assert np.abs(up - init).max() > 0.05  # what a plain upsampled start would lose
    got = multiscale.with_detail(up, init, (12, 16, 3), (24, 32, 3))
    np.testing.assert_allclose(got, init, atol=1e-5)
    changed = np.asarray(jax.image.resize(small - 0.05, (24, 32, 3), "lanczos3"))
    got = multiscale.with_detail(changed, init, (12, 16, 3), (24, 32, 3))
    np.testing.assert_allclose(got, np.clip(init - 0.05, 0, 1), atol=1e-4)


def test_method_photoreals_finer_stage_starts_with_the_recoloured_starts_detail(
    small_vars, pair, monkeypatch
):
    """The coarse-to-fine loop hands with_detail the previous result upsampled, the recoloured
    start (the run's init, at the full size) and both stages' shapes."""
    from jaxnst.loss import recolour
    from jaxnst.pipeline import multiscale

    calls = []
    spy = lambda *a: calls.append(a) or real(*a)  # noqa: E731
    real, content = multiscale.with_detail, smooth_image(np.random.default_rng(5), 48, 40)
    monkeypatch.setattr(multiscale, "with_detail", spy)
    r = stylize(content, pair[1], method="photoreal", scales=(24,), scale_iterations=(1, 1),
                chunk=1, variables=small_vars)  # fmt: skip
    assert r.image.shape == content.shape and len(calls) == 1
    start, init, coarse, shape = calls[0]
    assert (start.shape, coarse[:2], tuple(shape)) == ((48, 40, 3), (24, 20), (48, 40, 3))
    np.testing.assert_allclose(init, recolour.recolour(content, pair[1]), atol=1e-6)


def test_the_presets_weight_rises_as_the_square_of_the_starts_unexplained_share(pair):
    """photoreal_adapt: weight x (s / 0.02)^2 where the recoloured start leaves s > 0.02 of its
    detail unexplained, s measured here on recolour's start; not below 0.02, not for a weight
    given; each member of a sweep raised alike."""
    from jaxnst.loss import recolour
    from jaxnst.pipeline import labels
    from jaxnst.pipeline.options import make_options

    content, style = pair
    pale = (0.9 + 0.05 * content).astype(np.float32)  # washed out: a steep colour map to the style
    s = float(matting.unexplained_share(pale, recolour.recolour(pale, style)))
    assert s > 0.05
    o, note = labels.recoloured(pale, style, None, make_options(method="photoreal"))
    assert o.photoreal_weight == pytest.approx(1e10 * (s / 0.02) ** 2, rel=1e-5)
    assert note.startswith(f"photoreal weight {o.photoreal_weight:.3g}: ") and f"{s:.3f}" in note
    np.testing.assert_allclose(o.init, recolour.recolour(pale, style))
    sweep = make_options(method="photoreal", photoreal_weight=[1e9, 1e10], photoreal_adapt=True)
    o, _ = labels.recoloured(pale, style, None, sweep)
    assert o.photoreal_weight == pytest.approx((1e9 * (s / 0.02) ** 2, 1e10 * (s / 0.02) ** 2))
    for given in (
        make_options(method="photoreal", photoreal_weight=1e10),
        make_options(method="photoreal"),
    ):
        photo = given.photoreal_adapt  # the preset's: the plain pair's start is photographic
        o, note = labels.recoloured(*(pair if photo else (pale, style)), None, given)
        assert (o.photoreal_weight, note) == (1e10, None)
    off = make_options(method="photoreal", photoreal_weight=0.0, photoreal_adapt=True)
    o, note = labels.recoloured(pale, style, None, off)  # nothing to raise: no line
    assert (o.photoreal_weight, note) == (0.0, None)


def test_method_photoreal_runs_and_is_more_photographic_than_gatys(small_vars, pair):
    kw = dict(iterations=6, chunk=6, variables=small_vars)
    gatys = stylize(*pair, style_weight=3e-3, **kw)
    real = stylize(*pair, method="photoreal", **kw)
    assert real.options.photoreal_weight == 1e10
    c = pair[0]
    assert matting.unexplained_share(c, real.image) < matting.unexplained_share(c, gatys.image)
