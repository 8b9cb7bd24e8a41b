"""``jaxnst video IN STYLE -o OUT``: stylize a clip (a video file or a folder of numbered frames)
into a video file (.mp4, .gif) or a frame folder.

Still-image flags are taken from ``jaxnst``'s own parser (derived from :class:`jaxnst.Options`),
so their names, defaults and help are the same. Frames are written as they finish (a frame folder
output is filled in place; a video output's frames go to ``OUT.frames/`` and are encoded at the
end), with the run's state saved after every frame (sequential) or pass (multi-pass); Ctrl-C and
``--resume`` continue where it stopped. Exit codes as ``jaxnst``'s: 0, 2 bad input (one line,
nothing written), 4 device failure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxnst.video.args import (  # noqa: F401 (re-exported: the command's names)
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_RUNTIME,
    UsageError,
    check_args,
)

MISSING = "jaxnst: error: video needs: pip install 'jaxnst[video]'"
# Still-image flags that make no sense for a clip: several contents, masks, checkpoints of one
# image, coarse-to-fine (not supported for video yet), demo and modes.
_SKIP = {
    "max_seconds",  # (a budget per frame would be no budget; the clip's is not built yet)
    "content",
    "style",
    "output",
    "size",
    "content_dir",
    "content_masks",
    "save_every",
    "checkpoint_every",
    "checkpoint",
    "resume",
    "mode",
    "demo",
    "scales",
    "scale_iterations",
    "help",
    "init",
}


EPILOG = """\
examples:
  jaxnst video clip.mp4 painting.jpg -o out.mp4             frame after frame, 256 px
  jaxnst video clip.mp4 painting.jpg -o out.mp4 --passes 3 --max-frames 48
                                                            multi-pass: all frames as one batch
  jaxnst video frames/ painting.jpg -o styled/ --resume     continue an interrupted run"""


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.cli import flags

    p = flags._Parser(
        prog="jaxnst video",
        description="Temporally consistent style transfer of a "
        "clip (Ruder, Dosovitskiy & Brox 2016).",
        epilog=EPILOG,
        formatter_class=flags.HelpFormatter,
    )
    io = p.add_argument_group(flags.IO, "the clip, the style and where the frames go")
    io.add_argument("input", help="video file (.mp4, .gif, .mov, ...) or folder of numbered frames")
    io.add_argument(
        "style",
        nargs="?",
        help="style image file (several: a.jpg,b.jpg); with --model: the model's style to use "
        "(a name, or a blend a:0.5,b:0.5; default: its first)",
    )
    io.add_argument(
        "--model",
        metavar="MODEL.jaxnst",
        help="stylize with a network trained by jaxnst train (frames in batches; no descent)",
    )
    io.add_argument("--strength", type=float, help="with --model: multiple of its style weight")
    io.add_argument(
        "--batch", type=int, default=8, help="with --model: frames per call (default 8)"
    )
    io.add_argument(
        "-o",
        "--output",
        required=True,
        help="output video (.mp4, .gif) or folder (frame_00001.png, ...)",
    )
    size = p.add_argument_group(flags.SIZE, "the frames' size and the style's relative to it")
    size.add_argument(
        "--size", type=int, default=256, help="longer side of the frames in pixels (default: 256)"
    )
    io.add_argument("--start", type=int, default=0, help="first frame to use (default: 0)")
    io.add_argument("--max-frames", type=int, help="use at most this many frames")
    io.add_argument(
        "--fps",
        type=float,
        help="frame rate of the output (default: the input's; a "
        "changed rate drops the audio track)",
    )
    _add_temporal_flags(p.add_argument_group("temporal consistency", _TEMPORAL))
    io.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run with the same inputs and options",
    )
    build_still_flags(p)
    return p


_TEMPORAL = "frame after frame (sequential) or all frames at once in passes (multi-pass)"


def _add_temporal_flags(g: argparse._ArgumentGroup) -> None:
    from jaxnst.cli.flags import _finite_float
    from jaxnst.video.core import BLEND, PASS_ITERATIONS, TEMPORAL_WEIGHT

    g.add_argument(
        "--temporal-weight",
        type=_finite_float,
        default=TEMPORAL_WEIGHT,
        help=f"weight of the temporal loss (default: {TEMPORAL_WEIGHT:g}; 0: off)",
    )
    g.add_argument(
        "--passes",
        type=int,
        default=0,
        help="0 (default): sequential, frame after "
        "frame; P > 0: multi-pass, all frames as one batch, P passes after the first",
    )
    g.add_argument(
        "--pass-iterations",
        type=int,
        default=PASS_ITERATIONS,
        help=f"iterations per pass after the first (default: {PASS_ITERATIONS})",
    )
    g.add_argument(
        "--blend",
        type=_finite_float,
        default=BLEND,
        help=f"multi-pass: weight of the warped neighbour in each start (default: {BLEND})",
    )


def build_still_flags(p: argparse.ArgumentParser) -> list[argparse.Action]:
    """Add the still-image parser's flags that apply to video (the option flags, weights, compile
    cache, quiet, json, distributed) to ``p``, reused as they are, in groups of the same titles;
    returns them."""
    from jaxnst.cli import flags

    return flags.reuse(p, flags.build_parser(), _SKIP)


def _need_extra() -> bool:
    try:
        import av  # noqa: F401
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxnst video ARGS`` (``jaxnst.cli`` dispatches here)."""
    from jaxnst.cli.inputs import UsageError as StillUsageError
    from jaxnst.cli.runtime import RuntimeSetupError
    from jaxnst.image_io import ImageError
    from jaxnst.model.weights import WeightsError

    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    if not _need_extra():
        print(MISSING, file=sys.stderr)
        return EXIT_BAD_INPUT
    from jaxnst.video import io as vio
    from jaxnst.video.model import run_model
    from jaxnst.video.run import run

    try:
        if args.model:
            return run_model(args)
        if args.style is None:
            raise UsageError("give a STYLE image (or --model MODEL.jaxnst)")
        return run(args)
    except (
        vio.VideoError,
        ImageError,
        WeightsError,
        StillUsageError,
        UsageError,
        RuntimeSetupError,
    ) as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
