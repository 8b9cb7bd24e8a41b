"""VGG19 feature extractor as a Flax module, with the paper's layer names.

Input: RGB float in [0, 1], shape (H, W, 3) or (N, H, W, 3). The module scales it to 0..255 and
subtracts :data:`MEAN_RGB`, the mean pixel of the original Caffe VGG19 (its BGR order is handled by
:mod:`jaxnst.model.weights`, which reverses conv1_1's input channels). Output: a dict of post-ReLU
activations ``conv{b}_{i}``, each (H', W', C) (or batched), computed only up to the deepest layer
asked for.

Every convolution has a custom VJP. The weights are frozen and we differentiate with respect to the
image, so the input-gradient is written as a plain SAME convolution of the cotangent with a kernel
flipped in space and transposed in channels. XLA:CPU compiles that to its fast convolution path even
inside ``lax.scan``/``while_loop``, where the autodiff form of the same gradient was measured ~4x
slower (issue 2). The flipped kernel can be precomputed once per run with
:func:`with_backward_kernels`; the kernel gradient is still exact (computed by ordinary autodiff),
so :func:`jax.grad` with respect to the parameters also works.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxnst.model import convs
from jaxnst.model.layers import BLOCKS, CHANNELS, LAYERS

MEAN_RGB = (123.68, 116.779, 103.939)

_DN = ("NHWC", "HWIO", "NHWC")


def _conv(x, kernel):
    return lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DN)


def backward_kernel(kernel: jax.Array) -> jax.Array:
    """(3, 3, I, O) -> (3, 3, O, I), flipped in space: the kernel whose SAME convolution is the
    input-gradient of a SAME convolution with ``kernel``."""
    return jnp.transpose(kernel[::-1, ::-1], (0, 1, 3, 2))


@jax.custom_vjp
def conv3x3(x: jax.Array, kernel: jax.Array, kernel_t: jax.Array) -> jax.Array:
    """SAME 3x3 convolution of NHWC ``x`` with HWIO ``kernel``; ``kernel_t`` must equal
    ``backward_kernel(kernel)`` and is used only for the input-gradient."""
    return _conv(x, kernel)


def _conv3x3_fwd(x, kernel, kernel_t):
    return _conv(x, kernel), (x, kernel, kernel_t)


def _conv3x3_bwd(res, g):
    x, kernel, kernel_t = res
    dx = _conv(g, kernel_t)
    # Exact kernel gradient; dead code (and removed by XLA) when only the image is differentiated.
    _, vjp_k = jax.vjp(lambda k: _conv(x, k), kernel)
    (dk,) = vjp_k(g)
    # The output does not depend on kernel_t (it only restates kernel), so its cotangent is zero.
    return dx, dk, jnp.zeros_like(kernel_t)


conv3x3.defvjp(_conv3x3_fwd, _conv3x3_bwd)


def _wrap_pad(x, n: int = 1):
    """Circular padding of NHWC ``x`` by ``n`` rows and columns on each side."""
    return jnp.pad(x, ((0, 0), (n, n), (n, n), (0, 0)), mode="wrap")


def _conv_wrap(x, kernel):
    return lax.conv_general_dilated(_wrap_pad(x), kernel, (1, 1), "VALID", dimension_numbers=_DN)


@jax.custom_vjp
def conv3x3_wrap(x: jax.Array, kernel: jax.Array, kernel_t: jax.Array) -> jax.Array:
    """Circular 3x3 convolution of NHWC ``x`` (the image is a torus: seamless tiles). Same
    arguments as :func:`conv3x3`; the output has the input's size."""
    return _conv_wrap(x, kernel)


def _conv3x3_wrap_fwd(x, kernel, kernel_t):
    return _conv_wrap(x, kernel), (x, kernel, kernel_t)


def _conv3x3_wrap_bwd(res, g):
    x, kernel, kernel_t = res
    # The adjoint of a circular convolution is the circular convolution with the flipped,
    # transposed kernel: the same fast path as the SAME case.
    dx = _conv_wrap(g, kernel_t)
    _, vjp_k = jax.vjp(lambda k: _conv_wrap(x, k), kernel)
    (dk,) = vjp_k(g)
    return dx, dk, jnp.zeros_like(kernel_t)


conv3x3_wrap.defvjp(_conv3x3_wrap_fwd, _conv3x3_wrap_bwd)


