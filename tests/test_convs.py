"""Issue 15: the dot formulations of the 3x3 convolution (jaxnst.model.convs), their gradients, the
per-layer plan in the VGG, and what precision="auto" resolves to."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxnst.loss import losses
from jaxnst.model import convs, vgg
from jaxnst.model.convs import FP32


def numpy_conv(x, k):
    """Independent reference: SAME 3x3 cross-correlation as nine shifted float64 matmuls."""
    x, k = np.asarray(x, np.float64), np.asarray(k, np.float64)
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, k.shape[-1]))
    for a in range(3):
        for b in range(3):
            out += xp[:, a : a + h, b : b + w] @ k[a, b]
    return out


@pytest.fixture(scope="module")
def xk():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 9, 7, 5)).astype(np.float32)
    k = (rng.standard_normal((3, 3, 5, 6)) * 0.3).astype(np.float32)
    return x, k


@pytest.mark.parametrize("form", convs.FORMS)
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "bf16x3"])
def test_forward_matches_numpy(xk, form, dtype):
    x, k = xk
    ref = numpy_conv(x, k)
    out = np.asarray(convs.conv(jnp.asarray(x), jnp.asarray(k), f"{form}:{dtype}"))
    assert out.dtype == np.float32 and out.shape == ref.shape
    rel = np.abs(out - ref).max() / np.abs(ref).max()
    assert rel < {"fp32": 1e-5, "bf16": 1.5e-2, "bf16x3": 1e-4}[dtype], rel


@pytest.mark.parametrize(
    "spec", ["taps9:fp32", "row3:bf16", "im2col:bf16x3", "pertap:fp32", "xla:bf16x3"]
)
def test_input_gradient_matches_autodiff_of_xla(xk, spec):
    x, k = (jnp.asarray(a) for a in xk)
    g = jnp.asarray(np.random.default_rng(1).standard_normal((2, 9, 7, 6)), jnp.float32)

    def ours(x):
        return jnp.sum(convs.conv3x3(x, k, vgg.backward_kernel(k), spec, spec) * g)

    def ref(x):  # second code path: jax's own autodiff of the float32 lax convolution
        return jnp.sum(convs.conv(x, k, "xla:fp32") * g)

    d, r = np.asarray(jax.grad(ours)(x)), np.asarray(jax.grad(ref)(x))
    rel = np.abs(d - r).max() / np.abs(r).max()
    assert rel < {"fp32": 1e-5, "bf16": 1.5e-2, "bf16x3": 1e-4}[spec.split(":")[1]], rel


def test_bad_spec_is_one_line():
    with pytest.raises(ValueError, match="unknown convolution 'row4:bf16'"):
        convs.parse("row4:bf16")


def test_layer_shapes_of_vgg19_at_256():
    shapes = convs.layer_shapes(256, 192, ["conv5_1"], vgg.CHANNELS)
    assert list(shapes) == list(vgg.LAYERS[:13])
    assert shapes["conv1_1"] == (256, 192, 3, 64)
    assert shapes["conv2_1"] == (128, 96, 64, 128)
    assert shapes["conv3_4"] == (64, 48, 256, 256)
    assert shapes["conv4_1"] == (32, 24, 256, 512)
    assert shapes["conv5_1"] == (16, 12, 512, 512)


@pytest.mark.slow  # real weights, 64 px, 10 gradients
def test_per_layer_gradients_of_bf16x3_plan_within_2_percent(real_vars):
    """The bf16x3 dot path's image gradient of each style layer's loss against fp32's (plain bf16
    operands miss this bar: 3-8 % at conv3_1..conv5_1, see jaxnst.model.convs)."""
    image = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (64, 64, 3)), jnp.float32)
    style = jnp.asarray(np.random.default_rng(3).uniform(0, 1, (64, 64, 3)), jnp.float32)
    layers = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
    n = vgg.LAYERS.index("conv5_1") + 1
    plan = tuple(
        [
            ("row3:bf16x3", "taps9:bf16x3"),
            ("taps9:bf16x3", "im2col:bf16x3"),
            ("xla:bf16x3", "row3:bf16x3"),
        ]
        * 5
    )[:n]
    real_vars = real_vars[0]  # (variables, sha256)
    run_vars = vgg.with_backward_kernels(real_vars)
    fp32 = vgg.VGG19()
    mixed = vgg.VGG19(convs=plan)
    target = fp32.apply(real_vars, style, layers)

    def per_layer(img, model):  # each layer's loss; its Jacobian's rows are their gradients
        f = model.apply(run_vars, img, layers)
        return jnp.stack(
            [jnp.sum((losses.gram(f[n]) - losses.gram(target[n])) ** 2) for n in layers]
        )

    # (one compiled program per model: op by op, ten gradients compiled for ~24 s, this ~14 s)
    grads = jax.jit(jax.jacrev(per_layer), static_argnums=1)
    ref, got = np.asarray(grads(image, fp32)), np.asarray(grads(image, mixed))
    for i, layer in enumerate(layers):
        rel = np.linalg.norm(got[i] - ref[i]) / np.linalg.norm(ref[i])
        assert rel <= 0.02, (layer, rel)


def test_auto_is_fp32_without_bf16_units(monkeypatch):
    monkeypatch.setenv("JAXNST_CPU_BF16", "0")
    assert convs.resolve("auto", 64, 64, ["conv5_1"], vgg.CHANNELS) == ("fp32", None)
    assert convs.resolve("bf16", 64, 64, ["conv5_1"], vgg.CHANNELS) == ("bf16", None)


def test_auto_with_bf16_units_picks_the_fastest_and_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXNST_CPU_BF16", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def fake_time(shape, spec, reps=3):  # deep layers fastest as row3, the rest as xla fp32
        calls.append((shape, spec))
        best = "row3:bf16x3" if shape[2] >= 16 and shape[3] >= 16 else "xla:fp32"
        return 1.0 if spec == best else 2.0

    monkeypatch.setattr(convs, "time_conv", fake_time)
    ch = (4, 8, 16, 16, 16)
    precision, plan = convs.resolve("auto", 64, 64, ["conv4_1"], ch)
    assert precision == "fp32"
    want = []
    for _h, _w, c, o in convs.layer_shapes(64, 64, ["conv4_1"], ch).values():
        want.append(
            tuple("row3:bf16x3" if a >= 16 and b >= 16 else "xla:fp32" for a, b in ((c, o), (o, c)))
        )
    assert plan == tuple(want)
    n = len(calls)
    assert n > 0
    assert convs.resolve("auto", 64, 64, ["conv4_1"], ch) == ("fp32", plan)
    assert len(calls) == n  # second time: read from the cache, nothing re-measured
    (records,) = json.loads((tmp_path / "jaxnst" / "conv_plans.json").read_text()).values()
    assert {convs._pick(r, convs.CANDIDATES) for r in records.values()} == {"row3:bf16x3", FP32}


def test_large_images_are_timed_at_the_top_bucket():
    """A 2048 px photo's layers share the buckets of a 512x256 one (timing at 2048x1536 took over
    4 minutes of a first run, issue 22)."""
    big = convs._needs(1536, 2048, ["conv5_1"], vgg.CHANNELS, convs.CANDIDATES)
    cap = convs._needs(256, 512, ["conv5_1"], vgg.CHANNELS, convs.CANDIDATES)
    assert [n.key for p in big for n in p][:4] == [n.key for p in cap for n in p][:4]
    assert convs._timed_shape(big[0][0]) == (256, 512, 3, 64)


def test_stylize_with_auto_plan_runs(small_vars, monkeypatch, tmp_path):
    """A whole run through the per-layer plan (forced), against the fp32 run: close, not equal."""
    from jaxnst import stylize as stylize_fn

    monkeypatch.setenv("JAXNST_CPU_BF16", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(
        convs, "time_conv", lambda shape, spec, reps=3: 1.0 if spec == "taps9:bf16x3" else 2.0
    )
    rng = np.random.default_rng(0)
    content, style = rng.uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
    kw = dict(variables=small_vars, iterations=10)
    a = stylize_fn(content, style, precision="auto", **kw)
    b = stylize_fn(content, style, precision="fp32", **kw)
    assert np.isfinite(a.image).all()
    assert 0 < np.abs(a.image - b.image).max() < 1e-2  # bf16x3: float32's accuracy, not its bits
    assert a.history["total"][-1] < a.history["total"][0]


def test_forms_with_wide_patch_buffers_are_left_out_at_large_sizes():
    """im2col (9 C per pixel, three bf16 parts) and row3 (3 C) are not candidates where their
    buffer would pass PATCH_LIMIT: at 2048x1536 conv1_2's im2col asked XLA for 43.5 GB."""
    needs = convs._needs(
        1536, 2048, ("conv1_1", "conv2_1", "conv5_1"), vgg.CHANNELS, convs.CANDIDATES
    )
    # (forward, backward) per layer, chosen among the forms that fit at 1536x2048
    assert needs[0][0].shape == (1536, 2048, 3, 64)
    assert needs[0][0].candidates == convs.CANDIDATES  # conv1_1: 3 channels, 0.7 GB
    assert needs[1][0].shape == (1536, 2048, 64, 64)  # conv1_2
    assert not any(c.startswith(("im2col", "row3")) for c in needs[1][0].candidates)
    assert needs[-1][0].shape == (96, 128, 512, 512)  # conv5_1 forward
    assert "im2col:bf16x3" in needs[-1][0].candidates  # 75 MB at conv5: still a candidate
    small = convs._fitting((64, 64, 64, 64), convs.CANDIDATES)
    assert small == convs.CANDIDATES
