import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import smooth_image
from jax import lax
from jax.test_util import check_grads

from jaxnst import features
from jaxnst.model import vgg

MEAN_RGB = np.array([123.68, 116.779, 103.939])


def np_conv_same(x, k, b):
    """Independent NumPy 3x3 SAME cross-correlation, float64. x (H, W, I), k (3, 3, I, O)."""
    h, w, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    out = np.zeros((h, w, k.shape[-1]))
    for dy in range(3):
        for dx in range(3):
            out += xp[dy : dy + h, dx : dx + w, :] @ k[dy, dx]
    return out + b


AVG_SCALE = [1.35, 1.83, 1.50, 2.16]  # documented rescaling of average pooling (jaxnst.model.vgg)


def np_pool(x, kind, index):
    h, w, c = x.shape
    x = x[: h // 2 * 2, : w // 2 * 2].reshape(h // 2, 2, w // 2, 2, c)
    return x.max(axis=(1, 3)) if kind == "max" else x.mean(axis=(1, 3)) * AVG_SCALE[index]


def np_vgg(params, image, pooling):
    """All 16 post-ReLU activations, written without jax."""
    x = image.astype(np.float64) * 255.0 - MEAN_RGB
    out = {}
    for name in vgg.LAYERS:
        if name.endswith("_1") and name != "conv1_1":
            x = np_pool(x, pooling, int(name[4]) - 2)
        p = params[name]
        x = np.maximum(
            np_conv_same(x, np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64)),
            0.0,
        )
        out[name] = x
    return out


def test_random_variables_without_compiling():
    """The test network is drawn with NumPy at VGG19's shapes: the tree Flax's init builds, float32,
    LeCun-normal scale, zero biases, one seed per key (typed or raw), and no XLA compilation."""
    from jaxnst.optim.compilation import compile_stats

    raw, typed = jax.random.PRNGKey(3), jax.random.key(3)
    before = compile_stats()["compiles"]
    v = vgg.random_variables(raw, channels=(2, 3, 4, 5, 6))
    same = vgg.random_variables(typed, channels=(2, 3, 4, 5, 6))
    assert compile_stats()["compiles"] == before
    assert vgg.channels_of(v) == (2, 3, 4, 5, 6)
    model = vgg.VGG19(channels=(2, 3, 4, 5, 6))  # Flax's init, only traced for its shapes
    ref = jax.eval_shape(lambda: model.init(raw, jnp.zeros((8, 8, 3)), vgg.LAYERS))
    assert jax.tree.structure(v) == jax.tree.structure(ref)
    for got, want in zip(jax.tree.leaves(v), jax.tree.leaves(ref)):
        assert (got.shape, got.dtype) == (want.shape, want.dtype)
    for p in v["params"].values():
        k = np.asarray(p["kernel"], np.float64)
        fan_in = 9 * k.shape[2]
        assert np.abs(k).max() <= 2 / 0.8796 / np.sqrt(fan_in) + 1e-6  # truncated at 2 sigma
        assert not np.any(p["bias"])
    big = np.asarray(vgg.random_variables(jax.random.PRNGKey(3))["params"]["conv5_4"]["kernel"])
    assert np.std(big) * np.sqrt(9 * 16) == pytest.approx(1.0, abs=0.05)  # 2304 draws
    other = vgg.random_variables(jax.random.PRNGKey(4), channels=(2, 3, 4, 5, 6))
    for name in vgg.LAYERS:
        np.testing.assert_array_equal(same["params"][name]["kernel"], v["params"][name]["kernel"])
        assert not np.array_equal(other["params"][name]["kernel"], v["params"][name]["kernel"])
    back = vgg.with_backward_kernels(v)["backward"]["conv2_1"]["kernel_t"]
    np.testing.assert_array_equal(back, vgg.backward_kernel(v["params"]["conv2_1"]["kernel"]))


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_small_random_net_matches_numpy(small_vars, pooling, rng):
    img = smooth_image(rng, 40, 36)
    got = features(img, variables=small_vars, pooling=pooling)
    ref = np_vgg(small_vars["params"], img, pooling)
    assert set(got) == set(vgg.LAYERS)
    for name in vgg.LAYERS:
        assert got[name].shape == ref[name].shape, name
        scale = np.abs(ref[name]).max()
        assert np.abs(np.asarray(got[name]) - ref[name]).max() <= 1e-4 * scale + 1e-6, name


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_real_weights_match_numpy(real_vars, pooling, rng):
    variables, _ = real_vars
    img = smooth_image(rng, 48, 40)
    got = features(img, variables=variables, pooling=pooling)
    ref = np_vgg(variables["params"], img, pooling)
    for name in vgg.LAYERS:
        scale = np.abs(ref[name]).max()
        assert scale > 0, name
        err = np.abs(np.asarray(got[name], np.float64) - ref[name]).max()
        assert err <= 1e-4 * scale, (name, err, scale)


