"""The device check's steps for the front ends around ``stylize``: tiled evaluation and a video
batch (each measured when that front end exists, else skipped saying why), and
scripts/compile_matrix.py (the CLI cold and warm, XLA:GPU's compile options) in a process of its
own."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxnst.bench.check import Check, one_line
from jaxnst.bench.evals import ROOT
from jaxnst.bench.machine import pair
from jaxnst.stylize import make_options, stylize


def measure_optional(
    c: Check,
    stylize: Callable = stylize,
    make_options: Callable = make_options,
    video_api: Callable | None = None,
) -> None:
    """Tiled evaluation and video, when those front ends exist. ``stylize``, ``make_options`` and
    ``video_api`` (default :func:`_video_api`): the front ends measured (tests give stand-ins)."""
    p = c.plan
    try:
        default = make_options().tile
    except (AttributeError, ValueError):
        c.add(
            {
                "name": "tiled",
                "size": p.tile_size,
                "precision": "fp32",
                "skipped": "not available: stylize() has no tile option yet",
            }
        )
    else:

        def tiled() -> dict:
            content, style = pair(p.tile_size)
            out = {}
            for label, tile in (
                ("untiled", default),
                ("tiled", True if isinstance(default, bool) else 512),
            ):
                r = stylize(
                    content, style, variables=c.variables, tile=tile, iterations=p.tile_iterations
                )
                out[f"{label}_seconds_per_eval"] = r.run_seconds / max(r.evaluations, 1)
                out[f"{label}_final_style"] = float(np.asarray(r.history["style"])[-1])
            return out

        need = 3 * c.compile_guess(p.tile_size) + 6 * p.tile_iterations * c.eval_guess(p.tile_size)
        c.attempt("tiled", p.tile_size, "fp32", need, tiled)
    measure_video(c, video_api or _video_api)


def _accepted(fn: Callable, kwargs: dict) -> dict:
    """The keyword arguments ``fn`` takes (all of them when it has ``**options``)."""
    params = inspect.signature(fn).parameters.values()
    if any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in {q.name for q in params}}


def _video_api() -> tuple[Callable | None, Any, str]:
    """``stylize_video``, the synthetic-clip module (or None) and, when absent, why."""
    try:
        if importlib.util.find_spec("jaxnst.video") is None:
            return None, None, "not available: no jaxnst.video"
        import jaxnst.video as pkg

        fn = getattr(pkg, "stylize_video", None)
        if fn is None and importlib.util.find_spec("jaxnst.video.api") is not None:
            from jaxnst.video import api

            fn = getattr(api, "stylize_video", None)
        synth: Any = None
        if importlib.util.find_spec("jaxnst.video.synthetic") is not None:
            from jaxnst.video import synthetic as synth
    except Exception as e:  # noqa: BLE001  (a front end being built: report, don't fail)
        return None, None, f"not available: {one_line(e)}"
    return fn, synth, "" if fn else "not available: jaxnst.video has no stylize_video() yet"


def measure_video(c: Check, video_api: Callable | None = None) -> None:
    """Seconds per frame of a multi-pass video batch (all frames one batch, Ruder et al.), on a
    synthetic pan with its true flow (no optical-flow estimation in the timing)."""
    p = c.plan
    fn, synth, why = (video_api or _video_api)()
    if fn is not None and not p.video_frames:
        fn, why = None, "smoke run: stylize_video compiles for about a minute on a CPU"
    if fn is None:
        c.add({"name": "video", "size": p.e2e_size, "precision": "fp32", "skipped": why})
        return
    h, w = round(p.e2e_size * 2 / 3), p.e2e_size

    def one() -> dict:
        given: dict[str, Any] = {
            "variables": c.variables,
            "iterations": p.video_iterations,
            "passes": p.video_passes,
            "pass_iterations": p.video_pass_iterations,
        }
        if synth is not None:
            from jaxnst.video import core

            clip = synth.pan(p.video_frames, (h, w), (0.5, 2.0))
            ones = np.ones(clip.visible.shape, np.float32)
            given["flow"] = core.Flow(
                *(jnp.asarray(x) for x in (clip.forward, clip.backward, ones, ones))
            )
            frames = clip.frames
        else:  # no synthetic clips: a rolled image, flow estimated by the front end
            frames = np.stack([np.roll(pair(w)[0], 2 * k, axis=1) for k in range(p.video_frames)])
        t = time.perf_counter()
        r = fn(frames, pair(w)[1], **_accepted(fn, given))
        wall = time.perf_counter() - t
        return {
            "frames": len(frames),
            "image_shape": list(frames.shape[1:]),
            "pass_count": p.video_passes,
            "mode": getattr(r, "mode", None),
            "wall_seconds": wall,
            "seconds_per_frame": wall / len(frames),
            "video_compile_seconds": getattr(r, "compile_seconds", None),
            "pass_seconds": [float(x) for x in getattr(r, "pass_seconds", [])],
        }

    its = p.video_frames * (p.video_iterations + p.video_passes * p.video_pass_iterations)
    need = 3 * c.compile_guess(p.e2e_size) + 2 * its * c.eval_guess(p.e2e_size)
    c.attempt("video", p.e2e_size, "fp32", need, one)


def measure_compile(c: Check) -> None:
    """scripts/compile_matrix.py in a process of its own (its caches start empty): the CLI end
    to end at 512 px cold and warm, then compile seconds against seconds per evaluation for
    XLA:GPU's autotuning and Triton options at the matrix sizes."""
    p = c.plan
    if not p.matrix_sizes:
        c.add({"name": "compile_matrix", "size": None, "precision": None, "skipped": "smoke"})
        return
    sizes = [str(s) for s in p.matrix_sizes]
    need = 2 * p.child_start + 2 * p.e2e_iterations * 1.3 * c.eval_guess(p.e2e_size)
    need += sum((8 + 2) * c.compile_guess(s) for s in p.matrix_sizes)

    def one() -> dict:
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, str(ROOT / "scripts" / "compile_matrix.py"), "--sizes", *sizes]
            cmd += ["--json", f"{d}/m.json", "--e2e", str(p.e2e_size), str(p.e2e_iterations)]
            if c.weights_arg in ("random", "small"):
                cmd += ["--smoke"]
            else:
                cmd += ["--weights", c.weights_arg]
            timeout = max(min(c.left() + 30, 3 * need + 30), 10)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
            if r.returncode != 0:
                tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"compile_matrix exited {r.returncode}: {tail[:300]}")
            return {"rows": json.loads(Path(f"{d}/m.json").read_text())["rows"]}

    c.attempt("compile_matrix", None, "fp32", need, one)
