"""Command line: ``jaxnst CONTENT STYLE -o OUT.png`` (also ``python scripts/stylize.py``).

Its flags, derived from :class:`jaxnst.pipeline.options.Options` and shown in groups, are built
in :mod:`jaxnst.cli.flags`. :func:`run` reads as the pipeline of a CLI run: parse -> set up the
runtime -> check and load inputs (:mod:`jaxnst.cli.inputs`) -> stylize -> write outputs
(:mod:`jaxnst.cli.outputs`), with errors mapped to exit codes here. Exit codes: 0 done; 2 bad input
(one line on stderr, nothing written); 3 the run diverged (the last finite image is written); 4 the
device failed (out of memory, ...); 130 interrupted (a checkpoint is written; continue with
--resume).
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxnst.cli import runtime
from jaxnst.cli.flags import EXIT_BAD_INPUT, add_cache_flags, add_option_flags, build_parser
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
from jaxnst.cli.runtime import compile_cache_dir, exit_if_in_flight, runtime_message
from jaxnst.pipeline.options import MIN_SIDE

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
    "add_cache_flags",
    "add_option_flags",
    "build_parser",
    "compile_cache_dir",
    "main",
    "run",
    "sample_path",
]

EXIT_RUNTIME = 4
EXIT_INTERRUPTED = 130
# Front ends with a command of their own: ``jaxnst NAME ...`` runs ``module.main(argv)``.
SUBCOMMANDS = {
    "apply": "jaxnst.cli.apply",
    "serve": "jaxnst.studio.cli",
    "train": "jaxnst.cli.train",
    "video": "jaxnst.video.cli",
    "warmup": "jaxnst.cli.warmup",
}


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
    if not args.quiet:
        from jaxnst.cli import estimate

        _say(False, estimate.time_line(inputs) or "time: not estimated")
    session = Session(args, inputs, writer, batched)
    t0 = time.perf_counter()
    try:
        result = _stylize(args, inputs, session)
    except _Stopped as e:
        return e.code
    finally:
        session.close()
    if result.stopped_on_time:
        _say(
            args.quiet,
            f"stopped at the --max-time budget after {result.iterations} iterations; continue "
            f"with: --resume {session.ckpt_path}",
        )
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
            content_labels=None if inputs.labels is None else inputs.labels[0],
            style_labels=None if inputs.labels is None else inputs.labels[1],
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
            exit_if_in_flight()
            raise _Stopped(EXIT_INTERRUPTED) from None
        raise
    except Exception as e:
        h, w = inputs.contents[0].shape[:2]
        msg = runtime_message(e, w, h)
        if msg is None:
            raise
        print(f"jaxnst: error: {msg}", file=sys.stderr)
        raise _Stopped(EXIT_RUNTIME) from None


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

        name, rest = SUBCOMMANDS[argv[0]], argv[1:]
        if argv[0] == "warmup" and "--train" in rest:  # the training programs' warmup
            name, rest = "jaxnst.cli.train_warmup", [a for a in rest if a != "--train"]
        return int(importlib.import_module(name).main(rest))
    try:
        return run(argv)
    except (UsageError, ImageError, WeightsError, runtime.RuntimeSetupError) as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("jaxnst: interrupted; nothing written", file=sys.stderr)
        exit_if_in_flight()
        return EXIT_INTERRUPTED


def entry() -> None:
    """The ``jaxnst`` program (console script, ``python -m jaxnst.cli``): :func:`main`, the exit
    handlers (JAX's, logging's), then exit without the interpreter's own teardown: freeing the
    weights and XLA's client object by object took 0.3-0.5 s of a 7 s run at 384 px on our CPU
    machine (issue 20). In-process callers (tests) call :func:`main` and exit normally."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    handlers = getattr(atexit, "_run_exitfuncs", None)
    if handlers is None:
        sys.exit(code)
    handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
