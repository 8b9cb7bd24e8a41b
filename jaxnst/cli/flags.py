"""The ``jaxnst`` command's flags, in argument groups a person can read (issue 23).

Flags for stylize's options are derived from :class:`jaxnst.pipeline.options.Options`, the one home
of their defaults; :data:`OPTION_GROUP` says which group each goes in. ``jaxnst video`` and ``jaxnst
warmup`` reuse these flags with :func:`reuse`, in groups of the same titles.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from typing import Any

from jaxnst.pipeline.options import Options

EXIT_BAD_INPUT = 2

# Titles and descriptions of the groups, in the order --help shows them.
IO = "input and output"
OBJECTIVE = "objective"
OPTIMIZER = "optimizer"
SIZE = "size"
MEMORY = "precision and memory"
RUNTIME = "runtime and caching"
HOSTS = "many hosts (TPU pod slices, multi-node GPU)"
GROUPS = {
    IO: "the images read and written, and what kind of run it is",
    OBJECTIVE: "what the image is made to match: loss weights, VGG19 layers, the style loss, "
    "colour",
    OPTIMIZER: "the descent: its length, the optimizer, its line search and the starting image",
    SIZE: "the output's size, the style's relative to it, and coarse-to-fine scales",
    MEMORY: "arithmetic precision, and trading time for memory (remat, tiles)",
    RUNTIME: "checkpoints, the VGG19 weights, the compile cache and messages",
    HOSTS: None,
}
# The group of each flag derived from an Options field (a field not named here: "options").
OPTION_GROUP = {
    **dict.fromkeys(
        ("iterations", "optimizer", "learning_rate", "init", "seed", "lbfgs_memory"), OPTIMIZER
    ),
    **dict.fromkeys(("ema_decay", "linesearch", "param", "pyramid_levels"), OPTIMIZER),
    **dict.fromkeys(("content_weight", "style_weight", "tv_weight", "pooling"), OBJECTIVE),
    **dict.fromkeys(("photoreal_weight", "photoreal_smooth", "photoreal_adapt"), OBJECTIVE),
    **dict.fromkeys(("content_layers", "style_layers", "style_blend_weights"), OBJECTIVE),
    **dict.fromkeys(("preserve_color", "style_loss", "tileable", "method"), OBJECTIVE),
    **dict.fromkeys(("content_loss", "samples", "style_samples", "resample_every"), OBJECTIVE),
    **dict.fromkeys(("nnst_rotations", "nnst_final_steps", "nnst_refresh"), OBJECTIVE),
    **dict.fromkeys(("style_scale", "scales", "scale_iterations"), SIZE),
    **dict.fromkeys(("precision", "remat", "tile"), MEMORY),
}
EPILOG = """\
examples:
  jaxnst --demo                                  the bundled pair, 256 px, to jaxnst-demo.png
  jaxnst photo.jpg painting.jpg -o out.png --size 768 --iterations 300
  jaxnst photo.jpg painting.jpg -o sweep.png --style-weight 1e-4 3e-4 1e-3
                                                 three style weights as one batched run
  jaxnst --mode texture painting.jpg -o wallpaper.png --tileable

