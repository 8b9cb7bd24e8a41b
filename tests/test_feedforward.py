"""Feed-forward networks (issue 29): training, its compiled chunk, resuming, conditional instance
norm, blending, strengths and applying, with the small random VGG19 and tiny generated photos.
Every training run here has the same static shapes (32 px crops, batch 2, width 0.25, chunks of 3),
so the whole module compiles one training program."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from jaxnst.feedforward import apply as ff_apply
from jaxnst.feedforward import model_file, network, steps, train
from jaxnst.feedforward.network import NetConfig

SIZE, BATCH, WIDTH, CHUNK = 32, 2, 0.25, 3


def photos(n=8, side=40, seed=0):
    """Smooth generated 'photos': a few random sinusoids per channel, in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    out = []
    for _ in range(n):
        im = np.zeros((side, side, 3))
        for c in range(3):
            for _ in range(3):
                f, g, p = rng.uniform(0.5, 3, 2).tolist() + [rng.uniform(0, 6)]
                im[..., c] += np.sin(2 * np.pi * (f * xx + g * yy) + p)
        out.append((im - im.min()) / (im.max() - im.min()))
    return np.asarray(out, np.float32)


def stripes(side=32):
    s = np.zeros((side, side, 3), np.float32)
    s[::4] = (1.0, 0.9, 0.1)
    s[2::4, :, 2] = 0.8
    return s


def _train(small_vars, **kw):
    """A run at the module's shapes; ``held_out=0`` where a test reads no held-out score (that
    program compiles once per static config: a run at another moving-average decay would compile
    its own for nothing)."""
    args = dict(size=SIZE, batch=BATCH, width=WIDTH, chunk=CHUNK, variables=small_vars, held_out=2)
    return train.train_styles(stripes(), photos(), **(args | kw))


def test_training_lowers_the_held_out_loss(small_vars):
    before = _train(small_vars, steps=0).held_out["style 1"]
    after = _train(small_vars, steps=15, learning_rate=3e-3).held_out["style 1"]
    assert after < 0.7 * before, (before, after)


@pytest.mark.parametrize("name", ["adam", "muon"])
def test_the_compiled_chunk_equals_optax_steps_from_python(small_vars, name):
    """The parameters after 3 steps equal optax's adam (or contrib.muon) stepped from Python with
    optax's linear schedule (1e-3 decayed to 0 over the 3 steps), and the model's (their moving
    average) equals a debiased NumPy average of the parameters after each step. Muon's first
    step is checked against its definition (:func:`check_muon_step`)."""
    d = train.AVERAGE_DECAY or 0.5
    r = _train(small_vars, steps=3, average_decay=d, schedule="linear", learning_rate=1e-3,
               held_out=0, optimizer=name)  # fmt: skip
    assert r.model.meta["optimizer"] == name
    o = train.objective_options({"style_scale": 1.0})
    v = jax.tree.map(jnp.asarray, r.model.train["state"]["params"])
    net = r.model.net
    variables = __import__("jaxnst").model.vgg.with_backward_kernels(small_vars)
    cfg = steps.TrainConfig(net, o.content_layers, o.style_layers, "max", (4, 8, 8, 16, 16))
    grams = train.style_targets([stripes()], SIZE, o, variables, cfg)
    w = __import__("jaxnst").loss.losses.Weights(np.float32(1.0), np.float32(3e-4), np.float32(1e4))
    data = train.ArrayPhotos(photos(), SIZE, BATCH, 0)  # (none held out)
    params = network.init_params(jax.random.PRNGKey(0), net)
    lr = optax.linear_schedule(1e-3, 0.0, 3)
    opt = optax.adam(lr, b1=0.9, b2=steps.ADAM_B2)
    if name == "muon":
        from optax import contrib

        opt = contrib.muon(lr, adam_learning_rate=lr, adam_b2=steps.ADAM_B2,
                           consistent_rms=steps.MUON_RMS,
                           muon_weight_dimension_numbers=steps._muon_dims)  # fmt: skip
    state = opt.init(params)
    grad = jax.jit(jax.value_and_grad(steps.batch_loss, has_aux=True), static_argnums=7)

    @jax.jit  # (optax's update, one program: run op by op it compiled ~130 small ones, ~6 s)
    def update(g, state, params):
        updates, state = opt.update(g, state, params)
        return optax.apply_updates(params, updates), state

    key = jax.random.PRNGKey(0)
    losses, avg = [], jax.tree.map(lambda a: np.zeros(a.shape), params)
    for t in range(3):
        style, ls = steps.draws(key, jnp.int32(t), BATCH, cfg)
        (loss, _), g = grad(params, data.batch_at(t), style, ls, variables, grams, w, cfg)
        before = params
        params, state = update(g, state, params)
        if t == 0 and name == "muon":  # what optax's Muon does, checked independently
            check_muon_step(before, params, g, 1e-3)
        avg = jax.tree.map(lambda a, p: d * a + (1 - d) * np.asarray(p, np.float64), avg, params)
        losses.append(float(loss))
    hist = np.asarray(r.model.train["history"])
    np.testing.assert_allclose(hist[:, 1], losses, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=2e-6)
    for a, b in zip(jax.tree.leaves(r.model.params), jax.tree.leaves(avg)):
        np.testing.assert_allclose(np.asarray(a), b / (1 - d**3), rtol=2e-4, atol=2e-6)
    p0 = jax.tree.leaves(network.init_params(jax.random.PRNGKey(0), net))
    moved = [np.abs(np.asarray(a) - np.asarray(b)).max() for a, b in zip(jax.tree.leaves(v), p0)]
    assert max(moved) > 1e-4


