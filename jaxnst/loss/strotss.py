"""The STROTSS loss terms (Kolkin, Salavon & Shakhnarovich, "Style Transfer by Relaxed Optimal
Transport and Self-Similarity", CVPR 2019) as pure JAX functions of hypercolumns.

Written from the paper and from the behaviour of the authors' and futscdav/strotss's PyTorch code
(no code copied). Every term works on point sets: rows are sample points, columns channels.

- ``hypercolumns``: at P pixel positions (y, x), the RGB image (stride 1) and each VGG layer,
  sampled bilinearly at (y / s, x / s) for the layer's stride s (corners clamped to the map),
  concatenated along channels: (P, 3 + sum C).
- ``sample_points``: n distinct pixel positions, uniform without replacement.
- ``cosine_cost``: C_ij = 1 - <x_i, y_j> / (|x_i| |y_j|) (norms guarded by an epsilon).
- ``euclidean_cost``: C_ij = sqrt(clip(|x_i - y_j|^2, 1e-5, 1e5) / D), the distance per channel.
- ``remd``: relaxed earth mover's distance (paper, eq. 4-6): each marginal constraint alone
  makes the transport plan "every point to its nearest neighbour", so
  REMD = max(mean_i min_j C_ij, mean_j min_i C_ij). With ``chunk`` the cost matrix is built
  ``chunk`` columns at a time (and rebuilt in the backward pass), never whole.
- ``palette``: REMD of colours in the paper's YUV-like orthonormal colour basis, with cost
  cosine + euclidean (paper, eq. 7's l_p).
- ``moments``: mean |mu_x - mu_y| + mean |Sigma_x - Sigma_y| over channels (eq. 8), covariances
  with n - 1 denominators.
- ``self_similarity``: the content term (eq. 2-3): the cosine self-distance matrices of output and
  content, each divided by its column sums, compared by mean absolute difference.
- ``strotss_loss``: (alpha * content + style) / (alpha + 1 + moment_weight), style = REMD +
  moment_weight * (moments + palette / max(alpha, 1)), as the reference code weights them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
CostFn = Callable[[Array, Array], Array]

_EPS = 1e-8
# The paper's colour basis, applied to each RGB row (yuv = M @ rgb). A NumPy constant: a jnp
# array at import time would start the XLA backend.
_YUV = np.array(
    [
        [0.577350, 0.577350, 0.577350],
        [-0.577350, 0.788675, -0.211325],
        [-0.577350, -0.211325, 0.788675],
    ],
    np.float64,
)


def _stride(size: int, size_map: int) -> int:
    """A layer's stride along one axis: 2**floor(log2(size / size_map)). That is size / size_map
    when the map divides the image by a power of two, and VGG's stride for floor-mode (VALID)
    pooling of any size (floor(size / 2^k) = size_map implies floor(log2(size / size_map)) = k)."""
    if not 1 <= size_map <= size:
        raise ValueError(f"a feature map of size {size_map} for an image of size {size}")
    return 2 ** int(math.floor(math.log2(size / size_map)))


def _bilinear(fmap: Array, yy: Array, xx: Array) -> Array:
    """Sample (H', W', C) ``fmap`` at float map coordinates (P,) ``yy``, ``xx``: corners floor and
    floor + 1, each clamped to the map, weighted by the fractional parts. Returns (P, C)."""
    h, w = fmap.shape[:2]
    y0f, x0f = jnp.floor(yy), jnp.floor(xx)
    fy, fx = (yy - y0f)[:, None], (xx - x0f)[:, None]
    y0, x0 = y0f.astype(jnp.int32), x0f.astype(jnp.int32)
    y0c, y1c = jnp.clip(y0, 0, h - 1), jnp.clip(y0 + 1, 0, h - 1)
    x0c, x1c = jnp.clip(x0, 0, w - 1), jnp.clip(x0 + 1, 0, w - 1)
    top = fmap[y0c, x0c] * (1 - fx) + fmap[y0c, x1c] * fx
    bottom = fmap[y1c, x0c] * (1 - fx) + fmap[y1c, x1c] * fx
    return top * (1 - fy) + bottom * fy


def hypercolumns(image: Array, feats: Sequence[Array], points: Array) -> Array:
    """The hypercolumns of ``image`` at ``points``: the image, then each feature map, sampled
    bilinearly at (y / s, x / s) for the map's stride s, concatenated along channels.

    Feature cell i of a stride-s map covers image pixels [i*s, (i+1)*s). Differentiable with
    respect to ``image`` and ``feats`` (not ``points``).

    Args:
        image: (H, W, 3) float, the RGB image (stride 1).
        feats: (H', W', C_k) float maps in the order their channels should appear; H' <= H and
            W' <= W, the stride along each axis being 2**floor(log2(H / H')) (see ``_stride``).
        points: (P, 2) float32 (y, x) image pixel coordinates, e.g. from ``sample_points``.

    Returns:
        (P, 3 + sum C_k) in the maps' promoted float dtype.
    """
    h, w = image.shape[:2]
    yy, xx = points[:, 0], points[:, 1]
    cols = [_bilinear(image, yy, xx)]
    for f in feats:
        sy, sx = _stride(h, f.shape[0]), _stride(w, f.shape[1])
        cols.append(_bilinear(f, yy / sy, xx / sx))
    return jnp.concatenate(cols, axis=1)


def sample_points(key: Array, h: int, w: int, n: int) -> Array:
    """n distinct pixel positions of an h x w image, uniform without replacement.

    Args:
        key: a PRNG key; the same key gives the same points.
        h, w: the image's size (static ints).
        n: how many points (static); 0 <= n <= h * w, else ValueError (shapes are static).

    Returns:
        (n, 2) float32 (y, x), integer-valued.
    """
    if not 0 <= n <= h * w:
        raise ValueError(f"cannot draw {n} distinct points from a {h}x{w} image")
    idx = jax.random.permutation(key, h * w)[:n]
    return jnp.stack([idx // w, idx % w], axis=1).astype(jnp.float32)


def _unit_rows(x: Array) -> Array:
    # maximum() keeps rsqrt (and its gradient) away from a zero norm.
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=1, keepdims=True), _EPS**2))


def cosine_cost(x: Array, y: Array) -> Array:
    """Cosine distance matrix: (N, D), (M, D) -> (N, M), 1 - <x_i, y_j> / (|x_i| |y_j|)."""
    return 1.0 - _unit_rows(x) @ _unit_rows(y).T


def euclidean_cost(x: Array, y: Array) -> Array:
    """Euclidean distance per channel: (N, D), (M, D) -> (N, M),
    sqrt(clip(|x_i - y_j|^2, 1e-5, 1e5) / D). The squared distance is expanded as
    |x|^2 + |y|^2 - 2 <x, y> (no (N, M, D) intermediate); the clip hides its rounding near 0."""
    d2 = jnp.sum(x * x, axis=1)[:, None] + jnp.sum(y * y, axis=1)[None, :] - 2.0 * (x @ y.T)
    return jnp.sqrt(jnp.clip(d2, 1e-5, 1e5) / x.shape[1])


def palette_cost(x: Array, y: Array) -> Array:
    """The palette term's cost: cosine_cost + euclidean_cost. (N, D), (M, D) -> (N, M)."""
    return cosine_cost(x, y) + euclidean_cost(x, y)


