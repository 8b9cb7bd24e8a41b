"""``jaxnst warmup --size 512 [--aspect W:H | --shape HxW] [--scales auto] [--precision ...]``:
fill the persistent compile cache ahead of time (a VM image, a container, or before ``jaxnst
serve`` takes its first job), so that the first real run loads its programs instead of compiling
them.

It runs the still-image command's own path on synthetic images of the shape a run would have: the
flags become :class:`~jaxnst.pipeline.options.Options` as the CLI builds them, the memory preflight
may switch to tiles as it does, coarse-to-fine splits into the same stages, and each stage goes
through the pipeline's stages (prepare, layout, the descent, collect) as :func:`jaxnst.stylize`
does, with one difference: the descent's step count, a runtime value, is set to one, so every
program is traced and compiled exactly as the run compiles it (the same shapes and static settings;
the program does not depend on ``--iterations``) and runs for one step (an L-BFGS iteration is one
to a few evaluations: its line search's trials). It prints one line per XLA program (compiled, or
already in the cache, with its seconds), one per stage and a total. Shapes follow the content:
``--size`` is its longer side, ``--aspect W:H`` its proportions (default 1:1, square), ``--shape
HxW`` its exact size; the style gets the same longer side (times ``--style-scale``) and
``--style-aspect`` (default: the content's).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 4
# Still-image flags that do not shape a program (files, outputs, reports, many hosts).
_SKIP = {
    "max_seconds",
    "content",
    "style",
    "output",
    "output_depth",
    "content_dir",
    "content_masks",
    "content_labels",
    "style_labels",
    "checkpoint",
    "resume",
    "json",
    "demo",
    "help",
    "distributed",
    "coordinator",
    "num_processes",
    "process_id",
}


EPILOG = """\
examples:
  jaxnst warmup --size 512                      a square content, 512 x 512 px
  jaxnst warmup --size 768 --aspect 3:2 --scales auto
  jaxnst warmup --shape 512x768 --precision bf16 --style-weight 1e-4 1e-3
  jaxnst warmup --train --size 256 --batch 4    the programs `jaxnst train` compiles"""


class UsageError(Exception):
    """A bad argument: one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """``jaxnst warmup``'s flags: the content's shape, then the still-image flags that shape the
    compiled programs, reused from ``jaxnst``'s parser with their names, defaults and help."""
    from jaxnst.cli import flags

    p = flags._Parser(
        prog="jaxnst warmup",
        description="Compile, ahead of time and into the persistent compile cache, the programs "
        "that `jaxnst CONTENT STYLE --size N ...` compiles for a content of that shape (default: "
        "square, N x N px), so that run starts without compiling. Takes the still-image flags "
        "that shape the programs (--optimizer, --precision, --scales, --pooling, layers, sweeps, "
        "--mode, --save-every: its chunk); values such as weights do not matter.",
        epilog=EPILOG,
        formatter_class=flags.HelpFormatter,
    )
    content = p.add_argument_group("shape", "the content's shape, and the style's")
    shape = content.add_mutually_exclusive_group()
    shape.add_argument(
        "--aspect",
        metavar="W:H",
        type=_ratio,
        help="the content's width:height, e.g. 3:2 or 451:300 (default: 1:1, a square content "
        "--size px wide); an image of W x H px gets exactly the shape a run of it gets",
    )
    shape.add_argument(
        "--shape",
        metavar="HxW",
        type=_hxw,
        help="the content's exact size in pixels after resizing (instead of --size and --aspect)",
    )
    content.add_argument(
        "--style-aspect",
        metavar="W:H",
        type=_ratio,
        help="the style image's width:height (default: the content's)",
    )
    p.add_argument(
        "--train",
        action="store_true",
        help="compile `jaxnst train`'s programs instead, for its flags (--size, --batch, "
        "--width, ...; see: jaxnst warmup --train --help; jaxnst.cli.train_warmup)",
    )
    flags.reuse(p, flags.build_parser(), _SKIP)
    return p


