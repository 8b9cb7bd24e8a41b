"""Line searches for L-BFGS: state machines that never evaluate the objective themselves (the
descent loop evaluates once per trial), and a backtracking optax transformation for batches."""

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


# --- Line searches as state machines for a loop with one evaluation site -------------------------
#
# optax's searches evaluate the objective inside their own while loop, and its zoom search does so
# in both branches of a ``lax.cond`` (bracketing vs zooming); XLA compiles every call site, so an
# L-BFGS program held the VGG19 forward and backward three times. Here a search never evaluates:
# ``propose`` gives the next trial step size, the caller evaluates ``f(x + t d)`` and its gradient
# once, and ``absorb`` takes the value and slope there. The decisions are those of optax's
# ``zoom_linesearch`` (Nocedal & Wright, Algorithms 3.5 and 3.6, with Hager & Zhang's approximate
# Wolfe decrease test), so the trials and the accepted steps are the same.


class SearchState(NamedTuple):
    """Scalars of one line search along ``d`` from ``x`` (plus the best safe trial's gradient).

    ``stepsize``/``value``/``slope`` describe the latest trial; ``low``/``high`` bracket the step
    once ``bracketed``; ``safe_*`` is the best trial that decreased enough (the fallback when the
    search fails). ``done``: the latest trial satisfies the strong Wolfe conditions;
    ``failed``: the search gave up (take :func:`chosen`)."""

    trials: Array  # trials so far
    stepsize: Array
    value: Array
    slope: Array
    value_init: Array
    slope_init: Array
    decrease_error: Array
    bracketed: Array
    done: Array
    failed: Array
    low: Array
    value_low: Array
    slope_low: Array
    high: Array
    value_high: Array
    slope_high: Array
    cubic_ref: Array
    value_cubic_ref: Array
    safe_stepsize: Array
    safe_value: Array
    safe_grad: Any
    safe_aux: Any
    guess: Array  # the first trial's step size


def _f32(x) -> Array:
    return jnp.asarray(x, jnp.float32)


def _pick(c, a, b):
    return jax.tree.map(lambda u, v: jnp.where(c, u, v), a, b)


def search_start(value, slope, grad, aux, guess=1.0) -> SearchState:
    """A fresh search from a point with ``value``, gradient ``grad`` and ``slope`` = <grad, d>;
    ``aux`` (any pytree, e.g. the loss parts) rides along with each trial. :class:`Zoom` tries
    ``guess`` first (:func:`first_guess` for a direction without curvature information)."""
    v, s, z = _f32(value), _f32(slope), _f32(0.0)
    no = jnp.asarray(False)
    return SearchState(
        jnp.int32(0), z, v, s, v, s, _f32(jnp.inf), no, no, no,
        z, v, s, z, v, s, z, v, z, v, grad, aux, _f32(guess),
    )  # fmt: skip


def first_guess(value, slope) -> Array:
    """The first trial step along a direction that carries no curvature information (L-BFGS's
    first, a capped gradient of norm <= 1): Nocedal & Wright's initial step 2 (f_k - f_{k-1}) /
    phi'(0) (their eq. 3.60), with the expected decrease taken as half the loss (the objective is
    non-negative), i.e. ``-value / slope``; 1 where that is not a positive finite number.

    A unit step is tiny for an image: its RMS pixel change is 1/sqrt(pixels), so the search took
    3-4 doubling trials to reach a step that satisfies the curvature condition at 384 px and up."""
    t = -_f32(value) / _f32(slope)
    return jnp.where(jnp.isfinite(t) & (t > 0.0), t, _f32(1.0))


