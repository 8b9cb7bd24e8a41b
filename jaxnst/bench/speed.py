"""``scripts/bench.py``: seconds per loss+gradient evaluation at each size in jaxnst's compiled
loop, against this machine's matmul rate and (``--vs-torch``) PyTorch on the same objective, and
``stylize`` end to end; or (``--memory``) XLA's memory estimate, or (``--layers``) the per-layer
convolution table. The script's docstring says what each number is."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp

from jaxnst import image_io
from jaxnst.bench import vs_torch
from jaxnst.bench.evals import (
    SAMPLES,
    Loop,
    flops_per_eval,
    machine,
    make_loop,
    matmul_gflops,
    memory_estimate,
    peak_bytes,
    random_problem,
    scripts_on_path,
)
from jaxnst.model import vgg, weights
from jaxnst.optim import optimize
from jaxnst.stylize import stylize

DESCRIPTION = "How fast is one loss+gradient evaluation, and how close to the hardware?"


def bench_size(size: int, variables, run_vars, a: argparse.Namespace, torch_mod) -> dict:
    """Everything measured at ``size`` x ``size``: one record of the report's ``results``."""
    problem = random_problem(size, variables, a.pooling)
    content, targets = problem
    loop = make_loop(
        size, variables, run_vars, a.steps, a.precision, a.remat, a.pooling, problem=problem
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
    xla_gflop = _xla_gflop(loop, run_vars)
    torch_obj = None
    if torch_mod is not None:
        torch_obj = vs_torch.add_runners(runners, variables, targets, content, a)
    samples = _sample(runners, a)
    r = _record(size, a, loop, samples, xla_gflop)
    if a.run_iterations:
        _end_to_end(r, size, variables, a, torch_obj is not None)
    pb = peak_bytes()
    if pb is not None:
        r["peak_bytes"] = pb
    return r


def _xla_gflop(loop: Loop, run_vars) -> float | None:
    """XLA's own FLOP count of one evaluation (a cross-check of the formula), in GFLOP."""
    one = jax.jit(jax.value_and_grad(optimize._total), static_argnums=4)
    start = jnp.asarray(loop.content)[None]
    try:
        cost: Any = (
            one.lower(start[0], run_vars, loop.targets, loop.weights, loop.config)
            .compile()
            .cost_analysis()
        )
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        return float(cost["flops"]) / 1e9
    except Exception:  # cost analysis is best-effort on some backends
        return None


def _sample(runners: dict, a: argparse.Namespace) -> dict[str, list[float]]:
    """``a.warmup`` untimed calls of each runner, then ``a.evals`` timed ones, alternating who
    goes first."""
    samples: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():
        for _ in range(a.warmup):
            fn()
    order = list(runners)
    for i in range(a.evals):
        for k in order if i % 2 == 0 else order[::-1]:  # alternate who goes first
            samples[k].append(runners[k]())
    return samples


def _record(size: int, a: argparse.Namespace, loop: Loop, samples: dict, xla_gflop) -> dict:
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
        "compile_seconds": loop.compile_seconds,
        "gflop_per_eval": gflop,
        "xla_gflop_per_eval": xla_gflop,
        "gflops": gflop / spe,
        "fraction_of_matmul": gflop / spe / a.matmul_gflops,
        "samples": samples,
    }
    if "jax_ynn" in samples:
        yspe = statistics.median(samples["jax_ynn"])
        r.update(seconds_per_eval_ynn=yspe, ratio_default_vs_ynn=spe / yspe)
    if "torch" in samples:
        tspe = statistics.median(samples["torch"])
        r.update(torch_seconds_per_eval=tspe, torch_gflops=gflop / tspe, ratio_vs_torch=spe / tspe)
    if "torch_bf16" in samples:
        bspe = statistics.median(samples["torch_bf16"])
        r.update(torch_bf16_seconds_per_eval=bspe, ratio_vs_torch_bf16=spe / bspe)
    return r


def _end_to_end(r: dict, size: int, variables, a: argparse.Namespace, torch_too: bool) -> None:
    """``stylize`` on the bundled pair resized to ``size``, L-BFGS for ``a.run_iterations``
    (compile, descent and transfers included); then PyTorch's L-BFGS with ``torch_too``."""
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
    if torch_too:
        vs_torch.end_to_end(r, variables, pair, a)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=DESCRIPTION)
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
    _add_other_flags(ap)
    return ap


