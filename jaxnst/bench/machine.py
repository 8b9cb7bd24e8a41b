"""What the device check runs with, for its report: the commit, the VGG19 weights (the full file,
the compact float16 copy or random ones) and what they are, the device and its settings, and the
bundled image pair."""

from __future__ import annotations

import math
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxnst import image_io
from jaxnst.bench.check import one_line
from jaxnst.bench.evals import ROOT, SAMPLES
from jaxnst.model import vgg, weights

COMPACT = ROOT / "weights" / "vgg19_compact.h5"


def commit_of(arg: str | None) -> str:
    """``--commit``, else ``$JAXNST_COMMIT``, else ``git rev-parse HEAD`` (+ "-dirty"), else
    "unknown" (the device machine may get the tree without .git)."""
    if arg or os.environ.get("JAXNST_COMMIT"):
        return arg or os.environ["JAXNST_COMMIT"]
    try:
        run: dict[str, Any] = dict(cwd=ROOT, capture_output=True, text=True, timeout=10)
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
            info["nvidia_smi"] = one_line(e)
    return info


def settings() -> dict:
    config: Any = jax.config
    env = {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("XLA_", "JAX_", "TF_", "CUDA_", "NVIDIA_", "OMP_", "MKL_"))
    }
    try:
        env_info = jax.print_environment_info(return_string=True)
    except Exception as e:  # noqa: BLE001
        env_info = one_line(e)
    return {
        "env": env,
        "x64": bool(config.jax_enable_x64),
        "default_matmul_precision": config.jax_default_matmul_precision,
        "environment_info": env_info,
    }


def pair(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The bundled content and style images, longer side ``size``."""
    return tuple(
        image_io.resize(image_io.load(SAMPLES / n), size) for n in ("chelsea.jpg", "swirls.png")
    )  # type: ignore[return-value]


def peak_rss() -> int:
    """This process's peak resident bytes: Linux's ``VmHWM`` (its own memory's high-water mark),
    else ``ru_maxrss``. Not ``ru_maxrss`` on Linux: across ``exec`` it keeps the parent's peak,
    so every child of the device check reported the parent's 1.1 GB (measured, smoke run)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss * (1 if sys.platform == "darwin" else 1024))


def run_record(result: Any, wall: float, shape: tuple[int, ...]) -> dict:
    """What a device-check child reports of one :func:`jaxnst.stylize` run: its seconds, steps,
    the image's shape, the device's peak bytes (``memory_stats``; None on a CPU), this process's
    peak resident set (:func:`peak_rss`) and the final loss parts."""
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "wall_seconds": wall,
        "compile_seconds": result.compile_seconds,
        "run_seconds": result.run_seconds,
        "iterations": int(result.iterations),
        "image_shape": list(shape),
        "peak_bytes": stats.get("peak_bytes_in_use"),
        "bytes_limit": stats.get("bytes_limit"),
        "peak_rss_bytes": peak_rss(),
        "final_style": float(result.history["style"][-1]),
        "final_content": float(result.history["content"][-1]),
    }
