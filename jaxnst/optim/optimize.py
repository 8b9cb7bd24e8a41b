"""The descent loop: L-BFGS (strong-Wolfe zoom line search) or Adam on the pixels, compiled once.

One call of :func:`run_chunk` is one jitted program: a ``lax.while_loop`` whose body evaluates the
objective and its gradient exactly once (:func:`jaxnst.optim.loop.iterate`) and then decides what to
do with the result. For L-BFGS a body is one line-search trial: accept the step (update the L-BFGS
memory, compute the next direction, start the next search) or propose the next trial step. For Adam
and other optax transformations a body is one step. So the compiled program holds ONE VGG19 forward
and backward, whatever the optimizer, the line search or the batch (optax's own zoom search
evaluates in both branches of a ``lax.cond``, and XLA compiled all of them: 2.5x the convolutions).

Everything that may change without changing shapes is a traced argument (loss weights, learning
rate, iteration count, the number of steps in this call, targets, VGG weights), so the host calls
the same program for the first evaluation (``steps=0``), every chunk and the last, shorter one.
``config.chunk`` only sizes the per-step history the program returns.

Evaluations: every loop iteration is one loss+gradient evaluation per member: the first evaluates
the starting image, later ones a line-search trial (L-BFGS) or the image after a step (Adam). So
Adam pays ``iterations + 1`` and L-BFGS ``1 +`` its trials; a step's recorded loss is the loss at
the image after that step.

Batches: the body is ``jax.vmap``-ed over members, each with its own line search; the loop runs
until every member has taken its steps, and a member that is done waits (its evaluations are
masked, but a batch pays for the loop's iterations: ``cost``).

Divergence: a step whose loss or image is not finite is not taken; its step is recorded in
``diverged_at`` (-1 while all is well) and the member stops, keeping its last finite image.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxnst import _interrupt
from jaxnst.loss import losses, sampled
from jaxnst.model import vgg
from jaxnst.optim import held, loop, param
from jaxnst.optim.compilation import compile_stats
from jaxnst.optim.linesearch import (  # noqa: F401 (re-exported)
    ArmijoInfo,
    ArmijoState,
    SearchState,
    armijo_backtracking,
)
from jaxnst.optim.loop import LoopState  # noqa: F401 (re-exported)
from jaxnst.optim.pace import Interrupted, Pace, Progress  # noqa: F401 (re-exported)
from jaxnst.optim.param import pixels, variable  # noqa: F401 (re-exported)
from jaxnst.optim.programs import CPU_COMPILER_OPTIONS, _program  # noqa: F401 (re-exported)

Array = jax.Array


class Config(NamedTuple):
    """Static settings: changing one of these compiles a new program. ``optimizer`` may be any
    optax transformation, run like Adam (extra-args ones also get value, grad and value_fn);
    it and ``extra_loss`` (see :func:`parts_fn`) hash by identity: reuse one object."""

    optimizer: str | optax.GradientTransformation = "lbfgs"  # "lbfgs" | "adam" | a transformation
    chunk: int = 50  # the most steps one program call takes (sizes its history output)
    pooling: str = "max"
    layers: tuple[str, ...] = ()  # every layer the targets need
    channels: tuple[int, ...] = vgg.CHANNELS
    lbfgs_memory: int = 10
    linesearch: str = "zoom"  # "zoom" (strong Wolfe) | "backtracking" (Armijo)
    max_linesearch_steps: int = 20
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    batched_content: bool = False  # one content target per batch member (many content images)
    custom_grad: bool = True  # see jaxnst.model.vgg: fast input-gradient inside loops
    precision: str = "fp32"  # "fp32" | "bf16" (convolutions, activations; losses in f32)
    remat: bool = False  # recompute each VGG block in the backward pass
    xla_cpu_ynn: bool = False  # CPU: keep XLA's YNNPACK fusions (see CPU_COMPILER_OPTIONS)
    extra_loss: Callable[[Array, dict], Array] | None = None  # user term added to the total
    tileable: bool = False  # circular convolutions and TV: the result tiles seamlessly
    tile: int | None = None  # evaluate the objective tile by tile (jaxnst.loss.tiled)
    convs: tuple[tuple[str, str], ...] | None = None  # per-layer formulations (jaxnst.model.convs)
    interruptible: bool = False  # the program reads Ctrl-C's flag (jaxnst._interrupt) each step
    samples: int = 0  # STROTSS's terms: points compared per evaluation (0: not used)
    resample_every: int = 1  # ... re-drawn every this many steps (jaxnst.loss.sampled.draw)
    param: str = "pixels"  # what the descent moves: "pixels" | "laplacian" (jaxnst.optim.param)
    pyramid_levels: int = 5  # laplacian: halvings, at most (jaxnst.optim.param.levels_for)
    nnst_refresh: int = 1  # NNST's final pass: matches searched every this many steps (optim.held)


class Hyper(NamedTuple):
    """Traced settings: changing their values reuses the compiled program."""

    weights: losses.Weights
    learning_rate: Array
    iterations: Array
    ema_decay: Array | float = 0.0  # Adam: decay of the moving average of the iterates (0: off)
    keys: Any = None  # (N, 2) uint32 raw keys of the sample points' draws (STROTSS's terms)


def _optimizer(config: Config, lr: Array) -> optax.GradientTransformation:
    """Adam, the caller's transformation, or for L-BFGS optax's direction alone (memory and
    two-loop recursion; the line search is :mod:`jaxnst.optim.linesearch`'s, driven by the loop)."""
    if not isinstance(config.optimizer, str):
        return config.optimizer
    if config.optimizer == "adam":
        return optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2)
    if config.optimizer == "rmsprop":  # as torch.optim.RMSprop: eps outside the square root
        return optax.chain(
            optax.scale_by_rms(decay=0.99, eps=1e-8, eps_in_sqrt=False),
            optax.scale_by_learning_rate(lr),
        )
    if config.optimizer == "lbfgs":
        if config.linesearch not in ("zoom", "backtracking"):
            raise ValueError(
                f"unknown linesearch {config.linesearch!r}; expected 'zoom' or 'backtracking'"
            )
        return optax.chain(optax.scale_by_lbfgs(config.lbfgs_memory), optax.scale(-1.0))
    raise ValueError(
        f"unknown optimizer {config.optimizer!r}; expected 'lbfgs', 'adam' or 'rmsprop'"
    )


