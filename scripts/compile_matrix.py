#!/usr/bin/env python
"""Compile seconds against seconds per evaluation for XLA compiler options, on this device.

    PYTHONPATH=. python scripts/compile_matrix.py [--sizes 512 1024] [--steps 20] [--json OUT]
        [--weights FILE] [--e2e 512 500] [--smoke]

For each size, jaxnst's descent chunk (scripts/bench.py's loop: Adam, one evaluation per step)
is lowered once and compiled with each option set of :data:`MATRIX` (per-program
``compiler_options``, the way jaxnst passes its CPU options), then run: compile seconds, seconds
per evaluation (the median of 3 calls) and their total for a 500-evaluation run. ``warm_cache``
compiles the default program in two fresh processes sharing a new persistent cache directory
(JAX's executable cache and XLA's per-fusion autotune cache): the second one's compile seconds.
An option this jaxlib does not know is recorded as an error, not a failure. ``--smoke`` runs every
path at 64 px with a narrow random network (the CPU's options only: the GPU ones are refused
there), for tests. scripts/device_check.py runs this as its ``compile_matrix`` step.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Option sets for XLA:GPU (``None``: jaxnst's own defaults for this backend).
MATRIX: dict[str, dict[str, Any] | None] = {
    "default": None,
    "autotune_0": {"xla_gpu_autotune_level": 0},
    "autotune_1": {"xla_gpu_autotune_level": 1},
    "autotune_2": {"xla_gpu_autotune_level": 2},
    "fusion_autotuner_off": {"xla_gpu_experimental_enable_fusion_autotuner": False},
    "triton_gemm_off": {"xla_gpu_enable_triton_gemm": False},
}
SMOKE_MATRIX: dict[str, dict[str, Any] | None] = {
    "default": None,
    "backend_opt_0": {"xla_backend_optimization_level": 0},  # any DebugOptions field will do
}


def _bench():
    spec = importlib.util.spec_from_file_location("bench", ROOT / "scripts" / "bench.py")
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _variables(smoke: bool, weights_file: str | None):
    from jaxnst.model import vgg, weights

    if smoke:
        return vgg.random_variables(jax.random.PRNGKey(0))
    return weights.load_variables(weights_file, fetch=weights_file is None)[0]


def _options(name: str, opts: dict | None) -> dict | None:
    from jaxnst.optim.programs import CPU_COMPILER_OPTIONS, GPU_COMPILER_OPTIONS

    own = CPU_COMPILER_OPTIONS if jax.default_backend() == "cpu" else GPU_COMPILER_OPTIONS
    return {**own, **(opts or {})} or None


def measure_size(size: int, steps: int, variables, matrix: dict) -> list[dict]:
    """One record per option set at ``size`` px."""
    from jaxnst.model import vgg

    bench = _bench()
    run_vars = vgg.with_backward_kernels(variables)
    loop = bench.make_loop(size, variables, run_vars, steps)
    rows = []
    for name, opts in matrix.items():
        row: dict[str, Any] = {"name": name, "size": size, "options": opts}
        try:
            t = time.perf_counter()
            # (the default was compiled by make_loop: a Lowered compiles once per options)
            compiled = loop.compiled if opts is None else loop.lowered.compile(_options(name, opts))
            row["compile_seconds"] = (
                loop.compile_seconds if opts is None else time.perf_counter() - t
            )
            timed = loop._replace(compiled=compiled)
            timed.sample()  # (first call: allocation, autotuning at run time where any)
            row["seconds_per_eval"] = statistics.median(timed.sample() for _ in range(3))
            row["seconds_500_evals"] = row["compile_seconds"] + 500 * row["seconds_per_eval"]
        except Exception as e:  # noqa: BLE001 (an unknown option is a result, not a failure)
            row["error"] = " ".join(str(e).split())[:300]
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def warm_cache(size: int, steps: int, smoke: bool, weights_file: str | None) -> dict:
    """Compile seconds of the default program in a fresh process, cold and then warm."""
    out: dict[str, Any] = {"name": "warm_cache", "size": size}
    with tempfile.TemporaryDirectory() as cache:
        for when in ("cold", "warm"):
            cmd = [sys.executable, __file__, "--child-cache", cache, "--sizes", str(size)]
            cmd += ["--steps", str(steps)] + (["--smoke"] if smoke else [])
            cmd += ["--weights", weights_file] if weights_file else []
            p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            line = [x for x in p.stdout.splitlines() if x.startswith("{")]
            if p.returncode != 0 or not line:
                out["error"] = (p.stderr or p.stdout).strip().splitlines()[-1:][0][:300]
                return out
            child = json.loads(line[-1])
            out[f"{when}_compile_seconds"] = child["compile_seconds"]
            out[f"{when}_cache_hits"] = child.get("cache_hits", 0)
    print(json.dumps(out), flush=True)
    return out


def end_to_end(size: int, iterations: int, weights_file: str | None) -> dict:
    """The CLI on the bundled pair, ``size`` px and ``iterations`` L-BFGS iterations, in a fresh
    process with a new compile cache (cold), then again (warm): wall and compile seconds."""
    out: dict[str, Any] = {"name": "end_to_end_cli", "size": size, "iterations": iterations}
    samples = ROOT / "jaxnst" / "samples"
    with tempfile.TemporaryDirectory() as d:
        cmd = [sys.executable, "-m", "jaxnst.cli", str(samples / "chelsea.jpg")]
        cmd += [str(samples / "swirls.png"), "-o", f"{d}/out.png", "--size", str(size)]
        cmd += ["--iterations", str(iterations), "--compile-cache", f"{d}/cache", "--quiet"]
        cmd += ["--json", f"{d}/r.json"] + (["--weights", weights_file] if weights_file else [])
        for when in ("cold", "warm"):
            t = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                out["error"] = (p.stderr.strip().splitlines() or ["?"])[-1][:300]
                return out
            r = json.loads(Path(f"{d}/r.json").read_text())
            out[f"{when}_wall_seconds"] = time.perf_counter() - t
            out[f"{when}_compile_seconds"] = r.get("compile_seconds")
    print(json.dumps(out), flush=True)
    return out


def child_cache(cache: str, size: int, steps: int, smoke: bool, weights_file: str | None) -> None:
    from jaxnst.cli import runtime
    from jaxnst.model import vgg

    runtime.enable_compile_cache(Path(cache), True)
    variables = _variables(smoke, weights_file)
    from jaxnst.optim.compilation import compile_stats

    loop = _bench().make_loop(size, variables, vgg.with_backward_kernels(variables), steps)
    hits = compile_stats()["cache_hits"]
    print(json.dumps({"compile_seconds": loop.compile_seconds, "cache_hits": hits}))


def run(sizes: list[int], steps: int, smoke: bool, weights_file: str | None, e2e: list) -> dict:
    variables = _variables(smoke, weights_file)
    matrix = SMOKE_MATRIX if smoke else MATRIX
    rows = [end_to_end(e2e[0], e2e[1], weights_file)] if e2e and not smoke else []
    for size in sizes:
        rows += measure_size(size, steps, variables, matrix)
        rows.append(warm_cache(size, steps, smoke, weights_file))
    return {
        "device": jax.devices()[0].device_kind,
        "backend": jax.default_backend(),
        "jax_version": jax.__version__,
        "steps": steps,
        "rows": rows,
    }


def table(report: dict) -> str:
    lines = [f"{'options':22s} {'size':>5s} {'compile s':>10s} {'s/eval':>9s} {'500 evals s':>12s}"]
    for r in report["rows"]:
        if r["name"] == "end_to_end_cli" and "error" not in r:
            lines.append(
                f"{'CLI end to end':22s} {r['size']:5d} {r['iterations']} iterations: cold "
                f"{r['cold_wall_seconds']:.1f} s (compile {r['cold_compile_seconds']:.1f}), "
                f"warm {r['warm_wall_seconds']:.1f} s (compile {r['warm_compile_seconds']:.1f})"
            )
        elif "error" in r:
            lines.append(f"{r['name']:22s} {r['size']:5d}  error: {r['error'][:60]}")
        elif r["name"] == "warm_cache":
            lines.append(
                f"{'warm cache':22s} {r['size']:5d} {r['warm_compile_seconds']:10.2f} "
                f"(cold {r['cold_compile_seconds']:.2f})"
            )
        else:
            lines.append(
                f"{r['name']:22s} {r['size']:5d} {r['compile_seconds']:10.2f} "
                f"{r['seconds_per_eval']:9.4f} {r['seconds_500_evals']:12.1f}"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--weights")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument(
        "--e2e", type=int, nargs=2, metavar=("SIZE", "ITERATIONS"),
        help="first, the CLI end to end in fresh processes, cold and warm (e.g. 512 500)",
    )  # fmt: skip
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child-cache", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.smoke:
        a.sizes = [64]
    if a.child_cache:
        child_cache(a.child_cache, a.sizes[0], a.steps, a.smoke, a.weights)
        return 0
    report = run(a.sizes, a.steps, a.smoke, a.weights, a.e2e)
    print(table(report))
    if a.json:
        a.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    sys.exit(main())
