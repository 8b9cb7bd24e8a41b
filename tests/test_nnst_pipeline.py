"""``method="nnst"`` through the pipeline (issue 31): the recipe and its checks, the targets
against a NumPy brute force from VGG19's activations, end-to-end runs through the API and the
CLI, reruns, sweeps and the final colour correction. Tiny images and the small random VGG."""

import json

import jax
import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image

import jaxnst
from jaxnst.loss import neighbours
from jaxnst.pipeline import multiscale
from jaxnst.pipeline.options import make_options
from jaxnst.pipeline.prepare import rescale


@pytest.fixture
def unoptimised():
    """XLA's optimisations off for a test of paths, not numbers (the stages run, the CLI writes
    its image and report, the device check's step reports): about 40 % less compile time, as in
    the device check's smoke run. The tests comparing numbers keep the optimised programs."""
    was = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", was)


def _np_resize(f, gh, gw):
    """Bilinear with aligned corners, by hand: output (i, j) reads the map at
    (i (H - 1) / (gh - 1), j (W - 1) / (gw - 1)), the four neighbours weighted."""
    h, w = f.shape[:2]
    out = np.zeros((gh, gw, f.shape[2]))
    for i in range(gh):
        y = i * (h - 1) / (gh - 1) if gh > 1 else 0.0
        y0 = min(int(np.floor(y)), h - 1)
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(gw):
            x = j * (w - 1) / (gw - 1) if gw > 1 else 0.0
            x0 = min(int(np.floor(x)), w - 1)
            x1, fx = min(x0 + 1, w - 1), x - x0
            out[i, j] = (
                (1 - fy) * (1 - fx) * f[y0, x0] + (1 - fy) * fx * f[y0, x1]
                + fy * (1 - fx) * f[y1, x0] + fy * fx * f[y1, x1]
            )  # fmt: skip
    return out


