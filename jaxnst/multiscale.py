"""Coarse-to-fine (Gatys et al. 2017), a front end over the pipeline: the same stages run at each
size, each stage starting from the previous result upsampled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxnst.collect import Result
from jaxnst.layout import sweep_grid
from jaxnst.options import Options
from jaxnst.prepare import rescale


def coarse_to_fine(
    content: Any,
    style: Any,
    o: Options,
    run: Callable[..., Result],
    content_masks: Any = None,
    **kw: Any,
) -> Result:
    """Optimise at each of ``o.scales`` (longer side), then at the content's size.

    ``run(content, style, **options)`` is one single-scale stylization (:func:`jaxnst.stylize`);
    ``kw`` (variables, callback) is passed to each. The style keeps its size relative to the
    content (``style_scale``, default 1: same longer side). Optimizer state is not carried across
    sizes: L-BFGS's curvature pairs and Adam's moments belong to one resolution; the upsampled image
    (Lanczos) is the warm start. Returns the last stage's result with summed counts and timings."""
    content = jnp.asarray(content, jnp.float32)
    if content.ndim != 3:
        raise ValueError("scales work with one content image")
    if sweep_grid(o)[0]:
        raise ValueError(
            "scales do not combine with sweeps (several weights or seeds) yet; "
            "run one value at a time"
        )
    h, w = content.shape[:2]
    full = max(h, w)
    sizes = [s for s in (o.scales or ()) if s < full] + [full]
    its = (
        list(o.scale_iterations)
        if o.scale_iterations
        else [o.iterations] * (len(o.scales or ()) + 1)
    )
    its = its[-len(sizes) :]
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    scale = o.style_scale if o.style_scale is not None else 1.0
    base = dataclasses.asdict(o) | {"scales": None, "scale_iterations": None}
    image, results = None, []
    for size, n in zip(sizes, its):
        c = content if size == full else rescale(content, size)
        st = [rescale(jnp.asarray(x, jnp.float32), scale * size) for x in styles]
        m = (
            None
            if content_masks is None
            else jax.image.resize(
                jnp.asarray(content_masks, jnp.float32),
                (len(content_masks),) + c.shape[:2],
                "linear",
            )
        )
        opts = base | {
            "iterations": n,
            "init": _start(image, base["init"], c.shape),
            "style_scale": None,
        }
        r = run(c, st if len(st) > 1 else st[0], content_masks=m, **kw, **opts)
        if r.diverged_at is not None:
            return r
        image = jnp.asarray(r.image)
        results.append(r)
    return _combine(results, o)


def _start(previous: jax.Array | None, init: Any, shape: tuple[int, ...]) -> Any:
    """The previous stage's image upsampled, else the user's init (an array is resized)."""
    if previous is not None:
        return jnp.clip(jax.image.resize(previous, shape, "lanczos3"), 0.0, 1.0)
    if isinstance(init, str):
        return init
    return jnp.clip(jax.image.resize(jnp.asarray(init, jnp.float32), shape, "lanczos3"), 0.0, 1.0)


def _combine(results: list[Result], o: Options) -> Result:
    return dataclasses.replace(
        results[-1],
        evaluations=sum(r.evaluations for r in results),
        iterations=sum(r.iterations for r in results),
        compile_seconds=sum(r.compile_seconds for r in results),
        compile_cache_hits=sum(r.compile_cache_hits for r in results),
        run_seconds=sum(r.run_seconds for r in results),
        batch_evaluations=sum(r.batch_evaluations for r in results),
        options=o,
    )
