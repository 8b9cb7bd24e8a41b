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
- **Masks (region-wise sampling).** With ``content_masks`` (R, H, W), one per style image, the
  style term compares region k of the output with style k only, as STROTSS's guidance does
  (:func:`regions`, :func:`pick`, :func:`terms`). Each grid point belongs to the region whose mask
  is largest there (ties: the first); points where every mask is below :data:`NO_REGION`
  (0.05) belong to none, and so do the points of a region with fewer than 2 of them (the
  covariance needs 2). The ``samples`` are split between the regions and the points in no region
  by their share of the grid points (largest remainders; each region keeps at least 2): the
  union is a uniform draw over the grid as without masks, and region k's points are the first
  of its candidates in the same permutation as :func:`draw` (one all-ones mask draws exactly
  :func:`draw`'s points). Region k's style term (REMD + moments + palette) is computed against
  style k's own ``style_samples`` points (the reference draws them per region; blending does not
  apply) and weighted by the region's share of the drawn points in regions (so the weights sum
  to 1: the reference averages regions equally, each with its own 1024 points). The points in no
  region only feed the content term, which compares all drawn points at once.
- **Content term.** The self-similarity difference times the number of points P, as the
  authors' code (``dp_loss``) computes it: after the column normalisation each entry is ~1/P.
- **Weights.** ``content_weight`` is the paper's alpha (the palette term is divided by
  max(alpha, 1), as in the reference); the total is ``content_weight * content + style_weight *
  style + tv_weight * tv`` like every jaxnst objective. The paper divides it by (alpha + 2): a
  constant per run, which RMSprop and Adam do not see.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
NO_REGION = 0.05  # a grid point whose masks are all below this belongs to no region
GRID_POINTS = 128 * 128  # candidate points of the content grid (the reference's const)
CHUNK = 2048  # style points per block of the REMD cost matrices (memory: P x CHUNK, not P x S)


class Regions(NamedTuple):
    """Region-wise sampling (content masks with ``style_loss="remd"``; see the module's notes).

    cands: R + 1 (n_k,) int32 arrays, the grid indices in region k (k < R) and, last, the grid
        points in no region (they feed the content term only). Their shapes set the quotas.
    style: R (S, D) arrays, style k's hypercolumns (``style_samples`` points each).
    moments: R ((D,), (D, D)), their mean and covariance.
    """

    cands: tuple[Array, ...]
    style: tuple[Array, ...]
    moments: tuple[tuple[Array, Array], ...]


class Sampled(NamedTuple):
    """The targets of the sampled terms (a field of :class:`jaxnst.loss.losses.Targets`).

    points: (G, 2) float32 (y, x), the candidate grid over the content (and output) image.
    content: (G, D) the content's hypercolumns there (a leading content axis before the layout
        places them), or None without ``content_loss="self_similarity"``.
    style: (S, D) the style's hypercolumns, or None without ``style_loss="remd"`` (or with
        ``regions``).
    style_moments: their (D,) mean and (D, D) covariance (computed once: at 5000 x 2179 the
        covariance alone is 47 GFLOP, more than the rest of the terms), or None.
    idx: (P,) int32, the grid points this evaluation compares (set by the loop with
        :func:`pick`; None before); with ``regions`` a tuple of R + 1 (P_k,) arrays, one per
        entry of ``regions.cands`` (all of them together are the P points).
    regions: :class:`Regions` with content masks and the sampled style term, else None.
    """

    points: Array
    content: Array | None = None
    style: Array | None = None
    style_moments: tuple[Array, Array] | None = None
    idx: Array | tuple[Array, ...] | None = None
    regions: Regions | None = None


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


def _permutation(key: Array, step: Array | int, every: int, g: int) -> Array:
    k = jax.random.fold_in(jax.random.wrap_key_data(key, impl="threefry2x32"), step // every)
    return jax.random.permutation(k, g)


def draw(key: Array, step: Array | int, every: int, g: int, p: int) -> Array:
    """The (p,) grid indices an evaluation at ``step`` compares: a permutation of the ``g``
    candidates by ``fold_in(key, step // every)`` (raw uint32 key data), so a line search sees
    one objective and the draw changes every ``every`` steps, the same for the same key."""
    return _permutation(key, step, every, g)[: min(p, g)].astype(jnp.int32)


def pick(t: Sampled, key: Array, step: Array | int, every: int, samples: int) -> Sampled:
    """``t`` with ``idx`` set for the evaluation at ``step`` (the loop's and
    :func:`jaxnst.objective`'s draw): :func:`draw`'s points without regions; with them, each
    group's :func:`quotas` of its candidates, those first in :func:`draw`'s permutation."""
    g = t.points.shape[0]
    if t.regions is None:
        return t._replace(idx=draw(key, step, every, g, samples))
    perm = _permutation(key, step, every, g)
    pos = jnp.zeros((g,), jnp.int32).at[perm].set(jnp.arange(g, dtype=jnp.int32))
    cands = t.regions.cands
    qs = quotas([c.shape[0] for c in cands], samples)
    idx = tuple(c[jnp.argsort(pos[c])[:q]].astype(jnp.int32) for c, q in zip(cands, qs))
    return t._replace(idx=idx)


def quotas(counts: Sequence[int], samples: int) -> tuple[int, ...]:
    """Points drawn per group (R regions, then the points in no region) with ``counts`` grid
    points each: all of them when there are at most ``samples``; else ``samples`` split by the
    groups' shares, each region reserving min(2, count) first and the rest split in proportion
    to what is left, largest remainders first (ties: the first group). Static ints."""
    n = np.asarray(counts, np.int64)
    if n.sum() <= samples:
        return tuple(int(x) for x in n)
    reserve = np.minimum(n, 2)
    reserve[-1] = 0  # the points in no region need no covariance
    rest, free = samples - int(reserve.sum()), n - reserve
    if rest < 0:
        raise ValueError(f"samples={samples} is fewer than 2 per region ({int(reserve.sum())})")
    exact = rest * free / free.sum()
    q = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - q), kind="stable")
    q[order[: rest - int(q.sum())]] += 1
    return tuple(int(x) for x in reserve + q)


