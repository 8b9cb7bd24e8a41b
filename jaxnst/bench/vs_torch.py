"""The PyTorch comparison: the same objective (same weights, layers, targets;
scripts/torch_reference.py) timed in PyTorch, for ``scripts/bench.py --vs-torch`` (alternating
sample by sample with jaxnst, in the same process) and for the device check's ``torch`` step (in a
process of its own, so that PyTorch alone touches the card)."""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxnst.bench.check import Check, run_child
from jaxnst.bench.evals import (
    CONTENT_LAYERS,
    STYLE_LAYERS,
    WEIGHTS,
    flops_per_eval,
    scripts_on_path,
)
from jaxnst.bench.machine import numpy_weights, pair
from jaxnst.loss import losses
from jaxnst.model import vgg


def torch_objective_class() -> Any:
    """scripts/torch_reference.py's ``TorchObjective`` (imports torch)."""
    scripts_on_path()
    from torch_reference import TorchObjective

    return TorchObjective


def setup(a: argparse.Namespace) -> Any:
    """PyTorch for ``--vs-torch``, set as jaxnst's comparison needs it (``a.torch_device``
    filled in, cuDNN autotuning and TF32 allowed), or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    scripts_on_path()
    a.torch_device = a.torch_device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    return torch


def runner(torch, obj, content, steps: int):
    """A sampler: seconds per evaluation of ``steps`` Adam steps of PyTorch objective ``obj``."""
    img = obj.image(content)
    opt = torch.optim.Adam([img], lr=0.01)

    def sample():
        t = time.perf_counter()
        obj.adam_steps(img, opt, steps)
        return (time.perf_counter() - t) / steps

    return sample


def add_runners(runners: dict, variables, targets, content, a: argparse.Namespace) -> Any:
    """Add PyTorch's samplers (``torch``; ``torch_bf16`` with ``--torch-bf16``) of the problem
    ``targets`` to ``runners``; returns the fp32 objective."""
    import torch

    cls = torch_objective_class()
    obj = cls(variables, targets, WEIGHTS, a.pooling, a.torch_device)
    runners["torch"] = runner(torch, obj, content, a.steps)
    if a.torch_bf16:
        b16 = cls(variables, targets, WEIGHTS, a.pooling, a.torch_device, autocast=True)
        runners["torch_bf16"] = runner(torch, b16, content, a.steps)
    return obj


def end_to_end(r: dict, variables, images: list, a: argparse.Namespace) -> None:
    """PyTorch's L-BFGS on the pair ``images`` for ``a.run_iterations`` (after jaxnst's, whose
    ``end_to_end_seconds`` ``r`` holds): its seconds, evaluations, final loss and the ratio."""
    model: Any = vgg.VGG19(pooling=a.pooling)
    cfe = model.apply(variables, jnp.asarray(images[0]), CONTENT_LAYERS)
    sfe = model.apply(variables, jnp.asarray(images[1]), STYLE_LAYERS)
    tob = torch_objective_class()(
        variables,
        losses.make_targets(cfe, sfe, CONTENT_LAYERS, STYLE_LAYERS),
        WEIGHTS,
        a.pooling,
        a.torch_device,
    )
    t = time.perf_counter()
    _, final, evals = tob.lbfgs(images[0], a.run_iterations)
    tt = time.perf_counter() - t
    r.update(
        torch_end_to_end_seconds=tt,
        torch_end_to_end_evaluations=evals,
        torch_end_to_end_final_loss=final,
        end_to_end_ratio_vs_torch=r["end_to_end_seconds"] / tt,
    )


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

    TorchObjective = torch_objective_class()
    device = "cuda" if torch.cuda.is_available() else ("cpu" if a.smoke else None)
    if device is None:
        return {"skipped": f"torch {torch.__version__} sees no CUDA device"}
    torch.backends.cudnn.benchmark = True  # as scripts/bench.py: cuDNN autotuning, TF32 allowed
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    variables = numpy_weights(a.weights)
    rng = np.random.default_rng(a.size)
    square = [rng.uniform(size=(a.size, a.size, 3)).astype(np.float32) for _ in range(2)]
    obj = torch_objective(TorchObjective, variables, square[0], square[1], device)
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
    gflop = flops_per_eval(a.size, a.size, channels=vgg.channels_of(variables)) / 1e9
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

    zeros: Any = np.zeros  # NumPy targets: the objective takes them as they are
    shell = losses.Targets(
        content={"conv4_2": zeros((1, 1, 1), np.float32)},
        grams={n: zeros((1, 1), np.float32) for n in STYLE_LAYERS},
    )
    net = cls(variables, shell, WEIGHTS, "max", device)
    with torch.no_grad():
        fc, fs = net.features(net.image(content)), net.features(net.image(style))
    grams: dict[str, Any] = {}
    for n in STYLE_LAYERS:
        x = fs[n][0].flatten(1)
        grams[n] = (x @ x.T / x.shape[1]).cpu().numpy()
    target: Any = fc["conv4_2"][0].permute(1, 2, 0).cpu().numpy()
    return cls(
        variables,
        losses.Targets(content={"conv4_2": target}, grams=grams),
        WEIGHTS,
        "max",
        device,
    )