def _conv_relu(x, kernel, bias, kernel_t, custom_grad, wrap=False, plan=None):
    kernel, bias = kernel.astype(x.dtype), bias.astype(x.dtype)
    if plan is not None and plan != (convs.FP32, convs.FP32) and custom_grad and not wrap:
        return nn.relu(convs.conv3x3(x, kernel, kernel_t, *plan) + bias)
    if wrap:
        return nn.relu(conv3x3_wrap(x, kernel, kernel_t.astype(x.dtype)) + bias)
    if not custom_grad:  # plain autodiff; kept for benchmarks (scripts/bench_loop.py)
        return nn.relu(_conv(x, kernel) + bias)
    return nn.relu(conv3x3(x, kernel, kernel_t.astype(x.dtype)) + bias)


class Conv3x3(nn.Module):
    """The weights of one frozen-friendly 3x3 SAME convolution: ``kernel`` (3, 3, I, O) and ``bias``
    (O,) in ``params``, and ``kernel_t`` from the ``backward`` collection when present (see
    :func:`with_backward_kernels`). Called with the input width, it returns the three arrays; the
    arithmetic lives in plain functions so that whole blocks can be rematerialised."""

    features: int

    @nn.compact
    def __call__(self, in_features: int):
        kernel = self.param(
            "kernel",
            nn.initializers.lecun_normal(),
            (3, 3, in_features, self.features),
            jnp.float32,
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        if self.has_variable("backward", "kernel_t"):
            kernel_t: Any = self.get_variable("backward", "kernel_t")
        else:
            kernel_t = backward_kernel(kernel)
        return kernel, bias, kernel_t


# Deviation from the paper: averaging lowers activations (the mean of a 2x2 window is below its
# max), by a factor that compounds block after block, so the default loss weights tuned with max
# pooling would be off by orders of magnitude. Each average pool is therefore scaled by the
# geometric mean of mean(maxpool)/mean(avgpool) measured before pools 1-4 on five images (the two
# bundled samples, tubingen, starry_night, the_scream, at 256 px; per-image values within 8 %).
AVG_POOL_SCALE = (1.35, 1.83, 1.50, 2.16)


def _windows(x):
    """(N, H, W, C) -> (N, H//2, 2, W//2, 2, C): the 2x2 pooling windows (an odd last row or column
    is dropped, as VALID pooling does). A reshape, so it costs nothing."""
    n, h, w, c = x.shape
    return x[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2, c)


@jax.custom_vjp
def max_pool(x: jax.Array) -> jax.Array:
    """2x2 max pooling, stride 2, VALID, of NHWC ``x``.

    Written as a reshape and a max, with a custom VJP that sends each window's cotangent to its
    first maximal element (row-major; what ``lax.reduce_window``'s gradient and PyTorch do). XLA:CPU
    compiles both directions to single elementwise loops; the ``reduce_window`` form and its
    ``select_and_scatter`` gradient took ~20 % of an evaluation at 256 px (profiled, issue 5).
    """
    return jnp.max(_windows(x), axis=(2, 4))


def _max_pool_fwd(x):
    y = max_pool(x)
    return y, (x, y)


def _max_pool_bwd(res, g):
    x, y = res
    n, h, w, c = x.shape
    win = _windows(x)
    taken = jnp.zeros(y.shape, bool)
    parts = []
    for a in (0, 1):
        for b in (0, 1):
            hit = (win[:, :, a, :, b, :] == y) & ~taken  # ties (flat regions): first one only
            parts.append(jnp.where(hit, g, jnp.zeros_like(g)))
            taken = taken | hit
    dx = jnp.stack(parts).reshape(2, 2, *y.shape)  # (a, b, N, H', W', C)
    dx = jnp.transpose(dx, (2, 3, 0, 4, 1, 5)).reshape(n, y.shape[1] * 2, y.shape[2] * 2, c)
    return (jnp.pad(dx, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))),)


max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)


def _pool(x, kind, index: int = 0, wrap: bool = False):
    if wrap and (x.shape[1] % 2 or x.shape[2] % 2):
        # A torus of odd side has no exact half-size torus; closing the odd row/column with the
        # first one keeps the seam invisible in practice (sides that are multiples of 16 are exact).
        x = jnp.pad(x, ((0, 0), (0, x.shape[1] % 2), (0, x.shape[2] % 2), (0, 0)), mode="wrap")
    if kind == "max":
        return max_pool(x)
    return jnp.sum(_windows(x), axis=(2, 4)) * (0.25 * AVG_POOL_SCALE[index])


