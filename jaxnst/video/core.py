"""``stylize_video``: temporally consistent stylization of a clip (Ruder, Dosovitskiy & Brox, GCPR
2016; IJCV 2018), composed from the still-image pipeline's stages (prepare, layout, run, collect).

Two modes:
- sequential (``passes=0``): frame t starts from the stylized frame t-1 warped along the flow and
  is pulled towards it by the temporal loss ``temporal_weight * mean(c (x - warped)^2)``, with c = 0
  where the flow is unreliable (disocclusions, motion boundaries; :mod:`jaxnst.video.warp`).
- multi-pass (``passes=P``, :mod:`jaxnst.video.multipass`): the frames are members of batches in
  the compiled vmap loop (sharded across local devices and hosts like a sweep): all of them in the
  first, independent pass, then half of them at a time (red-black) in P passes that blend the
  warped neighbours into each start and pull each frame towards them.

Both modes compute the forward and backward DIS flow of the content frames once per clip.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import color, losses
from jaxnst.pipeline import collect, descent, layout, prepare
from jaxnst.pipeline.options import SWEEPABLE, Options, make_options
from jaxnst.video import warp as warp_mod

# Measured on the synthetic moving-object clip (6 frames, 64x48 px, real VGG19, 60 iterations,
# sequential): 1e4..1e6 barely act (warping error 0.69x of independent frames: the warped start
# alone), 1e8 gives 0.41x, 1e9 0.12x with the style loss 1.05x of independent frames. With our
# normalisation (pixels in [0, 1], a mean over elements) the term must reach the magnitude of the
# weighted style loss (~1e5..1e6) at deviations of ~0.01-0.1 to compete with the style gradient.
TEMPORAL_WEIGHT = 1e9
PASS_ITERATIONS = 20
BLEND = 0.5  # Ruder et al.'s delta


@dataclasses.dataclass
class VideoResult:
    """What :func:`stylize_video` returns.

    frames: (T, H, W, 3) float32 in [0, 1].
    losses: per frame (T,) float32 arrays ``total`` (the optimised objective, temporal term
        included), ``content``, ``style``, ``tv`` (unweighted) and ``temporal`` (unweighted
        mean(c (x - warped)^2) against the warped neighbour the frame was optimised with; 0 for
        the first frame).
    seconds: (T,) wall seconds per frame (multi-pass: each pass's time shared equally).
    pass_seconds: wall seconds of each pass run by this call (multi-pass; sequential: []).
    flow_seconds: optical flow and reliability, once per clip.
    mode: "sequential" or "multipass"; devices: devices the batch ran on (all processes).
    compile_seconds: compilation inside the runs (included in ``seconds``).
    """

    frames: np.ndarray
    losses: dict[str, np.ndarray]
    seconds: np.ndarray
    pass_seconds: list[float]
    flow_seconds: float
    mode: str
    devices: int = 1
    compile_seconds: float = 0.0
    options: Options | None = None


class VideoState(NamedTuple):
    """Where an interrupted run stands: ``done`` frames (sequential) or passes (multi-pass, the
    first independent pass counts as pass 0) are finished; ``frames`` (T, H, W, 3) holds them
    (sequential: frames[:done]); ``losses`` as in :class:`VideoResult`; ``seconds`` likewise."""

    done: int
    frames: np.ndarray
    losses: dict[str, np.ndarray]
    seconds: np.ndarray


class Flow(NamedTuple):
    """Per clip: flows (T-1, H, W, 2) and reliabilities (T-1, H, W), see
    :class:`jaxnst.video.flow.Flows` (this is the same tuple, as jax arrays)."""

    forward: jax.Array
    backward: jax.Array
    reliable_prev: jax.Array
    reliable_next: jax.Array


def _check(frames: Any, options: dict[str, Any]) -> tuple[np.ndarray, Options]:
    a = np.asarray(frames)
    if a.ndim != 4 or a.shape[-1] != 3 or a.shape[0] < 1:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"frames must be float RGB in [0, 1], got dtype {a.dtype}")
    o = make_options(**options)
    swept = [k for k in SWEEPABLE if isinstance(getattr(o, k), tuple)]
    if swept:
        raise ValueError(f"video takes one value of {swept[0]} (sweeps are for still images)")
    if o.scales:
        raise ValueError("scales (coarse-to-fine) are not supported for video yet")
    if not isinstance(o.init, str):
        raise ValueError("video init must be 'content' or 'noise'")  # noqa: TRY004
    return a.astype(np.float32), o


def problem_space(images: jax.Array, o: Options) -> jax.Array:
    """Stylized frames (colour) as the optimiser sees them: grey luma for luminance-only
    transfer (the collect stage put the content's chroma back), unchanged otherwise."""
    if o.preserve_color == "luminance":
        return color.grey(color.luma(images))
    return images


def compute_flow(frames: np.ndarray, preset: str = "fine") -> Flow:
    """DIS flow both ways between consecutive content frames and Ruder's reliability weights."""
    from jaxnst.video import flow as flow_mod

    f = flow_mod.clip_flows(frames, preset)
    return Flow(*(jnp.asarray(a) for a in f))


def _put(lay: layout.Layout, a: Any) -> jax.Array:
    a = jnp.asarray(a, jnp.float32)
    return a if lay.mesh is None else jax.device_put(a, layout.row_sharding(lay.mesh))


def video_batch(
    batch: layout.Batch, lay: layout.Layout, init: Any, warped: Any, reliability: Any, weight: Any
) -> layout.Batch:
    """The laid-out batch with per-row starting images (rows, H, W, 3), temporal targets
    (rows, H, W, 3) and (rows, H, W), and temporal weights (rows,), placed like the other rows."""
    targets = batch.targets._replace(warped=_put(lay, warped), reliability=_put(lay, reliability))
    weights = batch.hyper.weights._replace(temporal=_put(lay, weight))
    return batch._replace(
        images0=_put(lay, init), targets=targets, hyper=batch.hyper._replace(weights=weights)
    )


def one_frame_layout(lay: layout.Layout, t: int) -> layout.Layout:
    """A layout of the single member ``t`` of a clip's layout (sequential mode: one frame at a
    time, unsharded; every process computes it, process 0 writes)."""
    values = {k: v[t : t + 1] for k, v in lay.values.items()}
    return lay._replace(
        values=values,
        content_index=lay.content_index[t : t + 1],
        n=1,
        m=1,
        rows=np.zeros(1, np.int32),
        mesh=None,
        n_dev=1,
        batched=False,
    )


def _frame_losses(
    result: collect.Result, image: np.ndarray, warped: Any, c: Any, o: Options
) -> dict[str, np.ndarray]:
    """Final loss parts per member of a collected result, plus the unweighted temporal loss."""
    hist = result.history
    out = {
        k: np.atleast_2d(np.asarray(hist[k]))[:, -1].astype(np.float32)
        for k in ("total", "content", "style", "tv")
    }
    x = problem_space(jnp.asarray(image).reshape((-1,) + image.shape[-3:]), o)
    out["temporal"] = np.asarray(
        jax.vmap(losses.temporal_loss)(
            x, jnp.asarray(warped).reshape(x.shape), jnp.asarray(c).reshape(x.shape[:3])
        )
    )
    return out


def initial_state(problem: prepare.Problem, state: VideoState | None) -> VideoState:
    """``state`` when resuming, else a state with nothing done (frames and losses zero)."""
    if state is not None:
        return state
    t_n = problem.contents.shape[0]
    parts = ("total", "content", "style", "tv", "temporal")
    return VideoState(
        0,
        np.zeros(problem.contents.shape, np.float32),
        {k: np.zeros(t_n, np.float32) for k in parts},
        np.zeros(t_n, np.float32),
    )


Callback = Callable[[dict[str, Any]], bool | None]


def _run(
    problem: prepare.Problem,
    lay: layout.Layout,
    batch: layout.Batch,
    callback: Callback | None,
    info: dict[str, Any],
) -> collect.Result:
    """One descent of a (video) batch through the run and collect stages."""

    def on_chunk(step: int, loss: float, image: Any) -> bool | None:
        if callback is None:
            return None
        return callback(info | {"step": step, "loss": loss})

    clock = collect.start_clock()
    progress = descent.run(problem, lay, batch, descent.Hooks(callback=on_chunk))
    return collect.collect(problem, lay, batch, progress, clock)


StateHook = Callable[[VideoState], None]
_warp = jax.jit(warp_mod.warp)


def sequential(
    problem: prepare.Problem,
    flow: Flow,
    temporal_weight: float,
    callback: Callback | None = None,
    on_state: StateHook | None = None,
    state: VideoState | None = None,
) -> VideoState:
    """Frame after frame: frame t starts from the stylized frame t-1 warped along the flow
    (everywhere, as Ruder et al.; starting unreliable pixels from the content instead left the
    motion-boundary bands unstylized and measured 2.8x their warping error) and is pulled towards
    it by the temporal loss where the flow is reliable. Frame 0 is a still-image run."""
    o = problem.options
    lay_all = layout.make_layout(problem)
    t_n = problem.contents.shape[0]
    state = initial_state(problem, state)
    frames, parts, secs = state.frames.copy(), dict(state.losses), state.seconds.copy()
    for t in range(state.done, t_n):
        start = time.perf_counter()
        lay = one_frame_layout(lay_all, t)
        batch = layout.place(problem, lay)
        if t == 0:
            warped = jnp.zeros_like(batch.images0)
            c = jnp.zeros(warped.shape[:3], jnp.float32)
            init, weight = batch.images0, 0.0
        else:
            prev = problem_space(jnp.asarray(frames[t - 1]), o)
            warped = _warp(prev, flow.backward[t - 1])[None]
            c = flow.reliable_prev[t - 1][None]
            init = warped
            weight = temporal_weight
        batch = video_batch(batch, lay, init, warped, c, [weight])
        result = _run(
            problem, lay, batch, callback, {"mode": "sequential", "frame": t, "frames": t_n}
        )
        frames[t] = result.image
        for k, v in _frame_losses(result, result.image, warped, c, o).items():
            parts[k] = parts[k].copy()
            parts[k][t] = v[0]
        secs[t] = time.perf_counter() - start
        state = VideoState(t + 1, frames, parts, secs)
        if on_state is not None:
            on_state(state)
    return state
