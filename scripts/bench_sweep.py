#!/usr/bin/env python
"""Does a vmapped sweep of N style weights cost less than N single runs?

For each size: N single L-BFGS runs one after another (one compiled program, reused) against one
sweep of the same N weights (one batched program), both after a warm-up so compile time is
excluded, on the bundled sample images. Prints seconds and the ratio sweep / N singles, and the
evaluations each paid (a batched line search runs until its slowest member).

    python scripts/bench_sweep.py --sizes 128 256 --n 4 --iterations 20 [--json out.json]
"""

import argparse
import json
import sys
import time

import jax
import numpy as np

from jaxnst import image_io
from jaxnst.cli.command import sample_path
from jaxnst.stylize import stylize


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--optimizer", default="lbfgs")
    ap.add_argument("--json")
    a = ap.parse_args()
    content0 = image_io.load(sample_path("chelsea.jpg"))
    style0 = image_io.load(sample_path("swirls.png"))
    weights = [float(w) for w in np.logspace(-4.5, -2.5, a.n)]
    rows = []
    for size in a.sizes:
        c = image_io.resize(content0, size)
        s = image_io.resize(style0, size)
        kw = dict(iterations=a.iterations, chunk=a.iterations, optimizer=a.optimizer)
        stylize(c, s, style_weight=weights[0], **kw)  # warm-up (compile)
        stylize(c, s, style_weight=weights, **kw)
        t = time.perf_counter()
        singles = [stylize(c, s, style_weight=w, **kw) for w in weights]
        t_single = time.perf_counter() - t
        t = time.perf_counter()
        sweep = stylize(c, s, style_weight=weights, **kw)
        t_sweep = time.perf_counter() - t
        row = {
            "size": size,
            "n": a.n,
            "iterations": a.iterations,
            "single_runs_seconds": t_single,
            "sweep_seconds": t_sweep,
            "ratio": t_sweep / t_single,
            "single_evaluations": int(sum(r.evaluations for r in singles)),
            "sweep_member_evaluations": int(np.sum(sweep.evaluations)),
            "sweep_batch_evaluations": int(sweep.batch_evaluations) * a.n,
        }
        rows.append(row)
        print(
            f"{size}px N={a.n}: {a.n} single runs {t_single:.1f} s, one sweep {t_sweep:.1f} s, "
            f"ratio {row['ratio']:.2f} (evaluations: singles {row['single_evaluations']}, "
            f"sweep paid {row['sweep_batch_evaluations']})"
        )
    report = {"device": jax.devices()[0].device_kind, "optimizer": a.optimizer, "rows": rows}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
