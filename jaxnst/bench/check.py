"""The device check's plan, budget and JSON report: the sizes and counts of every measurement
(:class:`Plan`, :data:`SMOKE`), the report being built (:class:`Check`: each measurement only when
the budget left is likely to hold it, the JSON rewritten after every record), the table printed at
the end, the watchdog past the budget, and the child processes (``scripts/device_check.py --child
KIND``) that some measurements run in."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from jaxnst._atomic import atomic_path
from jaxnst.bench.evals import ROOT, flops_per_eval
from jaxnst.model import vgg

T0 = time.perf_counter()  # the budget's start: set by the script with start(), at its first line
SCRIPT = ROOT / "scripts" / "device_check.py"
TAG = "DEVICE_CHECK_CHILD "  # prefix of a child process's result line


def start(t0: float) -> None:
    """Count the budget from ``t0`` (``time.perf_counter()`` when the process started)."""
    global T0
    T0 = t0


@dataclasses.dataclass(frozen=True)
class Plan:
    """Sizes and counts of every measurement (``SMOKE`` shrinks them all)."""

    eval_sizes: tuple[int, ...] = (512, 1024, 2048)
    matrix_sizes: tuple[int, ...] = (512, 1024)  # scripts/compile_matrix.py
    steps: int = 10  # evaluations per timed call of the compiled loop
    samples: int = 7  # timed calls (median), after one warm-up call
    matmul_n: int = 8192
    e2e_size: int = 512
    e2e_iterations: int = 500
    quality_iterations: int = 200
    memory_sizes: tuple[int, ...] = (1024, 2048)
    size_step: int = 64  # resolution of the largest-size search
    probes: int = 3  # compile-only probes per largest-size search
    sweep_n: int = 8
    sweep_iterations: int = 100
    tile_size: int = 2048
    tile_iterations: int = 10
    torch_iterations: int = 500
    video_frames: int = 8
    video_iterations: int = 50  # the first, independent pass
    video_passes: int = 3
    video_pass_iterations: int = 20
    first_compile: float = 45.0  # guessed seconds per program before any was measured
    child_start: float = 15.0  # guessed seconds for a child process to get going
    ff_size: int = 256  # feed-forward training crop (issue 29)
    ff_batches: tuple[int, ...] = (4, 16)
    ff_chunk: int = 10  # steps per timed call
    ff_samples: int = 3
    ff_width: float = 1.0
    ff_apply_sizes: tuple[int, ...] = (256, 512, 1024)
    nnst_sizes: tuple[int, ...] = (512, 1024)  # issue 31: method="nnst", whole schedule
    nnst_iterations: int = 100  # Adam steps per scale (the recipe's; the authors' 200), 150 final
    # issue 30: method="photoreal" at 1024 px and 4K ((longer side, height); 0: the pair's
    # aspect), its L-BFGS iterations (the preset's 500; 4K: enough for a rate) and tiles (0: the
    # memory preflight's where the untiled descent does not fit)
    photoreal_shapes: tuple[tuple[int, int], ...] = ((1024, 0), (3840, 2160))
    photoreal_iterations: tuple[int, ...] = (500, 50)
    photoreal_tiles: tuple[int, ...] = (0, 0)
    smoke: bool = False


SMOKE = Plan(
    eval_sizes=(64,),
    steps=2,
    samples=2,
    matmul_n=256,
    e2e_size=64,
    e2e_iterations=10,
    quality_iterations=10,
    memory_sizes=(64,),
    size_step=16,
    probes=1,
    sweep_n=3,
    sweep_iterations=10,
    tile_size=64,
    tile_iterations=2,
    matrix_sizes=(),  # (tests/test_compile_matrix.py runs scripts/compile_matrix.py --smoke)
    torch_iterations=10,
    video_frames=0,  # the video front end compiles for a minute on a CPU; a test drives the path
    video_iterations=2,
    video_passes=1,
    video_pass_iterations=2,
    first_compile=5.0,
    child_start=5.0,
    ff_size=32,
    ff_batches=(2,),
    ff_chunk=2,
    ff_samples=1,
    ff_width=0.25,
    ff_apply_sizes=(32,),
    nnst_sizes=(64,),
    nnst_iterations=2,
    photoreal_shapes=((64, 0), (64, 36)),
    photoreal_iterations=(2, 2),
    photoreal_tiles=(0, 32),  # (the tiled path: 2 x 2 tiles)
    smoke=True,
)


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def json_safe(x: Any) -> Any:
    """JSON-safe copy: NumPy scalars to Python, non-finite floats to strings."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if hasattr(x, "item") and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


