"""Neural Neighbor Style Transfer's numerical core (Kolkin, Kotovenko, Ommer, Shakhnarovich et
al., "Neural Neighbor Style Transfer", 2022; nkolkin13/NeuralNeighborStyleTransfer), issue 31.

Written from the paper and the behaviour of the authors' code (no code copied). Pure functions of
feature rows: rows are positions, columns channels, float32.

- ``centre``: subtract each set's mean, then L2-normalise rows (cosine distance becomes a dot).
  Deviation: the authors centre the content per chunk of the search, so their matches depend on
  the chunk size; here each set's mean is GLOBAL (over all its rows), so the answer does not.
- ``nearest``: for each query row, the index of the key with the largest cosine similarity, a
  chunked matmul + argmax inside jit (``lax.map`` over query chunks: at most ``chunk`` x K
  similarities at once, never Q x K). Ties go to the lowest index, as ``np.argmax`` does: each
  query's row of similarities is whole in one chunk, and ``jnp.argmax`` returns the first maximum.
  ``precision="bf16"`` rounds the normalised rows to bfloat16 for the dot (fp32 norms, fp32
  accumulation); ``"bf16-rescore"`` then re-scores each query's best few bf16 candidates in fp32.
  :func:`agreement` measures a precision's share of indices identical to fp32 (tests: bf16 alone
  falls short of issue 31's 99.9 % on random ReLU-like features; the re-scored search meets it).
- ``replace``: each content row replaced by its nearest (un-normalised) style row, optionally only
  among style rows of the same region label.
- ``rotations``: the style bank's 0/90/180/270 degree rotations (counter-clockwise, as np.rot90).
- ``sample_keys``: a random subset of style rows for a large bank, drawn from a ``jax.random`` key
  (the authors draw offsets with Python's ``random``, so their runs are not repeatable).
- ``to_oklab`` / ``from_oklab``: OkLab (Ottosson 2020) on LINEAR RGB. Deviation: the authors
  apply OkLab's matrices to gamma-encoded sRGB; OkLab is defined on linear light, so the sRGB
  transfer function is undone first and redone after.
- ``colour_correct``: the authors' correction: the output's lightness, the content's chroma moved
  to the style's chroma mean and covariance (``match_moments``), smoothed along the lightness's
  edges (``smooth_chroma``), clipped to the style's range. (Not a content-colour preservation:
  the colours come from the style; ``--preserve-color`` remains the way to keep the content's.)
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

_EPS = 1e-8
PRECISIONS = ("fp32", "bf16", "bf16-rescore")
_RESCORE = 8  # candidates per query that "bf16-rescore" re-scores in fp32

# OkLab (https://bottosson.github.io/posts/oklab/): linear sRGB -> LMS, cube root, -> Lab.
# NumPy constants: a jnp array at import time would start the XLA backend.
_M1 = np.array(
    [
        [0.4122214708, 0.5363325363, 0.0514459929],
        [0.2119034982, 0.6806995451, 0.1073969566],
        [0.0883024619, 0.2817188376, 0.6299787005],
    ],
    np.float64,
)
_M2 = np.array(
    [
        [0.2104542553, 0.7936177850, -0.0040720468],
        [1.9779984951, -2.4285922050, 0.4505937099],
        [0.0259040371, 0.7827717662, -0.8086757660],
    ],
    np.float64,
)
_M1_INV = np.linalg.inv(_M1)
_M2_INV = np.linalg.inv(_M2)


def _normalise(x: Array) -> Array:
    """Rows of ``x`` divided by their L2 norms (guarded by an epsilon, so zero rows stay zero)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), _EPS)


def centre(content_feats: Array, style_feats: Array) -> tuple[Array, Array]:
    """(Q, C) content and (K, C) style rows, each minus its own global mean over all rows, then
    L2-normalised. Returns the two float32 arrays, shapes unchanged, rows of unit norm."""
    c = jnp.asarray(content_feats, jnp.float32)
    s = jnp.asarray(style_feats, jnp.float32)
    return _normalise(c - c.mean(0)), _normalise(s - s.mean(0))


