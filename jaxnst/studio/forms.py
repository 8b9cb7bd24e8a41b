"""The studio's form: which :class:`jaxnst.stylize.Options` a page may set, and parsing its fields.

The defaults, help texts and choices come from ``Options`` (the one home of defaults) and the
values are validated by :func:`jaxnst.stylize.make_options`; this module adds only what a public
web form needs on top: an allow-list of fields (nothing that names a server-side file: no init
image path, no weights path, no layer lists), the image size, and limits on the work one request
may ask for.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from jaxnst.stylize import SWEEPABLE, Options, make_options, sweep_grid

# Options a page may set, in the order the form shows them.
FIELDS = (
    "iterations",
    "optimizer",
    "content_weight",
    "style_weight",
    "tv_weight",
    "seed",
    "init",
    "pooling",
    "preserve_color",
    "style_scale",
    "scales",
    "learning_rate",
    "chunk",
)
# Fields that carry the images, not options (handled by the app).
IMAGE_FIELDS = ("content", "style", "content_sample", "style_sample")
# The studio's default size: 256 px gives a first preview within seconds on a CPU; the CLI's 512
# is for final renders. (Size is not a stylize option: stylize takes arrays.)
SIZE_DEFAULT = 256
MIN_SIDE = 16  # VGG19 pools four times before conv5_1
# An init image would be a server-side file or a third upload; the page offers the two strings.
INIT_CHOICES = ("content", "noise")
LABELS = {"chunk": "preview every", "preserve_color": "preserve colour", "tv_weight": "TV weight"}
CHUNK_HELP = (
    "iterations between previews (one compiled chunk); blank: about 10 previews per run, "
    "at most every {default}"
)


class FormError(ValueError):
    """A bad form field. The message is one line naming the field."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_bytes: int = 20 * 2**20  # per image file
    max_pixels: int = 40_000_000  # per uploaded image, checked after decoding
    max_size: int = 2048  # longer side of the output, px
    max_iterations: int = 20_000
    max_members: int = 16  # images in one sweep
    max_queue: int = 32  # jobs waiting


def _kind(f: dataclasses.Field) -> str:
    if f.name == "init" or "choices" in f.metadata:
        return "choice"
    t = str(f.type)
    if f.name in SWEEPABLE or t.startswith("tuple["):
        return "integers" if f.name == "seed" or "tuple[int" in t else "numbers"
    return "integer" if t.split(" ")[0] == "int" else "number"


def schema(limits: Limits) -> dict[str, Any]:
    """The form as JSON: ``{"fields": [{name, label, kind, default, help, choices?, sweep}],
    "size": {...}, "limits": {...}}``. ``kind`` is choice, integer, number, integers or numbers
    (several values; for a sweepable option they make one batched sweep)."""
    fields = {f.name: f for f in dataclasses.fields(Options)}
    out = [
        {
            "name": "size",
            "label": "size",
            "kind": "integer",
            "default": SIZE_DEFAULT,
            "help": f"longer side of the output in pixels ({MIN_SIDE}..{limits.max_size})",
            "sweep": False,
        }
    ]
    for name in FIELDS:
        f = fields[name]
        d = f.default
        item = {
            "name": name,
            "label": LABELS.get(name, name.replace("_", " ")),
            "kind": _kind(f),
            "default": list(d) if isinstance(d, tuple) else d,
            "help": f.metadata["help"],
            "sweep": name in SWEEPABLE,
        }
        if item["kind"] == "choice":
            item["choices"] = list(INIT_CHOICES if name == "init" else f.metadata["choices"])
        if name == "init":
            item["help"] = "starting image: content or noise (seeded)"
        if name == "chunk":
            item["default"] = None
            item["help"] = CHUNK_HELP.format(default=d)
        out.append(item)
    return {"fields": out, "limits": dataclasses.asdict(limits)}


_SPLIT = re.compile(r"[\s,;]+")


def _numbers(name: str, text: str, integer: bool) -> list[float] | list[int]:
    parts = [p for p in _SPLIT.split(text.strip()) if p]
    try:
        if integer:
            return [int(p) for p in parts]
        values = [float(p) for p in parts]
    except ValueError:
        what = "integers" if integer else "numbers"
        raise FormError(
            f"{name}: expected {what} separated by spaces or commas, got {text[:40]!r}"
        ) from None
    return values


def _one(name: str, text: str, integer: bool) -> int | float:
    values = _numbers(name, text, integer)
    if len(values) != 1:
        raise FormError(f"{name}: expected one value, got {len(values)}")
    return values[0]


def auto_chunk(iterations: int) -> int:
    """Steps per compiled chunk when the form leaves it blank: about 10 previews per run, never
    fewer steps per chunk than 1 nor more than Options' default."""
    return max(1, min(Options.chunk, math.ceil(iterations / 10)))


def parse(form: Mapping[str, str], limits: Limits) -> tuple[int, dict[str, Any]]:
    """Form fields (strings; blank means the default) -> (size, ``stylize`` keyword options).

    Raises FormError (one line) for an unknown field, a malformed or out-of-range value, or what
    :func:`make_options` refuses."""
    kinds = {f.name: _kind(f) for f in dataclasses.fields(Options) if f.name in FIELDS}
    for k in form:
        if k not in kinds and k != "size" and k not in IMAGE_FIELDS:
            raise FormError(f"unknown field {k[:40]!r}")
    text = {k: str(v).strip() for k, v in form.items() if k not in IMAGE_FIELDS}
    size = int(_one("size", text["size"], True)) if text.get("size") else SIZE_DEFAULT
    if not MIN_SIDE <= size <= limits.max_size:
        raise FormError(f"size must be {MIN_SIDE}..{limits.max_size} px, got {size}")
    options: dict[str, Any] = {}
    for name, kind in kinds.items():
        v = text.get(name, "")
        if not v:
            continue
        if kind == "choice":
            options[name] = v
        elif kind in ("integers", "numbers"):
            values = _numbers(name, v, kind == "integers")
            many = name not in SWEEPABLE or len(values) > 1
            options[name] = values if many else values[0]
        else:
            options[name] = _one(name, v, kind == "integer")
    if options.get("init", "content") not in INIT_CHOICES:
        raise FormError(f"init must be one of {', '.join(INIT_CHOICES)}, got {options['init']!r}")
    try:
        o = make_options(**options)
    except ValueError as e:
        raise FormError(str(e)) from None
    if o.iterations > limits.max_iterations:
        raise FormError(f"iterations must be at most {limits.max_iterations}, got {o.iterations}")
    if isinstance(o.scales, tuple) and any(s > limits.max_size for s in o.scales):
        raise FormError(f"scales must be at most {limits.max_size} px")
    members = sweep_grid(o)[1].shape[0]
    if members > limits.max_members:
        raise FormError(f"a sweep of {members} images; the limit is {limits.max_members}")
    options.setdefault("chunk", auto_chunk(o.iterations))
    return size, options
