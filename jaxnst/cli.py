"""Command line: ``jaxnst CONTENT STYLE -o OUT.png`` (also ``python scripts/stylize.py``).

Flags for stylize's options are derived from :class:`jaxnst.stylize.Options`, the one home of their
defaults. Exit codes: 0 done; 2 bad input (one line on stderr, nothing written); 3 the run diverged
(the last finite image is written); 4 the device failed (out of memory, ...); 130 interrupted
(a checkpoint is written; continue with --resume).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Sequence

import numpy as np

MIN_SIDE = 16  # VGG19 pools four times before conv5_1
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_RUNTIME = 4
EXIT_INTERRUPTED = 130
DEMO_CONTENT = "chelsea.jpg"
DEMO_STYLE = "swirls.png"
DEMO_DEFAULTS = {"size": 256, "iterations": 200, "output": "jaxnst-demo.png"}


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
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
    from jaxnst.stylize import Options
    p = _Parser(prog="jaxnst", description="Neural style transfer (Gatys et al. 2016) in JAX.")
    p.add_argument("content", nargs="?", help="content image file")
    p.add_argument("style", nargs="?", help="style image file (several: a.jpg,b.jpg)")
    p.add_argument("-o", "--output", help="output image (.png, .jpg)")
    p.add_argument("--size", type=int, default=512,
                   help="longer side of the output in pixels (default: 512; 256 with --demo)")
    for f in dataclasses.fields(Options):
        if f.name == "chunk":
            continue
        flag = "--" + f.name.replace("_", "-")
        kw = {"default": None, "help": f"{f.metadata['help']} (default: {_show(f.default)})"}
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        if f.name in ("scales", "scale_iterations"):
            kw.update(nargs="+", type=int)
        elif f.name == "style_blend_weights":
            kw.update(nargs="+", type=_finite_float, help=kw["help"] + "; one per STYLE file")
        elif f.name == "style_scale":
            kw.update(type=_finite_float, help="resize the style so its longer side is this times "
                      "the content's (default: 1.0)")
        elif f.name in ("content_weight", "style_weight", "tv_weight", "seed"):
            kw.update(nargs="+", type=int if f.name == "seed" else _finite_float,
                      help=kw["help"] + "; several values run as one batched sweep")
        elif f.name.endswith("_layers"):
            kw.update(type=_layers, metavar="LAYERS",
                      help=kw["help"] + "; comma-separated, or 'none'")
        elif f.type in (bool, "bool"):
            kw.update(action="store_true", help=f.metadata["help"])
        elif str(f.type).split(" ")[0] in ("int", "<class 'int'>"):
            kw["type"] = int
        elif "float" in str(f.type):
            kw["type"] = _finite_float
        p.add_argument(flag, **kw)
    p.add_argument("--content-dir", metavar="DIR",
                   help="stylize every .png/.jpg in DIR (one size after resizing) as one batch; "
                        "then give only STYLE")
    p.add_argument("--content-masks", metavar="MASKS",
                   help="spatial control: one grayscale mask per STYLE file, comma-separated "
                        "(white = that style's region); resized to the content")
    p.add_argument("--save-every", type=int, metavar="N",
                   help="write an intermediate image every N iterations (OUT_stepNNNNN.png)")
    p.add_argument("--checkpoint-every", type=int, metavar="N",
                   help="save a checkpoint every N iterations (Ctrl-C always saves one)")
    p.add_argument("--checkpoint", metavar="FILE.npz",
                   help="checkpoint file (default: OUT with .ckpt.npz)")
    p.add_argument("--resume", metavar="FILE.npz",
                   help="continue the run saved in this checkpoint (same inputs and options; "
                        "--iterations may be larger)")
    p.add_argument("--json", metavar="REPORT.json", help="write a JSON report of the run")
    p.add_argument("--weights", metavar="FILE", help="converted VGG19 weights (default: "
                   "$JAXNST_WEIGHTS, weights/vgg19.h5 in a checkout, or ~/.cache/jaxnst/vgg19.h5)")
    p.add_argument("--compile-cache", metavar="DIR",
                   help="persistent XLA compilation cache, so a later run with the same shapes "
                        "skips most compilation (default: $JAXNST_COMPILE_CACHE, else "
                        "$XDG_CACHE_HOME/jaxnst/xla or ~/.cache/jaxnst/xla)")
    p.add_argument("--no-compile-cache", action="store_true",
                   help="compile from scratch and write no cache")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    g = p.add_argument_group("many hosts (TPU pod slices, multi-node GPU)")
    g.add_argument("--distributed", action="store_true",
                   help="call jax.distributed.initialize() (auto-detects TPU pods, SLURM, Open MPI); "
                        "each process runs its share of the batch and process 0 writes the outputs")
    g.add_argument("--coordinator", metavar="HOST:PORT", help="coordinator address (implies "
                   "--distributed; needed where the cluster is not auto-detected)")
    g.add_argument("--num-processes", type=int, help="number of processes (with --coordinator)")
    g.add_argument("--process-id", type=int, help="this process's index (with --coordinator)")
    p.add_argument("--mode", choices=("stylize", "texture", "reconstruct"), default="stylize",
                   help="texture: synthesize the STYLE's texture from noise (give only STYLE); "
                        "reconstruct: rebuild CONTENT from noise with --content-layers only "
                        "(give only CONTENT); both start from noise unless --init is given")
    p.add_argument("--demo", action="store_true",
                   help="stylize the bundled sample images (256 px, 200 iterations unless given)")
    return p


def _show(v) -> str:
    return ",".join(v) if isinstance(v, tuple) else str(v)


def sample_path(name: str) -> Path:
    return Path(str(resources.files("jaxnst") / "samples" / name))


def _say(quiet: bool, *msg) -> None:
    if not quiet:
        print("jaxnst:", *msg, file=sys.stderr)


def _check_number(name: str, v, minimum: float, strict: bool) -> None:
    if v is None:
        return
    if not math.isfinite(v) or (v <= minimum if strict else v < minimum):
        op = ">" if strict else ">="
        raise UsageError(f"--{name.replace('_', '-')} must be a finite number {op} {minimum}, "
                         f"got {v}")


def _intermediate_path(out: Path, step: int) -> Path:
    return out.with_name(f"{out.stem}_step{step:05d}{out.suffix}")


SHORT = {"content_weight": "cw", "style_weight": "sw", "tv_weight": "tv", "seed": "seed"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _load_sized(path, size: int, image_io):
    """Load, refuse images under MIN_SIDE px per side, resize so the longer side is ``size`` (the
    shorter side stays >= MIN_SIDE for very wide or tall images)."""
    im = image_io.load(path)
    if min(im.shape[:2]) < MIN_SIDE:
        raise UsageError(f"{path}: {im.shape[1]}x{im.shape[0]} px is too small; VGG19's four "
                         f"poolings need at least {MIN_SIDE} px per side")
    return image_io.resize(im, size, min_side=MIN_SIDE)


def _load_contents(args, image_io):
    """(paths, images) of the content image(s), resized to --size."""
    if args.content_dir:
        d = Path(args.content_dir)
        if not d.is_dir():
            raise UsageError(f"--content-dir {d}: not a directory")
        paths = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise UsageError(f"--content-dir {d}: no .png/.jpg images")
    else:
        paths = [Path(args.content)]
    images = [_load_sized(p, args.size, image_io) for p in paths]
    for p, im in zip(paths, images):
        if im.shape != images[0].shape:
            raise UsageError(f"{p}: {im.shape[1]}x{im.shape[0]} px after resizing, but "
                             f"{paths[0].name} is {images[0].shape[1]}x{images[0].shape[0]}; "
                             "--content-dir images must share one size")
    return paths, images


def _member_name(out: Path, values: dict, content: Path | None) -> Path:
    parts = [out.stem] + ([content.stem] if content is not None else [])
    parts += [f"{SHORT[k]}{v:g}" for k, v in values.items()]
    return out.with_name("_".join(parts) + out.suffix)


def _runtime_message(e: Exception, w: int, h: int) -> str | None:
    """A clear message for errors raised from inside JAX/XLA, or None for anything else."""
    text = " ".join(str(e).split())
    name = type(e).__name__
    if "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or isinstance(e, MemoryError):
        return (f"out of memory at {w}x{h} px ({text[:160]}); try a smaller --size or fewer "
                "sweep values")
    if name in ("XlaRuntimeError", "JaxRuntimeError") or "UNIMPLEMENTED" in text:
        return f"the device failed ({text[:200]}); try a smaller --size or another precision"
    return None


def _init_distributed(args) -> None:
    import jax
    # CPU processes exchange results through gloo collectives; GPUs/TPUs use their own.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(coordinator_address=args.coordinator,
                                   num_processes=args.num_processes, process_id=args.process_id)
    except (RuntimeError, ValueError) as e:
        raise UsageError("--distributed: could not initialise the processes ("
                         + " ".join(str(e).split())[:200] + ")") from None


def compile_cache_dir(args) -> Path | None:
    """Where CLI runs keep compiled programs: --compile-cache, $JAXNST_COMPILE_CACHE (empty:
    off), else the per-user cache directory. None when switched off."""
    if args.no_compile_cache:
        return None
    if args.compile_cache:
        return Path(args.compile_cache).expanduser()
    env = os.environ.get("JAXNST_COMPILE_CACHE")
    if env is not None:
        return Path(env).expanduser() if env.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxnst" / "xla"


def _enable_compile_cache(path: Path | None, quiet: bool) -> None:
    """Turn on JAX's persistent compilation cache (before the first compilation). The directory is
    private to the user (0700): whoever can write to it can make this process run code. A cache
    that cannot be used only costs compile time, so failure is a warning, not an error."""
    if path is None:
        return
    import jax
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(path, os.W_OK):
            raise PermissionError("not writable")
    except OSError as e:
        _say(quiet, f"jaxnst: compile cache {path} unusable ({e.strerror or e}); compiling "
                    "without it")
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Keep every program: besides the descent loop (seconds) a run compiles ~70 small helpers
    # (resizing, targets, ...) that together took as long again; cached, a 32 px run's
    # compilation went from 10.1 s to 2.0 s (the rest is tracing and lowering).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def run(argv: Sequence[str] | None = None) -> int:
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    if args.distributed or args.coordinator:
        _init_distributed(args)  # before anything can start the XLA backend
    _enable_compile_cache(compile_cache_dir(args), args.quiet)
    from jaxnst import image_io
    if args.content_dir and args.style is None:
        args.content, args.style = None, args.content  # only STYLE was given positionally
    if args.demo:
        args.content = args.content or str(sample_path(DEMO_CONTENT))
        args.style = args.style or str(sample_path(DEMO_STYLE))
        args.output = args.output or DEMO_DEFAULTS["output"]
        if args.iterations is None:
            args.iterations = DEMO_DEFAULTS["iterations"]
        if "--size" not in argv:
            args.size = DEMO_DEFAULTS["size"]
    if args.mode != "stylize":
        if args.style is not None or args.content_dir or not args.content:
            raise UsageError(f"--mode {args.mode} takes one image file "
                             f"({'STYLE' if args.mode == 'texture' else 'CONTENT'})")
        args.style = args.content
        if args.init is None:
            args.init = "noise"
        if args.mode == "texture":
            args.content_layers = ()
        else:
            args.style_layers = ()
    if not (args.content or args.content_dir) or not args.style:
        raise UsageError("CONTENT and STYLE image files are required (or --demo)")
    if not args.output:
        raise UsageError("-o/--output is required")
    if args.size < MIN_SIDE:
        raise UsageError(f"--size must be at least {MIN_SIDE} px (VGG19's four poolings), "
                         f"got {args.size}")
    if args.iterations is not None and args.iterations < 1:
        raise UsageError(f"--iterations must be >= 1, got {args.iterations}")
    for flag in ("save_every", "checkpoint_every"):
        v = getattr(args, flag)
        if v is not None and v < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be >= 1, got {v}")
    if args.resume and not Path(args.resume).is_file():
        raise UsageError(f"--resume {args.resume}: no such file")
    for name in ("content_weight", "style_weight", "tv_weight"):
        for v in getattr(args, name) or ():
            _check_number(name, v, 0.0, strict=False)
    _check_number("learning_rate", args.learning_rate, 0.0, strict=True)
    for v in args.seed or ():
        if not 0 <= v < 2**32:
            raise UsageError(f"--seed must be in [0, 2**32), got {v}")
    out = image_io.check_output_path(args.output)
    if args.json:
        jp = Path(args.json)
        if not (jp.parent if str(jp.parent) else Path(".")).is_dir():
            raise UsageError(f"--json {jp}: directory {jp.parent} does not exist")

    content_paths, contents = _load_contents(args, image_io)
    if args.mode == "texture":  # the content only gives the output's shape
        contents = [np.zeros_like(contents[0])]
    # Several styles: STYLE may list files separated by commas (as in jcjohnson/neural-style).
    # --style-scale is applied here, at load, with the float Lanczos resize.
    scale = args.style_scale if args.style_scale is not None else 1.0
    if not (math.isfinite(scale) and 0 < scale < 1e3):
        raise UsageError(f"--style-scale must be a number > 0, got {scale}")
    style_paths = [p for p in args.style.split(",") if p]
    styles = [_load_sized(p, max(1, round(scale * max(contents[0].shape[:2]))), image_io)
              for p in style_paths]
    if args.style_blend_weights is not None and len(args.style_blend_weights) != len(styles):
        raise UsageError(f"--style-blend-weights has {len(args.style_blend_weights)} values for "
                         f"{len(styles)} style images")
    style = styles[0]
    masks = None
    if args.content_masks:
        mask_paths = [p for p in args.content_masks.split(",") if p]
        if len(mask_paths) != len(styles):
            raise UsageError(f"--content-masks has {len(mask_paths)} masks for {len(styles)} "
                             "style images (one per style)")
        masks = np.stack([image_io.resize(image_io.load(p), shape=contents[0].shape[:2]).mean(-1)
                          for p in mask_paths])

    from jaxnst.stylize import SWEEPABLE, Options, make_options
    options = {}
    for f in dataclasses.fields(Options):
        v = getattr(args, f.name, None)
        if f.name in ("chunk", "style_scale") or v is None:
            continue
        if f.name in SWEEPABLE:
            v = v[0] if len(v) == 1 else list(v)
        options[f.name] = v
    if "init" in options and options["init"] not in ("content", "noise"):
        options["init"] = image_io.resize(image_io.load(options["init"]),
                                          shape=contents[0].shape[:2])
    every = [v for v in (args.save_every, args.checkpoint_every) if v]
    if every:
        options["chunk"] = math.gcd(*every)
    try:
        opts = make_options(**options)
    except ValueError as e:
        raise UsageError(str(e)) from None

    from jaxnst import weights
    try:
        variables, digest = weights.load_variables(args.weights)
    except weights.WeightsError as e:
        raise UsageError(str(e)) from None

    import jax
    from jaxnst.stylize import stylize, sweep_grid
    writer = jax.process_index() == 0  # outputs are written once, by process 0
    if not writer:
        args.quiet = True
    save = image_io.save if writer else (lambda *a, **k: None)
    h, w = contents[0].shape[:2]
    n = len(contents) * sweep_grid(opts)[1].shape[0]
    batched = n > 1 or args.content_dir is not None
    _say(args.quiet, f"{w}x{h} px, {opts.iterations} {opts.optimizer} iterations"
                     + (f", batch of {n}" if batched else "") + f" on {jax.device_count()} "
                     f"{jax.devices()[0].device_kind} device(s)")
    bar = None
    if not args.quiet:
        from tqdm import tqdm
        bar = tqdm(total=opts.iterations, unit="it", file=sys.stderr, dynamic_ncols=True,
                   desc="stylizing")
    last = {"step": 0}

    def callback(step, loss, image):
        if bar is not None:
            bar.set_postfix(loss=f"{loss:.4g}", refresh=False)
            bar.update(step - last["step"])
        last["step"] = step
        if args.save_every and step % args.save_every == 0 and step < opts.iterations:
            im = np.asarray(image)
            if batched:
                for i in range(im.shape[0]):
                    save(_intermediate_path(out.with_name(f"{out.stem}_{i:03d}{out.suffix}"),
                                                     step), np.clip(im[i], 0, 1))
            else:
                save(_intermediate_path(out, step), np.clip(im, 0, 1))
        return None

    ckpt_path = Path(args.checkpoint) if args.checkpoint else out.with_suffix(".ckpt.npz")
    from jaxnst import checkpoint

    written = []

    def on_checkpoint(ck):
        checkpoint.save(ckpt_path, ck)
        written.append(ck.step)
        _say(args.quiet, f"checkpoint at iteration {ck.step} written to {ckpt_path}")

    t0 = time.perf_counter()
    content_arg = np.stack(contents) if args.content_dir else contents[0]
    try:
        result = stylize(content_arg, styles if len(styles) > 1 else style, variables=variables, callback=callback,
                         checkpoint_every=args.checkpoint_every,
                         on_checkpoint=on_checkpoint if jax.process_count() == 1 else None,
                         resume=args.resume, content_masks=masks,
                         **{f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)})
    except checkpoint.CheckpointError as e:
        raise UsageError(str(e)) from None
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
            bar = None
        if written:
            print(f"jaxnst: interrupted; checkpoint written to {ckpt_path}; continue with: "
                  f"--resume {ckpt_path}", file=sys.stderr)
            return EXIT_INTERRUPTED
        raise
    except Exception as e:
        msg = _runtime_message(e, w, h)
        if msg is None:
            raise
        print(f"jaxnst: error: {msg}", file=sys.stderr)
        return EXIT_RUNTIME
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    report = {
        "content": [str(p) for p in content_paths] if args.content_dir else str(args.content),
        "style": style_paths if len(style_paths) > 1 else str(args.style),
        "image_size": [w, h],
        "wall_seconds": wall, "compile_seconds": result.compile_seconds,
        "compile_cache": jax.config.jax_compilation_cache_dir,
        "compile_cache_hits": result.compile_cache_hits,
        "run_seconds": result.run_seconds,
        "device": result.device, "backend": jax.default_backend(),
        "devices": result.devices, "processes": jax.process_count(),
        "weights_sha256": digest,
        "options": {k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in dataclasses.asdict(opts).items() if k != "init"}
        | {"init": opts.init if isinstance(opts.init, str) else args.init},
    }
    diverged = []
    if not batched:
        save(out, result.image)
        final = {k: float(v[-1]) for k, v in result.history.items() if k != "step"}
        report |= {"output": str(out), "iterations": result.iterations,
                   "evaluations": result.evaluations, "final_loss": final,
                   "seconds_per_evaluation": result.run_seconds / max(result.evaluations, 1),
                   "diverged_at": result.diverged_at,
                   "history": {k: [float(x) for x in v] for k, v in result.history.items()}}
        if result.diverged_at is not None:
            diverged.append((out, result.diverged_at))
        style_msg = f"style loss {result.history['style'][0]:.4g} -> {final['style']:.4g}"
    else:
        members = []
        names = [k for k in SWEEPABLE if k in (result.sweep or {})]
        tiles, labels = [contents[0], style], ["content", "style"]
        for i in range(result.image.shape[0]):
            values = {k: float(result.sweep[k][i]) for k in names}
            cpath = content_paths[int(result.sweep["content_index"][i])] \
                if "content_index" in result.sweep else None
            path = _member_name(out, values, cpath)
            save(path, result.image[i])
            final = {k: float(v[i, -1]) for k, v in result.history.items() if k != "step"}
            members.append({"output": str(path), **values,
                            **({"content": str(cpath)} if cpath else {}),
                            "iterations": int(result.iterations[i]),
                            "evaluations": int(result.evaluations[i]),
                            "final_loss": final, "diverged_at": result.diverged_at[i],
                            "history": {k: [float(x) for x in (v if k == "step" else v[i])]
                                        for k, v in result.history.items()}})
            tiles.append(result.image[i])
            labels.append(" ".join(f"{SHORT[k]} {v:g}" for k, v in values.items())
                          + (f" {cpath.name}" if cpath else "")
                          + f"\nstyle {final['style']:.3g} content {final['content']:.3g}")
            if result.diverged_at[i] is not None:
                diverged.append((path, result.diverged_at[i]))
        sheet = out.with_name(f"{out.stem}_sheet.png")
        save(sheet, image_io.contact_sheet(tiles, labels))
        member_labels = [lab.split("\n")[0] for lab in labels[2:]]
        plots = [image_io.loss_plot(result.history["step"], list(result.history[k]), member_labels,
                                    title=f"{k} loss") for k in ("style", "content")]
        plot = out.with_name(f"{out.stem}_losses.png")
        save(plot, np.concatenate(plots, axis=1))
        report |= {"members": members, "contact_sheet": str(sheet), "loss_plot": str(plot),
                   "batch_evaluations": result.batch_evaluations,
                   "seconds_per_batch_evaluation":
                       result.run_seconds / max(result.batch_evaluations, 1)}
        style_msg = f"contact sheet {sheet}, loss plot {plot}"
        out = f"{len(members)} images named {out.stem}_*{out.suffix}"
    if args.json and writer:
        _write_json(Path(args.json), report)
    if diverged:
        for path, step in diverged:
            print(f"jaxnst: error: the loss became non-finite at iteration {step}; wrote the last "
                  f"finite image to {path}; try a smaller --learning-rate or weights",
                  file=sys.stderr)
        return EXIT_DIVERGED
    _say(args.quiet, f"wrote {out} ({wall:.1f} s of which {result.compile_seconds:.1f} s "
                     f"compiling; {style_msg})")
    return 0


def _write_json(path: Path, report: dict) -> None:
    from jaxnst._atomic import atomic_path
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")


# Front ends with a command of their own: ``jaxnst NAME ...`` runs ``module.main(argv)``.
SUBCOMMANDS = {"serve": "jaxnst.studio.cli", "video": "jaxnst.video.cli"}


def main(argv: Sequence[str] | None = None) -> int:
    from jaxnst.image_io import ImageError
    from jaxnst.weights import WeightsError
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv and argv[0] in SUBCOMMANDS:
        import importlib
        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    try:
        return run(argv)
    except (UsageError, ImageError, WeightsError) as e:
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("jaxnst: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