def _check(chunk: int, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of query rows; got {chunk}")


@functools.partial(jax.jit, static_argnames=("chunk", "precision"))
def _search(q: Array, k: Array, ql: Array, kl: Array, chunk: int, precision: str) -> Array:
    """Indices (Q,) int32 of each row of unit ``q`` (Q, C) in unit ``k`` (K, C); rows of other
    labels are masked to -inf unless the query's label has no key at all (``kl`` None: none)."""
    n = q.shape[0]
    pad = -n % chunk
    q = jnp.pad(q, ((0, pad), (0, 0))).reshape(-1, chunk, q.shape[1])
    ql = jnp.zeros((n,), jnp.int32) if ql is None else ql
    ql = jnp.pad(ql, (0, pad)).reshape(-1, chunk)
    dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
    kd = k.astype(dtype)

    def one(args: tuple[Array, Array]) -> Array:
        qc, lc = args
        sim = jnp.dot(qc.astype(dtype), kd.T, preferred_element_type=jnp.float32)
        allowed = None
        if kl is not None:  # (no labels: no masks, which XLA could fold as constants)
            same = lc[:, None] == kl[None, :]
            # A region absent from the style keeps its unmasked match (see ``missing_regions``).
            allowed = same | ~jnp.any(same, axis=1, keepdims=True)
            sim = jnp.where(allowed, sim, -jnp.inf)
        if precision != "bf16-rescore":
            return jnp.argmax(sim, axis=1).astype(jnp.int32)
        return _rescore(qc, k, sim, allowed)

    return jax.lax.map(one, (q, ql)).reshape(-1)[:n]


def _rescore(qc: Array, k: Array, sim: Array, allowed: Array | None) -> Array:
    """The best of each row's top ``_RESCORE`` bf16 candidates, re-scored in fp32 (ties to the
    lowest index). ``qc`` (n, C), ``k`` (K, C) unit rows; ``sim``, ``allowed`` (n, K)."""
    _, cand = jax.lax.top_k(sim, min(_RESCORE, k.shape[0]))
    exact = jnp.einsum("nc,ntc->nt", qc, k[cand])
    if allowed is not None:
        exact = jnp.where(jnp.take_along_axis(allowed, cand, axis=1), exact, -jnp.inf)
    best = exact.max(axis=1, keepdims=True)
    big = jnp.iinfo(jnp.int32).max
    return jnp.min(jnp.where(exact == best, cand, big), axis=1).astype(jnp.int32)


def nearest(
    queries: Array,
    keys: Array,
    chunk: int = 1024,
    precision: str = "fp32",
    query_labels: Array | None = None,
    key_labels: Array | None = None,
) -> Array:
    """For each (Q, C) query row, the index into (K, C) ``keys`` of the largest cosine similarity
    (rows are normalised here; centre them first with :func:`centre`). Returns (Q,) int32.

    ``chunk`` query rows are compared at a time (chunk x K similarities in memory); the answer
    does not depend on it. Exact ties give the lowest index. With (Q,) ``query_labels`` and (K,)
    ``key_labels`` (ints), a query matches only keys of its own label; a label no key has falls
    back to the unmasked search."""
    _check(chunk, precision)
    q = _normalise(jnp.asarray(queries, jnp.float32))
    k = _normalise(jnp.asarray(keys, jnp.float32))
    if (query_labels is None) != (key_labels is None):
        raise ValueError("query_labels and key_labels: give both or neither")
    if query_labels is None:
        return _search(q, k, None, None, min(chunk, q.shape[0]), precision)
    ql, kl = jnp.asarray(query_labels), jnp.asarray(key_labels)
    if ql.shape != (q.shape[0],) or kl.shape != (k.shape[0],):
        raise ValueError(
            f"labels must be (Q,) = ({q.shape[0]},) and (K,) = ({k.shape[0]},); "
            f"got {ql.shape} and {kl.shape}"
        )
    return _search(
        q, k, ql.astype(jnp.int32), kl.astype(jnp.int32), min(chunk, q.shape[0]), precision
    )


def agreement(queries: Array, keys: Array, chunk: int = 1024, precision: str = "bf16") -> float:
    """The share (0..1) of queries whose ``precision`` search index equals the fp32 one."""
    a = nearest(queries, keys, chunk, "fp32")
    b = nearest(queries, keys, chunk, precision)
    return float(jnp.mean(a == b))


def missing_regions(content_labels: Array, style_labels: Array) -> list[int]:
    """The content labels no style row carries (their rows fall back to the unmasked search)."""
    return sorted(
        set(np.unique(np.asarray(content_labels)).tolist()) - set(np.asarray(style_labels).tolist())
    )


def replace(
    content_feats: Array,
    style_feats: Array,
    content_labels: Array | None = None,
    style_labels: Array | None = None,
    chunk: int = 1024,
    precision: str = "fp32",
) -> Array:
    """Each (Q, C) content row replaced by its nearest (K, C) style row, by cosine similarity
    after :func:`centre` (global means). The returned (Q, C) rows are the style's own,
    un-centred and un-normalised. Labels as in :func:`nearest`."""
    c, s = centre(content_feats, style_feats)
    idx = nearest(c, s, chunk, precision, content_labels, style_labels)
    return jnp.asarray(style_feats)[idx]


def rotations(style_image: Array) -> tuple[Array, Array, Array, Array]:
    """The (H, W, C) image rotated by 0, 90, 180 and 270 degrees counter-clockwise (as np.rot90);
    the 90/270 ones are (W, H, C). The bank concatenates each one's feature rows as keys."""
    x = jnp.asarray(style_image)
    return x, jnp.rot90(x, 1), jnp.rot90(x, 2), jnp.rot90(x, 3)


def sample_keys(key: Array, style_feats: Array, n: int) -> Array:
    """``n`` distinct rows of (K, C) ``style_feats``, uniform without replacement, in their
    original order, drawn from the ``jax.random`` ``key`` (same key, same rows). All rows when
    n >= K."""
    k = style_feats.shape[0]
    if n >= k:
        return jnp.asarray(style_feats)
    idx = jnp.sort(jax.random.choice(key, k, (n,), replace=False))
    return jnp.asarray(style_feats)[idx]


def _srgb_to_linear(x: Array) -> Array:
    a = jnp.abs(x)  # sign-preserving, so out-of-gamut values round-trip
    return jnp.sign(x) * jnp.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: Array) -> Array:
    a = jnp.abs(x)
    return jnp.sign(x) * jnp.where(a <= 0.0031308, 12.92 * a, 1.055 * a ** (1 / 2.4) - 0.055)


