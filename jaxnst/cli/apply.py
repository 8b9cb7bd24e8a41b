"""``jaxnst apply MODEL INPUT [INPUT ...] -o OUT``: stylize photos with a trained network
(:func:`jaxnst.apply_style`). Inputs are files or folders; one input file writes the file ``OUT``
(or ``OUT/<name>.png`` when OUT is a folder), several (or a folder) write ``OUT/<input file name
without its extension>.png`` (OUT is created if missing). Exit codes: 0, 2 bad input (one line,
nothing written), 4 device failure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

EXIT_BAD_INPUT, EXIT_RUNTIME = 2, 4
EPILOG = """\
examples:
  jaxnst apply painting.jaxnst photo.jpg -o out.png
  jaxnst apply two.jaxnst photos/ -o styled/ --size 1024 --style b --strength 3
  jaxnst apply two.jaxnst photo.jpg -o mix.png --style a:0.5,b:0.5"""


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.cli import flags

    p = flags._Parser(
        prog="jaxnst apply",
        description="Stylize photos with a network trained by jaxnst train.",
        epilog=EPILOG,
        formatter_class=flags.HelpFormatter,
    )
    io = p.add_argument_group(flags.IO, "the model, the photos and where the results go")
    io.add_argument("model", help="model file written by jaxnst train")
    io.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    io.add_argument("-o", "--output", required=True, help="output image, or folder")
    io.add_argument("--json", metavar="REPORT.json", help="write a JSON report")
    s = p.add_argument_group("style", "which style, how strong, and colour")
    s.add_argument("--size", type=int, help="longer side of the outputs (default: the input's)")
    s.add_argument(
        "--style",
        help="a style's name or index (default: the first), or a blend: name:weight,name:weight",
    )
    s.add_argument("--strength", type=float, help="multiple of the trained style weight")
    s.add_argument(
        "--preserve-color",
        choices=("none", "luminance"),
        default="none",
        help="luminance: keep each photo's colours (the output's luma, the photo's chroma)",
    )
    s.add_argument("--batch", type=int, default=8, help="photos per call, same size (default 8)")
    s.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="run the network a layer at a time in N px tiles, exactly: for sizes beyond the "
        "device's memory (slower; default: whole images)",
    )
    run = p.add_argument_group(flags.RUNTIME)
    flags.add_cache_flags(run)
    run.add_argument("--quiet", action="store_true", help="no messages")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from jaxnst import image_io
    from jaxnst.feedforward.model_file import ModelError

    try:
        return _run(build_parser().parse_args(argv))
    except (ValueError, ModelError, image_io.ImageError) as e:
        print(f"jaxnst apply: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _inputs(items: list[str]) -> list[Path]:
    from jaxnst.feedforward.data import list_images

    files: list[Path] = []
    for it in items:
        p = Path(it)
        if p.is_dir():
            files += list_images(p)
        elif p.is_file():
            files.append(p)
        else:
            raise ValueError(f"{p}: no such file or folder")
    return files


def _targets(args: argparse.Namespace, files: list[Path]) -> list[Path]:
    """Where each result goes, checked before any work."""
    from jaxnst import image_io

    out = Path(args.output)
    many = len(files) > 1 or any(Path(i).is_dir() for i in args.inputs)
    if many or out.is_dir():
        if out.exists() and not out.is_dir():
            raise ValueError(f"{out}: several inputs need -o to be a folder")
        names = [out / (f.stem + ".png") for f in files]
        if len(set(names)) < len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"two inputs would both write {dup.name}; rename one")
        return names
    image_io.check_output_path(out)
    return [out]


def _run(args: argparse.Namespace) -> int:
    from jaxnst import image_io
    from jaxnst.cli import runtime
    from jaxnst.feedforward import apply as ff
    from jaxnst.feedforward.model_file import load

    if args.size is not None and args.size < 16:
        raise ValueError(f"--size must be at least 16, got {args.size}")
    model = load(args.model)
    files = _inputs(args.inputs)
    targets = _targets(args, files)
    style = ff.style_weights(model, ff.parse_style(args.style, model.styles, "--style"))
    ff.check_strength(model, args.strength)
    runtime.setup(args)
    images = [image_io.load(f) for f in files]
    if args.size:
        images = [image_io.resize(x, args.size) for x in images]
    if targets[0].parent != Path(args.output).parent or len(targets) > 1:
        targets[0].parent.mkdir(parents=True, exist_ok=True)
    seconds, timed = 0.0, 0
    seen: set[tuple[int, ...]] = set()
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(images):
        groups.setdefault(x.shape, []).append(i)
    import numpy as np

    for shape, idx in groups.items():
        for j in range(0, len(idx), args.batch):
            part = idx[j : j + args.batch]
            batch = np.stack([images[i] for i in part])
            kw = dict(style=style, strength=args.strength, preserve_color=args.preserve_color)
            kw["tile"] = args.tile
            t = time.perf_counter()
            out = ff.apply_style(model, batch, batch=len(part), **kw)
            dt = time.perf_counter() - t
            key = (*shape, len(part))
            if key in seen:
                seconds, timed = seconds + dt, timed + len(part)
            elif len(idx) <= args.batch or j + args.batch >= len(idx):
                t = time.perf_counter()  # compiled now: time it once more, for the report
                ff.apply_style(model, batch, batch=len(part), **kw)
                seconds, timed = seconds + time.perf_counter() - t, timed + len(part)
            seen.add(key)
            for i, y in zip(part, out):
                image_io.save(targets[i], y)
    if not args.quiet:
        print(f"jaxnst apply: wrote {len(files)} image(s); {seconds / max(timed, 1) * 1e3:.1f} "
              "ms per image after compilation", file=sys.stderr)  # fmt: skip
    if args.json:
        from jaxnst.cli.outputs import write_json

        write_json(Path(args.json), {
            "model": str(args.model), "images": len(files), "outputs": [str(t) for t in targets],
            "seconds_per_image": seconds / max(timed, 1), "styles": model.styles,
            "style_weights": [float(w) for w in style], "strength": args.strength,
        })  # fmt: skip
    return 0
