"""A photo's colours moved to a style photo's, region by region: where ``method="photoreal"``
starts its descent (``init="recolour"``, issue 30).

Deep Photo Style Transfer's descent starts from the content (or a first pass without the
photorealism term) and has to carry every pixel's colour to the style's through the Gram losses,
against the Matting Laplacian's pull toward the content; after the few hundred iterations a CPU
affords, its colours are still the content's. A start whose colours are already the style's
leaves the descent the texture alone:

- each region r (a label colour both sides share; the whole image without labels) of the content
  is moved by one affine colour map to the mean and covariance of the style's region r
  (:func:`jaxnst.loss.nnst.match_moments`, the map that whitens then colours); content pixels in
  no region follow the map of the whole content to the whole style;
- the per-region maps disagree at region borders, which the Matting Laplacian sees as detail no
  local affine recolouring explains; the result is smoothed with the content's Laplacian
  (:func:`jaxnst.loss.matting.smooth`, ``(I + lam L) y = x``, ``lam`` = ``smooth``), which leaves a
  map that is affine over the whole image unchanged (``L`` vanishes on it).

Pure functions of (H, W, 3) float images in [0, 1]; masks (R, H, W) in {0, 1}, one per region,
the content's at the content's size and the style's at the style's.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import matting, nnst

SMOOTH = 100.0  # lam of the border smoothing (DPST's example 1: 1.38x DPST's share at 10, 0.81x)


def _pixels(image: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    rows = image.reshape(-1, 3)
    return rows if mask is None else rows[mask.reshape(-1) > 0.5]


def region_maps(
    content: Any, style: Any, content_masks: Any = None, style_masks: Any = None
) -> np.ndarray:
    """The content with each region's colours moved to the mean and covariance of the style's
    same region, (H, W, 3) float32, not clipped and not smoothed. Regions with fewer than two
    pixels on either side (no covariance) follow the whole-image map."""
    c = np.asarray(content, np.float32)
    s = np.asarray(style, np.float32)
    if (content_masks is None) != (style_masks is None):
        raise ValueError("content_masks and style_masks: give both or neither")
    flat = c.reshape(-1, 3)
    out = np.array(nnst.match_moments(jnp.asarray(flat), jnp.asarray(s.reshape(-1, 3))))
    if content_masks is None:
        return out.reshape(c.shape)
    cm, sm = np.asarray(content_masks), np.asarray(style_masks)
    if cm.shape[0] != sm.shape[0] or cm.shape[1:] != c.shape[:2] or sm.shape[1:] != s.shape[:2]:
        raise ValueError(
            f"masks must be (R, H, W) at each image's size: content {cm.shape} for "
            f"{c.shape[:2]}, style {sm.shape} for {s.shape[:2]}"
        )
    for mc, ms in zip(cm, sm):
        a, b = _pixels(c, mc), _pixels(s, ms)
        if len(a) < 2 or len(b) < 2:
            continue
        moved = np.asarray(nnst.match_moments(jnp.asarray(a), jnp.asarray(b)))
        out[mc.reshape(-1) > 0.5] = moved
    return out.reshape(c.shape)


def recolour(
    content: Any,
    style: Any,
    content_masks: Any = None,
    style_masks: Any = None,
    smooth: float = SMOOTH,
) -> jax.Array:
    """:func:`region_maps`, smoothed with the content's Matting Laplacian at ``smooth`` (0: not
    smoothed), clipped to [0, 1]: (H, W, 3) float32."""
    x = region_maps(content, style, content_masks, style_masks)
    if smooth > 0:
        x = matting.smooth(jnp.asarray(content, jnp.float32), x, smooth).y
    return jnp.clip(jnp.asarray(x, jnp.float32), 0.0, 1.0)
