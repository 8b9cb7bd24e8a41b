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
NARROW = 4  # convolutions with at most this many outputs run as narrow_conv


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
    """(N, H, W, C) -> per-sample, per-channel mean and variance over H, W: (N, 1, 1, C) each.
    Reduced over one flattened H*W axis: XLA:CPU reduces over two non-minor axes 2-3x slower
    (7.4 against 2.6 ms for (1, 256, 256, 32); AMD EPYC Zen 4)."""
    n, h, w, c = x.shape
    f = x.astype(jnp.float32).reshape(n, h * w, c)
    mu = jnp.mean(f, axis=1, keepdims=True)
    var = jnp.mean(jnp.square(f - mu), axis=1, keepdims=True)
    return mu.reshape(n, 1, 1, c), var.reshape(n, 1, 1, c)


def _spatial_mean(x: jax.Array) -> jax.Array:
    n, h, w, c = x.shape
    return jnp.mean(x.reshape(n, h * w, c), axis=1).reshape(n, 1, 1, c)


@jax.custom_vjp
def normalize(x: jax.Array) -> jax.Array:
    """(x - mean) / sqrt(var + EPS) per sample and channel over H, W; its gradient written out
    (two fused reductions and one pass instead of autodiff's through the two-pass variance:
    8 instead of 19 ms for (4, 128, 128, 32) on XLA:CPU)."""
    return _normalize_fwd(x)[0]


def _normalize_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    mu, var = instance_stats(x)
    r = jax.lax.rsqrt(var + EPS)
    xh = (x - mu) * r
    return xh, (xh, r)


def _normalize_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    xh, r = res
    m1 = _spatial_mean(g)
    m2 = _spatial_mean(g * xh)
    return (r * (g - m1 - xh * m2),)


normalize.defvjp(_normalize_fwd, _normalize_bwd)


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
        y = normalize(x.astype(jnp.float32)) * g
        if not self.shift:
            return y
        beta = self.param("beta", nn.initializers.zeros, (self.styles, self.knots, c))
        return y + jnp.einsum("ns,nk,skc->nc", ws, wk, beta)[:, None, None, :]


def _fold(kernel: jax.Array, phase: int, axis: int) -> jax.Array:
    """A 3-tap kernel axis as the low-resolution grid sees it from output ``phase`` of a x2
    nearest upsampling: phase 0 reads source rows i-1 (tap 0) and i (taps 1 and 2), phase 1 rows
    i (taps 0 and 1) and i+1 (tap 2)."""
    w0, w1, w2 = (jnp.take(kernel, i, axis=axis) for i in range(3))
    return jnp.stack([w0, w1 + w2] if phase == 0 else [w0 + w1, w2], axis=axis)