def _np_columns(image, variables):
    h, w = image.shape[:2]
    feats = jaxnst.features(image, neighbours.LAYERS, variables=variables)
    cols = [
        _np_resize(np.asarray(feats[n], np.float64), h // 4, w // 4) / feats[n].shape[-1]
        for n in neighbours.LAYERS
    ]
    return np.concatenate(cols, -1).reshape((h // 4) * (w // 4), -1)


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_the_recipe_its_schedule_and_one_line_errors():
    o = make_options(method="nnst")
    assert (o.style_loss, o.content_loss, o.param, o.optimizer) == (
        "nnst", "nnst", "laplacian", "adam",
    )  # fmt: skip
    assert (o.iterations, o.scales, o.preserve_color, o.nnst_rotations) == (
        100, "auto", "none", False,
    )  # fmt: skip
    assert (o.content_weight, o.style_weight, o.tv_weight) == (0.12, 1.0, 0.0)
    assert make_options(method="nnst", preserve_color="oklab").preserve_color == "oklab"
    r = multiscale.resolve(o, (384, 512, 3))
    assert r.scales == (64, 128, 256) and r.scale_iterations == (100,) * 4
    assert multiscale.nnst_schedule(1024, 200)[0] == (64, 128, 256, 512)
    # below 128 px: one stage, then the final pass (coarse_to_fine runs both); without it, none
    assert multiscale.resolve(o, (48, 48, 3)).scales == (48,)
    assert (
        multiscale.resolve(make_options(method="nnst", nnst_final_steps=0), (48, 48, 3)).scales
        is None
    )
    for bad, match in (
        (dict(method="nnsx"), "unknown method 'nnsx'"),
        (dict(method="nnst", nnst_rotations="yes"), "nnst_rotations"),
        (dict(method="nnst", tile=64), "tile"),
        (dict(content_loss="nnst", remat=True), "remat"),
        (dict(preserve_color="okLab"), "preserve_color"),
    ):
        with pytest.raises(ValueError, match=match) as e:
            make_options(**bad)
        assert "\n" not in str(e.value)


def test_targets_equal_a_numpy_brute_force(small_vars, rng):
    """The replaced targets of jaxnst.objective (the first stage's) against NumPy: hypercolumns
    resized by hand, each set centred on its global mean, the full similarity matrix, argmax;
    the bank holds the style and its three rotations."""
    content = smooth_image(rng, 32, 40)
    style = smooth_image(np.random.default_rng(7), 36, 28)
    obj = jaxnst.objective(content, style, method="nnst", nnst_rotations=True, variables=small_vars)
    q = _np_columns(content, small_vars)
    bank = np.concatenate([_np_columns(np.rot90(style, k), small_vars) for k in range(4)])
    assert q.shape[0] == 80 and bank.shape[0] == 4 * 63  # (8 x 10 and 9 x 7 grids)
    sim = _unit(q - q.mean(0)) @ _unit(bank - bank.mean(0)).T
    idx = sim.argmax(1)
    top2 = np.sort(sim, 1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 1e-5  # (no near-tie that float32 could flip)
    assert clear.mean() > 0.9
    got = np.asarray(obj.targets.nnst.target)
    assert got.shape == q.shape
    np.testing.assert_allclose(got[clear], _unit(bank[idx])[clear], atol=1e-5)
    np.testing.assert_allclose(np.asarray(obj.targets.nnst.content), _unit(q), atol=1e-5)
    # The loss at the content: the content term is 0, the style term the mean cosine distance.
    _, parts = obj.loss_fn(obj.init_image)
    assert abs(float(parts.content)) < 1e-5
    want = np.mean(1.0 - np.sum(_unit(q) * _unit(bank[idx]), 1))
    assert float(parts.style) == pytest.approx(want, abs=1e-4)


def test_runs_end_to_end_rerun_identically_and_colour_correct_once(small_vars, rng):
    content, style = smooth_image(rng, 32, 32), smooth_image(np.random.default_rng(5), 40, 36)
    kw = dict(variables=small_vars, iterations=4, method="nnst")
    a = jaxnst.stylize(content, style, preserve_color="oklab", **kw)
    b = jaxnst.stylize(content, style, preserve_color="oklab", **kw)
    assert a.image.shape == (32, 32, 3) and a.image.dtype == np.float32
    assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    np.testing.assert_array_equal(a.image, b.image)
    style_term = a.history["style"]
    assert style_term[-1] < style_term[0], style_term
    # preserve_color="oklab" is the uncorrected run's image, corrected once at the end (against
    # the style at the content's size: with its final pass the run is a coarse-to-fine one).
    raw = jaxnst.stylize(content, style, **kw)  # (the recipe's default: uncorrected)
    fixed = neighbours.colour_correct(raw.image[None], content[None], [rescale(style, 32)])[0]
    np.testing.assert_allclose(a.image, fixed, atol=1e-6)
    assert np.abs(a.image - raw.image).max() > 1e-3


def test_content_weights_sweep_as_one_batch_equal_to_single_runs(small_vars, rng):
    """Alpha is a traced loss weight: two values are one program sharing the targets, each
    member the single run; the larger alpha ends nearer the content's hypercolumns."""
    content, style = smooth_image(rng, 32, 32), smooth_image(np.random.default_rng(5), 40, 36)
    kw = dict(variables=small_vars, iterations=4, method="nnst", preserve_color="none")
    sweep = jaxnst.stylize(content, style, content_weight=(0.25, 4.0), **kw)
    one = jaxnst.stylize(content, style, content_weight=4.0, **kw)
    assert sweep.image.shape == (2, 32, 32, 3)
    np.testing.assert_allclose(sweep.image[1], one.image, atol=1e-4)
    np.testing.assert_allclose(sweep.history["total"][1], one.history["total"], rtol=1e-4)
    assert sweep.history["content"][1][-1] < sweep.history["content"][0][-1]


def test_the_cli_runs_method_nnst_and_refuses_a_bad_method(
    tmp_path, capsys, monkeypatch, small_vars, unoptimised
):
    from jaxnst.cli import command as cli
    from jaxnst.model import weights

    monkeypatch.setattr(weights, "load_variables", lambda *a, **k: (small_vars, "small-test"))
    rng = np.random.default_rng(0)
    for name, shape in (("c.png", (36, 48, 3)), ("s.png", (40, 40, 3))):
        Image.fromarray((rng.uniform(size=shape) * 255).astype(np.uint8)).save(tmp_path / name)
    out, rep = tmp_path / "o.png", tmp_path / "r.json"
    argv = [tmp_path / "c.png", tmp_path / "s.png", "-o", out, "--size", 48]
    argv += ["--iterations", 3, "--method", "nnst", "--nnst-rotations", "--json", rep, "--quiet"]
    code = cli.main([str(a) for a in argv])
    assert code == 0, capsys.readouterr().err
    assert Image.open(out).size == (48, 36)
    report = json.loads(rep.read_text())
    assert report["options"]["method"] == "nnst" and report["options"]["nnst_rotations"] is True
    assert report["options"]["preserve_color"] == "none"
    with pytest.raises(SystemExit) as e:  # argparse's one-line choice error
        cli.main([str(tmp_path / "c.png"), str(tmp_path / "s.png"), "--method", "nnsx"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nnsx'" in err


def test_content_masks_restrict_the_matches_to_their_style(small_vars, rng):
    """Guided NNST: the left half of the content matches style 0's rows only, the right half
    style 1's (a NumPy search restricted to each style gives the same targets)."""
    content = smooth_image(rng, 32, 32)
    styles = [smooth_image(np.random.default_rng(s), 28, 28) for s in (3, 4)]
    masks = np.zeros((2, 32, 32), np.float32)
    masks[0, :, :16], masks[1, :, 16:] = 1.0, 1.0
    obj = jaxnst.objective(
        content, styles, content_masks=masks, method="nnst", variables=small_vars
    )
    q = _np_columns(content, small_vars)
    banks = [_np_columns(s, small_vars) for s in styles]
    both = np.concatenate(banks)
    sim = _unit(q - q.mean(0)) @ _unit(both - both.mean(0)).T  # (centred on the whole bank)
    region = np.tile(np.arange(8) >= 4, 8).astype(int)  # the 8 x 8 grid's columns 4.. are right
    label = np.repeat([0, 1], [len(b) for b in banks])
    idx = np.where(region[:, None] == label[None, :], sim, -np.inf).argmax(1)
    got = np.asarray(obj.targets.nnst.target)
    np.testing.assert_allclose(got, _unit(both[idx]), atol=1e-5)
    assert (label[idx] == region).all()
    assert (label[sim.argmax(1)] != region).any()  # (unguided, some would cross over)


def test_the_preflight_counts_the_nnst_terms(monkeypatch):
    """The bank and targets grow with the area and the rotations; a limit that Gatys fits
    refuses NNST at 512 px."""
    from jaxnst.pipeline import memory

    gatys, nn = make_options(), make_options(method="nnst")
    rot = make_options(method="nnst", nnst_rotations=True)
    b = [memory.nnst_bytes(1, o, shape=(512, 512)) for o in (gatys, nn, rot)]
    assert b[0] == 0 and 0.5 * 2**30 < b[1] < b[2]
    assert memory.nnst_bytes(1, nn, shape=(1024, 1024)) > 2.5 * b[1]
    base = memory.step_bytes(512, 512, 1, ("conv5_1",)) + memory.OVERHEAD
    monkeypatch.setenv(memory.LIMIT_ENV, str(int(memory.resident_bytes() + base + 0.3 * 2**30)))
    assert memory.check(512, 512, 1, gatys) is not None
    with pytest.raises(memory.MemoryRefused, match="not enough memory"):
        memory.check(512, 512, 1, nn)


@pytest.mark.slow  # two stages, each its own descent program (13-20 s on 2 shared cores)
def test_coarse_to_fine_stages_and_one_colour_correction(small_vars, rng, monkeypatch, unoptimised):
    """At 128 px (long side) the recipe runs 64 then 128 px, and the OkLab correction runs
    once, on the final image (a stage's correction would feed the next a recoloured start)."""
    real, seen = neighbours.colour_correct, []
    monkeypatch.setattr(
        neighbours, "colour_correct", lambda *a: seen.append(a[0].shape) or real(*a)
    )
    content, style = smooth_image(rng, 32, 128), smooth_image(np.random.default_rng(5), 32, 32)
    r = jaxnst.stylize(content, style, method="nnst", variables=small_vars, iterations=2,
                       preserve_color="oklab")  # fmt: skip
    assert r.iterations == 7 and r.image.shape == (32, 128, 3)  # (+ 3 final-pass steps)
    assert seen == [(1, 32, 128, 3)]


def test_the_time_estimate_counts_the_search_once_per_stage():
    """2 Q K D FLOPs in Gatys-evaluation megapixels: about one evaluation at 256 px, 16x per
    doubling of the side, 4x with the rotations; nothing for other methods."""
    from jaxnst.cli import estimate

    nn, rot = make_options(method="nnst"), make_options(method="nnst", nnst_rotations=True)
    at = [estimate.nnst_search_mp(nn, s * s / 1e6) for s in (256, 512)]
    # D = 3200 channels (2688 as the paper's, plus conv5_1's 512): 0.070
    assert at[0] == pytest.approx(0.070, rel=0.02) and at[1] == pytest.approx(16 * at[0])
    assert estimate.nnst_search_mp(rot, 256 * 256 / 1e6) == pytest.approx(4 * at[0])
    assert estimate.nnst_search_mp(make_options(), 1.0) == 0.0
    single = make_options(method="nnst", scales="none")
    no_search = estimate.seconds(256, 256, 1, make_options(scales="none", optimizer="adam",
                                 iterations=100), 1.0)  # fmt: skip
    assert estimate.seconds(256, 256, 1, single, 1.0) == pytest.approx(no_search + at[0])


def test_the_device_check_step_runs_a_child_and_reports_seconds_and_peaks(unoptimised):
    """scripts/device_check.py's NNST step (issue 31), its ``--child nnst`` in this process at
    64 px with the small weights: seconds, the process's peak resident set, the losses. XLA's
    optimisations are off, as in the smoke run's children (paths, not speed: 40 % less compile)."""
    import argparse

    from jaxnst.bench import check, nnst

    assert check.Plan().nnst_sizes == (512, 1024) and check.SMOKE.nnst_sizes == (64,)
    out = nnst.child_nnst(argparse.Namespace(weights="small", size=64, iterations=2))
    # One stage (2 steps) and the final pass (1.5x as many); the final pass's program compiles
    # in the background while the stage descends, so the compile seconds may exceed the wall's.
    assert out["wall_seconds"] > 0 and out["compile_seconds"] > 0 and out["iterations"] == 5
    assert out["peak_rss_bytes"] > 2**20 and max(out["image_shape"]) == 64
    assert np.isfinite(out["final_style"]) and out["final_style"] > 0
