"""Stage 4 of the pipeline, **run**: the descent over a laid-out batch, with progress and
checkpoint hooks.

In: a :class:`~jaxnst.pipeline.prepare.Problem`, its :class:`~jaxnst.pipeline.layout.Layout` and
:class:`~jaxnst.pipeline.layout.Batch`, and :class:`Hooks`. Out: the final
:class:`jaxnst.optim.optimize.Progress` (state, per-step totals, loss parts per chunk, evaluations
paid). The loop itself is :func:`jaxnst.optim.optimize.descend` (one compiled program per chunk);
this stage adds what a front end needs between chunks: a progress callback that may stop early,
checkpoints every N steps and on Ctrl-C, and resuming from a checkpoint (the glue lives in
:mod:`jaxnst.pipeline.checkpoint`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxnst.optim import optimize
from jaxnst.pipeline import checkpoint
from jaxnst.pipeline.layout import Batch, Layout, row_sharding
from jaxnst.pipeline.prepare import Problem


class Hooks(NamedTuple):
    """What a front end hears from the descent.

    callback(step, loss, image): after every chunk; ``loss`` is the mean total over this process's
        members, ``image`` its (m, H, W, 3) batch (one (H, W, 3) image for an unbatched run).
        Returning True stops early.
    checkpoint_every / on_checkpoint: ``on_checkpoint(ckpt)`` gets a
        :class:`~jaxnst.pipeline.checkpoint.Checkpoint` at chunk ends where the step is a multiple
        of ``checkpoint_every`` (and below the last), and on Ctrl-C.
    resume: a Checkpoint or a path to one; the run continues from it.
    deadline: a ``time.monotonic()`` value: the descent stops there with the last completed
        chunk (``Progress.on_time``).
    """

    callback: Callable[[int, float, jax.Array], bool | None] | None = None
    checkpoint_every: int | None = None
    on_checkpoint: Callable[[checkpoint.Checkpoint], None] | None = None
    resume: Any = None
    deadline: float | None = None


def run(
    problem: Problem, lay: Layout, batch: Batch, hooks: Hooks | None = None
) -> optimize.Progress:
    """Descend until every row has taken ``iterations`` steps, diverged or a hook stopped it.
    Ctrl-C saves a checkpoint through ``hooks.on_checkpoint`` and re-raises KeyboardInterrupt."""
    hooks = hooks or Hooks()
    fp = _fingerprint(problem, hooks)
    start = None if hooks.resume is None else _resume(hooks.resume, fp, lay, batch)
    on_chunk = functools.partial(
        _on_chunk, hooks=hooks, fp=fp, lay=lay, batch=batch, iterations=problem.options.iterations
    )
    try:
        progress = optimize.descend(
            batch.images0,
            batch.variables,
            batch.targets,
            batch.hyper,
            batch.config,
            on_chunk,
            start=start,
            deadline=hooks.deadline,
        )
    except optimize.Interrupted as e:
        if hooks.on_checkpoint is not None:
            hooks.on_checkpoint(_snapshot(e.progress, fp, batch))
        raise KeyboardInterrupt from None
    if progress.on_time and hooks.on_checkpoint is not None:  # the budget ended it: resumable
        hooks.on_checkpoint(_snapshot(progress, fp, batch))
    return progress


def precompile(lay: Layout, batch: Batch) -> None:
    """Start compiling the descent program for ``batch`` in the background (see
    :func:`jaxnst.optim.programs._program`), so that a later :func:`run` with the same shapes finds
    it ready: a coarse-to-fine run compiles its next stage while the current one descends. Sharded
    batches are left to compile when they run."""
    if lay.mesh is not None or jax.process_count() > 1:
        return
    state, _ = optimize.init_state(
        batch.images0, batch.variables, batch.targets, batch.hyper, batch.config
    )
    optimize.run_chunk.precompile(
        state, batch.variables, batch.targets, batch.hyper, batch.config, np.int32(0)
    )


def _fingerprint(problem: Problem, hooks: Hooks) -> str | None:
    if not (hooks.checkpoint_every or hooks.on_checkpoint or hooks.resume is not None):
        return None
    if jax.process_count() > 1:
        raise ValueError("checkpoints are not supported in multi-process runs")
    return checkpoint.fingerprint_problem(
        problem.contents, problem.styles, problem.masks, problem.options, problem.digest
    )


def _resume(ckpt: Any, fp: str | None, lay: Layout, batch: Batch) -> optimize.Progress:
    init = functools.partial(optimize.init_state, config=batch.config)
    template = jax.eval_shape(init, batch.images0, batch.variables, batch.targets, batch.hyper)[0]
    sharding = None if lay.mesh is None else row_sharding(lay.mesh)
    return checkpoint.resume_progress(ckpt, fp or "", template, sharding)


def _snapshot(progress: optimize.Progress, fp: str | None, batch: Batch) -> checkpoint.Checkpoint:
    return checkpoint.snapshot(fp or "", progress, batch.config.chunk, len(batch.images0))


def _on_chunk(
    progress: optimize.Progress,
    *,
    hooks: Hooks,
    fp: str | None,
    lay: Layout,
    batch: Batch,
    iterations: int,
) -> bool | None:
    state, parts = progress.state, progress.parts[-1]
    step = int(np.asarray(state.step).max())  # (np.max would call jax's .max: a program)
    every = hooks.checkpoint_every
    if hooks.on_checkpoint is not None and every and step % every == 0 and step < iterations:
        hooks.on_checkpoint(_snapshot(progress, fp, batch))
    if hooks.callback is None:
        return None
    loss = float(np.mean(np.asarray(parts.total)[: lay.m]))
    images = optimize.pixels(state.image, batch.config)
    return hooks.callback(step, loss, images[: lay.m] if lay.batched else images[0])
