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
3. ``end_to_end``: ``stylize`` on the bundled pair at 512 px, 500 L-BFGS iterations: wall seconds
   (compile included), compile seconds, final losses.
4. ``quality_bf16``: the same at 200 iterations in fp32 and bf16: final style losses and their
   relative difference (the bar: 2 %), and the bf16 result's style loss under the fp32 network.
5. ``peak_memory``: ``memory_stats()`` peak of one compiled chunk with and without remat at 1024
   and 2048 px, each in a fresh process (a process's peak never goes down); ``max_size``: the
   largest square that fits the device's memory limit each way (XLA's compile-only memory analysis,
   a fit through the measured sizes, then bisection).
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

import argparse
import dataclasses
import importlib.util
import inspect
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

T0 = time.perf_counter()
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "scripts")) if p not in sys.path]
# Before JAX starts: grow device memory on demand instead of taking 75 % up front, so child
# processes (peak memory, PyTorch) get the rest of the card; let one process use 90 % of it.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.90")

import bench  # noqa: E402  (scripts/bench.py)
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jaxnst import image_io  # noqa: E402
from jaxnst._atomic import atomic_path  # noqa: E402
from jaxnst.loss import losses  # noqa: E402
from jaxnst.model import vgg, weights  # noqa: E402
from jaxnst.stylize import features, make_options, stylize  # noqa: E402

COMPACT = ROOT / "weights" / "vgg19_compact.h5"
TAG = "DEVICE_CHECK_CHILD "  # prefix of a child process's result line


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
    smoke=True,
)


