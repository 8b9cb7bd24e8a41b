"""How long a run will take, said before it starts (issue 22).

A print-size run on a CPU takes minutes per evaluation and days for the default 500 iterations;
nothing said so. :func:`time_line` gives one line beside the memory preflight:

    seconds = evaluations * seconds_per_megapixel * megapixels * tiled_overhead

``seconds_per_megapixel`` is measured once per machine, backend and precision (one compiled
value-and-gradient of the objective at :data:`PROBE` px, best of two) and kept in
``~/.cache/jaxnst/eval_speed.json``. ``tiled_overhead`` is the area the tiles compute per image
pixel (:func:`jaxnst.loss.tiled.area`: whole crops of tile plus halo) times
:data:`TILED_PASSES` (pass 1 runs each tile forward, pass 2 forward and backward, and more).
``evaluations``: Adam and optax transformations one per step, L-BFGS one per line-search trial
(:data:`LBFGS_EVALS_PER_STEP` per iteration on the bundled pair and tubingen x starry_night,
``docs/bench_linesearch_cpu.json``), plus the start, plus the targets (:data:`TARGETS_EVALS`).
Compilation is not included. Checked on this CPU (tubingen x starry_night, ``run_seconds`` of
``--json``, the speed measured with the machine otherwise idle): 512 px x 20 iterations 21.9 s
measured / 26.4 s estimated, 1024 px x 5 34.2 / 32.3, 2048 px x 1 in 512 px tiles 142.7 / 128.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

PROBE = 256  # px, square: the measured evaluation
LBFGS_EVALS_PER_STEP = 1.05
# The first L-BFGS iterations search for a step size with little curvature known: 2.5 evaluations
# each in a 2048 px sweep of 2 (tubingen x starry_night, iterations 1 and 2), where the average
# over 500 is 1.05; a short run's estimate was 2.5x too low without them.
LBFGS_START_EVALS = 1.5  # extra evaluations in each of the first two iterations
# The targets: the content's and the style's forward passes, about a third of an evaluation each.
TARGETS_EVALS = 2.0 / 3.0
# Measured (scripts/bench_tiles.py, tubingen x starry_night, Adam): 512 px tiles cost 4.23x the
# untiled evaluation at 1024x768 and 3.21x at 2048x1536, where the tiles' area is 2.52x and 1.89x:
# 1.68 and 1.70 per computed pixel, not the 4/3 that pass 1's forward and pass 2's forward and
# backward would take alone.
TILED_PASSES = 1.7
SLOW = 3600.0  # seconds: above this the line says what would be faster
# STROTSS's sampled terms cost the same at every size (points, not pixels): in megapixels of a
# Gatys evaluation, measured at 256 px on the AVX-512 Xeon (``scripts/bench_strotss.py``): REMD,
# moments and palette with 1024 x 5000 points 0.46 s and the self-similarity 0.22 s, against
# 0.44 s for Gatys's 0.0435 MP.
REMD_MP = 0.046  # at samples=1024, style_samples=5000; scales with their product
SELF_SIM_MP = 0.022  # at samples=1024; scales with its square


def _speed_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "jaxnst" / "eval_speed.json"


def _key(precision: str, variables: dict) -> str:
    """Backend, device, jax, precision and the network's widths (tests use a small one)."""
    import jax

    from jaxnst.model import vgg

    d = jax.devices()[0]
    widths = ",".join(map(str, vgg.channels_of(variables)))
    return f"{jax.default_backend()}|{d.device_kind}|jax {jax.__version__}|{precision}|{widths}"


def seconds_per_megapixel(variables: dict, precision: str) -> float:
    """Seconds one evaluation (loss and gradient) takes per megapixel here: from the cache, or
    measured now (a few seconds, once) and cached."""
    path, key = _speed_path(), _key(precision, variables)
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = {}
    if key in table:
        return float(table[key])
    table[key] = _measure(variables, precision)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from jaxnst._atomic import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(table, indent=1) + "\n")
    except OSError:  # an unwritable cache only costs the measurement next time
        pass
    return float(table[key])


def _measure(variables: dict, precision: str) -> float:
    import jax
    import numpy as np

    from jaxnst.objective import objective

    rng = np.random.default_rng(0)
    image = rng.uniform(size=(PROBE, PROBE, 3)).astype(np.float32)
    obj = objective(image, image[::-1], variables=variables, precision=precision)
    step = jax.jit(lambda f, x: f(x))
    jax.block_until_ready(step(obj.value_and_grad, obj.init_image))  # compiles
    best = math.inf
    for _ in range(2):
        t = time.perf_counter()
        jax.block_until_ready(step(obj.value_and_grad, obj.init_image))
        best = min(best, time.perf_counter() - t)
    return best / (PROBE * PROBE / 1e6)


