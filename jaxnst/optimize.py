"""The descent loop: L-BFGS (optax, zoom line search) or Adam on the pixels, compiled in chunks.

One call of :func:`run_chunk` is one jitted program that takes ``config.chunk`` steps with
``lax.scan``; the host wakes up only between chunks (progress, intermediate images). Everything that
may change between runs without changing shapes (loss weights, learning rate, iteration count,
targets, VGG weights) is a traced argument, so it never triggers a recompilation. Steps past
``iterations`` are no-ops, so the last chunk has the same shape as the others.

Evaluations: Adam uses one loss+gradient evaluation per step. L-BFGS uses one at the start, then one
per line-search trial (``ZoomLinesearchInfo.num_linesearch_steps``); the value and gradient at the
accepted point are reused by the next step, as ``optax.value_and_grad_from_state`` would.

Batches: :func:`init_state` and :func:`run_chunk` take a leading batch axis and ``jax.vmap`` the
single-image step over it (VGG weights and style Grams shared). Under vmap every ``lax.cond`` runs
both branches, and optax's zoom line search evaluates the loss in both branches of its cond, so a
batched zoom search pays two evaluations per trial; :func:`armijo_backtracking` pays one. A
batched line search also runs until its slowest member. Hence sweeps use backtracking (first trial
step 1, accepted in nearly every iteration here), while single runs keep the zoom search.

Divergence: a step whose loss or image is not finite is rejected and its step recorded in
``diverged_at`` (-1 while all is well); later steps do nothing, and ``good_image`` holds the last
image whose loss was finite.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jaxnst import losses, vgg
from jaxnst.linesearch import ArmijoInfo, ArmijoState, armijo_backtracking  # noqa: F401 (re-exported)
from jaxnst.programs import CPU_COMPILER_OPTIONS, _program  # noqa: F401 (re-exported)

Array = jax.Array


class Config(NamedTuple):
    """Static settings: changing one of these compiles a new program. ``optimizer`` may be any
    optax transformation, run like Adam (extra-args ones also get value, grad and value_fn);
    it and ``extra_loss`` (see :func:`parts_fn`) hash by identity: reuse one object."""

    optimizer: str | optax.GradientTransformation = "lbfgs"  # "lbfgs" | "adam" | a transformation
    chunk: int = 50  # steps per compiled program call
    pooling: str = "max"
    layers: tuple[str, ...] = ()  # every layer the targets need
    channels: tuple[int, ...] = vgg.CHANNELS
    lbfgs_memory: int = 10
    linesearch: str = "zoom"  # "zoom" (strong Wolfe) | "backtracking" (Armijo; batches)
    max_linesearch_steps: int = 20
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    batched_content: bool = False  # one content target per batch member (many content images)
    custom_grad: bool = True  # see jaxnst.vgg: fast input-gradient inside loops
    precision: str = "fp32"  # "fp32" | "bf16" (convolutions, activations; losses in f32)
    remat: bool = False  # recompute each VGG block in the backward pass
    xla_cpu_ynn: bool = False  # CPU: keep XLA's YNNPACK fusions (see CPU_COMPILER_OPTIONS)
    extra_loss: Callable[[Array, dict], Array] | None = None  # user term added to the total
    tileable: bool = False  # circular convolutions and TV: the result tiles seamlessly
    tile: int | None = None  # evaluate the objective tile by tile (jaxnst.tiled)
    convs: tuple[tuple[str, str], ...] | None = None  # per-layer formulations (jaxnst.convs)


class Hyper(NamedTuple):
    """Traced settings: changing their values reuses the compiled program."""

    weights: losses.Weights
    learning_rate: Array
    iterations: Array
    ema_decay: Array | float = 0.0  # Adam: decay of the moving average of the iterates (0: off)


class LoopState(NamedTuple):
    image: Array  # (H, W, 3) float32, unconstrained (clipped only on output)
    opt_state: Any
    value: Array  # total loss at ``image``
    grad: Any  # gradient at ``image`` (L-BFGS only; None for Adam)
    step: Array  # int32, steps taken
    evals: Array  # int32, loss+gradient evaluations so far
    diverged_at: Array  # int32, step at which a non-finite loss/image appeared, or -1
    good_image: Array  # the latest image whose loss was finite (what a diverged run returns)
    ema: Array  # Adam: d * ema + (1 - d) * image after each step (bias: 1 - d^step)


def _optimizer(config: Config, lr: Array) -> optax.GradientTransformation:
    if not isinstance(config.optimizer, str):
        return config.optimizer
    if config.optimizer == "adam":
        return optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2)
    if config.optimizer == "lbfgs":
        if config.linesearch == "zoom":
            ls = optax.scale_by_zoom_linesearch(
                max_linesearch_steps=config.max_linesearch_steps, initial_guess_strategy="one"
            )
        elif config.linesearch == "backtracking":
            ls = armijo_backtracking(config.max_linesearch_steps)
        else:
            raise ValueError(
                f"unknown linesearch {config.linesearch!r}; expected 'zoom' or 'backtracking'"
            )
        return optax.lbfgs(memory_size=config.lbfgs_memory, linesearch=ls)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected 'lbfgs' or 'adam'")


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
        from jaxnst import tiled

        return tiled.parts(image, variables, targets, weights, config, config.tile)
    if config.remat and config.extra_loss is not None:
        raise ValueError(
            "extra_loss needs the activations, which remat=True does not keep; use one or the other"
        )
    model = vgg.VGG19(
        pooling=config.pooling,
        channels=config.channels,
        custom_grad=config.custom_grad,
        precision=config.precision,
        remat=config.remat,
        wrap=config.tileable,
        convs=config.convs,
    )
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


def _init_one(
    image: Array, variables: dict, targets: losses.Targets, hyper: Hyper, config: Config
) -> tuple[LoopState, losses.Parts]:
    image = image.astype(jnp.float32)
    opt = _optimizer(config, hyper.learning_rate)
    parts = parts_fn(image, variables, targets, hyper.weights, config)
    if config.optimizer == "lbfgs":
        grad = jax.grad(_total)(image, variables, targets, hyper.weights, config)
        evals = jnp.int32(1)
    else:
        grad, evals = None, jnp.int32(0)
    state = LoopState(
        image,
        opt.init(image),
        parts.total,
        grad,
        jnp.int32(0),
        evals,
        jnp.int32(-1),
        image,
        jnp.zeros_like(image),
    )
    return state, parts


def _step(state: LoopState, variables, targets, hyper: Hyper, config: Config) -> LoopState:
    opt = _optimizer(config, hyper.learning_rate)
    value_fn = functools.partial(
        _total, variables=variables, targets=targets, weights=hyper.weights, config=config
    )
    if config.optimizer != "lbfgs":  # Adam, or the caller's optax transformation
        return _first_order_step(state, opt, value_fn, hyper, config)
    updates, opt_state = opt.update(
        state.grad,
        state.opt_state,
        state.image,
        value=state.value,
        grad=state.grad,
        value_fn=value_fn,
    )
    image = optax.apply_updates(state.image, updates)
    value = optax.tree.get(opt_state, "value")
    grad = optax.tree.get(opt_state, "grad")
    n = optax.tree.get(opt_state, "num_linesearch_steps")
    return LoopState(
        image,
        opt_state,
        value,
        grad,
        state.step + 1,
        state.evals + n,
        state.diverged_at,
        image,
        state.ema,
    )


def _first_order_step(
    state: LoopState, opt: optax.GradientTransformation, value_fn, hyper: Hyper, config: Config
) -> LoopState:
    value, grad = jax.value_and_grad(value_fn)(state.image)
    evals = state.evals + 1
    if config.optimizer == "adam":
        updates, opt_state = opt.update(grad, state.opt_state, state.image)
    elif isinstance(opt, optax.GradientTransformationExtraArgs):
        updates, opt_state = opt.update(
            grad, state.opt_state, state.image, value=value, grad=grad, value_fn=value_fn
        )
        # A line search inside the caller's transformation pays its own trials.
        evals = evals + optax.tree.get(opt_state, "num_linesearch_steps", 0)
    else:
        updates, opt_state = opt.update(grad, state.opt_state, state.image)
    image = optax.apply_updates(state.image, updates)
    # The value is the loss *before* the update; the history records it as such.
    d = jnp.asarray(hyper.ema_decay, jnp.float32)
    return LoopState(
        image,
        opt_state,
        value,
        None,
        state.step + 1,
        evals,
        state.diverged_at,
        state.image,
        d * state.ema + (1.0 - d) * image,
    )


def ema_image(state: LoopState, decay) -> Array:
    """The bias-corrected moving average of the Adam iterates (the image itself when off)."""
    d = jnp.asarray(decay, jnp.float32)
    corr = 1.0 - d ** state.step.astype(jnp.float32)
    return jnp.where((d > 0) & (state.step > 0), state.ema / jnp.maximum(corr, 1e-12), state.image)


def _guarded_step(state: LoopState, variables, targets, hyper: Hyper, config: Config) -> LoopState:
    # ``new.value`` is the loss at ``new.good_image`` (for Adam the image the step started from,
    # for L-BFGS the accepted point), so a finite value vouches for that image.
    new = _step(state, variables, targets, hyper, config)
    finite = jnp.isfinite(new.value) & jnp.all(jnp.isfinite(new.image))
    kept = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    return kept._replace(
        evals=new.evals, diverged_at=jnp.where(finite, state.diverged_at, state.step)
    )


def _expand(mask: Array, like: Array) -> Array:
    return mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim))


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
    )

    def call(x, variables, targets, hyper):
        def one(x, t, w):
            return fn(x, variables, t, hyper._replace(weights=w), config)

        if jax.tree.leaves(x)[0].shape[0] == 1:
            # A batch of one runs unbatched: under vmap every lax.cond becomes a select that runs
            # both branches, and optax's zoom line search has an evaluation in each.
            squeeze = lambda tree: jax.tree.map(lambda a: a[0], tree)  # noqa: E731
            t = (
                targets._replace(content=squeeze(targets.content))
                if config.batched_content
                else targets
            )
            t = t._replace(warped=squeeze(t.warped), reliability=squeeze(t.reliability))
            out = one(squeeze(x), t, squeeze(hyper.weights))
            return jax.tree.map(lambda a: a[None], out)
        return jax.vmap(one, in_axes=(0, t_axes, 0))(x, targets, hyper.weights)

    return call


@_program
def init_state(
    images: Array, variables: dict, targets: losses.Targets, hyper: Hyper, config: Config
) -> tuple[LoopState, losses.Parts]:
    """Batched: optimizer states at ``images`` (N, H, W, 3) and the loss parts there.
    ``hyper.weights`` holds (N,) arrays; one evaluation per member for L-BFGS."""
    return _batched(_init_one, config)(images, variables, targets, hyper)


@_program
def run_chunk(
    state: LoopState, variables: dict, targets: losses.Targets, hyper: Hyper, config: Config
) -> tuple[LoopState, Array, Array, losses.Parts]:
    """Take up to ``config.chunk`` steps for every member of the batch.

    Returns the new state, the total loss of each member after each step ((chunk, N), NaN for
    steps not taken), the evaluations the batch paid for (the sum over steps of the largest
    per-member count: a batched line search runs until its slowest member), and the loss parts at
    the final images (one forward pass)."""
    step = _batched(_guarded_step, config)

    def body(carry, _):
        s, cost = carry
        active = (s.step < hyper.iterations) & (s.diverged_at < 0)  # (N,)
        # The predicate of this cond is one scalar for the whole batch: a cond on a batched
        # predicate turns into a select that ran 4.5x slower here (XLA:CPU, batch of 3, 96 px).
        new = lax.cond(
            jnp.any(active), lambda s: step(s, variables, targets, hyper), lambda s: s, s
        )
        new = jax.tree.map(lambda a, b: jnp.where(_expand(active, a), a, b), new, s)
        cost = cost + jnp.max(new.evals - s.evals)
        return (new, cost), jnp.where(active & (new.diverged_at < 0), new.value, jnp.nan)

    (state, cost), totals = lax.scan(body, (state, jnp.int32(0)), None, length=config.chunk)
    parts = _batched(lambda x, v, t, h, c: parts_fn(x.image, v, t, h.weights, c), config)(
        state, variables, targets, hyper
    )
    return state, totals, cost, parts


class Progress(NamedTuple):
    """Everything a run has produced so far: enough to report, checkpoint or resume it."""

    state: LoopState
    totals: list  # per chunk: (chunk, N) total loss after each step
    parts: list  # at the start and after each chunk: losses.Parts of (N,) arrays
    paid: int  # evaluations the batch paid for


class Interrupted(Exception):
    """Ctrl-C arrived; ``progress`` is the last completed chunk (nothing of the one in flight)."""

    def __init__(self, progress: Progress):
        super().__init__("interrupted")
        self.progress = progress


def descend(
    images: Array,
    variables: dict,
    targets: losses.Targets,
    hyper: Hyper,
    config: Config,
    callback: Callable[[Progress], bool | None] | None = None,
    start: Progress | None = None,
) -> Progress:
    """Run chunks until every member has taken ``hyper.iterations`` steps or diverged.

    ``callback(progress)`` runs after each chunk (the only host sync); returning True stops early.
    ``start`` resumes from an earlier :class:`Progress` instead of initialising at ``images``.
    KeyboardInterrupt becomes :class:`Interrupted` carrying the last completed chunk; the state is
    never donated to the compiled chunk, so it survives a chunk cut short.
    """
    if start is None:
        state, parts0 = init_state(images, variables, targets, hyper, config)
        progress = Progress(state, [], [parts0], int(jnp.max(state.evals)))
    else:
        progress = start
    n = int(hyper.iterations)
    try:
        while True:
            done = (np.asarray(progress.state.step) >= n) | (
                np.asarray(progress.state.diverged_at) >= 0
            )
            if bool(done.all()):
                return progress
            state, t, cost, p = run_chunk(progress.state, variables, targets, hyper, config)
            cost = int(cost)  # waits for the chunk
            progress = Progress(
                state, progress.totals + [t], progress.parts + [p], progress.paid + cost
            )
            if callback is not None and callback(progress):
                return progress
    except KeyboardInterrupt:
        raise Interrupted(progress) from None
