"""Losses as pure functions of ONE image's features. Batch with ``jax.vmap``.

Normalisation, and how it relates to Gatys et al. (2016), with N_l channels and M_l = H_l * W_l
positions at layer l:

- :func:`gram` is ``F^T F / M`` (the mean over positions), so Gram entries do not grow with the
  image size. The paper uses the unnormalised ``F^T F``.
- :func:`style_layer_loss` is ``sum((G - A)^2) / (4 N^2)`` on our Grams, which equals the paper's
  ``1 / (4 N^2 M^2) sum((G_paper - A_paper)^2)`` exactly.
- :func:`content_loss` is ``sum((F - P)^2) / (2 N M)``, the paper's ``1/2 sum((F - P)^2)`` divided
  by the number of elements. Deviation: the paper's sum grows with the image area while its style
  term does not, so its best alpha/beta changes with size; the mean keeps our default weights valid
  at every size.
- :func:`tv_loss` (not in the paper; Mahendran & Vedaldi's smoothness prior with beta = 2) is the
  mean squared difference between neighbouring pixels, over both directions and all channels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp

from jaxnst.loss import guided, matting, neighbours, sampled

Array = jax.Array


def _f32(x: Array) -> Array:
    """``x`` in float32, or wider where it already is (float64 under ``jax_enable_x64``: the
    gradient checks in float64, tests/test_objective.py); bfloat16 activations are widened."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


@jax.custom_vjp
def gram(f: Array) -> Array:
    """(H, W, C) activations -> (C, C) Gram matrix, averaged over the H * W positions. float32.

    Custom VJP: the gradient of ``X^T X`` is ``X (D + D^T)``, one matrix product where autodiff
    emits two (``X D`` and ``X D^T``).
    """
    h, w, c = f.shape
    x = _f32(f.reshape(h * w, c))
    return (x.T @ x) / (h * w)


def _gram_fwd(f):
    return gram(f), f


def _gram_bwd(f, d):
    h, w, c = f.shape
    x = _f32(f.reshape(h * w, c))
    dx = x @ ((d + d.T) / (h * w))
    return (dx.reshape(h, w, c).astype(f.dtype),)


gram.defvjp(_gram_fwd, _gram_bwd)


def content_loss(f: Array, p: Array) -> Array:
    """``sum((f - p)^2) / (2 * f.size)`` for (H, W, C) activations ``f`` and target ``p``."""
    d = _f32(f - p)
    return 0.5 * jnp.mean(d * d)


def style_layer_loss(f: Array, a: Array) -> Array:
    """Paper's E_l for (H, W, C) activations ``f`` and target Gram ``a`` (C, C), see module doc."""
    g = gram(f)
    c = g.shape[0]
    return jnp.sum((g - a) ** 2) / (4.0 * c * c)


def style_loss(
    feats: Mapping[str, Array],
    target_grams: Mapping[str, Array],
    layer_weights: Mapping[str, float] | None = None,
) -> Array:
    """Sum over the target's layers of w_l * E_l; w_l = 1 / (number of layers) by default (the
    paper's 1/5 for five layers)."""
    names = sorted(target_grams)
    if layer_weights is None:
        layer_weights = {n: 1.0 / len(names) for n in names}
    return cast(
        Array, sum(layer_weights[n] * style_layer_loss(feats[n], target_grams[n]) for n in names)
    )


def tv_loss(image: Array, wrap: bool = False) -> Array:
    """Mean squared neighbour difference of an (H, W, C) image, both directions summed. ``wrap``:
    the last row and column also neighbour the first ones (a torus: seamless tiles)."""
    if wrap:
        dy, dx = image - jnp.roll(image, 1, axis=0), image - jnp.roll(image, 1, axis=1)
        return jnp.mean(dy * dy) + jnp.mean(dx * dx)
    dy = image[1:, :, :] - image[:-1, :, :]
    dx = image[:, 1:, :] - image[:, :-1, :]
    return jnp.mean(dy * dy) + jnp.mean(dx * dx)


def mean_cov(f: Array) -> tuple[Array, Array]:
    """(H, W, C) -> channel mean (C,) and covariance (C, C) over positions. float32."""
    h, w, c = f.shape
    x = _f32(f.reshape(h * w, c))
    mu = x.mean(0)
    d = x - mu
    return mu, (d.T @ d) / (h * w)


def _psd_sqrt(c: Array) -> Array:
    w, v = jnp.linalg.eigh(c)
    return (v * jnp.sqrt(jnp.maximum(w, 0.0))) @ v.T


