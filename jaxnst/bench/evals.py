"""Timing of evaluations: one loss+gradient evaluation inside jaxnst's compiled descent loop
(Adam, square random images, compile excluded), its FLOP count, the machine's matmul rate and XLA's
memory estimate of one compiled chunk. ``scripts/bench.py`` and ``scripts/device_check.py`` time
this loop; ``scripts/compile_matrix.py`` compiles it."""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst.loss import losses
from jaxnst.model import convs, vgg
from jaxnst.optim import optimize
from jaxnst.pipeline import memory
from jaxnst.stylize import CONTENT_LAYERS, STYLE_LAYERS

__all__ = [
    "CONTENT_LAYERS",
    "LAYERS",
    "ROOT",
    "SAMPLES",
    "STYLE_LAYERS",
    "WEIGHTS",
    "Loop",
    "flops_per_eval",
    "machine",
    "make_loop",
    "matmul_gflops",
    "memory_estimate",
    "memory_of",
    "peak_bytes",
    "random_problem",
    "scripts_on_path",
]

SAMPLES = Path(__file__).resolve().parents[1] / "samples"  # the bundled pair
ROOT = Path(__file__).resolve().parents[2]  # the checkout (the benchmarks run from one)
LAYERS = tuple(n for n in vgg.LAYERS if n in set(STYLE_LAYERS) | set(CONTENT_LAYERS))
WEIGHTS = (1.0, 3e-4, 1e4)  # jaxnst's defaults (content, style, tv)


def flops_per_eval(
    h: int, w: int, layers=LAYERS, style_layers=STYLE_LAYERS, channels=vgg.CHANNELS
) -> float:
    """Model FLOPs of one loss+gradient evaluation with respect to the image: every convolution up
    to the deepest layer forward and its input-gradient (same cost), every style Gram forward
    (2 M C^2) and backward (one product, 2 M C^2). Elementwise work is not counted. ``channels``:
    the block widths (``vgg.channels_of(variables)`` for narrow test networks)."""
    last = max(vgg.LAYERS.index(n) for n in layers)
    total, c_in, k = 0.0, 3, 0
    for b, n in enumerate(vgg.BLOCKS):
        if b:
            h, w = h // 2, w // 2
        for _ in range(n):
            if k > last:
                return total
            c_out = channels[b]
            total += 2 * (2.0 * h * w * 9 * c_in * c_out)
            if vgg.LAYERS[k] in style_layers:
                total += 2 * (2.0 * h * w * c_out * c_out)
            c_in, k = c_out, k + 1
    return total


