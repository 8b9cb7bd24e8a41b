"""Guided Gram matrices (Gatys et al. 2017, spatial control; Luan et al. 2017's label-guided
style): region ``r`` of the image matches a Gram of its own, each weighted by a mask.

The definition, for (H, W, C) activations ``f`` and a mask ``m`` (H, W) in [0, 1]:
``G = sum_p (m_p f_p)(m_p f_p)^T / sum_p m_p^2``. Computed naively it costs one full Gram per
region, forward and backward, however small the region. Label masks partition the image: at
conv1_1 each position is in one region, deeper (masks average-pooled like VGG19) only the cells
on a boundary are in two or more. :func:`region_index` lists, once per problem, the positions
where each region's mask is above 0; :func:`guided_layer_loss` then gathers them and takes each
region's Gram over its own positions only: all R Grams for about the price of one. DPST's
example 1 (4 regions, 384x240 px), the five style layers' value and gradient on our CPU: 0.08 s
gathered, the plain Gram 0.06 s, ``vmap`` over the regions (as before) 0.6-1.3 s; a whole
evaluation as the descent compiles it 0.81 s, Gatys' 0.79, 1.07 before (docs/site/photoreal.md).
Soft masks that cover most of the image (content masks drawn as gradients) keep the dense form,
one region after another with the one-product backward of :func:`outer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

# Gather the positions when the regions' supports add up to at most this share of R full images
# (labels: 1.0-1.35 of one image); above it the dense products cost little more than the gather.
SPARSE_SHARE = 0.75


@jax.custom_vjp
def outer(x: Array) -> Array:
    """(N, C) rows -> (C, C) ``x^T x``; the gradient in one product, ``x (D + D^T)``, where
    autodiff emits two."""
    return x.T @ x


def _outer_fwd(x):
    return x.T @ x, x


def _outer_bwd(x, d):
    return (x @ (d + d.T),)


outer.defvjp(_outer_fwd, _outer_bwd)


def _rows(f: Array) -> Array:
    """(H, W, C) activations -> (H W, C) rows in float32 (or wider, as :mod:`losses`' ``_f32``)."""
    h, w, c = f.shape
    return f.reshape(h * w, c).astype(jnp.promote_types(f.dtype, jnp.float32))


def guided_gram(f: Array, m: Array) -> Array:
    """Gram of (H, W, C) activations weighted by a guidance mask (H, W) in [0, 1], averaged over the
    mask's weight (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer")."""
    h, w, _ = f.shape
    x = _rows(f) * m.reshape(h * w, 1)
    return outer(x) / jnp.maximum(jnp.sum(m * m), 1e-8)


class Regions(NamedTuple):
    """One layer's region supports (:func:`region_index`), P = H_l W_l positions.

    at: (S,) int32 each region's positions (flat, row-major), region after region.
    weight: R arrays (S_r,) float32, the mask at those positions (their shapes split ``at``).
    inverse: (K, P) int32 each position's places in ``at``, K the most regions one position is
        in, S where it is in fewer: the gradient gathers through it instead of scattering (the
        five layers' value and gradient at 384x240 px: 83 -> 72 ms on our CPU).
    """

    at: Array
    weight: tuple[Array, ...]
    inverse: Array


def region_index(masks: Mapping[str, Any]) -> dict[str, Regions]:
    """{layer: :class:`Regions`} for each (R, H_l, W_l) mask stack of ``masks``: where each
    region's mask is above 0. Computed once from concrete masks (NumPy); a layer whose supports
    exceed :data:`SPARSE_SHARE` of R images, or masks being traced, gets no entry (the dense
    form). The supports' sizes are shapes: a program is compiled for them."""
    out = {}
    for name, m in masks.items():
        if isinstance(m, jax.core.Tracer):
            return {}
        m = np.asarray(m, np.float32)
        m = m.reshape(m.shape[0], -1)
        on = m > 0
        if on.sum() > SPARSE_SHARE * m.size:
            continue
        at = np.concatenate([np.flatnonzero(o) for o in on])
        count = np.bincount(at, minlength=m.shape[1])
        order = np.argsort(at, kind="stable")
        rank = np.arange(at.size) - (np.cumsum(count) - count)[at[order]]
        inverse = np.full((max(int(count.max()), 1), m.shape[1]), at.size, np.int32)
        inverse[rank, at[order]] = order
        weight = tuple(jnp.asarray(r[o]) for r, o in zip(m, on))
        out[name] = Regions(jnp.asarray(at, jnp.int32), weight, jnp.asarray(inverse))
    return out


@jax.custom_vjp
def _gather(x: Array, at: Array, inverse: Array) -> Array:
    """``x[at]`` for (P, C) rows; its gradient sums each position's places through ``inverse``."""
    return x[at]


def _gather_fwd(x, at, inverse):
    return x[at], inverse


def _gather_bwd(inverse, dy):
    dy = jnp.concatenate([dy, jnp.zeros((1, dy.shape[1]), dy.dtype)])  # row S: nothing
    return sum(dy[inverse[k]] for k in range(inverse.shape[0])), None, None


_gather.defvjp(_gather_fwd, _gather_bwd)


def region_grams(f: Array, masks: Array, index: Regions | None = None) -> Array:
    """(R, C, C) the guided Gram of each region of (H, W, C) activations ``f``: ``masks`` (R, H,
    W), and ``index`` that layer's entry of :func:`region_index` (None: the dense form)."""
    if index is None:
        return jnp.stack([guided_gram(f, m) for m in masks])
    y = _gather(_rows(f), index.at, index.inverse) * jnp.concatenate(index.weight)[:, None]
    grams, start = [], 0
    for w in index.weight:  # each region's rows, contiguous: static slices
        n = w.shape[0]
        grams.append(outer(y[start : start + n]) / jnp.maximum(jnp.sum(w * w), 1e-8))
        start += n
    return jnp.stack(grams)


def guided_layer_loss(f: Array, grams: Array, masks: Array, index: Any = None) -> Array:
    """One layer's guided style term: sum over regions of ``sum((G_r - A_r)^2) / (4 C^2)``;
    ``grams`` (R, C, C) the targets, ``masks`` (R, H, W), ``index`` as :func:`region_grams`'."""
    g = region_grams(f, masks, index)
    c = g.shape[-1]
    return jnp.sum((g - grams) ** 2) / (4.0 * c * c)
