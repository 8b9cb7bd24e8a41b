"""The device check's memory measurements: ``memory_stats()`` peak of one compiled chunk with and
without remat, each in a process of its own (a process's peak never goes down), and the largest
square that fits the device's memory limit each way (XLA's compile-only memory analysis, a fit
through the measured sizes, then bisection)."""

from __future__ import annotations

import argparse
import functools
import math
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.bench.check import Check, one_line, run_child
from jaxnst.bench.evals import (
    CONTENT_LAYERS,
    LAYERS,
    STYLE_LAYERS,
    make_loop,
    memory_estimate,
    memory_of,
)
from jaxnst.bench.machine import load_weights
from jaxnst.loss import losses
from jaxnst.model import vgg


def fit_side(points: list[tuple[int, float]], limit: float) -> int:
    """The square side at which bytes reach ``limit``, from (side, bytes) points: a line in
    side^2 through the two largest sides (through zero with only one)."""
    pts = sorted(points)[-2:]
    if len(pts) == 2 and pts[0][0] != pts[1][0]:
        (s1, b1), (s2, b2) = pts
        slope = (b2 - b1) / (s2 * s2 - s1 * s1)
        base = b1 - slope * s1 * s1
    else:
        slope, base = pts[-1][1] / pts[-1][0] ** 2, 0.0
    if slope <= 0:
        return pts[-1][0]
    return int(math.sqrt(max(limit - base, 0.0) / slope))


def largest_side(
    points: list[tuple[int, float]],
    limit: float,
    step: int,
    probes: int,
    measure: Callable[[int], float | None],
) -> dict:
    """The largest side (a multiple of ``step``) whose ``measure(side)`` (bytes; None: failed to
    compile) stays within ``limit``: predicted by :func:`fit_side`, then refined by at most
    ``probes`` measurements. ``resolved``: the next ``step`` up was seen not to fit."""
    pts = list(points)
    lo = max([s for s, b in pts if b <= limit], default=0)
    hi = min([s for s, b in pts if b > limit], default=None)
    predicted = fit_side(pts, limit) // step * step
    tried = []
    for _ in range(probes):
        if hi is not None and hi - lo <= step:
            break
        guess = fit_side(pts, limit) // step * step
        if hi is not None and not lo < guess < hi:  # the fit is off: bisect
            guess = (lo + hi) // 2 // step * step
        side = max(guess, lo + step) if hi is None else min(max(guess, lo + step), hi - step)
        got = measure(side)
        tried.append({"size": side, "total_bytes": got})
        if got is not None:
            pts.append((side, got))
        if got is not None and got <= limit:
            lo = side
        else:
            hi = side if hi is None else min(hi, side)
    return {
        "size": lo,
        "predicted_size": predicted,
        "limit_bytes": limit,
        "probes": tried,
        "resolved": hi is not None and hi - lo <= step,
    }


def measure_memory(c: Check) -> None:
    p = c.plan
    points: dict[bool, list[tuple[int, float]]] = {False: [], True: []}
    for size in p.memory_sizes:
        for remat in (False, True):
            cached = not remat and size in p.eval_sizes  # the eval loop's program, from the cache
            need = (
                p.child_start
                + c.compile_guess(size) * (0.3 if cached else 1.0)
                + 2 * p.steps * c.eval_guess(size)
            )
            rec = c.attempt(
                "peak_memory",
                size,
                "fp32",
                need,
                functools.partial(
                    run_child,
                    c,
                    "peak",
                    need,
                    "--size",
                    str(size),
                    "--steps",
                    str(p.steps),
                    *(["--remat"] if remat else []),
                ),
                remat=remat,
            )
            if isinstance(rec.get("total_bytes"), int):
                points[remat].append((size, rec["total_bytes"]))
            if not cached and isinstance(rec.get("compile_seconds"), float):
                c.saw_compile(size, rec["compile_seconds"])
    limit = c.data["device"]["memory_limit_bytes"]
    source = "memory_stats bytes_limit"
    if limit is None and points[False]:
        if p.smoke:  # the CPU has no device limit: make one the search must find
            limit, source = 3 * max(b for _, b in points[False]), "smoke: 3x the largest measured"
        else:
            limit, source = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "host RAM"
    opts = {"xla_gpu_autotune_level": 0} if jax.default_backend() == "gpu" else None
    for remat in (False, True):
        if limit is None:
            c.add(
                {
                    "name": "max_size",
                    "size": None,
                    "precision": "fp32",
                    "remat": remat,
                    "skipped": "no memory limit known (no measured point to make one from)",
                }
            )
            continue
        c.attempt(
            "max_size",
            None,
            "fp32",
            2.0,
            functools.partial(_max_size, c, remat, points[remat], limit, opts),
            remat=remat,
            limit_source=source,
        )


def _max_size(c: Check, remat: bool, points: list, limit: float, opts: dict | None) -> dict:
    p, fits = c.plan, [s for s, b in points if b <= limit]

    def measure(side: int) -> float | None:
        if c.compile_guess(side) * 0.7 > c.left():
            raise TimeoutError(f"no budget left to compile {side} px")
        got = _estimate(side)
        if got is not None and got <= limit:
            fits.append(side)
        return got

    def _estimate(side: int) -> float | None:
        try:
            try:
                return memory_estimate(side, c.run_vars, remat, "fp32", p.steps, opts or None)[
                    "total_bytes"
                ]
            except Exception as e:
                if not opts or "compile option" not in str(e):
                    raise
                opts.clear()  # this XLA does not know the option: compile with autotuning
                return memory_estimate(side, c.run_vars, remat, "fp32", p.steps)["total_bytes"]
        except Exception as e:  # noqa: BLE001  (too large to compile counts as not fitting)
            print(f"  {side} px: {one_line(e)}", flush=True)
            return None

    try:
        if not points:  # the peak-memory processes measured nothing: compile-only points
            points = [(s, b) for s in p.memory_sizes if (b := measure(s)) is not None]
        if not points:
            raise RuntimeError(f"no memory analysis at {p.memory_sizes} px compiled")
        return largest_side(points, limit, p.size_step, p.probes, measure)
    except TimeoutError as e:
        return {"size": max(fits, default=None), "limit_bytes": limit, "unresolved": str(e)}


def child_peak(a: argparse.Namespace) -> dict:
    variables = load_weights(a.weights)
    # Zero targets of the right shapes: the same program as the eval loop's (so the compilation
    # cache has it), without computing any features first.
    shapes = jax.eval_shape(
        lambda v, x: vgg.VGG19(channels=vgg.channels_of(v)).apply(v, x, LAYERS),
        variables,
        jax.ShapeDtypeStruct((a.size, a.size, 3), jnp.float32),
    )
    targets = losses.Targets(
        content={n: jnp.zeros(shapes[n].shape) for n in CONTENT_LAYERS},
        grams={n: jnp.zeros((shapes[n].shape[-1],) * 2) for n in STYLE_LAYERS},
    )
    content = np.random.default_rng(a.size).uniform(size=(a.size, a.size, 3)).astype(np.float32)
    loop = make_loop(
        a.size,
        variables,
        vgg.with_backward_kernels(variables),
        a.steps,
        a.precision,
        a.remat,
        problem=(content, targets),
    )
    mem = memory_of(loop.compiled)
    loop.sample()
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "peak_bytes": stats.get("peak_bytes_in_use"),
        "bytes_limit": stats.get("bytes_limit"),
        "compile_seconds": loop.compile_seconds,
        **mem,
    }
