"""Colour preservation (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving Color in Neural
Artistic Style Transfer"). Pure functions on RGB float (H, W, 3) in [0, 1].

- ``luminance``: transfer style on luminance only. Content and style become grey images of their
  luma (the style's luma shifted and scaled to the content's mean and standard deviation, as in
  the paper); afterwards the result's luma is combined with the content's chroma.
- ``histogram``: before optimising, give the style the content's colour mean and covariance
  (x' = A (x - mu_s) + mu_c with A = Sigma_c^1/2 Sigma_s^-1/2, symmetric square roots).

Colour space: full-range BT.601 YCbCr (JPEG's), so "chroma" is Cb, Cr.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

# NumPy constants: a jnp array at import time would start the XLA backend, which must not happen
# before jax.distributed.initialize() in multi-process runs.
_TO_YCC = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32
)
_OFFSET = np.array([0.0, 0.5, 0.5], np.float32)
_FROM_YCC = np.linalg.inv(_TO_YCC).astype(np.float32)


def rgb_to_ycbcr(x):
    """(..., 3) RGB in [0, 1] -> (..., 3) Y, Cb, Cr in [0, 1]."""
    return x @ _TO_YCC.T + _OFFSET


def ycbcr_to_rgb(y):
    return (y - _OFFSET) @ _FROM_YCC.T


def luma(x):
    return x @ _TO_YCC[0]


def grey(y):
    """(H, W) luma -> (H, W, 3) grey RGB."""
    return jnp.repeat(y[..., None], 3, axis=-1)


def match_luminance(style_y, content_y):
    """Shift and scale the style's luma to the content's mean and standard deviation."""
    s_mu, s_sd = style_y.mean(), style_y.std() + 1e-6
    return (style_y - s_mu) * (content_y.std() / s_sd) + content_y.mean()


def combine_luma_chroma(result, content):
    """The result's luma with the content's chroma, as RGB clipped to [0, 1]."""
    ycc = rgb_to_ycbcr(content)
    out = jnp.concatenate([luma(result)[..., None], ycc[..., 1:]], axis=-1)
    return jnp.clip(ycbcr_to_rgb(out), 0.0, 1.0)


def _sqrtm(c, inverse=False):
    w, v = jnp.linalg.eigh(c)
    w = jnp.maximum(w, 1e-8)
    return (v * (w ** (-0.5 if inverse else 0.5))) @ v.T


def match_color_histogram(style, content):
    """The style with the content's colour mean and covariance (clipped to [0, 1])."""
    s = style.reshape(-1, 3)
    c = content.reshape(-1, 3)
    mu_s, mu_c = s.mean(0), c.mean(0)
    cov_s = jnp.cov(s.T) + 1e-5 * jnp.eye(3)
    cov_c = jnp.cov(c.T) + 1e-5 * jnp.eye(3)
    a = _sqrtm(cov_c) @ _sqrtm(cov_s, inverse=True)
    return jnp.clip((s - mu_s) @ a.T + mu_c, 0.0, 1.0).reshape(style.shape)