other commands: jaxnst video --help (clips), jaxnst serve --help (the studio, a web page),
jaxnst warmup --help (fill the compile cache ahead of a run), jaxnst train --help and
jaxnst apply --help (feed-forward networks: train once per style, then milliseconds a photo)"""


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, but a description or epilog with line breaks (the examples) is kept as
    written; one without is wrapped as usual."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "".join(indent + line for line in text.splitlines(keepends=True))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _layers(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(t for t in text.replace(",", " ").split() if t)


def duration(text: str) -> float:
    """'90m', '2h', '1.5h', '45s', '1d' or plain seconds -> seconds (argparse type)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text.lower())
    if not m or float(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90m, 2h or 45s, got {text!r}"
        )
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return v


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxnst`` parser: positional files, one flag per :class:`Options` field, the run's
    files and caches, many-host flags, modes; each in its group (:data:`GROUPS`)."""
    p = _Parser(
        prog="jaxnst",
        description="Neural style transfer (Gatys et al. 2016) in JAX.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    g = {title: p.add_argument_group(title, text) for title, text in GROUPS.items()}
    g[IO].add_argument("content", nargs="?", help="content image file")
    g[IO].add_argument("style", nargs="?", help="style image file (several: a.jpg,b.jpg)")
    g[IO].add_argument("-o", "--output", help="output image (.png, .jpg)")
    g[IO].add_argument(
        "--output-depth",
        type=int,
        choices=(8, 16),
        default=8,
        help="bits per channel of the output images: 16 writes a 48-bit PNG from the float "
        "result, for print (default: 8)",
    )
    g[SIZE].add_argument(
        "--size",
        type=int,
        default=512,
        help="longer side of the output in pixels (default: 512; 256 with --demo)",
    )
    add_option_flags(p, g)
    _add_run_flags(g)
    _add_host_flags(g[HOSTS])
    g[IO].add_argument(
        "--mode",
        choices=("stylize", "texture", "reconstruct"),
        default="stylize",
        help="texture: synthesize the STYLE's texture from noise (give only STYLE); "
        "reconstruct: rebuild CONTENT from noise with --content-layers only "
        "(give only CONTENT); both start from noise unless --init is given",
    )
    g[IO].add_argument(
        "--demo",
        action="store_true",
        help="stylize the bundled sample images (256 px, 200 iterations unless given)",
    )
    return p


def add_option_flags(
    p: argparse.ArgumentParser, groups: dict[str, argparse._ArgumentGroup] | None = None
) -> None:
    """One flag per :class:`Options` field (but ``chunk``), with its help, default and type; in
    ``groups[OPTION_GROUP[field]]`` where there is one, else in ``p``'s own options."""
    for f in dataclasses.fields(Options):
        if f.name == "chunk" or f.metadata.get("api_only"):
            continue
        kw: dict[str, Any] = {
            "default": None,
            "help": f"{f.metadata['help']} (default: "
            f"{f.metadata.get('cli_default', _show(f.default))})",
        }
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        kw.update(_option_kind(f, kw["help"]))
        where: argparse._ActionsContainer = (groups or {}).get(OPTION_GROUP.get(f.name, ""), p)
        where.add_argument("--" + f.name.replace("_", "-"), **kw)


def _option_kind(f: dataclasses.Field, text: str) -> dict[str, Any]:
    """The type, nargs, action and any help added for an Options field's flag."""
    if f.name in ("scales", "scale_iterations"):  # scales: sizes, or auto or none
        return dict(nargs="+", type=int if f.name == "scale_iterations" else str)
    if f.name == "style_blend_weights":
        return dict(nargs="+", type=_finite_float, help=text + "; one per STYLE file")
    if f.name == "style_scale":
        return dict(
            type=_finite_float,
            help="resize the style so its longer side is this times the content's (default: 1.0)",
        )
    if f.name in ("content_weight", "style_weight", "tv_weight", "seed", "photoreal_weight"):
        return dict(
            nargs="+",
            type=int if f.name == "seed" else _finite_float,
            help=text + "; several values run as one batched sweep",
        )
    if f.name.endswith("_layers"):
        return dict(type=_layers, metavar="LAYERS", help=text + "; comma-separated, or 'none'")
    if f.type in (bool, "bool"):
        return dict(action="store_true", help=f.metadata["help"])
    if str(f.type).split(" ")[0] in ("int", "<class 'int'>"):
        return dict(type=int)
    if "float" in str(f.type):
        return dict(type=_finite_float)
    return {}


