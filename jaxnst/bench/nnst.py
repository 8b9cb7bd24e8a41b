"""The device check's NNST step (issue 31): ``method="nnst"``'s seconds and peak memory at 512
and 1024 px on the bundled pair (the authors' README: ~6 GB at 512 px, ~12 GB at 1024 px on a
GPU), each size in a process of its own, so that a peak is that run's alone."""

from __future__ import annotations

import argparse
import functools
import time

from jaxnst.bench.check import Check, run_child
from jaxnst.bench.machine import load_weights, pair, run_record


def measure_nnst(c: Check) -> None:
    """One ``--child nnst`` run per size of ``plan.nnst_sizes``: its whole coarse-to-fine
    schedule (64 px up to the size, ``plan.nnst_iterations`` Adam steps at each scale)."""
    p = c.plan
    for size in p.nnst_sizes:
        stages = max(1, size.bit_length() - 6)  # 64, 128, ... size
        per_stage = c.compile_guess(size) + 1.5 * p.nnst_iterations * c.eval_guess(size)
        need = p.child_start + stages * per_stage  # (an upper side: the early stages are small)
        run = functools.partial(
            run_child, c, "nnst", need, "--size", str(size), "--iterations", str(p.nnst_iterations)
        )
        c.attempt("nnst", size, "fp32", need, run, iterations_per_scale=p.nnst_iterations)


def child_nnst(a: argparse.Namespace) -> dict:
    """``--child nnst``: one ``method="nnst"`` run at ``a.size`` px (longer side), ``a.iterations``
    steps per scale. Returns its seconds, the device's peak bytes (``memory_stats``; None on a
    CPU), the process's peak resident set (:func:`~jaxnst.bench.machine.peak_rss`) and its final
    loss parts."""
    from jaxnst.stylize import stylize

    variables = load_weights(a.weights)
    content, style = pair(a.size)
    t = time.perf_counter()
    r = stylize(content, style, method="nnst", variables=variables, iterations=a.iterations)
    return run_record(r, time.perf_counter() - t, content.shape)
