"""Synthetic clips with known motion, made from the bundled sample images (nothing downloaded):
a camera pan, a zoom, and an object moving over a panning background (with occlusions). They serve
the tests, the benchmark and the README figure, and :func:`warping_error` measures temporal
consistency with their *true* motion, not an estimated flow.

Frames are rendered by sampling a source image with an independent NumPy bilinear sampler at
analytically known coordinates: each layer maps frame pixel x to source point ``s_t * x + b_t``
(per-frame scale s_t, offset b_t), so the true flow between any two frames is exact.
"""

from __future__ import annotations

from importlib import resources
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import image_io
from jaxnst.video import warp as warp_mod


class Synthetic(NamedTuple):
    """frames: (T, H, W, 3) float32 in [0, 1]. backward: (T-1, H, W, 2) true flow from frame t to
    t-1 (index t-1; convention of :mod:`jaxnst.video.warp`); forward: true flow t-1 -> t.
    visible: (T-1, H, W) bool, pixel x of frame t shows the same surface point in frame t-1
    (inside the frame there and not occluded). hidden: (T-1, H, W) bool, pixel x of frame t was
    certainly not seen in frame t-1 (outside it, or occluded there; an object's 1.5 px edge band is
    neither visible nor hidden)."""

    frames: np.ndarray
    backward: np.ndarray
    forward: np.ndarray
    visible: np.ndarray
    hidden: np.ndarray


def sample_image(name: str, long_side: int) -> np.ndarray:
    """A bundled sample (``chelsea.jpg``, ``swirls.png``) resized to ``long_side``, float32."""
    path = resources.files("jaxnst") / "samples" / name
    return image_io.resize(image_io.load(str(path)), long_side).astype(np.float32)


