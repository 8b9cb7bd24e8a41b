"""The body of ``jaxnst video``: inputs read and checked, the run with progress and resumable
state, frames written as they finish, the output encoded. See :mod:`jaxnst.video.cli`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from jaxnst import image_io
from jaxnst._atomic import atomic_path
from jaxnst.video import io as vio
from jaxnst.video.args import EXIT_INTERRUPTED, EXIT_RUNTIME, UsageError, check_args
from jaxnst.video.core import VideoState

STATE = "jaxnst-video-state.npz"


def _say(quiet: bool, *msg: Any) -> None:
    if not quiet:
        print("jaxnst:", *msg, file=sys.stderr)


def work_dir(out: Path, kind: str) -> Path:
    """Where finished frames and the state go: the output folder itself, or OUT.frames/."""
    return out if kind == "folder" else out.with_name(out.name + ".frames")


def fingerprint(
    frames: np.ndarray, styles: list[np.ndarray], options: Any, video: dict, digest: str
) -> str:
    """sha256 over the frames, styles, options and video settings: a state from other inputs is
    refused by --resume."""
    h = hashlib.sha256()
    for a in [frames, *styles]:
        h.update(np.ascontiguousarray(a, np.float32).tobytes())
    opts = {k: v for k, v in dataclasses.asdict(options).items() if k != "init"}
    h.update(
        json.dumps([opts, str(options.init), video, digest], sort_keys=True, default=str).encode()
    )
    return h.hexdigest()


def save_state(path: Path, state: VideoState, fp: str, sequential: bool) -> None:
    """Atomically: ``done``, the float frames needed to continue (sequential: the last finished
    frame; multi-pass: all), per-frame losses and seconds, and the fingerprint."""
    keep = state.frames[state.done - 1 : state.done] if sequential else state.frames
    arrays = {
        "done": np.int64(state.done),
        "frames": keep,
        "seconds": state.seconds,
        "fingerprint": np.frombuffer(fp.encode(), np.uint8),
        **{f"loss_{k}": v for k, v in state.losses.items()},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]


def load_state(
    path: Path, fp: str, shape: tuple[int, ...], work: Path, sequential: bool
) -> VideoState:
    """The state saved by :func:`save_state`; earlier sequential frames come back from the PNGs."""
    if not path.is_file():
        raise UsageError(f"--resume: no saved state {path} (nothing to continue)")
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 (a damaged file raises many kinds)
        raise UsageError(f"{path}: unreadable state ({' '.join(str(e).split())[:120]})") from None
    if bytes(d["fingerprint"]).decode() != fp:
        raise UsageError(
            f"{path}: saved by a run with other inputs or options; start without --resume"
        )
    done = int(d["done"])
    frames = np.zeros(shape, np.float32)
    if sequential:
        for i in range(done - 1):
            frames[i] = image_io.load(work / vio.FRAME_NAME.format(i + 1))
        if done:
            frames[done - 1] = d["frames"][0]
    else:
        frames[:] = d["frames"]
    losses = {k[5:]: v for k, v in d.items() if k.startswith("loss_")}
    return VideoState(done, frames, losses, d["seconds"])


def _inputs(args: Any) -> tuple[Any, ...]:
    from jaxnst.cli import inputs as cli_inputs
    from jaxnst.model import weights

    check_args(args)
    out = Path(args.output)
    kind = vio.output_kind(out)
    clip = vio.read(args.input, start=args.start, max_frames=args.max_frames, size=args.size)
    args.content = None
    styles = [
        cli_inputs.load_sized(
            p, max(1, round((args.style_scale or 1.0) * max(clip.frames.shape[1:3])))
        )
        for p in args.style.split(",")
        if p
    ]
    if not styles:
        raise UsageError("STYLE: no style image given")
    opts = cli_inputs.options_from_args(args, clip.frames.shape[1:3])
    try:
        variables, digest = weights.load_variables(args.weights)
    except weights.WeightsError as e:
        raise UsageError(str(e)) from None
    return out, kind, clip, styles, opts, variables, digest


class _Progress:
    """One bar over frames (sequential) or passes (multi-pass), with tqdm's ETA; the postfix
    shows the current frame's (or pass's) iteration and loss."""

    def __init__(self, total: int, done: int, unit: str, quiet: bool):
        self.bar = None
        if not quiet:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=done,
                unit=unit,
                file=sys.stderr,
                dynamic_ncols=True,
                desc="stylizing",
            )

    def chunk(self, info: dict[str, Any]) -> None:
        if self.bar is not None:
            where = f"frame {info['frame'] + 1}" if "frame" in info else f"pass {info['pass']}"
            self.bar.set_postfix_str(f"{where} it {info['step']} loss {info['loss']:.4g}")

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args: Any) -> int:
    """Run ``jaxnst video`` with parsed ``args``; returns the exit code."""
    from jaxnst.cli import runtime

    runtime.setup(args)  # distributed, compile cache: before anything starts the backend
    out, kind, clip, styles, opts, variables, digest = _inputs(args)
    import jax

    from jaxnst.video.api import stylize_video

    writer = jax.process_index() == 0
    t_n, sequential = clip.frames.shape[0], args.passes == 0
    video = {
        "temporal_weight": args.temporal_weight,
        "passes": args.passes,
        "pass_iterations": args.pass_iterations,
        "blend": args.blend,
    }
    fp = fingerprint(clip.frames, styles, opts, video, digest)
    work = work_dir(out, kind)
    state_path = work / STATE
    resume = (
        load_state(state_path, fp, clip.frames.shape, work, sequential) if args.resume else None
    )
    h, w = clip.frames.shape[1:3]
    _announce(args.quiet or not writer, t_n, w, h, sequential, args.passes, resume)
    if not _preflight(args, clip.frames.shape, opts, variables, args.quiet or not writer):
        return EXIT_RUNTIME
    bar = _Progress(
        t_n if sequential else args.passes + 1,
        resume.done if resume else 0,
        "frame" if sequential else "pass",
        args.quiet or not writer,
    )

    def on_state(state: VideoState) -> None:
        if writer:
            new = [state.done - 1] if sequential else range(t_n)
            for i in new:
                vio.save_frame(work, i + 1, state.frames[i])
            save_state(state_path, state, fp, sequential)
        bar.advance()

    t0 = time.perf_counter()
    try:
        result = stylize_video(
            clip.frames,
            styles if len(styles) > 1 else styles[0],
            variables=variables,
            callback=bar.chunk,
            on_state=on_state,
            resume=resume,
            **video,
            **{f.name: getattr(opts, f.name) for f in dataclasses.fields(opts)},
        )
    except KeyboardInterrupt:
        bar.close()
        print(
            f"jaxnst: interrupted; finished frames and state are in {work}; continue with: "
            "--resume",
            file=sys.stderr,
        )
        runtime.exit_if_in_flight(EXIT_INTERRUPTED)  # (a frame's evaluation may still be running)
        return EXIT_INTERRUPTED
    except Exception as e:
        bar.close()
        msg = runtime.runtime_message(e, w, h)
        if msg is None:
            raise
        print(f"jaxnst: error: {msg}", file=sys.stderr)
        return EXIT_RUNTIME
    bar.close()
    if writer:
        _finish(args, out, kind, work, clip, result, time.perf_counter() - t0)
    return 0


def _finish(
    args: Any, out: Path, kind: str, work: Path, clip: vio.Clip, result: Any, wall: float
) -> None:
    fps = args.fps or clip.fps
    if kind != "folder":
        vio.write(out, list(result.frames), fps, audio=clip)
        shutil.rmtree(work, ignore_errors=True)
    else:
        (work / STATE).unlink(missing_ok=True)
    if args.json:
        report = {
            "input": str(args.input),
            "output": str(out),
            "frames": len(result.frames),
            "mode": result.mode,
            "wall_seconds": wall,
            "flow_seconds": result.flow_seconds,
            "seconds_per_frame": [float(s) for s in result.seconds],
            "losses": {k: [float(x) for x in v] for k, v in result.losses.items()},
            "devices": result.devices,
            "fps": fps,
        }
        with atomic_path(Path(args.json)) as tmp, open(tmp, "w") as f:
            json.dump(report, f, indent=2)
    _say(
        args.quiet,
        f"wrote {out} ({len(result.frames)} frames, {wall:.1f} s, "
        f"{np.mean(result.seconds):.2f} s per frame)",
    )


def _preflight(args: Any, shape: tuple, opts: Any, variables: dict, quiet: bool) -> bool:
    """Print the memory and time lines before anything is compiled, as for a still image; False
    (after one line) when the clip will not fit."""
    try:
        lines = plan_lines(shape, opts, variables, args.passes, args.pass_iterations)
    except RuntimeError as e:  # memory.MemoryRefused
        print(f"jaxnst: error: {e}", file=sys.stderr)
        return False
    for line in lines:
        _say(quiet, line)
    return True


def plan_lines(
    shape: tuple[int, ...], opts: Any, variables: dict, passes: int, pass_iterations: int
) -> list[str]:
    """The memory and time lines before a clip's descent (the still image's, for the largest
    batch: one frame in sequential mode, all T in multi-pass's first pass). A clip whose batch
    fits only in tiles is refused (MemoryRefused, one line): video does not tile."""
    from jaxnst.cli import estimate
    from jaxnst.model import vgg
    from jaxnst.pipeline import memory

    t_n, h, w = shape[:3]
    members = 1 if passes == 0 else t_n
    est = memory.check(h, w, members, opts, vgg.channels_of(variables))
    lines = []
    if est is not None:
        if est.tile is not None:
            raise memory.MemoryRefused(
                f"{members} frame(s) of {w}x{h} px at once need ~{memory._gib(est.untiled)}, "
                f"{memory._gib(est.available)} available: use a smaller --size"
                + (" or --passes 0 (one frame at a time)" if passes else "")
            )
        lines.append(
            f"memory: ~{memory._gib(est.resident + est.step)} peak estimated, "
            f"{memory._gib(est.available)} available ({est.source})"
        )
    if os.environ.get(estimate.OFF_ENV) != "0":
        try:
            per_mp = estimate.seconds_per_megapixel(variables, opts.precision)
            s = t_n * estimate.seconds(h, w, 1, opts, per_mp)
            if passes:
                again = dataclasses.replace(opts, iterations=pass_iterations)
                s += passes * t_n * estimate.seconds(h, w, 1, again, per_mp)
            lines.append(f"time: ~{estimate._clock(s)} estimated for the descent (plus compiling)")
        except Exception as e:  # noqa: BLE001 (an estimate never stops a run)
            lines.append(f"time: not estimated ({type(e).__name__})")
    return lines


def _announce(
    quiet: bool, t_n: int, w: int, h: int, sequential: bool, passes: int, resume: Any
) -> None:
    mode = "sequential" if sequential else f"multi-pass ({passes} passes)"
    unit = "frames" if sequential else "passes"
    again = f", resuming after {resume.done} {unit}" if resume else ""
    _say(quiet, f"{t_n} frames of {w}x{h} px, {mode}{again}")