def check_layers(layers: Sequence[str], what: str = "layer") -> tuple[str, ...]:
    """Validate layer names; raise ValueError naming the first unknown one."""
    if isinstance(layers, str):
        layers = (layers,)
    try:
        layers = tuple(layers)
    except TypeError:
        raise ValueError(f"{what}s must be layer names like 'conv4_2', got {layers!r}") from None
    for name in layers:
        if not isinstance(name, str):
            raise ValueError(f"{what}s must be layer names like 'conv4_2', got {name!r}")
        if name not in LAYERS:
            raise ValueError(
                f"unknown {what} {name!r}; expected one of conv1_1..conv5_4 ({', '.join(LAYERS)})"
            )
    return layers


PRECISIONS = {"fp32": jnp.float32, "bf16": jnp.bfloat16}


def _block(
    x,
    weights,
    names,
    keep,
    pooling,
    index,
    custom_grad,
    pool_after,
    single,
    tap,
    wrap=False,
    plans=None,
):
    """One VGG block: its convolutions, then the 2x2 pool when another block follows. Returns the
    block's output and, for each layer named in ``keep``, its activation (one image's, when
    ``single``) or ``tap(name, activation)``."""
    out = {}
    for i, (name, (kernel, bias, kernel_t)) in enumerate(zip(names, weights)):
        plan = None if plans is None else plans[i]
        x = _conv_relu(x, kernel, bias, kernel_t, custom_grad, wrap, plan)
        if name in keep:
            act = x[0] if single else x
            out[name] = act if tap is None else tap(name, act)
    if pool_after:
        x = _pool(x, pooling, index, wrap)
    return x, out


class VGG19(nn.Module):
    """VGG19's 16 convolutions (no classifier). ``pooling`` is "max" (as trained) or "avg" (the
    paper's choice for synthesis). ``channels`` scales the widths; tests use small random nets.

    ``precision`` "bf16" runs the convolutions and keeps the activations in bfloat16 (the losses
    cast to float32); "fp32" is the default.

    ``remat`` recomputes each block (its convolutions and the pool after them) during the backward
    pass instead of storing its activations (``jax.checkpoint`` per block): only the pooled block
    outputs stay in memory, plus whatever the requested layers return. Called with ``taps``, a
    function ``(layer name, activation) -> anything`` (a loss term, say), the module returns
    ``taps(name, activation)`` per requested layer instead of the activation, computed inside the
    block, so with ``remat`` not even the requested activations are kept.

    ``wrap`` pads every convolution circularly (the image is treated as a torus), for seamless
    tiles: the output then repeats without a seam.

    ``convs``, one ``(forward, input-gradient)`` pair of formulations per convolution from conv1_1
    on (see :mod:`jaxnst.model.convs`), replaces XLA's float32 convolution layer by layer, e.g. with
    bf16 dots on a CPU's matrix units (``precision="auto"``); activations stay float32.
    """

    pooling: str = "max"
    channels: Sequence[int] = CHANNELS
    custom_grad: bool = True
    precision: str = "fp32"
    remat: bool = False
    wrap: bool = False
    convs: Sequence[tuple[str, str]] | None = None

    @nn.compact
    def __call__(
        self,
        image: jax.Array,
        layers: Sequence[str] = ("conv5_1",),
        taps: Callable[[str, jax.Array], Any] | None = None,
    ) -> dict[str, Any]:
        if self.pooling not in ("max", "avg"):
            raise ValueError(f"unknown pooling {self.pooling!r}; expected 'max' or 'avg'")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; expected 'fp32' or 'bf16'")
        layers = check_layers(layers)
        last = max(LAYERS.index(n) for n in layers)
        single = image.ndim == 3
        x = image[None] if single else image
        # fp32 keeps a float64 image float64 (jax_enable_x64: the gradient checks in float64)
        dtype = PRECISIONS[self.precision]
        dtype = jnp.promote_types(x.dtype, dtype) if self.precision == "fp32" else dtype
        x = (x * 255.0 - jnp.asarray(MEAN_RGB, x.dtype)).astype(dtype)
        out = {}
        k = 0
        for b, n in enumerate(BLOCKS):
            if k > last:
                break
            names = LAYERS[k : min(k + n, last + 1)]
            weights, width = [], x.shape[-1]
            for name in names:
                weights.append(Conv3x3(self.channels[b], name=name)(width))
                width = self.channels[b]
            block: Callable[..., Any] = functools.partial(
                _block,
                names=names,
                keep=tuple(set(layers) & set(names)),
                pooling=self.pooling,
                index=b,
                custom_grad=self.custom_grad,
                pool_after=k + n <= last,
                single=single,
                tap=taps,
                wrap=self.wrap,
                plans=None if self.convs is None else tuple(self.convs[k : k + len(names)]),
            )
            if self.remat:
                block = jax.checkpoint(block)
            x, acts = block(x, weights)
            out.update(acts)
            k += n
        return out


