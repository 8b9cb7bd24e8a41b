"""``jaxnst train STYLE [STYLE ...] --images DIR -o MODEL.jaxnst``: train a feed-forward network
(:func:`jaxnst.train_styles`) on the still image's objective. The objective's flags are the still
command's own (same names, defaults and help). Progress shows steps, loss and ETA; Ctrl-C and
``--max-time`` leave a usable model (with its training state: ``--resume`` continues it bit for
bit). Exit codes: 0 done (also at the time budget), 2 bad input (one line, nothing written), 3 the
loss diverged (the last finite model is written), 4 device failure, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_RUNTIME, EXIT_INTERRUPTED = 2, 3, 4, 130
OBJECTIVE_FLAGS = {
    "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers", "pooling",
    "preserve_color", "style_scale", "weights", "compile_cache", "no_compile_cache",
    "distributed", "coordinator", "num_processes", "process_id", "quiet", "json",
}  # fmt: skip
EPILOG = """\
examples:
  jaxnst train painting.jpg --images photos/ -o painting.jaxnst
  jaxnst train a.jpg b.jpg --images photos/ -o two.jaxnst --strength-range 0.1 10
                                   two styles and two decades of strength in one network
  jaxnst train painting.jpg --images photos/ -o p.jaxnst --max-time 1h --resume
then: jaxnst apply painting.jaxnst photo.jpg -o out.png"""


def build_parser() -> argparse.ArgumentParser:
    from jaxnst.cli import flags

    p = flags._Parser(
        prog="jaxnst train",
        description="Train a feed-forward style network (Johnson et al. 2016; several styles: "
        "Dumoulin et al. 2017) on the still image's objective.",
        epilog=EPILOG,
        formatter_class=flags.HelpFormatter,
    )
    io = p.add_argument_group(flags.IO, "the styles, the training photos and the model file")
    io.add_argument("styles", nargs="+", metavar="STYLE", help="style image file(s)")
    io.add_argument("--images", required=True, metavar="DIR", help="folder of training photos")
    io.add_argument("-o", "--output", required=True, metavar="MODEL", help="model file to write")
    io.add_argument(
        "--sample-every",
        type=int,
        metavar="N",
        help="every N steps write MODEL.samples.png: the held-out photos through the network",
    )
    t = p.add_argument_group("training", "the network and its optimisation (Adam)")
    t.add_argument("--size", type=int, default=256, help="training crop side in px (default 256)")
    t.add_argument("--batch", type=int, default=4, help="photos per step (default 4)")
    t.add_argument("--steps", type=int, default=2000, help="training steps (default 2000)")
    t.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="the first step size (default 2e-3; Johnson's was 1e-3 with Adam, constant)",
    )
    t.add_argument(
        "--average-decay",
        type=float,
        default=None,
        metavar="D",
        help="the model is the moving average of the parameters with decay D per step "
        "(0: the last step's; default 0.98 with --schedule constant, else 0)",
    )
    t.add_argument(
        "--schedule",
        choices=("linear", "constant"),
        default=None,
        help="the step size over the run: linear, decayed to zero at the end of --steps or "
        "--max-time, whichever comes first (default); constant, as Johnson's",
    )
    t.add_argument("--optimizer", choices=("adam", "muon"), default=None,
                   help="muon (default): Muon for the inner convolutions, Nesterov Adam for the "
                   "rest (optax.contrib.muon), one step size; or adam")  # fmt: skip
    t.add_argument(
        "--max-time",
        dest="max_seconds",
        type=flags.duration,
        metavar="DURATION",
        help="a wall-clock budget (90m, 2h, 45s): the model so far is written, exit code 0",
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the training saved in MODEL (same styles, photos and objective; "
        "--steps may be larger)",
    )
    t.add_argument("--width", type=float, default=1.0, help="channel multiplier (default 1.0)")
    t.add_argument(
        "--strength-range",
        nargs=2,
        type=float,
        metavar=("LOW", "HIGH"),
        help="train over multiples LOW..HIGH of --style-weight, conditioned on it, so --strength "
        "can be chosen at apply time (e.g. 0.1 10)",
    )
    t.add_argument("--knots", type=int, default=5, help="strength knots (default 5)")
    t.add_argument("--seed", type=int, default=0, help="photos' order, crops, draws (default 0)")
    t.add_argument("--chunk", type=int, default=10, help="steps per compiled call (default 10)")
    t.add_argument("--held-out", type=int, default=4, help="photos kept out and scored")
    t.add_argument("--checkpoint-every", type=int, default=500, help="write MODEL every N steps")
    flags.reuse(p, flags.build_parser(), {a.dest for a in flags.build_parser()._actions}
                - OBJECTIVE_FLAGS)  # fmt: skip
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from jaxnst import image_io
    from jaxnst.feedforward.data import DataError
    from jaxnst.feedforward.model_file import ModelError
    from jaxnst.model.weights import WeightsError

    try:
        return _run(build_parser().parse_args(argv))
    except (ValueError, DataError, ModelError, image_io.ImageError, WeightsError) as e:
        print(f"jaxnst train: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _check(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """The model path (and the JSON report's), checked before any work."""
    from jaxnst.feedforward import data

    out = Path(args.output)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"{out}: directory {parent} does not exist")
    if out.is_dir():
        raise ValueError(f"{out}: is a directory, expected a model file")
    if args.resume and not out.is_file():
        raise ValueError(f"--resume: {out} does not exist (nothing to continue)")
    data.list_images(args.images)  # a missing or empty folder: refused here
    js = Path(args.json) if args.json else None
    if js is not None and not (js.parent if str(js.parent) else Path(".")).is_dir():
        raise ValueError(f"{js}: directory {js.parent} does not exist")
    return out, js