def check_muon_step(p0, p1, g, lr):
    """One Muon step from ``p0`` to ``p1`` on gradient ``g`` at step size ``lr``: each inner
    kernel moves along the polar factor of its gradient (read as a (kh kw in, out) matrix; an
    exact float64 SVD here) by an RMS of about lr * MUON_RMS; the first and last convolutions,
    norms and bias by Nesterov Adam's first step, lr * (1 + b1 (1 - b1) / (1 - b1^2)) sign(g)."""
    for layer in p0:
        for name in p0[layer]:
            gi = np.asarray(g[layer][name], np.float64)
            d = (np.asarray(p1[layer][name], np.float64) - np.asarray(p0[layer][name])) / -lr
            if name == "kernel" and layer not in ("c1", "out"):
                u, _, vt = np.linalg.svd(gi.reshape(-1, gi.shape[-1]), full_matrices=False)
                polar, dm = (u @ vt).ravel(), d.ravel()
                cos = dm @ polar / np.linalg.norm(dm) / np.linalg.norm(polar)
                assert cos > 0.9, (layer, cos)
                rms = np.sqrt(np.mean(dm**2))
                assert 0.5 * steps.MUON_RMS < rms < 1.5 * steps.MUON_RMS, (layer, rms)
            else:
                big = np.abs(gi) > 1e-6 * np.abs(gi).max()
                nesterov = 1 + 0.9 * 0.1 / (1 - 0.9**2)
                np.testing.assert_allclose(d[big], nesterov * np.sign(gi[big]), atol=3e-3,
                                           err_msg=layer)  # fmt: skip


def test_the_loop_program_equals_one_program_per_step(small_vars):
    """Accelerators run a chunk as one while loop (train_chunk); CPUs call train_step per step
    (run_chunk's ``stepwise``). Same draws, same steps: equal to float rounding; the steps after
    ``count`` are left out (NaN) either way. The config, state and batches are placed as
    train_styles places them, so the stepwise run is the program the other tests' runs use."""
    from jaxnst.feedforward import loop

    o = train.objective_options({"style_scale": 1.0})
    net = NetConfig(WIDTH)
    variables = __import__("jaxnst").model.vgg.with_backward_kernels(small_vars)
    cfg = steps.TrainConfig(
        net, o.content_layers, o.style_layers, "max", (4, 8, 8, 16, 16), stepwise=True
    )
    grams = train.style_targets([stripes()], SIZE, o, variables, cfg)
    w = __import__("jaxnst").loss.losses.Weights(np.float32(1.0), np.float32(3e-4), np.float32(1e4))
    data = train.ArrayPhotos(photos()[:6], SIZE, BATCH, 0)
    sharding, replicated = loop.mesh()
    batches = loop.place(np.stack([data.batch_at(t) for t in range(CHUNK)]), sharding)
    state = steps.init_state(network.init_params(jax.random.PRNGKey(0), net), 0)
    state = jax.device_put(state, replicated)
    out = {}
    for stepwise in (False, True):
        c = cfg._replace(stepwise=stepwise)
        args = (variables, grams, w, np.float32(1e-3))
        out[stepwise] = steps.run_chunk(state, batches, np.int32(CHUNK - 1), *args, config=c)
    (a, ha), (b, hb) = out[False], out[True]
    assert int(a.step) == int(b.step) == CHUNK - 1
    np.testing.assert_allclose(np.asarray(ha)[:-1], np.asarray(hb)[:-1], rtol=1e-5)
    assert np.isnan(np.asarray(ha)[-1]) and np.isnan(np.asarray(hb)[-1])
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)