def seconds(h: int, w: int, members: int, options: Any, per_megapixel: float) -> float:
    """Expected seconds of the descent (no compilation) for ``members`` (H, W) images, every
    scale of a coarse-to-fine run included (tiles only where a stage is larger than them), and
    the photorealism term and smoothing (:func:`photoreal_mp`) where asked."""
    from jaxnst.loss import tiled
    from jaxnst.pipeline import multiscale

    layers = tuple(options.content_layers) + tuple(options.style_layers)
    full = max(h, w)
    plan = multiscale.stages(options, full) if options.scales else [(full, options.iterations)]
    per_step = LBFGS_EVALS_PER_STEP if options.optimizer == "lbfgs" else 1.0
    total = 0.0
    for size, n in plan:
        mp = h * w * (size / full) ** 2 / 1e6
        overhead = 1.0
        if options.tile and size > options.tile:
            sh, sw = round(h * size / full), round(w * size / full)
            overhead = tiled.area(sh, sw, options.tile, layers) * TILED_PASSES
        evals = TARGETS_EVALS + 1 + per_step * n
        if options.optimizer == "lbfgs":
            evals += LBFGS_START_EVALS * min(n, 2)
        real = mp * photoreal_mp(options)[0]
        total += evals * per_megapixel * (mp * overhead + real + sampled_mp(options)) * members
        total += per_megapixel * nnst_search_mp(options, mp)  # (once per stage: shared targets)
    total += per_megapixel * nnst_final_mp(options, h, w) * members
    return total + per_megapixel * h * w / 1e6 * photoreal_mp(options)[1] * members


# The Matting Laplacian (jaxnst.loss.matting), measured at 512x384 on the AMD EPYC (2 shared
# cores): the term's value and gradient took 60 ms against ~3.7 s for a Gatys evaluation, and a
# conjugate-gradient step of the smoothing 27 ms at 512x340; the smoothing took 110, 376 and 1031
# steps at lambda' 1e2, 1e3, 1e4: about 11 sqrt(lambda').
PHOTOREAL_TERM = 0.016  # of a Gatys evaluation, per pixel
SMOOTH_STEP = 0.008  # one smoothing step, in Gatys evaluations per pixel


def photoreal_mp(options: Any) -> tuple[float, float]:
    """(the photorealism term per evaluation, the smoothing once) in Gatys evaluations per
    pixel: 0 where ``photoreal_weight`` is 0 everywhere, or ``photoreal_smooth`` is off."""
    from jaxnst.loss.matting import SMOOTH_MAX_ITER

    w = getattr(options, "photoreal_weight", 0.0)
    lam = getattr(options, "photoreal_smooth", None) or 0.0
    term = PHOTOREAL_TERM if any(v > 0 for v in (w if isinstance(w, tuple) else (w,))) else 0.0
    return term, SMOOTH_STEP * min(11 * math.sqrt(lam), SMOOTH_MAX_ITER)


# One Gatys evaluation (VGG19 to conv5_1, forward and backward): ~0.10 TFLOP at 256 x 256 px.
GATYS_TFLOP_PER_MP = 0.10 / (256 * 256 / 1e6)


def nnst_search_mp(options: Any, mp: float) -> float:
    """NNST's nearest-neighbour search at a stage of ``mp`` megapixels, in megapixels of a
    Gatys evaluation: 2 Q K D FLOPs for Q = mp / 16 content rows, a bank of K = Q rows (a style
    of the content's area; 4 Q with ``nnst_rotations``) and D, the hypercolumns' channels (0
    without the nnst style term). NNST's steps themselves cost about a Gatys evaluation each
    (measured at 256 px: docs/site/nnst.md), so they are counted as such."""
    if getattr(options, "style_loss", "gram") != "nnst":
        return 0.0
    from jaxnst.loss import neighbours
    from jaxnst.model.layers import CHANNELS

    q = mp * 1e6 / 16
    k = q * (4 if getattr(options, "nnst_rotations", False) else 1)
    d = sum(CHANNELS[int(n[4]) - 1] for n in neighbours.LAYERS)
    return 2 * q * k * d / (GATYS_TFLOP_PER_MP * 1e12)