def to_oklab(rgb: Array) -> Array:
    """(..., 3) gamma-encoded sRGB in [0, 1] -> (..., 3) OkLab (L in [0, 1], a, b ~ [-0.4, 0.4])."""
    lin = _srgb_to_linear(jnp.asarray(rgb, jnp.float32))
    lms = jnp.cbrt(lin @ jnp.asarray(_M1.T, jnp.float32))
    return lms @ jnp.asarray(_M2.T, jnp.float32)


def from_oklab(lab: Array) -> Array:
    """(..., 3) OkLab -> (..., 3) gamma-encoded sRGB (unclipped; in [0, 1] inside the gamut)."""
    lms = jnp.asarray(lab, jnp.float32) @ jnp.asarray(_M2_INV.T, jnp.float32)
    return _linear_to_srgb(lms**3 @ jnp.asarray(_M1_INV.T, jnp.float32))


def _sqrtm(c: Array, inverse: bool = False) -> Array:
    w, v = jnp.linalg.eigh(c)
    return (v * jnp.maximum(w, 1e-8) ** (-0.5 if inverse else 0.5)) @ v.T


def match_moments(x: Array, y: Array) -> Array:
    """(N, d) rows ``x`` moved affinely (whiten, then colour) to the mean and covariance of
    (M, d) rows ``y``; covariances with n - 1 denominators, each regularised by 1e-5 I."""
    reg = 1e-5 * jnp.eye(x.shape[1])
    cx = jnp.atleast_2d(jnp.cov(x.T)) + reg
    cy = jnp.atleast_2d(jnp.cov(y.T)) + reg
    return (x - x.mean(0)) @ (_sqrtm(cx, inverse=True) @ _sqrtm(cy)) + y.mean(0)


def smooth_chroma(lab: Array, iters: int = 5) -> Array:
    """(H, W, 3) OkLab with a, b smoothed by an edge-aware filter guided by L: ``iters`` passes,
    each a 3x3 weighted mean (edges replicated) with weights exp(-10 |L_centre - L_neighbour|)."""
    h, w = lab.shape[:2]
    pad = functools.partial(jnp.pad, pad_width=((1, 1), (1, 1), (0, 0)), mode="edge")
    lp = pad(lab[..., :1])
    shifts = [(i, j) for i in range(3) for j in range(3)]
    wts = [jnp.exp(-10.0 * jnp.abs(lab[..., :1] - lp[i : i + h, j : j + w])) for i, j in shifts]
    norm = jnp.stack(wts).sum(0)
    ab = lab[..., 1:]
    for _ in range(iters):
        ap = pad(ab)
        ab = jnp.stack([wt * ap[i : i + h, j : j + w] for wt, (i, j) in zip(wts, shifts)]).sum(0)
        ab = ab / norm
    return jnp.concatenate([lab[..., :1], ab], axis=-1)


def colour_correct(output: Array, content: Array, style: Array, smooth: bool = True) -> Array:
    """NNST's colour correction of (H, W, 3) sRGB ``output`` in [0, 1], in OkLab: the output's
    lightness, the (H, W, 3) ``content``'s chroma a, b moved to the mean and covariance of the
    (H', W', 3) ``style``'s a, b, then (``smooth``) the chroma smoothed along the lightness's
    edges, each channel clipped to the style's range. A grey style (a, b covariance under 6e-5)
    instead moves the output's own L, a, b to the style's moments. Returns sRGB in [0, 1].

    Behaviour read from the authors' ``color_match``; deviation: on linear RGB (their OkLab took
    gamma-encoded values as linear)."""
    o, c, s = (to_oklab(jnp.clip(v, 0.0, 1.0)) for v in (output, content, style))
    s2 = s.reshape(-1, 3)
    lo, hi = s2.min(0), s2.max(0)
    o = jnp.clip(o, lo, hi)
    ab = match_moments(c[..., 1:].reshape(-1, 2), s2[:, 1:]).reshape(c.shape[:2] + (2,))
    lab = jnp.concatenate([o[..., :1], ab], axis=-1)
    lab = smooth_chroma(lab) if smooth else lab
    grey = match_moments(o.reshape(-1, 3), s2).reshape(o.shape)
    lab = jnp.where(jnp.abs(jnp.cov(s2[:, 1:].T)).max() < 6e-5, grey, lab)
    return jnp.clip(from_oklab(jnp.clip(lab, lo, hi)), 0.0, 1.0)