def regions(masks: Any, points: np.ndarray) -> list[np.ndarray]:
    """The R + 1 groups of grid indices for (R, H, W) ``masks`` at (G, 2) integer ``points``:
    region k holds the points whose largest mask is mask k (ties: the first) and at least
    :data:`NO_REGION`; the last group the others, and the points of regions with fewer than 2."""
    m = np.asarray(masks, np.float32)
    pts = np.asarray(points).astype(np.int64)
    at = m[:, pts[:, 0], pts[:, 1]]  # (R, G)
    which = np.where(at.max(0) >= NO_REGION, at.argmax(0), -1)
    groups = [np.flatnonzero(which == k) for k in range(m.shape[0])]
    groups = [g if len(g) >= 2 else g[:0] for g in groups]
    taken = np.concatenate(groups) if groups else np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(len(pts)), taken)
    return [g.astype(np.int32) for g in groups + [rest]]


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
    idx = jnp.concatenate(t.idx) if isinstance(t.idx, tuple) else t.idx
    points = jnp.take(t.points, idx, axis=0)
    out = columns(image, feats, points)
    content = None
    if t.content is not None:
        # times the number of points, as the authors' dp_loss does (a mean of P x P entries that
        # are each ~1/P after the column normalisation)
        content = idx.shape[0] * strotss.self_similarity(out, jnp.take(t.content, idx, axis=0))
    style = None
    if t.regions is not None:
        style = _region_style(out, t, alpha)
    elif t.style is not None:
        assert t.style_moments is not None
        style = _style(out, t.style, t.style_moments, alpha)
    return content, style


def _style(out: Array, y: Array, moments: tuple[Array, Array], alpha: Array) -> Array:
    """REMD + moments + palette / max(alpha, 1) of output points ``out`` against style ``y``."""
    return (
        remd_cosine(out, y)
        + strotss.moments_to(out, *moments)
        + strotss.palette(out[:, :3], y[:, :3], CHUNK) / jnp.maximum(alpha, 1.0)
    )


def _region_style(out: Array, t: Sampled, alpha: Array) -> Array:
    """sum_k P_k / (sum_j P_j) * (region k's points against style k), over the regions with at
    least 2 drawn points (``out``'s rows are ``t.idx``'s groups one after the other)."""
    r = t.regions
    assert r is not None and isinstance(t.idx, tuple)
    sizes = [i.shape[0] for i in t.idx]
    starts = np.cumsum([0, *sizes])
    styled = [k for k in range(len(r.style)) if sizes[k] >= 2]
    total = sum(sizes[k] for k in styled)
    style = jnp.zeros((), out.dtype)
    for k in styled:
        x = out[starts[k] : starts[k] + sizes[k]]
        style = style + (sizes[k] / total) * _style(x, r.style[k], r.moments[k], alpha)
    return style


def make(
    contents: Array,
    styles: list[Array],
    blend: np.ndarray,
    features: Any,
    style_samples: int,
    content_term: bool,
    style_term: bool,
    masks: Any = None,
) -> Sampled:
    """The sampled terms' targets for (C, H, W, 3) ``contents`` and (H_s, W_s, 3) ``styles``.

    ``features(image) -> {layer: (H', W', C)}`` gives :data:`LAYERS`. The style points are split
    between several styles by ``blend`` (normalised weights), each drawn with its own fixed key
    (style i: ``fold_in(PRNGKey(0), i)``), so a run's targets never depend on its seeds. With
    (R, H, W) content ``masks`` (one per style) and the style term: :class:`Regions`, each
    style with its own ``style_samples`` points (same keys) and moments; ``blend`` is unused.
    """
    h, w = contents.shape[1:3]
    points_np = grid(h, w)
    points = jnp.asarray(points_np)
    content = None
    if content_term:
        content = jnp.stack([columns(c, features(c), points) for c in contents])
    if not style_term:
        return Sampled(points, content)
    if masks is not None:
        ys = [_style_of(i, s, features, style_samples) for i, s in enumerate(styles)]
        cands = tuple(jnp.asarray(g) for g in regions(masks, points_np))
        moments = tuple(strotss.mean_cov(y) for y in ys)
        return Sampled(points, content, regions=Regions(cands, tuple(ys), moments))
    counts = np.maximum(1, np.round(style_samples * blend / blend.sum()).astype(int))
    style = jnp.concatenate(
        [_style_of(i, s, features, int(n)) for i, (s, n) in enumerate(zip(styles, counts))], 0
    )
    return Sampled(points, content, style, strotss.mean_cov(style))


def _style_of(i: int, image: Array, features: Any, n: int) -> Array:
    """Style ``i``'s ``n`` points, drawn with its fixed key ``fold_in(PRNGKey(0), i)``."""
    return style_columns(jax.random.fold_in(jax.random.PRNGKey(0), i), image, features(image), n)