def _objective(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("content_weight", "style_weight", "tv_weight", "content_layers", "style_layers",
            "pooling", "preserve_color", "style_scale")  # fmt: skip
    o = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    for k in ("content_weight", "style_weight", "tv_weight"):
        if isinstance(o.get(k), list):
            if len(o[k]) != 1:
                raise ValueError(f"--{k.replace('_', '-')}: one value when training")
            o[k] = o[k][0]
    return o


def _average(args: argparse.Namespace) -> dict[str, Any]:
    """The optimisation's flags that were given (``--average-decay``, ``--schedule``,
    ``--learning-rate``, ``--optimizer``), as train_styles' keywords; the others keep its
    defaults."""
    names = ("average_decay", "schedule", "learning_rate", "optimizer")
    given = {k: getattr(args, k, None) for k in names}
    return {k: v for k, v in given.items() if v is not None}


def _run(args: argparse.Namespace) -> int:
    from jaxnst import image_io
    from jaxnst.cli import runtime

    out, js = _check(args)
    styles = [image_io.load(s) for s in args.styles]
    options = _objective(args)
    runtime.setup(args)
    from jaxnst.feedforward import TrainDiverged, load, train_styles
    from jaxnst.model import weights

    variables = weights.load_variables(args.weights)[0] if args.weights else None
    start = load(out).meta.get("steps", 0) if args.resume else 0
    bar = _Bar(args.quiet, args.steps, args.size, args.batch, start)
    sampler = _Sampler(out, args.sample_every, args.images, args.held_out, args.size)
    from jaxnst.optim.compilation import compile_stats

    t0, c0 = time.perf_counter(), compile_stats()
    try:
        r = train_styles(
            styles, args.images, size=args.size, batch=args.batch, steps=args.steps,
            width=args.width, **_average(args),
            strengths=tuple(args.strength_range) if args.strength_range else None,
            knots=args.knots, seed=args.seed, chunk=args.chunk, max_seconds=args.max_seconds,
            resume=out if args.resume else None, variables=variables,
            style_names=[Path(s).stem for s in args.styles], held_out=args.held_out,
            checkpoint=out, checkpoint_every=args.checkpoint_every,
            callback=lambda p, m: (bar.update(p), sampler.after(p, m)), **options,
        )  # fmt: skip
    except KeyboardInterrupt:
        bar.close()
        print(f"jaxnst train: interrupted; the model so far is in {out} (continue with "
              "--resume)", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    except TrainDiverged as e:
        bar.close()
        print(f"jaxnst train: error: {e}; last finite model in {out}", file=sys.stderr)
        return EXIT_DIVERGED
    bar.close()
    c = compile_stats()
    hits = c["cache_hits"] - c0["cache_hits"]  # (a load from a cache counts as a compile too)
    compiled = {"compile_seconds": c["seconds"] - c0["seconds"], "compile_cache_hits": hits,
                "programs_compiled": int(c["compiles"] - c0["compiles"] - hits)}  # fmt: skip
    _finish(args, out, js, r, time.perf_counter() - t0, compiled)
    return 0


def _finish(args: argparse.Namespace, out: Path, js: Path | None, r: Any, seconds: float,
            compiled: dict) -> None:  # fmt: skip
    from jaxnst import image_io

    say = (
        (lambda *m: None)
        if args.quiet
        else (lambda *m: print("jaxnst train:", *m, file=sys.stderr))
    )
    if r.skipped:
        say(r.skipped)
    if r.stopped == "time":
        say(f"stopped at the --max-time budget after {r.steps} steps; continue with --resume")
    scores = ", ".join(f"{k} {v:.4g}" for k, v in r.held_out.items())
    say(f"wrote {out} ({r.steps} steps, {r.images_per_second:.2f} images/s"
        + (f"; held-out loss {scores}" if scores else "") + ")")  # fmt: skip
    hist = r.model.train["history"]
    if len(hist) > 1 and image_io.can_plot():
        plot = image_io.loss_plot(hist[:, 0], [hist[:, 1]], ["batch loss"], "training loss")
        image_io.save(out.with_name(out.name + ".loss.png"), plot)
    if js is not None:
        from jaxnst.cli.outputs import write_json

        write_json(js, {
            "model": str(out), "steps": r.steps, "seconds": seconds,
            "images_per_second": r.images_per_second, "waited_seconds": r.waited_seconds,
            "stopped": r.stopped, "held_out_loss": r.held_out, "skipped": r.skipped,
            "styles": r.model.styles, "size": args.size, "batch": args.batch, **compiled,
        })  # fmt: skip


class _Bar:
    """tqdm's bar over steps, with the loss and images per second; nothing when quiet."""

    def __init__(self, quiet: bool, total: int, size: int, batch: int, start: int):
        self.bar, self.n = None, start
        if not quiet:
            from tqdm import tqdm

            desc = f"train {size}px x{batch}"
            self.bar = tqdm(total=total, initial=start, unit="step", desc=desc, file=sys.stderr,
                            dynamic_ncols=True)  # fmt: skip

    def update(self, p: Any) -> bool:
        if self.bar is not None:
            self.bar.update(p.step - self.n)
            self.bar.set_postfix(loss=f"{p.loss:.4g}", img_s=f"{p.images_per_second:.2f}")
        self.n = p.step
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Sampler:
    """Writes MODEL.samples.png every N steps: the held-out photos (top row), then each style's
    output of them (a row per style), from the model at that step."""

    def __init__(self, out: Path, every: int | None, images: str, held: int, size: int):
        self.out, self.every, self.last = out, every, 0
        self.images, self.held, self.size = images, held, size
        self.photos: Any = None

    def after(self, p: Any, model: Any) -> bool:
        due = self.every and p.step // self.every > self.last // self.every
        self.last = p.step
        if due:
            self.write(model())
        return bool(due)

    def write(self, m: Any) -> None:
        import numpy as np

        from jaxnst import image_io
        from jaxnst.feedforward import apply_style, data

        if self.photos is None:
            _, val = data.validation_split(data.list_images(self.images), self.held)
            crops = [data.Photos(val, self.size, 1, 1).sample(i) for i in range(len(val))]
            self.photos = np.stack(crops) if crops else None
        if self.photos is None:
            return
        tiles = list(self.photos)
        for i in range(len(m.styles)):
            tiles += list(apply_style(m, self.photos, style=i))
        labels = [f"held-out {i + 1}" for i in range(len(self.photos))]
        labels += [f"{s}, step {m.meta['steps']}" for s in m.styles for _ in self.photos]
        sheet = image_io.contact_sheet(tiles, labels, columns=len(self.photos), tile=192)
        image_io.save(self.out.with_name(self.out.name + ".samples.png"), sheet)
