"""The CLI's inputs: flag checks, image files loaded and resized, options built from the flags,
weights loaded. Bad input raises :class:`UsageError` (one line, exit code 2) before anything runs
or is written."""

from __future__ import annotations

import argparse
import dataclasses
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from jaxnst.pipeline.options import MIN_SIDE, SWEEPABLE, Options, make_options

DEMO_CONTENT = "chelsea.jpg"
DEMO_STYLE = "swirls.png"
DEMO_DEFAULTS: dict[str, Any] = {"size": 256, "iterations": 200, "output": "jaxnst-demo.png"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


@dataclasses.dataclass
class Inputs:
    """Everything a CLI run reads, loaded and checked."""

    output: Path  # the output image path (checked: directory, extension)
    content_paths: list[Path]
    contents: list[np.ndarray]  # (H, W, 3) float32 in [0, 1], resized to --size, one size
    style_paths: list[str]
    styles: list[np.ndarray]  # resized to --style-scale times the content's longer side
    masks: np.ndarray | None  # (R, H, W) content masks
    options: Options
    variables: dict
    digest: str
    labels: tuple[np.ndarray, np.ndarray] | None = None  # --content-labels, --style-labels


def sample_path(name: str) -> Path:
    """A bundled sample image (jaxnst/samples)."""
    return Path(str(resources.files("jaxnst") / "samples" / name))


def apply_modes(args: argparse.Namespace, argv: list[str]) -> None:
    """Fill in what --demo and --mode imply, and read a lone positional as STYLE with
    --content-dir."""
    if args.content_dir and args.style is None:
        args.content, args.style = None, args.content  # only STYLE was given positionally
    if args.demo:
        args.content = args.content or str(sample_path(DEMO_CONTENT))
        args.style = args.style or str(sample_path(DEMO_STYLE))
        args.output = args.output or DEMO_DEFAULTS["output"]
        if args.iterations is None:
            args.iterations = DEMO_DEFAULTS["iterations"]
        if "--size" not in argv:
            args.size = DEMO_DEFAULTS["size"]
    if args.mode != "stylize":
        if args.style is not None or args.content_dir or not args.content:
            raise UsageError(
                f"--mode {args.mode} takes one image file "
                f"({'STYLE' if args.mode == 'texture' else 'CONTENT'})"
            )
        args.style = args.content
        if args.init is None:
            args.init = "noise"
        if args.mode == "texture":
            args.content_layers = ()
        else:
            args.style_layers = ()


def _check_number(name: str, v: float | None, minimum: float, strict: bool) -> None:
    if v is None:
        return
    if not math.isfinite(v) or (v <= minimum if strict else v < minimum):
        op = ">" if strict else ">="
        raise UsageError(
            f"--{name.replace('_', '-')} must be a finite number {op} {minimum}, got {v}"
        )


def check_args(args: argparse.Namespace) -> Path:
    """Check the flags that need no file read; returns the checked output path."""
    from jaxnst import image_io

    if not (args.content or args.content_dir) or not args.style:
        raise UsageError("CONTENT and STYLE image files are required (or --demo)")
    if not args.output:
        raise UsageError("-o/--output is required")
    if args.size < MIN_SIDE:
        raise UsageError(
            f"--size must be at least {MIN_SIDE} px (VGG19's four poolings), got {args.size}"
        )
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations must be >= 1, got {args.iterations}")
    for flag in ("save_every", "checkpoint_every"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume}: no such file")
    for name in ("content_weight", "style_weight", "tv_weight", "photoreal_weight"):
        for v in getattr(args, name) or ():
            _check_number(name, v, 0.0, strict=False)
    _check_number("learning_rate", args.learning_rate, 0.0, strict=True)
    for v in args.seed or ():
        if not 0 <= v < 2**32:
            raise UsageError(f"--seed must be in [0, 2**32), got {v}")
    out = image_io.check_output_path(args.output, getattr(args, "output_depth", 8))
    if args.json:
        jp = Path(args.json)
        if not (jp.parent if str(jp.parent) else Path(".")).is_dir():
            raise UsageError(f"--json {jp}: directory {jp.parent} does not exist")
    return out


def load_inputs(args: argparse.Namespace, out: Path) -> Inputs:
    """Load the images, masks and weights the flags name, and build the options."""
    from jaxnst import image_io
    from jaxnst.model import weights

    content_paths, contents = load_contents(args)
    if args.mode == "texture":  # the content only gives the output's shape
        contents = [np.zeros_like(contents[0])]
    style_paths, styles = _load_styles(args, contents[0])
    masks = None
    if args.content_masks:
        mask_paths = [p for p in args.content_masks.split(",") if p]
        if len(mask_paths) != len(styles):
            raise UsageError(
                f"--content-masks has {len(mask_paths)} masks for {len(styles)} "
                "style images (one per style)"
            )
        masks = np.stack(
            [
                image_io.resize(image_io.load(p), shape=contents[0].shape[:2]).mean(-1)
                for p in mask_paths
            ]
        )
    h, w = contents[0].shape[:2]
    opts = default_scales(args, options_from_args(args, (h, w)))
    label_images = _load_labels(args, contents, styles, opts)
    if masks is not None and opts.tile is not None:
        raise UsageError(
            "--content-masks need guided Gram matrices, which --tile does not compute; use one "
            "or the other"
        )
    try:
        variables, digest = weights.load_variables(args.weights)
    except weights.WeightsError as e:
        raise UsageError(str(e)) from None
    return Inputs(
        out, content_paths, contents, style_paths, styles, masks, opts, variables, digest,
        label_images,
    )  # fmt: skip


def _load_labels(
    args: argparse.Namespace, contents: list, styles: list, opts: Options
) -> tuple[np.ndarray, np.ndarray] | None:
    """The --content-labels and --style-labels images, checked against the content and style as
    :func:`jaxnst.stylize` will use them (before the weights load): UsageError, one line."""
    from jaxnst import image_io
    from jaxnst.pipeline import labels

    cl, sl = getattr(args, "content_labels", None), getattr(args, "style_labels", None)
    if cl is None and sl is None:
        return None
    if cl is None or sl is None:
        raise UsageError("--content-labels and --style-labels go together; give both")
    images = image_io.load(cl), image_io.load(sl)
    content = np.stack(contents) if len(contents) > 1 else contents[0]
    try:
        labels.guide(
            content, styles if len(styles) > 1 else styles[0], *images, args.content_masks, opts
        )
    except ValueError as e:
        raise UsageError(str(e).replace("content_labels", "--content-labels").replace(
            "style_labels", "--style-labels")) from None  # fmt: skip
    return images


def load_sized(path: str | Path, size: int) -> np.ndarray:
    """Load, refuse images under MIN_SIDE px per side, resize so the longer side is ``size`` (the
    shorter side stays >= MIN_SIDE for very wide or tall images)."""
    from jaxnst import image_io

    im = image_io.load(path)
    if min(im.shape[:2]) < MIN_SIDE:
        raise UsageError(
            f"{path}: {im.shape[1]}x{im.shape[0]} px is too small; VGG19's four "
            f"poolings need at least {MIN_SIDE} px per side"
        )
    return image_io.resize(im, size, min_side=MIN_SIDE)


def load_contents(args: argparse.Namespace) -> tuple[list[Path], list[np.ndarray]]:
    """(paths, images) of the content image(s), resized to --size."""
    if args.content_dir:
        d = Path(args.content_dir)
        if not d.is_dir():
            raise UsageError(f"--content-dir {d}: not a directory")
        paths = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UsageError(f"--content-dir {d}: no .png/.jpg images")
    else:
        paths = [Path(args.content)]
    images = [load_sized(p, args.size) for p in paths]
    for p, im in zip(paths, images):
        if im.shape != images[0].shape:
            raise UsageError(
                f"{p}: {im.shape[1]}x{im.shape[0]} px after resizing, but "
                f"{paths[0].name} is {images[0].shape[1]}x{images[0].shape[0]}; "
                "--content-dir images must share one size"
            )
    return paths, images


def _load_styles(
    args: argparse.Namespace, content: np.ndarray
) -> tuple[list[str], list[np.ndarray]]:
    # Several styles: STYLE may list files separated by commas (as in jcjohnson/neural-style).
    # --style-scale is applied here, at load, with the float Lanczos resize.
    scale = args.style_scale if args.style_scale is not None else 1.0
    if not (math.isfinite(scale) and 0 < scale < 1e3):
        raise UsageError(f"--style-scale must be a number > 0, got {scale}")
    style_paths = [p for p in args.style.split(",") if p]
    styles = [load_sized(p, max(1, round(scale * max(content.shape[:2])))) for p in style_paths]
    if args.style_blend_weights is not None and len(args.style_blend_weights) != len(styles):
        raise UsageError(
            f"--style-blend-weights has {len(args.style_blend_weights)} values for "
            f"{len(styles)} style images"
        )
    return style_paths, styles


def options_from_args(args: argparse.Namespace, shape: tuple[int, int]) -> Options:
    """:class:`Options` from the flags (those left unset keep Options' defaults); an --init file is
    loaded and resized to ``shape`` (H, W). The chunk divides --save-every and
    --checkpoint-every, so both fall on chunk ends."""
    from jaxnst import image_io

    options: dict[str, Any] = {}
    for f in dataclasses.fields(Options):
        v = getattr(args, f.name, None)
        if f.name in ("chunk", "style_scale") or v is None:
            continue
        if f.name in SWEEPABLE:
            v = v[0] if len(v) == 1 else list(v)
        options[f.name] = v
    if "init" in options and options["init"] not in ("content", "noise", "recolour"):
        options["init"] = image_io.resize(image_io.load(options["init"]), shape=shape)
    every = [
        v for v in (getattr(args, "save_every", None), getattr(args, "checkpoint_every", None)) if v
    ]
    if every:
        options["chunk"] = math.gcd(*every)
    try:
        return make_options(**options)
    except ValueError as e:
        raise UsageError(str(e)) from None


# px: above this --size, a CLI run without --scales would use --scales auto; None: never. Issue 13
# asked for auto by default if it measured better at equal wall time at 1024 and 2048 px on the
# bundled pair and on tubingen x starry_night. At 1024 px it won on the bundled pair (full-size
# style loss 3.9x lower) and lost on tubingen (1.6x higher; README, Print size), so single-scale
# stays the default and auto is one flag away.
AUTO_SCALES_ABOVE: int | None = None


def default_scales(args: argparse.Namespace, options: Options) -> Options:
    """``--scales`` left out: coarse-to-fine (``auto``) when --size is above ``AUTO_SCALES_ABOVE``
    and the run is one image (no --content-dir, no sweep) without --resume or --checkpoint-every,
    which coarse-to-fine does not support; else the options as they are (single-scale)."""
    if AUTO_SCALES_ABOVE is None:
        return options
    one = not getattr(args, "content_dir", None) and not any(
        isinstance(getattr(options, k), tuple) for k in SWEEPABLE
    )
    plain = not getattr(args, "resume", None) and not getattr(args, "checkpoint_every", None)
    if getattr(args, "scales", None) is None and args.size > AUTO_SCALES_ABOVE and one and plain:
        return dataclasses.replace(options, scales="auto")
    return options
