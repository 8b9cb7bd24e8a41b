"""Stage 2 of the pipeline, **prepare**: the user's arrays in, a :class:`Problem` out.

In: content (H, W, 3) or (C, H, W, 3) and style image(s) as float RGB in [0, 1], validated
:class:`~jaxnst.pipeline.options.Options`, optional VGG19 variables and content masks. Out: a
:class:`Problem`: the contents and styles after colour handling and style rescaling, the masks, the
VGG19 variables and their digest, the layers the objective needs and the targets (content
activations per content image, style Grams or moments) computed once, outside any loop or vmap.
Also :func:`features`, the public way to read VGG19's activations.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import color, guided, losses, matting, matting_tiles, neighbours, sampled, tiled
from jaxnst.model import vgg
from jaxnst.pipeline import labels
from jaxnst.pipeline.checks import check_mask_terms, check_masks
from jaxnst.pipeline.options import MIN_SIDE, Options
from jaxnst.pipeline.targets import _features, _style_grams, layer_masks, nnst_final, nnst_targets


class Problem(NamedTuple):
    """Everything about one stylization that does not depend on how the batch is laid out."""

    options: Options
    contents: jax.Array  # (C, H, W, 3) float32, after colour handling (grey: luminance)
    original_contents: jax.Array  # (C, H, W, 3) float32 as given (for colour restoration)
    styles: list[jax.Array]  # (H_s, W_s, 3) each, after rescaling and colour handling
    masks: jax.Array | None  # (R, H, W) content masks (spatial control), or None
    targets: losses.Targets  # content activations with a leading (C,) axis; style targets
    variables: dict  # VGG19 Flax variables {'params': {layer: {kernel, bias}}}
    digest: str  # the weights' digest ("custom" for caller-supplied variables)
    layers: tuple[str, ...]  # every layer the objective reads, in network order
    many_contents: bool  # content was given as (C, H, W, 3)


def prepare(
    content: Any,
    style: Any,
    o: Options,
    *,
    variables: dict | None = None,
    content_masks: Any = None,
    style_masks: Any = None,
) -> Problem:
    """Validate the arrays, apply style scale and colour preservation, load the weights and compute
    the targets. Raises ValueError with a one-line message for bad shapes, sizes or dtypes.
    ``style_masks`` (R, H_s, W_s), with one style: region r of the content takes the Grams of the
    style's region r (label-guided style, :mod:`jaxnst.pipeline.labels`)."""
    content = _host_or_device(content)
    many_contents = content.ndim == 4
    contents = as_images(content if many_contents else content[None], "content")
    styles = (
        [as_image(x, f"style {i + 1}") for i, x in enumerate(style)]
        if isinstance(style, (list, tuple))
        else [as_image(style, "style")]
    )
    if o.style_blend_weights is not None and len(o.style_blend_weights) != len(styles):
        raise ValueError(
            f"style_blend_weights has {len(o.style_blend_weights)} values for "
            f"{len(styles)} style images"
        )
    if o.style_scale is not None:
        side = o.style_scale * max(contents.shape[1:3])
        styles = [rescale(x, side) for x in styles]
    original_contents = contents
    contents, styles = _colour(contents, styles, o)
    variables, digest = default_variables(variables)
    layers = tuple(n for n in vgg.LAYERS if n in objective_layers(o))
    for n in layers:
        if n not in variables["params"]:
            raise ValueError(f"layer {n!r} is not in these weights")
    paired = style_masks is not None  # one style, a region of it for each content mask
    masks = _check_masks(content_masks, contents, [0] * len(style_masks) if paired else styles, o)
    sized = labels.resize_masks(style_masks, styles[0].shape[:2]) if paired else None
    targets = prepare_targets(
        contents,
        styles,
        variables,
        o,
        o.style_blend_weights,
        masks=None if paired else masks,
        nnst_masks=(masks, sized) if paired else None,
    )
    if paired and targets.grams:
        ls = tuple(targets.grams)
        sm = layer_masks(cast(jax.Array, sized), ls)
        grams = labels.region_grams(styles[0], sm, variables, o.pooling)
        lm = layer_masks(cast(jax.Array, masks), ls)
        targets = targets._replace(grams=grams, masks=lm, regions=guided.region_index(lm))
    return Problem(
        o,
        contents,
        original_contents,
        styles,
        masks,
        targets,
        variables,
        digest,
        layers,
        many_contents,
    )


