#!/usr/bin/env python
"""How fast is one loss+gradient evaluation, and how close to the hardware?

For each ``--size`` (square images, VGG19 to conv5_1, content conv4_2, the five style layers):

- ``seconds_per_eval``: median over ``--evals`` timed samples, after warm-up and with compilation
  excluded, of one call of jaxnst's compiled descent loop (Adam, ``--steps`` evaluations per call)
  divided by its evaluations.
- ``compile_seconds``: lowering and compiling that loop (no persistent cache).
- ``gflop_per_eval`` (counted: convolutions forward and input-gradient, Grams forward and backward;
  ``xla_gflop_per_eval`` is XLA's own count of the compiled evaluation), ``gflops`` and
  ``fraction_of_matmul``: against this machine's float32 matmul rate (best of 7 square matmuls,
  measured in the same run).
- With ``--xla-cpu-ynn`` (CPU): the same loop compiled with XLA's YNNPACK fusions on (XLA's default;
  jaxnst turns them off, see ``jaxnst.optim.optimize.CPU_COMPILER_OPTIONS``), alternating with the
  default: ``seconds_per_eval_ynn``, ``ratio_default_vs_ynn``.
- ``end_to_end_seconds``: ``jaxnst.stylize`` on the bundled sample pair resized to the size, L-BFGS
  for ``--run-iterations`` (compile, descent and transfers included; 0 skips it).
- With ``--vs-torch`` (PyTorch installed): the same objective (same weights, layers, targets;
  scripts/torch_reference.py) timed in PyTorch in the same run, alternating sample by sample with
  jaxnst, ``ratio_vs_torch`` = jaxnst / PyTorch; and PyTorch's L-BFGS end to end.

Prints a table; ``--json FILE`` writes everything (top-level ``seconds_per_eval`` is the first
size's; ``results`` holds one record per size).

    python scripts/bench.py --size 256 512 --evals 10 --vs-torch --json bench.json
"""

from __future__ import annotations

import sys

from jaxnst.bench.evals import (
    CONTENT_LAYERS,
    LAYERS,
    SAMPLES,
    STYLE_LAYERS,
    WEIGHTS,
    Loop,
    flops_per_eval,
    machine,
    make_loop,
    matmul_gflops,
    memory_estimate,
    memory_of,
    peak_bytes,
    random_problem,
)
from jaxnst.bench.speed import bench_size, main

# The measurements live in jaxnst.bench (evals: the loop and its counts; speed: this command);
# scripts/compile_matrix.py and the tests read these names from here.
__all__ = [
    "CONTENT_LAYERS",
    "LAYERS",
    "SAMPLES",
    "STYLE_LAYERS",
    "WEIGHTS",
    "Loop",
    "bench_size",
    "flops_per_eval",
    "machine",
    "main",
    "make_loop",
    "matmul_gflops",
    "memory_estimate",
    "memory_of",
    "peak_bytes",
    "random_problem",
]

if __name__ == "__main__":
    sys.exit(main())
