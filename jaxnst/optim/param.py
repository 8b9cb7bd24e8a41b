"""What the descent moves: the pixels themselves, or a Laplacian pyramid whose sum is the image.

``param="laplacian"`` (issue 21) optimises a tuple of ``levels + 1`` arrays instead of the
(H, W, 3) pixels: level 0 is (H, W, 3), level k is (h_k, w_k, 3) with ``h_k = ceil(h_{k-1} / 2)``,
and the image is their sum after upsampling each to full size::

    image = L_0 + up(L_1 + up(L_2 + ... + up(L_K)))      (= sum_k up^k(L_k), ``up`` is linear)

``up`` is bilinear interpolation with half-pixel centres (``align_corners=False``, as PyTorch's
``F.interpolate(mode="bilinear")`` which STROTSS uses): output pixel i samples the input at
``(i + 0.5) * n_in / n_out - 0.5``. At the border the index is clamped, or, for ``tileable`` runs,
wrapped around (circular upsampling, so a tileable image stays tileable). :func:`build` takes an
image apart (level k = the image low-passed k times minus the upsampled next one; the last level is
the coarsest low-pass), so ``render(build(x)) == x`` up to float rounding.

Why: a gradient step on the pixels moves each pixel on its own, and the Gram losses do not see
pixel-scale noise, so it stays (speckle). On a pyramid, the gradient of a coarse level is the sum
of the pixel gradient over the area it covers: the descent moves large areas coherently first.
Kolkin et al.'s STROTSS and NNST optimise this way; the loss is the same function of the image.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
DEFAULT_LEVELS = 5  # STROTSS's make_laplace_pyramid(x, 5): five detail levels and a residual


def levels_for(h: int, w: int, levels: int | None = None) -> int:
    """The number of halvings for an (h, w) image: ``levels`` (default 5), but never below a
    1 px coarsest level."""
    n = DEFAULT_LEVELS if levels is None else levels
    return max(0, min(n, int(math.floor(math.log2(max(1, min(h, w)))))))


def level_shapes(h: int, w: int, levels: int) -> tuple[tuple[int, int], ...]:
    """(h_k, w_k) for k = 0 .. levels, halving with ceil."""
    shapes = [(h, w)]
    for _ in range(levels):
        a, b = shapes[-1]
        shapes.append((-(-a // 2), -(-b // 2)))
    return tuple(shapes)


def _interp(x: Array, n_out: int, axis: int, wrap: bool) -> Array:
    """Linear interpolation of ``x`` along ``axis`` to ``n_out`` samples, half-pixel centres."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    i0 = np.floor(src).astype(np.int64)
    f = (src - i0).astype(np.float32)
    i1 = i0 + 1
    if wrap:
        i0, i1 = i0 % n_in, i1 % n_in
    else:
        i0, i1 = np.clip(i0, 0, n_in - 1), np.clip(i1, 0, n_in - 1)
    shape = [1] * x.ndim
    shape[axis] = n_out
    wt = jnp.asarray(f.reshape(shape), x.dtype)
    return jnp.take(x, i0, axis=axis) * (1 - wt) + jnp.take(x, i1, axis=axis) * wt


def upsample(x: Array, shape: tuple[int, int], wrap: bool = False) -> Array:
    """(..., h, w, C) -> (..., H, W, C), bilinear (see the module docstring)."""
    return _interp(_interp(x, shape[0], x.ndim - 3, wrap), shape[1], x.ndim - 2, wrap)


def downsample(x: Array, shape: tuple[int, int], wrap: bool = False) -> Array:
    """(..., H, W, C) -> (..., h, w, C): the transpose of :func:`upsample` normalised to keep
    constants (a triangle filter two output pixels wide: antialiased, and circular with
    ``wrap``)."""
    small = jax.ShapeDtypeStruct((*x.shape[:-3], *shape, x.shape[-1]), x.dtype)
    big = (int(x.shape[-3]), int(x.shape[-2]))
    t = jax.linear_transpose(functools.partial(upsample, shape=big, wrap=wrap), small)
    (num,) = t(x)
    (den,) = t(jnp.ones_like(x))
    return num / den


def build(image: Array, levels: int, wrap: bool = False) -> tuple[Array, ...]:
    """Take (..., H, W, 3) images apart into ``levels + 1`` pyramid levels (finest first)."""
    image = jnp.asarray(image)
    if not jnp.issubdtype(image.dtype, jnp.floating):
        image = image.astype(jnp.float32)
    shapes = level_shapes(image.shape[-3], image.shape[-2], levels)
    lows = [image]
    for s in shapes[1:]:
        lows.append(downsample(lows[-1], s, wrap))
    out = [lows[k] - upsample(lows[k + 1], shapes[k], wrap) for k in range(levels)]
    return (*out, lows[-1])


def render(pyramid: Any, wrap: bool = False) -> Array:
    """The image a pyramid (a tuple of levels, finest first) stands for: (..., H, W, 3)."""
    if not isinstance(pyramid, (tuple, list)):
        return pyramid  # pixels
    x = pyramid[-1]
    for level in reversed(pyramid[:-1]):
        x = level + upsample(x, level.shape[-3:-1], wrap)
    return x


def to_param(images: Array, param: str, levels: int | None = None, wrap: bool = False) -> Any:
    """(..., H, W, 3) images as the descent's variable: the images for ``"pixels"``, their
    pyramid for ``"laplacian"`` (:func:`levels_for` halvings)."""
    if param == "pixels":
        return images
    if param != "laplacian":
        raise ValueError(f"unknown param {param!r}; expected 'pixels' or 'laplacian'")
    h, w = images.shape[-3:-1]
    return build(images, levels_for(h, w, levels), wrap)


# ------------------------------------------------------------ for the loop's state and its callers


@functools.partial(jax.jit, static_argnames="wrap")
def _render(x: Any, wrap: bool) -> Array:
    return render(x, wrap)


def pixels(x: Any, config: Any) -> Any:
    """The images (..., H, W, 3) that a state's variable ``x`` stands for (``x`` itself for
    ``param="pixels"``; a pyramid's sum, on the device, for ``"laplacian"``)."""
    return x if config.param == "pixels" else _render(x, config.tileable)


@functools.partial(jax.jit, static_argnames=("kind", "levels", "wrap"))
def _to_param(images: Array, kind: str, levels: int | None, wrap: bool) -> Any:
    return to_param(images, kind, levels, wrap)


def variable(images: Array, config: Any) -> Any:
    """What the descent moves for starting ``images`` (N, H, W, 3): the images, or their
    Laplacian pyramids (:mod:`jaxnst.optim.param`)."""
    if config.param == "pixels":
        return images
    return _to_param(images, config.param, config.pyramid_levels, config.tileable)
