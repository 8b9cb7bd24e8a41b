"""The descent loop: L-BFGS (optax, zoom line search) or Adam on the pixels, compiled in chunks.

One call of :func:`run_chunk` is one jitted program that takes ``config.chunk`` steps with
``lax.scan``; the host wakes up only between chunks (progress, intermediate images). Everything that
may change between runs without changing shapes (loss weights, learning rate, iteration count,
targets, VGG weights) is a traced argument, so it never triggers a recompilation. Steps past
``iterations`` are no-ops, so the last chunk has the same shape as the others.

Evaluations: Adam uses one loss+gradient evaluation per step. L-BFGS uses one at the start, then one
per line-search trial (``ZoomLinesearchInfo.num_linesearch_steps``); the value and gradient at the
accepted point are reused by the next step, as ``optax.value_and_grad_from_state`` would.

Divergence: a step whose loss or image is not finite is rejected and its step recorded in
``diverged_at`` (-1 while all is well); later steps do nothing, and ``good_image`` holds the last
image whose loss was finite.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnst import losses, vgg

Array = jax.Array


class Config(NamedTuple):
    """Static settings: changing one of these compiles a new program."""
    optimizer: str = "lbfgs"          # "lbfgs" | "adam"
    chunk: int = 50                   # steps per compiled program call
    pooling: str = "max"
    layers: tuple[str, ...] = ()      # every layer the targets need
    channels: tuple[int, ...] = vgg.CHANNELS
    lbfgs_memory: int = 10
    max_linesearch_steps: int = 20
    adam_b1: float = 0.9
    adam_b2: float = 0.999
    custom_grad: bool = True          # see jaxnst.vgg: fast input-gradient inside loops


class Hyper(NamedTuple):
    """Traced settings: changing their values reuses the compiled program."""
    weights: losses.Weights
    learning_rate: Array
    iterations: Array


class LoopState(NamedTuple):
    image: Array           # (H, W, 3) float32, unconstrained (clipped only on output)
    opt_state: Any
    value: Array           # total loss at ``image``
    grad: Any              # gradient at ``image`` (L-BFGS only; None for Adam)
    step: Array            # int32, steps taken
    evals: Array           # int32, loss+gradient evaluations so far
    diverged_at: Array     # int32, step at which a non-finite loss/image appeared, or -1
    good_image: Array      # the latest image whose loss was finite (what a diverged run returns)


def _optimizer(config: Config, lr: Array) -> optax.GradientTransformation:
    if config.optimizer == "adam":
        return optax.adam(lr, b1=config.adam_b1, b2=config.adam_b2)
    if config.optimizer == "lbfgs":
        ls = optax.scale_by_zoom_linesearch(max_linesearch_steps=config.max_linesearch_steps,
                                            initial_guess_strategy="one")
        return optax.lbfgs(memory_size=config.lbfgs_memory, linesearch=ls)
    raise ValueError(f"unknown optimizer {config.optimizer!r}; expected 'lbfgs' or 'adam'")


def parts_fn(image: Array, variables: dict, targets: losses.Targets, weights: losses.Weights,
             config: Config) -> losses.Parts:
    """Loss parts for one (H, W, 3) image."""
    model = vgg.VGG19(pooling=config.pooling, channels=config.channels,
                      custom_grad=config.custom_grad)
    feats = model.apply(variables, image, config.layers)
    return losses.objective(image, feats, targets, weights)


def _total(image, variables, targets, weights, config):
    return parts_fn(image, variables, targets, weights, config).total


@functools.partial(jax.jit, static_argnames="config")
def init_state(image: Array, variables: dict, targets: losses.Targets, hyper: Hyper,
               config: Config) -> tuple[LoopState, losses.Parts]:
    """Optimizer state at ``image`` and the loss parts there (one evaluation for L-BFGS)."""
    image = image.astype(jnp.float32)
    opt = _optimizer(config, hyper.learning_rate)
    parts = parts_fn(image, variables, targets, hyper.weights, config)
    if config.optimizer == "lbfgs":
        grad = jax.grad(_total)(image, variables, targets, hyper.weights, config)
        evals = jnp.int32(1)
    else:
        grad, evals = None, jnp.int32(0)
    state = LoopState(image, opt.init(image), parts.total, grad, jnp.int32(0), evals, jnp.int32(-1),
                      image)
    return state, parts


def _step(state: LoopState, variables, targets, hyper: Hyper, config: Config) -> LoopState:
    opt = _optimizer(config, hyper.learning_rate)
    if config.optimizer == "adam":
        value, grad = jax.value_and_grad(_total)(state.image, variables, targets, hyper.weights,
                                                 config)
        updates, opt_state = opt.update(grad, state.opt_state, state.image)
        image = optax.apply_updates(state.image, updates)
        # Adam's value is the loss *before* its update; the history records it as such.
        return LoopState(image, opt_state, value, None, state.step + 1, state.evals + 1,
                         state.diverged_at, state.image)
    value_fn = functools.partial(_total, variables=variables, targets=targets,
                                 weights=hyper.weights, config=config)
    updates, opt_state = opt.update(state.grad, state.opt_state, state.image, value=state.value,
                                    grad=state.grad, value_fn=value_fn)
    image = optax.apply_updates(state.image, updates)
    value = optax.tree.get(opt_state, "value")
    grad = optax.tree.get(opt_state, "grad")
    n = optax.tree.get(opt_state, "num_linesearch_steps")
    return LoopState(image, opt_state, value, grad, state.step + 1, state.evals + n,
                     state.diverged_at, image)


def _guarded_step(state: LoopState, variables, targets, hyper: Hyper, config: Config) -> LoopState:
    # ``new.value`` is the loss at ``new.good_image`` (for Adam the image the step started from,
    # for L-BFGS the accepted point), so a finite value vouches for that image.
    new = _step(state, variables, targets, hyper, config)
    finite = jnp.isfinite(new.value) & jnp.all(jnp.isfinite(new.image))
    kept = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, state)
    return kept._replace(evals=new.evals,
                         diverged_at=jnp.where(finite, state.diverged_at, state.step))


@functools.partial(jax.jit, static_argnames="config", donate_argnames="state")
def run_chunk(state: LoopState, variables: dict, targets: losses.Targets, hyper: Hyper,
              config: Config) -> tuple[LoopState, Array, losses.Parts]:
    """Take up to ``config.chunk`` steps. Returns the new state, the total loss after each step
    (NaN for steps not taken), and the loss parts at the final image (one forward pass)."""

    def body(s: LoopState, _):
        active = (s.step < hyper.iterations) & (s.diverged_at < 0)
        s = lax.cond(active, lambda s: _guarded_step(s, variables, targets, hyper, config),
                     lambda s: s, s)
        return s, jnp.where(active & (s.diverged_at < 0), s.value, jnp.nan)

    state, totals = lax.scan(body, state, None, length=config.chunk)
    parts = parts_fn(state.image, variables, targets, hyper.weights, config)
    return state, totals, parts


def descend(image: Array, variables: dict, targets: losses.Targets, hyper: Hyper, config: Config,
            callback: Callable[[LoopState, Array, losses.Parts], bool | None] | None = None,
            ) -> tuple[LoopState, list[Array], list[losses.Parts]]:
    """Run chunks until ``hyper.iterations`` steps are done or the run diverges. ``callback`` gets
    (state, totals, parts) after each chunk (the only host sync); returning True stops early."""
    state, parts0 = init_state(image, variables, targets, hyper, config)
    totals, parts = [], [parts0]
    n = int(hyper.iterations)
    while True:
        state, t, p = run_chunk(state, variables, targets, hyper, config)
        totals.append(t)
        parts.append(p)
        stop = callback(state, t, p) if callback is not None else None
        if stop or int(state.step) >= n or int(state.diverged_at) >= 0:
            return state, totals, parts
