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

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import image_io
from jaxnst.loss import losses
from jaxnst.model import convs, vgg, weights
from jaxnst.optim import optimize
from jaxnst.pipeline import memory
from jaxnst.stylize import CONTENT_LAYERS, STYLE_LAYERS, stylize

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent / "jaxnst" / "samples"
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
        content={
            n: jax.ShapeDtypeStruct((1,) + shapes[n].shape, jnp.float32) for n in CONTENT_LAYERS
        },
        grams={
            n: jax.ShapeDtypeStruct((shapes[n].shape[-1],) * 2, jnp.float32) for n in STYLE_LAYERS
        },
    )
    f32 = jax.ShapeDtypeStruct((1,), jnp.float32)
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


def _torch_runner(torch, obj, content, steps: int):
    """A sampler: seconds per evaluation of ``steps`` Adam steps of PyTorch objective ``obj``."""
    img = obj.image(content)
    opt = torch.optim.Adam([img], lr=0.01)

    def sample():
        t = time.perf_counter()
        obj.adam_steps(img, opt, steps)
        return (time.perf_counter() - t) / steps

    return sample


def bench_size(size: int, variables, run_vars, a, torch_mod) -> dict:
    problem = random_problem(size, variables, a.pooling)
    content, targets = problem
    model = vgg.VGG19(pooling=a.pooling)
    loop = make_loop(
        size, variables, run_vars, a.steps, a.precision, a.remat, a.pooling, problem=problem
    )
    compile_s, w, config, start = (
        loop.compile_seconds,
        loop.weights,
        loop.config,
        jnp.asarray(content)[None],
    )
    runners = {"jax": loop.sample}
    if a.xla_cpu_ynn and jax.default_backend() == "cpu":
        runners["jax_ynn"] = make_loop(
            size,
            variables,
            run_vars,
            a.steps,
            a.precision,
            a.remat,
            a.pooling,
            xla_cpu_ynn=True,
            problem=problem,
        ).sample

    # XLA's own FLOP count of one evaluation (a cross-check of the formula).
    one = jax.jit(jax.value_and_grad(optimize._total), static_argnums=4)
    try:
        cost = one.lower(start[0], run_vars, targets, w, config).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        xla_gflop = float(cost["flops"]) / 1e9
    except Exception:  # cost analysis is best-effort on some backends
        xla_gflop = None

    samples = {k: [] for k in runners}
    torch_obj = None
    if torch_mod is not None:
        import torch
        from torch_reference import TorchObjective

        torch_obj = TorchObjective(variables, targets, WEIGHTS, a.pooling, a.torch_device)
        samples["torch"] = []
        runners["torch"] = _torch_runner(torch, torch_obj, content, a.steps)
    if torch_mod is not None and a.torch_bf16:
        torch_b16 = TorchObjective(
            variables, targets, WEIGHTS, a.pooling, a.torch_device, autocast=True
        )
        samples["torch_bf16"] = []
        runners["torch_bf16"] = _torch_runner(torch, torch_b16, content, a.steps)
    for fn in runners.values():
        for _ in range(a.warmup):
            fn()
    order = list(runners)
    for i in range(a.evals):
        for k in order if i % 2 == 0 else order[::-1]:  # alternate who goes first
            samples[k].append(runners[k]())

    spe = statistics.median(samples["jax"])
    gflop = flops_per_eval(size, size) / 1e9
    r = {
        "size": size,
        "height": size,
        "width": size,
        "precision": a.precision,
        "remat": a.remat,
        "pooling": a.pooling,
        "evals": a.evals,
        "steps_per_sample": a.steps,
        "seconds_per_eval": spe,
        "seconds_per_eval_min": min(samples["jax"]),
        "compile_seconds": compile_s,
        "gflop_per_eval": gflop,
        "xla_gflop_per_eval": xla_gflop,
        "gflops": gflop / spe,
        "fraction_of_matmul": gflop / spe / a.matmul_gflops,
        "samples": samples,
    }
    if "jax_ynn" in samples:
        yspe = statistics.median(samples["jax_ynn"])
        r.update(seconds_per_eval_ynn=yspe, ratio_default_vs_ynn=spe / yspe)
    if torch_obj is not None:
        tspe = statistics.median(samples["torch"])
        r.update(torch_seconds_per_eval=tspe, torch_gflops=gflop / tspe, ratio_vs_torch=spe / tspe)
    if "torch_bf16" in samples:
        bspe = statistics.median(samples["torch_bf16"])
        r.update(torch_bf16_seconds_per_eval=bspe, ratio_vs_torch_bf16=spe / bspe)
    if a.run_iterations:
        pair = [
            image_io.resize(image_io.load(SAMPLES / n), size) for n in ("chelsea.jpg", "swirls.png")
        ]
        t = time.perf_counter()
        res = stylize(
            *pair,
            variables=variables,
            iterations=a.run_iterations,
            precision=a.precision,
            remat=a.remat,
            pooling=a.pooling,
        )
        r.update(
            end_to_end_seconds=time.perf_counter() - t,
            end_to_end_iterations=res.iterations,
            end_to_end_evaluations=res.evaluations,
            end_to_end_compile_seconds=res.compile_seconds,
            end_to_end_final_loss=float(res.history["total"][-1]),
            end_to_end_image_shape=list(pair[0].shape),
        )
        if torch_obj is not None:
            cfe = model.apply(variables, jnp.asarray(pair[0]), CONTENT_LAYERS)
            sfe = model.apply(variables, jnp.asarray(pair[1]), STYLE_LAYERS)
            tob = TorchObjective(
                variables,
                losses.make_targets(cfe, sfe, CONTENT_LAYERS, STYLE_LAYERS),
                WEIGHTS,
                a.pooling,
                a.torch_device,
            )
            t = time.perf_counter()
            _, final, evals = tob.lbfgs(pair[0], a.run_iterations)
            tt = time.perf_counter() - t
            r.update(
                torch_end_to_end_seconds=tt,
                torch_end_to_end_evaluations=evals,
                torch_end_to_end_final_loss=final,
                end_to_end_ratio_vs_torch=r["end_to_end_seconds"] / tt,
            )
    pb = peak_bytes()
    if pb is not None:
        r["peak_bytes"] = pb
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=[256, 512],
        help="square image sides to time (default: 256 512)",
    )
    ap.add_argument("--evals", type=int, default=10, help="timed samples per size (default 10)")
    ap.add_argument(
        "--steps",
        type=int,
        default=3,
        help="evaluations per timed sample, i.e. per compiled call (default 3)",
    )
    ap.add_argument("--warmup", type=int, default=2, help="untimed samples first (default 2)")
    ap.add_argument(
        "--run-iterations",
        type=int,
        default=0,
        help="also time a full L-BFGS stylize() run of this many iterations",
    )
    ap.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="fp32",
        help="auto: what jaxnst's default resolves to on this machine (jaxnst.model.convs)",
    )
    ap.add_argument(
        "--layers",
        action="store_true",
        help="instead of timing evaluations: every VGG19 convolution shape at each --size in "
        "every formulation of jaxnst.model.convs (forward and input-gradient), with the fp32 "
        "and bf16 matmul rates measured in the same run",
    )
    ap.add_argument("--remat", action="store_true")
    ap.add_argument("--pooling", choices=("max", "avg"), default="max")
    ap.add_argument(
        "--xla-cpu-ynn",
        action="store_true",
        help="CPU: also time the loop compiled with XLA's YNNPACK fusions (XLA's "
        "default, which jaxnst turns off), alternating with the default",
    )
    ap.add_argument(
        "--vs-torch",
        action="store_true",
        help="time the same objective in PyTorch, alternating (needs torch)",
    )
    ap.add_argument(
        "--torch-bf16",
        action="store_true",
        help="with --vs-torch: also time PyTorch under bf16 autocast (on a CPU without bf16 "
        "units its convolutions run single-threaded: minutes per evaluation)",
    )
    ap.add_argument("--torch-device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument(
        "--random-weights",
        action="store_true",
        help="full-size random weights instead of the real ones (no download)",
    )
    ap.add_argument(
        "--memory",
        type=int,
        nargs="+",
        metavar="SIZE",
        help="instead of timing: XLA's memory estimate of one compiled step at these "
        "sizes, with and without --remat (compiles only)",
    )
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    if min(a.size) < 16 or a.evals < 1 or a.steps < 1 or a.warmup < 0 or a.run_iterations < 0:
        ap.error(
            "--size must be >= 16, --evals and --steps >= 1, --warmup and --run-iterations >= 0"
        )

    torch_mod = None
    if a.vs_torch:
        try:
            import torch as torch_mod
        except ImportError:
            print("bench: --vs-torch needs PyTorch (pip install torch==2.13.0)", file=sys.stderr)
            return 2
        sys.path.insert(0, str(HERE))
        a.torch_device = a.torch_device or ("cuda" if torch_mod.cuda.is_available() else "cpu")
        torch_mod.backends.cudnn.benchmark = True
        torch_mod.backends.cuda.matmul.allow_tf32 = True
        torch_mod.backends.cudnn.allow_tf32 = True

    if a.random_weights:
        # Drawn with NumPy: Flax's init traced and compiled the whole network for it.
        variables = vgg.random_variables(jax.random.PRNGKey(0), channels=vgg.CHANNELS)
    else:
        try:
            variables, _ = weights.load_variables()
        except weights.WeightsError as e:
            print(f"bench: {e}", file=sys.stderr)
            return 2
    run_vars = vgg.with_backward_kernels(variables)
    info = machine()
    if a.memory:
        rows = []
        for size in a.memory:
            for remat in (False, True):
                m = memory_estimate(size, run_vars, remat, a.precision)
                rows.append(m)
                print(
                    f"{size:5d} px  remat={str(remat):5s}  {m['total_bytes'] / 2**30:8.2f} GiB "
                    f"(temporaries {m['temp_bytes'] / 2**30:.2f} GiB)",
                    flush=True,
                )
        if a.json:
            from jaxnst._atomic import atomic_path

            with atomic_path(a.json) as tmp, open(tmp, "w") as f:
                json.dump({"machine": info, "memory": rows}, f, indent=2)
        return 0
    if a.layers:
        sys.path.insert(0, str(HERE))
        import bench_layers

        out = bench_layers.run(a.size, matmul_gflops)
        if a.json:
            from jaxnst._atomic import atomic_path

            with atomic_path(a.json) as tmp, open(tmp, "w") as f:
                json.dump({"machine": info, **out}, f, indent=2)
        return 0
    a.matmul_gflops = matmul_gflops(2048 if info["platform"] == "cpu" else 8192)
    print(
        f"{info['device']} ({info['platform']}, {info['cpu_count']} CPUs), jax {info['jax']}"
        + (f", torch {info['torch']}" if "torch" in info else "")
        + f"; fp32 matmul {a.matmul_gflops:.0f} GFLOP/s"
    )
    results = []
    for size in a.size:
        r = bench_size(size, variables, run_vars, a, torch_mod)
        results.append(r)
        line = (
            f"{size:5d} px  {r['seconds_per_eval']:.4f} s/eval  {r['gflops']:7.1f} GFLOP/s "
            f"({100 * r['fraction_of_matmul']:.0f}% of matmul)  "
            f"compile {r['compile_seconds']:.1f} s"
        )
        if "seconds_per_eval_ynn" in r:
            line += (
                f"  | with YNNPACK fusions {r['seconds_per_eval_ynn']:.4f} s/eval "
                f"(default/ynn = {r['ratio_default_vs_ynn']:.3f})"
            )
        if "torch_seconds_per_eval" in r:
            line += (
                f"  | torch {r['torch_seconds_per_eval']:.4f} s/eval  "
                f"jaxnst/torch = {r['ratio_vs_torch']:.3f}"
            )
        if "torch_bf16_seconds_per_eval" in r:
            line += (
                f"  | torch bf16 autocast {r['torch_bf16_seconds_per_eval']:.4f} s/eval  "
                f"jaxnst/torch_bf16 = {r['ratio_vs_torch_bf16']:.3f}"
            )
        print(line, flush=True)
        if "end_to_end_seconds" in r:
            line = (
                f"        end to end ({r['end_to_end_iterations']} L-BFGS it., "
                f"{r['end_to_end_evaluations']} evals): {r['end_to_end_seconds']:.1f} s"
            )
            if "torch_end_to_end_seconds" in r:
                line += (
                    f"  | torch {r['torch_end_to_end_seconds']:.1f} s "
                    f"({r['torch_end_to_end_evaluations']} evals)"
                )
            print(line, flush=True)
    report = {
        "machine": info,
        "matmul_gflops": a.matmul_gflops,
        "seconds_per_eval": results[0]["seconds_per_eval"],
        "results": results,
        "command": "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    if a.json:
        from jaxnst._atomic import atomic_path

        with atomic_path(a.json) as tmp, open(tmp, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
