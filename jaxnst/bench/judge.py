"""A STROTSS-style judge of a stylised image (issue 31): how close its features are to the style's
(relaxed earth mover's distance) and how well it keeps the content's layout (self-similarity).

The scores of Kolkin, Salavon & Shakhnarovich, "Style Transfer by Relaxed Optimal Transport and
Self-Similarity" (CVPR 2019), written again for judging, independently of
:mod:`jaxnst.loss.strotss` (which ``method="strotss"`` optimises): only the VGG19 forward pass is
shared; sampling, hypercolumns and distances are plain NumPy in float64, so a bug in the loss's
JAX code cannot flatter its own results here.

- Features: the trained VGG19 (max pooling, our verified weights) at :data:`LAYERS`, the first
  convolution of each block (strides 1, 2, 4, 8, 16). No RGB channels.
- Positions: up to ``n`` distinct pixels, uniform without replacement from a seeded NumPy
  generator (all pixels, in order, when the image has no more than ``n``).
- Hypercolumns: each layer sampled bilinearly at the pixel's centre, ((y + 0.5) / s - 0.5) on a
  map of stride s, clamped to the map. Deviation from STROTSS, which concatenates the raw
  activations: each layer's vector is scaled to unit length before the concatenation, so every
  layer weighs the same in the cosine (raw, conv5_1's 512 large channels outweigh conv1_1's
  64). Where no layer is zero, the cosine of two such hypercolumns is the mean of the per-layer
  cosines; a layer that is zero at a position adds nothing to either dot product.
- ``relaxed_emd``: cost C_ij = 1 - cos(x_i, y_j); REMD = max(mean_i min_j C_ij, mean_j min_i
  C_ij) (paper, eq. 4-6: either marginal constraint alone sends each point to its nearest
  neighbour). 0 for identical sets, at most 2. Lower: closer to the style.
- ``self_similarity_error``: mean |S_r - S_c| over all pairs of the n positions, S the plain
  cosine similarity matrix of result (r) and content (c) hypercolumns at the same positions.
  Deviation from STROTSS's content loss, which divides each column of the cosine distance matrix
  by its sum: plain cosines keep the score in cosine units (0..2), the same for any n. Lower:
  closer to the content's layout.

Both depend on ``n`` and the image sizes (more samples, nearer neighbours): compare scores taken
with the same ``n``, size and seed only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

from jaxnst import image_io
from jaxnst.model import vgg

LAYERS = ("conv1_1", "conv2_1", "conv3_1", "conv4_1", "conv5_1")
SAMPLES = 2048  # positions per image (the cost matrices are SAMPLES x SAMPLES)
_EPS = 1e-12


class Score(NamedTuple):
    """A result's two scores (lower is better for both) and how they were taken."""

    relaxed_emd: float  # to the style, 0..2
    self_similarity_error: float  # to the content, 0..2
    samples: int  # positions per image actually used
    seed: int


@functools.lru_cache(maxsize=8)
def _forward(channels: tuple[int, ...], layers: tuple[str, ...]):
    net = vgg.VGG19(pooling="max", channels=channels)
    return jax.jit(lambda v, x: net.apply(v, x, layers))