def _add_run_flags(g: dict[str, argparse._ArgumentGroup]) -> None:
    g[IO].add_argument(
        "--content-dir",
        metavar="DIR",
        help="stylize every .png/.jpg in DIR (one size after resizing) as one batch; "
        "then give only STYLE",
    )
    g[OBJECTIVE].add_argument(
        "--content-masks",
        metavar="MASKS",
        help="spatial control: one grayscale mask per STYLE file, comma-separated "
        "(white = that style's region); resized to the content",
    )
    g[OBJECTIVE].add_argument(
        "--content-labels",
        metavar="FILE",
        help="label-guided style (Luan et al. 2017): a colour-coded segmentation of CONTENT "
        "(each flat colour one region, saved losslessly), matched to --style-labels' region of "
        "the same colour; resized to the content by nearest neighbours",
    )
    g[OBJECTIVE].add_argument(
        "--style-labels", metavar="FILE", help="the colour-coded segmentation of STYLE"
    )
    g[IO].add_argument(
        "--save-every",
        type=int,
        metavar="N",
        help="write an intermediate image every N iterations (OUT_stepNNNNN.png)",
    )
    run = g[RUNTIME]
    run.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="save a checkpoint every N iterations (Ctrl-C always saves one)",
    )
    run.add_argument(
        "--checkpoint", metavar="FILE.npz", help="checkpoint file (default: OUT with .ckpt.npz)"
    )
    run.add_argument(
        "--resume",
        metavar="FILE.npz",
        help="continue the run saved in this checkpoint (same inputs and options; "
        "--iterations may be larger)",
    )
    g[IO].add_argument("--json", metavar="REPORT.json", help="write a JSON report of the run")
    g[OPTIMIZER].add_argument(
        "--max-time",
        dest="max_seconds",
        type=duration,
        metavar="DURATION",
        help="a wall-clock budget (e.g. 90m, 2h, 45s; a plain number is seconds), every scale "
        "included: at the budget the image so far is written, with a checkpoint to continue "
        "from, and the exit code is 0",
    )
    run.add_argument(
        "--weights",
        metavar="FILE",
        help="converted VGG19 weights (default: "
        "$JAXNST_WEIGHTS, weights/vgg19.h5 in a checkout, or ~/.cache/jaxnst/vgg19.h5)",
    )
    add_cache_flags(run)
    run.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def add_cache_flags(p: argparse._ActionsContainer) -> None:
    """--compile-cache DIR and --no-compile-cache (read by :func:`jaxnst.cli.runtime.setup`), on
    a parser or one of its groups."""
    p.add_argument(
        "--compile-cache",
        metavar="DIR",
        help="persistent XLA compilation cache, so a later run with the same shapes "
        "skips most compilation (default: $JAXNST_COMPILE_CACHE, else "
        "$XDG_CACHE_HOME/jaxnst/xla or ~/.cache/jaxnst/xla)",
    )
    p.add_argument(
        "--no-compile-cache", action="store_true", help="compile from scratch and write no cache"
    )


def _add_host_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() (auto-detects TPU pods, SLURM, Open MPI); "
        "each process runs its share of the batch and process 0 writes the outputs",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="coordinator address (implies "
        "--distributed; needed where the cluster is not auto-detected)",
    )
    g.add_argument("--num-processes", type=int, help="number of processes (with --coordinator)")
    g.add_argument("--process-id", type=int, help="this process's index (with --coordinator)")


def _show(v: Any) -> str:
    return ",".join(v) if isinstance(v, tuple) else str(v)


def reuse(
    target: argparse.ArgumentParser, source: argparse.ArgumentParser, skip: set[str]
) -> list[argparse.Action]:
    """Add ``source``'s optional flags (their actions, as they are, in their order) but those whose
    dest is in ``skip`` to ``target``, each in the ``target`` group of its ``source`` group's title
    (made there, with the same description and in ``source``'s order, where ``target`` has none
    yet); returns them."""
    where = {g.title: g for g in target._action_groups}
    title = {}
    for group in source._action_groups:
        for action in group._group_actions:
            if action.dest not in skip and action.option_strings:
                title[action] = group.title
                if group.title not in where:
                    where[group.title] = target.add_argument_group(group.title, group.description)
    return [where[title[a]]._add_action(a) for a in source._actions if a in title]