def _line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def _clean(x: Any) -> Any:
    """JSON-safe copy: NumPy scalars to Python, non-finite floats to strings."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
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
                    json.dump(_clean(self.data), f, indent=1)

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
            rec = {**head, "error": _line(e)}
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
        return bench.flops_per_eval(size, size, channels=self.channels) / 1e9

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


# --------------------------------------------------------------------------- setup


def commit_of(arg: str | None) -> str:
    """``--commit``, else ``$JAXNST_COMMIT``, else ``git rev-parse HEAD`` (+ "-dirty"), else
    "unknown" (the device machine may get the tree without .git)."""
    if arg or os.environ.get("JAXNST_COMMIT"):
        return arg or os.environ["JAXNST_COMMIT"]
    try:
        run = dict(cwd=ROOT, capture_output=True, text=True, timeout=10)
        head = subprocess.run(["git", "rev-parse", "HEAD"], check=True, **run).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], **run
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def choose_weights(arg: str | None, candidates: tuple[Path, ...] | None = None) -> Path | None:
    """``--weights``, else the full converted file (the default location), else the compact
    float16 copy (weights/vgg19_compact.h5), else None."""
    if arg:
        return Path(arg)
    for p in candidates or (weights.default_path(), COMPACT):
        if p.is_file():
            return p
    return None


def numpy_weights(arg: str) -> dict:
    """VGG19 variables as float32 NumPy arrays: from a file; full-width random ones for "random";
    for "small" (the smoke run's default) a narrow random VGG19 (4..16 channels: the same
    programs, less arithmetic). Random kernels are He-normal, drawn with NumPy (Flax's init runs
    VGG19 op by op: a minute on a busy CPU)."""
    if arg not in ("random", "small"):
        return {
            "params": {
                k: {n: np.asarray(x, np.float32) for n, x in v.items()}
                for k, v in weights.load(arg, fetch=False)[0].items()
            }
        }
    widths = vgg.CHANNELS if arg == "random" else (4, 8, 8, 16, 16)
    rng, params, c_in = np.random.default_rng(0), {}, 3
    for name in vgg.LAYERS[:13]:  # up to conv5_1
        c_out = widths[int(name[4]) - 1]
        params[name] = {
            "kernel": rng.normal(0.0, math.sqrt(2 / (9 * c_in)), (3, 3, c_in, c_out)).astype(
                np.float32
            ),
            "bias": np.zeros((c_out,), np.float32),
        }
        c_in = c_out
    return {"params": params}


def load_weights(arg: str) -> dict:
    """:func:`numpy_weights` as JAX arrays (the verified file through ``jaxnst.model.weights``)."""
    if arg not in ("random", "small"):
        return weights.load_variables(arg, fetch=False)[0]
    return jax.tree.map(jnp.asarray, numpy_weights(arg))


def weights_info(arg: str | None, smoke: bool = False) -> tuple[str, dict]:
    """Which weights to use (see :func:`choose_weights`; a smoke run defaults to "small") and
    what they are: ``(argument for load_weights, {path, kind, digest, compact})``."""
    path = Path("small") if smoke and not arg else choose_weights(arg)
    if path is None:
        print(
            "device_check: no VGG19 weights found (run `python -m jaxnst.weights fetch`, or "
            f"`python -m jaxnst.weights compact {COMPACT.relative_to(ROOT)}` and carry it); "
            "using random weights: speeds and memory hold, losses do not",
            flush=True,
        )
    chosen = str(path) if path is not None else "random"
    if chosen in ("random", "small"):
        return chosen, {
            "path": chosen,
            "kind": f"{chosen} (not VGG19)",
            "digest": None,
            "compact": False,
        }
    digest = weights.load(chosen, fetch=False)[1]
    kind = weights.KNOWN_DIGESTS.get(digest, "unknown")
    return chosen, {"path": chosen, "kind": kind, "digest": digest, "compact": "float16" in kind}


def device_info() -> dict:
    d = jax.devices()[0]
    stats = d.memory_stats() or {}
    info: dict[str, Any] = {
        "platform": d.platform,
        "kind": d.device_kind,
        "count": jax.device_count(),
        "memory_limit_bytes": stats.get("bytes_limit"),
        "cpu_count": os.cpu_count(),
    }
    if d.platform == "gpu":
        try:
            q = subprocess.run(
                [
                    "nvidia-smi",
                    "--query-gpu=name,memory.total,driver_version",
                    "--format=csv,noheader",
                ],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["nvidia_smi"] = q.stdout.strip()
        except (OSError, subprocess.SubprocessError) as e:
            info["nvidia_smi"] = _line(e)
    return info


def settings() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("XLA_", "JAX_", "TF_", "CUDA_", "NVIDIA_", "OMP_", "MKL_"))
    }
    try:
        env_info = jax.print_environment_info(return_string=True)
    except Exception as e:  # noqa: BLE001
        env_info = _line(e)
    return {
        "env": env,
        "x64": bool(jax.config.jax_enable_x64),
        "default_matmul_precision": jax.config.jax_default_matmul_precision,
        "environment_info": env_info,
    }


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled content and style images, longer side ``size``."""
    return tuple(
        image_io.resize(image_io.load(bench.SAMPLES / n), size)
        for n in ("chelsea.jpg", "swirls.png")
    )  # type: ignore[return-value]


# --------------------------------------------------------------------------- 1-2: rates


def measure_matmul(c: Check) -> None:
    n = c.plan.matmul_n if jax.default_backend() != "cpu" else min(c.plan.matmul_n, 2048)
    for prec, dtype, p in (
        ("fp32_highest", jnp.float32, jax.lax.Precision.HIGHEST),
        ("fp32", jnp.float32, None),
        ("bf16", jnp.bfloat16, None),
    ):

        def one(dtype=dtype, p=p, prec=prec) -> dict:
            c.rates[prec] = bench.matmul_gflops(n, repeats=5, dtype=dtype, precision=p, calls=5)
            return {"gflops": c.rates[prec]}

        c.attempt("matmul", n, prec, 2.0 + 30 * 2 * n**3 / 1e9 / 1e5, one)
    if "fp32" in c.rates and "fp32_highest" in c.rates:
        c.data["tf32_default"] = c.rates["fp32"] > 1.5 * c.rates["fp32_highest"]