def _ratio(text: str) -> tuple[float, float]:
    parts = text.replace("/", ":").split(":")
    try:
        w, h = (float(x) for x in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected W:H such as 3:2, got {text!r}") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise argparse.ArgumentTypeError(f"expected two positive numbers W:H, got {text!r}")
    return w, h


def _hxw(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected HxW in pixels such as 512x768, got {text!r}"
        ) from None
    return h, w


def sized(size: float, ratio: tuple[float, float]) -> tuple[int, int]:
    """(H, W) of an image of proportions ``ratio`` (W, H) resized as the CLI resizes a loaded
    image (:func:`jaxnst.image_io.resize`): longer side ``size``, shorter at least MIN_SIDE."""
    from jaxnst.pipeline.options import MIN_SIDE

    w0, h0 = ratio
    s = max(size / max(h0, w0), MIN_SIDE / min(h0, w0))
    return max(1, round(h0 * s)), max(1, round(w0 * s))


def shapes(args: argparse.Namespace) -> tuple[tuple[int, int], tuple[int, int]]:
    """(content (H, W), style (H, W)) from the flags; UsageError for impossible ones."""
    from jaxnst.pipeline.options import MIN_SIDE

    if args.shape is not None:
        content = args.shape
        if min(content) < MIN_SIDE:
            raise UsageError(
                f"--shape must be at least {MIN_SIDE} px per side (VGG19's four poolings), "
                f"got {content[0]}x{content[1]}"
            )
    else:
        if args.size < MIN_SIDE:
            raise UsageError(f"--size must be at least {MIN_SIDE} px, got {args.size}")
        content = sized(args.size, args.aspect or (1.0, 1.0))
    scale = 1.0 if args.style_scale is None else args.style_scale
    if not (math.isfinite(scale) and 0 < scale < 1e3):
        raise UsageError(f"--style-scale must be a number > 0, got {scale}")
    ratio = args.style_aspect or (content[1], content[0])
    return content, sized(max(1, round(scale * max(content))), ratio)


def synthetic_inputs(args: argparse.Namespace, argv: list[str]) -> Any:
    """The :class:`jaxnst.cli.inputs.Inputs` a CLI run of these flags would load, with smooth
    random images of the right shapes in place of the files (the weights come later,
    :func:`load_weights`). UsageError for a bad flag."""
    from jaxnst.cli import inputs as cli_inputs

    content_shape, style_shape = shapes(args)
    args.content, args.style, args.content_dir, args.demo = "(content)", None, None, False
    if args.mode == "stylize":
        args.style = "(style)"
    cli_inputs.apply_modes(args, argv)
    rng = np.random.default_rng(0)
    content = _image(rng, content_shape)
    if args.mode == "texture":  # the content only gives the output's shape
        content = np.zeros_like(content)
    opts = cli_inputs.default_scales(args, cli_inputs.options_from_args(args, content_shape))
    style = _image(rng, style_shape)
    return cli_inputs.Inputs(Path("-"), [], [content], [], [style], None, opts, {}, "")


def load_weights(args: argparse.Namespace, inputs: Any) -> None:
    """The VGG19 weights the run would use (--weights), into ``inputs``; UsageError if missing."""
    from jaxnst.model import weights

    try:
        inputs.variables, inputs.digest = weights.load_variables(args.weights)
    except weights.WeightsError as e:
        raise UsageError(str(e)) from None


def _image(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: smooth colour gradients plus a little noise (its values do not
    shape a program; a photograph-like image keeps the start's losses ordinary)."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(5 * (a * x + b * y)) for a, b in rng.uniform(-1, 1, (3, 2))])
    img = img.transpose(1, 2, 0) + 0.05 * rng.standard_normal((h, w, 3))
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def first_evaluation(
    content: Any,
    style: Any,
    *,
    variables: dict | None = None,
    callback: Any = None,
    content_masks: Any = None,
    **options: Any,
) -> Any:
    """One single-scale stage as :func:`jaxnst.stylize` runs it (the same calls), with the
    descent's step count set to one: its programs are compiled, and run for one step."""
    import jax

    from jaxnst.pipeline import collect, descent, layout, prepare
    from jaxnst.pipeline.options import make_options

    o = make_options(**options)
    if isinstance(o.init, str) and o.init == "recolour":  # a start image: data, not a program
        o = dataclasses.replace(o, init="content")
    clock = collect.start_clock()
    problem = prepare.prepare(content, style, o, variables=variables, content_masks=content_masks)
    lay = layout.make_layout(problem)
    batch = layout.place(problem, lay)
    # One step, a runtime value: the programs are those a run of o.iterations steps calls.
    batch = batch._replace(hyper=batch.hyper._replace(iterations=jax.device_put(np.int32(1))))
    # (a callback, as the CLI's progress bar: the descent then slices out the image it shows)
    progress = descent.run(problem, lay, batch, descent.Hooks(callback=lambda *_: None))
    return collect.collect(problem, lay, batch, progress, clock)


class _Report:
    """Prints the programs compiled since the last line, grouped by name, then a line about them."""

    def __init__(self, programs: list, quiet: bool):
        self.programs, self.quiet, self.shown, self.stages = programs, quiet, 0, 0

    def _new(self) -> list:
        new = self.programs[self.shown :]
        self.shown = len(self.programs)
        return new

    def stage(self, shape: tuple[int, ...], seconds: float, n_stages: int) -> None:
        self.stages += 1
        new = self._new()
        groups: dict[tuple[str, bool], list[float]] = {}  # by name and source, in order
        for p in new:
            groups.setdefault((p.name, p.cached), []).append(p.seconds)
        for (name, cached), secs in groups.items():
            times = f" x{len(secs)}" if len(secs) > 1 else ""
            self.say(f"  {'cached  ' if cached else 'compiled'} {sum(secs):7.2f} s  {name}{times}")
        part = f"stage {self.stages}/{n_stages}, " if n_stages > 1 else ""
        self.say(
            f"{part}{shape[1]}x{shape[0]} px: {len(new)} programs "
            f"({sum(not p.cached for p in new)} compiled), {seconds:.1f} s"
        )

    def aside(self, what: str, seconds: float) -> None:
        """One line for the programs compiled since the last line (not the run's own)."""
        new = self._new()
        if new:
            self.say(f"{what}: {len(new)} programs, {seconds:.1f} s")

    def total(self, compiling: float, t0: float, cache: Any) -> None:
        """The last line: every program, how many compiled, seconds compiling and in all."""
        cached = sum(p.cached for p in self.programs)
        n = len(self.programs)
        self.say(
            f"{n} programs ({n - cached} compiled, {cached} already cached), {compiling:.1f} s "
            f"compiling, {time.perf_counter() - t0:.1f} s in all; "
            + (f"cache: {cache}" if cache else "no cache (--no-compile-cache): nothing kept")
        )

    def say(self, line: str) -> None:
        if not self.quiet:
            print(f"jaxnst warmup: {line}" if not line.startswith(" ") else line, flush=True)


def conv_plans(inputs: Any, o: Any, report: _Report) -> None:
    """``precision="auto"`` on a CPU with bf16 instructions and no shipped defaults for its family
    times the convolution forms once per layer and size bucket; a run does so within a small
    budget (:data:`jaxnst.model.convs.TIMING_SHARE`), the warm-up here without one, ahead of time
    and first, so that its programs are reported apart from the run's."""
    import math

    from jaxnst.model import convs, vgg
    from jaxnst.pipeline import multiscale

    h, w = inputs.contents[0].shape[:2]
    layers = tuple(n for n in vgg.LAYERS if n in {*o.content_layers, *o.style_layers})
    t = time.perf_counter()
    for size, _ in multiscale.stages(o, max(h, w)):
        sh, sw = (h, w) if size == max(h, w) else sized(size, (w, h))
        precision = "fp32" if o.tile and size > o.tile else o.precision
        convs.resolve(precision, sh, sw, layers, vgg.channels_of(inputs.variables), math.inf)
    report.aside(
        "precision auto: timed this CPU's convolution forms for these sizes (the plans are kept "
        "in conv_plans.json; the run needs none of these programs)",
        time.perf_counter() - t,
    )


def warm(inputs: Any, report: _Report) -> None:
    """Run every stage of the run ``inputs`` describes (coarse-to-fine as the run splits it)
    through :func:`first_evaluation`, reporting each."""
    from jaxnst.pipeline import multiscale

    o = multiscale.resolve(inputs.options, inputs.contents[0].shape)
    n_stages = len(multiscale.stages(o, max(inputs.contents[0].shape[:2])))
    conv_plans(inputs, o, report)

    def stage(content: Any, style: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        result = first_evaluation(content, style, **kw)
        report.stage(np.shape(content), time.perf_counter() - t, n_stages)
        return result

    content, style = inputs.contents[0], inputs.styles[0]
    if o.scales:
        multiscale.coarse_to_fine(content, style, o, stage, variables=inputs.variables)
    else:
        fields = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
        stage(content, style, variables=inputs.variables, **fields)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Check the flags, set up the cache, warm every stage, print the total."""
    from jaxnst.cli import runtime
    from jaxnst.optim.compilation import compile_stats, program_log
    from jaxnst.pipeline import memory, multiscale

    t0 = time.perf_counter()
    if args.train:  # (the jaxnst command sends --train to jaxnst.cli.train_warmup)
        raise UsageError("--train: run it as `jaxnst warmup --train ...`")
    inputs = synthetic_inputs(args, argv)  # bad flags exit here, before anything starts
    runtime.setup(args)
    load_weights(args, inputs)
    with program_log() as programs:
        report = _Report(programs, args.quiet)
        (h, w), (sh, sw) = inputs.contents[0].shape[:2], inputs.styles[0].shape[:2]
        o = inputs.options
        report.say(
            f"content {w}x{h} px, style {sw}x{sh} px, {o.optimizer}, precision {o.precision}; "
            + (multiscale.describe(o, (h, w, 3)) or "single-scale")
        )
        try:
            report.say(memory.preflight_line(inputs) or "memory: not checked")
        except memory.MemoryRefused as e:
            print(f"jaxnst: error: {e}", file=sys.stderr)
            return EXIT_RUNTIME
        c0 = compile_stats()
        warm(inputs, report)
        stats = compile_stats()
    report.total(stats["seconds"] - c0["seconds"], t0, runtime.compile_cache_dir(args))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``jaxnst warmup ARGS`` (``jaxnst.cli`` dispatches here). Bad input prints
    one line and returns 2."""
    from jaxnst.cli.inputs import UsageError as CliUsageError
    from jaxnst.cli.runtime import RuntimeSetupError

    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    try:
        return run(args, argv)
    except (UsageError, CliUsageError, RuntimeSetupError) as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("jaxnst: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
