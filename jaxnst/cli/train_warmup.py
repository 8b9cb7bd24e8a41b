"""``jaxnst warmup --train [--size 256 --batch 4 --styles 1 ...]``: fill the persistent compile
cache with the programs ``jaxnst train`` compiles for those flags (the style targets, the training
step or chunk, the held-out score), so that a training run on a fresh machine loads them instead of
compiling.

It runs :func:`jaxnst.train_styles` itself for one step on synthetic photos and styles of the
shapes a run has: the train command's flags that shape a program (``--size``, ``--batch``,
``--width``, ``--strength-range``, ``--knots``, ``--chunk``, ``--held-out``, the objective's
layers, ``--pooling``, ``--preserve-color``) mean what they mean there; ``--styles N`` is the
number of styles and ``--style-aspect W:H`` their proportions (each style is scaled to the crop
before its targets are taken, so only the aspect shapes that program; the one program a run
still compiles is that resize, from the style file's own size, a fraction of a second).
``jaxnst apply`` compiles per photo size and is not warmed here.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

# The train command's flags that do not shape a program (files, budgets, reports, the seed).
_SKIP = {"styles", "images", "output", "sample_every", "max_seconds", "resume", "json", "steps",
         "seed", "checkpoint_every", "learning_rate", "schedule", "help"}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.cli import flags, train, warmup

    p = flags._Parser(
        prog="jaxnst warmup --train",
        description="Compile, ahead of time and into the persistent compile cache, the programs "
        "that `jaxnst train STYLE... --images DIR -o MODEL` compiles with the same flags.",
        formatter_class=flags.HelpFormatter,
    )
    g = p.add_argument_group("styles", "how many styles the network holds, and their shape")
    g.add_argument("--styles", type=int, default=1, help="styles in one network (default 1)")
    g.add_argument("--style-aspect", metavar="W:H", type=warmup._ratio, default=(1.0, 1.0),
                   help="the style images' width:height (default 1:1)")  # fmt: skip
    flags.reuse(p, train.build_parser(), _SKIP)
    return p


def run(args: argparse.Namespace) -> int:
    from jaxnst.cli import runtime, train, warmup
    from jaxnst.feedforward import train_styles
    from jaxnst.model import weights
    from jaxnst.optim.compilation import compile_stats, program_log

    if args.styles < 1:
        raise ValueError(f"--styles must be at least 1, got {args.styles}")
    options = train._objective(args)
    t0 = time.perf_counter()
    runtime.setup(args)
    variables = weights.load_variables(args.weights)[0] if args.weights else None
    rng = np.random.default_rng(0)
    w, h = args.style_aspect
    side = max(args.size, 16)
    style_shape = (max(1, round(side * h / max(w, h))), max(1, round(side * w / max(w, h))), 3)
    styles = [rng.uniform(size=style_shape).astype(np.float32) for _ in range(args.styles)]
    photos = rng.uniform(size=(args.batch + args.held_out, side, side, 3)).astype(np.float32)
    with program_log() as programs:
        report = warmup._Report(programs, args.quiet)
        report.say(f"training at {args.size} px, batch {args.batch}, {args.styles} style(s)")
        c0 = compile_stats()
        t = time.perf_counter()
        train_styles(
            styles, photos, size=args.size, batch=args.batch, steps=1, width=args.width,
            strengths=tuple(args.strength_range) if args.strength_range else None,
            knots=args.knots, chunk=args.chunk, held_out=args.held_out, variables=variables,
            **train._average(args), **options,
        )  # fmt: skip
        report.stage((args.size, args.size), time.perf_counter() - t, 1)
        stats = compile_stats()
    report.total(stats["seconds"] - c0["seconds"], t0, runtime.compile_cache_dir(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``jaxnst warmup --train ARGS`` (the ``--train`` already removed). Bad input: one line,
    exit 2."""
    from jaxnst.cli.runtime import RuntimeSetupError
    from jaxnst.feedforward.data import DataError
    from jaxnst.model.weights import WeightsError

    args = build_parser().parse_args(list(argv) if argv is not None else sys.argv[1:])
    try:
        return run(args)
    except (ValueError, DataError, WeightsError, RuntimeSetupError) as e:
        print(f"jaxnst warmup: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
