"""``jaxnst video CLIP --model MODEL.jaxnst -o OUT``: a clip through a trained feed-forward
network (:func:`jaxnst.apply_style`), frames in batches; no descent, no flow. The positional
STYLE, optional here, names the model's style (or a blend, ``a:0.5,b:0.5``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxnst.video.args import UsageError


def run_model(args: Any) -> int:
    """Stylize ``args.input`` with the network in ``args.model``; returns the exit code."""
    from jaxnst.cli import runtime
    from jaxnst.feedforward import apply as ff
    from jaxnst.feedforward.model_file import ModelError, load
    from jaxnst.video import io as vio

    if args.size < 16:
        raise UsageError(f"--size must be at least 16 px, got {args.size}")
    if args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    if Path(args.input).resolve() == Path(args.output).resolve():
        raise UsageError(f"{args.output}: the output would overwrite the input")
    vio.output_kind(args.output)
    try:
        model = load(args.model)
        style = ff.style_weights(model, ff.parse_style(args.style, model.styles, "--style"))
        ff.check_strength(model, args.strength)
    except (ModelError, ValueError) as e:
        raise UsageError(str(e)) from None
    clip = vio.read(args.input, start=args.start, max_frames=args.max_frames, size=args.size)
    runtime.setup(args)
    frames = clip.frames
    out: list[np.ndarray] = []
    t0, timed = time.perf_counter(), 0.0
    for i in range(0, len(frames), args.batch):
        t = time.perf_counter()
        out += list(ff.apply_style(model, frames[i : i + args.batch], style=style,
                                   strength=args.strength, batch=args.batch))  # fmt: skip
        if i > 0:  # the first batch compiles
            timed += time.perf_counter() - t
    vio.write(args.output, out, args.fps or clip.fps, audio=clip)
    if not args.quiet:
        per = timed / max(len(frames) - args.batch, 1) if len(frames) > args.batch else None
        rate = f", {per * 1e3:.1f} ms per frame after compilation" if per else ""
        print(f"jaxnst video: wrote {args.output} ({len(frames)} frames in "
              f"{time.perf_counter() - t0:.1f} s{rate})", file=sys.stderr)  # fmt: skip
    return 0
