#!/usr/bin/env python
"""Accelerator proof: what jaxnst does on one device, measured in one run bounded by a budget.

    PYTHONPATH=. python3 scripts/device_check.py --json OUT.json [--budget-seconds 420]
        [--weights FILE] [--commit SHA] [--smoke]

In this order (most valuable first), each measurement only when the budget left is likely to hold
it (otherwise a record says why it was skipped); the JSON is rewritten after every record:

1. ``matmul``: the device's matmul rate: fp32 at full precision (``fp32_highest``), fp32 at the
   backend's default precision (``fp32``; TF32 where that is the default) and ``bf16``.
2. ``eval``: seconds per loss+gradient evaluation inside jaxnst's compiled loop (scripts/bench.py's
   loop: Adam, square random images, compile excluded), fp32 and bf16 at 512, 1024 and 2048 px,
   GFLOP/s and the fraction of the same precision's matmul rate; ``audit``: the compiled program
   has no float64, no host callback or transfer, and no CPU-only compiler options off the CPU.
   ``feedforward`` (issue 29): a feed-forward network's training steps per second at 256 px,
   batch 4 and 16, fp32 and bf16 (the VGG19's), with Johnson et al.'s recipe (40k steps, batch 4)
   projected in minutes; ``ff_apply``: its forward pass in ms per image at 256, 512 and 1024 px,
   batch 1 and 8.
3. ``end_to_end``: ``stylize`` on the bundled pair at 512 px, 500 L-BFGS iterations: wall seconds
   (compile included), compile seconds, final losses.
4. ``quality_bf16``: the same at 200 iterations in fp32 and bf16: final style losses and their
   relative difference (the bar: 2 %), and the bf16 result's style loss under the fp32 network.
5. ``peak_memory``: ``memory_stats()`` peak of one compiled chunk with and without remat at 1024
   and 2048 px, each in a fresh process (a process's peak never goes down); ``max_size``: the
   largest square that fits the device's memory limit each way (XLA's compile-only memory analysis,
   a fit through the measured sizes, then bisection). ``nnst`` (issue 31): ``method="nnst"`` on
   the bundled pair at 512 and 1024 px, its whole schedule (200 Adam steps at each of 64 px ...
   the size), each in a fresh process: wall, compile and run seconds, ``peak_bytes``
   (``memory_stats()``) and ``peak_rss_bytes`` (the process's resident peak), final losses.
   ``photoreal`` (issue 30): ``method="photoreal"`` on the bundled pair at 1024 px (the preset's
   500 L-BFGS iterations) and at 4K, 3840x2160 (50 iterations), each in a fresh process, in the
   memory preflight's tiles where the untiled descent does not fit (``tile`` says which): wall,
   compile and run seconds, seconds per evaluation, ``peak_bytes``, ``peak_rss_bytes``, losses.
6. ``sweep``: 8 style weights in one batched run against 8 single runs (same iterations), 512 px.
7. ``tiled``: untiled against tiled evaluation at 2048 px, when ``stylize`` takes ``tile=``;
   ``video``: seconds per frame of a multi-pass video batch (8 frames, 512 px, a synthetic pan
   with its true flow), when ``jaxnst.video`` has ``stylize_video``; otherwise skipped, saying why.
8. ``torch``: scripts/torch_reference.py's objective on the same card at 512 px (seconds per
   evaluation, 500 L-BFGS iterations), in a child process, if torch sees a CUDA device.

The JSON: ``device``, ``jax_version``, ``jaxlib_version``, ``commit``, ``weights`` (which file,
full or compact, its digest), ``settings``, ``elapsed_seconds``, ``complete`` and ``results``: one
record per measurement with ``name``, ``size``, ``precision`` and what was measured
(``seconds_per_eval``, ``gflops``, ``fraction_of_matmul``, ``peak_bytes``, ``wall_seconds``, ...)
or ``skipped`` / ``error`` (a reason). A table is printed at the end. ``--smoke``: every path at
64 px on the CPU, with a narrow random VGG19 and XLA's optimisations off (compilation is nearly all
of its time; tests/test_device_check.py runs it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

T0 = time.perf_counter()  # the budget counts from here
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "scripts")) if p not in sys.path]
# Before JAX starts: grow device memory on demand instead of taking 75 % up front, so child
# processes (peak memory, PyTorch) get the rest of the card; let one process use 90 % of it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")

from jaxnst.bench import check, optional  # noqa: E402

check.start(T0)

# The steps live in jaxnst.bench (check: plan, budget, report; machine; steps; device_memory;
# optional; vs_torch; device: this command); the tests read these names from here.
from jaxnst.bench.check import SMOKE, Check, Plan  # noqa: E402
from jaxnst.bench.device import main  # noqa: E402
from jaxnst.bench.device_memory import fit_side, largest_side  # noqa: E402
from jaxnst.bench.machine import (  # noqa: E402
    choose_weights,
    commit_of,
    load_weights,
    numpy_weights,
    weights_info,
)
from jaxnst.bench.optional import _video_api  # noqa: E402
from jaxnst.stylize import make_options, stylize  # noqa: E402

__all__ = [
    "SMOKE",
    "Check",
    "Plan",
    "choose_weights",
    "commit_of",
    "fit_side",
    "largest_side",
    "load_weights",
    "main",
    "make_options",
    "measure_optional",
    "numpy_weights",
    "stylize",
    "weights_info",
]


def measure_optional(c: Check) -> None:
    """:func:`jaxnst.bench.optional.measure_optional` with this module's ``stylize``,
    ``make_options`` and ``_video_api`` (which a test replaces with stand-ins)."""
    optional.measure_optional(c, stylize, make_options, _video_api)


if __name__ == "__main__":
    sys.exit(main())