def audit(compiled, lowered) -> dict:
    """What the accelerator path must not do: float64, host callbacks or transfers in the
    compiled loop, CPU-only compiler options on another backend, x64 mode."""
    text = compiled.as_text() or ""
    try:  # private attribute: the options this program was compiled with (best effort)
        opts = dict(lowered._lowering._compiler_options_kvs)
    except Exception:  # noqa: BLE001
        opts = None
    rec = {
        "backend": jax.default_backend(),
        "x64": bool(jax.config.jax_enable_x64),
        "f64_ops": len(re.findall(r"\bf64\[", text)),
        "host_callbacks": len(re.findall(r'custom_call_target="[^"]*callback', text)),
        "host_transfers": text.count("is_host_transfer=true"),
        "compiler_options": opts,
    }
    cpu_opts = bool(opts) and any(k.startswith("xla_cpu") for k in opts)
    rec["ok"] = not (
        rec["x64"]
        or rec["f64_ops"]
        or rec["host_callbacks"]
        or rec["host_transfers"]
        or (cpu_opts and rec["backend"] != "cpu")
    )
    return rec


def measure_eval(c: Check, size: int, precision: str, do_audit: bool) -> None:
    p = c.plan

    def one() -> dict:
        loop = bench.make_loop(size, c.variables, c.run_vars, p.steps, precision)
        c.saw_compile(size, loop.compile_seconds)
        loop.sample()  # warm-up
        samples = [loop.sample() for _ in range(p.samples)]
        spe, gflop = statistics.median(samples), c.gflop(size)
        c.loop_rates[precision] = max(c.loop_rates.get(precision, 0.0), gflop / spe)
        rec = {
            "seconds_per_eval": spe,
            "seconds_per_eval_min": min(samples),
            "compile_seconds": loop.compile_seconds,
            "gflop_per_eval": gflop,
            "gflops": gflop / spe,
            "steps_per_sample": p.steps,
            "samples": samples,
        }
        if precision in c.rates:
            rec["fraction_of_matmul"] = gflop / spe / c.rates[precision]
        if precision == "fp32" and "fp32_highest" in c.rates:
            rec["fraction_of_fp32_highest"] = gflop / spe / c.rates["fp32_highest"]
        if do_audit:
            c.add(
                {
                    "name": "audit",
                    "size": size,
                    "precision": precision,
                    **audit(loop.compiled, loop.lowered),
                }
            )
        return rec

    need = c.compile_guess(size) + (p.samples + 1) * p.steps * c.eval_guess(size, precision) + 2
    c.attempt("eval", size, precision, need, one)


# --------------------------------------------------------------------------- 3-4: whole runs


def _final(res) -> dict:
    h = res.history
    return {f"final_{k}": float(np.asarray(h[k])[-1]) for k in ("total", "content", "style", "tv")}


def measure_end_to_end(c: Check) -> None:
    p = c.plan

    def one() -> dict:
        content, style = pair(p.e2e_size)
        t = time.perf_counter()
        res = stylize(content, style, variables=c.variables, iterations=p.e2e_iterations)
        wall = time.perf_counter() - t
        c.e2e_done = True  # its compiled program serves the fp32 runs of quality and sweep
        return {
            "wall_seconds": wall,
            "compile_seconds": res.compile_seconds,
            "run_seconds": res.run_seconds,
            "iterations": res.iterations,
            "evaluations": res.evaluations,
            "image_shape": list(content.shape),
            **_final(res),
        }

    need = 1.5 * c.compile_guess(p.e2e_size) + 1.5 * p.e2e_iterations * c.eval_guess(p.e2e_size)
    c.attempt("end_to_end", p.e2e_size, "fp32", need + 3, one, optimizer="lbfgs")


