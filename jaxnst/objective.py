"""The research API: the objective :func:`jaxnst.stylize` descends, as pure JAX functions.

:func:`objective` runs the pipeline's first stages (:mod:`~jaxnst.pipeline.options`,
:mod:`~jaxnst.pipeline.prepare`, :mod:`~jaxnst.pipeline.layout`) exactly as :func:`jaxnst.stylize`
does and, instead of descending, hands back an :class:`Objective`: the prepared targets, the loss
weights, the starting image and the loss itself, ``loss_fn(image) -> (total, parts)``, built from
:func:`jaxnst.optim.optimize.parts_fn`, the function the compiled loop differentiates. Use it to
plug the objective into your own loop (any optimizer), to add terms around it, or to differentiate
with respect to something other than the pixels (the targets, the loss weights, the network)::

    obj = jaxnst.objective(content, style, style_weight=1e-3)
    opt = optax.adam(0.02)
    image, state = obj.init_image, opt.init(obj.init_image)
    for _ in range(100):
        (total, parts), g = obj.value_and_grad(image)
        updates, state = opt.update(g, state)
        image = optax.apply_updates(image, updates)

To change the objective *inside* jaxnst's own compiled loop instead, pass
``extra_loss=fn(image, feats) -> scalar`` (and ``optimizer=`` any optax transformation) to
:func:`jaxnst.stylize`; :func:`objective` takes the same options, so its ``loss_fn`` then includes
the extra term too.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from jaxnst.loss import losses, neighbours, sampled
from jaxnst.optim import optimize
from jaxnst.pipeline import layout, prepare
from jaxnst.pipeline.options import Options, make_options

Array = jax.Array


class Objective(NamedTuple):
    """What :func:`objective` returns: one image's objective, its data and its functions.

    Attributes:
        loss_fn: ``loss_fn(image) -> (total, parts)``. ``image``: (H, W, 3) float32, the
            content's shape (values outside [0, 1] are allowed: the loop does not clip either).
            ``total``: float32 scalar, the weighted sum (plus ``extra_loss``, if given);
            ``parts``: :class:`jaxnst.loss.losses.Parts` of float32 scalars (total and the
            unweighted content, style and TV losses). Pure: ``jax.jit``, ``jax.grad`` (with
            ``has_aux=True``) and ``jax.vmap`` over a batch of images all apply. It is a
            ``jax.tree_util.Partial``, a pytree whose leaves are the variables, targets and weights,
            so it can be passed *as an argument* to a jitted function, and the VGG19 weights then
            travel as arguments instead of being baked into the program.
        value_and_grad: ``value_and_grad(image) -> ((total, parts), grad)``, ``grad`` (H, W, 3)
            float32: ``jax.value_and_grad(loss_fn, has_aux=True)``, also a ``Partial``.
        init_image: (H, W, 3) float32, where :func:`jaxnst.stylize` starts: the content (after
            colour handling), seeded noise in [0, 1) (``init="noise"`` with ``seed`` or ``key``)
            or the ``init`` array.
        targets: :class:`jaxnst.loss.losses.Targets`: content activations ``{layer: (H', W', C)}``,
            style Grams ``{layer: (C, C)}`` (or Wasserstein moments; guided Grams with masks).
        weights: :class:`jaxnst.loss.losses.Weights` of float32 scalars (content, style, tv).
        variables: the VGG19 Flax variables, with the flipped kernels that the fast
            input-gradient uses (:func:`jaxnst.model.vgg.with_backward_kernels`).
        config: :class:`jaxnst.optim.optimize.Config`, the static settings (layers, pooling,
            precision, ``extra_loss``...).
        options: the validated :class:`jaxnst.Options`.
        parts_fn: ``parts_fn(image, variables, targets, weights) -> parts``, the same objective
            as a pure function of all four, to differentiate with respect to any of them.
    """

    loss_fn: Callable[[Array], tuple[Array, losses.Parts]]
    value_and_grad: Callable[[Array], tuple[tuple[Array, losses.Parts], Array]]
    init_image: Array
    targets: losses.Targets
    weights: losses.Weights
    variables: dict
    config: optimize.Config
    options: Options
    parts_fn: Callable[..., losses.Parts]


def objective(
    content: Any,
    style: Any,
    *,
    variables: dict | None = None,
    content_masks: Any = None,
    **options: Any,
) -> Objective:
    """The objective :func:`jaxnst.stylize` would descend for these arguments, without descending.

    Args:
        content: (H, W, 3) float RGB in [0, 1] (one image: an objective is one image's).
        style: (H_s, W_s, 3) float RGB in [0, 1], any size, or a list of them (blended).
        variables: VGG19 Flax variables (default: the verified weights, fetched on first use).
        content_masks: (R, H, W) masks in [0, 1] for spatial control, as for ``stylize``.
        **options: any :class:`jaxnst.Options` (weights, layers, pooling, ``init``, ``seed`` or
            ``key``, ``extra_loss``...); descent-only options (``iterations``, ``optimizer``,
            ``chunk``...) are accepted and ignored. Sweeps (sequences of weights, seeds or keys)
            and ``scales`` are refused: vmap ``parts_fn`` over stacked weights instead.
            With STROTSS's sampled terms (``style_loss="remd"``,
            ``content_loss="self_similarity"``), ``loss_fn`` compares the points that the
            descent's first step would (``targets.sampled.idx``, drawn from ``seed``/``key``;
            with content masks one array per region: :func:`jaxnst.loss.sampled.pick`);
            replace ``idx`` to draw others.

    Returns:
        An :class:`Objective`; its ``loss_fn(image)`` equals the total loss ``stylize`` reports
        at ``image`` (tests/test_objective.py checks the history and one Adam step).

    Raises:
        ValueError: bad shapes, values or options (the same one-line messages as ``stylize``).
    """
    o = make_options(**options)
    if o.method in ("strotss", "nnst") and "scales" not in options:  # (stylize's schedule)
        o = dataclasses.replace(o, scales=None)
    if o.scales:
        raise ValueError(
            "objective() is one image at one size; scales (coarse-to-fine) are for "
            "stylize(): call objective() once per size"
        )
    problem = prepare.prepare(content, style, o, variables=variables, content_masks=content_masks)
    lay = layout.make_layout(problem)
    if lay.batched:
        what = ", ".join(lay.names) or "several content images"
        raise ValueError(
            f"objective() describes one image, got a batch of {lay.n} ({what}); call "
            "it once per member, or jax.vmap its parts_fn over stacked weights"
        )
    batch = layout.place(problem, lay)
    first = functools.partial(jax.tree.map, lambda a: a[0])  # the batch of one, unbatched
    t = batch.targets
    targets = t._replace(content=first(t.content), nnst=first(t.nnst), matting=first(t.matting))
    if targets.sampled is not None:  # STROTSS's terms: the points of step 0 of this seed's draw
        targets = targets._replace(sampled=_points(targets.sampled, batch, first))
    if targets.nnst_final is not None:  # NNST's final pass: the grid of step 0 of this seed
        final = neighbours.pick(targets.nnst_final, batch.hyper.keys[0], 0)
        targets = targets._replace(nnst_final=final)
    weights = first(batch.hyper.weights)
    config = batch.config._replace(batched_content=False)
    data = dict(variables=batch.variables, targets=targets, weights=weights)
    return Objective(
        loss_fn=jax.tree_util.Partial(functools.partial(_loss, config=config), **data),
        value_and_grad=jax.tree_util.Partial(
            functools.partial(_value_and_grad, config=config), **data
        ),
        init_image=batch.images0[0],
        targets=targets,
        weights=weights,
        variables=batch.variables,
        config=config,
        options=o,
        parts_fn=functools.partial(optimize.parts_fn, config=config),
    )


def _points(s: Any, batch: Any, first: Any) -> Any:
    s = s._replace(content=None if s.content is None else first(s.content))
    c = batch.config
    return sampled.pick(s, batch.hyper.keys[0], 0, c.resample_every, c.samples)


def _loss(
    image: Array,
    variables: dict,
    targets: losses.Targets,
    weights: losses.Weights,
    config: optimize.Config,
) -> tuple[Array, losses.Parts]:
    parts = optimize.parts_fn(image, variables, targets, weights, config)
    return parts.total, parts


def _value_and_grad(
    image: Array,
    variables: dict,
    targets: losses.Targets,
    weights: losses.Weights,
    config: optimize.Config,
) -> tuple[tuple[Array, losses.Parts], Array]:
    fn = jax.value_and_grad(_loss, has_aux=True)
    return fn(image, variables, targets, weights, config)