class Zoom(NamedTuple):
    """Strong-Wolfe search (bracketing, then zooming with cubic, quadratic or bisection steps).
    Defaults are optax's ``scale_by_zoom_linesearch`` with ``initial_guess_strategy='one'``."""

    max_steps: int = 20
    c1: float = 1e-4  # sufficient decrease
    c2: float = 0.9  # curvature
    approx_dec_rtol: float = 1e-6  # Hager-Zhang approximate-Wolfe decrease, relative to |f(x)|
    increase_factor: float = 2.0
    interval_threshold: float = 1e-5

    def propose(self, s: SearchState) -> Array:
        grow = jnp.where(s.trials == 0, s.guess, self.increase_factor * s.stepsize)
        return jnp.where(s.bracketed, self._middle(s), grow)

    def _middle(self, s: SearchState) -> Array:
        delta = jnp.abs(s.high - s.low)
        left, right = jnp.minimum(s.high, s.low), jnp.maximum(s.high, s.low)
        cubic = _cubic_min(
            s.low, s.value_low, s.slope_low, s.high, s.value_high, s.cubic_ref, s.value_cubic_ref
        )
        quad = _quad_min(s.low, s.value_low, s.slope_low, s.high, s.value_high)
        # NaN fails both comparisons, so a degenerate interpolant falls through to bisection.
        use_cubic = (cubic > left + 0.2 * delta) & (cubic < right - 0.2 * delta)
        use_quad = ~use_cubic & (quad > left + 0.1 * delta) & (quad < right - 0.1 * delta)
        return jnp.where(use_cubic, cubic, jnp.where(use_quad, quad, (s.low + s.high) / 2.0))

    def _errors(self, s: SearchState, t, value, slope) -> tuple[Array, Array]:
        dec = value - s.value_init - self.c1 * t * s.slope_init
        approx = jnp.maximum(
            slope - (2 * self.c1 - 1.0) * s.slope_init,
            value - s.value_init - self.approx_dec_rtol * jnp.abs(s.value_init),
        )
        dec = jnp.maximum(jnp.minimum(dec, approx), 0.0)
        curv = jnp.maximum(jnp.abs(slope) - self.c2 * jnp.abs(s.slope_init), 0.0)
        nan_inf = lambda e: jnp.where(jnp.isnan(e), jnp.inf, e)  # noqa: E731
        return nan_inf(dec), nan_inf(curv)

    def absorb(self, s: SearchState, t, value, slope, grad, aux) -> SearchState:
        """The search after a trial at step ``t`` gave ``value``, ``slope`` and ``grad``."""
        t, value, slope = _f32(t), _f32(value), _f32(slope)
        dec, curv = self._errors(s, t, value, slope)
        ok = jnp.maximum(dec, curv) <= 0.0
        grow, zoom = self._bracket(s, t, value, slope, dec, ok), self._zoom(s, t, value, slope, dec)
        new = _pick(s.bracketed, zoom, grow)
        safe = jnp.where(s.bracketed, (dec <= 0.0) & (value < s.safe_value), dec <= 0.0)
        st, sv, sg, sa = _pick(
            safe, (t, value, grad, aux), (s.safe_stepsize, s.safe_value, s.safe_grad, s.safe_aux)
        )
        small = jnp.abs(s.high - s.low) <= self.interval_threshold
        gave_up = (s.trials + 1 >= self.max_steps) | (s.bracketed & small & (st > 0.0))
        return new._replace(
            trials=s.trials + 1,
            stepsize=t,
            value=value,
            slope=slope,
            decrease_error=dec,
            done=ok,
            failed=gave_up & ~ok,
            safe_stepsize=st,
            safe_value=sv,
            safe_grad=sg,
            safe_aux=sa,
        )

    def _bracket(self, s: SearchState, t, value, slope, dec, ok) -> SearchState:
        high_new = (dec > 0.0) | ((value >= s.value) & (s.trials > 0))
        low_new = (slope >= 0.0) & ~high_new
        prev, new = (s.stepsize, s.value, s.slope), (t, value, slope)
        lo, hi = _pick(low_new, new, prev), _pick(low_new, prev, new)
        return s._replace(
            bracketed=high_new | low_new | ok,
            low=lo[0], value_low=lo[1], slope_low=lo[2],
            high=hi[0], value_high=hi[1], slope_high=hi[2],
            cubic_ref=lo[0], value_cubic_ref=lo[1],
        )  # fmt: skip

    def _zoom(self, s: SearchState, t, value, slope, dec) -> SearchState:
        high_mid = (dec > 0.0) | (value >= s.value_low)
        high_low = (slope * (s.high - s.low) >= 0.0) & ~high_mid
        mid, low = (t, value, slope), (s.low, s.value_low, s.slope_low)
        old_high = (s.high, s.value_high, s.slope_high)
        hi = _pick(high_low, low, _pick(high_mid, mid, old_high))
        lo = _pick(high_mid, low, mid)
        ref = _pick(high_mid | high_low, old_high[:2], low[:2])
        return s._replace(
            low=lo[0], value_low=lo[1], slope_low=lo[2],
            high=hi[0], value_high=hi[1], slope_high=hi[2],
            cubic_ref=ref[0], value_cubic_ref=ref[1],
        )  # fmt: skip


class Backtrack(NamedTuple):
    """Armijo backtracking: step 1, then halve until ``f(x + t d) <= f(x) + c1 t <g, d>``; after
    ``max_steps`` trials the last one is taken (as :func:`armijo_backtracking` does)."""

    max_steps: int = 20
    shrink: float = 0.5
    c1: float = 1e-4

    def propose(self, s: SearchState) -> Array:
        return jnp.where(s.trials == 0, _f32(1.0), self.shrink * s.stepsize)

    def absorb(self, s: SearchState, t, value, slope, grad, aux) -> SearchState:
        t, value = _f32(t), _f32(value)
        ok = (value <= s.value_init + self.c1 * t * s.slope_init) & jnp.isfinite(value)
        return s._replace(
            trials=s.trials + 1,
            stepsize=t,
            value=value,
            slope=_f32(slope),
            done=ok,
            failed=~ok & (s.trials + 1 >= self.max_steps),
            safe_stepsize=t,
            safe_value=value,
            safe_grad=grad,
            safe_aux=aux,
        )


def chosen(s: SearchState, value, grad, aux) -> tuple[Array, Array, Any, Any]:
    """The step a finished search takes: the latest trial (``value``, ``grad``, ``aux``) when it
    satisfied the conditions; after a failure the best safe trial, or the start (step 0) when no
    trial was even finite; else the latest trial anyway (as optax's zoom search does)."""
    fallback = s.failed & ((s.safe_stepsize > 0.0) | jnp.isinf(s.decrease_error))
    return _pick(
        fallback,
        (s.safe_stepsize, s.safe_value, s.safe_grad, s.safe_aux),
        (s.stepsize, _f32(value), grad, aux),
    )


def _cubic_min(a, fa, fpa, b, fb, c, fc) -> Array:
    """Stationary point of the cubic through (a, fa) with slope fpa at a, (b, fb) and (c, fc)
    (NaN when it has none)."""
    db, dc = b - a, c - a
    rb, rc = fb - fa - fpa * db, fc - fa - fpa * dc
    denom = (db * dc) ** 2 * (db - dc)
    p = (dc**2 * rb - db**2 * rc) / denom  # cubic coefficient
    q = (-(dc**3) * rb + db**3 * rc) / denom  # quadratic coefficient
    return a + (-q + jnp.sqrt(q * q - 3.0 * p * fpa)) / (3.0 * p)


def _quad_min(a, fa, fpa, b, fb) -> Array:
    """Stationary point of the parabola through (a, fa) with slope fpa at a and (b, fb)."""
    db = b - a
    curv = (fb - fa - fpa * db) / (db**2)
    return a - fpa / (2.0 * curv)