def parts_fn(
    image: Array, variables: dict, targets: losses.Targets, weights: losses.Weights, config: Config
) -> losses.Parts:
    """Loss parts for one (H, W, 3) image.

    With ``config.extra_loss``, ``extra_loss(image, feats)`` (``feats``: ``{layer: (H', W', C)}``
    for ``config.layers``) is added to ``total``; it has no part of its own. It needs the
    activations, which ``remat`` does not keep, so the two are refused together."""
    if config.tile and config.extra_loss is not None:
        raise ValueError("extra_loss cannot be combined with tile=; use one or the other")
    if config.tile:  # the same objective and gradient, tile by tile: images larger than memory
        from jaxnst.loss import tiled

        return tiled.parts(image, variables, targets, weights, config, config.tile)
    if config.remat and config.extra_loss is not None:
        raise ValueError(
            "extra_loss needs the activations, which remat=True does not keep; use one or the other"
        )
    model = held.network(config)
    if config.remat:  # loss terms computed inside each rematerialised block: no activations kept
        tap = functools.partial(losses.layer_terms, targets=targets)
        terms: Any = model.apply(variables, image, config.layers, taps=tap)
        return losses.objective_from_terms(image, terms, targets, weights, config.tileable)
    feats: Any = model.apply(variables, image, config.layers)
    return _with_extra(
        losses.objective(image, feats, targets, weights, config.tileable), image, feats, config
    )