def measure_quality(c: Check) -> None:
    p = c.plan

    def one() -> dict:
        content, style = pair(p.e2e_size)
        out = {}
        for prec in ("fp32", "bf16"):
            res = stylize(
                content,
                style,
                variables=c.variables,
                precision=prec,
                iterations=p.quality_iterations,
            )
            out[prec] = res
        f32, b16 = (float(np.asarray(out[k].history["style"])[-1]) for k in ("fp32", "bf16"))
        # The bf16 result scored by the fp32 network: its loss without bf16's measuring error.
        grams = {
            n: losses.gram(f)
            for n, f in features(style, bench.STYLE_LAYERS, variables=c.variables).items()
        }
        feats = features(out["bf16"].image, bench.STYLE_LAYERS, variables=c.variables)
        scored = float(losses.style_loss(feats, grams))
        rel = (b16 - f32) / f32
        return {
            "iterations": p.quality_iterations,
            "style_loss_fp32": f32,
            "style_loss_bf16": b16,
            "style_rel_diff": rel,
            "passes": abs(rel) <= 0.02,
            "style_loss_bf16_scored_fp32": scored,
            "scored_rel_diff": (scored - f32) / f32,
            "total_loss_fp32": float(np.asarray(out["fp32"].history["total"])[-1]),
            "total_loss_bf16": float(np.asarray(out["bf16"].history["total"])[-1]),
            "wall_seconds_bf16": out["bf16"].compile_seconds + out["bf16"].run_seconds,
        }

    need = c.compile_guess(p.e2e_size) * (
        1.5 if c.e2e_done else 3.0
    ) + 3 * p.quality_iterations * c.eval_guess(p.e2e_size)
    c.attempt("quality_bf16", p.e2e_size, "bf16", need + 3, one, bar=0.02)


# --------------------------------------------------------------------------- 5: memory


