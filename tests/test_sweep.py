import itertools
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import smooth_image

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.stylize import compile_stats, stylize

TINY = dict(content_weight=1.0, tv_weight=1.0)
SW = [3e-3, 1e-2, 3e-2]


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(5)
    return smooth_image(rng, 32, 32), smooth_image(rng, 36, 40)


def test_adam_sweep_slices_equal_single_runs(small_vars, pair):
    kw = dict(
        variables=small_vars,
        optimizer="adam",
        iterations=8,
        chunk=4,
        init="noise",
        learning_rate=0.05,
        **TINY,
    )
    r = stylize(*pair, style_weight=SW, **kw)
    assert r.image.shape == (3, 32, 32, 3) and r.losses.shape == (3, 8)
    assert r.history["style"].shape == (3, 3)
    np.testing.assert_array_equal(r.sweep["style_weight"], SW)
    for i, sw in enumerate(SW):
        one = stylize(*pair, style_weight=sw, **kw)
        assert np.abs(r.image[i] - one.image).max() <= 1e-4
        np.testing.assert_allclose(r.losses[i], one.losses, rtol=1e-4)


@pytest.mark.parametrize("linesearch", ["zoom", "backtracking"])
def test_lbfgs_sweep_slices_equal_single_runs(small_vars, pair, linesearch):
    """What holds for L-BFGS: each slice equals the single run with the same line search; each
    member runs its own search (a member done with its steps waits), which changes no member's
    trajectory. Batched convolutions may sum in another order, hence a float tolerance."""
    kw = dict(variables=small_vars, iterations=10, chunk=5, init="noise", linesearch=linesearch)
    kw |= TINY
    r = stylize(*pair, style_weight=SW, **kw)
    for i, sw in enumerate(SW):
        one = stylize(*pair, style_weight=sw, **kw)
        assert np.abs(r.image[i] - one.image).max() <= 1e-3
        np.testing.assert_allclose(r.losses[i], one.losses, rtol=1e-3)
        assert r.evaluations[i] == one.evaluations
    assert r.batch_evaluations >= r.evaluations.max()


def test_new_sweep_values_do_not_recompile(small_vars, pair):
    # (chunk=5: the L-BFGS sweep test's program, when that test ran first)
    kw = dict(variables=small_vars, iterations=4, chunk=5, init="noise", **TINY)
    stylize(*pair, style_weight=SW, **kw)
    c0 = compile_stats()["compiles"]
    stylize(*pair, style_weight=[1e-1, 2e-2, 5e-3], **kw)
    assert compile_stats()["compiles"] == c0


def test_grid_is_a_cartesian_product_last_fastest(small_vars, pair):
    cw, sw, seeds = [1.0, 2.0], [1e-2, 3e-2], [0, 1]
    r = stylize(
        *pair,
        variables=small_vars,
        optimizer="adam",
        iterations=3,
        chunk=4,  # (as the other small Adam runs: the single run's program is theirs)
        init="noise",
        content_weight=cw,
        style_weight=sw,
        seed=seeds,
    )
    expected = list(itertools.product(cw, sw, seeds))
    got = list(zip(r.sweep["content_weight"], r.sweep["style_weight"], r.sweep["seed"]))
    assert got == expected and r.image.shape[0] == 8
    one = stylize(
        *pair,
        variables=small_vars,
        optimizer="adam",
        iterations=3,
        chunk=4,
        init="noise",
        content_weight=2.0,
        style_weight=1e-2,
        seed=1,
    )
    assert np.abs(r.image[5] - one.image).max() <= 1e-4  # (2.0, 1e-2, 1) is member 5


def test_many_content_images_batch(small_vars, pair):
    rng = np.random.default_rng(9)
    contents = np.stack([pair[0], smooth_image(rng, 32, 32)])
    kw = dict(variables=small_vars, optimizer="adam", iterations=4, chunk=4, **TINY)
    r = stylize(contents, pair[1], style_weight=[1e-2, 3e-2], **kw)
    assert list(r.sweep["content_index"]) == [0, 0, 1, 1]
    one = stylize(contents[1], pair[1], style_weight=1e-2, **kw)
    assert np.abs(r.image[2] - one.image).max() <= 1e-4


def test_bad_sweep_values(small_vars, pair):
    with pytest.raises(ValueError, match="style_weight must be a finite number >= 0"):
        stylize(*pair, variables=small_vars, style_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="non-empty 1-D"):
        stylize(*pair, variables=small_vars, style_weight=[])


@pytest.mark.slow  # real weights, 64 px, 40 iterations
def test_style_loss_falls_as_style_weight_rises_on_real_images(real_vars):
    variables, _ = real_vars
    content = image_io.resize(image_io.load(sample_path("chelsea.jpg")), 64)
    style = image_io.resize(image_io.load(sample_path("swirls.png")), 64)
    r = stylize(content, style, variables=variables, iterations=40, style_weight=[1e-5, 1e-4, 1e-3])
    final = r.history["style"][:, -1]
    assert final[0] > final[1] > final[2], final


SHARDED = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    sys.path.insert(0, {tests!r})
    from conftest import SMALL_KEY, smooth_image
    from jaxnst.model import vgg
    from jaxnst.stylize import stylize
    v = vgg.random_variables(jax.random.PRNGKey(SMALL_KEY))  # the small_vars fixture's
    rng = np.random.default_rng(5)
    c, s = smooth_image(rng, 32, 32), smooth_image(rng, 36, 40)
    r = stylize(c, s, variables=v, optimizer="adam", iterations=4, chunk=4, init="noise",
                learning_rate=0.05, style_weight=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
                photoreal_weight=1e4)
    np.save({out!r}, r.image)
    print(json.dumps({{"devices": r.devices, "n": jax.device_count()}}))
""")


@pytest.mark.slow  # a 4-device subprocess
def test_batch_is_sharded_across_devices_with_padding(small_vars, pair, tmp_path):
    out = str(tmp_path / "sharded.npy")
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    code = SHARDED.format(tests=os.path.dirname(__file__), out=out)
    p = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.loads(p.stdout.strip().splitlines()[-1])
    assert info == {"devices": 4, "n": 4}  # 6 members padded to 8 on 4 devices
    sharded = np.load(out)
    rng = np.random.default_rng(5)
    c, s = smooth_image(rng, 32, 32), smooth_image(rng, 36, 40)
    one = stylize(
        c,
        s,
        variables=small_vars,
        optimizer="adam",
        iterations=4,
        chunk=4,
        init="noise",
        learning_rate=0.05,
        style_weight=[1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1],
        photoreal_weight=1e4,  # its content statistics must travel to every device too
    )
    assert one.devices == 1
    assert np.abs(sharded - one.image).max() <= 1e-4
