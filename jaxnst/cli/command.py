"""Command line: ``jaxnst CONTENT STYLE -o OUT.png`` (also ``python scripts/stylize.py``).

Flags for stylize's options are derived from :class:`jaxnst.pipeline.options.Options`, the one home
of their defaults. :func:`run` reads as the pipeline of a CLI run: parse -> set up the runtime ->
check and load inputs (:mod:`jaxnst.cli.inputs`) -> stylize -> write outputs
(:mod:`jaxnst.cli.outputs`), with errors mapped to exit codes here. Exit codes: 0 done; 2 bad input
(one line on stderr, nothing written); 3 the run diverged (the last finite image is written); 4 the
device failed (out of memory, ...); 130 interrupted (a checkpoint is written; continue with
--resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxnst.cli import runtime
from jaxnst.cli.inputs import (
    DEMO_CONTENT,
    DEMO_DEFAULTS,
    DEMO_STYLE,
    Inputs,
    UsageError,
    apply_modes,
    check_args,
    load_inputs,
    sample_path,
)
from jaxnst.cli.outputs import EXIT_DIVERGED, Session, write_outputs
from jaxnst.cli.runtime import compile_cache_dir
from jaxnst.pipeline.options import MIN_SIDE, Options

if TYPE_CHECKING:
    from jaxnst.pipeline.collect import Result

__all__ = [
    "DEMO_CONTENT",
    "DEMO_DEFAULTS",
    "DEMO_STYLE",
    "EXIT_BAD_INPUT",
    "EXIT_DIVERGED",
    "EXIT_INTERRUPTED",
    "EXIT_RUNTIME",
    "MIN_SIDE",
    "SUBCOMMANDS",
    "UsageError",
    "build_parser",
    "compile_cache_dir",
    "main",
    "run",
    "sample_path",
]

EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 4
EXIT_INTERRUPTED = 130
# Front ends with a command of their own: ``jaxnst NAME ...`` runs ``module.main(argv)``.
SUBCOMMANDS = {
    "serve": "jaxnst.studio.cli",
    "video": "jaxnst.video.cli",
    "warmup": "jaxnst.cli.warmup",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2, no usage dump
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _layers(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(t for t in text.replace(",", " ").split() if t)


def _finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return v


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxnst`` parser: positional files, one flag per :class:`Options` field, the run's
    files and caches, many-host flags, modes."""
    p = _Parser(prog="jaxnst", description="Neural style transfer (Gatys et al. 2016) in JAX.")
    p.add_argument("content", nargs="?", help="content image file")
    p.add_argument("style", nargs="?", help="style image file (several: a.jpg,b.jpg)")
    p.add_argument("-o", "--output", help="output image (.png, .jpg)")
    p.add_argument(
        "--output-depth",
        type=int,
        choices=(8, 16),
        default=8,
        help="bits per channel of the output images: 16 writes a 48-bit PNG from the float "
        "result, for print (default: 8)",
    )
    p.add_argument(
        "--size",
        type=int,
        default=512,
        help="longer side of the output in pixels (default: 512; 256 with --demo)",
    )
    add_option_flags(p)
    _add_run_flags(p)
    _add_host_flags(p)
    p.add_argument(
        "--mode",
        choices=("stylize", "texture", "reconstruct"),
        default="stylize",
        help="texture: synthesize the STYLE's texture from noise (give only STYLE); "
        "reconstruct: rebuild CONTENT from noise with --content-layers only "
        "(give only CONTENT); both start from noise unless --init is given",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="stylize the bundled sample images (256 px, 200 iterations unless given)",
    )
    return p