def test_upsampling_convolution_equals_the_upsampled_image_convolved():
    """network.up_conv (four 2x2 phase convolutions of the edge-padded source) against the
    direct form: nearest x2 by np.repeat, reflection padding, a 3x3 convolution."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 7, 4)).astype(np.float32)
    k = rng.standard_normal((3, 3, 4, 6)).astype(np.float32)
    up = np.pad(x.repeat(2, 1).repeat(2, 2), ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    want = np.zeros((2, 10, 14, 6))
    for a in range(3):
        for b in range(3):
            want += np.einsum("nhwc,co->nhwo", up[:, a : a + 10, b : b + 14], k[a, b])
    np.testing.assert_allclose(np.asarray(network.up_conv(x, k)), want, rtol=1e-5, atol=1e-5)


def test_narrow_convolution_equals_xla_s_with_its_gradients():
    """network.narrow_conv (a 1 x k convolution to every row's outputs, then the shifted row
    planes summed) against lax.conv_general_dilated: values and both gradients."""
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.standard_normal((2, 14, 12, 5)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((9, 9, 5, 3)) * 0.1, jnp.float32)
    g = jnp.asarray(rng.standard_normal((2, 6, 4, 3)), jnp.float32)

    def ref(x, k):
        return lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))  # fmt: skip

    np.testing.assert_allclose(network.narrow_conv(x, k), ref(x, k), rtol=1e-5, atol=1e-5)
    got = jax.vjp(network.narrow_conv, x, k)[1](g)
    want = jax.vjp(ref, x, k)[1](g)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)


def test_instance_norm_gradient_equals_autodiff_of_its_formula():
    """network.normalize's written-out gradient against jax's autodiff of the plain formula
    (float64: the mean and variance over H and W, per sample and channel)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 5, 3)) * 3 + 1
    g = rng.standard_normal(x.shape)

    def plain(x):
        mu = x.mean(axis=(1, 2), keepdims=True)
        return (x - mu) / jnp.sqrt(((x - mu) ** 2).mean(axis=(1, 2), keepdims=True) + network.EPS)

    with jax.enable_x64(True):
        want = jax.vjp(plain, jnp.asarray(x))[1](jnp.asarray(g))[0]
    got = jax.vjp(network.normalize, jnp.asarray(x, jnp.float32))[1](jnp.asarray(g, jnp.float32))
    np.testing.assert_allclose(np.asarray(got[0]), np.asarray(want), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(network.normalize(x.astype(np.float32))),
                               np.asarray(plain(x)), atol=1e-5)  # fmt: skip