def _bilinear(src: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    h, w = src.shape[:2]
    ys = np.clip(ys, 0, h - 1.0)
    xs = np.clip(xs, 0, w - 1.0)
    y0 = np.minimum(np.floor(ys).astype(int), h - 2)
    x0 = np.minimum(np.floor(xs).astype(int), w - 2)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    return (
        (src[y0, x0] * (1 - fx) + src[y0, x0 + 1] * fx) * (1 - fy)
        + (src[y0 + 1, x0] * (1 - fx) + src[y0 + 1, x0 + 1] * fx) * fy
    ).astype(np.float32)


def _affine_clip(
    src: np.ndarray, scales: np.ndarray, offsets: np.ndarray, h: int, w: int
) -> Synthetic:
    """Frame t samples ``src`` at (y, x) -> scales[t] * (y, x) + offsets[t]; scales (T,),
    offsets (T, 2) as (y, x)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    frames = np.stack(
        [_bilinear(src, s * ys + o[0], s * xs + o[1]) for s, o in zip(scales, offsets)]
    )
    bwd: list[np.ndarray] = []
    fwd: list[np.ndarray] = []
    vis: list[np.ndarray] = []
    for t in range(1, len(scales)):
        # frame t's pixel x shows source point p = s_t x + b_t; frame t-1 shows p at (p - b)/s.
        yb = (scales[t] * ys + offsets[t][0] - offsets[t - 1][0]) / scales[t - 1]
        xb = (scales[t] * xs + offsets[t][1] - offsets[t - 1][1]) / scales[t - 1]
        yf = (scales[t - 1] * ys + offsets[t - 1][0] - offsets[t][0]) / scales[t]
        xf = (scales[t - 1] * xs + offsets[t - 1][1] - offsets[t][1]) / scales[t]
        bwd.append(np.stack([xb - xs, yb - ys], -1))
        fwd.append(np.stack([xf - xs, yf - ys], -1))
        vis.append((yb >= 0) & (yb <= h - 1) & (xb >= 0) & (xb <= w - 1))
    seen = np.asarray(vis, bool)
    return Synthetic(frames, np.asarray(bwd, np.float32), np.asarray(fwd, np.float32), seen, ~seen)


def pan(
    frames: int = 6,
    size: tuple[int, int] = (48, 64),
    speed: tuple[float, float] = (0.5, 2.0),
    image: str = "chelsea.jpg",
) -> Synthetic:
    """A camera pan over a bundled image: the view moves ``speed`` = (dy, dx) px per frame, so
    the content moves by -speed (the true backward flow is +speed everywhere)."""
    h, w = size
    extra = int(np.ceil(max(abs(speed[0]), abs(speed[1])) * frames)) + 2
    src = sample_image(image, max(h, w) + 2 * extra)
    oy = (src.shape[0] - h) / 2 - speed[0] * (frames - 1) / 2
    ox = (src.shape[1] - w) / 2 - speed[1] * (frames - 1) / 2
    offsets = np.array([[oy + speed[0] * t, ox + speed[1] * t] for t in range(frames)])
    return _affine_clip(src, np.ones(frames), offsets, h, w)


def zoom(
    frames: int = 6,
    size: tuple[int, int] = (48, 64),
    rate: float = 0.97,
    image: str = "chelsea.jpg",
) -> Synthetic:
    """A zoom into the centre of a bundled image: each frame shows ``rate`` times the previous
    frame's field of view (rate < 1 zooms in)."""
    h, w = size
    src = sample_image(image, int(1.3 * max(h, w)))
    cy, cx = (src.shape[0] - 1) / 2, (src.shape[1] - 1) / 2
    s0 = min((src.shape[0] - 1) / (h - 1), (src.shape[1] - 1) / (w - 1)) * 0.95
    scales = s0 * rate ** np.arange(frames)
    offsets = np.stack([cy - scales * (h - 1) / 2, cx - scales * (w - 1) / 2], -1)
    return _affine_clip(src, scales, offsets, h, w)


def moving_object(
    frames: int = 6,
    size: tuple[int, int] = (48, 64),
    speed: tuple[float, float] = (0.5, 3.0),
    pan_speed: tuple[float, float] = (0.0, 1.0),
    radius: float | None = None,
) -> Synthetic:
    """A disc textured with swirls.png moving by ``speed`` (dy, dx) px per frame over chelsea.jpg
    panning by ``pan_speed``. The disc covers and uncovers background (occlusion and
    disocclusion); pixels within 1.5 px of its edge in either frame count as not visible."""
    h, w = size
    bg = pan(frames, size, pan_speed)
    r = radius if radius is not None else 0.25 * min(h, w)
    tex = sample_image("swirls.png", int(2 * r) + 8)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    c0 = np.array([h / 2 - speed[0] * (frames - 1) / 2, w / 2 - speed[1] * (frames - 1) / 2])
    centres = [c0 + np.asarray(speed) * t for t in range(frames)]
    out = bg.frames.copy()
    dist = []
    for t, c in enumerate(centres):
        d = np.hypot(ys - c[0], xs - c[1])
        inside = d < r
        ty, tx = ys - c[0] + tex.shape[0] / 2, xs - c[1] + tex.shape[1] / 2
        out[t][inside] = _bilinear(tex, ty, tx)[inside]
        dist.append(d)
    bwd, fwd, vis, hid = bg.backward.copy(), bg.forward.copy(), bg.visible.copy(), bg.hidden.copy()
    for t in range(1, frames):
        on_now, on_prev = dist[t] < r, dist[t - 1] < r
        bwd[t - 1][on_now] = [-speed[1], -speed[0]]
        fwd[t - 1][on_prev] = [speed[1], speed[0]]
        # Where pixel x of frame t lands in frame t-1, is the same layer there?
        yb, xb = ys + bwd[t - 1][..., 1], xs + bwd[t - 1][..., 0]
        d_then = np.hypot(yb - centres[t - 1][0], xb - centres[t - 1][1])
        same = np.where(on_now, d_then < r, d_then >= r)
        edge = (np.abs(dist[t] - r) < 1.5) | (np.abs(d_then - r) < 1.5)
        vis[t - 1] &= same & ~edge
        hid[t - 1] |= ~same & ~edge
    return Synthetic(out, bwd, fwd, vis, hid)


def warping_error(outputs: np.ndarray, clip: Synthetic) -> float:
    """Temporal inconsistency of (T, H, W, 3) ``outputs`` under the clip's true motion:
    E = mean over t >= 1 of mean over visible pixels (and channels) of |O_t - warp(O_{t-1})|,
    warping with the true backward flow (bilinear). Pixel values in [0, 1]."""
    o = jnp.asarray(outputs, jnp.float32)
    warped = jax.vmap(warp_mod.warp)(o[:-1], jnp.asarray(clip.backward))
    diff = np.asarray(jnp.mean(jnp.abs(o[1:] - warped), -1))
    vis = clip.visible
    per_frame = [diff[i][vis[i]].mean() for i in range(len(diff)) if vis[i].any()]
    return float(np.mean(per_frame))