def _add_other_flags(ap: argparse.ArgumentParser) -> None:
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
    ap.add_argument(
        "--feedforward",
        action="store_true",
        help="instead: feed-forward networks (jaxnst.bench.feedforward): training images/s at "
        "each --size (batch --ff-batch) and apply ms/image, PyTorch alongside with --vs-torch",
    )
    ap.add_argument(
        "--ff-race",
        type=float,
        metavar="SECONDS",
        help="--feedforward: jaxnst and PyTorch each train SECONDS on --images with --style at "
        "the first --size, then are judged on held-out photos",
    )
    st = (
        "--feedforward: a network conditioned on strength 0.1..10 against one per strength "
        "(0.1, 1, 10), STEPS steps each on --images with --style, judged on held-out photos"
    )
    ap.add_argument("--ff-strength", type=int, metavar="STEPS", help=st)
    vs = "--feedforward: each apply size's forward pass against a 500-iteration descent (10 timed)"
    ap.add_argument("--ff-vs-descent", action="store_true", help=vs)
    ap.add_argument("--ff-batch", type=int, default=4, help="--feedforward's batch (default 4)")
    ap.add_argument("--images", help="--ff-race, --ff-strength: a folder of training photos")
    ap.add_argument("--style", help="--ff-race: the style image")
    ap.add_argument(
        "--estimate",
        action="store_true",
        help="instead: the CLI's time estimate against a measured run of --run-iterations "
        "(default 20) L-BFGS iterations at each --size (jaxnst.bench.estimate)",
    )
    ap.add_argument("--json", metavar="FILE")


def main(argv=None) -> int:
    ap = _parser()
    a = ap.parse_args(argv)
    if min(a.size) < 16 or a.evals < 1 or a.steps < 1 or a.warmup < 0 or a.run_iterations < 0:
        ap.error(
            "--size must be >= 16, --evals and --steps >= 1, --warmup and --run-iterations >= 0"
        )
    torch_mod = None
    if a.vs_torch:
        torch_mod = vs_torch.setup(a)
        if torch_mod is None:
            print("bench: --vs-torch needs PyTorch (pip install torch==2.13.0)", file=sys.stderr)
            return 2
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
        _write(a.json, {"machine": info, "memory": _memory_table(a, run_vars)})
        return 0
    if a.estimate:
        from jaxnst.bench import estimate

        _write(a.json, {"machine": info, **estimate.run(a.size, a.run_iterations or 20, variables)})
        return 0
    if a.feedforward:
        from jaxnst.bench import feedforward, ff_race

        rows = ff_race.bench(a, variables) or feedforward.bench(a, variables)
        _write(a.json, {"machine": info, "feedforward": rows})
        return 0
    if a.layers:
        scripts_on_path()
        import bench_layers

        out = bench_layers.run(a.size, matmul_gflops)
        _write(a.json, {"machine": info, **out})
        return 0
    results = _timings(a, info, variables, run_vars, torch_mod)
    command = "python scripts/bench.py " + " ".join(sys.argv[1:] if argv is None else argv)
    report = {
        "machine": info,
        "matmul_gflops": a.matmul_gflops,
        "seconds_per_eval": results[0]["seconds_per_eval"],
        "results": results,
        "command": command,
    }
    _write(a.json, report)
    return 0


def _memory_table(a: argparse.Namespace, run_vars) -> list[dict]:
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
    return rows


def _timings(a: argparse.Namespace, info: dict, variables, run_vars, torch_mod) -> list[dict]:
    """The matmul rate, then every size's record, each printed as it comes."""
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
        for line in _lines(r):
            print(line, flush=True)
    return results


def _lines(r: dict) -> list[str]:
    """A size's line of the table (and its end-to-end line)."""
    line = (
        f"{r['size']:5d} px  {r['seconds_per_eval']:.4f} s/eval  {r['gflops']:7.1f} GFLOP/s "
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
    if "end_to_end_seconds" not in r:
        return [line]
    e2e = (
        f"        end to end ({r['end_to_end_iterations']} L-BFGS it., "
        f"{r['end_to_end_evaluations']} evals): {r['end_to_end_seconds']:.1f} s"
    )
    if "torch_end_to_end_seconds" in r:
        e2e += (
            f"  | torch {r['torch_end_to_end_seconds']:.1f} s "
            f"({r['torch_end_to_end_evaluations']} evals)"
        )
    return [line, e2e]


def _write(path: str | None, data: Any) -> None:
    if path:
        from jaxnst._atomic import atomic_path

        with atomic_path(path) as tmp, open(tmp, "w") as f:
            json.dump(data, f, indent=2)
