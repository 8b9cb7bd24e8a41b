"""``jaxnst.stylize_video``: the public entry point of the video front end (see
:mod:`jaxnst.video.core` for the method)."""

from __future__ import annotations

import time
from typing import Any

import jax
import numpy as np

from jaxnst.optim.compilation import compile_stats
from jaxnst.pipeline import prepare
from jaxnst.video import core, multipass
from jaxnst.video.core import (
    BLEND,
    PASS_ITERATIONS,
    TEMPORAL_WEIGHT,
    Callback,
    Flow,
    StateHook,
    VideoResult,
    VideoState,
)


def stylize_video(
    frames: Any,
    style: Any,
    *,
    temporal_weight: float = TEMPORAL_WEIGHT,
    passes: int = 0,
    pass_iterations: int = PASS_ITERATIONS,
    blend: float = BLEND,
    variables: dict | None = None,
    flow: Flow | None = None,
    flow_preset: str = "fine",
    callback: Callback | None = None,
    on_state: StateHook | None = None,
    resume: VideoState | None = None,
    **options: Any,
) -> VideoResult:
    """Temporally consistent style transfer of a clip (Ruder, Dosovitskiy & Brox 2016).

    frames: (T, H, W, 3) float RGB in [0, 1]. style: (H_s, W_s, 3) (or a list, as for
    :func:`jaxnst.stylize`). ``options``: every still-image option of :class:`jaxnst.Options`
    (one value each: no sweeps, no coarse-to-fine); ``iterations`` is each frame's budget
    (multi-pass: of the first, independent pass).

    temporal_weight: weight of ``mean(c (x - warped)^2)`` (pixels in [0, 1]); 0 turns the
        temporal loss off (the warped start remains).
    passes: 0 for the sequential mode (frame after frame); P > 0 for the multi-pass mode (all
        frames one batch; P passes of ``pass_iterations`` after the first, alternating direction,
        blending with weight ``blend``, Ruder's delta).
    flow: precomputed :class:`~jaxnst.video.core.Flow` (default: OpenCV DIS on the frames, with
        ``flow_preset``; needs the ``video`` extra).
    callback(info): after every compiled chunk; ``info`` has mode, frame/pass, step, loss.
        Returning True stops that frame's (or pass's) descent early.
    on_state(state): after every finished frame (sequential) or pass (multi-pass), with a
        :class:`~jaxnst.video.core.VideoState`; ``resume=state`` continues from one.

    Returns a :class:`~jaxnst.video.core.VideoResult` (frames, per-frame losses and timings).
    """
    a, o = core._check(frames, options)
    _check_video_args(temporal_weight, blend, passes, pass_iterations)
    c0 = compile_stats()["seconds"]
    t0 = time.perf_counter()
    if flow is None:
        flow = core.compute_flow(a, flow_preset)
    flow_s = time.perf_counter() - t0
    _check_flow(flow, a.shape)
    problem = prepare.prepare(a, style, o, variables=variables)
    marks = [time.perf_counter()]

    def timed(state: VideoState) -> None:
        marks.append(time.perf_counter())
        if on_state is not None:
            on_state(state)

    state, mode, devices = _descend(
        problem,
        flow,
        a.shape[0],
        temporal_weight,
        passes,
        pass_iterations,
        blend,
        callback,
        timed,
        resume,
    )
    pass_s = [float(x) for x in np.diff(marks)] if passes else []
    return VideoResult(
        frames=state.frames,
        losses=state.losses,
        seconds=state.seconds,
        pass_seconds=pass_s,
        flow_seconds=flow_s,
        mode=mode,
        devices=devices,
        compile_seconds=compile_stats()["seconds"] - c0,
        options=o,
    )


def _check_video_args(temporal_weight: Any, blend: Any, passes: Any, pass_iterations: Any) -> None:
    """ValueError (one line, naming the argument) for a bad video setting."""
    for name, v, lo in (("temporal_weight", temporal_weight, 0.0), ("blend", blend, 0.0)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < lo:
            raise ValueError(f"{name} must be a finite number >= {lo}, got {v!r}")
    if blend > 1:
        raise ValueError(f"blend must be in [0, 1], got {blend!r}")
    for name, v, lo in (("passes", passes, 0), ("pass_iterations", pass_iterations, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")


def _descend(
    problem: Any,
    flow: Any,
    n_frames: int,
    temporal_weight: float,
    passes: int,
    pass_iterations: int,
    blend: float,
    callback: Any,
    timed: Any,
    resume: Any,
) -> tuple[Any, str, int]:
    """The sequential or multi-pass descent: (final state, mode, devices used)."""
    if passes == 0:
        state = core.sequential(problem, flow, float(temporal_weight), callback, timed, resume)
        mode, devices = "sequential", 1
    else:
        state = multipass.multipass(
            problem,
            flow,
            float(temporal_weight),
            int(passes),
            int(pass_iterations),
            float(blend),
            callback,
            timed,
            resume,
        )
        mode = "multipass"
        devices = min(jax.local_device_count(), n_frames) * jax.process_count()
    return state, mode, devices


def _check_flow(flow: Flow, shape: tuple[int, ...]) -> None:
    b = flow.backward.shape
    if b[0] != shape[0] - 1 or b[1:3] != shape[1:3]:
        raise ValueError(
            f"flow is for {b[0] + 1} frames of {tuple(b[1:3])}, frames are {shape[:3]}"
        )
