"""Memory preflight (issue 13): estimate, pretend limits, and a refusal before anything compiles."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxnst.cli import command as cli
from jaxnst.loss import losses
from jaxnst.model import vgg
from jaxnst.optim import optimize
from jaxnst.pipeline import memory
from jaxnst.pipeline.options import make_options


def test_activations_per_pixel_of_the_full_network():
    # conv1: 2 x 64, conv2: 2 x 128 / 4, conv3: 4 x 256 / 16, conv4: 4 x 512 / 64,
    # conv5_1: 512 / 256
    assert memory.activations_per_pixel(("conv5_1",), vgg.CHANNELS) == 290
    assert memory.activations_per_pixel(("conv1_1",), vgg.CHANNELS) == 64


def test_step_bytes_scales_with_pixels_members_and_precision():
    layers = ("conv4_2", "conv5_1")
    one = memory.step_bytes(512, 512, 1, layers)
    assert memory.step_bytes(1024, 1024, 1, layers) == pytest.approx(4 * one, rel=1e-6)
    assert memory.step_bytes(512, 512, 3, layers) == pytest.approx(3 * one, rel=1e-6)
    # bf16 halves the activations, not the (float32) state
    acts = memory.ACT_FACTOR * 4 * memory.activations_per_pixel(layers, vgg.CHANNELS) * 512**2
    bf16 = memory.step_bytes(512, 512, 1, layers, precision="bf16")
    assert one - bf16 == pytest.approx(acts / 2, rel=1e-6)
    # The measurement: XLA's own estimate is ~1.9 KiB per pixel per step of activations;
    # the state (28 image-sized float32 vectors, argument and result) adds 0.66 KiB.
    assert 2.4 * 1024 < one / 512**2 < 3.2 * 1024


@pytest.mark.parametrize(
    "text,want", [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5GiB", 3 * 2**29), ("1000", 1000)]
)
def test_parse_size(text, want):
    assert memory.parse_size(text) == want


def test_parse_size_rejects_nonsense():
    with pytest.raises(ValueError, match="JAXNST_MEMORY_LIMIT"):
        memory.parse_size("lots")


def test_check_refuses_with_one_line_and_a_size_that_fits(monkeypatch):
    monkeypatch.setenv(memory.LIMIT_ENV, "1G")
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    o = make_options()
    assert memory.check(256, 256, 1, o) is not None  # ~0.14 GiB fits
    with pytest.raises(memory.MemoryRefused) as e:
        memory.check(3072, 4096, 1, o)
    msg = str(e.value)
    assert "\n" not in msg and "4096x3072" in msg and "1.0 GiB available" in msg
    side = int(msg.split("--size ")[1])
    layers = o.content_layers + o.style_layers
    assert memory.step_bytes(side * 3 // 4, side, 1, layers) + memory.OVERHEAD <= 2**30
    assert memory.step_bytes(side * 3 // 4 + 64, side + 64, 1, layers) + memory.OVERHEAD > 2**30


def test_model_against_xla_memory_analysis(small_vars):
    # XLA's buffer assignment for the compiled L-BFGS chunk (small network, 64 px): temporaries,
    # outputs and the state argument within 30 % of the model's step.
    size, layers = 64, ("conv4_2", "conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    run_vars = vgg.with_backward_kernels(small_vars)
    channels = vgg.channels_of(small_vars)
    config = optimize.Config(chunk=1, layers=layers, channels=channels, batched_content=True)
    feats = vgg.VGG19(channels=channels).apply(small_vars, jnp.zeros((size, size, 3)), layers)
    targets = losses.Targets(
        content={"conv4_2": feats["conv4_2"][None]},
        grams={n: losses.gram(feats[n]) for n in layers[1:]},
    )
    f = jnp.ones((1,), jnp.float32)
    hyper = optimize.Hyper(losses.Weights(f, f, f), jnp.float32(0.01), jnp.int32(1))
    img = jnp.zeros((1, size, size, 3))
    state = jax.eval_shape(
        lambda x: optimize.init_state(x, run_vars, targets, hyper, config)[0], img
    )
    compiled = optimize.run_chunk.lower(state, run_vars, targets, hyper, config).compile()
    xla = memory.xla_estimate(compiled)
    model = memory.step_bytes(size, size, 1, layers, channels)
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
    measured = xla["temp_bytes"] + xla["output_bytes"] + state_bytes
    assert 0.7 < measured / model < 1.3, (xla, state_bytes, model)


def test_cli_refuses_before_compiling(tmp_path, capsys, monkeypatch, real_vars):
    def compiled(*a, **k):
        raise AssertionError("the descent was started")

    monkeypatch.setattr(optimize, "init_state", compiled)
    monkeypatch.setattr(optimize, "run_chunk", compiled)
    monkeypatch.setenv(memory.LIMIT_ENV, "64M")
    rng = np.random.default_rng(0)
    for name in ("c.png", "s.png"):
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), np.uint8)).save(tmp_path / name)
    out = tmp_path / "out.png"
    code = cli.main(
        [
            str(tmp_path / "c.png"),
            str(tmp_path / "s.png"),
            "-o",
            str(out),
            "--size",
            "1024",
            "--iterations",
            "1",
        ]
    )
    err = capsys.readouterr().err
    assert code == cli.EXIT_RUNTIME and not out.exists()
    lines = [x for x in err.splitlines() if "error" in x]
    assert len(lines) == 1 and "not enough memory for 1024x768 px" in lines[0]
    assert "available (JAXNST_MEMORY_LIMIT=64M)" in lines[0] and "--size" in lines[0]


def test_check_switches_to_tiles_when_only_they_fit(monkeypatch):
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    o = make_options()
    layers = o.content_layers + o.style_layers
    monkeypatch.setenv(memory.LIMIT_ENV, "4G")
    est = memory.check(1536, 2048, 1, o)
    assert est is not None and est.tile in memory.TILES and est.untiled > 4 * 2**30
    want = memory.tiled_step_bytes(1536, 2048, 1, layers, est.tile) + memory.OVERHEAD
    assert est.step == pytest.approx(want, abs=1)
    assert est.step <= 4 * 2**30
    # of the tiles that fit, the one computing the least area (tile plus halo, whole crops)
    fit = [
        t
        for t in memory.TILES
        if t < 2048
        and memory.tiled_step_bytes(1536, 2048, 1, layers, t) + memory.OVERHEAD <= 4 * 2**30
    ]
    halo = 96
    area = {t: -(-1536 // t) * -(-2048 // t) * (t + 2 * halo) ** 2 for t in fit}
    assert est.tile == min(fit, key=lambda t: (area[t], -t)) and len(fit) > 1
    # Options the tiled objective does not support are refused instead.
    with pytest.raises(memory.MemoryRefused):
        memory.check(1536, 2048, 1, make_options(style_loss="wasserstein"))
    monkeypatch.setenv(memory.LIMIT_ENV, "1G")  # not even the smallest tiles fit
    with pytest.raises(memory.MemoryRefused):
        memory.check(1536, 2048, 1, o)


class _Started(Exception):
    pass


def test_cli_goes_tiled_and_says_so(tmp_path, capsys, monkeypatch, real_vars):
    import importlib

    module = importlib.import_module("jaxnst.stylize")  # the module (the package re-exports
    seen = {}  # a function of the same name)

    def fake_stylize(*a, **kw):
        seen.update(kw)
        raise _Started

    monkeypatch.setattr(module, "stylize", fake_stylize)
    monkeypatch.setattr(memory, "resident_bytes", lambda: 0)
    h, w = 768, 1024
    untiled = memory.step_bytes(h, w, 1, make_options().content_layers + ("conv5_1",))
    monkeypatch.setenv(memory.LIMIT_ENV, str(int(memory.OVERHEAD + 0.85 * untiled)))
    rng = np.random.default_rng(0)
    for name in ("c.png", "s.png"):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), np.uint8)).save(tmp_path / name)
    with pytest.raises(_Started):
        cli.main(
            [
                str(tmp_path / "c.png"),
                str(tmp_path / "s.png"),
                "-o",
                str(tmp_path / "o.png"),
                "--size",
                str(w),
                "--iterations",
                "1",
            ]
        )
    err = capsys.readouterr().err
    assert seen["tile"] in memory.TILES
    assert f"evaluating in {seen['tile']} px tiles" in err