def objective_layers(o: Options) -> set[str]:
    """The layers the objective reads: the content and style layers of the terms in use, and
    STROTSS's (NNST's) hypercolumn layers for the sampled (nnst) terms."""
    out = set(o.content_layers if o.content_loss == "mse" else ())
    out |= set(o.style_layers if o.style_loss in ("gram", "wasserstein") else ())
    if o.content_loss == "self_similarity" or o.style_loss == "remd":
        out |= set(sampled.LAYERS)
    if "nnst" in (o.content_loss, o.style_loss):
        out |= set(neighbours.LAYERS)
    return out


def _colour(
    contents: jax.Array, styles: list[jax.Array], o: Options
) -> tuple[jax.Array, list[jax.Array]]:
    """Colour preservation (Gatys et al. 2017): give the styles the content's colours
    (histogram), or transfer on luminance alone (the chroma comes back in the collect stage)."""
    if o.preserve_color == "histogram":
        styles = [color.match_color_histogram(x, contents[0]) for x in styles]
    elif o.preserve_color == "luminance":
        c_luma = color.luma(contents)
        styles = [color.grey(color.match_luminance(color.luma(x), c_luma[0])) for x in styles]
        contents = color.grey(c_luma)
    return contents, styles


def _check_masks(masks: Any, contents: jax.Array, styles: list, o: Options) -> jax.Array | None:
    if masks is None:
        return None
    check_masks(o)
    masks = jnp.asarray(masks, jnp.float32)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[1:] != contents.shape[1:3]:
        raise ValueError(
            f"content_masks must be (R, H, W) with the content's H, W "
            f"{tuple(contents.shape[1:3])}, got {tuple(masks.shape)}"
        )
    if masks.shape[0] != len(styles):
        raise ValueError(
            f"content_masks has {masks.shape[0]} regions for "
            f"{len(styles)} style images (one style per region)"
        )
    check_mask_terms(o, masks.shape[0])
    return masks


# --------------------------------------------------------------------------- validation


def as_images(x: Any, name: str) -> jax.Array:
    """(N, H, W, 3) float images, checked like :func:`as_image`; returned as float32."""
    a = _host_or_device(x)
    if a.ndim != 4 or a.shape[0] < 1:
        raise ValueError(f"{name} must be (H, W, 3) or (N, H, W, 3), got shape {tuple(a.shape)}")
    _check_image(a.shape[1:], a.dtype, name)
    check_range(a, name)
    return _float32(a)


def as_image(x: Any, name: str) -> jax.Array:
    """An (H, W, 3) float RGB image of at least MIN_SIDE px per side, as float32; ValueError
    naming ``name`` otherwise."""
    a = _host_or_device(x)
    _check_image(a.shape, a.dtype, name)
    check_range(a, name)
    return _float32(a)


# Host arrays are checked with NumPy and sent to the device once, as float32: every eager jnp
# operation on the way (asarray, min, max, [None], astype) is an XLA program of its own, each
# traced, lowered and compiled (or looked up in the persistent cache) before the descent starts.


def _host_or_device(x: Any) -> Any:
    """A jax.Array (or tracer) as it is; anything else as a NumPy array."""
    return x if isinstance(x, jax.Array) else np.asarray(x)


def _float32(a: Any) -> jax.Array:
    if isinstance(a, jax.Array):
        return a.astype(jnp.float32)
    return jax.device_put(np.array(a, np.float32))  # a copy: the caller may reuse its array


def _check_image(shape: tuple[int, ...], dtype: Any, name: str) -> None:
    if len(shape) != 3 or shape[-1] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) RGB array, got shape {tuple(shape)}")
    if min(shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"{name} is {shape[1]}x{shape[0]} px; VGG19 needs at least {MIN_SIDE} px per side"
        )
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"{name} must be float RGB in [0, 1], got dtype {dtype}")


RANGE_TOLERANCE = 1e-3  # resampling (Lanczos) and colour conversions overshoot [0, 1] a little


