"""A backtracking (Armijo) line search for batched L-BFGS: one evaluation per trial, no cond."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

Array = jax.Array


class ArmijoInfo(NamedTuple):
    num_linesearch_steps: Array


class ArmijoState(NamedTuple):
    value: Array
    grad: Any
    info: ArmijoInfo


def armijo_backtracking(
    max_steps: int = 20, shrink: float = 0.5, c1: float = 1e-4
) -> optax.GradientTransformationExtraArgs:
    """A line search for batches: try step 1, halve until ``f(x + t d) <= f(x) + c1 t <g, d>``.

    Every trial is exactly one value-and-gradient evaluation with no ``lax.cond`` around it, so
    under ``jax.vmap`` a trial costs one evaluation per member (optax's backtracking search takes
    the gradient inside a cond, which vmap turns into a select that ran ~2.5x slower here). The
    state keeps the value and gradient at the accepted point, like optax's searches, so L-BFGS
    reuses them. Fields match optax's (``value``, ``grad``, ``num_linesearch_steps``).
    """

    def init(params):
        return ArmijoState(
            jnp.asarray(jnp.inf, jnp.float32),
            optax.tree.zeros_like(params),
            ArmijoInfo(jnp.asarray(0, jnp.int32)),
        )

    def update(updates, state, params, *, value, grad, value_fn, **extra):
        slope = optax.tree.vdot(updates, grad)
        vg = jax.value_and_grad(value_fn)

        def trial(t):
            v, g = vg(optax.tree.add_scale(params, t, updates), **extra)
            return v, g, (v <= value + c1 * t * slope) & jnp.isfinite(v)

        def body(c):
            t, _, _, _, n = c
            t = t * shrink
            v, g, ok = trial(t)
            return t, v, g, ok, n + 1

        v0, g0, ok0 = trial(jnp.float32(1.0))
        t, v, g, _, n = lax.while_loop(
            lambda c: ~c[3] & (c[4] < max_steps),
            body,
            (jnp.float32(1.0), v0, g0, ok0, jnp.int32(1)),
        )
        return (optax.tree.scale(t, updates), ArmijoState(v.astype(jnp.float32), g, ArmijoInfo(n)))

    return optax.GradientTransformationExtraArgs(init, update)
