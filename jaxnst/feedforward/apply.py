"""Applying a trained network: arrays in, arrays out, one compiled program per image shape and
batch size.

Sizes: the network halves twice and doubles twice, so an image is reflection-padded to multiples
of 4 and cropped back. Styles and strengths: ``style`` is a style's index or name, or a weight per
style (a blend, mixing the conditional instance norms' parameters); ``strength`` multiplies the
style weight the network was trained with, within its trained range (one value for a network
trained at one strength).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.feedforward.model_file import Model, ModelError
from jaxnst.feedforward.network import NetConfig, TransformNet, conditioning, knot_weights
from jaxnst.feedforward.steps import grey
from jaxnst.loss import color
from jaxnst.optim.programs import _program


class _Apply(NamedTuple):  # the forward program's static part
    net: NetConfig
    luminance: bool
    keep_chroma: bool
    xla_cpu_ynn: bool = False


def pad4(images: jax.Array) -> jax.Array:
    """(N, H, W, 3) reflection-padded at the bottom and right to multiples of 4."""
    h, w = images.shape[1:3]
    return jnp.pad(images, ((0, 0), (0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")


@_program
def forward(params, images, style_w, log_strength, config: _Apply):
    """(N, H, W, 3) in [0, 1] -> (N, H, W, 3) in [0, 1]."""
    h, w = images.shape[1:3]
    x = grey(images) if config.luminance else images
    cond = conditioning(style_w, log_strength, config.net)
    y: jax.Array = TransformNet(config.net).apply({"params": params}, pad4(x), cond)  # type: ignore[assignment]
    out = y[:, :h, :w]
    if config.luminance or config.keep_chroma:
        out = color.combine_luma_chroma(out, images)
    return out


def _tiled(params, x, ws, ls, cfg: _Apply, tile: int) -> np.ndarray:
    from jaxnst.feedforward import tiled

    h, w = x.shape[1:3]
    src = np.asarray(grey(jnp.asarray(x))) if cfg.luminance else x
    src = np.pad(src, ((0, 0), (0, -h % 4), (0, -w % 4), (0, 0)), mode="reflect")
    kw = np.asarray(knot_weights(jnp.asarray(ls), cfg.net))
    y = tiled.forward(params, src, ws, kw, cfg.net, tile)[:, :h, :w]
    if cfg.luminance or cfg.keep_chroma:
        y = np.asarray(color.combine_luma_chroma(jnp.asarray(y), jnp.asarray(x)))
    return y


def style_weights(model: Model, style: Any) -> np.ndarray:
    """``style`` (None: the first; an index; a name; or a weight per style, normalised) -> (S,)."""
    names, n = model.styles, model.net.styles
    if style is None:
        style = 0
    if isinstance(style, str):
        if style not in names:
            raise ValueError(f"unknown style {style!r}; this model holds {', '.join(names)}")
        style = names.index(style)
    if isinstance(style, (int, np.integer)):
        if not 0 <= int(style) < n:
            raise ValueError(f"style index {style} out of range; this model holds {n} style(s)")
        return np.eye(n, dtype=np.float32)[int(style)]
    w = np.asarray(style, np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
        raise ValueError(
            f"style weights must be {n} non-negative numbers, not all zero, got {style!r}"
        )
    return (w / w.sum()).astype(np.float32)


def parse_style(text: str | None, names: list[str], label: str = "style") -> Any:
    """A style as people type it: a name, an index, or a blend "name:weight,name:weight" ->
    what :func:`style_weights` takes (None: the first style)."""
    if not text:
        return None
    if ":" not in text:
        return int(text) if text.isdigit() else text
    w = [0.0] * len(names)
    for part in text.split(","):
        name, _, value = part.partition(":")
        if name.strip() not in names:
            raise ValueError(
                f"{label}: unknown style {name!r}; this model holds {', '.join(names)}"
            )
        try:
            w[names.index(name.strip())] = float(value)
        except ValueError:
            raise ValueError(f"{label}: {part!r} is not name:weight") from None
    return w


def check_strength(model: Model, strength: float | None) -> float:
    """The strength to use (None: 1 within range, else the range's low end); ValueError outside
    the trained range."""
    lo, hi = model.net.strengths
    if strength is None:
        return 1.0 if lo <= 1.0 <= hi else lo
    s = float(strength)
    if not (np.isfinite(s) and lo * (1 - 1e-6) <= s <= hi * (1 + 1e-6)):
        rng = f"{lo:g}" if lo == hi else f"{lo:g}..{hi:g}"
        raise ValueError(f"strength {strength!r} is outside this model's trained range ({rng})")
    return s


def apply_style(
    model: Model | str,
    images: Any,
    *,
    style: Any = None,
    strength: float | None = None,
    preserve_color: str = "none",
    batch: int = 8,
    tile: int | None = None,
) -> np.ndarray:
    """Stylize ``images`` with a trained network.

    Args:
        model: a :class:`~jaxnst.feedforward.model_file.Model` or a model file's path.
        images: (H, W, 3) or (N, H, W, 3) float RGB in [0, 1] (any size; padded internally).
        style: which style (index or name), or a weight per style to blend them (default: 0).
        strength: multiple of the trained style weight, within the trained range (default 1).
        preserve_color: "none" or "luminance" (the output's luma with the photo's colours).
        batch: images per compiled call.
        tile: run the network a layer at a time in tiles of this many pixels (each layer's
            output), exactly, for images beyond the device's memory
            (:mod:`jaxnst.feedforward.tiled`); None: whole images.

    Returns:
        float32 NumPy array of the input's shape, in [0, 1].
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        from jaxnst.feedforward.model_file import load

        model = load(model)  # type: ignore[arg-type]
    if not isinstance(model, Model):
        raise ModelError(
            f"model must be a Model or a model file's path, got {type(model).__name__}"
        )
    if preserve_color not in ("none", "luminance"):
        raise ValueError(f"preserve_color must be 'none' or 'luminance', got {preserve_color!r}")
    a = np.asarray(images, np.float32)
    single = a.ndim == 3
    a = a[None] if single else a
    if a.ndim != 4 or a.shape[-1] != 3 or min(a.shape[1:3]) < 4:
        raise ValueError(f"images must be (H, W, 3) or (N, H, W, 3) RGB, got shape {a.shape}")
    if not np.all(np.isfinite(a)) or a.min() < -1e-3 or a.max() > 1 + 1e-3:
        raise ValueError("images must be finite floats in [0, 1] (divide 8-bit images by 255)")
    sw = style_weights(model, style)
    ls = np.float32(np.log(check_strength(model, strength)))
    cfg = _Apply(model.net, bool(model.meta.get("luminance")), preserve_color == "luminance")
    if tile is not None and (int(tile) != tile or tile < 4):
        raise ValueError(f"tile must be an integer of at least 4 px, got {tile!r}")
    params = jax.device_put(model.params) if tile is None else model.params
    out = []
    for i in range(0, len(a), batch):
        x = a[i : i + batch]
        n = len(x)
        ws, lsn = np.repeat(sw[None], n, 0), np.full((n,), ls)
        if tile is None:
            out.append(np.asarray(forward(params, x, ws, lsn, config=cfg)))
        else:
            out.append(_tiled(params, x, ws, lsn, cfg, int(tile)))
    res = np.concatenate(out)
    return res[0] if single else res


def batches(seq: Sequence[Any], n: int) -> list[Sequence[Any]]:
    return [seq[i : i + n] for i in range(0, len(seq), n)]
