"""The device check's photoreal step (issue 30): ``method="photoreal"`` (Luan et al. 2017's
recipe: Gatys plus the content's Matting Laplacian) on the bundled pair at 1024 px and at 4K
(3840x2160), seconds and peak memory, each in a process of its own so that a peak is that run's
alone. Where the untiled descent will not fit the device, the memory preflight's tiles are used
(the term tiles exactly, :mod:`jaxnst.loss.matting_tiles`), as the command line does; the record
says which tile, if any."""

from __future__ import annotations

import argparse
import functools
import math
import time

import numpy as np

from jaxnst import image_io
from jaxnst.bench.check import Check, run_child
from jaxnst.bench.machine import load_weights, pair, run_record


def measure_photoreal(c: Check) -> None:
    """One ``--child photoreal`` run per shape of ``plan.photoreal_shapes`` ((longer side,
    height), height 0: the pair's own aspect), ``plan.photoreal_iterations`` L-BFGS iterations
    each and ``plan.photoreal_tiles`` (0: the preflight decides)."""
    p = c.plan
    for (size, height), its, tile in zip(
        p.photoreal_shapes, p.photoreal_iterations, p.photoreal_tiles, strict=True
    ):
        side = int(math.sqrt(size * height)) if height else size  # (the same pixel count)
        # evaluations: ~1.25 an L-BFGS step; the term ~2 %, tiles up to ~2.5x (an upper side)
        need = p.child_start + 2 * c.compile_guess(side) + 4 * its * c.eval_guess(side)
        args = ("--size", str(size), "--height", str(height), "--iterations", str(its))
        run = functools.partial(run_child, c, "photoreal", need, *args, "--tile", str(tile))
        shape = f"{size}x{height}" if height else None
        c.attempt("photoreal", size, "fp32", need, run, iterations=its, shape=shape)


def photo_pair(size: int, height: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The bundled pair, longer side ``size``; with ``height``, the content filled to exactly
    ``height`` x ``size`` (resized to cover, centre cropped: 3840x2160 for 4K) and the (square)
    style as many pixels (2880 px a side for 4K, not 3840)."""
    content, style = pair(size)
    if not height:
        return content, style
    style = image_io.resize(style, int(math.sqrt(size * height)))
    h, w = content.shape[:2]
    scale = max(size / w, height / h)
    big = image_io.resize(content, shape=(math.ceil(h * scale), math.ceil(w * scale)))
    top, left = (big.shape[0] - height) // 2, (big.shape[1] - size) // 2
    return np.ascontiguousarray(big[top : top + height, left : left + size]), style


def child_photoreal(a: argparse.Namespace) -> dict:
    """``--child photoreal``: one ``method="photoreal"`` run on :func:`photo_pair` (``a.size``,
    ``a.height``), ``a.iterations`` iterations, in ``a.tile`` px tiles (0: those of the memory
    preflight where the untiled descent does not fit, else none). Returns its seconds, tile,
    the device's peak bytes (``memory_stats``; None on a CPU), the process's peak resident set
    (:func:`peak_rss`) and its final loss parts."""
    from jaxnst.model import vgg
    from jaxnst.pipeline import memory
    from jaxnst.stylize import make_options, stylize

    variables = load_weights(a.weights)
    content, style = photo_pair(a.size, a.height)
    kw = dict(method="photoreal", iterations=a.iterations)
    tile = a.tile or None
    if tile is None:  # raises MemoryRefused (recorded) where not even tiles fit
        h, w = content.shape[:2]
        est = memory.check(h, w, 1, make_options(**kw), vgg.channels_of(variables))
        tile = est.tile if est is not None else None
    t = time.perf_counter()
    r = stylize(content, style, variables=variables, tile=tile, **kw)
    rec = run_record(r, time.perf_counter() - t, content.shape)
    evals = int(r.evaluations)
    return {**rec, "evaluations": evals, "seconds_per_eval": r.run_seconds / max(evals, 1),
            "tile": tile, "final_total": float(r.history["total"][-1])}  # fmt: skip
