"""Coarse-to-fine (Gatys et al. 2017), a front end over the pipeline: the same stages run at each
size, each stage starting from the previous result upsampled. ``scales="auto"`` picks the sizes and
iterations from the full size and ``iterations`` (:func:`auto_schedule`)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.optim import param
from jaxnst.pipeline.collect import Result
from jaxnst.pipeline.layout import sweep_grid
from jaxnst.pipeline.options import Options
from jaxnst.pipeline.prepare import rescale

AUTO_MIN_SIDE = 256  # px: the coarsest stage ``scales="auto"`` goes down to (longer side)


def auto_schedule(
    full: int, iterations: int, min_side: int | None = None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ``scales="auto"`` rule: (coarse sizes, iterations per stage, the full size's last).

    Sizes: ``full`` halved (floor) while the half is at least ``min_side`` (default
    :data:`AUTO_MIN_SIDE`, 256 px): 1024 -> 256, 512; 2048 -> 256, 512, 1024; 600 -> 300; below
    512 px none (single-scale). Iterations: every halving doubles them, n_k = c * 2**k at k
    halvings below the full size. An evaluation at half the side costs a quarter, so stage k
    costs c * 2**-k full-size iterations, half of the stage above it, and the whole schedule
    c * (2 - 2**-K) for K coarse stages; c = iterations / (2 - 2**-K) makes that equal to
    ``iterations`` single-scale (up to rounding, each stage at least 1). The final size gets just
    over half of the compute and the fewest iterations (1024 px, 500: 1143, 571, 286)."""
    floor = AUTO_MIN_SIDE if min_side is None else min_side
    sizes: list[int] = []
    while full // 2 ** (len(sizes) + 1) >= floor:
        sizes.insert(0, full // 2 ** (len(sizes) + 1))
    k = len(sizes)
    c = iterations / (2 - 2.0**-k)
    return tuple(sizes), tuple(max(1, round(c * 2**j)) for j in range(k, -1, -1))


def resolve(o: Options, shape: tuple[int, ...]) -> Options:
    """``scales="auto"`` made explicit for a content of ``shape`` (..., H, W, 3): the schedule's
    sizes and iterations, or single-scale (``scales=None``) where it has one stage. Other
    options are returned as they are, but ``nnst_final_steps`` (:func:`final_steps`)."""
    o = final_steps(o)
    if o.scales != "auto":
        return o
    if o.method == "strotss":
        sizes, its = strotss_schedule(shape[-3:-1], o.iterations)
    elif o.method == "nnst":
        sizes, its = nnst_schedule(max(shape[-3:-1]), o.iterations)
    elif o.method == "photoreal":
        sizes, its = photoreal_schedule(max(shape[-3:-1]), o.iterations)
    else:
        sizes, its = auto_schedule(max(shape[-3:-1]), o.iterations)
    if not sizes and o.nnst_final_steps and o.style_loss == "nnst":  # one stage, the final pass
        return dataclasses.replace(o, scales=(max(shape[-3:-1]),), scale_iterations=None)
    if not sizes:
        return dataclasses.replace(o, scales=None, scale_iterations=None)
    return dataclasses.replace(o, scales=sizes, scale_iterations=its)


def final_steps(o: Options) -> Options:
    """``nnst_final_steps`` checked (one-line ValueError) and made explicit: None is 1.5 x
    ``iterations`` for ``method="nnst"`` with scales (the authors' final pass takes as many
    steps as each scale; the recipe's 100 a scale and 150 final measured closer to the style
    than their 200 and 200, in less time: docs/site/nnst.md), else 0 (``scales=None`` with a
    count above 0 is the final pass alone)."""
    v = o.nnst_final_steps
    if v is None:
        on = o.method == "nnst" and o.scales is not None
        return dataclasses.replace(o, nnst_final_steps=max(1, 3 * o.iterations // 2) if on else 0)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"nnst_final_steps must be an integer >= 0 (0: off), got {v!r}")
    return o


def strotss_schedule(hw: tuple[int, ...], iterations: int) -> tuple[tuple[int, ...], tuple]:
    """Kolkin et al.'s schedule: the longer side divided by 2, 4, 8... while the shorter side
    stays at least 33 px (512x384: 64, 128, 256 and 512), ``iterations`` at every stage."""
    h, w = hw
    sizes = [max(h, w) // 2**k for k in range(1, 10) if min(h, w) // 2**k >= 33][::-1]
    return tuple(sizes), (iterations,) * (len(sizes) + 1)


NNST_MIN_SIDE = 64  # px: NNST's coarsest scale (the authors': 512 / 8)


def nnst_schedule(full: int, iterations: int) -> tuple[tuple[int, ...], tuple]:
    """Kolkin et al. 2022's schedule: the longer side halved while it stays at least
    :data:`NNST_MIN_SIDE` (512: 64, 128, 256 and 512; 1024: 64 ... 1024, as their code runs
    at those sizes), ``iterations`` (their 200) at every stage. Their final pass at the full size
    (matches per layer, re-drawn each step) follows them (``nnst_final_steps``,
    :func:`coarse_to_fine`)."""
    sizes = [full // 2**k for k in range(1, 12) if full // 2**k >= NNST_MIN_SIDE][::-1]
    return tuple(sizes), (iterations,) * (len(sizes) + 1)


PHOTOREAL_MIN_SIDE = 128  # px: the smallest coarse stage of method photoreal's schedule
PHOTOREAL_COARSE_SHARE = 0.4  # of its iterations, at half the side


def photoreal_schedule(full: int, iterations: int) -> tuple[tuple[int, ...], tuple]:
    """Method photoreal's schedule: 2/5 of ``iterations`` at half the longer side (while that is
    at least :data:`PHOTOREAL_MIN_SIDE`), the rest at the full size: 500 are 200 + 300, about
    0.7 of their cost single-scale. The Matting term's pull is local (a 3x3 window's), so its
    broad errors are slow to leave at the full size and cheaper at half of it; on DPST's
    examples at 384 px this reached a lower unexplained share and style loss than 500 iterations
    single-scale (docs/site/photoreal.md). Single-scale below 256 px."""
    if full // 2 < PHOTOREAL_MIN_SIDE:
        return (), (iterations,)
    coarse = max(1, round(PHOTOREAL_COARSE_SHARE * iterations))
    return (full // 2,), (coarse, max(1, iterations - coarse))


def stages(o: Options, full: int) -> list[tuple[int, int]]:
    """(longer side, iterations) of each stage for a content whose longer side is ``full``:
    scales at or above it are skipped."""
    o = resolve(o, (full, full, 3))
    scales: tuple[int, ...] = o.scales if isinstance(o.scales, tuple) else ()
    sizes = [s for s in scales if s < full] + [full]
    its = list(o.scale_iterations) if o.scale_iterations else [o.iterations] * (len(scales) + 1)
    return list(zip(sizes, its[-len(sizes) :]))


def describe(o: Options, shape: tuple[int, ...]) -> str | None:
    """One line naming the coarse-to-fine schedule (None for a single-scale run)."""
    if not o.scales:
        return None
    full = max(shape[-3:-1])
    st = stages(o, full)
    last = (o.nnst_final_steps or 0) if o.style_loss == "nnst" else 0  # NNST's final pass
    if len(st) == 1 and not last:
        return None
    cost = sum(n * (s / full) ** 2 for s, n in st) + last
    return (
        "coarse-to-fine"
        + (" (--scales auto)" if o.scales == "auto" else "")
        + ": "
        + ", ".join(f"{n} iterations at {s} px" for s, n in st)
        + (f", then {last} steps of NNST's final pass at {full} px" if last else "")
        + f" (~{cost:.0f} full-size iterations of compute; --scales none for single-scale)"
    )


def coarse_to_fine(
    content: Any,
    style: Any,
    o: Options,
    run: Callable[..., Result],
    content_masks: Any = None,
    style_masks: Any = None,
    **kw: Any,
) -> Result:
    """Optimise at each of ``o.scales`` (longer side), then at the content's size.

    ``run(content, style, **options)`` is one single-scale stylization (:func:`jaxnst.stylize`);
    ``kw`` (variables, callback) is passed to each. The style keeps its size relative to the
    content (``style_scale``, default 1: same longer side). Optimizer state is not carried across
    sizes: L-BFGS's curvature pairs and Adam's moments belong to one resolution; the upsampled image
    (Lanczos) is the warm start. Masks follow their image to each stage's size (``style_masks``,
    the one style's regions paired with ``content_masks``', by nearest neighbours). Returns the
    last stage's result with summed counts and timings."""
    content = jnp.asarray(content, jnp.float32)
    if content.ndim != 3:
        raise ValueError("scales work with one content image")
    batched = bool(sweep_grid(o)[0])  # a sweep: each member carries its own image up
    full = max(content.shape[:2])
    styles = list(style) if isinstance(style, (list, tuple)) else [style]
    base = dataclasses.asdict(o) | {"scales": None, "scale_iterations": None}
    image, results = None, []
    masks = (content_masks, style_masks)
    plan = [_stage(content, styles, masks, base, o, size, n) for size, n in stages(o, full)]
    plan = _with_final_pass(plan, content, styles, masks, base, o)
    t0 = time.monotonic()
    for i, (c, st, (m, sm), opts) in enumerate(plan):
        opts = opts | {"init": _start(image, base["init"], c.shape)}
        if o.method == "photoreal" and image is not None and not isinstance(base["init"], str):
            opts["init"] = with_detail(opts["init"], base["init"], plan[i - 1][0].shape, c.shape)
        if o.method == "strotss":
            opts |= strotss_stage(o, i, len(plan), c, st, image)
        if o.preserve_color == "oklab" and i + 1 < len(plan):  # corrected once, at the end
            opts["preserve_color"] = "none"
        if o.max_seconds is not None:  # one budget for all stages; a late stage only starts
            opts["max_seconds"] = max(o.max_seconds - (time.monotonic() - t0), 1e-3)
        if i + 1 < len(plan):  # the next stage's program compiles while this one descends
            _compile_ahead(plan[i + 1], kw.get("variables"))
        if sm is not None:  # (only then: other front ends' runs take no style_masks)
            kw = kw | {"style_masks": sm}
        r = run(c, st if len(st) > 1 else st[0], content_masks=m, **kw, **opts)
        d = r.diverged_at  # (a list for a sweep)
        if any(x is not None for x in d) if isinstance(d, list) else d is not None:
            return r
        if r.stopped:  # a callback or a Stop ended it: no further stages, the image at full size
            big = _start(jnp.asarray(r.image), None, content.shape)
            results.append(dataclasses.replace(r, image=np.asarray(big)))
            break
        image = jnp.asarray(r.image)
        if not batched:
            image = image.reshape(c.shape)
        results.append(r)
    return _combine(results, o)


def _stage(content, styles, masks, base: dict, o: Options, size: int, n: int) -> tuple:
    """(content, styles, (content masks, style masks), options) of the stage at ``size`` px with
    ``n`` iterations."""
    full = max(content.shape[:2])
    scale = o.style_scale if o.style_scale is not None else 1.0
    c = content if size == full else rescale(content, size)
    st = [rescale(jnp.asarray(x, jnp.float32), scale * size) for x in styles]
    cm, sm = masks
    m = (
        None
        if cm is None
        else jax.image.resize(jnp.asarray(cm, jnp.float32), (len(cm),) + c.shape[:2], "linear")
    )
    if sm is not None and m is not None:
        sm = jnp.asarray(sm, jnp.float32)
        sm = jax.image.resize(sm, (len(sm),) + st[0].shape[:2], "nearest")
        # a style region that vanished at this size would be a zero Gram target: leave it out
        m = jnp.where(jnp.any(sm > 0, axis=(1, 2))[:, None, None], m, 0.0)
    opts = base | {
        "iterations": n,
        "style_scale": None,
        # a stage within one tile needs no tiles (less memory than one tile and its halo)
        "tile": o.tile if o.tile and size > o.tile else None,
        # FastPhotoStyle's smoothing finishes the final image only
        "photoreal_smooth": o.photoreal_smooth if size == full else None,
    }
    return c, st, (m, sm), opts


def _with_final_pass(plan: list, content, styles, masks, base: dict, o: Options) -> list:
    """NNST's stages followed by its final pass (``nnst_final_steps`` Adam steps at the full
    size, a single-scale run that :func:`jaxnst.pipeline.targets.final_pass` recognises); the
    stages themselves run without it. Other methods' plans, and runs with content masks (its
    matches ignore regions), are returned as they are."""
    n = o.nnst_final_steps
    if not n or o.style_loss != "nnst" or masks[0] is not None:  # (no guided final pass yet)
        return plan
    plan = [(c, st, m, opts | {"nnst_final_steps": 0}) for c, st, m, opts in plan]
    c, st, m, opts = _stage(content, styles, masks, base, o, max(content.shape[:2]), n)
    return plan + [(c, st, m, opts | {"nnst_final_steps": n})]


def _compile_ahead(stage: tuple, variables: Any) -> None:
    """Prepare a stage (targets, layout: cheap next to a stage's descent) and start compiling
    its descent program in the background (:func:`jaxnst.pipeline.descent.precompile`)."""
    from jaxnst.pipeline import descent, layout, prepare

    c, st, (m, sm), opts = stage
    from jaxnst.pipeline.options import make_options

    o = make_options(**(opts | {"init": "content"}))  # (the start image does not shape it)
    style = st if len(st) > 1 else st[0]
    problem = prepare.prepare(c, style, o, variables=variables, content_masks=m, style_masks=sm)
    lay = layout.make_layout(problem)
    descent.precompile(lay, layout.place(problem, lay))


def _start(previous: jax.Array | None, init: Any, shape: tuple[int, ...]) -> Any:
    """The previous stage's image upsampled, else the user's init (an array is resized)."""
    if previous is not None:  # (N, H, W, 3) for a sweep: one start per member
        shape = previous.shape[:-3] + tuple(shape)
        return jnp.clip(jax.image.resize(previous, shape, "lanczos3"), 0.0, 1.0)
    if isinstance(init, str):
        return init
    return jnp.clip(jax.image.resize(jnp.asarray(init, jnp.float32), shape, "lanczos3"), 0.0, 1.0)


def with_detail(
    start: jax.Array, init: Any, coarse: tuple[int, ...], shape: tuple[int, ...]
) -> jax.Array:
    """Method photoreal's start at a finer stage: the previous result upsampled (``start``) plus
    the detail of the user's ``init`` (the recoloured content) that the coarser stage's size
    (``coarse``) could not hold: ``init`` at ``shape`` minus ``init`` taken down to ``coarse``
    and up again. Where the coarser stage changed nothing, this is ``init`` itself; without it
    the finer stage starts blurred and the Matting term has to rebuild the photo's detail."""
    init = jnp.asarray(init, jnp.float32)
    fine = jax.image.resize(init, tuple(shape), "lanczos3")
    small = jax.image.resize(init, tuple(coarse), "lanczos3")
    return jnp.clip(start + fine - jax.image.resize(small, tuple(shape), "lanczos3"), 0.0, 1.0)


def strotss_stage(o: Options, i: int, n: int, content, styles, previous) -> dict:
    """``method="strotss"``'s stage ``i`` of ``n``: the content weight halved at each stage, the
    learning rate halved at the last, and the start: the content's finest Laplacian band on the
    style's mean colour at the first stage, the previous result upsampled plus that band in
    between, the previous result alone at the last (as the reference code does)."""
    half = 0.5**i
    cw = o.content_weight
    out: dict = {
        "content_weight": tuple(v * half for v in cw) if isinstance(cw, tuple) else cw * half
    }
    if n > 1 and i == n - 1:
        out["learning_rate"] = o.learning_rate / 2
    if not isinstance(o.init, str) or o.init != "content" or (i == n - 1 and i > 0):
        return out
    small = tuple(-(-s // 2) for s in content.shape[:2])
    band = content - param.upsample(param.downsample(content, small), content.shape[:2])
    if previous is None:
        mean = jnp.mean(jnp.stack([jnp.mean(s, axis=(0, 1)) for s in styles]), 0)
        out["init"] = jnp.clip(band + mean, 0.0, 1.0)
    else:
        out["init"] = jnp.clip(_start(previous, None, content.shape) + band, 0.0, 1.0)
    return out


def _combine(results: list[Result], o: Options) -> Result:
    return dataclasses.replace(
        results[-1],
        evaluations=sum(r.evaluations for r in results),
        iterations=sum(r.iterations for r in results),
        compile_seconds=sum(r.compile_seconds for r in results),
        compile_cache_hits=sum(r.compile_cache_hits for r in results),
        programs_compiled=sum(r.programs_compiled for r in results),
        run_seconds=sum(r.run_seconds for r in results),
        batch_evaluations=sum(r.batch_evaluations for r in results),
        options=o,
        stopped_on_time=any(r.stopped_on_time for r in results),
        stopped=results[-1].stopped,
    )
