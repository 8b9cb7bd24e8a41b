"""``jaxnst video``'s exit codes, its usage error and the checks of its flags' ranges: shared by
the command (:mod:`jaxnst.video.cli`) and the run (:mod:`jaxnst.video.run`), which the command
calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 4
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input to ``jaxnst video``: one line, exit code 2."""


def check_args(args: Any) -> None:
    """Flag ranges, before anything is read or written."""
    if args.size < 16:
        raise UsageError(f"--size must be at least 16 px (VGG19's four poolings), got {args.size}")
    if args.start < 0:
        raise UsageError(f"--start must be >= 0, got {args.start}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.fps is not None and not 0 < args.fps <= 1000:
        raise UsageError(f"--fps must be in (0, 1000], got {args.fps}")
    if args.passes < 0 or args.pass_iterations < 1:
        raise UsageError("--passes must be >= 0 and --pass-iterations >= 1")
    if args.temporal_weight < 0 or not 0 <= args.blend <= 1:
        raise UsageError("--temporal-weight must be >= 0 and --blend in [0, 1]")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations must be >= 1, got {args.iterations}")
    for name in ("content_weight", "style_weight", "tv_weight", "seed"):
        v = getattr(args, name, None)
        if v is not None and len(v) > 1:
            raise UsageError(
                f"--{name.replace('_', '-')}: video takes one value (sweeps are for still images)"
            )
    if Path(args.input).resolve() == Path(args.output).resolve():
        raise UsageError(f"{args.output}: the output would overwrite the input")
