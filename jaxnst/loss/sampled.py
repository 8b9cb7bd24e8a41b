"""The STROTSS terms wired into jaxnst's objective: hypercolumns at sampled points (issue 21).

``style_loss="remd"`` and ``content_loss="self_similarity"`` compare *hypercolumns*, each a sample
point's RGB and its features at :data:`LAYERS` (:mod:`jaxnst.loss.strotss` has the terms):

- **Layers.** STROTSS reads VGG16's relu1_1, 1_2, 2_1, 2_2, 3_1, 3_2, 3_3, 4_3 and 5_3: every
  layer of the first three blocks and the output of the last two. On VGG19 we take the same
  names in blocks 1-3 (conv1_1 ... conv3_3) and the block outputs conv4_4 and conv5_4 (VGG19's
  blocks 4 and 5 have four convolutions; 4_3 and 5_3 are VGG16's last): the same depths where
  the networks agree, the same roles where they differ, 2179 channels in all, as in the paper.
- **Scale.** Our VGG19 (Caffe's) reads 0..255 pixels, VGG16 in torchvision reads pixels divided
  by ImageNet's std (about 0.226): our activations are about 255 * 0.226 times larger, so they are
  multiplied by :data:`FEATURE_SCALE` (cosine costs do not care; the moment term does), and the
  RGB channels are mapped to [-1, 1] as STROTSS optimises in that range.
- **Points.** The content's hypercolumns are computed once at a strided grid of about 128 x 128
  points (:func:`grid`, as the reference samples); each evaluation compares the output and the
  content at ``samples`` of them (1024, the paper's), drawn by the loop from the PRNG key in its
  state, re-drawn every ``resample_every`` steps (:func:`draw`). The style's hypercolumns are
  ``style_samples`` random points of the style (5000: the reference's 5 x 1000), drawn once.
- **Content term.** The self-similarity difference times the number of points P, as the
  authors' code (``dp_loss``) computes it: after the column normalisation each entry is ~1/P.
- **Weights.** ``content_weight`` is the paper's alpha (the palette term is divided by
  max(alpha, 1), as in the reference); the total is ``content_weight * content + style_weight *
  style + tv_weight * tv`` like every jaxnst objective. The paper divides it by (alpha + 2): a
  constant per run, which RMSprop and Adam do not see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import strotss

Array = jax.Array
LAYERS = (
    "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3", "conv4_4",
    "conv5_4",
)  # fmt: skip
FEATURE_SCALE = 1.0 / (255.0 * 0.226)
GRID_POINTS = 128 * 128  # candidate points of the content grid (the reference's const)
CHUNK = 2048  # style points per block of the REMD cost matrices (memory: P x CHUNK, not P x S)


class Sampled(NamedTuple):
    """The targets of the sampled terms (a field of :class:`jaxnst.loss.losses.Targets`).

    points: (G, 2) float32 (y, x), the candidate grid over the content (and output) image.
    content: (G, D) the content's hypercolumns there (a leading content axis before the layout
        places them), or None without ``content_loss="self_similarity"``.
    style: (S, D) the style's hypercolumns, or None without ``style_loss="remd"``.
    style_moments: their (D,) mean and (D, D) covariance (computed once: at 5000 x 2179 the
        covariance alone is 47 GFLOP, more than the rest of the terms), or None.
    idx: (P,) int32, the grid points this evaluation compares (set by the loop; None before).
    """

    points: Array
    content: Array | None = None
    style: Array | None = None
    style_moments: tuple[Array, Array] | None = None
    idx: Array | None = None


def grid(h: int, w: int, n: int = GRID_POINTS) -> np.ndarray:
    """A strided grid of at most about ``n`` pixel positions over an h x w image, (G, 2)
    float32: strides floor and ceil of sqrt(h * w / n), as the reference's."""
    r = math.sqrt(h * w // n)
    sy, sx = max(1, math.floor(r)), max(1, math.ceil(r))
    yy, xx = np.meshgrid(np.arange(sy // 2, h, sy), np.arange(sx // 2, w, sx), indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float32)


def columns(image: Array, feats: Mapping[str, Array], points: Array) -> Array:
    """Hypercolumns (P, 3 + 2176) of one image: RGB in [-1, 1], then :data:`LAYERS` scaled."""
    maps = [feats[n].astype(jnp.float32) * FEATURE_SCALE for n in LAYERS]
    return strotss.hypercolumns(2.0 * image.astype(jnp.float32) - 1.0, maps, points)


def style_columns(key: Array, image: Array, feats: Mapping[str, Array], n: int) -> Array:
    """``n`` random points' hypercolumns of a style image (fewer when it has fewer pixels)."""
    h, w = image.shape[:2]
    pts = strotss.sample_points(key, h, w, min(n, h * w))
    return columns(image, feats, pts)


def draw(key: Array, step: Array | int, every: int, g: int, p: int) -> Array:
    """The (p,) grid indices an evaluation at ``step`` compares: a permutation of the ``g``
    candidates by ``fold_in(key, step // every)`` (raw uint32 key data), so a line search sees
    one objective and the draw changes every ``every`` steps, the same for the same key."""
    k = jax.random.fold_in(jax.random.wrap_key_data(key, impl="threefry2x32"), step // every)
    return jax.random.permutation(k, g)[: min(p, g)].astype(jnp.int32)


def _unit(x: Array) -> tuple[Array, Array]:
    n2 = jnp.sum(x * x, axis=1, keepdims=True)
    inv = jax.lax.rsqrt(jnp.maximum(n2, 1e-16))
    return x * inv, inv


def _nearest(xn: Array, yn: Array) -> tuple[Array, Array, Array, Array]:
    """Each row's best cosine similarity (N,) and its column, each column's (M,) and its row:
    ``CHUNK`` columns of ``yn`` at a time (the padding's similarity is -inf)."""
    n, m = xn.shape[0], yn.shape[0]
    k = -(-m // CHUNK)
    ys = jnp.pad(yn, ((0, k * CHUNK - m), (0, 0))).reshape(k, CHUNK, yn.shape[1])
    valid = (jnp.arange(k * CHUNK) < m).reshape(k, CHUNK)

    def one(args: tuple[Array, Array]) -> tuple[Array, ...]:
        yc, ok = args
        sim = jnp.where(ok[None, :], xn @ yc.T, -jnp.inf)
        return sim.max(1), sim.argmax(1), sim.max(0), sim.argmax(0)

    rmax, rarg, cmax, carg = jax.lax.map(one, (ys, valid))
    best = rmax.argmax(0)
    row_arg = rarg[best, jnp.arange(n)] + best * CHUNK
    return rmax.max(0), row_arg, cmax.reshape(-1)[:m], carg.reshape(-1)[:m]


@jax.custom_vjp
def remd_cosine(x: Array, y: Array) -> Array:
    """:func:`jaxnst.loss.strotss.remd` with the cosine cost, in :data:`CHUNK`-column blocks, and
    a backward pass without matrix products: the gradient of a min is its argmin's, so each row
    (or column) only pulls towards its nearest neighbour. Autodiff of the blocks recomputed each
    block and multiplied it back (three (N x M x D) products per evaluation, one here).
    (N, D), (M, D) -> scalar (of the same float dtype; cosine costs, so only directions count)."""
    return _remd_fwd(x, y)[0]


def _remd_fwd(x: Array, y: Array) -> tuple[Array, tuple]:
    (xn, xi), (yn, yi) = _unit(x), _unit(y)
    rs, ra, cs, ca = _nearest(xn, yn)
    a, b = jnp.mean(1.0 - rs), jnp.mean(1.0 - cs)
    return jnp.maximum(a, b), (xn, xi, yn, yi, ra, ca, a >= b)


def _remd_bwd(res: tuple, g: Array) -> tuple[Array, Array]:
    xn, xi, yn, yi, ra, ca, rows = res
    n, m = xn.shape[0], yn.shape[0]
    wr, wc = jnp.where(rows, g / n, 0.0), jnp.where(rows, 0.0, g / m)  # d cost = -d similarity
    gx = -wr * yn[ra] - jnp.zeros_like(xn).at[ca].add(wc * yn)
    gy = -wc * xn[ca] - jnp.zeros_like(yn).at[ra].add(wr * xn)

    def through_norm(u, inv, gu):  # d(u / |u|): the radial part removed, divided by |u|
        return (gu - u * jnp.sum(u * gu, axis=1, keepdims=True)) * inv

    return through_norm(xn, xi, gx), through_norm(yn, yi, gy)


remd_cosine.defvjp(_remd_fwd, _remd_bwd)


def terms(image: Array, feats: Mapping[str, Array], t: Sampled, alpha: Array) -> tuple[Any, Any]:
    """(content term or None, style term or None) of one image under the sampled targets."""
    assert t.idx is not None, "the loop draws the sample points before evaluating"
    points = jnp.take(t.points, t.idx, axis=0)
    out = columns(image, feats, points)
    content = None
    if t.content is not None:
        # times the number of points, as the authors' dp_loss does (a mean of P x P entries that
        # are each ~1/P after the column normalisation)
        content = t.idx.shape[0] * strotss.self_similarity(out, jnp.take(t.content, t.idx, axis=0))
    style = None
    if t.style is not None:
        assert t.style_moments is not None
        y = t.style
        style = (
            remd_cosine(out, y)
            + strotss.moments_to(out, *t.style_moments)
            + strotss.palette(out[:, :3], y[:, :3], CHUNK) / jnp.maximum(alpha, 1.0)
        )
    return content, style


def make(
    contents: Array,
    styles: list[Array],
    blend: np.ndarray,
    features: Any,
    style_samples: int,
    content_term: bool,
    style_term: bool,
) -> Sampled:
    """The sampled terms' targets for (C, H, W, 3) ``contents`` and (H_s, W_s, 3) ``styles``.

    ``features(image) -> {layer: (H', W', C)}`` gives :data:`LAYERS`. The style points are split
    between several styles by ``blend`` (normalised weights), each drawn with its own fixed key
    (style i: ``fold_in(PRNGKey(0), i)``), so a run's targets never depend on its seeds.
    """
    h, w = contents.shape[1:3]
    points = jnp.asarray(grid(h, w))
    content = None
    if content_term:
        content = jnp.stack([columns(c, features(c), points) for c in contents])
    style = moments = None
    if style_term:
        counts = np.maximum(1, np.round(style_samples * blend / blend.sum()).astype(int))
        parts = [
            style_columns(jax.random.fold_in(jax.random.PRNGKey(0), i), s, features(s), int(n))
            for i, (s, n) in enumerate(zip(styles, counts))
        ]
        style = jnp.concatenate(parts, 0)
        moments = strotss.mean_cov(style)
    return Sampled(points, content, style, moments)