def test_only_requested_layers_computed(small_vars, rng):
    img = smooth_image(rng, 32, 32)
    got = features(img, ["conv2_1", "conv1_1"], variables=small_vars)
    assert set(got) == {"conv1_1", "conv2_1"}
    # Truncated params (nothing past conv2_1) must be enough: deeper layers are never built.
    params = {
        k: v for k, v in small_vars["params"].items() if k in ("conv1_1", "conv1_2", "conv2_1")
    }
    model = vgg.VGG19(channels=vgg.channels_of(small_vars))
    out = model.apply({"params": params}, jnp.asarray(img), ("conv2_1",))
    scale = float(np.abs(got["conv2_1"]).max())
    np.testing.assert_allclose(out["conv2_1"], got["conv2_1"], rtol=1e-5, atol=1e-5 * scale)


def test_batched_equals_single(small_vars, rng):
    imgs = np.stack([smooth_image(rng, 32, 32) for _ in range(2)])
    got = features(imgs, ["conv3_1"], variables=small_vars)["conv3_1"]
    for i in range(2):
        one = features(imgs[i], ["conv3_1"], variables=small_vars)["conv3_1"]
        np.testing.assert_allclose(got[i], one, rtol=1e-5, atol=1e-5)


def test_unknown_layer_message(small_vars):
    with pytest.raises(
        ValueError, match="unknown layer 'conv9_1'; expected one of conv1_1..conv5_4"
    ):
        features(np.zeros((32, 32, 3), np.float32), ["conv9_1"], variables=small_vars)


def test_custom_vjp_conv_matches_autodiff_and_finite_differences(rng):
    x = jnp.asarray(rng.standard_normal((1, 6, 5, 3)), jnp.float32)
    k = jnp.asarray(rng.standard_normal((3, 3, 3, 4)), jnp.float32)
    kt = vgg.backward_kernel(k)

    def plain(x, k):
        y = lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        return jnp.sum(jnp.tanh(y))

    custom = lambda x, k: jnp.sum(jnp.tanh(vgg.conv3x3(x, k, kt)))  # noqa: E731
    np.testing.assert_allclose(custom(x, k), plain(x, k), rtol=1e-6)
    for got, want in zip(jax.grad(custom, (0, 1))(x, k), jax.grad(plain, (0, 1))(x, k)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    check_grads(lambda x: custom(x, k), (x,), order=1, modes=["rev"], atol=5e-2, rtol=5e-2)


def test_backward_kernel_collection_is_used(small_vars, rng):
    """Gradients through the module are the same with precomputed and on-the-fly kernels."""
    img = jnp.asarray(smooth_image(rng, 32, 32))
    model = vgg.VGG19(channels=vgg.channels_of(small_vars))
    f = lambda v, x: jnp.sum(model.apply(v, x, ("conv3_1",))["conv3_1"] ** 2)  # noqa: E731
    g1 = jax.grad(f, 1)(small_vars, img)
    g2 = jax.grad(f, 1)(vgg.with_backward_kernels(small_vars), img)
    np.testing.assert_allclose(g1, g2, rtol=1e-5, atol=1e-6)


def test_avg_pooling_keeps_activation_magnitudes(real_vars, rng):
    """With the rescaling, average pooling's activations stay within 1.5x of max pooling's at
    every style layer, so the same loss weights work (without it conv5_1 is ~8x smaller)."""
    from jaxnst import image_io
    from jaxnst.cli.command import sample_path

    variables, _ = real_vars
    layers = ["conv2_1", "conv3_1", "conv4_1", "conv5_1"]
    for name in ("chelsea.jpg", "swirls.png"):
        img = image_io.resize(image_io.load(sample_path(name)), 96)
        mx = features(img, layers, variables=variables, pooling="max")
        av = features(img, layers, variables=variables, pooling="avg")
        for n in layers:
            r = float(np.mean(av[n]) / np.mean(mx[n]))
            assert 1 / 1.5 < r < 1.5, (name, n, r)


@pytest.mark.parametrize("shape", [(1, 8, 6, 3), (2, 7, 9, 4)])  # even, and odd (last row dropped)
def test_max_pool_matches_reduce_window_and_its_gradient(rng, shape):
    """The reshape max pool and its custom VJP against lax.reduce_window and its autodiff gradient
    (select_and_scatter), on an image with flat regions: ties must send the cotangent to one element
    (the first), not to every tied one."""
    x = rng.standard_normal(shape).astype(np.float32)
    x[:, :4, :4] = 0.5  # flat block: every window inside ties
    x[:, 4:, :2] = np.maximum(x[:, 4:, :2], 0) * 0  # zeros, as after ReLU
    x = jnp.asarray(x)
    g = jnp.asarray(
        rng.standard_normal((shape[0], shape[1] // 2, shape[2] // 2, shape[3])), jnp.float32
    )

    def plain(x):
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")

    np.testing.assert_array_equal(vgg.max_pool(x), plain(x))
    (got,) = jax.vjp(vgg.max_pool, x)[1](g)
    (want,) = jax.vjp(plain, x)[1](g)
    np.testing.assert_array_equal(got, want)
    assert float(jnp.sum(got)) == pytest.approx(float(jnp.sum(g)), rel=1e-5)  # nothing duplicated
