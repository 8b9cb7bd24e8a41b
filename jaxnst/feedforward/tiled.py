"""Applying a network to images larger than the device's memory: exact, tile by tile.

Instance norm needs each layer's statistics over the whole image, so the network is run one
convolution at a time over the whole image (a *stage*), in tiles: every tile's output is computed
from exactly the input it needs (the kernel's reach, through the reflection padding and the
nearest upsampling, gathered by index on the host), written into the stage's full-size output on
the host, and the stage's per-channel mean and variance are taken from that output before the
next stage normalises it. The result equals the untiled network's up to float rounding
(tests/test_feedforward.py checks it). The device holds one tile of one layer at a time; the host
holds a few full-size activations (32 channels of float32: 1 GiB at 3840 x 2160).
Tiles have one shape per stage (the last row and column of tiles are moved back to end at the
border, overlapping their neighbours), so each stage compiles once.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax import lax

from jaxnst.feedforward.network import EPS, NetConfig


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def _index(lo: int, hi: int, k: int, stride: int, up: int, n: int) -> np.ndarray:
    """Source rows (of an n-row input) that output rows [lo, hi) of a stride-``stride``,
    reflection-padded ``k``-wide convolution read, after ``up``-fold nearest upsampling."""
    rows = np.arange(lo * stride - k // 2, (hi - 1) * stride + k - k // 2)
    return _reflect(rows, n * up) // up


@functools.partial(jax.jit, static_argnames="stride")
def _conv(x, kernel, stride: int):
    dn = ("NHWC", "HWIO", "NHWC")
    return lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=dn)


def _starts(n: int, tile: int) -> list[int]:
    if n <= tile:
        return [0]
    s = list(range(0, n - tile, tile))
    return [*s, n - tile]


def conv_stage(x: np.ndarray, kernel: np.ndarray, stride: int, up: int, tile: int) -> np.ndarray:
    """(N, H, W, C) host input -> the reflection-padded convolution's (N, H', W', O) output, in
    ``tile`` x ``tile`` output tiles (after ``up``-fold nearest upsampling of the input)."""
    n, h, w, _ = x.shape
    k = kernel.shape[0]
    oh, ow = h * up // stride, w * up // stride
    out = np.empty((n, oh, ow, kernel.shape[-1]), np.float32)
    th, tw = min(tile, oh), min(tile, ow)
    for y0 in _starts(oh, th):
        rows = _index(y0, y0 + th, k, stride, up, h)
        for x0 in _starts(ow, tw):
            cols = _index(x0, x0 + tw, k, stride, up, w)
            part = x[:, rows][:, :, cols]
            out[:, y0 : y0 + th, x0 : x0 + tw] = np.asarray(_conv(part, kernel, stride))
    return out


def _norm(a: np.ndarray, gamma: np.ndarray, beta: np.ndarray | None) -> np.ndarray:
    """Instance norm of host activations (N, H, W, C), statistics in float64, then (N, C)
    scale and shift."""
    mu = a.mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    var = np.square(a - mu.astype(np.float32)).mean(axis=(1, 2), keepdims=True, dtype=np.float64)
    y = (a - mu.astype(np.float32)) * (1.0 / np.sqrt(var + EPS)).astype(np.float32)
    y *= gamma[:, None, None, :]
    return y if beta is None else y + beta[:, None, None, :]


def forward(params: dict, images: np.ndarray, style_w: np.ndarray, knot_w: np.ndarray,
            config: NetConfig, tile: int) -> np.ndarray:  # fmt: skip
    """The network (:class:`~jaxnst.feedforward.network.TransformNet`) on (N, H, W, 3) images
    in [0, 1], H and W multiples of 4, stage by stage in tiles; (N, H, W, 3) in [0, 1]."""
    p = jax.tree.map(np.asarray, params)

    def affine(name: str) -> tuple[np.ndarray, np.ndarray | None]:
        g = np.einsum("ns,nk,skc->nc", style_w, knot_w, p[name]["gamma"])
        b = p[name].get("beta")
        return g, None if b is None else np.einsum("ns,nk,skc->nc", style_w, knot_w, b)

    def stage(h, conv, norm, stride=1, up=1, relu=True):
        y = _norm(conv_stage(h, p[conv]["kernel"], stride, up, tile), *affine(norm))
        return np.maximum(y, 0.0) if relu else y

    h = np.asarray(images, np.float32) * 2.0 - 1.0
    h = stage(h, "c1", "n1")
    h = stage(h, "d1", "n2", stride=2)
    h = stage(h, "d2", "n3", stride=2)
    for i in range(config.residual_blocks):
        r = stage(h, f"r{i}a", f"rn{i}a")
        h = h + stage(r, f"r{i}b", f"rn{i}b", relu=False)
    h = stage(h, "u0", "un0", up=2)
    h = stage(h, "u1", "un1", up=2)
    out = conv_stage(h, p["out"]["kernel"], 1, 1, tile) + p["out"]["bias"]
    return (np.tanh(out) + 1.0) * 0.5
