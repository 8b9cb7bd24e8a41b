"""NNST's final pass with its matches held for K steps (``nnst_refresh``; issue 31).

The authors' final pass (nkolkin13/NeuralNeighborStyleTransfer, ``utils/stylize.py``,
``optimize_output_im(final_pass=True)``) searches every layer's nearest style rows at every Adam
step, on a strided grid re-drawn at every step. On our 2-core CPU that search is most of a step's
cost (1.2 s a step at 256 px against 0.45 s for a scale's step with fixed targets). Deviation:
with ``nnst_refresh`` K above 1 the search runs every K steps only, at the current image before
the step (a VGG forward and the search, no backward), and the next K evaluations reuse those
matches and that grid; between searches the targets are fixed, as in the authors' scales
(targets searched once per scale). K = 1 is the authors' pass exactly (no state, no forward:
:func:`jaxnst.loss.neighbours.final_matches` searches at each evaluation).

The refresh sits in :func:`jaxnst.optim.optimize.run_chunk`'s loop body, outside the per-member
``vmap``: whether any member needs a search this iteration is one unbatched predicate, so the
``lax.cond`` skips the search on the other iterations for a batch as for one image (a batched
predicate would have become a select that searches every time).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from jaxnst.loss import neighbours
from jaxnst.model import vgg
from jaxnst.optim import param

Array = jax.Array


class Held(NamedTuple):
    """One member's held matches (the ``held`` field of :class:`jaxnst.optim.loop.LoopState`).

    step: int32, the step whose image they were searched at (0 in a fresh state, which a fresh
        state searches anyway).
    matches: per layer of :data:`jaxnst.loss.neighbours.LAYERS`, (n,) int32 the nearest style row
        of each output row on that step's grid (:func:`jaxnst.loss.neighbours.final_index`).
    """

    step: Array
    matches: tuple


def on(targets: Any, config: Any) -> bool:
    """Whether a run holds matches: NNST's final pass with ``config.nnst_refresh`` above 1."""
    return targets.nnst_final is not None and config.nnst_refresh > 1


def network(config: Any) -> vgg.VGG19:
    """The VGG19 the descent evaluates with (:func:`jaxnst.optim.optimize.parts_fn`'s)."""
    return vgg.VGG19(
        pooling=config.pooling,
        channels=config.channels,
        custom_grad=config.custom_grad,
        precision=config.precision,
        remat=config.remat,
        wrap=config.tileable,
        convs=config.convs,
    )


def search(x: Any, variables: dict, final: Any, key: Array, step: Array, config: Any) -> Held:
    """One member's matches at its variable ``x`` (pixels or a pyramid) and ``step``'s grid."""
    feats: Any = network(config).apply(variables, param.render_for(x, config), neighbours.LAYERS)
    t = neighbours.pick(final, key, step, config.nnst_refresh)
    return Held(jnp.asarray(step, jnp.int32), neighbours.final_index(feats, t))


def due(s: Any, config: Any) -> Array:
    """(N,) bool: members whose next evaluation needs new matches: a fresh state, or a step on a
    multiple of K not searched yet."""
    k = config.nnst_refresh
    return s.fresh | ((s.step % k == 0) & (s.step != s.held.step))


def refresh(s: Any, stop: Array, variables: dict, targets: Any, config: Any, alive: Any) -> Any:
    """The batched state ``s`` with new matches for the members :func:`due` and ``alive`` (the
    loop's ``active``), searched only on iterations where some member needs them."""
    need = due(s, config) & alive(s, stop)

    def searched(_):
        def one(x, key, step):
            return search(x, variables, targets.nnst_final, key, step, config)

        if s.step.shape[0] == 1:  # a batch of one runs unbatched, as the loop's evaluation
            first = jax.tree.map(lambda a: a[0], (s.image, s.key, s.step))
            new = jax.tree.map(lambda a: a[None], one(*first))
        else:
            new = jax.vmap(one)(s.image, s.key, s.step)
        pick = lambda a, b: jnp.where(need.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
        return jax.tree.map(pick, new, s.held)

    return s._replace(held=lax.cond(jnp.any(need), searched, lambda _: s.held, None))


def template(image: Any, variables: dict, targets: Any, config: Any) -> Held:
    """A :class:`Held` of the right shapes for one member (traced for its shapes only)."""
    key = jnp.zeros((2,), jnp.uint32)
    return search(image, variables, targets.nnst_final, key, jnp.int32(0), config)
