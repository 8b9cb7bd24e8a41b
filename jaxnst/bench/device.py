"""``scripts/device_check.py``: the accelerator proof's command line and its order of steps (most
valuable first; the script's docstring lists them and the JSON), and the ``--child`` processes
that some steps run in."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import threading

import jax

from jaxnst.bench.check import SMOKE, TAG, Check, Plan, json_safe, print_table, watchdog
from jaxnst.bench.device_memory import child_peak, measure_memory
from jaxnst.bench.evals import ROOT
from jaxnst.bench.feedforward import measure_feedforward
from jaxnst.bench.machine import (
    COMPACT,
    commit_of,
    device_info,
    load_weights,
    settings,
    weights_info,
)
from jaxnst.bench.nnst import child_nnst, measure_nnst
from jaxnst.bench.optional import measure_compile, measure_optional
from jaxnst.bench.photoreal import child_photoreal, measure_photoreal
from jaxnst.bench.steps import (
    measure_end_to_end,
    measure_eval,
    measure_matmul,
    measure_quality,
    measure_sweep,
)
from jaxnst.bench.vs_torch import child_torch, measure_torch
from jaxnst.model import vgg

DESCRIPTION = (
    "Accelerator proof: what jaxnst does on one device, measured in one run bounded by a budget."
)


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=DESCRIPTION)
    ap.add_argument("--json", metavar="FILE", help="write the report here (after every record)")
    ap.add_argument(
        "--budget-seconds",
        type=float,
        default=420.0,
        help="skip what would not finish within this many seconds (default 420)",
    )
    ap.add_argument("--smoke", action="store_true", help="every path at 64 px (CPU)")
    ap.add_argument(
        "--weights",
        help="VGG19 weights file (default: the full file, else "
        f"{COMPACT.relative_to(ROOT)}); 'random' for random ones",
    )
    ap.add_argument("--commit", help="the commit measured (default: $JAXNST_COMMIT, else git)")
    ap.add_argument(
        "--grace-seconds",
        type=float,
        default=60.0,
        help="hard stop this long past the budget (default 60)",
    )
    ap.add_argument(
        "--child", choices=("peak", "torch", "nnst", "photoreal"), help=argparse.SUPPRESS
    )
    for flag, kw in (
        ("--size", dict(type=int)),
        ("--steps", dict(type=int, default=2)),
        ("--iterations", dict(type=int, default=10)),
        ("--precision", dict(default="fp32")),
        ("--cache-dir", dict(default="")),
        ("--remat", dict(action="store_true")),
        ("--height", dict(type=int, default=0)),
        ("--tile", dict(type=int, default=0)),
    ):
        ap.add_argument(flag, help=argparse.SUPPRESS, **kw)
    return ap.parse_args(argv)


def child_main(a: argparse.Namespace) -> int:
    if a.cache_dir:
        jax.config.update("jax_compilation_cache_dir", a.cache_dir)
    children = {
        "peak": child_peak,
        "torch": child_torch,
        "nnst": child_nnst,
        "photoreal": child_photoreal,
    }
    out = children[a.child](a)
    print(TAG + json.dumps(json_safe(out)), flush=True)
    return 0


def setup(a: argparse.Namespace, plan: Plan, cache: str) -> Check:
    """Weights, device and version facts, the first JSON write and the watchdog."""
    arg, info = weights_info(a.weights, a.smoke)
    variables = load_weights(arg)
    import jaxlib

    meta = {
        "device": device_info(),
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jaxlib, "__version__", "unknown"),
        "commit": commit_of(a.commit),
        "smoke": a.smoke,
        "weights": info,
        "plan": dataclasses.asdict(plan),
        "settings": settings(),
        "command": " ".join(["scripts/device_check.py", *(a.argv or [])]),
    }
    c = Check(a.json, a.budget_seconds, plan, meta)
    c.variables, c.run_vars, c.weights_arg = variables, vgg.with_backward_kernels(variables), arg
    c.cache_dir = cache
    c.channels = vgg.channels_of(variables)
    print(
        f"device_check: {meta['device']['kind']} ({meta['device']['platform']}), jax "
        f"{meta['jax_version']}, weights {arg} ({info['kind']}), budget "
        f"{a.budget_seconds:.0f} s",
        flush=True,
    )
    c.write()
    threading.Thread(target=watchdog, args=(c, a.grace_seconds), daemon=True).start()
    return c


def main(argv=None) -> int:
    a = parse(argv)
    a.argv = list(sys.argv[1:] if argv is None else argv)
    if a.child:
        return child_main(a)
    plan = SMOKE if a.smoke else Plan()
    if a.smoke:  # paths, not speed: compile with XLA's optimisations off (about 40 % less time)
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "true"  # the child processes' setting
        jax.config.update("jax_disable_most_optimizations", True)
    cache = tempfile.mkdtemp(prefix="jaxnst-device-check-")
    # Set before JAX compiles anything; shared with the child processes, so that the peak-memory
    # runs load the eval loop's programs instead of compiling them again.
    jax.config.update("jax_compilation_cache_dir", cache)
    try:
        c = setup(a, plan, cache)
        measure_matmul(c)
        measure_compile(c)  # (issue 20: the first image's cost; before the caches fill)
        for size in plan.eval_sizes:
            for prec in ("fp32", "bf16"):
                measure_eval(c, size, prec, do_audit=(size, prec) == (plan.eval_sizes[0], "fp32"))
        measure_feedforward(c)  # (issue 29, the instant styles: before the longer runs)
        for step in (
            measure_end_to_end,
            measure_quality,
            measure_memory,
            measure_nnst,  # (issue 31)
            measure_photoreal,  # (issue 30)
            measure_sweep,
            measure_optional,
            measure_torch,
        ):
            step(c)
        with c.lock:
            c.data["complete"] = True
            c.write()
            print_table(c)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0