def _conv(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    dn = ("NHWC", "HWIO", "NHWC")
    return jax.lax.conv_general_dilated(x, kernel, (stride,) * 2, "VALID", dimension_numbers=dn)


def narrow_conv(xp: jax.Array, kernel: jax.Array) -> jax.Array:
    """A VALID k x k convolution with few output channels (the last 9x9 layer's 3) in two
    stages: a 1 x k convolution to k*O channels (every kernel row's outputs), then the sum of the
    k row planes, each shifted by its row. XLA:CPU keeps few output channels in poorly filled
    vectors: at 256 px, batch 1, 19.5 against 97 ms for the direct convolution (and 68 ms for a
    wide dot and summed tap planes), with gradients at 128 px, batch 4, 255 against 513 ms
    (AMD EPYC Zen 4, 2 cores, both under the same load). Autodiff's gradients."""
    k, _, c, o = kernel.shape
    n, hp, wp, _ = xp.shape
    rows = kernel.transpose(1, 2, 0, 3).reshape(1, k, c, k * o)  # (1, b, c, a*O)
    u = _conv(xp, rows).reshape(n, hp, wp - k + 1, k, o)
    h = hp - k + 1
    return sum(u[:, a : a + h, :, a] for a in range(k))  # type: ignore[return-value]


def up_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x2 nearest upsampling, then a reflection-padded 3x3 convolution, computed on the
    low-resolution input: each of the four output phases is a 2x2 convolution of the
    edge-padded input (the reflection of an upsampled image is the source's edge) with summed
    taps, the four as one convolution with 4x the outputs, each phase then read at its offset.
    16 instead of 36 multiply-adds per source pixel and channel pair, and the upsampled image is
    never made: 2-3x faster forward and 1.5-2.4x with gradients on XLA:CPU (128 px, batch 4;
    AMD EPYC Zen 4); one convolution rather than four: 16 against 27 ms for (1, 64, 64, 128)
    to 64 channels. Equal to the direct form up to float rounding."""
    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    phases = [_fold(_fold(kernel, py, 0), px, 1) for py in (0, 1) for px in (0, 1)]
    z = _conv(xp, jnp.stack(phases, 3).reshape(2, 2, c, -1)).reshape(n, h + 1, w + 1, 4, -1)
    y = jnp.stack(
        [z[:, py : py + h, px : px + w, 2 * py + px] for py in (0, 1) for px in (0, 1)], 3
    )
    return y.reshape(n, h, w, 2, 2, -1).transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, -1)


class Conv(nn.Module):
    """A reflection-padded k x k convolution (Flax's ``kernel`` (k, k, I, O) and optional
    ``bias``, Flax's initialisers); with ``up=2`` (3x3, stride 1) of the input upsampled x2
    by nearest neighbour (:func:`up_conv`)."""

    features: int
    size: int
    stride: int = 1
    bias: bool = True
    up: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.size, self.size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape, jnp.float32)
        if self.up == 2 and self.size == 3 and self.stride == 1:
            y = up_conv(x, kernel)
        elif self.up == 1 and self.features <= NARROW and self.stride == 1:
            y = narrow_conv(_reflect(x, self.size // 2), kernel)
        elif self.up == 1:
            y = _conv(_reflect(x, self.size // 2), kernel, self.stride)
        else:
            raise ValueError(f"no x{self.up} upsampling before a {self.size}x{self.size} conv")
        if self.bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return y


class TransformNet(nn.Module):
    """Image in, stylized image out: (N, H, W, 3) float32 in [0, 1], H and W multiples of 4 (use
    :func:`jaxnst.feedforward.apply.pad4`). ``cond`` = (style weights (N, S), knot weights (N, K)),
    see :func:`conditioning`."""

    config: NetConfig = NetConfig()

    @nn.compact
    def __call__(self, x: jax.Array, cond: tuple[jax.Array, jax.Array]) -> jax.Array:
        cfg = self.config
        c1, c2, c3 = cfg.channels()

        def norm(h: jax.Array, name: str, shift: bool = True) -> jax.Array:
            return CondInstanceNorm(cfg.styles, cfg.knots, shift, name=name)(h, cond)

        def conv(h: jax.Array, feats: int, k: int, stride: int, name: str, up=1) -> jax.Array:
            # No bias where an instance norm follows: it would subtract it again (its gradient
            # is rounding noise, which Adam would turn into full-size steps).
            return Conv(feats, k, stride, name == "out", up, name=name)(h)

        h = x.astype(jnp.float32) * 2.0 - 1.0
        h = nn.relu(norm(conv(h, c1, 9, 1, "c1"), "n1"))
        h = nn.relu(norm(conv(h, c2, 3, 2, "d1"), "n2"))
        h = nn.relu(norm(conv(h, c3, 3, 2, "d2"), "n3"))
        for i in range(cfg.residual_blocks):
            r = nn.relu(norm(conv(h, c3, 3, 1, f"r{i}a"), f"rn{i}a"))
            # No shift here: a constant added to the residual stream passes the upsampling and
            # the next convolution as a constant, which the next norm removes.
            h = h + norm(conv(r, c3, 3, 1, f"r{i}b"), f"rn{i}b", shift=False)
        for i, feats in enumerate((c2, c1)):  # nearest x2 then a conv: no checkerboard
            h = nn.relu(norm(conv(h, feats, 3, 1, f"u{i}", up=2), f"un{i}"))
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