def _with_extra(parts: losses.Parts, image: Array, feats: Any, config: Config) -> losses.Parts:
    if config.extra_loss is None:  # (without it, the program is exactly the one before)
        return parts
    extra = jnp.asarray(config.extra_loss(image, feats), jnp.float32)
    if extra.shape != ():
        raise ValueError(f"extra_loss must return a scalar, got shape {extra.shape}")
    return parts._replace(total=parts.total + extra)


def _total(image, variables, targets, weights, config):
    return parts_fn(image, variables, targets, weights, config).total


def ema_image(state: LoopState, decay) -> Array:
    """The bias-corrected moving average of the Adam iterates (the image itself when off)."""
    d = jnp.asarray(decay, jnp.float32)
    corr = 1.0 - d ** state.step.astype(jnp.float32)
    ema = jax.tree.map(lambda e: e / jnp.maximum(corr, 1e-12), state.ema)
    return param.render(loop._select((d > 0) & (state.step > 0), ema, state.image))  # (Adam)


def _batched(fn, config: Config):
    """vmap ``fn(x, variables, targets, hyper, config)`` over x, the loss weights and (when
    ``config.batched_content``) the content targets; VGG weights and Grams are shared."""
    # The video term's targets (warped previous frame, reliability) are always per member.
    t_axes: Any = losses.Targets(
        content=0 if config.batched_content else None,  # type: ignore[arg-type]
        grams=None,  # type: ignore[arg-type]
        moments=None,  # type: ignore[arg-type]
        masks=None,  # type: ignore[arg-type]
        warped=0,  # type: ignore[arg-type]
        reliability=0,  # type: ignore[arg-type]
        sampled=None,
        matting=0 if config.batched_content else None,  # (the content's statistics)
        nnst=0 if config.batched_content else None,  # (NNST's targets: one set per content)
        nnst_final=None,  # (its final pass's style: shared)
        regions=None,  # type: ignore[arg-type]
    )
    if config.samples:  # STROTSS's content hypercolumns go with the content
        axis = 0 if config.batched_content else None
        t_axes = t_axes._replace(sampled=sampled.Sampled(None, axis))  # type: ignore[arg-type]

    def call(x, variables, targets, hyper):
        def one(x, t, w):
            return fn(x, variables, t, hyper._replace(weights=w), config)

        if jax.tree.leaves(x)[0].shape[0] == 1:  # a batch of one runs unbatched (exact numerics)
            squeeze = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
            t = (
                targets._replace(
                    content=squeeze(targets.content),
                    sampled=_squeeze_sampled(targets.sampled),
                    matting=squeeze(targets.matting),
                    nnst=squeeze(targets.nnst),
                )
                if config.batched_content
                else targets
            )
            t = t._replace(warped=squeeze(t.warped), reliability=squeeze(t.reliability))
            out = one(squeeze(x), t, squeeze(hyper.weights))
            return jax.tree.map(lambda a: a[None], out)
        return jax.vmap(one, in_axes=(0, t_axes, 0))(x, targets, hyper.weights)

    return call


def _squeeze_sampled(s: Any) -> Any:
    return s if s is None or s.content is None else s._replace(content=s.content[0])


def _parts(x, variables, targets, weights, config):  # parts_fn, looked up at call time
    return parts_fn(param.render_for(x, config), variables, targets, weights, config)


# (Tests replace parts_fn to count evaluations; the loop finds it through _parts.)
OPS = loop.Ops(optimizer=lambda config, lr: _optimizer(config, lr), parts=_parts)


def _template(image: Array, variables, targets, hyper: Hyper, config: Config) -> LoopState:
    """A LoopState of the right structure for one image (traced for its shapes only)."""
    state = loop.start_state(OPS, image, hyper, config)
    if held.on(targets, config):  # NNST's final pass holds its matches for K steps
        state = state._replace(held=held.template(image, variables, targets, config))
    return state


