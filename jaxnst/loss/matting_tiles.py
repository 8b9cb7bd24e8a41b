"""The Matting Laplacian's term tile by tile (issue 30): exact, for the tiled objective.

``(L x)_i`` sums the residuals of the windows that contain pixel ``i``; such a window lies within
``r`` of ``i`` and its statistics and fit read the pixels within ``r`` of the window, so the
product on a tile's interior needs the content, its window statistics and ``x`` on a halo of
``2r`` px, nothing more. Each tile here computes ``L x`` on its crop (tile plus ``2r`` on every
side) from the windows wholly inside the crop, keeps the interior and puts it in place: every
interior pixel gets exactly the sums :func:`jaxnst.loss.matting.matting_apply` forms, in the same
order. Where a crop passes the image's edge, the windows that leave the image are switched off
(a 0/1 map), as the untiled product has no such windows. The energy ``x . L x / (H W)`` and its
gradient ``2 L x / (H W)`` then come from the assembled product.

Peak memory is one crop's temporaries (about 32 floats a pixel of ``(tile + 4r)^2``) plus
image-sized buffers: the statistics, the padded image and ``L x``. Tiles need not align with the
network's (the term is its own loop); the tiled objective uses the same ``tile``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from jaxnst.loss import matting


def halo(stats: matting.MattingStats) -> int:
    """The halo a tile needs, in px: twice the window radius."""
    return 2 * matting._radius(stats)


def apply(stats: matting.MattingStats, x, tile: int):
    """``L x`` of an (H, W, C) float image, ``tile`` x ``tile`` px at a time; (H, W, C)
    float32, equal to :func:`jaxnst.loss.matting.matting_apply` to float rounding. ``stats``:
    :func:`jaxnst.loss.matting.matting_stats` of the whole (H, W, 3) content."""
    x = jnp.asarray(x, jnp.float32)
    h, w, c = x.shape
    if (h, w) != stats.content.shape[:2] or tile < 1:
        raise ValueError(
            f"x: expected (H, W, C) with H, W = {stats.content.shape[:2]} and tile >= 1; got "
            f"shape {x.shape}, tile {tile}"
        )
    d = halo(stats)
    ny, nx = math.ceil(h / tile), math.ceil(w / tile)

    def pad(a):  # pixel arrays and window arrays alike: windows keep their top-left pixel
        after = ((0, ny * tile - h + d), (0, nx * tile - w + d))
        return jnp.pad(a, tuple((d, e) for _, e in after) + ((0, 0),) * (a.ndim - 2))

    xp, cp, mp, wp = pad(x), pad(stats.content), pad(stats.mean), pad(stats.whiten)
    valid = pad(jnp.ones(stats.mean.shape[:2], jnp.float32))

    def one(origin):
        def crop(a, n):
            return lax.dynamic_slice(a, (*origin, *(0,) * (a.ndim - 2)), (n, n, *a.shape[2:]))

        s = matting.MattingStats(crop(cp, tile + 2 * d), crop(mp, tile + d), crop(wp, tile + d))
        lx = matting.apply_windows(s, crop(xp, tile + 2 * d), crop(valid, tile + d))
        return lx[d : d + tile, d : d + tile]

    ys, xs = jnp.meshgrid(jnp.arange(ny) * tile, jnp.arange(nx) * tile, indexing="ij")
    per_tile = lax.map(one, (ys.ravel(), xs.ravel()))  # (ny * nx, tile, tile, C)
    full = per_tile.reshape(ny, nx, tile, tile, c).transpose(0, 2, 1, 3, 4)
    return full.reshape(ny * tile, nx * tile, c)[:h, :w]


def stats(content, tile: int, eps: float = matting.EPS, radius: int = 1):
    """:func:`jaxnst.loss.matting.matting_stats` of an (H, W, 3) content, the windows ``tile`` x
    ``tile`` at a time (each reads its windows' pixels, ``2 radius`` more than the tile): the same
    arithmetic per window, so the same statistics to float rounding, and peak memory one tile's
    temporaries (the whole image's took ~100 floats a pixel at once)."""
    content = jnp.asarray(content, jnp.float32)
    matting._check_content(content.shape, radius)
    h, w, _ = content.shape
    d, hk, wk = 2 * radius, h - 2 * radius, w - 2 * radius
    ny, nx = math.ceil(hk / tile), math.ceil(wk / tile)
    cp = jnp.pad(content, ((0, ny * tile - hk), (0, nx * tile - wk), (0, 0)))

    def one(origin):
        crop = lax.dynamic_slice(cp, (*origin, 0), (tile + d, tile + d, 3))
        s = matting.matting_stats(crop, eps, radius)
        return s.mean, s.whiten

    ys, xs = jnp.meshgrid(jnp.arange(ny) * tile, jnp.arange(nx) * tile, indexing="ij")
    per_tile = lax.map(one, (ys.ravel(), xs.ravel()))

    def put(a):  # (ny * nx, tile, tile, ...) -> (H - 2r, W - 2r, ...)
        a = a.reshape(ny, nx, tile, tile, *a.shape[3:]).swapaxes(1, 2)
        return a.reshape(ny * tile, nx * tile, *a.shape[4:])[:hk, :wk]

    return matting.MattingStats(content, *map(put, per_tile))


def energy(stats: matting.MattingStats, x, tile: int):
    """``sum_c x_c^T L x_c / (H W)`` tile by tile: :func:`jaxnst.loss.matting.matting_energy`
    to float rounding, values and gradients (reverse mode; one tiled product serves both)."""
    return _energy(stats, jnp.asarray(x, jnp.float32), tile)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _energy(stats, x, tile):
    return jnp.vdot(x, apply(stats, x, tile)) / (x.shape[0] * x.shape[1])


def _fwd(stats, x, tile):
    lx = apply(stats, x, tile)
    return jnp.vdot(x, lx) / (x.shape[0] * x.shape[1]), (stats, x, lx)


def _bwd(tile, res, g):
    stats, x, lx = res
    scale = g / (x.shape[0] * x.shape[1])
    # The statistics' cotangent as matting_energy's (exact; XLA drops it where unused).
    _, pull = jax.vjp(lambda s: apply(s, x, tile), stats)
    return pull(scale * x)[0], (2.0 * scale) * lx


_energy.defvjp(_fwd, _bwd)