def _chunked_mins(x: Array, y: Array, cost_fn: CostFn, chunk: int) -> tuple[Array, Array]:
    """Row mins (N,) and column mins (M,) of cost_fn(x, y), ``chunk`` columns at a time. y is
    padded to whole chunks, the padding's costs set to +inf. The chunk's body is rematerialised,
    so the backward pass keeps no (N, chunk) block per chunk either."""
    m = y.shape[0]
    k = -(-m // chunk)
    ys = jnp.pad(y, ((0, k * chunk - m), (0, 0))).reshape(k, chunk, y.shape[1])
    valid = (jnp.arange(k * chunk) < m).reshape(k, chunk)

    @jax.checkpoint
    def one(args: tuple[Array, Array]) -> tuple[Array, Array]:
        yc, ok = args
        c = jnp.where(ok[None, :], cost_fn(x, yc), jnp.inf)
        return c.min(axis=1), c.min(axis=0)

    row_mins, col_mins = jax.lax.map(one, (ys, valid))
    return row_mins.min(axis=0), col_mins.reshape(-1)[:m]


def remd(x: Array, y: Array, cost_fn: CostFn = cosine_cost, chunk: int | None = None) -> Array:
    """Relaxed earth mover's distance, max(mean_i min_j C_ij, mean_j min_i C_ij).

    Args:
        x: (N, D) float points.
        y: (M, D) float points.
        cost_fn: (N, D), (M', D) -> (N, M') cost matrix.
        chunk: if given, build the cost matrix ``chunk`` points of y at a time (it need not
            divide M): peak memory about N * chunk instead of N * M, the same result.

    Returns:
        Scalar in the inputs' float dtype.
    """
    if chunk is None:
        c = cost_fn(x, y)
        row, col = c.min(axis=1), c.min(axis=0)
    else:
        if chunk < 1:
            raise ValueError(f"chunk must be positive, got {chunk}")
        row, col = _chunked_mins(x, y, cost_fn, chunk)
    return jnp.maximum(row.mean(), col.mean())


def to_yuv(rgb: Array) -> Array:
    """(..., 3) RGB -> (..., 3) in the paper's orthonormal YUV-like basis."""
    return rgb @ _YUV.T.astype(rgb.dtype)


def palette(x_rgb: Array, y_rgb: Array, chunk: int | None = None) -> Array:
    """REMD of two colour sets in YUV with cost cosine + euclidean.

    Args:
        x_rgb: (N, 3) float RGB.
        y_rgb: (M, 3) float RGB.
        chunk: as in ``remd``.

    Returns:
        Scalar in the inputs' float dtype.
    """
    return remd(to_yuv(x_rgb), to_yuv(y_rgb), palette_cost, chunk)


def _mean_cov(x: Array) -> tuple[Array, Array]:
    mu = x.mean(axis=0)
    d = x - mu
    return mu, d.T @ d / (x.shape[0] - 1)


def moments(x: Array, y: Array) -> Array:
    """Moment matching: mean |mu_x - mu_y| + mean |cov_x - cov_y|.

    Args:
        x: (N, D) float, N >= 2.
        y: (M, D) float, M >= 2.

    Returns:
        Scalar; means over the D means and the D x D covariances ((n - 1) denominators).
    """
    return moments_to(x, *mean_cov(y))


def mean_cov(x: Array) -> tuple[Array, Array]:
    """(D,) mean and (D, D) covariance ((n - 1) denominator) of (N, D) points."""
    return _mean_cov(x)


def moments_to(x: Array, my: Array, cy: Array) -> Array:
    """:func:`moments` against a precomputed ``(my, cy) = mean_cov(y)``."""
    mx, cx = _mean_cov(x)
    return jnp.mean(jnp.abs(mx - my)) + jnp.mean(jnp.abs(cx - cy))


def _column_normalised(m: Array) -> Array:
    return m / jnp.maximum(m.sum(axis=0, keepdims=True), _EPS)


def self_similarity(x: Array, c: Array) -> Array:
    """Content term: mean |Mx - Mc|, M = cosine_cost(., .) divided by its column sums.

    Args:
        x: (P, D) float, the output's hypercolumns.
        c: (P, D) float, the content's hypercolumns at the same points.

    Returns:
        Scalar in the inputs' float dtype.
    """
    mx = _column_normalised(cosine_cost(x, x))
    mc = _column_normalised(cosine_cost(c, c))
    return jnp.mean(jnp.abs(mx - mc))


def strotss_loss(
    out_hc: Array,
    content_hc: Array,
    style_hc: Array,
    alpha: float | Array,
    moment_weight: float = 1.0,
    chunk: int | None = None,
) -> tuple[Array, Array, Array]:
    """The STROTSS objective on hypercolumns (all channels, RGB included).

    content = self_similarity(out, content);
    style = remd(out, style) + moment_weight * (moments(out, style)
    + palette(out[:, :3], style[:, :3]) / max(alpha, 1));
    total = (alpha * content + style) / (alpha + 1 + moment_weight).

    Args:
        out_hc: (P, D) the output's hypercolumns, RGB first.
        content_hc: (P, D) the content's hypercolumns at the same points.
        style_hc: (S, D) the style's hypercolumns.
        alpha: the content weight (the reference starts at 16 and halves it per scale).
        moment_weight: the weight of the moment and palette terms.
        chunk: passed to ``remd`` and ``palette`` (memory of the S-sized cost matrices).

    Returns:
        (total, content_term, style_term), scalars in the inputs' float dtype.
    """
    content = self_similarity(out_hc, content_hc)
    pal = palette(out_hc[:, :3], style_hc[:, :3], chunk)
    style = remd(out_hc, style_hc, cosine_cost, chunk) + moment_weight * (
        moments(out_hc, style_hc) + pal / jnp.maximum(alpha, 1.0)
    )
    total = (alpha * content + style) / (alpha + 1.0 + moment_weight)
    return total, content, style
