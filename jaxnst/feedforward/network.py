"""Johnson et al.'s image transformation network (ECCV 2016) as a Flax module, with Ulyanov et al.'s
instance normalisation made conditional (Dumoulin, Shlens & Kudlur, ICLR 2017) on the style and on
the style's strength.

Layout (``width`` scales every channel count; Johnson's is 1.0):

    c9s1-32  d64  d128  R128 x5  u64  u32  c9s1-3

``c9s1-32``: reflection-padded 9x9 convolution, stride 1, 32 filters, instance norm, ReLU. ``dK``:
3x3, stride 2. ``RK``: two 3x3 convolutions with instance norm (ReLU after the first) plus the
input. ``uK``: x2 nearest-neighbour upsampling, then a reflection-padded 3x3 convolution.
Deviations from Johnson: convolutions followed by an instance norm have no bias (the norm removes
it), nor do the residual blocks' second norms have a shift (see below); upsampling by a
transposed convolution is replaced by nearest upsampling and a convolution (Odena et al., Distill
2016), which cannot make checkerboards. The last convolution is followed by ``(tanh + 1) / 2``
(Johnson's scaled tanh), so outputs lie in [0, 1].

Conditioning. Every instance norm's scale and shift are ``gamma[s, k, c]``, ``beta[s, k, c]`` for
style ``s`` and strength knot ``k``. A sample's conditioning is a weight per style (one-hot while
training; any convex mix at inference blends styles, as Dumoulin et al. mix their parameters) and a
weight per knot: the knots sit evenly on log(strength) over the trained range, and a strength
between two knots interpolates linearly between them (hat functions). With one style and one knot
the module is the plain instance-normalised network.
"""

from __future__ import annotations

from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-5  # instance norm's variance epsilon (PyTorch's InstanceNorm2d default)
IM2COL_WIDTH = 1152  # the widest patches computed as dots (a 3x3 layer of 128 channels)


class NetConfig(NamedTuple):
    """The network's static shape: ``width`` multiplies the channels (32, 64, 128), ``styles`` is
    the number of styles held, ``knots`` the number of strength knots, ``strengths`` the trained
    strength range (low, high) (``knots == 1``: the one strength ``low``)."""

    width: float = 1.0
    styles: int = 1
    knots: int = 1
    strengths: tuple[float, float] = (1.0, 1.0)
    residual_blocks: int = 5

    def channels(self) -> tuple[int, int, int]:
        return tuple(max(1, round(c * self.width)) for c in (32, 64, 128))  # type: ignore[return-value]


def _reflect(x: jax.Array, n: int) -> jax.Array:
    return jnp.pad(x, ((0, 0), (n, n), (n, n), (0, 0)), mode="reflect")


def instance_stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(N, H, W, C) -> per-sample, per-channel mean and variance over H, W: (N, 1, 1, C) each."""
    x = x.astype(jnp.float32)
    mu = jnp.mean(x, axis=(1, 2), keepdims=True)
    return mu, jnp.mean(jnp.square(x - mu), axis=(1, 2), keepdims=True)


class CondInstanceNorm(nn.Module):
    """Instance norm whose affine parameters depend on the conditioning (see module doc)."""

    styles: int
    knots: int
    shift: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, cond: tuple[jax.Array, jax.Array]) -> jax.Array:
        c = x.shape[-1]
        ws, wk = cond  # (N, S), (N, K)
        gamma = self.param("gamma", nn.initializers.ones, (self.styles, self.knots, c))
        g = jnp.einsum("ns,nk,skc->nc", ws, wk, gamma)[:, None, None, :]
        mu, var = instance_stats(x)
        y = (x - mu) * jax.lax.rsqrt(var + EPS) * g
        if not self.shift:
            return y
        beta = self.param("beta", nn.initializers.zeros, (self.styles, self.knots, c))
        return y + jnp.einsum("ns,nk,skc->nc", ws, wk, beta)[:, None, None, :]


def _im2col(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A VALID convolution as one dot of the k*k shifted (strided) slices of ``x``."""
    k, _, c, o = kernel.shape
    n, h, w, _ = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    cols = [
        jax.lax.slice(
            x,
            (0, a, b, 0),
            (n, a + (ho - 1) * stride + 1, b + (wo - 1) * stride + 1, c),
            (1, stride, stride, 1),
        )  # fmt: skip
        for a in range(k)
        for b in range(k)
    ]
    return jnp.concatenate(cols, -1) @ kernel.reshape(k * k * c, o)


