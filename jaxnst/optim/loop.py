"""One iteration of the descent loop for one image: evaluate once, then decide.

:func:`iterate_member` is the body of :func:`jaxnst.optim.optimize.run_chunk`'s ``while_loop``
(vmapped over a batch). It holds the program's only evaluation of the objective and its gradient: at
the starting image when the state is fresh, else at the next L-BFGS line-search trial or at the
image after the next first-order (Adam, optax) step. What follows the evaluation is cheap arithmetic
on scalars and image-sized arrays: the line search absorbing the trial, and on acceptance the L-BFGS
memory update and next direction (optax's ``scale_by_lbfgs``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

import jax
import jax.numpy as jnp
import optax
from jax import lax

from jaxnst.loss import losses, neighbours, sampled
from jaxnst.optim import linesearch
from jaxnst.optim.linesearch import SearchState

Array = jax.Array
# (``config`` and ``hyper`` below are jaxnst.optim.optimize's Config and Hyper; that module imports
# this one, so they are not imported here.)
Config: TypeAlias = Any
Hyper: TypeAlias = Any


class LoopState(NamedTuple):
    """One member's descent between two loop iterations (batched: a leading N axis)."""

    image: Any  # the variable: (H, W, 3) float32 pixels, or a pyramid's levels (optim.param);
    # unconstrained (clipped only on output); the loss is finite there
    opt_state: Any  # L-BFGS: optax's scale_by_lbfgs memory; else the transformation's state
    value: Array  # total loss at ``image``
    grad: Any  # gradient at ``image`` (same structure)
    parts: losses.Parts  # loss parts at ``image``
    step: Array  # int32, steps taken
    evals: Array  # int32, loss+gradient evaluations so far
    diverged_at: Array  # int32, step at which a non-finite loss/image appeared, or -1
    ema: Any  # Adam: d * ema + (1 - d) * image after each step (bias: 1 - d^step)
    fresh: Array  # bool: ``image`` is not evaluated yet (the next iteration evaluates it)
    direction: Any  # L-BFGS: the search direction at ``image``
    search: SearchState | None  # L-BFGS: the line search along ``direction`` in progress
    key: Array  # (2,) uint32 raw PRNG key: the sampled terms' draws (jaxnst.loss.sampled.pick)
    held: Any = None  # NNST's final pass with nnst_refresh > 1: its matches (jaxnst.optim.held)


class Ops(NamedTuple):
    """What the loop calls back into: ``optimizer(config, learning_rate)`` gives the optax
    transformation (for L-BFGS its direction alone), ``parts(image, variables, targets, weights,
    config)`` the loss parts (:func:`jaxnst.optim.optimize.parts_fn`)."""

    optimizer: Callable[..., Any]
    parts: Callable[..., losses.Parts]


def active(s: LoopState, stop: Array) -> Array:
    """Whether a member still has work in this call: its first evaluation or steps below
    ``stop``, and no divergence."""
    return (s.fresh | (s.step < stop)) & (s.diverged_at < 0)


def _search(config: Config) -> Any:
    if config.linesearch == "backtracking":
        return linesearch.Backtrack(config.max_linesearch_steps)
    return linesearch.Zoom(config.max_linesearch_steps)


def _axpy(t: Array, d: Any, x: Any) -> Any:
    """``x + t * d`` for images or pyramids."""
    return jax.tree.map(lambda a, b: a + t * b, x, d)


def _finite(x: Any) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(x)]))


def _evaluate(ops: Ops, image: Any, variables, targets, weights, config: Config):
    def total(x):
        p = ops.parts(x, variables, targets, weights, config)
        return p.total, p

    (value, parts), grad = jax.value_and_grad(total, has_aux=True)(image)
    return value.astype(jnp.float32), grad, parts


def start_state(ops: Ops, image: Any, hyper: Hyper, config: Config) -> LoopState:
    """The structure of a member's state (the values are placeholders: see ``fresh``)."""
    image = jax.tree.map(lambda a: a.astype(jnp.float32), image)
    zeros = jax.tree.map(jnp.zeros_like, image)
    z, i = jnp.float32(0.0), jnp.int32(0)
    parts = losses.Parts(z, z, z, z)
    lbfgs = config.optimizer == "lbfgs"
    search = linesearch.search_start(z, z, zeros, parts) if lbfgs else None
    return LoopState(
        image=image,
        opt_state=ops.optimizer(config, hyper.learning_rate).init(image),
        value=z,
        grad=zeros,
        parts=parts,
        step=i,
        evals=i,
        diverged_at=i - 1,
        ema=zeros,
        fresh=jnp.asarray(True),
        direction=zeros if lbfgs else None,
        search=search,
        key=jnp.zeros((2,), jnp.uint32),
    )


