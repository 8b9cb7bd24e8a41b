"""Automatic coarse-to-fine (issue 13): the ``scales="auto"`` rule, its parsing, the CLI's default
(single-scale; auto above 512 px when enabled), a tiny end-to-end run, the memory preflight with
it, and content masks with tiles."""

import dataclasses
import importlib

import numpy as np
import pytest
from conftest import smooth_image
from PIL import Image

from jaxnst.cli import command as cli
from jaxnst.cli import inputs as cli_inputs
from jaxnst.pipeline import memory, multiscale
from jaxnst.pipeline.options import make_options

st = importlib.import_module("jaxnst.stylize")  # the module (the package re-exports a function)


def expected_schedule(full, iterations, floor=256):
    """Written apart from the code: K halvings while full / 2**K >= floor; stage k (k halvings
    below the full size) gets iterations proportional to 2**k, and the costs (iterations times
    the area ratio 4**-k) add up to ``iterations``."""
    k = 0
    while full // 2 ** (k + 1) >= floor:
        k += 1
    sizes = [full // 2**j for j in range(k, 0, -1)]
    weights = [2**j for j in range(k, -1, -1)]  # coarsest first
    unit = iterations / sum(wt / 4**j for wt, j in zip(weights, range(k, -1, -1)))
    return sizes, [max(1, round(unit * wt)) for wt in weights]


@pytest.mark.parametrize("full", [300, 511, 512, 600, 1000, 1024, 1536, 2048, 4096])
@pytest.mark.parametrize("iterations", [1, 40, 500, 1000])
def test_auto_schedule_rule(full, iterations):
    sizes, its = multiscale.auto_schedule(full, iterations)
    want_sizes, want_its = expected_schedule(full, iterations)
    assert list(sizes) == want_sizes and list(its) == want_its
    assert len(its) == len(sizes) + 1 and min(its) >= 1
    assert all(s >= 256 for s in sizes) and (not sizes or sizes[0] // 2 < 256)
    assert list(its) == sorted(its, reverse=True)  # most iterations at the coarse stages
    if iterations >= 40:
        # Cost in full-size iterations (an iteration at side s costs (s / full)**2) equals the
        # single-scale budget, up to the rounding of each stage; the final size gets over half.
        cost = sum(n * (s / full) ** 2 for s, n in zip([*sizes, full], its))
        assert abs(cost - iterations) <= 0.01 * iterations + 1
        assert its[-1] >= iterations / 2


def test_auto_schedule_examples():
    assert multiscale.auto_schedule(1024, 500) == ((256, 512), (1143, 571, 286))
    assert multiscale.auto_schedule(2048, 500) == ((256, 512, 1024), (2133, 1067, 533, 267))
    assert multiscale.auto_schedule(512, 500) == ((256,), (667, 333))
    assert multiscale.auto_schedule(500, 500) == ((), (500,))  # single-scale
    assert multiscale.auto_schedule(64, 7, min_side=16) == ((16, 32), (16, 8, 4))


def test_api_parses_auto_and_none():
    assert make_options(scales="auto").scales == "auto"
    assert make_options(scales="AUTO").scales == "auto"
    assert make_options(scales=["auto"]).scales == "auto"
    assert make_options(scales="none").scales is None
    assert make_options(scales=None).scales is None
    assert make_options(scales=[256, 512]).scales == (256, 512)
    with pytest.raises(ValueError, match="'auto', 'none'"):
        make_options(scales="big")
    with pytest.raises(ValueError, match="'auto' picks its own"):
        make_options(scales="auto", scale_iterations=(1, 2))
    # resolved for a content's size: explicit sizes and iterations, or single-scale
    o = multiscale.resolve(make_options(scales="auto", iterations=500), (768, 1024, 3))
    assert o.scales == (256, 512) and o.scale_iterations == (1143, 571, 286)
    assert multiscale.resolve(make_options(scales="auto"), (300, 400, 3)).scales is None


def _options(argv):
    args = cli.build_parser().parse_args(["c.png", "s.png", "-o", "o.png", *argv])
    return cli_inputs.default_scales(args, cli_inputs.options_from_args(args, (8, 8)))


def test_cli_parses_auto_none_and_lists():
    assert _options(["--scales", "auto"]).scales == "auto"
    assert _options(["--scales", "none", "--size", "2048"]).scales is None
    assert _options(["--scales", "256", "512"]).scales == (256, 512)
    o = _options(["--scales", "256", "--scale-iterations", "30", "10"])
    assert o.scales == (256,) and o.scale_iterations == (30, 10)
    with pytest.raises(cli.UsageError, match="scales"):
        _options(["--scales", "256", "auto"])


def test_cli_default_stays_single_scale():
    """Measured at 1024 px, auto lost on tubingen x starry_night: not the default (README)."""
    assert _options(["--size", "1024"]).scales is None
    assert _options(["--size", "1024", "--scales", "auto"]).scales == "auto"


def test_cli_default_switch_when_enabled(monkeypatch):
    monkeypatch.setattr(cli_inputs, "AUTO_SCALES_ABOVE", 512)
    assert _options(["--size", "1024"]).scales == "auto"
    assert _options(["--size", "513"]).scales == "auto"
    assert _options(["--size", "512"]).scales is None
    assert _options([]).scales is None  # the default --size, 512
    assert _options(["--size", "1024", "--scales", "128"]).scales == (128,)
    # coarse-to-fine does not run sweeps, batches or checkpoints: those stay single-scale
    assert _options(["--size", "1024", "--style-weight", "1e-4", "1e-3"]).scales is None
    assert _options(["--size", "1024", "--checkpoint-every", "10"]).scales is None
    args = cli.build_parser().parse_args(["s.png", "-o", "o.png", "--size", "1024"])
    args.content_dir = "dir"
    assert cli_inputs.default_scales(args, make_options()).scales is None


def test_auto_end_to_end_tiny(small_vars, rng, monkeypatch):
    monkeypatch.setattr(multiscale, "AUTO_MIN_SIDE", 16)
    c, s = smooth_image(rng, 64, 64), smooth_image(rng, 40, 40)
    seen = []
    real = st.stylize

    def spy(content, style, **kw):
        if kw.get("scales") is None:
            seen.append((np.shape(content)[:2], kw["iterations"]))
        return real(content, style, **kw)

    monkeypatch.setattr(st, "stylize", spy)
    r = real(c, s, variables=small_vars, scales="auto", iterations=7, style_weight=1e-2)
    assert seen == [((16, 16), 16), ((32, 32), 8), ((64, 64), 4)]
    assert r.image.shape == (64, 64, 3) and np.isfinite(r.image).all()
    assert r.options.scales == (16, 32) and r.options.scale_iterations == (16, 8, 4)
    assert r.iterations == 28


@dataclasses.dataclass
class _Fake:
    image: np.ndarray
    diverged_at: int | None = None
    evaluations: int = 1
    iterations: int = 1
    compile_seconds: float = 0.0
    compile_cache_hits: int = 0
    programs_compiled: int = 0
    run_seconds: float = 0.0
    batch_evaluations: int = 1
    options: object = None
    stopped_on_time: bool = False
    stopped: bool = False


def test_stages_within_one_tile_run_untiled(monkeypatch):
    # The stand-in run descends nothing, so nothing is compiled ahead for it (otherwise the real
    # weights' 512 and 1024 px programs compiled in the background, into the next tests' time).
    monkeypatch.setattr(multiscale, "_compile_ahead", lambda *a, **k: None)
    seen = []

    def run(content, style, **kw):
        seen.append((max(np.shape(content)[:2]), kw["tile"]))
        return _Fake(np.zeros(np.shape(content), np.float32))

    o = multiscale.resolve(make_options(scales="auto", tile=512), (768, 1024, 3))
    c = np.zeros((768, 1024, 3), np.float32)
    multiscale.coarse_to_fine(c, np.zeros((64, 64, 3), np.float32), o, run)
    assert seen == [(256, None), (512, None), (1024, 512)]


class _Started(Exception):
    pass


def _run_cli(tmp_path, monkeypatch, argv, size=(768, 1024)):
    seen = {}

    def fake_stylize(*a, **kw):
        seen.update(kw)
        raise _Started

    monkeypatch.setattr(st, "stylize", fake_stylize)
    rng = np.random.default_rng(0)
    for name in ("c.png", "s.png"):
        Image.fromarray(rng.integers(0, 255, (*size, 3), np.uint8)).save(tmp_path / name)
    files = [str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.png")]
    with pytest.raises(_Started):
        cli.main([*files, *argv])
    return seen


def test_cli_says_the_schedule(tmp_path, capsys, monkeypatch, real_vars):
    monkeypatch.setenv(memory.LIMIT_ENV, "off")
    seen = _run_cli(tmp_path, monkeypatch, ["--size", "1024", "--scales", "auto"])
    err = capsys.readouterr().err
    assert seen["scales"] == "auto"
    line = [x for x in err.splitlines() if "coarse-to-fine" in x]
    assert len(line) == 1 and "(--scales auto)" in line[0]
    assert (
        "1143 iterations at 256 px, 571 iterations at 512 px, 286 iterations at 1024 px"
        in (line[0])
    )
    seen = _run_cli(tmp_path, monkeypatch, ["--size", "1024", "--scales", "none"])
    assert seen["scales"] is None and "coarse-to-fine" not in capsys.readouterr().err


def test_preflight_with_auto_uses_the_final_stage(tmp_path, capsys, monkeypatch, real_vars):
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    h, w = 768, 1024
    layers = make_options().content_layers + ("conv5_1",)
    untiled = memory.step_bytes(h, w, 1, layers)
    # the final stage (1024 px) does not fit untiled, its coarse stages (512 px: a quarter) would
    assert memory.step_bytes(h // 2, w // 2, 1, layers) < 0.85 * untiled
    monkeypatch.setenv(memory.LIMIT_ENV, str(int(memory.OVERHEAD + 0.85 * untiled)))
    seen = _run_cli(tmp_path, monkeypatch, ["--size", "1024", "--scales", "auto"])
    err = capsys.readouterr().err
    assert seen["scales"] == "auto" and seen["tile"] in memory.TILES
    assert f"evaluating in {seen['tile']} px tiles" in err and "coarse-to-fine" in err
    est = memory.check(h, w, 1, make_options(scales="auto"))
    assert est is not None and est.untiled == pytest.approx(untiled + memory.OVERHEAD, abs=1)
    monkeypatch.setenv(memory.LIMIT_ENV, "64M")  # nothing fits: refused, exit 4, one line
    for name in ("c.png", "s.png"):
        Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(tmp_path / name)
    code = cli.main(
        [str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(tmp_path / "o.png")]
        + ["--size", "1024", "--scales", "auto"]
    )
    lines = [x for x in capsys.readouterr().err.splitlines() if "error" in x]
    assert code == cli.EXIT_RUNTIME and len(lines) == 1
    assert "not enough memory for 1024x768 px" in lines[0]


def test_content_masks_with_tile_is_refused(tmp_path, capsys, small_vars, monkeypatch):
    c = np.zeros((32, 32, 3), np.float32)
    masks = np.ones((2, 32, 32), np.float32)
    with pytest.raises(ValueError, match="content_masks .*tile"):
        st.stylize(c, [c, c], variables=small_vars, content_masks=masks, tile=16, iterations=1)
    # the memory preflight does not switch a masked run to tiles: it refuses
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    monkeypatch.setenv(memory.LIMIT_ENV, "4G")
    assert memory.check(1536, 2048, 1, make_options()).tile is not None
    with pytest.raises(memory.MemoryRefused):
        memory.check(1536, 2048, 1, make_options(), masks=True)
    # the CLI: one line, exit 2, before any weights are loaded or anything is written
    for name in ("c.png", "s1.png", "s2.png", "m1.png", "m2.png"):
        Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(tmp_path / name)
    out = tmp_path / "o.png"
    code = cli.main(
        [str(tmp_path / "c.png"), f"{tmp_path / 's1.png'},{tmp_path / 's2.png'}", "-o", str(out)]
        + ["--size", "32", "--tile", "16", "--weights", str(tmp_path / "missing.h5")]
        + ["--content-masks", f"{tmp_path / 'm1.png'},{tmp_path / 'm2.png'}"]
    )
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert code == cli.EXIT_BAD_INPUT and not out.exists()
    assert len(err) == 1 and "--content-masks" in err[0] and "--tile" in err[0]