class Conv(nn.Module):
    """A reflection-padded k x k convolution (Flax's ``kernel`` (k, k, I, O) and optional
    ``bias``, Flax's initialisers). ``im2col``: as one dot of the input's shifted slices instead
    of XLA's convolution. Inside the training loop on XLA:CPU the convolution's gradients ran
    8-30x slower than those dots' (a 128 px step: 25.7 s against 3.3 s outside a loop), the same
    slow path the VGG19's custom input-gradient avoids (jaxnst.model.vgg)."""

    features: int
    size: int
    stride: int = 1
    bias: bool = True
    im2col: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.size, self.size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        x = _reflect(x, self.size // 2)
        # (Not the last 9x9 layer: its 2592-wide patches cost more than XLA's convolution,
        # 2.93 against 3.36 s for a 128 px network step of batch 4 with it as dots.)
        if self.im2col and self.size * self.size * x.shape[-1] <= IM2COL_WIDTH:
            y = _im2col(x, kernel, self.stride)
        else:
            dn = ("NHWC", "HWIO", "NHWC")
            s = (self.stride, self.stride)
            y = jax.lax.conv_general_dilated(x, kernel, s, "VALID", dimension_numbers=dn)
        if self.bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


class TransformNet(nn.Module):
    """Image in, stylized image out: (N, H, W, 3) float32 in [0, 1], H and W multiples of 4 (use
    :func:`jaxnst.feedforward.apply.pad4`). ``cond`` = (style weights (N, S), knot weights (N, K)),
    see :func:`conditioning`."""

    config: NetConfig = NetConfig()
    im2col: bool = False  # convolutions as dots (see :class:`Conv`); the parameters are the same

    @nn.compact
    def __call__(self, x: jax.Array, cond: tuple[jax.Array, jax.Array]) -> jax.Array:
        cfg = self.config
        c1, c2, c3 = cfg.channels()

        def norm(h: jax.Array, name: str, shift: bool = True) -> jax.Array:
            return CondInstanceNorm(cfg.styles, cfg.knots, shift, name=name)(h, cond)

        def conv(h: jax.Array, feats: int, k: int, stride: int, name: str) -> jax.Array:
            # No bias where an instance norm follows: it would subtract it again (its gradient
            # is rounding noise, which Adam would turn into full-size steps).
            return Conv(feats, k, stride, name == "out", self.im2col, name=name)(h)

        h = x.astype(jnp.float32) * 2.0 - 1.0
        h = nn.relu(norm(conv(h, c1, 9, 1, "c1"), "n1"))
        h = nn.relu(norm(conv(h, c2, 3, 2, "d1"), "n2"))
        h = nn.relu(norm(conv(h, c3, 3, 2, "d2"), "n3"))
        for i in range(cfg.residual_blocks):
            r = nn.relu(norm(conv(h, c3, 3, 1, f"r{i}a"), f"rn{i}a"))
            # No shift here: a constant added to the residual stream passes the upsampling and
            # the next convolution as a constant, which the next norm removes.
            h = h + norm(conv(r, c3, 3, 1, f"r{i}b"), f"rn{i}b", shift=False)
        for i, feats in enumerate((c2, c1)):
            h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)  # nearest x2: no checkerboard
            h = nn.relu(norm(conv(h, feats, 3, 1, f"u{i}"), f"un{i}"))
        h = conv(h, 3, 9, 1, "out")
        return (jnp.tanh(h) + 1.0) * 0.5


def knot_positions(config: NetConfig) -> np.ndarray:
    """log(strength) of each knot: (K,), evenly spaced over the trained range."""
    lo, hi = (float(np.log(s)) for s in config.strengths)
    return np.linspace(lo, hi, config.knots) if config.knots > 1 else np.array([lo])


def knot_weights(log_strength: jax.Array, config: NetConfig) -> jax.Array:
    """(N,) log strengths -> (N, K) hat-function weights (they sum to 1; outside the trained range
    the nearest end's knot)."""
    pos = jnp.asarray(knot_positions(config), jnp.float32)
    if config.knots == 1:
        return jnp.ones((log_strength.shape[0], 1), jnp.float32)
    t = jnp.clip(log_strength, pos[0], pos[-1])
    step = pos[1] - pos[0]
    return jnp.maximum(0.0, 1.0 - jnp.abs(t[:, None] - pos[None, :]) / step)


def conditioning(
    style: jax.Array, log_strength: jax.Array, config: NetConfig
) -> tuple[jax.Array, jax.Array]:
    """``style``: (N,) int indices, or (N, S) mixing weights; ``log_strength``: (N,). Returns the
    ``cond`` pair the network takes."""
    if style.ndim == 1:
        style = jax.nn.one_hot(style, config.styles, dtype=jnp.float32)
    return style.astype(jnp.float32), knot_weights(log_strength.astype(jnp.float32), config)


def init_params(key: jax.Array, config: NetConfig) -> dict:
    """Fresh parameters: convolution kernels drawn as Flax's default (LeCun normal: truncated at 2
    standard deviations, variance 1 / fan_in), the output's bias 0, norms' gamma 1 and beta 0.
    Drawn with NumPy from ``key`` over the shapes :func:`jax.eval_shape` reads off the module:
    nothing is compiled (``TransformNet.init`` compiled the whole network, ~10 s on a CPU)."""
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    cond = (
        jax.ShapeDtypeStruct((1, config.styles), jnp.float32),
        jax.ShapeDtypeStruct((1, config.knots), jnp.float32),
    )
    shapes = jax.eval_shape(TransformNet(config).init, key, x, cond)["params"]
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key) if jnp.issubdtype(
        key.dtype, jax.dtypes.prng_key) else key, np.uint32).tolist())  # fmt: skip
    params: dict = {}
    for layer in sorted(shapes):
        params[layer] = {}
        for name in sorted(shapes[layer]):
            shape = shapes[layer][name].shape
            if name == "kernel":
                z = rng.standard_normal(shape)
                while (bad := np.abs(z) > 2.0).any():  # truncate at 2 sigma by redrawing
                    z[bad] = rng.standard_normal(int(bad.sum()))
                fan_in = int(np.prod(shape[:-1]))
                # 0.8796...: the standard deviation of a standard normal truncated to [-2, 2].
                a = z * (np.sqrt(1.0 / fan_in) / 0.87962566103423978)
            else:
                a = np.ones(shape) if name == "gamma" else np.zeros(shape)
            params[layer][name] = jnp.asarray(a, jnp.float32)
    return params