def test_resume_continues_bit_for_bit(small_vars, tmp_path):
    """A 6-step run interrupted after 3 (Ctrl-C: the checkpoint is written) and resumed equals
    the whole run, its decaying step sizes included."""
    whole = _train(small_vars, steps=6, schedule="linear")
    ck = tmp_path / "m.jaxnst"

    def interrupt(progress, model):
        if progress.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(small_vars, steps=6, checkpoint=ck, callback=interrupt, schedule="linear")
    assert model_file.load(ck).meta["steps"] == 3
    resumed = _train(small_vars, steps=6, resume=str(ck), schedule="linear")
    for a, b in zip(jax.tree.leaves(whole.model.params), jax.tree.leaves(resumed.model.params)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert np.array_equal(whole.model.train["history"], resumed.model.train["history"])
    old = model_file.load(ck)  # a file from before the moving average: it starts at the params
    old.train["state"].pop("average")
    again = _train(small_vars, steps=3, resume=old, average_decay=0.5, held_out=0).model
    for a, b in zip(jax.tree.leaves(again.params), jax.tree.leaves(old.train["state"]["params"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    with pytest.raises(model_file.ModelError, match="another style weight|another objective"):
        _train(small_vars, steps=6, resume=str(ck), style_weight=1e-3)


def _reference_forward(p, x, s=0, k=0):
    """Johnson's network written out with lax.conv and NumPy-style instance norm: the plain
    (unconditional) network with the style's, knot's scale and shift."""

    def conv(h, name, stride=1):
        kern, bias = p[name]["kernel"], p[name].get("bias", 0.0)
        r = kern.shape[0] // 2
        h = jnp.pad(h, ((0, 0), (r, r), (r, r), (0, 0)), mode="reflect")
        dn = ("NHWC", "HWIO", "NHWC")
        return (
            lax.conv_general_dilated(h, kern, (stride,) * 2, "VALID", dimension_numbers=dn) + bias
        )

    def inorm(h, name):
        mu = h.mean(axis=(1, 2), keepdims=True)
        sd = jnp.sqrt(((h - mu) ** 2).mean(axis=(1, 2), keepdims=True) + 1e-5)
        beta = p[name]["beta"][s, k] if "beta" in p[name] else 0.0
        return (h - mu) / sd * p[name]["gamma"][s, k] + beta

    relu = jax.nn.relu
    h = x * 2 - 1
    h = relu(inorm(conv(h, "c1"), "n1"))
    h = relu(inorm(conv(h, "d1", 2), "n2"))
    h = relu(inorm(conv(h, "d2", 2), "n3"))
    for i in range(5):
        r = relu(inorm(conv(h, f"r{i}a"), f"rn{i}a"))
        h = h + inorm(conv(r, f"r{i}b"), f"rn{i}b")
    for i in range(2):
        h = h.repeat(2, axis=1).repeat(2, axis=2)
        h = relu(inorm(conv(h, f"u{i}"), f"un{i}"))
    return (jnp.tanh(conv(h, "out")) + 1) / 2


def _perturbed(net, seed):
    """Parameters with random (not initial) norm scales and shifts, so styles differ."""
    p = jax.tree.map(np.asarray, network.init_params(jax.random.PRNGKey(seed), net))
    rng = np.random.default_rng(seed)
    for q in p.values():
        if "gamma" in q:
            q["gamma"] = (1 + 0.5 * rng.standard_normal(q["gamma"].shape)).astype(np.float32)
            if "beta" in q:
                q["beta"] = (0.5 * rng.standard_normal(q["beta"].shape)).astype(np.float32)
    return p


def test_conditional_norm_with_one_style_is_the_plain_network():
    net = NetConfig(WIDTH, 1, 1)
    p = _perturbed(net, 1)
    x = jnp.asarray(photos(2, 24))
    got = ff_apply.apply_style(model_file.Model(p, net, {"styles": ["a"]}), np.asarray(x))
    want = jax.jit(_reference_forward)(jax.tree.map(jnp.asarray, p), x)
    np.testing.assert_allclose(got, np.asarray(want), atol=2e-5)


def test_a_0_1_blend_is_each_style_and_a_half_blend_mixes_the_parameters():
    net = NetConfig(WIDTH, 2, 1)
    p = _perturbed(net, 2)
    m = model_file.Model(p, net, {"styles": ["a", "b"]})
    x = photos(2, 26)  # 26: not a multiple of 4; padded inside
    a, b = ff_apply.apply_style(m, x, style="a"), ff_apply.apply_style(m, x, style=1)
    np.testing.assert_allclose(ff_apply.apply_style(m, x, style=[1, 0]), a, atol=1e-6)
    np.testing.assert_allclose(ff_apply.apply_style(m, x, style=[0, 3]), b, atol=1e-6)
    assert np.abs(a - b).mean() > 0.02
    half = jax.tree.map(lambda t: t, p)
    for q in half.values():
        if "gamma" in q:
            q.update({k: v.mean(0, keepdims=True) for k, v in q.items()})
    one = model_file.Model(half, NetConfig(WIDTH, 1, 1), {"styles": ["mix"]})
    np.testing.assert_allclose(
        ff_apply.apply_style(m, x, style=[0.5, 0.5]), ff_apply.apply_style(one, x), atol=1e-5
    )
    with pytest.raises(ValueError, match="unknown style 'c'"):
        ff_apply.apply_style(m, x, style="c")


def test_strength_knots_are_linear_interpolation_in_log_strength():
    net = NetConfig(1.0, 1, 5, (0.1, 10.0))
    pos = np.log(np.geomspace(0.1, 10.0, 5))
    s = np.array([0.05, 0.1, 0.2, 1.0, 3.3, 10.0, 20.0])
    got = np.asarray(network.knot_weights(jnp.log(jnp.asarray(s, jnp.float32)), net))
    want = np.stack([np.interp(np.log(s), pos, np.eye(5)[k]) for k in range(5)], -1)
    np.testing.assert_allclose(got, want, atol=1e-5)
    m = model_file.Model({}, net, {"styles": ["a"]})
    assert ff_apply.check_strength(m, None) == 1.0
    with pytest.raises(ValueError, match=r"outside this model's trained range \(0.1..10\)"):
        ff_apply.check_strength(m, 30)


def test_model_file_round_trip_and_refusals(tmp_path):
    net = NetConfig(WIDTH, 1, 1)
    p = _perturbed(net, 3)
    m = model_file.Model(p, net, {"styles": ["a"], "steps": 5})
    path = model_file.save(tmp_path / "m.jaxnst", m)
    back = model_file.load(path)
    assert back.net == net and back.meta == m.meta
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(back.params)):
        assert np.array_equal(a, b)
    data = path.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],
        "not a jaxnst model file": b"\x89PNG\r\n\x1a\n" + data[8:],
        "newer than this jaxnst": data.replace(b"JAXNST-MODEL\n\x01", b"JAXNST-MODEL\n\x07", 1),
        "checksum": data[:-10] + bytes(10),
    }
    for what, bad in cases.items():
        f = tmp_path / "bad.jaxnst"
        f.write_bytes(bad)
        with pytest.raises(model_file.ModelError, match=what) as e:
            model_file.load(f)
        assert "\n" not in str(e.value)


def test_tiled_apply_equals_untiled():
    net = NetConfig(WIDTH, 2, 3, (0.5, 2.0))
    p = _perturbed(net, 4)
    m = model_file.Model(p, net, {"styles": ["a", "b"]})
    x = photos(2, 42)[:, :, :38]  # 42 x 38: padded to 44 x 40 inside; tiles of 8 at every layer
    kw = dict(style=[0.3, 0.7], strength=1.4)
    whole = ff_apply.apply_style(m, x, **kw)
    tiled = ff_apply.apply_style(m, x, tile=8, **kw)
    np.testing.assert_allclose(tiled, whole, atol=2e-5)
    lum = ff_apply.apply_style(m, x, tile=8, preserve_color="luminance", **kw)
    np.testing.assert_allclose(
        lum, ff_apply.apply_style(m, x, preserve_color="luminance", **kw), atol=2e-5
    )


def test_the_time_budget_and_ctrl_c_leave_a_usable_model(small_vars, tmp_path):
    r = _train(small_vars, steps=30, max_seconds=1e-3)  # the first chunk always runs
    assert r.stopped == "time" and r.steps == CHUNK and r.model.meta["steps"] == CHUNK

    def interrupt(progress, model):
        raise KeyboardInterrupt

    ck = tmp_path / "ctrl-c.jaxnst"
    with pytest.raises(KeyboardInterrupt):
        _train(small_vars, steps=30, checkpoint=ck, callback=interrupt)
    m = model_file.load(ck)
    assert m.meta["steps"] == CHUNK and len(m.train["history"]) == CHUNK
    assert ff_apply.apply_style(m, photos(1, 32)[0]).shape == (32, 32, 3)


def test_a_diverging_run_stops_and_keeps_the_last_finite_model(small_vars, tmp_path, monkeypatch):
    real = steps.run_chunk
    calls = []

    def poisoned(state, batches, count, *a, **k):
        st, hist = real(state, batches, count, *a, **k)
        calls.append(1)
        hist = np.array(hist)
        if len(calls) > 1:
            hist[1] = np.nan
        return st, hist

    monkeypatch.setattr(steps, "run_chunk", poisoned)
    ck = tmp_path / "nan.jaxnst"
    with pytest.raises(train.TrainDiverged, match="at step 4") as e:
        _train(small_vars, steps=9, checkpoint=ck)
    assert e.value.model.meta["steps"] == CHUNK == model_file.load(ck).meta["steps"]


SHARDED = """
import os, sys, json
sys.path.insert(0, {tests!r})
import jax, numpy as np
from jaxnst.model import vgg
import test_feedforward as T
small = vgg.random_variables(jax.random.PRNGKey({key}))
r = T._train(small, steps=3)
np.savez({out!r}, *[np.asarray(a) for a in jax.tree.leaves(r.model.params)],
         hist=r.model.train["history"])
print(json.dumps(dict(devices=jax.device_count())))
"""


@pytest.mark.slow  # a subprocess compiling the training program for two devices
def test_the_batch_sharded_over_two_devices_trains_the_same_network(small_vars, tmp_path):
    """Data-parallel: the batch split over 2 (CPU) devices gives the single device's parameters
    and losses (to float rounding: the gradient's sum is reduced across devices)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import SMALL_KEY

    tests = str(Path(__file__).parent)
    got = {}
    # One device: this process, when it has one CPU device (its training program is the one the
    # other tests here compile); else a subprocess as for two.
    here = jax.device_count() == 1 and jax.default_backend() == "cpu"
    if here:
        r = _train(small_vars, steps=3)
        leaves = {f"arr_{i}": np.asarray(a) for i, a in enumerate(jax.tree.leaves(r.model.params))}
        got[1] = {**leaves, "hist": np.asarray(r.model.train["history"])}
    for n in (2,) if here else (1, 2):
        out = tmp_path / f"d{n}.npz"
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}",
               "JAX_PLATFORMS": "cpu"}  # fmt: skip
        code = SHARDED.format(tests=tests, key=SMALL_KEY, out=str(out))
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr[-2000:]
        assert json.loads(p.stdout.strip().splitlines()[-1])["devices"] == n
        got[n] = dict(np.load(out))
    assert got[2].keys() == got[1].keys()
    np.testing.assert_allclose(got[2]["hist"], got[1]["hist"], rtol=1e-5)
    for k in got[1]:
        np.testing.assert_allclose(got[2][k], got[1][k], rtol=1e-4, atol=1e-5)


def test_artefact_measures_see_a_checkerboard_and_a_bad_border():
    """jaxnst.bench.artefacts: a 2 px checkerboard added to a photo raises its share of power
    at 2 and 4 px periods over the photo's; the photo itself scores 1. A feature error on the
    border band scores above 1, a uniform one 1."""
    from jaxnst.bench import artefacts

    photo = photos(1, 64)[0]
    board = (np.indices((64, 64)).sum(0) % 2 - 0.5)[..., None] * 0.1
    assert artefacts.checkerboard_energy(photo, photo) == pytest.approx(1.0)
    assert artefacts.checkerboard_energy(np.clip(photo + board, 0, 1), photo) > 5.0
    f = np.zeros((16, 16, 4))
    assert artefacts.border_interior(f + 1.0, f) == pytest.approx(1.0)
    bad = f + 1.0
    bad[0] += 2.0  # the top row: within the border band
    assert artefacts.border_interior(bad, f) > 1.5


def test_step_size_schedules():
    """Linear: lr (1 - k / total) at step k, or (1 - the time budget's share spent) when that is
    further along; constant: lr; an unknown name is refused."""
    want = 2e-3 * (1 - np.arange(2, 5) / 8)
    np.testing.assert_allclose(steps.rates(2e-3, "linear", 2, 3, 8), want)
    np.testing.assert_allclose(steps.rates(2e-3, "linear", 0, 2, 100, 0.75), [5e-4, 5e-4])
    np.testing.assert_allclose(steps.rates(2e-3, "linear", 9, 2, 8), [0.0, 0.0])
    np.testing.assert_allclose(steps.rates(2e-3, "constant", 5, 2, 8, 0.9), [2e-3, 2e-3])
    with pytest.raises(ValueError, match="unknown schedule 'cosine'"):
        train.train_styles(stripes(), photos(), steps=1, schedule="cosine")