def matmul_gflops(
    n: int, repeats: int = 7, dtype=jnp.float32, precision=None, calls: int = 1
) -> float:
    """The machine's matmul rate in GFLOP/s: (n, n) @ (n, n) products of random ``dtype`` data at
    ``precision`` (a ``jax.lax.Precision``; None is the backend's default, which recent NVIDIA GPUs
    run as TF32 for float32), the best of ``repeats`` timed batches of ``calls`` products issued
    back to back (so that dispatch overlaps the device's work), after one warm-up."""
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    a = jax.random.normal(ka, (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(kb, (n, n), jnp.float32).astype(dtype)
    f = jax.jit(lambda a, b: jnp.matmul(a, b, precision=precision))
    f(a, b).block_until_ready()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(calls):
            out = f(a, b)
        out.block_until_ready()
        ts.append((time.perf_counter() - t) / calls)
    return 2.0 * n**3 / min(ts) / 1e9  # the best of the repeats: the rate the machine can give


def machine() -> dict:
    d = jax.devices()[0]
    info = {
        "platform": d.platform,
        "device": d.device_kind,
        "devices": jax.device_count(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info


def peak_bytes() -> int | None:
    stats = jax.devices()[0].memory_stats() or {}
    return stats.get("peak_bytes_in_use")


def memory_estimate(
    size: int,
    run_vars,
    remat: bool,
    precision: str,
    chunk: int = 1,
    compiler_options: dict | None = None,
) -> dict:
    """XLA's buffer assignment for one compiled chunk of ``chunk`` Adam steps at ``size`` x ``size``
    (compiled, not run): argument, output and temporary bytes, and ``total_bytes`` (their sum less
    aliased bytes). On the CPU this is what the CPU program would allocate, an estimate of a GPU's
    use (whose allocator and fusions differ). ``compiler_options`` go to XLA for this compilation
    only (e.g. ``{"xla_gpu_autotune_level": 0}`` to skip a GPU's autotuning)."""
    channels = vgg.channels_of(run_vars)
    config = optimize.Config(
        optimizer="adam",
        chunk=chunk,
        layers=LAYERS,
        batched_content=True,
        precision=precision,
        remat=remat,
        channels=channels,
    )
    img = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
    shapes = jax.eval_shape(
        lambda v, x: vgg.VGG19(channels=channels).apply(v, x[0], LAYERS), run_vars, img
    )
    targets = losses.Targets(
        content={n: _spec((1,) + shapes[n].shape) for n in CONTENT_LAYERS},
        grams={n: _spec((shapes[n].shape[-1],) * 2) for n in STYLE_LAYERS},
    )
    f32 = _spec((1,))
    hyper = optimize.Hyper(losses.Weights(f32, f32, f32), jnp.float32(0.01), jnp.int32(1))
    state = jax.eval_shape(
        lambda x: optimize.init_state(x, run_vars, targets, hyper, config)[0], img
    )
    t = time.perf_counter()
    compiled = optimize.run_chunk.lower(state, run_vars, targets, hyper, config).compile(
        compiler_options
    )
    return {
        "size": size,
        "remat": remat,
        "precision": precision,
        "compile_seconds": time.perf_counter() - t,
        **memory_of(compiled),
    }


def _spec(shape: tuple[int, ...]) -> Any:
    """A float32 array's shape, standing in for the array (typed Any: pytrees take either)."""
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def memory_of(compiled) -> dict:
    """Argument, output, temporary and total bytes of a compiled program (``memory_analysis``)."""
    return memory.xla_estimate(compiled)


class Loop(NamedTuple):
    """One compiled chunk of ``steps`` Adam steps (one loss+gradient evaluation each) on a square
    random problem, with its arguments: ``sample()`` calls it once."""

    lowered: Any  # ``optimize.run_chunk`` lowered (its text, its options)
    compiled: Any  # ... and compiled
    args: tuple  # (state, run_vars, batched targets, hyper)
    steps: int
    compile_seconds: float  # lowering and compiling (no persistent cache hit expected)
    content: np.ndarray  # (size, size, 3) float32, the start image
    targets: losses.Targets  # unbatched (one image's)
    weights: losses.Weights  # scalars
    config: optimize.Config

    def sample(self) -> float:
        """Seconds per evaluation of one call, waiting for the device to finish."""
        t = time.perf_counter()
        out = self.compiled(*self.args, steps=np.int32(self.steps))
        jax.block_until_ready(out[1])
        return (time.perf_counter() - t) / self.steps


def random_problem(size: int, variables, pooling: str = "max") -> tuple[np.ndarray, losses.Targets]:
    """A random (size, size, 3) content image in [0, 1] and the targets of it and another random
    image as style (seeded by ``size``, so the same size gives the same problem)."""
    rng = np.random.default_rng(size)
    content = rng.uniform(size=(size, size, 3)).astype(np.float32)
    style = rng.uniform(size=(size, size, 3)).astype(np.float32)
    apply = jax.jit(
        vgg.VGG19(pooling=pooling, channels=vgg.channels_of(variables)).apply, static_argnums=2
    )
    cf = apply(variables, jnp.asarray(content), CONTENT_LAYERS)
    sf = apply(variables, jnp.asarray(style), STYLE_LAYERS)
    return content, losses.make_targets(cf, sf, CONTENT_LAYERS, STYLE_LAYERS)


def make_loop(
    size: int,
    variables,
    run_vars,
    steps: int,
    precision: str = "fp32",
    remat: bool = False,
    pooling: str = "max",
    xla_cpu_ynn: bool = False,
    problem: tuple[np.ndarray, losses.Targets] | None = None,
) -> Loop:
    """Compile jaxnst's descent chunk (Adam, ``steps`` evaluations per call, batch of one, the
    default loss weights) for a ``size`` x ``size`` problem (``random_problem`` unless given)."""
    content, targets = problem if problem is not None else random_problem(size, variables, pooling)
    w = losses.Weights(*(jnp.float32(v) for v in WEIGHTS))
    precision, plan = convs.resolve(precision, size, size, LAYERS, vgg.channels_of(variables))
    config = optimize.Config(
        convs=plan,
        optimizer="adam",
        chunk=steps,
        pooling=pooling,
        layers=LAYERS,
        channels=vgg.channels_of(variables),
        batched_content=True,
        precision=precision,
        remat=remat,
        xla_cpu_ynn=xla_cpu_ynn,
    )
    b_targets = targets._replace(content=jax.tree.map(lambda x: x[None], targets.content))
    hyper = optimize.Hyper(jax.tree.map(lambda x: x[None], w), jnp.float32(0.01), jnp.int32(2**30))
    state, _ = optimize.init_state(jnp.asarray(content)[None], run_vars, b_targets, hyper, config)
    jax.block_until_ready(state)
    t = time.perf_counter()
    n = np.int32(steps)
    lowered = optimize.run_chunk.lower(state, run_vars, b_targets, hyper, config, n)
    compiled = lowered.compile()
    seconds = time.perf_counter() - t
    # The first call evaluates the start only (steps=0); from then on a call is `steps` steps.
    state = compiled(state, run_vars, b_targets, hyper, steps=np.int32(0))[0]
    return Loop(
        lowered,
        compiled,
        (state, run_vars, b_targets, hyper),
        steps,
        seconds,
        content,
        targets,
        w,
        config,
    )


def scripts_on_path() -> None:
    """Put the checkout's scripts/ on ``sys.path``, for the helpers that live there
    (scripts/torch_reference.py, scripts/bench_layers.py)."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