def iterate_member(
    x: tuple, variables, targets, hyper: Hyper, config: Config, ops: Ops, alone: bool = False
) -> tuple:
    """``x = (state, stop)``: one loop iteration for one member. Returns the new state and
    ``(value, recorded)``: the loss after a step, and whether a step ended in this iteration
    (the caller writes it into the history at row ``state.step - first``). ``alone``: the
    batch has one member, so the loop only runs this body while the member is active (no
    select of the state on it: a smaller program)."""
    s, stop = x
    go = jnp.asarray(True) if alone else active(s, stop)
    if targets.sampled is not None:  # this step's sample points, one draw per step
        t = sampled.pick(targets.sampled, s.key, s.step, config.resample_every, config.samples)
        targets = targets._replace(sampled=t)
    if targets.nnst_final is not None:  # NNST's final pass: this step's grid offsets
        final = neighbours.pick(targets.nnst_final, s.key, s.step, config.nnst_refresh)
        if s.held is not None:  # ... and the matches held since the last multiple of K
            final = final._replace(matches=s.held.matches)
        targets = targets._replace(nnst_final=final)
    opt = ops.optimizer(config, hyper.learning_rate)
    if config.optimizer == "lbfgs":
        new, value, recorded = _lbfgs(s, go, opt, ops, variables, targets, hyper, config)
    else:
        new, value, recorded = _first_order(s, opt, ops, variables, targets, hyper, config)
    # (The L-BFGS memory, 2 * lbfgs_memory images, changes only under ``go`` already: a select
    # over it here would copy it every iteration.)
    if alone:
        return new, (value, recorded)
    kept = _select(go, new._replace(opt_state=None), s._replace(opt_state=None))
    opt_state = (
        new.opt_state if config.optimizer == "lbfgs" else _select(go, new.opt_state, s.opt_state)
    )
    return kept._replace(opt_state=opt_state), (value, recorded & go)


def _select(c, a, b):
    return jax.tree.map(lambda u, v: jnp.where(c, u, v), a, b)


def _lbfgs(s: LoopState, go, opt, ops: Ops, variables, targets, hyper, config) -> tuple:
    search = _search(config)
    assert s.direction is not None and s.search is not None
    t = jnp.where(s.fresh, jnp.float32(0.0), search.propose(s.search))
    value, grad, parts = _evaluate(
        ops, _axpy(t, s.direction, s.image), variables, targets, hyper.weights, config
    )
    srch = search.absorb(s.search, t, value, optax.tree.vdot(grad, s.direction), grad, parts)
    chosen = linesearch.chosen(srch, value, grad, parts)
    # A fresh state has just evaluated its starting image: that is the accepted "step".
    t_acc, v_acc, g_acc, p_acc = linesearch._pick(
        s.fresh, (jnp.float32(0.0), value, grad, parts), chosen
    )
    ends = s.fresh | srch.done | srch.failed
    image = _axpy(t_acc, s.direction, s.image)
    finite = jnp.isfinite(v_acc) & _finite(image)

    def accept(_):
        # (A fresh state's memory is optax's init already: all zeros, as init_state builds it;
        # selecting an init here would copy 2 * lbfgs_memory images every iteration.)
        d, o = opt.update(g_acc, s.opt_state, image)
        slope = optax.tree.vdot(g_acc, d)
        first = optax.tree.get(s.opt_state, "count") == 0  # no curvature pairs yet
        guess = jnp.where(first, linesearch.first_guess(v_acc, slope), 1.0)
        start = linesearch.search_start(v_acc, slope, g_acc, p_acc, guess)
        return image, o, v_acc, g_acc, p_acc, d, start

    def keep(_):
        return s.image, s.opt_state, s.value, s.grad, s.parts, s.direction, srch

    image, o, v, g, p, d, srch = lax.cond(go & ends & finite, accept, keep, None)
    stepped = ends & ~s.fresh
    new = s._replace(
        image=image,
        opt_state=o,
        value=v,
        grad=g,
        parts=p,
        step=s.step + (stepped & finite),
        evals=s.evals + 1,
        diverged_at=jnp.where(ends & ~finite, s.step, s.diverged_at),
        fresh=jnp.asarray(False),
        direction=d,
        search=srch,
    )
    return new, jnp.where(finite, v_acc, jnp.nan), stepped


def _first_order(s: LoopState, opt, ops: Ops, variables, targets, hyper, config) -> tuple:
    def value_fn(x):  # for transformations with a line search of their own (their evaluations)
        return ops.parts(x, variables, targets, hyper.weights, config).total

    updates, opt_state = _update(opt, s, value_fn, config)
    trial = _select(s.fresh, s.image, optax.apply_updates(s.image, updates))
    value, grad, parts = _evaluate(ops, trial, variables, targets, hyper.weights, config)
    finite = jnp.isfinite(value) & _finite(trial)
    opt_state = jax.tree.map(lambda a, b: jnp.where(s.fresh, a, b), opt.init(s.image), opt_state)
    d = jnp.asarray(hyper.ema_decay, jnp.float32)
    taken = s._replace(
        image=trial,
        opt_state=opt_state,
        value=value,
        grad=grad,
        parts=parts,
        step=s.step + jnp.where(s.fresh, 0, 1),
        ema=_select(s.fresh, s.ema, jax.tree.map(lambda e, x: d * e + (1.0 - d) * x, s.ema, trial)),
    )
    new = jax.tree.map(lambda a, b: jnp.where(finite, a, b), taken, s)
    # A transformation's own line search pays its trials (optax's searches count them).
    extra = optax.tree.get(opt_state, "num_linesearch_steps", 0) if _extra_args(opt, config) else 0
    new = new._replace(
        evals=s.evals + 1 + jnp.where(s.fresh, 0, extra),
        diverged_at=jnp.where(finite, s.diverged_at, s.step),
        fresh=jnp.asarray(False),
    )
    return new, jnp.where(finite, value, jnp.nan), ~s.fresh


def _extra_args(opt, config: Config) -> bool:
    return not isinstance(config.optimizer, str) and isinstance(
        opt, optax.GradientTransformationExtraArgs
    )


def _update(opt, s: LoopState, value_fn, config: Config) -> tuple:
    if not _extra_args(opt, config):
        return opt.update(s.grad, s.opt_state, s.image)
    return opt.update(s.grad, s.opt_state, s.image, value=s.value, grad=s.grad, value_fn=value_fn)
