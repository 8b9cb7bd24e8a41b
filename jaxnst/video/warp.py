"""Bilinear warping inside JAX (jit-, vmap- and grad-able), and the flow-reliability test of Ruder,
Dosovitskiy & Brox (2016).

Flow convention (OpenCV's): a flow field ``f`` is (H, W, 2) float32 in pixels, ``f[..., 0]`` the
horizontal (x) and ``f[..., 1]`` the vertical (y) displacement, defined on the grid of the frame it
starts from. For frames a and b, the flow f from a to b satisfies ``a(x) ≈ b(x + f(x))``. So
``warp(b, f)`` (sample b at x + f(x)) brings b into a's frame: the previous stylized frame is
brought into frame t with ``warp(O[t-1], backward[t])`` where backward[t] is the flow from t to t-1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def sample(image: Array, ys: Array, xs: Array) -> Array:
    """Bilinear sample of (H, W, C) ``image`` at float pixel coordinates ``ys``, ``xs`` (any equal
    shapes S); coordinates outside the image are clamped to its border. Returns S + (C,)."""
    h, w = image.shape[:2]
    ys = jnp.clip(ys, 0.0, h - 1.0)
    xs = jnp.clip(xs, 0.0, w - 1.0)
    y0 = jnp.clip(jnp.floor(ys), 0, max(h - 2, 0)).astype(jnp.int32)
    x0 = jnp.clip(jnp.floor(xs), 0, max(w - 2, 0)).astype(jnp.int32)
    y1 = jnp.minimum(y0 + 1, h - 1)
    x1 = jnp.minimum(x0 + 1, w - 1)
    fy = (ys - y0)[..., None]
    fx = (xs - x0)[..., None]
    top = image[y0, x0] * (1 - fx) + image[y0, x1] * fx
    bottom = image[y1, x0] * (1 - fx) + image[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def grid(h: int, w: int) -> tuple[Array, Array]:
    """(H, W) pixel-centre coordinates (ys, xs), float32."""
    ys, xs = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    return ys, xs


def warp(image: Array, flow: Array) -> Array:
    """``image`` (H, W, C) sampled at x + flow(x): (H, W, C). See the module doc for direction."""
    ys, xs = grid(*flow.shape[:2])
    return sample(image, ys + flow[..., 1], xs + flow[..., 0])


def inside(flow: Array) -> Array:
    """(H, W) bool: x + flow(x) lands inside the image (no border clamping was needed)."""
    h, w = flow.shape[:2]
    ys, xs = grid(h, w)
    y, x = ys + flow[..., 1], xs + flow[..., 0]
    return (y >= 0) & (y <= h - 1) & (x >= 0) & (x <= w - 1)


def reliability(forward: Array, backward: Array) -> Array:
    """Ruder et al.'s weight c (H, W) float32 in {0, 1} for warping frame t-1 into frame t.

    forward: (H, W, 2) flow from t-1 to t (on t-1's grid); backward: flow from t to t-1 (on t's
    grid). c = 0 where
    - disoccluded: with w~(x) = forward(x + backward(x)),
      |w~ + backward|^2 > 0.01 (|w~|^2 + |backward|^2) + 0.5 (forward-backward inconsistency);
    - a motion boundary: |grad u|^2 + |grad v|^2 > 0.01 |backward|^2 + 0.002, (u, v) = backward;
    - x + backward(x) leaves the frame (the warped pixel has no source; not in the paper, whose
      warping pads, but a clamped border pixel is not a measurement).
    For the other direction (frame t+1 into t) swap the arguments.
    """
    wt = warp(forward, backward)
    lhs = jnp.sum((wt + backward) ** 2, -1)
    rhs = 0.01 * (jnp.sum(wt**2, -1) + jnp.sum(backward**2, -1)) + 0.5
    occluded = lhs > rhs
    # Central differences (np.gradient's), one-sided at the border.
    du_y, du_x = jnp.gradient(backward[..., 0])
    dv_y, dv_x = jnp.gradient(backward[..., 1])
    grad2 = du_x**2 + du_y**2 + dv_x**2 + dv_y**2
    boundary = grad2 > 0.01 * jnp.sum(backward**2, -1) + 0.002
    return (~occluded & ~boundary & inside(backward)).astype(jnp.float32)
