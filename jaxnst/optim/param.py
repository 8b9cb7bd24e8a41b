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

Preconditioned for L-BFGS: a coarse level's gradient sums the pixel gradient over 4^k pixels, so
a plain gradient step moves level K about 4^K = 1024 times as far (in the image) as level 0. Adam
and RMSprop divide that out per parameter; L-BFGS starts from the plain step, and at 1024 px
with ``--scales auto`` it painted the sky and river over in flat blotches of colour (full-size
style loss 16x the pixels' run; issue 21's scales comparison). So for ``optimizer="lbfgs"`` the
state holds level k divided by its gain ``2**-k`` and the image is ``sum_k up^k(2**-k L_k)``
(:func:`gains`): a plain step then adds every scale's blurred gradient alike.
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


def _taps(n_in: int, n_out: int, wrap: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The two source indices and the second one's weight of each of ``n_out`` samples."""
    src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
    i0 = np.floor(src).astype(np.int64)
    f = (src - i0).astype(np.float32)
    i1 = i0 + 1
    if wrap:
        i0, i1 = i0 % n_in, i1 % n_in
    else:
        i0, i1 = np.clip(i0, 0, n_in - 1), np.clip(i1, 0, n_in - 1)
    return i0, i1, f


def _column_sums(n_in: int, n_out: int, wrap: bool) -> np.ndarray:
    """(n_in,) the weight each source sample gives out along one axis: the 1-D transpose of the
    interpolation applied to ones (NumPy, at trace time: no constant for XLA to fold)."""
    if n_in == n_out:
        return np.ones(n_in, np.float32)
    i0, i1, f = _taps(n_in, n_out, wrap)
    out = np.zeros(n_in, np.float64)
    np.add.at(out, i0, 1.0 - f)
    np.add.at(out, i1, f)
    return out.astype(np.float32)


def _interp(x: Array, n_out: int, axis: int, wrap: bool) -> Array:
    """Linear interpolation of ``x`` along ``axis`` to ``n_out`` samples, half-pixel centres."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    i0, i1, f = _taps(n_in, n_out, wrap)
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
    rows = _column_sums(shape[0], big[0], wrap)[:, None, None]
    cols = _column_sums(shape[1], big[1], wrap)[None, :, None]
    return num / jnp.asarray(rows * cols, x.dtype)


def gains(n: int, precondition: bool) -> tuple[float, ...]:
    """Each of ``n`` levels' factor in the image: ``2**-k`` preconditioned (L-BFGS), else 1."""
    return tuple(0.5**k if precondition else 1.0 for k in range(n))


def build(
    image: Array, levels: int, wrap: bool = False, precondition: bool = False
) -> tuple[Array, ...]:
    """Take (..., H, W, 3) images apart into ``levels + 1`` pyramid levels (finest first), each
    divided by its :func:`gains`."""
    image = jnp.asarray(image)
    if not jnp.issubdtype(image.dtype, jnp.floating):
        image = image.astype(jnp.float32)
    shapes = level_shapes(image.shape[-3], image.shape[-2], levels)
    lows = [image]
    for s in shapes[1:]:
        lows.append(downsample(lows[-1], s, wrap))
    out = [lows[k] - upsample(lows[k + 1], shapes[k], wrap) for k in range(levels)]
    g = gains(levels + 1, precondition)
    return tuple(x / gk for x, gk in zip((*out, lows[-1]), g))


def render(pyramid: Any, wrap: bool = False, precondition: bool = False) -> Array:
    """The image a pyramid (a tuple of levels, finest first) stands for: (..., H, W, 3)."""
    if not isinstance(pyramid, (tuple, list)):
        return pyramid  # pixels
    g = gains(len(pyramid), precondition)
    x = pyramid[-1] * g[-1]
    for level, gk in zip(reversed(pyramid[:-1]), reversed(g[:-1])):
        x = level * gk + upsample(x, level.shape[-3:-1], wrap)
    return x


def to_param(
    images: Array,
    param: str,
    levels: int | None = None,
    wrap: bool = False,
    precondition: bool = False,
) -> Any:
    """(..., H, W, 3) images as the descent's variable: the images for ``"pixels"``, their
    pyramid for ``"laplacian"`` (:func:`levels_for` halvings)."""
    if param == "pixels":
        return images
    if param != "laplacian":
        raise ValueError(f"unknown param {param!r}; expected 'pixels' or 'laplacian'")
    h, w = images.shape[-3:-1]
    return build(images, levels_for(h, w, levels), wrap, precondition)


# ------------------------------------------------------------ for the loop's state and its callers


def preconditioned(config: Any) -> bool:
    """Whether a run's pyramid levels carry :func:`gains` (L-BFGS; see the module docstring)."""
    return isinstance(config.optimizer, str) and config.optimizer == "lbfgs"


def render_for(x: Any, config: Any) -> Array:
    """:func:`render` with a run's wrap and gains (traced inside the descent's programs)."""
    return render(x, config.tileable, preconditioned(config))


@functools.partial(jax.jit, static_argnames=("wrap", "precondition"))
def _render(x: Any, wrap: bool, precondition: bool) -> Array:
    return render(x, wrap, precondition)


def pixels(x: Any, config: Any) -> Any:
    """The images (..., H, W, 3) that a state's variable ``x`` stands for (``x`` itself for
    ``param="pixels"``; a pyramid's sum, on the device, for ``"laplacian"``)."""
    if config.param == "pixels":
        return x
    return _render(x, config.tileable, preconditioned(config))


@functools.partial(jax.jit, static_argnames=("kind", "levels", "wrap", "precondition"))
def _to_param(images: Array, kind: str, levels: int | None, wrap: bool, precondition: bool) -> Any:
    return to_param(images, kind, levels, wrap, precondition)


def variable(images: Array, config: Any) -> Any:
    """What the descent moves for starting ``images`` (N, H, W, 3): the images, or their
    Laplacian pyramids (:mod:`jaxnst.optim.param`)."""
    if config.param == "pixels":
        return images
    return _to_param(
        images, config.param, config.pyramid_levels, config.tileable, preconditioned(config)
    )