def wasserstein_target(f: Array) -> tuple[Array, Array, Array]:
    """What :func:`wasserstein_layer_loss` compares against: (mean, covariance,
    sqrt(covariance))."""
    mu, cov = mean_cov(f)
    return mu, cov, _psd_sqrt(cov)


def wasserstein_layer_loss(
    f: Array, target: tuple[Array, Array, Array], eps: float = 1e-3
) -> Array:
    """Squared 2-Wasserstein distance between Gaussians fitted to ``f`` and to the target, per
    channel: (|mu - mu_t|^2 + tr(S) + tr(S_t) - 2 tr((S_t^1/2 S S_t^1/2)^1/2)) / C.

    Matches mean and covariance (the style loss crowsonkb/style-transfer-pytorch uses) instead of
    the uncentred Gram. ``eps`` keeps the square root's gradient finite for dead channels."""
    mu_t, cov_t, sqrt_t = target
    mu, cov = mean_cov(f)
    c = mu.shape[0]
    m = sqrt_t @ cov @ sqrt_t
    m = 0.5 * (m + m.T)
    tr_sqrt = jnp.sum(jnp.sqrt(jnp.maximum(jnp.linalg.eigvalsh(m), 0.0) + eps))
    d = jnp.sum((mu - mu_t) ** 2) + jnp.trace(cov) + jnp.trace(cov_t) - 2.0 * tr_sqrt
    return d / c


guided_gram = guided.guided_gram


def guided_style_loss(
    feats: Mapping[str, Array],
    grams: Mapping[str, Array],
    masks: Mapping[str, Array],
    index: Mapping[str, Any] | None = None,
) -> Array:
    """Spatial control: region r of the image matches target Gram ``grams[l][r]``.

    grams[l]: (R, C, C) one target per region; masks[l]: (R, H_l, W_l) at the layer's resolution;
    index: :func:`jaxnst.loss.guided.region_index` of the masks (each region's Gram over its own
    positions only; the same values). Per layer: sum over regions of sum((G_r - A_r)^2) / (4 C^2);
    layers averaged as in style_loss.
    """
    index = index or {}
    names = sorted(grams)
    total: Any = 0.0
    for n in names:
        total = total + guided.guided_layer_loss(feats[n], grams[n], masks[n], index.get(n))
    return total / len(names)


class Targets(NamedTuple):
    """What the image is pulled towards: content activations per layer, style Grams per layer,
    and (for the Wasserstein style loss) per-layer (mean, covariance, sqrt(covariance)).

    Video (Ruder et al. 2016): ``warped`` (H, W, 3), the previous stylized frame warped into this
    one, and ``reliability`` (H, W) in [0, 1], the weight c of each pixel (0 where the flow is
    unreliable); one per batch member, like ``content``. None (the default) means no temporal
    term, and the objective is exactly the still-image one."""

    content: dict[str, Array]
    grams: dict[str, Array]
    moments: dict[str, tuple[Array, Array, Array]] = {}
    masks: dict[str, Array] = {}  # spatial control: (R, H_l, W_l) per style layer
    warped: Array | None = None
    reliability: Array | None = None
    sampled: Any = None  # STROTSS's terms: jaxnst.loss.sampled.Sampled, or None
    matting: Any = None  # photorealism: jaxnst.loss.matting's statistics of the content, or None
    nnst: Any = None  # NNST's terms: jaxnst.loss.neighbours.Neighbours, or None
    nnst_final: Any = None  # NNST's final pass: jaxnst.loss.neighbours.Final (shared), or None
    regions: dict = {}  # the masks' supports (jaxnst.loss.guided.region_index): shared


class Weights(NamedTuple):
    """Scalar loss weights (traced, so changing their values never recompiles). ``temporal``
    weighs :func:`temporal_loss` when the targets carry a warped frame (None: no such term);
    ``photoreal`` the Matting Laplacian's energy when they carry its statistics (Luan et al.
    2017, :mod:`jaxnst.loss.matting`)."""

    content: Array
    style: Array
    tv: Array
    temporal: Array | None = None
    photoreal: Array | None = None


def temporal_loss(image: Array, warped: Array, reliability: Array) -> Array:
    """Ruder et al.'s short-term temporal loss: ``mean(c * (x - warped)^2)`` over the H * W * 3
    elements of the (H, W, 3) image, with c = ``reliability`` (H, W) broadcast over channels (the
    paper's 1/D sum, D = W H C)."""
    d = _f32(image - warped)
    return jnp.mean(_f32(reliability)[..., None] * d * d)