def add_option_flags(p: argparse.ArgumentParser) -> None:
    """One flag per :class:`Options` field (but ``chunk``), with its help, default and type."""
    for f in dataclasses.fields(Options):
        if f.name == "chunk" or f.metadata.get("api_only"):
            continue
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {
            "default": None,
            "help": f"{f.metadata['help']} (default: "
            f"{f.metadata.get('cli_default', _show(f.default))})",
        }
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.name in ("scales", "scale_iterations"):  # scales: sizes, or auto or none
            kw.update(nargs="+", type=int if f.name == "scale_iterations" else str)
        elif f.name == "style_blend_weights":
            kw.update(nargs="+", type=_finite_float, help=kw["help"] + "; one per STYLE file")
        elif f.name == "style_scale":
            kw.update(
                type=_finite_float,
                help="resize the style so its longer side is this times "
                "the content's (default: 1.0)",
            )
        elif f.name in ("content_weight", "style_weight", "tv_weight", "seed"):
            kw.update(
                nargs="+",
                type=int if f.name == "seed" else _finite_float,
                help=kw["help"] + "; several values run as one batched sweep",
            )
        elif f.name.endswith("_layers"):
            kw.update(
                type=_layers, metavar="LAYERS", help=kw["help"] + "; comma-separated, or 'none'"
            )
        elif f.type in (bool, "bool"):
            kw.update(action="store_true", help=f.metadata["help"])
        elif str(f.type).split(" ")[0] in ("int", "<class 'int'>"):
            kw["type"] = int
        elif "float" in str(f.type):
            kw["type"] = _finite_float
        p.add_argument(flag, **kw)


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--content-dir",
        metavar="DIR",
        help="stylize every .png/.jpg in DIR (one size after resizing) as one batch; "
        "then give only STYLE",
    )
    p.add_argument(
        "--content-masks",
        metavar="MASKS",
        help="spatial control: one grayscale mask per STYLE file, comma-separated "
        "(white = that style's region); resized to the content",
    )
    p.add_argument(
        "--save-every",
        type=int,
        metavar="N",
        help="write an intermediate image every N iterations (OUT_stepNNNNN.png)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="save a checkpoint every N iterations (Ctrl-C always saves one)",
    )
    p.add_argument(
        "--checkpoint", metavar="FILE.npz", help="checkpoint file (default: OUT with .ckpt.npz)"
    )
    p.add_argument(
        "--resume",
        metavar="FILE.npz",
        help="continue the run saved in this checkpoint (same inputs and options; "
        "--iterations may be larger)",
    )
    p.add_argument("--json", metavar="REPORT.json", help="write a JSON report of the run")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="converted VGG19 weights (default: "
        "$JAXNST_WEIGHTS, weights/vgg19.h5 in a checkout, or ~/.cache/jaxnst/vgg19.h5)",
    )
    add_cache_flags(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")


def add_cache_flags(p: argparse.ArgumentParser) -> None:
    """--compile-cache DIR and --no-compile-cache (read by :func:`jaxnst.cli.runtime.setup`)."""
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


def _add_host_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("many hosts (TPU pod slices, multi-node GPU)")
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


def run(argv: Sequence[str] | None = None) -> int:
    """One CLI run; returns the exit code (bad input raises UsageError, see :func:`main`)."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    runtime.setup(args)  # distributed, compile cache: before the backend
    apply_modes(args, argv)  # --demo, --mode texture/reconstruct, --content-dir
    out = check_args(args)  # flags and output paths, before any file is read
    inputs = load_inputs(args, out)  # images, masks, init, options, weights
    import jax

    writer = jax.process_index() == 0  # outputs are written once, by process 0
    args.quiet = args.quiet or not writer
    batched = _announce(args, inputs)
    from jaxnst.pipeline import memory, multiscale

    schedule = multiscale.describe(inputs.options, inputs.contents[0].shape)
    if schedule:
        _say(args.quiet, schedule)
    try:  # before anything is compiled: a run that will not fit stops here, not in the kernel
        _say(args.quiet, memory.preflight_line(inputs) or "memory: not checked")
    except memory.MemoryRefused as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    session = Session(args, inputs, writer, batched)
    t0 = time.perf_counter()
    try:
        result = _stylize(args, inputs, session)
    except _Stopped as e:
        return e.code
    finally:
        session.close()
    return write_outputs(args, inputs, result, session, time.perf_counter() - t0, writer)


class _Stopped(Exception):
    """The run ended without a result; ``code`` is the exit code (its message is printed)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _announce(args: argparse.Namespace, inputs: Inputs) -> bool:
    """Say what will run; returns whether the result is a batch (a sweep or --content-dir)."""
    import jax

    from jaxnst.pipeline.layout import sweep_grid

    opts = inputs.options
    h, w = inputs.contents[0].shape[:2]
    n = len(inputs.contents) * sweep_grid(opts)[1].shape[0]
    batched = n > 1 or args.content_dir is not None
    _say(
        args.quiet,
        f"{w}x{h} px, {opts.iterations} {opts.optimizer} iterations"
        + (f", batch of {n}" if batched else "")
        + f" on {jax.device_count()} "
        f"{jax.devices()[0].device_kind} device(s)",
    )
    return batched


def _stylize(args: argparse.Namespace, inputs: Inputs, session: Session) -> Result:
    """Run :func:`jaxnst.stylize.stylize` (looked up at call time) and map what it raises."""
    import jax

    from jaxnst.pipeline import checkpoint
    from jaxnst.stylize import stylize

    opts = inputs.options
    styles = inputs.styles
    content = np.stack(inputs.contents) if args.content_dir else inputs.contents[0]
    try:
        return stylize(
            content,
            styles if len(styles) > 1 else styles[0],
            variables=inputs.variables,
            callback=session.callback,
            checkpoint_every=args.checkpoint_every,
            on_checkpoint=session.on_checkpoint if jax.process_count() == 1 else None,
            resume=args.resume,
            content_masks=inputs.masks,
            **{f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)},
        )
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    except KeyboardInterrupt:
        session.close()
        if session.written:
            print(
                f"jaxnst: interrupted; checkpoint written to {session.ckpt_path}; continue "
                f"with: --resume {session.ckpt_path}",
                file=sys.stderr,
            )
            raise _Stopped(EXIT_INTERRUPTED) from None
        raise
    except Exception as e:
        h, w = inputs.contents[0].shape[:2]
        msg = _runtime_message(e, w, h)
        if msg is None:
            raise
        print(f"jaxnst: error: {msg}", file=sys.stderr)
        raise _Stopped(EXIT_RUNTIME) from None


def _runtime_message(e: Exception, w: int, h: int) -> str | None:
    """A clear message for errors raised from inside JAX/XLA, or None for anything else."""
    text = " ".join(str(e).split())
    name = type(e).__name__
    if "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(e, MemoryError):
        return (
            f"out of memory at {w}x{h} px ({text[:160]}); try a smaller --size or fewer "
            "sweep values"
        )
    if name in ("XlaRuntimeError", "JaxRuntimeError") or "UNIMPLEMENTED" in text:
        return f"the device failed ({text[:200]}); try a smaller --size or another precision"
    return None


def _say(quiet: bool, *msg: Any) -> None:
    if not quiet:
        print("jaxnst:", *msg, file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """The ``jaxnst`` command: ``jaxnst serve|video|warmup ...`` run those commands; anything
    else is a still-image run. Bad input prints one line and returns 2; Ctrl-C returns 130."""
    from jaxnst.image_io import ImageError
    from jaxnst.model.weights import WeightsError

    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return int(importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:]))
    try:
        return run(argv)
    except (UsageError, ImageError, WeightsError, runtime.RuntimeSetupError) as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("jaxnst: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
