"""The checks behind :func:`jaxnst.pipeline.options.make_options`: types, ranges, choices and the
combinations of options that cannot go together. Each raises ValueError with one line naming the
option."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optax


def _values(v: Any) -> tuple:
    return v if isinstance(v, tuple) else (v,)


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.number))


def _is_int(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def check_numbers(o: Any) -> None:
    """Counts, weights, seeds, rates and scales: types and ranges."""
    for k in ("iterations", "chunk", "lbfgs_memory"):
        v = getattr(o, k)
        if not _is_int(v) or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    for k in ("content_weight", "style_weight", "tv_weight", "photoreal_weight"):
        for v in _values(getattr(o, k)):
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{k} must be a finite number >= 0, got {v!r}")
    v = o.photoreal_smooth
    if v is not None and (not _is_number(v) or not math.isfinite(v) or v < 0):
        raise ValueError(f"photoreal_smooth must be a finite number >= 0 or None, got {v!r}")
    for v in _values(o.seed):
        if not _is_int(v) or not 0 <= v < 2**32:
            raise ValueError(f"seed must be an integer in [0, 2**32), got {v!r}")
    m = o.max_seconds
    if m is not None and (not _is_number(m) or not (math.isfinite(m) and m > 0)):
        raise ValueError(f"max_seconds must be a finite number > 0, got {m!r}")
    lr = o.learning_rate
    if not _is_number(lr) or not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be a finite number > 0, got {lr!r}")
    if o.style_blend_weights is not None:
        for v in o.style_blend_weights:
            if not _is_number(v) or not math.isfinite(v) or v < 0:
                raise ValueError(f"style_blend_weights must be finite numbers >= 0, got {v!r}")
        if sum(o.style_blend_weights) <= 0:
            raise ValueError("style_blend_weights must not all be zero")
    s = o.style_scale
    if s is not None and (not _is_number(s) or not 0 < s < 1e3 or not math.isfinite(s)):
        raise ValueError(f"style_scale must be a number > 0, got {s!r}")


def check_sequences(o: Any) -> None:
    """Coarse-to-fine sizes and iterations."""
    for k in ("scales", "scale_iterations"):
        v = getattr(o, k)
        if v is None or (k == "scales" and v == "auto"):
            continue
        if not isinstance(v, tuple) or not v or any(not _is_int(x) or x < 1 for x in v):
            raise ValueError(f"{k} must be a sequence of positive integers, got {v!r}")
    if o.scale_iterations is not None and o.scales == "auto":
        raise ValueError("scale_iterations goes with a list of scales; 'auto' picks its own")
    if o.scale_iterations is not None and (
        o.scales is None or len(o.scale_iterations) != len(o.scales) + 1
    ):
        raise ValueError("scale_iterations needs one value per scale plus one for the full size")


def check_choices(o: Any) -> None:
    """Named choices, the Adam-only EMA, the starting image and the layers."""
    if o.style_loss not in ("gram", "wasserstein", "remd", "nnst"):
        raise ValueError(
            f"unknown style_loss {o.style_loss!r}; expected 'gram', 'wasserstein', 'remd' or 'nnst'"
        )
    check_sampled(o)
    d = o.ema_decay
    if d is not None and (not _is_number(d) or not 0 <= d < 1):
        raise ValueError(f"ema_decay must be a number in [0, 1), got {d!r}")
    if d is not None and o.optimizer == "lbfgs":
        raise ValueError("ema_decay is for optimizer='adam' (L-BFGS iterates are not noisy)")
    if o.preserve_color not in ("none", "luminance", "histogram", "oklab"):
        raise ValueError(
            f"unknown preserve_color {o.preserve_color!r}; expected 'none', "
            "'luminance', 'histogram' or 'oklab'"
        )
    if o.precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"unknown precision {o.precision!r}; expected 'auto', 'fp32' or 'bf16'")
    if not isinstance(o.remat, (bool, np.bool_)):
        raise ValueError(f"remat must be True or False, got {o.remat!r}")
    if not isinstance(o.tileable, (bool, np.bool_)):
        raise ValueError(f"tileable must be True or False, got {o.tileable!r}")
    if o.tile is not None and (not _is_int(o.tile) or o.tile < 16 or o.tile % 16):
        raise ValueError(f"tile must be a positive multiple of 16 (px), got {o.tile!r}")
    if o.tile is not None and (o.tileable or o.style_loss != "gram" or o.precision == "bf16"):
        raise ValueError(
            "tile supports the gram style loss in fp32 without tileable (got "
            f"style_loss={o.style_loss!r}, precision={o.precision!r}, tileable={o.tileable!r})"
        )
    for k in ("linesearch", "pooling", "style_loss", "preserve_color", "precision"):
        if not isinstance(getattr(o, k), str):
            raise ValueError(f"{k} must be a string, got {getattr(o, k)!r}")
    if not isinstance(o.optimizer, (str, optax.GradientTransformation)):
        raise ValueError(
            "optimizer must be 'lbfgs', 'adam' or an optax.GradientTransformation, got "
            f"{type(o.optimizer).__name__}"
        )
    if isinstance(o.optimizer, str) and o.optimizer not in ("lbfgs", "adam", "rmsprop"):
        raise ValueError(
            f"unknown optimizer {o.optimizer!r}; expected 'lbfgs', 'adam' or 'rmsprop'"
        )
    if o.linesearch not in ("auto", "zoom", "backtracking"):
        raise ValueError(
            f"unknown linesearch {o.linesearch!r}; expected 'auto', 'zoom' or 'backtracking'"
        )
    if o.param not in ("pixels", "laplacian"):
        raise ValueError(f"unknown param {o.param!r}; expected 'pixels' or 'laplacian'")
    p = o.pyramid_levels
    if not _is_int(p) or not 0 <= p <= 12:
        raise ValueError(f"pyramid_levels must be an integer in [0, 12], got {p!r}")
    if o.pooling not in ("max", "avg"):
        raise ValueError(f"unknown pooling {o.pooling!r}; expected 'max' or 'avg'")
    if isinstance(o.init, str):
        if o.init not in ("content", "noise", "recolour"):
            raise ValueError(
                f"init must be 'content', 'noise', 'recolour' or an image array, got {o.init!r}"
            )
    elif not hasattr(o.init, "shape") or len(o.init.shape) not in (3, 4) or o.init.shape[-1] != 3:
        raise ValueError(
            f"init must be 'content', 'noise', 'recolour', an (H, W, 3) image array or "
            f"(N, H, W, 3), one per member of a sweep, got {type(o.init).__name__}"
        )
    if not o.content_layers and not o.style_layers:
        raise ValueError("content_layers and style_layers are both empty; nothing to optimise")


def check_api_only(o: Any) -> None:
    """The options only the Python API can set: ``extra_loss`` and ``key``."""
    if o.extra_loss is not None and not callable(o.extra_loss):
        raise ValueError(
            f"extra_loss must be a function (image, feats) -> scalar, got "
            f"{type(o.extra_loss).__name__}"
        )
    if o.extra_loss is not None and o.remat:
        raise ValueError(
            "extra_loss needs the activations, which remat=True does not keep; use one or the other"
        )
    if o.extra_loss is not None and o.tile is not None:
        raise ValueError(
            "extra_loss needs the whole image's activations, which tile= evaluates piece by "
            "piece; use one or the other"
        )


def check_sampled(o: Any) -> None:
    """STROTSS's terms (``style_loss="remd"``, ``content_loss="self_similarity"``) and
    ``method``: names, counts, and what they do not combine with."""
    if o.method not in ("gatys", "strotss", "nnst", "photoreal"):
        raise ValueError(
            f"unknown method {o.method!r}; expected 'gatys', 'strotss', 'nnst' or 'photoreal'"
        )
    if o.content_loss not in ("mse", "self_similarity", "nnst"):
        raise ValueError(
            f"unknown content_loss {o.content_loss!r}; expected 'mse', 'self_similarity' or 'nnst'"
        )
    if not isinstance(o.nnst_rotations, (bool, np.bool_)):
        raise ValueError(f"nnst_rotations must be True or False, got {o.nnst_rotations!r}")
    for k in ("samples", "style_samples", "resample_every", "nnst_refresh"):
        v = getattr(o, k)
        if not _is_int(v) or v < 1:
            raise ValueError(f"{k} must be a positive integer, got {v!r}")
    if o.style_loss not in ("remd", "nnst") and o.content_loss not in ("self_similarity", "nnst"):
        return
    for k, bad in (("tile", o.tile is not None), ("remat", bool(o.remat))):
        if bad:
            raise ValueError(
                f"{k} does not combine with the hypercolumn terms (style_loss 'remd' or 'nnst', "
                "content_loss 'self_similarity' or 'nnst'): they need whole activations"
            )


def check_mask_terms(o: Any, regions: int) -> None:
    """``content_masks`` with ``regions`` masks and the style term: guided Gram matrices (gram)
    or region-wise sampling (remd, at least 2 sample points per region); not wasserstein."""
    if o.style_loss == "wasserstein":
        raise ValueError(
            "content_masks work with style_loss='gram' (guided Gram matrices) or 'remd' "
            "(region-wise sampling), not 'wasserstein'"
        )
    if o.style_loss == "remd" and o.samples < 2 * regions:
        raise ValueError(
            f"content_masks with style_loss='remd' need samples >= 2 per region "
            f"({2 * regions} for {regions}), got {o.samples}"
        )


def check_masks(o: Any) -> None:
    """``content_masks`` (an argument of stylize, not an option) with options that cannot take
    them: ValueError, one line, before anything is computed."""
    if o.tile is not None:
        raise ValueError(
            "content_masks need guided Gram matrices, which the tiled objective (tile=) does not "
            "compute; use one or the other"
        )