def init_state(
    images: Array, variables: dict, targets: losses.Targets, hyper: Hyper, config: Config
) -> tuple[LoopState, losses.Parts]:
    """Batched: the loop's starting state at ``images`` (N, H, W, 3), built without compiling
    anything (the first loop iteration evaluates the images and initialises the optimizer), and
    NaN loss parts (the parts there come from :func:`run_chunk` with ``steps=0``). With
    ``config.param="laplacian"`` the state holds the images' pyramids (one small program)."""
    like = images
    images = variable(images, config)
    shapes = jax.eval_shape(_batched(_template, config), images, variables, targets, hyper)
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)
    state = zeros._replace(
        image=images,
        fresh=np.ones(shapes.fresh.shape, bool),
        diverged_at=np.full(shapes.diverged_at.shape, -1, np.int32),
        key=zeros.key if hyper.keys is None else np.asarray(hyper.keys, np.uint32),
    )
    state = jax.tree.map(functools.partial(_place, like=like), state)
    nan: Any = np.full(shapes.value.shape, np.nan, np.float32)
    return state, losses.Parts(nan, nan, nan, nan)


def _place(leaf: Any, like: Any) -> Any:
    """``leaf`` committed to the devices of ``like`` and split along its leading axis the same
    way, so the first program call sees the shardings its outputs will have: an uncommitted
    argument there compiled the program a second time for the next call."""
    if isinstance(like, jax.core.Tracer) or isinstance(leaf, jax.core.Tracer):
        return leaf
    sh = like.sharding if isinstance(like, jax.Array) else None
    if isinstance(sh, jax.sharding.NamedSharding):
        spec = sh.spec[0] if len(sh.spec) else None
        sh = jax.sharding.NamedSharding(sh.mesh, jax.sharding.PartitionSpec(spec))
    elif sh is None or not like.committed:
        sh = jax.local_devices()[0]  # (jax.devices()[0] is process 0's in a multi-process run)
    return jax.device_put(leaf, sh)


@_program
def run_chunk(
    state: LoopState,
    variables: dict,
    targets: losses.Targets,
    hyper: Hyper,
    config: Config,
    steps: Any = None,
) -> tuple[LoopState, Array, Array, losses.Parts]:
    """Take up to ``steps`` (a traced int, at most ``config.chunk``; default ``config.chunk``)
    steps for every member of the batch, evaluating the starting images first when fresh.

    Returns the new state, the total loss of each member after each step ((chunk, N), NaN for
    steps not taken), the evaluations the batch paid for (loop iterations: members evaluate in
    lockstep), and the loss parts at the final images (from the last evaluation, no extra pass)."""
    n = state.step.shape[0]
    steps = jnp.asarray(config.chunk if steps is None else steps, jnp.int32)
    steps = jnp.clip(steps, 0, config.chunk)
    stop = jnp.minimum(state.step + steps, jnp.asarray(hyper.iterations, jnp.int32))
    first = state.step
    iterate = _batched(functools.partial(loop.iterate_member, ops=OPS, alone=n == 1), config)

    def body(carry):
        s, totals, _ = carry
        if held.on(targets, config):  # NNST's final pass: new matches every nnst_refresh steps
            s = held.refresh(s, stop, variables, targets, config, loop.active)
        new, (value, recorded) = iterate((s, stop), variables, targets, hyper)
        row = jnp.where(recorded, s.step - first, config.chunk)  # out of range: dropped
        totals = totals.at[row, jnp.arange(n)].set(value, mode="drop")
        return new, totals, _interrupt.requested() if config.interruptible else jnp.bool_(False)

    def cond(carry):
        return jnp.any(loop.active(carry[0], stop)) & ~carry[2]

    totals0 = jnp.full((config.chunk, n), jnp.nan, jnp.float32)
    evals = state.evals
    state, totals, _ = lax.while_loop(cond, body, (state, totals0, jnp.bool_(False)))
    # The loop ran as long as its longest-active member: that member's evaluations are what the
    # batch paid (a reduction, replicated on every process of a multi-process run).
    return state, totals, jnp.max(state.evals - evals), state.parts


