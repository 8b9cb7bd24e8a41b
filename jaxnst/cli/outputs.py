"""The CLI's outputs: progress while the descent runs (bar, intermediate images, checkpoints) and,
after it, the result image(s), the contact sheet and loss plot of a batch, and the JSON report.
Every file is written atomically; in a multi-process run only process 0 writes."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jaxnst.cli.inputs import Inputs
from jaxnst.pipeline.options import SWEEPABLE

if TYPE_CHECKING:
    from jaxnst.pipeline.collect import Result

EXIT_DIVERGED = 3
SHORT = {"content_weight": "cw", "style_weight": "sw", "tv_weight": "tv", "seed": "seed",
         "photoreal_weight": "pr"}  # fmt: skip


def say(quiet: bool, *msg: Any) -> None:
    if not quiet:
        print("jaxnst:", *msg, file=sys.stderr)


def intermediate_path(out: Path, step: int) -> Path:
    return out.with_name(f"{out.stem}_step{step:05d}{out.suffix}")


class Session:
    """The CLI's side of a running descent: progress bar, --save-every images, checkpoints."""

    def __init__(self, args: argparse.Namespace, inputs: Inputs, writer: bool, batched: bool):
        from jaxnst import image_io

        self.args, self.out, self.batched = args, inputs.output, batched
        self.iterations = inputs.options.iterations
        depth = getattr(args, "output_depth", 8)
        self.save = (
            functools.partial(image_io.save, depth=depth) if writer else (lambda *a, **k: None)
        )
        self.ckpt_path = (
            Path(args.checkpoint) if args.checkpoint else self.out.with_suffix(".ckpt.npz")
        )
        self.written: list[int] = []
        self.last = self.done = 0  # done: iterations of finished coarse-to-fine stages
        self.bar: Any = None
        self.loss_text = ""
        self.tiles = contextlib.ExitStack()
        if not args.quiet:
            from tqdm import tqdm

            from jaxnst.pipeline import multiscale

            stages = multiscale.stages(inputs.options, max(inputs.contents[0].shape[:2]))
            self.bar = tqdm(
                total=sum(n for _, n in stages) if inputs.options.scales else self.iterations,
                unit="it",
                file=sys.stderr,
                dynamic_ncols=True,
                desc="stylizing",
            )
            from jaxnst import _interrupt

            self.tiles.enter_context(_interrupt.listen(self.tile))

    def tile(self, pass_no: int, index: int, count: int) -> None:
        """A tiled evaluation's progress inside an iteration (from a runtime thread): the tile
        and pass, and the seconds left in this pass at the pace of its tiles so far."""
        from jaxnst import _interrupt

        pace = _interrupt.tile_seconds().get(f"pass{pass_no}")
        left = f", ~{pace * (count - index):.0f} s left in it" if pace else ""
        if self.bar is not None:
            text = f"tile {index + 1}/{count} of pass {pass_no}{left}"
            self.bar.set_postfix_str(", ".join(t for t in (self.loss_text, text) if t))

    def callback(self, step: int, loss: float, image: Any) -> None:
        if step < self.last:  # coarse-to-fine: the next stage counts from 0 again
            self.done += self.last
        if self.bar is not None:
            self.loss_text = f"loss={loss:.4g}"
            self.bar.set_postfix_str(self.loss_text, refresh=False)
            self.bar.update(self.done + step - self.bar.n)
        self.last = step
        every = self.args.save_every
        if every and step % every == 0 and step < self.iterations:
            im, out = np.asarray(image), self.out
            if self.batched:
                for i in range(im.shape[0]):
                    member = out.with_name(f"{out.stem}_{i:03d}{out.suffix}")
                    self.save(intermediate_path(member, step), np.clip(im[i], 0, 1))
            else:
                self.save(intermediate_path(out, step), np.clip(im, 0, 1))

    def on_checkpoint(self, ck: Any) -> None:
        from jaxnst.pipeline import checkpoint

        checkpoint.save(self.ckpt_path, ck)
        self.written.append(ck.step)
        say(self.args.quiet, f"checkpoint at iteration {ck.step} written to {self.ckpt_path}")

    def close(self) -> None:
        self.tiles.close()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def write_outputs(
    args: argparse.Namespace,
    inputs: Inputs,
    result: Result,
    session: Session,
    wall: float,
    writer: bool,
) -> int:
    """Write the image(s), sheet, plot and JSON report; report divergence (exit 3) or success."""
    report = _report(args, inputs, result, wall)
    if not session.batched:
        diverged, extra, msg = _write_single(inputs.output, result, session)
        out_msg = str(inputs.output)
    else:
        diverged, extra, msg = _write_batch(inputs, result, session)
        out_msg = (
            f"{len(extra['members'])} images named {inputs.output.stem}_*{inputs.output.suffix}"
        )
    if args.json and writer:
        write_json(Path(args.json), report | extra)
    for line in (result.labels_left_out, *result.notes):
        if line:
            say(args.quiet, line)
    if result.smoothing is not None:
        s = result.smoothing
        say(
            args.quiet,
            f"smoothed (--photoreal-smooth {s['weight']:g}): {np.max(s['iterations'])} "
            f"conjugate-gradient iterations, relative residual {np.max(s['residual']):.1e} "
            f"(tolerance {s['tolerance']:g}), {s['seconds']:.1f} s",
        )
    if diverged:
        for path, step in diverged:
            print(
                f"jaxnst: error: the loss became non-finite at iteration {step}; wrote the last "
                f"finite image to {path}; try a smaller --learning-rate or weights",
                file=sys.stderr,
            )
        return EXIT_DIVERGED
    say(
        args.quiet,
        f"wrote {out_msg} ({wall:.1f} s of which {result.compile_seconds:.1f} s compiling; {msg})",
    )
    return 0


