"""Label-guided style (Deep Photo Style Transfer, Luan et al. 2017): colour-coded segmentation
images of the content and the style, each flat colour one region, turned into mask pairs for the
guided Gram matrices (:func:`jaxnst.loss.losses.guided_style_loss`).

In: two (H, W, 3) label images (any dtype: 8-bit or float in [0, 1]) and the sizes the content
and style are optimised at. Out: :class:`LabelMasks`, one content mask and one style mask per
colour present on both sides, and one line naming the colours left out. A colour is left out when
it is absent from either side, covers fewer than :data:`MIN_PIXELS` pixels on either side after
resizing, or its shares of the two images are more than :data:`MAX_AREA_RATIO` apart. DPST's code
gave such labels zero targets and still computed the Grams of all nine of its colours at every
layer; here only the regions kept cost anything.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import losses, matting, recolour
from jaxnst.model import vgg
from jaxnst.pipeline.targets import _features

MAX_COLOURS = 32  # more distinct colours than this: a photo or a lossy (JPEG) file, not labels
MIN_PIXELS = 64  # an 8x8 patch: one cell at conv4_1 (1/8 of the image); smaller regions are noise
MAX_AREA_RATIO = 100.0  # the bound on how far apart a region's two shares may be
# photoreal_adapt: a recoloured start leaving more than this share of its local detail unexplained
# gets a higher photoreal weight (DPST's published results leave 0.015-0.031 at 384 px)
ADAPT_SHARE = 0.02


class LabelMasks(NamedTuple):
    """content: (R, H, W) float32 masks in {0, 1}; style: (R, H_s, W_s); colours: the R kept
    (r, g, b) colours in 8 bits; left_out: one line naming each colour left out and why, or None."""

    content: np.ndarray
    style: np.ndarray
    colours: tuple[tuple[int, int, int], ...]
    left_out: str | None


def label_masks(
    content_labels: Any,
    style_labels: Any,
    content_shape: tuple[int, int],
    style_shape: tuple[int, int],
) -> LabelMasks:
    """The mask pairs of the colours both label images share (see the module docstring).

    content_labels, style_labels: (H, W, 3) or (H, W, 4) arrays (alpha ignored), resized with
    nearest neighbours to ``content_shape`` and ``style_shape`` (H, W) when their size differs.
    ValueError with one line when either is not a colour-coded image (more than
    :data:`MAX_COLOURS` colours) or no colour is left to guide the style.
    """
    c = _codes(content_labels, content_shape, "content_labels")
    s = _codes(style_labels, style_shape, "style_labels")
    cc, cn = np.unique(c, return_counts=True)
    sc, sn = np.unique(s, return_counts=True)
    c_count, s_count = dict(zip(cc.tolist(), cn.tolist())), dict(zip(sc.tolist(), sn.tolist()))
    kept, why = [], []
    for code in sorted(set(c_count) | set(s_count)):
        reason = _left_out(code, c_count, s_count, c.size, s.size)
        if reason:
            why.append(f"{_hex(code)} ({reason})")
        else:
            kept.append(code)
    if not kept:
        raise ValueError(
            "content_labels and style_labels share no usable colour (" + "; ".join(why) + ")"
        )
    note = None
    if why:
        note = f"labels left out: {'; '.join(why)}; guiding {len(kept)} region(s)"
    return LabelMasks(
        np.stack([(c == k).astype(np.float32) for k in kept]),
        np.stack([(s == k).astype(np.float32) for k in kept]),
        tuple(_rgb(k) for k in kept),
        note,
    )


def _left_out(code: int, c_count: dict, s_count: dict, c_size: int, s_size: int) -> str | None:
    nc, ns = c_count.get(code, 0), s_count.get(code, 0)
    if nc == 0 or ns == 0:
        return f"not in the {'content' if nc == 0 else 'style'} labels"
    if min(nc, ns) < MIN_PIXELS:
        return f"{min(nc, ns)} px in the {'content' if nc < ns else 'style'}, under {MIN_PIXELS}"
    ratio = max(nc / c_size, ns / s_size) / min(nc / c_size, ns / s_size)
    if ratio > MAX_AREA_RATIO:
        return f"areas {ratio:.0f}x apart, over {MAX_AREA_RATIO:.0f}x"
    return None


def _codes(labels: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    """(H, W) int32 colour codes (0xRRGGBB in 8 bits) of a label image at ``shape``."""
    a = np.asarray(labels)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or a.size == 0:
        raise ValueError(f"{name} must be an (H, W, 3) colour-coded image, got shape {a.shape}")
    a = a[..., :3]
    if np.issubdtype(a.dtype, np.floating):
        a = np.round(np.clip(a, 0.0, 1.0) * 255)
    a = a.astype(np.int32)
    codes = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    n = len(np.unique(codes))
    if n > MAX_COLOURS:
        raise ValueError(
            f"{name} has {n} distinct colours; expected a colour-coded segmentation (at most "
            f"{MAX_COLOURS} flat colours, saved without loss, e.g. as PNG)"
        )
    h, w = codes.shape
    if (h, w) != tuple(shape):  # nearest neighbour: a resized label is still one of the colours
        rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(int), h - 1)
        cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(int), w - 1)
        codes = codes[rows[:, None], cols[None, :]]
    return codes


def _rgb(code: int) -> tuple[int, int, int]:
    return (code >> 16) & 255, (code >> 8) & 255, code & 255


def _hex(code: int) -> str:
    return f"#{code:06x}"


def resize_masks(masks: Any, shape: tuple[int, ...]) -> jax.Array:
    """(R, H, W) masks at (H', W') by nearest neighbours (a style resized by ``style_scale``)."""
    m = jnp.asarray(masks, jnp.float32)
    if m.shape[1:] == tuple(shape):
        return m
    return jax.image.resize(m, (m.shape[0], *shape), "nearest")


def region_grams(style: jax.Array, masks: dict, variables: dict, pooling: str) -> dict:
    """{layer: (R, C, C)} the guided Gram of each of the style's regions (``masks``: {layer:
    (R, H_l, W_l)}, :func:`jaxnst.pipeline.prepare.layer_masks`), from one forward pass of the
    style; normalised as the output's (:func:`jaxnst.loss.losses.guided_gram`), so a region
    matches its own statistics whatever its area."""
    layers = tuple(masks)
    feats = _features(style, variables, layers, pooling, vgg.channels_of(variables))
    each = jax.jit(jax.vmap(losses.guided_gram, in_axes=(None, 0)))  # one program a layer
    return {n: each(feats[n], masks[n]) for n in layers}


def guide(
    content: Any, style: Any, content_labels: Any, style_labels: Any, masks: Any, o: Any
) -> LabelMasks | None:
    """:func:`label_masks` for :func:`jaxnst.stylize`'s ``content_labels`` and ``style_labels``,
    after checking what they combine with (ValueError, one line); None without labels."""
    if content_labels is None and style_labels is None:
        return None
    if content_labels is None or style_labels is None:
        raise ValueError("content_labels and style_labels go together; give both or neither")
    if masks is not None:
        raise ValueError("content_labels replace content_masks; give one or the other")
    if isinstance(style, (list, tuple)) or np.ndim(content) != 3:
        raise ValueError("content_labels guide one content image and one style image")
    if o.style_loss not in ("gram", "nnst"):
        raise ValueError(
            "content_labels need the Gram or the NNST style loss (style_loss='gram' or 'nnst'), "
            f"got style_loss={o.style_loss!r}"
        )
    return label_masks(content_labels, style_labels, np.shape(content)[:2], np.shape(style)[:2])


def paired(guide: LabelMasks | None, content_masks: Any, style_masks: Any, style: Any) -> tuple:
    """(content masks, style masks) of a run: the labels' (``guide``), else the ones given,
    checked by :func:`check_paired` when ``style_masks`` are given."""
    if guide is not None:
        return guide.content, guide.style
    if style_masks is not None:
        check_paired(content_masks, style_masks, style)
    return content_masks, style_masks


def check_paired(content_masks: Any, style_masks: Any, style: Any) -> None:
    """``style_masks`` given as masks (not labels): ValueError, one line, unless they are
    (R, H_s, W_s) at the one style's size with ``content_masks``' R regions."""
    if content_masks is None or isinstance(style, (list, tuple)):
        raise ValueError("style_masks pair regions of one style with content_masks; give both")
    r, sm = np.shape(content_masks)[0] if np.ndim(content_masks) == 3 else 1, np.shape(style_masks)
    if len(sm) != 3 or sm[0] != r or sm[1:] != np.shape(style)[:2]:
        raise ValueError(
            f"style_masks must be ({r}, H, W) at the style's size {np.shape(style)[:2]}, got {sm}"
        )


def noted(result: Any, guide: LabelMasks | None, note: str | None = None) -> Any:
    """A :class:`~jaxnst.pipeline.collect.Result` with the labels left out noted (if any), and
    ``note`` (:func:`recoloured`'s) added to its ``notes``."""
    if note:
        result = dataclasses.replace(result, notes=(*result.notes, note))
    return result if guide is None else dataclasses.replace(result, labels_left_out=guide.left_out)


def recoloured(
    content: Any, style: Any, guide: LabelMasks | None, o: Any
) -> tuple[Any, str | None]:
    """``init="recolour"``: the options with ``init`` the content recoloured to the style, per
    label region with labels (:func:`jaxnst.loss.recolour.recolour`), and with
    ``photoreal_adapt`` ``photoreal_weight`` raised by :func:`adapted`; other options unchanged.
    Also the line saying the weight was raised, or None."""
    if not (isinstance(o.init, str) and o.init == "recolour"):
        return o, None
    if isinstance(style, (list, tuple)) or np.ndim(content) != 3:
        raise ValueError("init='recolour' takes one content image and one style image")
    masks = (None, None) if guide is None else (guide.content, guide.style)
    start = recolour.recolour(content, style, *masks)
    o = dataclasses.replace(o, init=start)
    return adapted(content, start, o) if o.photoreal_adapt else (o, None)


def adapted(content: Any, start: Any, o: Any) -> tuple[Any, str | None]:
    """``photoreal_adapt``: each ``photoreal_weight`` times max(1, s / :data:`ADAPT_SHARE`)^2, s
    the start's unexplained share (:func:`jaxnst.loss.matting.unexplained_share`): a start less
    photographic than DPST's own results needs a stronger pull to the content's Laplacian. The
    options, and one line saying what was raised (None where s is at most ADAPT_SHARE, or where
    every weight is 0: there is nothing to raise)."""
    w = o.photoreal_weight
    if not np.any(np.atleast_1d(w)):
        return o, None
    s = float(matting.unexplained_share(np.asarray(content, np.float32), start))
    factor = max(1.0, s / ADAPT_SHARE) ** 2
    if factor == 1.0:
        return o, None
    new = tuple(v * factor for v in w) if isinstance(w, tuple) else w * factor
    show = lambda v: ", ".join(f"{x:.3g}" for x in np.atleast_1d(v))  # noqa: E731
    return dataclasses.replace(o, photoreal_weight=new), (
        f"photoreal weight {show(new)}: the recoloured start leaves {s:.3f} of its local detail "
        f"unexplained (above {ADAPT_SHARE}), so photoreal_adapt raised {show(w)} by "
        f"({s:.3f} / {ADAPT_SHARE})^2; a --photoreal-weight given is kept as given"
    )