def _with_temporal(total: Array, image: Array, targets: Targets, weights: Weights) -> Array:
    """The total plus the terms that have no part of their own: temporal (video) and photoreal.
    Each only when both its targets and its weight are given: without them the total is
    bit-identical to the still-image one."""
    if targets.matting is not None and weights.photoreal is not None:
        total = total + weights.photoreal * matting.matting_energy(targets.matting, _f32(image))
    if targets.warped is None or targets.reliability is None or weights.temporal is None:
        return total
    return total + weights.temporal * temporal_loss(
        _f32(image), targets.warped, targets.reliability
    )


class Parts(NamedTuple):
    total: Array
    content: Array
    style: Array
    tv: Array


def make_targets(
    content_feats: Mapping[str, Array],
    style_feats: Mapping[str, Array],
    content_layers: Sequence[str],
    style_layers: Sequence[str],
) -> Targets:
    return Targets(
        content={n: content_feats[n] for n in content_layers},
        grams={n: gram(style_feats[n]) for n in style_layers},
    )


def objective(
    image: Array, feats: Mapping[str, Array], targets: Targets, weights: Weights, wrap: bool = False
) -> Parts:
    """Weighted objective for one image: content * L_content + style * L_style + tv * L_tv
    (+ temporal * :func:`temporal_loss` for video, + photoreal * the Matting Laplacian's energy;
    they are in ``total`` but have no part of their own).

    Content loss averages over the content layers (one, conv4_2, by default). A zero-sized target
    dict contributes zero, which gives texture synthesis (no content) or reconstruction (no style).
    ``wrap``: the TV term wraps around (seamless tiles, see :func:`tv_loss`).
    """
    lc: Any
    if targets.content:
        lc = sum(content_loss(feats[n], p) for n, p in targets.content.items()) / len(
            targets.content
        )
    else:
        lc = jnp.zeros((), jnp.float32)
    ls: Any
    if targets.grams and targets.masks:
        ls = guided_style_loss(feats, targets.grams, targets.masks, targets.regions)
    elif targets.grams:
        ls = style_loss(feats, targets.grams)
    elif targets.moments:
        ls = sum(wasserstein_layer_loss(feats[n], t) for n, t in targets.moments.items()) / len(
            targets.moments
        )
    else:
        ls = jnp.zeros((), jnp.float32)
    if targets.sampled is not None:  # STROTSS's terms replace the ones they stand for
        c, s = sampled.terms(image, feats, targets.sampled, weights.content)
        lc, ls = (lc if c is None else c), (ls if s is None else s)
    if targets.nnst is not None:  # NNST's terms likewise
        c, s = neighbours.terms(image, feats, targets.nnst, targets.nnst_final)
        lc, ls = (lc if c is None else c), (ls if s is None else s)
    lt = tv_loss(_f32(image), wrap)
    total = weights.content * lc + weights.style * ls + weights.tv * lt
    return Parts(_with_temporal(total, image, targets, weights), lc, ls, lt)


def layer_terms(name: str, f: Array, targets: Targets) -> tuple[Array, Array]:
    """The content and style terms that layer ``name`` (activations ``f``) contributes to
    :func:`objective`, before averaging over layers. Computed next to the activation, these let a
    rematerialised network keep scalars instead of activations (``jaxnst.model.vgg.VGG19``
    ``taps``)."""
    zero = jnp.zeros((), jnp.float32)
    content = content_loss(f, targets.content[name]) if name in targets.content else zero
    if targets.grams and targets.masks:
        if name in targets.grams:
            index = targets.regions.get(name)
            masks = targets.masks[name]
            return content, guided.guided_layer_loss(f, targets.grams[name], masks, index)
    elif targets.grams:
        if name in targets.grams:
            return content, style_layer_loss(f, targets.grams[name])
    elif name in targets.moments:
        return content, wasserstein_layer_loss(f, targets.moments[name])
    return content, zero


def objective_from_terms(
    image: Array,
    terms: Mapping[str, tuple[Array, Array]],
    targets: Targets,
    weights: Weights,
    wrap: bool = False,
) -> Parts:
    """:func:`objective` assembled from per-layer :func:`layer_terms` (same averaging)."""
    zero = jnp.zeros((), jnp.float32)
    lc: Any = (
        sum(terms[n][0] for n in targets.content) / len(targets.content)
        if targets.content
        else zero
    )
    style = sorted(targets.grams or targets.moments)
    ls: Any = sum(terms[n][1] for n in style) / len(style) if style else zero
    lt = tv_loss(_f32(image), wrap)
    total = weights.content * lc + weights.style * ls + weights.tv * lt
    return Parts(_with_temporal(total, image, targets, weights), lc, ls, lt)