def _report(
    args: argparse.Namespace, inputs: Inputs, result: Result, wall: float
) -> dict[str, Any]:
    import jax

    from jaxnst import _interrupt

    h, w = inputs.contents[0].shape[:2]
    opts = inputs.options
    if opts.photoreal_adapt and result.options is not None:  # the weight the run used
        opts = dataclasses.replace(opts, photoreal_weight=result.options.photoreal_weight)
    paths = inputs.style_paths
    return {
        "content": [str(p) for p in inputs.content_paths]
        if args.content_dir
        else str(args.content),
        "style": paths if len(paths) > 1 else str(args.style),
        "image_size": [w, h],
        "wall_seconds": wall,
        "compile_seconds": result.compile_seconds,
        "compile_cache": jax.config.jax_compilation_cache_dir,  # type: ignore[attr-defined]
        "compile_cache_hits": result.compile_cache_hits,
        "programs_compiled": result.programs_compiled,  # (0 when warm: tests/test_warmup.py)
        "run_seconds": result.run_seconds,
        "stopped_on_time": result.stopped_on_time,
        "seconds_per_tile": _interrupt.tile_seconds() if opts.tile else None,
        "device": result.device,
        "backend": jax.default_backend(),
        "devices": result.devices,
        "processes": jax.process_count(),
        "weights_sha256": inputs.digest,
        "labels_left_out": result.labels_left_out,  # --content-labels: colours not used
        "notes": list(result.notes),  # e.g. photoreal_adapt's raised weight
        "smoothing": None  # --photoreal-smooth: the conjugate-gradient solve(s)
        if result.smoothing is None
        else {k: np.asarray(v).tolist() for k, v in result.smoothing.items()},
        "options": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(opts).items()
            if k != "init"
        }
        | {"init": opts.init if isinstance(opts.init, str) else args.init},
    }