def with_backward_kernels(variables: dict) -> dict:
    """Add the ``backward`` collection (flipped, transposed kernels) to ``variables``. Do it once,
    outside the descent loop."""
    params = variables["params"]
    traced = any(isinstance(p["kernel"], jax.core.Tracer) for p in params.values())
    flip = backward_kernel if traced else _backward_kernel_on_host
    back = {name: {"kernel_t": flip(p["kernel"])} for name, p in params.items()}
    return {**variables, "backward": back}


def _backward_kernel_on_host(kernel: Any) -> jax.Array:
    # A copy on the host (VGG19's 80 MB in 0.1 s) instead of XLA programs: eager (a flip and a
    # transpose per layer shape) or as one jit, compiling them took 0.3-0.8 s on our CPU.
    return jax.device_put(np.ascontiguousarray(np.asarray(kernel)[::-1, ::-1].swapaxes(2, 3)))


def _numpy_seed(key: jax.Array) -> np.random.SeedSequence:
    """A NumPy seed from a JAX PRNG key, typed (``jax.random.key``) or raw uint32
    (``jax.random.PRNGKey``): the key's bits, read on the host."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    bits = np.asarray(key)
    if bits.dtype != np.uint32:
        raise ValueError(f"key must be a JAX PRNG key, got an array of dtype {bits.dtype}")
    return np.random.SeedSequence([int(b) for b in bits.ravel()])


def random_variables(
    key: jax.Array, channels: Sequence[int] = (4, 8, 8, 16, 16), size: int = 32
) -> dict:
    """Small random VGG19-shaped variables for tests and examples: ``{"params": {"conv1_1":
    {"kernel": (3, 3, I, O), "bias": (O,)}, ...}}`` for all 16 layers, float32, O from ``channels``
    (one width per block). Kernels are drawn as Flax's default (LeCun normal: truncated at 2
    standard deviations, variance 1/fan_in, fan_in = 9 I), biases are zero. ``size`` is unused
    (the shapes do not depend on the image) and kept for callers that pass it.

    Built with NumPy from a seed derived from ``key``, not with ``VGG19.init``: tracing and
    compiling the whole network just to draw its weights took 17-60 s of the test suite (issue 20).
    The same key gives the same variables; they differ from what ``VGG19.init`` would draw."""
    del size
    channels = tuple(int(c) for c in channels)
    if len(channels) != len(BLOCKS) or min(channels) < 1:
        raise ValueError(f"channels must be {len(BLOCKS)} positive block widths, got {channels}")
    rng = np.random.default_rng(_numpy_seed(key))
    params: dict[str, dict[str, jax.Array]] = {}
    width = 3
    for name in LAYERS:
        out = channels[int(name[4]) - 1]
        shape = (3, 3, width, out)
        z = rng.standard_normal(shape)
        while (bad := np.abs(z) > 2.0).any():  # truncate at 2 sigma by redrawing
            z[bad] = rng.standard_normal(int(bad.sum()))
        # 0.8796...: the standard deviation of a standard normal truncated to [-2, 2].
        kernel = z * (np.sqrt(1.0 / (9 * width)) / 0.87962566103423978)
        params[name] = {
            "kernel": jax.device_put(kernel.astype(np.float32)),
            "bias": jax.device_put(np.zeros(out, np.float32)),
        }
        width = out
    return {"params": params}


def channels_of(variables: dict) -> tuple[int, ...]:
    """Block widths of a VGG19 parameter tree (for building the matching module)."""
    p = variables["params"]
    return tuple(
        p[f"conv{b}_1"]["kernel"].shape[-1] if f"conv{b}_1" in p else CHANNELS[b - 1]
        for b in range(1, 6)
    )