def nnst_final_mp(options: Any, h: int, w: int) -> float:
    """NNST's final pass (``nnst_final_steps`` steps at h x w), in megapixels of a Gatys
    evaluation: a step is an evaluation, and every ``nnst_refresh`` steps (each step when 1) a
    search, each layer's 2 Q K C FLOPs on its grid (:func:`jaxnst.loss.neighbours.stride`; K = Q,
    4 Q with rotations), plus a forward pass (a third of an evaluation) when held. A model."""
    from jaxnst.loss import neighbours
    from jaxnst.model.layers import CHANNELS

    n = getattr(options, "nnst_final_steps", 0) or 0
    if getattr(options, "style_loss", "gram") != "nnst" or not n:
        return 0.0
    flops = 0.0
    for b in (int(name[4]) for name in neighbours.LAYERS):  # block b: 1 / 2^(b-1) of the sides
        f, c = 2 ** (b - 1), CHANNELS[b - 1]
        lh, lw = max(1, h // f), max(1, w // f)
        s = neighbours.stride(lh, lw)
        q = max(1, lh // s) * max(1, lw // s)
        flops += 2 * q * q * (4 if getattr(options, "nnst_rotations", False) else 1) * c
    every = getattr(options, "nnst_refresh", 1)
    searches = -(-n // every)  # (the first step searches: a fresh state)
    forward = h * w / 1e6 / 3 if every > 1 else 0.0
    return n * h * w / 1e6 + searches * (flops / (GATYS_TFLOP_PER_MP * 1e12) + forward)


def sampled_mp(options: Any) -> float:
    """The sampled terms' cost per evaluation, in megapixels of a Gatys evaluation."""
    p = getattr(options, "samples", 1024) / 1024
    mp = SELF_SIM_MP * p * p if getattr(options, "content_loss", "mse") == "self_similarity" else 0
    if getattr(options, "style_loss", "gram") == "remd":
        mp += REMD_MP * p * options.style_samples / 5000
    return mp


def _layers(options: Any) -> tuple[str, ...]:
    from jaxnst.model import vgg

    return tuple(n for n in vgg.LAYERS if n in {*options.content_layers, *options.style_layers})


def _probe_precision(precision: str, options: Any, inputs: Any) -> str:
    """The precision the speed probe measures: "auto" only where the probe's plan is known
    already (shipped or cached), else "fp32", so that the probe itself never times forms."""
    if precision != "auto":
        return precision
    from jaxnst.model import convs, vgg

    channels = vgg.channels_of(inputs.variables)
    _, plan = convs.resolve("auto", PROBE, PROBE, _layers(options), channels, measure=False)
    known = convs.pending_seconds(PROBE, PROBE, _layers(options), channels) == 0
    return "auto" if plan is not None and known else "fp32"


def form_timing(h: int, w: int, options: Any, variables: dict, per_megapixel: float) -> float:
    """Seconds ``precision="auto"`` will spend timing convolution forms before the descent (every
    stage of a coarse-to-fine run; each bounded by a share of a default run at its size,
    :func:`jaxnst.model.convs.pending_seconds`); 0 where nothing can win or all is known."""
    from jaxnst.model import convs, vgg
    from jaxnst.pipeline import multiscale

    full = max(h, w)
    plan = multiscale.stages(options, full) if options.scales else [(full, options.iterations)]
    channels = vgg.channels_of(variables)
    total = 0.0
    for size, _ in plan:
        if options.tile and size > options.tile:
            continue  # (tiled stages run float32)
        sh, sw = max(1, round(h * size / full)), max(1, round(w * size / full))
        evaluation = per_megapixel * sh * sw / 1e6
        total += convs.pending_seconds(sh, sw, _layers(options), channels, evaluation)
    return total


def _clock(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 2 * 86400:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


OFF_ENV = "JAXNST_TIME_ESTIMATE"  # "0": no line (the tests, which time nothing)


def time_line(inputs: Any) -> str | None:
    """The CLI's line (``inputs``: :class:`jaxnst.cli.inputs.Inputs`, after the memory
    preflight, which may have switched to tiles): the expected time, and above an hour what
    would be faster. None when switched off (``JAXNST_TIME_ESTIMATE=0``)."""
    if os.environ.get(OFF_ENV) == "0":
        return None
    try:
        return _time_line(inputs)
    except Exception as e:  # noqa: BLE001 (an estimate never stops a run)
        return f"time: not estimated ({type(e).__name__}: {' '.join(str(e).split())[:120]})"


def _time_line(inputs: Any) -> str:
    from jaxnst.pipeline import multiscale
    from jaxnst.pipeline.layout import sweep_grid

    h, w = inputs.contents[0].shape[:2]
    o = multiscale.resolve(inputs.options, (h, w, 3))  # (scales="auto" -> the stages)
    members = len(inputs.contents) * sweep_grid(o)[1].shape[0]
    precision = "fp32" if o.tile else o.precision
    per_mp = seconds_per_megapixel(inputs.variables, _probe_precision(precision, o, inputs))
    s = seconds(h, w, members, o, per_mp)
    line = f"time: ~{_clock(s)} estimated for the descent (plus compiling)"
    timing = form_timing(h, w, o, inputs.variables, per_mp) if precision == "auto" else 0.0
    if timing >= 0.5:
        line = (
            f"time: ~{_clock(s + timing)} estimated: the descent ~{_clock(s)}, timing this CPU's "
            f"convolution forms once ~{_clock(timing)} (plus compiling)"
        )
        s += timing
    if s <= SLOW:
        return line
    hint = [f"--size {max(h, w) // 2}: ~{_clock(s / 4)}"]
    if not o.scales and max(h, w) >= 1024:
        hint.append("--scales auto (most iterations at smaller sizes)")
    import jax

    if jax.default_backend() == "cpu":
        hint.append("a GPU or TPU")
    return line + "; faster: " + ", ".join(hint)