def run_child(c: Check, kind: str, need: float, *args: str, env: dict | None = None) -> dict:
    """Run this script as ``--child kind`` and return its result line (a dict)."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
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
    p, points = c.plan, {False: [], True: []}
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
                lambda size=size, remat=remat, need=need: run_child(
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
            lambda remat=remat: _max_size(c, remat, points[remat], limit, opts),
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
                return bench.memory_estimate(
                    side, c.run_vars, remat, "fp32", p.steps, opts or None
                )["total_bytes"]
            except Exception as e:
                if not opts or "compile option" not in str(e):
                    raise
                opts.clear()  # this XLA does not know the option: compile with autotuning
                return bench.memory_estimate(side, c.run_vars, remat, "fp32", p.steps)[
                    "total_bytes"
                ]
        except Exception as e:  # noqa: BLE001  (too large to compile counts as not fitting)
            print(f"  {side} px: {_line(e)}", flush=True)
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
        lambda v, x: vgg.VGG19(channels=vgg.channels_of(v)).apply(v, x, bench.LAYERS),
        variables,
        jax.ShapeDtypeStruct((a.size, a.size, 3), jnp.float32),
    )
    targets = losses.Targets(
        content={n: jnp.zeros(shapes[n].shape) for n in bench.CONTENT_LAYERS},
        grams={n: jnp.zeros((shapes[n].shape[-1],) * 2) for n in bench.STYLE_LAYERS},
    )
    content = np.random.default_rng(a.size).uniform(size=(a.size, a.size, 3)).astype(np.float32)
    loop = bench.make_loop(
        a.size,
        variables,
        vgg.with_backward_kernels(variables),
        a.steps,
        a.precision,
        a.remat,
        problem=(content, targets),
    )
    mem = bench.memory_of(loop.compiled)
    loop.sample()
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "peak_bytes": stats.get("peak_bytes_in_use"),
        "bytes_limit": stats.get("bytes_limit"),
        "compile_seconds": loop.compile_seconds,
        **mem,
    }


# --------------------------------------------------------------------------- 6-8


def measure_sweep(c: Check) -> None:
    p = c.plan

    def one() -> dict:
        content, style = pair(p.e2e_size)
        ws = [float(w) for w in np.geomspace(1e-4, 1e-3, p.sweep_n)]
        kw = dict(variables=c.variables, iterations=p.sweep_iterations)
        singles = [stylize(content, style, style_weight=w, **kw) for w in ws]
        batch = stylize(content, style, style_weight=tuple(ws), **kw)
        s_run, s_comp = (
            sum(getattr(r, k) for r in singles) for k in ("run_seconds", "compile_seconds")
        )
        b_wall = batch.run_seconds + batch.compile_seconds
        return {
            "n": p.sweep_n,
            "iterations": p.sweep_iterations,
            "wall_seconds": b_wall,
            "run_seconds": batch.run_seconds,
            "compile_seconds": batch.compile_seconds,
            "singles_run_seconds": s_run,
            "singles_compile_seconds": s_comp,
            "ratio": batch.run_seconds / s_run,
            "ratio_with_compile": b_wall / (s_run + s_comp),
            "singles_evaluations": int(sum(r.evaluations for r in singles)),
            "batch_evaluations": int(batch.batch_evaluations) * p.sweep_n,
        }

    need = 2.5 * c.compile_guess(p.e2e_size) + 3 * p.sweep_n * p.sweep_iterations * c.eval_guess(
        p.e2e_size
    )
    c.attempt("sweep", p.e2e_size, "fp32", need + 3, one)


def measure_optional(c: Check) -> None:
    """Tiled evaluation and video, when those front ends exist."""
    p = c.plan
    try:
        default = make_options().tile  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        c.add(
            {
                "name": "tiled",
                "size": p.tile_size,
                "precision": "fp32",
                "skipped": "not available: stylize() has no tile option yet",
            }
        )
    else:

        def tiled() -> dict:
            content, style = pair(p.tile_size)
            out = {}
            for label, tile in (
                ("untiled", default),
                ("tiled", True if isinstance(default, bool) else 512),
            ):
                r = stylize(
                    content, style, variables=c.variables, tile=tile, iterations=p.tile_iterations
                )
                out[f"{label}_seconds_per_eval"] = r.run_seconds / max(r.evaluations, 1)
                out[f"{label}_final_style"] = float(np.asarray(r.history["style"])[-1])
            return out

        need = 3 * c.compile_guess(p.tile_size) + 6 * p.tile_iterations * c.eval_guess(p.tile_size)
        c.attempt("tiled", p.tile_size, "fp32", need, tiled)
    measure_video(c)


def _accepted(fn: Callable, kwargs: dict) -> dict:
    """The keyword arguments ``fn`` takes (all of them when it has ``**options``)."""
    params = inspect.signature(fn).parameters.values()
    if any(q.kind is inspect.Parameter.VAR_KEYWORD for q in params):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in {q.name for q in params}}


def _video_api() -> tuple[Callable | None, Any, str]:
    """``stylize_video``, the synthetic-clip module (or None) and, when absent, why."""
    try:
        if importlib.util.find_spec("jaxnst.video") is None:
            return None, None, "not available: no jaxnst.video"
        import jaxnst.video as pkg

        fn = getattr(pkg, "stylize_video", None)
        if fn is None and importlib.util.find_spec("jaxnst.video.api") is not None:
            from jaxnst.video import api

            fn = getattr(api, "stylize_video", None)
        synth = None
        if importlib.util.find_spec("jaxnst.video.synthetic") is not None:
            from jaxnst.video import synthetic as synth
    except Exception as e:  # noqa: BLE001  (a front end being built: report, don't fail)
        return None, None, f"not available: {_line(e)}"
    return fn, synth, "" if fn else "not available: jaxnst.video has no stylize_video() yet"


def measure_video(c: Check) -> None:
    """Seconds per frame of a multi-pass video batch (all frames one batch, Ruder et al.), on a
    synthetic pan with its true flow (no optical-flow estimation in the timing)."""
    p = c.plan
    fn, synth, why = _video_api()
    if fn is not None and not p.video_frames:
        fn, why = None, "smoke run: stylize_video compiles for about a minute on a CPU"
    if fn is None:
        c.add({"name": "video", "size": p.e2e_size, "precision": "fp32", "skipped": why})
        return
    h, w = round(p.e2e_size * 2 / 3), p.e2e_size

    def one() -> dict:
        given: dict[str, Any] = {
            "variables": c.variables,
            "iterations": p.video_iterations,
            "passes": p.video_passes,
            "pass_iterations": p.video_pass_iterations,
        }
        if synth is not None:
            from jaxnst.video import core

            clip = synth.pan(p.video_frames, (h, w), (0.5, 2.0))
            ones = np.ones(clip.visible.shape, np.float32)
            given["flow"] = core.Flow(
                *(jnp.asarray(x) for x in (clip.forward, clip.backward, ones, ones))
            )
            frames = clip.frames
        else:  # no synthetic clips: a rolled image, flow estimated by the front end
            frames = np.stack([np.roll(pair(w)[0], 2 * k, axis=1) for k in range(p.video_frames)])
        t = time.perf_counter()
        r = fn(frames, pair(w)[1], **_accepted(fn, given))
        wall = time.perf_counter() - t
        return {
            "frames": len(frames),
            "image_shape": list(frames.shape[1:]),
            "pass_count": p.video_passes,
            "mode": getattr(r, "mode", None),
            "wall_seconds": wall,
            "seconds_per_frame": wall / len(frames),
            "video_compile_seconds": getattr(r, "compile_seconds", None),
            "pass_seconds": [float(x) for x in getattr(r, "pass_seconds", [])],
        }

    its = p.video_frames * (p.video_iterations + p.video_passes * p.video_pass_iterations)
    need = 3 * c.compile_guess(p.e2e_size) + 2 * its * c.eval_guess(p.e2e_size)
    c.attempt("video", p.e2e_size, "fp32", need, one)


def measure_compile(c: Check) -> None:
    """scripts/compile_matrix.py in a process of its own (its caches start empty): the CLI end
    to end at 512 px cold and warm, then compile seconds against seconds per evaluation for
    XLA:GPU's autotuning and Triton options at the matrix sizes."""
    p = c.plan
    if not p.matrix_sizes:
        c.add({"name": "compile_matrix", "size": None, "precision": None, "skipped": "smoke"})
        return
    sizes = [str(s) for s in p.matrix_sizes]
    need = 2 * p.child_start + 2 * p.e2e_iterations * 1.3 * c.eval_guess(p.e2e_size)
    need += sum((8 + 2) * c.compile_guess(s) for s in p.matrix_sizes)

    def one() -> dict:
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, str(ROOT / "scripts" / "compile_matrix.py"), "--sizes", *sizes]
            cmd += ["--json", f"{d}/m.json", "--e2e", str(p.e2e_size), str(p.e2e_iterations)]
            if c.weights_arg in ("random", "small"):
                cmd += ["--smoke"]
            else:
                cmd += ["--weights", c.weights_arg]
            timeout = max(min(c.left() + 30, 3 * need + 30), 10)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
            if r.returncode != 0:
                tail = (r.stderr.strip().splitlines() or ["no output"])[-1]
                raise RuntimeError(f"compile_matrix exited {r.returncode}: {tail[:300]}")
            return {"rows": json.loads(Path(f"{d}/m.json").read_text())["rows"]}

    c.attempt("compile_matrix", None, "fp32", need, one)