def descend(
    images: Array,
    variables: dict,
    targets: losses.Targets,
    hyper: Hyper,
    config: Config,
    callback: Callable[[Progress], bool | None] | None = None,
    start: Progress | None = None,
    deadline: float | None = None,
) -> Progress:
    """Run chunks until every member has taken ``hyper.iterations`` steps or diverged.

    ``callback(progress)`` runs after each chunk (the only host sync); returning True stops early.
    Chunks take about :data:`jaxnst.optim.pace.CHUNK_SECONDS` each (:class:`~pace.Pace`).
    ``start`` resumes from an earlier :class:`Progress` instead of initialising at ``images``.
    KeyboardInterrupt becomes :class:`Interrupted` carrying the last completed chunk; the state is
    never donated to the compiled chunk, so it survives a chunk cut short. A Stop
    (:func:`jaxnst._interrupt.cancel_on`) returns the last completed chunk (``stopped``).
    ``deadline`` (a ``time.monotonic()`` value): stop there, with the last completed chunk
    (``on_time``); a chunk still running then winds down as on Ctrl-C and is dropped.
    """
    speed = None
    if start is None:
        state, unknown = init_state(images, variables, targets, hyper, config)
        t0, c0 = time.perf_counter(), compile_stats()["seconds"]
        try:  # the same program with no steps: it only evaluates the starting images
            out = _interrupt.run(
                run_chunk, state, variables, targets, hyper, config, np.int32(0),
                reads_flag=config.interruptible,
            )  # fmt: skip
            state, _, cost, parts0 = out
        except KeyboardInterrupt:  # nothing completed yet: the fresh state is what there is
            raise Interrupted(Progress(state, [], [unknown], 0, ends=(0,))) from None
        except _interrupt.Cancelled:
            return Progress(state, [], [unknown], 0, ends=(0,), stopped=True)
        # one evaluation's seconds, less what compiling took (a guess for a step's)
        speed = time.perf_counter() - t0 - (compile_stats()["seconds"] - c0)
        progress = Progress(state, [], [parts0], int(cost), ends=(0,))
    else:
        progress = start
    n = int(hyper.iterations)
    pace = Pace(config.chunk, speed)
    with _interrupt.alarm(deadline if config.interruptible else None):
        return _chunks(progress, n, variables, targets, hyper, config, callback, deadline, pace)


def _chunks(progress, n, variables, targets, hyper, config, callback, deadline, pace) -> Progress:
    """:func:`descend`'s loop over chunks, from ``progress`` to ``n`` steps."""
    try:
        while True:
            step = np.asarray(progress.state.step)
            if bool(((step >= n) | (np.asarray(progress.state.diverged_at) >= 0)).all()):
                return progress
            if deadline is not None and time.monotonic() >= deadline:
                return progress._replace(on_time=True)
            t0, first = time.perf_counter(), int(step.max())
            state, t, cost, p = _interrupt.run(
                run_chunk, progress.state, variables, targets, hyper, config,
                np.int32(pace.steps(first)), reads_flag=config.interruptible,
            )  # fmt: skip
            if _interrupt.alarm_rang():  # wound down at the deadline: this chunk is not whole
                return progress._replace(on_time=True)
            cost, last = int(cost), int(np.asarray(state.step).max())
            pace.measured(time.perf_counter() - t0, last - first)
            ends = (progress.ends or (0,) * len(progress.parts)) + (last,)
            progress = Progress(
                state, progress.totals + [t], progress.parts + [p], progress.paid + cost,
                ends=ends,
            )  # fmt: skip
            if callback is not None and callback(progress):
                return progress._replace(stopped=True)
    except KeyboardInterrupt:
        raise Interrupted(progress) from None
    except _interrupt.Cancelled:
        return progress._replace(stopped=True)