def features(
    image: np.ndarray, variables: dict, layers: Sequence[str] = LAYERS
) -> dict[str, np.ndarray]:
    """VGG19 activations of one RGB image (H, W, 3) in [0, 1]: ``{layer: (h, w, C) float64}``."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
    layers = vgg.check_layers(layers)
    out = _forward(vgg.channels_of(variables), layers)(variables, image)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def positions(shape: tuple[int, ...], n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to ``n`` distinct pixel positions of an image of ``shape`` (H, W, ...): (P, 2) int
    (y, x), P = min(n, H W), in raster order; every pixel when there are no more than ``n``."""
    h, w = shape[:2]
    if n < 1:
        raise ValueError(f"n must be a positive number of positions, got {n}")
    flat = np.arange(h * w) if h * w <= n else np.sort(rng.choice(h * w, n, replace=False))
    return np.stack([flat // w, flat % w], axis=1)


def _bilinear(fmap: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``fmap`` (h, w, C) at real coordinates (P,), clamped to the map: (P, C)."""
    h, w = fmap.shape[:2]
    y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    dy, dx = (y - y0)[:, None], (x - x0)[:, None]
    top = fmap[y0, x0] * (1 - dx) + fmap[y0, x1] * dx
    bottom = fmap[y1, x0] * (1 - dx) + fmap[y1, x1] * dx
    return top * (1 - dy) + bottom * dy


def hypercolumns(
    feats: dict[str, np.ndarray], shape: tuple[int, ...], pos: np.ndarray
) -> np.ndarray:
    """The layers of ``feats`` (from :func:`features` of an image of ``shape``) at pixel
    positions ``pos`` (P, 2), each layer's vector scaled to unit length (a zero one stays zero),
    concatenated in :data:`LAYERS` order (others after, by name): (P, sum C) float64."""
    order = [k for k in LAYERS if k in feats] + sorted(k for k in feats if k not in LAYERS)
    cols = []
    for name in order:
        fmap = feats[name]
        # The layer's stride: 2 ** (block - 1) with VGG's floor pooling, for any image size.
        s = 2.0 ** round(np.log2(shape[0] / fmap.shape[0]))
        f = _bilinear(fmap, (pos[:, 0] + 0.5) / s - 0.5, (pos[:, 1] + 0.5) / s - 0.5)
        cols.append(f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), _EPS))
    return np.concatenate(cols, axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), _EPS)


def cosine_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """C_ij = 1 - cos(x_i, y_j) for rows of x (P, D) and y (Q, D): (P, Q) float64; a zero row is
    orthogonal to everything (cost 1)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return 1.0 - _unit(x) @ _unit(y).T


def relaxed_emd(x: np.ndarray, y: np.ndarray) -> float:
    """Relaxed EMD of point sets x (P, D) and y (Q, D) under the cosine cost: the larger of the
    two one-sided mean nearest-neighbour costs (Kolkin et al. 2019, eq. 4-6)."""
    c = cosine_cost(x, y)
    return float(max(c.min(axis=1).mean(), c.min(axis=0).mean()))


def self_similarity_error(x: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute difference of the plain cosine self-similarity matrices (P, P) of x and y
    (P, D each, rows at the same positions)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same positions, got {x.shape[0]} and {y.shape[0]}")
    sx, sy = 1.0 - cosine_cost(x, x), 1.0 - cosine_cost(y, y)
    return float(np.abs(sx - sy).mean())


def judge(
    content: np.ndarray,
    style: np.ndarray,
    result: np.ndarray,
    variables: dict,
    n: int = SAMPLES,
    seed: int = 0,
) -> Score:
    """Score ``result`` against ``style`` (relaxed EMD) and ``content`` (self-similarity error).
    Images (H, W, 3) float in [0, 1]; ``content`` is resized to ``result``'s shape if it differs
    (self-similarity compares the same positions); ``style`` is taken as given. The result's and
    content's positions are one draw, the style's the next, from ``default_rng(seed)``."""
    result = np.asarray(result, np.float32)
    content = np.asarray(content, np.float32)
    if content.shape != result.shape:
        content = image_io.resize(content, shape=result.shape[:2])
    rng = np.random.default_rng(seed)
    pos = positions(result.shape, n, rng)
    style_pos = positions(np.shape(style), n, rng)
    r = hypercolumns(features(result, variables), result.shape, pos)
    c = hypercolumns(features(content, variables), content.shape, pos)
    s = hypercolumns(features(style, variables), np.shape(style), style_pos)
    return Score(relaxed_emd(r, s), self_similarity_error(r, c), len(pos), seed)
