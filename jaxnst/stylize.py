"""``stylize()``: arrays in, arrays out, as one composition of the pipeline's stages.

    options  (:mod:`jaxnst.pipeline.options`: Options, make_options)
    prepare  (:mod:`jaxnst.pipeline.prepare`: arrays -> Problem)
    layout (:mod:`jaxnst.pipeline.layout`: members, this process's share, sharding -> Layout, Batch)
    run (:mod:`jaxnst.pipeline.descent`: the compiled descent with progress and checkpoint hooks)
    collect (:mod:`jaxnst.pipeline.collect`: device arrays -> Result)

Multi-scale (:mod:`jaxnst.pipeline.multiscale`) composes the same stages at several sizes. The names
that lived here before the stages had modules of their own are re-exported, so imports keep working.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxnst.loss import neighbours
from jaxnst.optim.compilation import compile_stats
from jaxnst.pipeline import collect, descent, labels, layout, multiscale, prepare
from jaxnst.pipeline.checks import check_masks
from jaxnst.pipeline.collect import Result
from jaxnst.pipeline.layout import gather_members, initial_images, process_share, sweep_grid
from jaxnst.pipeline.options import (
    CONTENT_LAYERS,
    MIN_SIDE,
    STYLE_LAYERS,
    SWEEPABLE,
    Options,
    make_options,
)
from jaxnst.pipeline.prepare import features, layer_masks, prepare_targets

__all__ = [
    "CONTENT_LAYERS",
    "MIN_SIDE",
    "STYLE_LAYERS",
    "SWEEPABLE",
    "Options",
    "Result",
    "compile_stats",
    "features",
    "gather_members",
    "initial_images",
    "layer_masks",
    "make_options",
    "prepare_targets",
    "process_share",
    "reconstruct_content",
    "stylize",
    "sweep_grid",
    "synthesize_texture",
]


def stylize(
    content: Any,
    style: Any,
    *,
    variables: dict | None = None,
    callback: Callable[[int, float, jax.Array], bool | None] | None = None,
    checkpoint_every: int | None = None,
    on_checkpoint: Callable[[Any], None] | None = None,
    resume: Any = None,
    content_masks: Any = None,
    content_labels: Any = None,
    style_labels: Any = None,
    style_masks: Any = None,
    **options: Any,
) -> Result:
    """Gatys et al. style transfer of ``style`` onto ``content``.

    content: (H, W, 3) float RGB in [0, 1], or (C, H, W, 3) for several content images of one size.
    style: (H, W, 3); its size may differ. ``options``: see :class:`Options`. ``variables``: VGG19
    Flax variables (default: the verified weights).

    Sweeps: ``content_weight``, ``style_weight``, ``tv_weight`` and ``seed`` also accept a sequence
    or 1-D array. All combinations (cartesian product, in that order of options, the last varying
    fastest; several content images vary slowest) run as one batch in ONE compiled program via
    ``jax.vmap``; style Grams and content targets are computed once, outside it. With several local
    devices the batch axis is sharded across them (padded to a multiple of the device count). A
    batched result has a leading batch axis on ``image``, ``losses`` and the history's parts, and
    ``sweep`` gives each member's option values.

    ``callback(step, loss, image)`` runs after every chunk (the image is the batch for a sweep);
    returning True stops early.

    Spatial control: ``content_masks`` (R, H, W) in [0, 1], one mask per style image, assigns
    region r of the content to style r through guided Gram matrices (Gatys et al. 2017), or
    with ``style_loss="remd"`` (STROTSS) region-wise sampling (:mod:`jaxnst.loss.sampled`).

    Label-guided style (Luan et al. 2017): ``content_labels``, ``style_labels`` colour-coded
    (H, W, 3) segmentations, a region per colour (:mod:`jaxnst.pipeline.labels`; Gram or NNST
    style loss); as masks, ``content_masks`` (R, H, W) with ``style_masks`` (R, H_s, W_s).

    Coarse-to-fine: ``scales=(256, 512)`` optimises at those sizes first; ``scales="auto"`` picks
    the sizes and iterations from the content's size and ``iterations``
    (:func:`jaxnst.pipeline.multiscale.auto_schedule`; single-scale below 512 px).

    Checkpoints (:mod:`jaxnst.pipeline.checkpoint`): ``on_checkpoint(ckpt)`` receives a
    :class:`~jaxnst.pipeline.checkpoint.Checkpoint` at chunk ends where the step is a multiple of
    ``checkpoint_every``, and on Ctrl-C (then KeyboardInterrupt is re-raised). ``resume`` (a
    Checkpoint or a file path) continues such a run; the result equals the uninterrupted run's.
    It is refused (CheckpointError) when the inputs or options differ, except ``iterations``.
    """
    o = multiscale.resolve(make_options(**options), np.shape(content))  # scales="auto"
    guide = labels.guide(content, style, content_labels, style_labels, content_masks, o)
    content_masks, style_masks = labels.paired(guide, content_masks, style_masks, style)
    o, note = labels.recoloured(content, style, guide, o)
    if content_masks is not None:
        check_masks(o)
    masks = dict(content_masks=content_masks, style_masks=style_masks)
    if o.scales:
        # ``stylize`` is looked up when called, so each scale runs whatever this module holds.
        result = multiscale.coarse_to_fine(
            content,
            style,
            o,
            lambda *a, **k: stylize(*a, **k),
            variables=variables,
            callback=callback,
            **masks,
        )
        return labels.noted(result, guide, note)
    clock = collect.start_clock()
    deadline = None if o.max_seconds is None else time.monotonic() + o.max_seconds
    problem = prepare.prepare(content, style, o, variables=variables, **masks)
    lay = layout.make_layout(problem)
    batch = layout.place(problem, lay)
    hooks = descent.Hooks(callback, checkpoint_every, on_checkpoint, resume, deadline)
    progress = descent.run(problem, lay, batch, hooks)
    result = collect.collect(problem, lay, batch, progress, clock)
    result = labels.noted(result, guide, note)
    return _oklab(result, problem, lay) if o.preserve_color == "oklab" else result


def _oklab(r: Result, problem: prepare.Problem, lay: layout.Layout) -> Result:
    """``preserve_color="oklab"`` (``method="nnst"``'s): the collected image (each member's)
    colour-corrected with its content against the styles (:func:`jaxnst.loss.neighbours.
    colour_correct`). A coarse-to-fine run corrects its last stage only."""
    image = np.asarray(r.image)
    many = image.ndim == 4
    batch = image if many else image[None]
    contents = problem.original_contents[lay.content_index[: batch.shape[0]]]
    out = neighbours.colour_correct(batch, contents, problem.styles)
    return dataclasses.replace(r, image=out if many else out[0])


def synthesize_texture(style: Any, shape: tuple[int, int], **options: Any) -> Result:
    """Texture synthesis (Gatys, Ecker & Bethge 2015): match only the style's Grams, from white
    noise. ``shape`` = (H, W) of the output; ``options`` as for :func:`stylize`."""
    options = {"init": "noise", **options, "content_layers": ()}
    return stylize(np.zeros((*shape, 3), np.float32), style, **options)


def reconstruct_content(content: Any, layer: str = "conv4_2", **options: Any) -> Result:
    """Content reconstruction from white noise: match only ``layer``'s activations (the paper's
    Figure 1 shows how much each layer keeps)."""
    options = {"init": "noise", **options, "style_layers": (), "content_layers": (layer,)}
    return stylize(content, content, **options)