def measure_torch(c: Check) -> None:
    p = c.plan
    if importlib.util.find_spec("torch") is None:
        c.add(
            {
                "name": "torch",
                "size": p.e2e_size,
                "precision": "fp32",
                "skipped": "torch is not importable here",
            }
        )
        return
    need = 2 * p.child_start + 3 * (p.torch_iterations + 30) * c.eval_guess(p.e2e_size)

    def one() -> dict:
        # A process of its own: PyTorch's CUDA libraries never meet JAX's, and the card's memory
        # is PyTorch's (JAX there is kept off the GPU; it does not even compute).
        r = run_child(
            c,
            "torch",
            need,
            "--size",
            str(p.e2e_size),
            "--iterations",
            str(p.torch_iterations),
            "--steps",
            str(p.steps),
            *(["--smoke"] if p.smoke else []),
            env={"JAX_PLATFORMS": "cpu"},
        )
        ours = {(x["name"], x["size"], x["precision"]): x for x in c.data["results"]}
        jax_eval = ours.get(("eval", p.e2e_size, "fp32"), {}).get("seconds_per_eval")
        if jax_eval and r.get("seconds_per_eval"):
            r["jaxnst_over_torch_per_eval"] = jax_eval / r["seconds_per_eval"]
        e2e = ours.get(("end_to_end", p.e2e_size, "fp32"), {}).get("run_seconds")
        if e2e and r.get("wall_seconds"):
            r["jaxnst_run_over_torch_lbfgs"] = e2e / r["wall_seconds"]
        return r

    c.attempt("torch", p.e2e_size, "fp32", need, one)


