"""Stage 5 of the pipeline, **collect**: device arrays in, a :class:`Result` out.

In: the :class:`~jaxnst.pipeline.prepare.Problem`, :class:`~jaxnst.pipeline.layout.Layout`,
:class:`~jaxnst.pipeline.layout.Batch` and the final :class:`jaxnst.optim.optimize.Progress`, and
the :class:`Clock` started when the run began. Out: a :class:`Result` with this process's rows
gathered across processes (first n members, padding dropped), the loss history, each member's image
(the last finite one for a diverged member, the EMA of the iterates where asked), the colour
restored for luminance-only transfer, and the timings.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import color, losses, matting
from jaxnst.optim import optimize
from jaxnst.optim.compilation import compile_stats
from jaxnst.pipeline.layout import Batch, Layout, gather_members, member_keys
from jaxnst.pipeline.options import Options
from jaxnst.pipeline.prepare import Problem


@dataclasses.dataclass
class Result:
    """What :func:`stylize` returns.

    image: (H, W, 3) float32 in [0, 1] (the optimised pixels, clipped).
    losses: (iterations,) float32 total loss after each L-BFGS step (for Adam: at the start of each
        step); NaN for steps not taken.
    history: dict of 1-D arrays ``step``, ``total``, ``content``, ``style``, ``tv``: the loss parts
        at the start and after every chunk (unweighted parts; ``total`` is weighted).
    evaluations: loss+gradient evaluations, line-search trials included.
    iterations: steps taken.
    compile_seconds / run_seconds: time spent compiling (tracing, lowering, XLA) vs the rest.
    diverged_at: step at which the loss or image became non-finite (image is the last finite one),
        or None.
    sweep: for a batched run, each member's value of every swept option (and ``content_index``):
        (n,) float64 weights, (n,) int64 seeds, (n, 2) uint32 raw keys for a batch of ``key``.
    batch_evaluations: evaluations the whole batch paid for (per step, its slowest member's count).
    devices: how many devices the batch ran on (all processes together).
    compile_cache_hits: programs loaded from JAX's persistent compilation cache instead of compiled
        (the CLI turns the cache on; see ``jaxnst --help``).
    programs_compiled: programs XLA compiled during the run that no cache served (jaxnst's
        store or JAX's): 0 for a run whose programs a warm-up or an earlier run left cached.
    stopped_on_time: the ``max_seconds`` budget ended the descent (the last completed chunk's
        image; ``iterations`` says how far it got).
    stopped: the descent ended early because ``callback`` returned True or a studio's Stop
        (:func:`jaxnst._interrupt.cancel_on`) cancelled the chunk in flight (the last completed
        chunk's image); coarse-to-fine runs no further stages.
    smoothing: with ``photoreal_smooth``, the solve of each image's smoothing: ``weight``
        (lambda'), ``tolerance``, ``iterations`` and ``residual`` (relative, ``||x - (I + lambda'
        L) y|| / ||x||``; per member in a batch), ``seconds`` (all members, compiling included);
        else None.
    labels_left_out: with ``content_labels``, one line naming the label colours left out and
        why (:mod:`jaxnst.pipeline.labels`), or None.
    notes: other lines a front end should show, e.g. ``photoreal_adapt`` raising the weight.

    A batched run (a sweep, or several content images) puts a leading batch axis on ``image``,
    ``losses``, the history's parts, ``evaluations`` and ``iterations``; ``diverged_at`` is a list.
    """

    image: np.ndarray
    losses: np.ndarray
    history: dict[str, np.ndarray]
    evaluations: int | np.ndarray
    iterations: int | np.ndarray
    compile_seconds: float
    run_seconds: float
    device: str
    weights_digest: str
    diverged_at: int | None | list[int | None] = None
    options: Options | None = None
    sweep: dict[str, np.ndarray] | None = None
    batch_evaluations: int = 0
    devices: int = 1
    compile_cache_hits: int = 0
    programs_compiled: int = 0
    stopped_on_time: bool = False
    stopped: bool = False
    smoothing: dict[str, Any] | None = None
    labels_left_out: str | None = None
    notes: tuple[str, ...] = ()


class Clock(NamedTuple):
    """Wall time and compile totals when a run started (see :func:`start_clock`)."""

    wall: float
    compile_seconds: float
    cache_hits: float
    compiles: float = 0


def start_clock() -> Clock:
    stats = compile_stats()
    return Clock(time.perf_counter(), stats["seconds"], stats["cache_hits"], stats["compiles"])


def collect(
    problem: Problem, lay: Layout, batch: Batch, progress: optimize.Progress, clock: Clock
) -> Result:
    """Assemble the :class:`Result` (see the module docstring)."""
    o = problem.options
    per_member, paid = _per_member(progress, lay, batch, o.iterations)
    steps_done, totals = per_member["steps"], per_member["totals"]
    steps = list(_ends(progress, batch.config.chunk, int(steps_done.max())))
    history = {"step": np.asarray(steps), **{f: per_member[f] for f in losses.Parts._fields}}
    image = np.clip(per_member["image"], 0.0, 1.0)
    if o.preserve_color == "luminance":
        image = np.asarray(
            color.combine_luma_chroma(
                jnp.asarray(image), problem.original_contents[lay.content_index[: image.shape[0]]]
            )
        )
    image, smoothing = _smoothed(
        image, problem.original_contents[lay.content_index[: image.shape[0]]], o
    )
    diverged = [None if d < 0 else int(d) for d in per_member["diverged"]]
    common = _timings(clock) | dict(
        device=str(jax.devices()[0].device_kind),
        weights_digest=problem.digest,
        options=o,
        batch_evaluations=paid,
        devices=lay.n_dev * jax.process_count(),
        stopped_on_time=bool(progress.on_time),
        stopped=bool(progress.stopped),
    )
    evals = per_member["evals"]
    if lay.batched:
        sweep = {k: lay.values[k] for k in lay.names}
        if "key" in sweep:  # each member's raw key data (n, 2), not its index in the batch
            sweep["key"] = member_keys(o, lay.values)
        if problem.many_contents:
            sweep["content_index"] = lay.content_index
        return Result(
            image=image,
            losses=totals,
            history=history,
            evaluations=evals,
            iterations=steps_done,
            diverged_at=diverged,
            sweep=sweep,
            smoothing=smoothing,
            **common,
        )
    return Result(
        image=image[0],
        losses=totals[0],
        history={k: (v if k == "step" else v[0]) for k, v in history.items()},
        evaluations=int(evals[0]),
        iterations=int(steps_done[0]),
        diverged_at=diverged[0],
        sweep=None,
        smoothing=None if smoothing is None else {k: _first(v) for k, v in smoothing.items()},
        **common,
    )


def _first(v: Any) -> Any:
    return v[0].item() if isinstance(v, np.ndarray) else v


def _smoothed(
    image: np.ndarray, contents: jax.Array, o: Options
) -> tuple[np.ndarray, dict[str, Any] | None]:
    """``photoreal_smooth``: each (N, H, W, 3) member smoothed with its content's Matting
    Laplacian (:func:`jaxnst.loss.matting.smooth`, FastPhotoStyle's post-process; one compiled
    program for all members and values) and clipped to [0, 1] again; and the solves' report."""
    lam = o.photoreal_smooth
    if not lam:
        return image, None
    t = time.perf_counter()
    runs = [matting.smooth(c, x, lam) for c, x in zip(contents, image)]
    out = np.clip(np.stack([np.asarray(r.y) for r in runs]), 0.0, 1.0)
    return out, dict(
        weight=float(lam),
        tolerance=matting.SMOOTH_TOL,
        iterations=np.array([int(r.iterations) for r in runs]),
        residual=np.array([float(r.residual) for r in runs]),
        seconds=time.perf_counter() - t,
    )


def _per_member(
    progress: optimize.Progress, lay: Layout, batch: Batch, iterations: int
) -> tuple[dict[str, np.ndarray], int]:
    """This process's first ``lay.m`` rows (all members, gathered, in a multi-process run) and
    the evaluations the batch paid for (the largest over processes)."""
    state, m, paid = progress.state, lay.m, progress.paid
    diverged = np.asarray(state.diverged_at)[:m]
    last = _ema_images(state, float(batch.hyper.ema_decay), m, batch.config)
    per_member = {
        "steps": np.asarray(state.step)[:m],
        "totals": (  # (no chunk at all: a budget that ended before the first)
            np.concatenate(_taken(progress, batch.config.chunk), 0)[:iterations, :m].T
            if progress.totals
            else np.zeros((m, 0), np.float32)
        ),
        "diverged": diverged,
        "image": np.where(
            (diverged >= 0)[:, None, None, None],
            np.asarray(optimize.pixels(state.image, batch.config))[:m],
            last,
        ),
        "evals": np.asarray(state.evals)[:m],
        **{
            f: np.stack([np.asarray(getattr(p, f))[:m] for p in progress.parts], 1).astype(
                np.float32
            )
            for f in losses.Parts._fields
        },
    }
    if jax.process_count() > 1:
        per_member = gather_members(per_member, lay.n)
        paid = int(np.max(gather_members({"paid": np.full(m, paid)}, lay.n)["paid"]))
    return per_member, paid


def _ends(progress: optimize.Progress, chunk: int, furthest: int) -> tuple[int, ...]:
    """The furthest member's step at each entry of ``progress.parts`` (chunks may be shorter
    than ``chunk``, see :mod:`jaxnst.optim.pace`; a checkpoint of an older version has no ends:
    its chunks were whole)."""
    if len(progress.ends) == len(progress.parts):
        return progress.ends
    return tuple(min(i * chunk, furthest) for i in range(len(progress.parts)))


def _taken(progress: optimize.Progress, chunk: int) -> list[np.ndarray]:
    """Each chunk's (chunk, N) totals cut to the steps it took, so that rows are steps; the last
    keeps its NaN rows (steps not taken: a member that diverged or a run that ended)."""
    ends = _ends(progress, chunk, 2**31)
    cut = [np.asarray(t)[: max(0, b - a)] for t, a, b in zip(progress.totals, ends, ends[1:])]
    if cut:
        cut[-1] = np.asarray(progress.totals[-1])
    return cut


def _ema_images(
    state: optimize.LoopState, decay: float, m: int, config: optimize.Config
) -> np.ndarray:
    """The first ``m`` members' final images: :func:`jaxnst.optim.optimize.ema_image` on the host
    (in NumPy: on the device it was nine small programs to compile for one use; a pyramid is
    summed on the device, one program)."""
    image = np.asarray(optimize.pixels(state.image, config))[:m]
    if decay <= 0:
        return image
    step = np.asarray(state.step)[:m].astype(np.float32)
    corr = np.maximum(1.0 - np.float32(decay) ** step, 1e-12)[:, None, None, None]
    ema = np.asarray(optimize.pixels(state.ema, config))[:m] / corr
    return np.where((step > 0)[:, None, None, None], ema, image)


def _timings(clock: Clock) -> dict[str, Any]:
    stats = compile_stats()
    wall = time.perf_counter() - clock.wall
    compile_s = stats["seconds"] - clock.compile_seconds
    return dict(
        compile_seconds=compile_s,
        run_seconds=max(wall - compile_s, 0.0),
        compile_cache_hits=stats["cache_hits"] - clock.cache_hits,
        # (a load from a cache counts as a compilation and a hit: compilation.compile_stats)
        programs_compiled=int(
            (stats["compiles"] - clock.compiles) - (stats["cache_hits"] - clock.cache_hits)
        ),
    )