def _write_single(
    out: Path, result: Result, session: Session
) -> tuple[list[tuple[Path, int]], dict[str, Any], str]:
    session.save(out, result.image)
    final = {k: float(v[-1]) for k, v in result.history.items() if k != "step"}
    extra = {
        "output": str(out),
        "iterations": result.iterations,
        "evaluations": result.evaluations,
        "final_loss": final,
        "seconds_per_evaluation": result.run_seconds / max(int(result.evaluations), 1),
        "diverged_at": result.diverged_at,
        "history": {k: [float(x) for x in v] for k, v in result.history.items()},
    }
    diverged = [] if result.diverged_at is None else [(out, result.diverged_at)]
    msg = f"style loss {result.history['style'][0]:.4g} -> {final['style']:.4g}"
    return diverged, extra, msg  # type: ignore[return-value]


def member_name(out: Path, values: dict[str, float], content: Path | None) -> Path:
    parts = [out.stem] + ([content.stem] if content is not None else [])
    parts += [f"{SHORT[k]}{v:g}" for k, v in values.items()]
    return out.with_name("_".join(parts) + out.suffix)


def _write_batch(
    inputs: Inputs, result: Result, session: Session
) -> tuple[list[tuple[Path, int]], dict[str, Any], str]:
    from jaxnst import image_io

    out, sweep = inputs.output, result.sweep or {}
    diverged_at: list = result.diverged_at  # type: ignore[assignment]
    members, diverged = [], []
    names = [k for k in SWEEPABLE if k in sweep]
    tiles, labels = [inputs.contents[0], inputs.styles[0]], ["content", "style"]
    for i in range(result.image.shape[0]):
        values = {k: float(sweep[k][i]) for k in names}
        cpath = (
            inputs.content_paths[int(sweep["content_index"][i])]
            if "content_index" in sweep
            else None
        )
        path = member_name(out, values, cpath)
        session.save(path, result.image[i])
        final = {k: float(v[i, -1]) for k, v in result.history.items() if k != "step"}
        members.append(
            {
                "output": str(path),
                **values,
                **({"content": str(cpath)} if cpath else {}),
                "iterations": int(result.iterations[i]),  # type: ignore[index]
                "evaluations": int(result.evaluations[i]),  # type: ignore[index]
                "final_loss": final,
                "diverged_at": diverged_at[i],
                "history": {
                    k: [float(x) for x in (v if k == "step" else v[i])]
                    for k, v in result.history.items()
                },
            }
        )
        tiles.append(result.image[i])
        labels.append(
            " ".join(f"{SHORT[k]} {v:g}" for k, v in values.items())
            + (f" {cpath.name}" if cpath else "")
            + f"\nstyle {final['style']:.3g} content {final['content']:.3g}"
        )
        if diverged_at[i] is not None:
            diverged.append((path, diverged_at[i]))
    sheet = out.with_name(f"{out.stem}_sheet.png")
    session.save(sheet, image_io.contact_sheet(tiles, labels))
    plot = _loss_plots(session, out, result, [lab.split("\n")[0] for lab in labels[2:]])
    extra = {
        "members": members,
        "contact_sheet": str(sheet),
        "loss_plot": str(plot) if plot else None,
        "batch_evaluations": result.batch_evaluations,
        "seconds_per_batch_evaluation": result.run_seconds / max(result.batch_evaluations, 1),
    }
    shown = f"loss plot {plot}" if plot else f"no loss plot (needs {image_io.PLOTS_EXTRA})"
    return diverged, extra, f"contact sheet {sheet}, {shown}"


def _loss_plots(session: Session, out: Path, result: Any, labels: list[str]) -> Path | None:
    """The batch's style and content losses side by side, or None without matplotlib."""
    from jaxnst import image_io

    if not image_io.can_plot():
        return None
    plots = [
        image_io.loss_plot(
            result.history["step"], list(result.history[k]), labels, title=f"{k} loss"
        )
        for k in ("style", "content")
    ]
    plot = out.with_name(f"{out.stem}_losses.png")
    session.save(plot, np.concatenate(plots, axis=1))
    return plot


def write_json(path: Path, report: dict[str, Any]) -> None:
    """Write ``report`` as indented JSON, atomically."""
    from jaxnst._atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