def child_torch(a: argparse.Namespace) -> dict:
    """PyTorch alone on the card (JAX only reads the weights file): targets, seconds per
    evaluation (Adam steps, as the eval loop) and an L-BFGS run on the bundled pair."""
    import torch
    from torch_reference import TorchObjective

    device = "cuda" if torch.cuda.is_available() else ("cpu" if a.smoke else None)
    if device is None:
        return {"skipped": f"torch {torch.__version__} sees no CUDA device"}
    torch.backends.cudnn.benchmark = True  # as scripts/bench.py: cuDNN autotuning, TF32 allowed
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    variables = numpy_weights(a.weights)
    rng = np.random.default_rng(a.size)
    square = [rng.uniform(size=(a.size, a.size, 3)).astype(np.float32) for _ in range(2)]
    obj = torch_objective(TorchObjective, variables, *square, device)
    img = obj.image(square[0])
    opt = torch.optim.Adam([img], lr=0.01)
    obj.adam_steps(img, opt, 3)  # warm-up (cuDNN autotuning)
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        obj.adam_steps(img, opt, a.steps)
        samples.append((time.perf_counter() - t) / a.steps)
    spe = statistics.median(samples)
    content, style = pair(a.size)
    t = time.perf_counter()
    _, final, evals = torch_objective(TorchObjective, variables, content, style, device).lbfgs(
        content, a.iterations
    )
    wall = time.perf_counter() - t
    gflop = bench.flops_per_eval(a.size, a.size, channels=vgg.channels_of(variables)) / 1e9
    return {
        "torch_version": torch.__version__,
        "device": device,
        "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "seconds_per_eval": spe,
        "gflops": gflop / spe,
        "samples": samples,
        "lbfgs_iterations": a.iterations,
        "wall_seconds": wall,
        "evaluations": evals,
        "final_total": final,
    }


def torch_objective(cls, variables: dict, content: np.ndarray, style: np.ndarray, device: str):
    """scripts/torch_reference.py's objective with its targets (conv4_2 activations, the style
    Grams) computed by its own network, so that PyTorch alone touches the card."""
    import torch

    shell = losses.Targets(
        content={"conv4_2": np.zeros((1, 1, 1), np.float32)},
        grams={n: np.zeros((1, 1), np.float32) for n in bench.STYLE_LAYERS},
    )
    net = cls(variables, shell, bench.WEIGHTS, "max", device)
    with torch.no_grad():
        fc, fs = net.features(net.image(content)), net.features(net.image(style))
    grams = {}
    for n in bench.STYLE_LAYERS:
        x = fs[n][0].flatten(1)
        grams[n] = (x @ x.T / x.shape[1]).cpu().numpy()
    target = fc["conv4_2"][0].permute(1, 2, 0).cpu().numpy()
    return cls(
        variables,
        losses.Targets(content={"conv4_2": target}, grams=grams),
        bench.WEIGHTS,
        "max",
        device,
    )


# --------------------------------------------------------------------------- main


def watchdog(c: Check, grace: float) -> None:
    """Past the budget by ``grace`` seconds: write what there is, print the table, exit 3."""
    time.sleep(max(c.left() + grace, 0.0))
    with c.lock:
        c.data["stopped"] = f"watchdog: still running {grace:.0f} s past the budget"
        c.write()
        print_table(c)
        os._exit(3)


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


def parse(argv) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    ap.add_argument("--child", choices=("peak", "torch"), help=argparse.SUPPRESS)
    for flag, kw in (
        ("--size", dict(type=int)),
        ("--steps", dict(type=int, default=2)),
        ("--iterations", dict(type=int, default=10)),
        ("--precision", dict(default="fp32")),
        ("--cache-dir", dict(default="")),
        ("--remat", dict(action="store_true")),
    ):
        ap.add_argument(flag, help=argparse.SUPPRESS, **kw)  # type: ignore[arg-type]
    return ap.parse_args(argv)


def child_main(a: argparse.Namespace) -> int:
    if a.cache_dir:
        jax.config.update("jax_compilation_cache_dir", a.cache_dir)
    out = child_peak(a) if a.child == "peak" else child_torch(a)
    print(TAG + json.dumps(_clean(out)), flush=True)
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
        for step in (
            measure_end_to_end,
            measure_quality,
            measure_memory,
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


if __name__ == "__main__":
    sys.exit(main())
