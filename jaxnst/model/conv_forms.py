"""The convolution formulations of :mod:`jaxnst.model.convs`: VGG's 3x3 SAME convolution as XLA's
convolution or as dots (``taps9``, ``row3``, ``im2col``, ``pertap``), with float32, bfloat16 or
``bf16x3`` operands, and :func:`conv3x3`, a convolution whose forward and input-gradient each use
a formulation of their own. The module docstring of :mod:`jaxnst.model.convs` says why."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

FORMS = ("xla", "taps9", "row3", "im2col", "pertap")
DTYPES = {"fp32": jnp.float32, "bf16": jnp.bfloat16}
FP32 = "xla:fp32"
_DN = ("NHWC", "HWIO", "NHWC")


def parse(spec: str) -> tuple[str, str]:
    """``"row3:bf16"`` -> ("row3", "bf16"); ValueError naming the bad part otherwise."""
    form, _, dt = spec.partition(":")
    if form not in FORMS or dt not in (*DTYPES, "bf16x3"):
        raise ValueError(
            f"unknown convolution {spec!r}; expected FORM:DTYPE with FORM one of "
            f"{', '.join(FORMS)} and DTYPE fp32, bf16 or bf16x3"
        )
    return form, dt


def _pad(x):
    return jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))


def _dot(a, b):
    return jnp.dot(a, b, preferred_element_type=jnp.float32)


def _split3(x, kernel):
    """bf16x3: x ~ xh + xl and k ~ kh + kl in bfloat16; xh kh + xh kl + xl kh, the three
    products that matter, as ONE convolution over three times the channels (error ~2^-16, not
    bf16's 2^-8)."""
    xh = x.astype(jnp.bfloat16)
    xl = (x - xh.astype(x.dtype)).astype(jnp.bfloat16)
    kh = kernel.astype(jnp.bfloat16)
    kl = (kernel - kh.astype(kernel.dtype)).astype(jnp.bfloat16)
    return jnp.concatenate([xh, xh, xl], axis=-1), jnp.concatenate([kh, kl, kh], axis=2)


def conv(x: jax.Array, kernel: jax.Array, spec: str = FP32) -> jax.Array:
    """SAME 3x3 convolution of NHWC ``x`` with HWIO ``kernel`` in formulation ``spec``; float32
    out. ``"xla:fp32"`` is exactly the float32 ``lax`` convolution."""
    form, dt = parse(spec)
    if dt == "bf16x3":
        x, k = _split3(x.astype(jnp.float32), kernel.astype(jnp.float32))
    else:
        x, k = x.astype(DTYPES[dt]), kernel.astype(DTYPES[dt])
    n, h, w, c = x.shape
    o = k.shape[-1]
    if form == "xla":
        return lax.conv_general_dilated(
            x, k, (1, 1), "SAME", dimension_numbers=_DN, preferred_element_type=jnp.float32
        )
    xp = _pad(x)
    if form == "taps9":
        y = _dot(xp, jnp.transpose(k, (2, 0, 1, 3)).reshape(c, 9 * o)).reshape(
            n, h + 2, w + 2, 9, o
        )
        return sum(y[:, a : a + h, b : b + w, 3 * a + b] for a in range(3) for b in range(3))
    if form == "row3":
        rows = jnp.concatenate([xp[:, :, b : b + w] for b in range(3)], axis=-1)
        y = _dot(rows, jnp.transpose(k, (1, 2, 0, 3)).reshape(3 * c, 3 * o))
        y = y.reshape(n, h + 2, w, 3, o)
        return sum(y[:, a : a + h, :, a] for a in range(3))
    if form == "im2col":
        cols = [xp[:, a : a + h, b : b + w] for a in range(3) for b in range(3)]
        return _dot(jnp.concatenate(cols, axis=-1), k.reshape(9 * c, o))
    return sum(_dot(xp[:, a : a + h, b : b + w], k[a, b]) for a in range(3) for b in range(3))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def conv3x3(x, kernel, kernel_t, forward: str = FP32, backward: str = FP32):
    """Like :func:`jaxnst.model.vgg.conv3x3`, with the forward and input-gradient convolutions in
    the formulations ``forward`` and ``backward``. ``kernel_t`` is
    ``vgg.backward_kernel(kernel)``."""
    return conv(x, kernel, forward)


def _fwd(x, kernel, kernel_t, forward, backward):
    return conv(x, kernel, forward), (x, kernel, kernel_t)


def _bwd(forward, backward, res, g):
    x, kernel, kernel_t = res
    dx = conv(g, kernel_t, backward).astype(x.dtype)
    _, vjp_k = jax.vjp(lambda k: conv(x, k, FP32), kernel)  # exact; dead code for image grads
    (dk,) = vjp_k(g.astype(jnp.float32))
    return dx, dk.astype(kernel.dtype), jnp.zeros_like(kernel_t)


conv3x3.defvjp(_fwd, _bwd)