def check_range(a: Any, name: str) -> None:
    """Refuse non-finite values and values outside [0, 1] (give or take
    :data:`RANGE_TOLERANCE`) with a one-line ValueError naming ``name``. Traced arrays (inside a
    caller's ``jit``) are not checked: their values are unknown."""
    if isinstance(a, jax.core.Tracer) or a.size == 0:
        return
    if isinstance(a, jax.Array):
        lo, hi = (float(v) for v in jax.device_get(_min_max(a)))
    else:
        lo, hi = float(np.min(a)), float(np.max(a))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} has non-finite values (NaN or inf); expected floats in [0, 1]")
    if hi > 1.0 + RANGE_TOLERANCE:
        raise ValueError(
            f"{name} has values up to {round(hi, 4)}; expected floats in [0, 1] "
            "(divide an 8-bit image by 255)"
        )
    if lo < -RANGE_TOLERANCE:
        raise ValueError(f"{name} has values down to {round(lo, 4)}; expected floats in [0, 1]")


@jax.jit
def _min_max(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.min(a), jnp.max(a)


def rescale(image: jax.Array, long_side: float) -> jax.Array:
    """Lanczos resize of an (H, W, 3) image to ``long_side`` px on its longer side (at least
    MIN_SIDE on the shorter), clipped to [0, 1]."""
    h, w = image.shape[:2]
    s = max(long_side / max(h, w), MIN_SIDE / min(h, w))
    shape = (max(1, round(h * s)), max(1, round(w * s)), 3)
    return jnp.clip(jax.image.resize(image, shape, "lanczos3"), 0.0, 1.0)


# --------------------------------------------------------------------------- network and targets


def default_variables(variables: dict | None) -> tuple[dict, str]:
    """The caller's variables (digest "custom"), or the verified VGG19 weights and their digest."""
    if variables is not None:
        return variables, "custom"
    from jaxnst.model import weights

    return weights.load_variables()


def features(
    image: Any,
    layers: Sequence[str] | None = None,
    *,
    variables: dict | None = None,
    pooling: str = "max",
) -> dict[str, jax.Array]:
    """VGG19 post-ReLU activations of ``image``.

    image: (H, W, 3) or (N, H, W, 3) float RGB in [0, 1].
    layers: names like ``"conv4_2"``; default: every layer the weights hold.
    Returns ``{name: (H', W', C)}`` (or (N, H', W', C)); only layers up to the deepest requested are
    computed. ``variables`` defaults to the verified VGG19 weights (fetched on first use).
    """
    variables, _ = default_variables(variables)
    if layers is None:
        layers = tuple(n for n in vgg.LAYERS if n in variables["params"])
    layers = vgg.check_layers(layers)
    missing = [n for n in layers if n not in variables["params"]]
    if missing:
        raise ValueError(
            f"layer {missing[0]!r} is not in these weights (they stop at "
            f"{max(variables['params'], key=vgg.LAYERS.index)})"
        )
    return _features(
        jnp.asarray(image, jnp.float32), variables, layers, pooling, vgg.channels_of(variables)
    )


def _blend(w: np.ndarray, xs: list[Any]) -> Any:
    """sum_i w_i xs_i; one style (w = [1]) is its own target, with no program to compute it."""
    if len(xs) == 1:
        return xs[0]
    return functools.reduce(lambda a, b: a + b, (float(wi) * x for wi, x in zip(w, xs)))


def _target_programs(options: Options, channels: tuple[int, ...]) -> tuple[Any, Any]:
    """(features(image, variables, layers), grams(image, variables, layers)) for the targets:
    of the whole image, or tile by tile when the descent is tiled (a print-size image's forward
    pass alone would need more memory than the tiled descent: see :mod:`jaxnst.loss.tiled`)."""
    if options.tile:
        t = options.tile

        def tiled_features(im: Any, v: dict, ls: tuple[str, ...]) -> dict:
            im = jnp.asarray(im)
            if im.ndim == 3:
                return tiled.features(im, v, ls, options.pooling, t)
            each = [tiled.features(x, v, ls, options.pooling, t) for x in im]  # (N, H, W, 3)
            return {n: jnp.stack([f[n] for f in each]) for n in ls}

        return (
            tiled_features,
            lambda im, v, ls: tiled.grams(jnp.asarray(im), v, ls, options.pooling, t),
        )
    return (
        lambda im, v, ls: _features(im, v, ls, options.pooling, channels),
        lambda im, v, ls: _style_grams(im, v, ls, options.pooling, channels),
    )


def prepare_targets(
    content: jax.Array,
    style: Any,
    variables: dict,
    options: Options,
    blend: Sequence[float] | None = None,
    masks: Any = None,
    nnst_masks: tuple | None = None,
) -> losses.Targets:
    """Content activations and style Grams, computed once (outside any loop or vmap).
    ``nnst_masks`` (content masks, style masks): label regions paired for NNST's search.

    ``style`` may be a list of images (any sizes); their Grams are averaged with ``blend``
    (normalised): the weighted sum of per-style losses up to a constant (neural-style's blend)."""
    channels = vgg.channels_of(variables)
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    w = np.ones(len(styles)) if blend is None else np.asarray(blend, np.float64)
    w = w / w.sum()
    layers = tuple(options.style_layers) if options.style_loss in ("gram", "wasserstein") else ()
    features_of, grams_of = _target_programs(options, channels)
    content_layers = tuple(options.content_layers) if options.content_loss == "mse" else ()
    cf = features_of(content, variables, content_layers) if content_layers else {}
    grams: dict[str, Any] = {}
    moments: dict[str, Any] = {}
    lmasks = {}
    if layers and options.style_loss == "gram" and masks is None:
        per_style = [grams_of(st, variables, layers) for st in styles]
        grams = {n: _blend(w, [g[n] for g in per_style]) for n in layers}
    if layers and options.style_loss != "gram":
        stats = [_features(st, variables, layers, options.pooling, channels) for st in styles]
        for n in layers:
            mc = [losses.mean_cov(f[n]) for f in stats]
            mu, cov = _blend(w, [m[0] for m in mc]), _blend(w, [m[1] for m in mc])
            moments[n] = (mu, cov, losses._psd_sqrt(cov))
    if masks is not None and layers:
        # Spatial control: region r takes style r's Gram; blending does not apply. (Each layer
        # from a program that stops there, as before: features to conv5_1 differ in the last bit.)
        grams = {
            n: jnp.stack(
                [_style_grams(st, variables, (n,), options.pooling, channels)[n] for st in styles]
            )
            for n in layers
        }
        lmasks = layer_masks(masks, layers)
    return losses.Targets(
        content={n: cf[n] for n in content_layers},
        grams=grams,
        moments=moments,
        masks=lmasks,
        regions=guided.region_index(lmasks),
        sampled=_sampled(content, styles, w, variables, options, masks),
        matting=photoreal_stats(content, options),
        nnst=nnst_targets(content, styles, variables, options, *(nnst_masks or (masks, None))),
        nnst_final=nnst_final(styles, variables, options),
    )


def photoreal_stats(contents: jax.Array, o: Options) -> Any:
    """The Matting Laplacian's statistics of each content (N, H, W, 3) when any member's
    ``photoreal_weight`` is above 0 (:mod:`jaxnst.loss.matting`; with ``tile``, the same values
    tile by tile), else None."""
    if not any(v > 0 for v in np.atleast_1d(o.photoreal_weight)):
        return None
    f = functools.partial(matting_tiles.stats, tile=o.tile) if o.tile else matting.matting_stats
    return jax.jit(jax.vmap(f))(jnp.asarray(contents, jnp.float32))


def _sampled(contents, styles, w, variables, o: Options, masks: Any = None) -> Any:
    """STROTSS's targets (:mod:`jaxnst.loss.sampled`) when its terms are in use, else None."""
    c_on, s_on = o.content_loss == "self_similarity", o.style_loss == "remd"
    if not (c_on or s_on):
        return None
    channels = vgg.channels_of(variables)

    def feats(image: Any) -> dict:
        return _features(image, variables, sampled.LAYERS, o.pooling, channels)

    return sampled.make(contents, styles, w, feats, o.style_samples, c_on, s_on, masks)