class Check:
    """The report being built, the budget, and what the measurements share (weights, rates)."""

    def __init__(self, path: str | None, budget: float, plan: Plan, meta: dict):
        self.path, self.budget, self.plan = path, budget, plan
        self.data: dict = {**meta, "budget_seconds": budget, "complete": False, "results": []}
        self.lock = threading.RLock()
        self.compiles: dict[int, float] = {}  # side -> longest compile seen (seconds)
        self.rates: dict[str, float] = {}  # matmul GFLOP/s per precision
        self.loop_rates: dict[str, float] = {}  # loop GFLOP/s per precision
        self.variables: dict = {}
        self.run_vars: dict = {}
        self.weights_arg = "random"
        self.channels: tuple[int, ...] = vgg.CHANNELS
        self.cache_dir = ""
        self.e2e_done = False

    def left(self) -> float:
        return self.budget - (time.perf_counter() - T0)

    def write(self) -> None:
        with self.lock:
            self.data["elapsed_seconds"] = time.perf_counter() - T0
            if self.path:
                with atomic_path(self.path) as tmp, open(tmp, "w") as f:
                    json.dump(json_safe(self.data), f, indent=1)

    def add(self, rec: dict) -> dict:
        with self.lock:
            self.data["results"].append(rec)
            self.write()
        print(f"[{time.perf_counter() - T0:6.1f} s] {summary(rec)}", flush=True)
        return rec

    def attempt(
        self,
        name: str,
        size: int | None,
        precision: str | None,
        need: float,
        fn: Callable[[], dict],
        **fields,
    ) -> dict:
        """Run ``fn`` (returning measured fields) if ``need`` seconds fit in the budget left;
        record its result, the reason it was skipped, or its error."""
        head = {"name": name, "size": size, "precision": precision, **fields}
        left = self.left()
        if need > left:
            return self.add(
                {**head, "skipped": f"needs about {need:.0f} s, {max(left, 0):.0f} s left"}
            )
        t = time.perf_counter()
        try:
            rec = {**head, **fn()}
        except Exception as e:  # noqa: BLE001  (recorded; the other measurements go on)
            rec = {**head, "error": one_line(e)}
        rec["seconds_spent"] = time.perf_counter() - t
        return self.add(rec)

    def compile_guess(self, size: int) -> float:
        """Seconds to compile one descent program at ``size``: the longest compile seen at this
        size or below (30 % more for a size not seen yet), else the shortest seen above."""
        if not self.compiles:
            return self.plan.first_compile * (1.3 if size >= 2048 else 1.0)
        below = [t for s, t in self.compiles.items() if s <= size]
        if not below:
            return min(self.compiles.values())
        return max(below) * (1.0 if size in self.compiles else 1.3)

    def eval_guess(self, size: int, precision: str = "fp32") -> float:
        """Seconds per evaluation at ``size``, from the loop (else matmul) rates seen so far."""
        rate = (
            self.loop_rates.get(precision)
            or self.loop_rates.get("fp32")
            or 0.2 * self.rates.get(precision, self.rates.get("fp32", 100.0))
        )
        return self.gflop(size) / rate

    def gflop(self, size: int) -> float:
        """GFLOP of one evaluation at ``size`` x ``size`` with these weights' widths."""
        return flops_per_eval(size, size, channels=self.channels) / 1e9

    def saw_compile(self, size: int, seconds: float) -> None:
        self.compiles[size] = max(seconds, self.compiles.get(size, 0.0))


def summary(r: dict) -> str:
    """One line for the table: name, size, precision and the main numbers of a record."""
    head = f"{r['name']:<13} {r.get('size') or '':>5} {r.get('precision') or '':<13}"
    if "skipped" in r or "error" in r:
        what = "skipped" if "skipped" in r else "ERROR"
        return f"{head} {what}: {r.get('skipped', r.get('error'))}"
    parts = []
    for key, fmt in (
        ("gflops", "{:.0f} GFLOP/s"),
        ("seconds_per_eval", "{:.4g} s/eval"),
        ("fraction_of_matmul", "{:.0%} of matmul"),
        ("wall_seconds", "wall {:.1f} s"),
        ("compile_seconds", "compile {:.1f} s"),
        ("peak_bytes", "peak {:.2f} GiB"),
        ("total_bytes", "XLA {:.2f} GiB"),
        ("style_rel_diff", "style diff {:+.2%}"),
        ("ratio", "ratio {:.2f}"),
        ("final_total", "loss {:.4g}"),
    ):
        if isinstance(r.get(key), (int, float)):
            v = r[key] / 2**30 if key.endswith("bytes") else r[key]
            parts.append(fmt.format(v))
    extra = {"remat": "remat", "passes": "passes", "ok": "ok"}
    parts += [f"{v}={r[k]}" for k, v in extra.items() if k in r]
    return f"{head} " + "  ".join(parts)


def run_child(c: Check, kind: str, need: float, *args: str, env: dict | None = None) -> dict:
    """Run this script as ``--child kind`` and return its result line (a dict)."""
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--child",
        kind,
        "--weights",
        c.weights_arg,
        "--cache-dir",
        c.cache_dir,
        *args,
    ]
    timeout = max(min(c.left() + 30, 3 * need + 30), 10)
    p = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(TAG):
            return json.loads(line[len(TAG) :])
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    raise RuntimeError(f"child {kind} exited {p.returncode}: {tail[:300]}")


def print_table(c: Check) -> None:
    d = c.data
    print(
        f"\n== device_check: {d['device']['kind']} ({d['device']['platform']}), jax "
        f"{d['jax_version']}, commit {d['commit']}, weights {d['weights']['kind']}, "
        f"{d['elapsed_seconds']:.0f} s of {d['budget_seconds']:.0f} s =="
    )
    for r in d["results"]:
        print(summary(r))
    sys.stdout.flush()


def watchdog(c: Check, grace: float) -> None:
    """Past the budget by ``grace`` seconds: write what there is, print the table, exit 3."""
    time.sleep(max(c.left() + grace, 0.0))
    with c.lock:
        c.data["stopped"] = f"watchdog: still running {grace:.0f} s past the budget"
        c.write()
        print_table(c)
        os._exit(3)
